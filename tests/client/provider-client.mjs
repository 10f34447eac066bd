// A WhatsApp API server's session provider, as far as the worker can tell:
// the same axios calls, the same JSON.stringify with a Buffer replacer, the
// same way of reading a value back.  Usage: node provider-client.mjs URL TOKEN
import assert from "node:assert/strict";
import axios from "axios";

const [url, token] = process.argv.slice(2);
const prefix = "codechat-e2e";

// What Baileys' BufferJSON does: Buffers travel as {type, data: base64}.
const replacer = (key, value) =>
  value && value.type === "Buffer" && Array.isArray(value.data)
    ? { type: "Buffer", data: Buffer.from(value.data).toString("base64") }
    : value;
const reviver = (key, value) =>
  value && value.type === "Buffer" && typeof value.data === "string"
    ? Buffer.from(value.data, "base64")
    : value;

const bytes = (n, seed) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) % 256));

const creds = {
  noiseKey: { private: bytes(32, 1), public: bytes(32, 2) },
  signedIdentityKey: { private: bytes(32, 3), public: bytes(32, 4) },
  registrationId: 4711,
  advSecretKey: bytes(32, 5).toString("base64"),
  me: { id: "5511987654321:12@s.whatsapp.net", name: "Loja São João" },
  account: { details: bytes(400, 6), accountSignature: bytes(64, 7) },
};
const keys = {
  "pre-key": Object.fromEntries(
    Array.from({ length: 30 }, (_, n) => [String(n + 1), { private: bytes(32, n), public: bytes(32, n + 1) }]),
  ),
  session: {
    "5511987654321.0": { _sessions: { [bytes(33, 8).toString("base64")]: { registrationId: 1 } }, version: "v1" },
    "5511987654321:12.0": { _sessions: {}, version: "v1" },
    "123456789012345_1.0": { _sessions: {}, version: "v1" },
  },
  "sender-key": { "120363012345678901@g.us::5511987654321::0": [{ senderKeyId: 1, chainKey: bytes(32, 9) }] },
  "sender-key-memory": { "120363012345678901@g.us": { "5511987654321:12@s.whatsapp.net": true } },
  "app-state-sync-key": { "AAAAAPj/kQ==": { keyData: bytes(32, 10), fingerprint: { rawId: 1, currentIndex: 2 } } },
  "app-state-sync-version": { regular_high: { version: 12, hash: bytes(128, 11) } },
  "lid-mapping": { "5511987654321": "123456789012345@lid" },
  "device-list": { "5511987654321": ["0", "12", "34"] },
  tctoken: { "5511987654321@s.whatsapp.net": { token: bytes(20, 12), timestamp: "1733000000" } },
};

const revive = (value) => JSON.parse(JSON.stringify(value, replacer), reviver);

// Start-up: the ping the API server kills itself over, then its group.
const ping = await axios.options(url + "/ping");
assert.equal(ping.data, "pong");
await axios.post(`${url}/session`, { group: prefix }, { headers: { apikey: token } });
const client = axios.create({ baseURL: `${url}/session/${prefix}`, headers: { apikey: token } });

for (const instance of ["loja-1", "Loja São João"]) {
  assert.equal((await client.post("", { instance })).status, 204);

  const write = (key, value) => client.post(`/${instance}/${key}`, { data: JSON.stringify(value, replacer) });
  const read = async (key) => {
    try {
      const response = await client.get(`/${instance}/${key}`);
      return JSON.parse(JSON.stringify(response.data), reviver);
    } catch (error) {
      if (error.response?.status === 404) return undefined;
      throw error;
    }
  };

  // A paired session: creds, then keys.set's writes one after another.
  assert.equal((await write("creds", creds)).status, 204);
  for (const [type, entries] of Object.entries(keys)) {
    for (const [id, value] of Object.entries(entries)) {
      assert.equal((await write(`${type}-${id}`, value)).status, 204);
    }
  }

  // Read back: creds, then keys.get's parallel bursts, absent ids included.
  assert.deepEqual(await read("creds"), revive(creds));
  for (const [type, entries] of Object.entries(keys)) {
    const ids = [...Object.keys(entries), "never-written-1", "never-written-2"];
    const values = await Promise.all(ids.map((id) => read(`${type}-${id}`)));
    ids.forEach((id, n) => assert.deepEqual(values[n], id in entries ? revive(entries[id]) : undefined, `${type}-${id}`));
  }

  // keys.set with a null value deletes the key.
  assert.equal((await client.delete(`/${instance}/pre-key-1`)).status, 200);
  assert.equal(await read("pre-key-1"), undefined);
}

// Without the apikey, nothing is readable.
await assert.rejects(axios.get(`${url}/session/${prefix}/loja-1/creds`), (error) => error.response.status === 401);

const listed = (await client.get("/list-instances")).data;
assert.deepEqual(listed, ["Loja São João", "loja-1"]);
assert.equal((await client.delete("/loja-1")).status, 200);
assert.deepEqual((await client.get("/list-instances")).data, ["Loja São João"]);
console.log("provider client: all calls answered as whatsapp-api expects");
