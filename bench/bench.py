"""
Load a session worker the way the WhatsApp API servers do, and print what it
sustains: requests per second, latency percentiles and the worker's memory.

By default a worker is started on a fresh temporary store and a free loopback
port, and stopped at the end; with C{--url} the workers already running there
are loaded instead.  Every case is bounded in time and in requests.  Run with
C{--help} for the options, and see bench/README.md.
"""

import argparse
import asyncio
import base64
import ipaddress
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote, urlsplit

#: The repository whose worker is started (the folder above bench/).
REPOSITORY = Path(__file__).resolve().parent.parent

#: The wrk script that turns wrk's plain GET into our POST and reports JSON.
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk.lua"

#: A request still unanswered after this long counts as an error, so that a
#: stalled worker cannot hold the bench forever.
REQUEST_TIMEOUT = 10.0

#: Characters Baileys' URL parser leaves as they are in a path.
PATH_SAFE = "/:@+=-._~!$&'()*,;"

CASES = ("get", "post", "mix")


# Values shaped like the ones Baileys stores.


def _base64(rng: random.Random, size: int) -> str:
    return base64.b64encode(rng.randbytes(size)).decode("ascii")


def _buffer(rng: random.Random, size: int) -> dict:
    """A Node Buffer as Baileys' BufferJSON.replacer writes it."""
    return {"type": "Buffer", "data": _base64(rng, size)}


def _compact(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def session_record(rng: random.Random, size: int = 2000) -> str:
    """JSON text shaped like a libsignal session record, of about C{size} bytes."""
    record = {"_sessions": {}, "version": "v1"}
    now = 1_733_000_000_000
    while len(_compact(record)) < size:
        record["_sessions"][_base64(rng, 33)] = {
            "registrationId": rng.randrange(1, 16380),
            "currentRatchet": {
                "ephemeralKeyPair": {
                    "pubKey": _buffer(rng, 33),
                    "privKey": _buffer(rng, 32),
                },
                "lastRemoteEphemeralKey": _buffer(rng, 33),
                "previousCounter": rng.randrange(100),
                "rootKey": _buffer(rng, 32),
            },
            "indexInfo": {
                "baseKey": _buffer(rng, 33),
                "baseKeyType": 2,
                "closed": -1,
                "used": now,
                "created": now,
                "remoteIdentityKey": _buffer(rng, 33),
            },
        }
    return _compact(record)


def pre_key(rng: random.Random) -> str:
    """JSON text of one pre-key pair (about 150 bytes, 200 once in a body)."""
    return _compact({"private": _buffer(rng, 32), "public": _buffer(rng, 32)})


def creds(rng: random.Random, size: int) -> str:
    """JSON text shaped like Baileys' creds, of about C{size} bytes."""
    pair = {"private": _buffer(rng, 32), "public": _buffer(rng, 32)}
    document = {
        "noiseKey": pair,
        "pairingEphemeralKeyPair": pair,
        "signedIdentityKey": pair,
        "signedPreKey": {"keyPair": pair, "signature": _buffer(rng, 64), "keyId": 1},
        "registrationId": rng.randrange(1, 16380),
        "advSecretKey": _base64(rng, 32),
        "processedHistoryMessages": [],
        "nextPreKeyId": 31,
        "firstUnuploadedPreKeyId": 31,
        "accountSyncCounter": 1,
        "accountSettings": {"unarchiveChats": False},
        "registered": True,
        "me": {"id": "5511987654321:12@s.whatsapp.net", "name": "Bench"},
        "platform": "android",
    }
    while len(_compact(document)) < size:
        document["processedHistoryMessages"].append(
            {
                "key": {
                    "remoteJid": "5511987654321@s.whatsapp.net",
                    "fromMe": True,
                    "id": _base64(rng, 12),
                },
                "messageTimestamp": 1_733_000_000 + rng.randrange(10**6),
            }
        )
    return _compact(document)


def body_of(text: str) -> bytes:
    """The request body the API servers send to write C{text}."""
    return json.dumps({"data": text}).encode("utf-8")


# HTTP/1.1 over raw keep-alive connections.


class ResponseReader:
    """Reads one HTTP/1.1 response at a time out of a byte stream."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._status = None
        self._mode = None
        self._length = 0
        self._position = 0
        self._chunked_done = False
        self.keep_alive = True
        self.expects_body = True

    def start(self, expects_body: bool) -> None:
        """Get ready for the answer to a request just sent."""
        self._status = None
        self.expects_body = expects_body

    def feed(self, data: bytes) -> int | None:
        """Take bytes received; return the status once its response is whole."""
        self._buffer += data
        if self._status is None and not self._read_head():
            return None
        if not self._body_complete():
            return None
        status = self._status
        del self._buffer[: self._position]
        self._status = None
        return status

    def closed(self) -> int | None:
        """The connection ended: a body delimited by the close is now whole."""
        if self._status is not None and self._mode == "close":
            return self._status
        return None

    def _read_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = bytes(self._buffer[:end]).split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()

        self._status = status
        self._position = end + 4
        self.keep_alive = headers.get(b"connection") != b"close"
        if not self.expects_body or status in (204, 304) or status < 200:
            self._mode, self._length = "length", 0
        elif b"chunked" in headers.get(b"transfer-encoding", b""):
            self._mode, self._chunked_done = "chunked", False
        elif b"content-length" in headers:
            self._mode, self._length = "length", int(headers[b"content-length"])
        else:
            self._mode = "close"
        return True

    def _body_complete(self) -> bool:
        if self._mode == "length":
            if len(self._buffer) - self._position < self._length:
                return False
            self._position += self._length
            return True
        if self._mode == "chunked":
            return self._read_chunks()
        return False

    def _read_chunks(self) -> bool:
        # Body bytes are skipped, not kept: the bench only needs the status.
        buffer = self._buffer
        while not self._chunked_done:
            line_end = buffer.find(b"\r\n", self._position)
            if line_end < 0:
                return False
            size = int(bytes(buffer[self._position : line_end]).split(b";")[0], 16)
            if size == 0:
                self._chunked_done = True
                self._position = line_end + 2
                break
            if len(buffer) < line_end + 2 + size + 2:
                return False
            self._position = line_end + 2 + size + 2

        # Trailers, if any, end with an empty line.
        if buffer[self._position : self._position + 2] == b"\r\n":
            self._position += 2
            return True
        end = buffer.find(b"\r\n\r\n", self._position)
        if end < 0:
            return False
        self._position = end + 4
        return True


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self, target: "Target") -> None:
        self.target = target
        self.transport = None
        self.open = False
        self._reader = ResponseReader()
        self._waiter = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.open = True

    def send(self, request: bytes, expects_body: bool = True) -> asyncio.Future:
        """Send a whole request; the future fires with the response's status."""
        self._waiter = asyncio.get_running_loop().create_future()
        self._reader.start(expects_body)
        self.transport.write(request)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        try:
            status = self._reader.feed(data)
        except (ValueError, IndexError) as e:
            self.close()
            self._fail(ConnectionError(f"unreadable response: {e}"))
            return
        if status is not None:
            if not self._reader.keep_alive:
                self.close()
            self._answer(status)

    def connection_lost(self, exc) -> None:
        self.open = False
        status = self._reader.closed()
        if status is not None:
            self._answer(status)
        self._fail(ConnectionError("the worker closed the connection"))

    def close(self) -> None:
        """Close now; the next request will need a new connection."""
        self.open = False
        self.transport.close()

    def _answer(self, status: int) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(status)

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


class Target:
    """One worker to load: its loopback address, and the requests it is sent."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// URL")
        self.url = f"http://{parts.netloc}"
        self.host = parts.hostname
        self.port = parts.port or 80
        self._token = token.encode("utf-8")
        self._host_header = parts.netloc.encode("ascii")

    def request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        """The bytes of one request, with the apikey, as axios would send it."""
        lines = [
            f"{method} {quote(path, safe=PATH_SAFE)} HTTP/1.1".encode(),
            b"Host: " + self._host_header,
            b"apikey: " + self._token,
        ]
        if body is not None:
            lines.append(b"Content-Type: application/json")
            lines.append(b"Content-Length: %d" % len(body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")

    async def connect(self) -> Connection:
        """A new connection to this worker."""
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            lambda: Connection(self), self.host, self.port
        )
        return connection


def check_loopback(host: str) -> None:
    """Refuse to load anything but this machine."""
    for *_, address in socket.getaddrinfo(host, None):
        if not ipaddress.ip_address(address[0]).is_loopback:
            raise SystemExit(f"bench: {host} is not a loopback address; refusing")


# Measuring.


class Tally:
    """Latencies and statuses of one kind of request (or of one burst)."""

    def __init__(self, name: str, expected: tuple[int, ...]) -> None:
        self.name = name
        self.expected = expected
        self.latencies: list[float] = []
        self.statuses: Counter = Counter()
        self.failures = 0

    def record(self, status: int, seconds: float) -> None:
        """One answered request."""
        self.latencies.append(seconds)
        self.statuses[status] += 1

    def summary(self, elapsed: float) -> dict:
        """Count, rate and percentiles over C{elapsed} seconds."""
        ordered = sorted(self.latencies)
        unexpected = sum(
            n for status, n in self.statuses.items() if status not in self.expected
        )
        return {
            "name": self.name,
            "requests": len(ordered),
            "rps": len(ordered) / elapsed if elapsed > 0 else 0.0,
            "p50_ms": _percentile(ordered, 50) * 1000,
            "p99_ms": _percentile(ordered, 99) * 1000,
            "errors": self.failures + unexpected,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


def _percentile(ordered: list[float], percent: float) -> float:
    """The nearest-rank percentile of sorted values (0 when there are none)."""
    if not ordered:
        return 0.0
    rank = max(1, round(percent / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class Budget:
    """How many more requests a case may send, and until when."""

    def __init__(self, requests: int, seconds: float) -> None:
        self.left = requests
        self.deadline = time.monotonic() + seconds

    def take(self) -> bool:
        """Spend one request, if time and count allow it."""
        if self.left <= 0 or time.monotonic() >= self.deadline:
            return False
        self.left -= 1
        return True


async def exchange(connection: Connection, request: bytes, tally: Tally) -> int:
    """Send one request and record its answer; 0 if it got none."""
    started = time.perf_counter()
    try:
        status = await asyncio.wait_for(connection.send(request), REQUEST_TIMEOUT)
    except (ConnectionError, asyncio.TimeoutError, OSError):
        tally.failures += 1
        connection.close()
        return 0
    tally.record(status, time.perf_counter() - started)
    return status


class Pool:
    """Keep-alive connections shared by many callers, like an HTTP agent's."""

    def __init__(self, targets: list[Target], size: int) -> None:
        self._targets = targets
        self._size = size
        self._idle: asyncio.Queue = asyncio.Queue()

    async def open(self) -> None:
        """Connect C{size} connections, spread over the targets in turn."""
        for n in range(self._size):
            target = self._targets[n % len(self._targets)]
            self._idle.put_nowait(await target.connect())

    async def call(self, method: str, path: str, body: bytes | None, tally: Tally):
        """One request on the first idle connection; return its status."""
        connection = await self._idle.get()
        try:
            if not connection.open:
                connection = await connection.target.connect()
            request = connection.target.request(method, path, body)
            return await exchange(connection, request, tally)
        finally:
            self._idle.put_nowait(connection)

    def close(self) -> None:
        """Close every idle connection."""
        while not self._idle.empty():
            self._idle.get_nowait().close()


# The worker under load.


class LocalWorker:
    """A worker started by the bench on a free loopback port."""

    def __init__(self, store: str | None, token: str, source: Path) -> None:
        self.source = source
        self.folder = tempfile.mkdtemp(prefix="session-bench-")
        self.store = store or f"sqlite:{self.folder}/sessions.db"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._token = token
        # Open for the worker's life: it writes there until stop() closes it.
        self._log = open(os.path.join(self.folder, "worker.log"), "wb")  # noqa: SIM115
        self.process = None

    def start(self) -> None:
        """Start twistd in the foreground, on the code of C{source}."""
        environment = dict(
            os.environ,
            GLOBAL_AUTH_TOKEN=self._token,
            LISTEN=f"tcp:{self.port}:interface=127.0.0.1",
            STORE=self.store,
            HTTP_LOGS="false",
            PYTHONPATH=os.pathsep.join(
                [str(self.source), os.environ.get("PYTHONPATH", "")]
            ),
        )
        # The temporary folder as working directory keeps a .env or an
        # instances/ folder of the repository out of the measurement.
        command = [sys.executable, "-c", _TWISTD, "-n", "--pidfile="]
        self.process = subprocess.Popen(
            [*command, "session-worker"],
            cwd=self.folder,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, seconds: float = 30.0) -> None:
        """Wait until the worker answers /ping, or fail with its log."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"bench: the worker exited:\n{self.log_tail()}")
            if await _pings(Target(self.url, self._token)):
                return
            await asyncio.sleep(0.1)
        raise SystemExit(f"bench: the worker did not start:\n{self.log_tail()}")

    def log_tail(self) -> str:
        """The end of the worker's log."""
        self._log.flush()
        text = Path(self.folder, "worker.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-20:])

    def stop(self) -> None:
        """Stop the worker gracefully (SIGKILL if it hangs); drop its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


#: twistd, run by this very interpreter so that no PATH lookup can pick another.
_TWISTD = (
    "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _pings(target: "Target") -> bool:
    try:
        connection = await target.connect()
    except OSError:
        return False
    try:
        request = target.request("GET", "/ping")
        return await asyncio.wait_for(connection.send(request), 5) == 200
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        connection.close()


def process_memory(pid: int) -> dict:
    """Peak and current resident memory of a process, in MB (Linux only)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            fields[name] = int(value.split()[0]) / 1024
    return {"peak_mb": fields.get("VmHWM"), "rss_mb": fields.get("VmRSS")}


def process_cpu(pid: int) -> float:
    """CPU seconds a process (all its threads) has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces; the fields after it are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> float:
    """CPU seconds all processes of the machine have used since boot."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    # user nice system idle iowait irq softirq steal: all but idle and iowait.
    busy = [int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4)]
    return sum(busy) / os.sysconf("SC_CLK_TCK")


class CPUWatch:
    """
    CPU used during one case by the workers, by the load generator, and by
    everything else on the machine (other people's tests: the noise).
    """

    def __init__(self, pids: list[int]) -> None:
        self._pids = pids

    def __enter__(self):
        self._started = time.monotonic()
        self._workers = sum(process_cpu(pid) for pid in self._pids)
        self._self = time.process_time()
        self._children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._machine = machine_cpu()
        return self

    def __exit__(self, *_) -> None:
        elapsed = time.monotonic() - self._started
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        generator = time.process_time() - self._self
        # wrk is a waited-for child: its CPU shows up in RUSAGE_CHILDREN.
        generator += (children.ru_utime + children.ru_stime) - (
            self._children.ru_utime + self._children.ru_stime
        )
        workers = sum(process_cpu(pid) for pid in self._pids) - self._workers
        others = machine_cpu() - self._machine - workers - generator
        self.worker_percent = 100 * workers / elapsed if self._pids else None
        self.generator_percent = 100 * generator / elapsed
        # With --url and no --pid, "others" includes the workers.
        self.others_percent = max(0.0, 100 * others / elapsed)


# The cases.


class Bench:
    """The cases, run against one or more workers sharing one store."""

    def __init__(self, targets: list[Target], options) -> None:
        self.targets = targets
        self.options = options
        self.rng = random.Random(options.seed)
        suffix = _base64(self.rng, 6).replace("/", "_").replace("+", "-")
        self.group = f"bench-{suffix}"
        self.session_text = session_record(self.rng)
        self.session_body = body_of(self.session_text)

    async def setup(self) -> None:
        """Create the group and the instances the cases write into."""
        pool = Pool(self.targets, 1)
        await pool.open()
        tally = Tally("setup", (204,))
        group = json.dumps({"group": self.group}).encode()
        await pool.call("POST", "/session", group, tally)
        for instance in ["plain", *self._socket_names()]:
            body = json.dumps({"instance": instance}).encode()
            await pool.call("POST", f"/session/{self.group}", body, tally)
        await pool.call(
            "POST", self._key_path("plain", GET_KEY), self.session_body, tally
        )
        pool.close()
        _check_setup(tally)

    async def teardown(self) -> None:
        """Remove the bench's group, so a shared worker keeps nothing of it."""
        pool = Pool(self.targets, 1)
        await pool.open()
        await pool.call("DELETE", f"/session/{self.group}", None, Tally("x", ()))
        pool.close()

    def _socket_names(self) -> list[str]:
        return [f"socket {n} ação" for n in range(self.options.sockets)]

    def _key_path(self, instance: str, key: str) -> str:
        return f"/session/{self.group}/{instance}/{key}"

    async def plain(self, case: str) -> list[dict]:
        """One request, over and over, on every connection (like wrk)."""
        if case == "get":
            method, body, expected = "GET", None, (200,)
        else:
            method, body, expected = "POST", self.session_body, (204,)
        path = self._key_path("plain", GET_KEY)
        tally = Tally(case, expected)
        budget = Budget(self.options.requests, self.options.duration)

        connections = [
            await self.targets[n % len(self.targets)].connect()
            for n in range(self.options.connections)
        ]
        started = time.monotonic()
        await asyncio.gather(
            *(_repeat(c, method, path, body, budget, tally) for c in connections)
        )
        elapsed = time.monotonic() - started
        for connection in connections:
            connection.close()
        return [tally.summary(elapsed)]

    async def mix(self) -> list[dict]:
        """Simulated Baileys sockets sharing one pool of connections."""
        pool = Pool(self.targets, self.options.connections)
        await pool.open()
        sockets = [
            SimulatedSocket(self, name, random.Random(self.rng.random()))
            for name in self._socket_names()
        ]
        for simulated in sockets:
            await simulated.populate(pool)

        tallies = MixTallies()
        budget = Budget(self.options.requests, self.options.duration)
        started = time.monotonic()
        await asyncio.gather(*(s.run(pool, budget, tallies) for s in sockets))
        elapsed = time.monotonic() - started
        pool.close()
        return tallies.summaries(elapsed)


#: The key the plain cases read and write: a session record.
GET_KEY = "session-5511987654321:12.0"


async def _repeat(connection, method, path, body, budget, tally) -> None:
    request = connection.target.request(method, path, body)
    while budget.take():
        if not connection.open:
            connection = await connection.target.connect()
        await exchange(connection, request, tally)


def _check_setup(tally: Tally) -> None:
    summary = tally.summary(1.0)
    if summary["errors"]:
        raise SystemExit(f"bench: setting up failed: {summary['statuses']}")


class MixTallies:
    """What the mix measures: each request kind, and each whole operation."""

    def __init__(self) -> None:
        self.requests = Tally("mix: all requests", (200, 204, 404))
        self.get = Tally("mix: GET (200 and 404)", (200, 404))
        self.pre_key = Tally("mix: POST pre-key", (204,))
        self.creds = Tally("mix: POST creds", (204,))
        self.burst = Tally("mix: keys.get burst", (200,))
        self.batch = Tally("mix: 30 pre-keys, in turn", (200,))

    def summaries(self, elapsed: float) -> list[dict]:
        """Every tally, the whole first: operations count once each."""
        tallies = [self.get, self.pre_key, self.creds, self.burst, self.batch]
        combined = Tally(self.requests.name, self.requests.expected)
        for part in tallies[:3]:
            combined.latencies += part.latencies
            combined.statuses += part.statuses
            combined.failures += part.failures
        return [combined.summary(elapsed)] + [t.summary(elapsed) for t in tallies]


class SimulatedSocket:
    """One Baileys socket: bursts of parallel key reads, batches of writes."""

    #: Ids asked for per keys.get: half of them were never written.
    KNOWN_SESSIONS = 60

    def __init__(self, bench: Bench, instance: str, rng: random.Random) -> None:
        self.bench = bench
        self.instance = instance
        self.rng = rng
        self.next_pre_key = 1
        self.sessions = [
            f"session-55119{n:08d}:{n % 20}.0" for n in range(2 * self.KNOWN_SESSIONS)
        ]
        self.sender_keys = [
            f"sender-key-1203630{n:011d}@g.us::55119{n:08d}::0" for n in range(20)
        ]
        self.app_state_keys = [
            f"app-state-sync-key-{_base64(rng, 6)}==" for n in range(6)
        ]

    async def populate(self, pool: Pool) -> None:
        """Write the half of the keys that the bursts will find."""
        tally = Tally("populate", (204,))
        known = self.sessions[: self.KNOWN_SESSIONS] + self.app_state_keys[:3]
        writes = [
            self._write(pool, key, self.bench.session_body, tally) for key in known
        ]
        writes.append(self._write(pool, "creds", body_of(creds(self.rng, 3000)), tally))
        await asyncio.gather(*writes)
        _check_setup(tally)

    async def run(self, pool: Pool, budget: Budget, tallies: MixTallies) -> None:
        """Act until the budget is spent: mostly reads, some writes."""
        while budget.left > 0 and time.monotonic() < budget.deadline:
            roll = self.rng.random()
            if roll < 0.80:
                await self.keys_get(pool, budget, tallies)
            elif roll < 0.92:
                await self.upload_pre_keys(pool, budget, tallies)
            else:
                await self.write_creds(pool, budget, tallies)

    async def keys_get(self, pool, budget, tallies) -> None:
        """One GET per id, all at once, as Baileys' keys.get does."""
        universe = self.rng.choice(
            [self.sessions, self.sessions, self.sender_keys, self.app_state_keys]
        )
        keys = self.rng.sample(universe, self.rng.randint(1, min(30, len(universe))))
        started = time.perf_counter()
        reads = [
            pool.call(
                "GET", self.bench._key_path(self.instance, key), None, tallies.get
            )
            for key in keys
            if budget.take()
        ]
        await asyncio.gather(*reads)
        if reads:
            tallies.burst.record(200, time.perf_counter() - started)

    async def upload_pre_keys(self, pool, budget, tallies) -> None:
        """A batch of 30 pre-keys, each write awaited before the next."""
        started = time.perf_counter()
        for _ in range(30):
            if not budget.take():
                return
            key = f"pre-key-{self.next_pre_key}"
            self.next_pre_key += 1
            body = body_of(pre_key(self.rng))
            await self._write(pool, key, body, tallies.pre_key)
        tallies.batch.record(200, time.perf_counter() - started)

    async def write_creds(self, pool, budget, tallies) -> None:
        """A creds update, 2 to 5 KB."""
        if budget.take():
            body = body_of(creds(self.rng, self.rng.randint(2000, 5000)))
            await self._write(pool, "creds", body, tallies.creds)

    def _write(self, pool: Pool, key: str, body: bytes, tally: Tally):
        return pool.call("POST", self.bench._key_path(self.instance, key), body, tally)


# wrk, when installed.


def run_wrk(target: Target, case: str, bench: Bench, options) -> dict | None:
    """The plain case C{case} under wrk, or None if wrk is not installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".json") as body_file:
        environment = dict(os.environ, BENCH_TOKEN=options.token, BENCH_METHOD="GET")
        if case == "post":
            body_file.write(bench.session_body)
            body_file.flush()
            environment.update(BENCH_METHOD="POST", BENCH_BODY_FILE=body_file.name)
        url = target.url + quote(bench._key_path("plain", GET_KEY), safe=PATH_SAFE)
        command = [
            wrk,
            "-t1",
            f"-c{options.connections}",
            f"-d{max(1, round(options.duration))}s",
            f"--timeout={int(REQUEST_TIMEOUT)}s",
            "-s",
            str(WRK_SCRIPT),
            url,
        ]
        finished = subprocess.run(
            command,
            env=environment,
            capture_output=True,
            text=True,
            timeout=options.duration + 30,
        )
    return _wrk_summary(case, finished)


def _wrk_summary(case: str, finished) -> dict:
    for line in finished.stdout.splitlines():
        if line.startswith("BENCH "):
            figures = json.loads(line[len("BENCH ") :])
            seconds = figures["duration_us"] / 1e6
            errors = figures.pop("errors")
            return {
                "name": case,
                "requests": figures["requests"],
                "rps": figures["requests"] / seconds if seconds else 0.0,
                "p50_ms": figures["p50_us"] / 1000,
                "p99_ms": figures["p99_us"] / 1000,
                "errors": sum(errors.values()),
                "statuses": {},
            }
    raise SystemExit(f"bench: wrk gave no figures:\n{finished.stdout}{finished.stderr}")


# Running and reporting.


async def run_cases(bench: Bench, pids: list[int], options) -> list[dict]:
    """Every chosen case with every available tool, C{--repeat} times."""
    rows = []
    for run in range(1, options.repeat + 1):
        for case in options.cases:
            for tool in _tools(case, bench, options):
                with CPUWatch(pids) as cpu:
                    if tool == "wrk":
                        loop = asyncio.get_running_loop()
                        summary = await loop.run_in_executor(
                            None, run_wrk, bench.targets[0], case, bench, options
                        )
                        summaries = [summary]
                    elif case == "mix":
                        summaries = await bench.mix()
                    else:
                        summaries = await bench.plain(case)
                for index, summary in enumerate(summaries):
                    # Requests per CPU second of the worker: the cost of a
                    # request, far steadier than req/s on a shared machine.
                    # Only the first row of a case covers all its requests.
                    worker = cpu.worker_percent
                    per_cpu = None
                    if index == 0 and worker:
                        per_cpu = summary["rps"] / (worker / 100)
                    summary.update(
                        requests_per_worker_cpu_second=per_cpu,
                        case=case,
                        tool=tool,
                        run=run,
                        worker_cpu_percent=cpu.worker_percent,
                        generator_cpu_percent=cpu.generator_percent,
                        others_cpu_percent=cpu.others_percent,
                        worker_memory=_memory(pids),
                    )
                    rows.append(summary)
                if not options.json:
                    _print_rows(summaries, tool, run)
    return rows


def _tools(case: str, bench: Bench, options) -> list[str]:
    tools = ["asyncio"]
    wrk_usable = (
        options.wrk
        and case != "mix"
        and len(bench.targets) == 1
        and shutil.which("wrk")
    )
    if wrk_usable:
        tools.append("wrk")
    return tools


def _memory(pids: list[int]) -> list[dict]:
    return [dict(pid=pid, **process_memory(pid)) for pid in pids]


_COLUMNS = (
    "{run:>3} {tool:<7} {name:<27} {requests:>8} {rps:>9} {per_cpu:>9}"
    " {p50:>8} {p99:>8} {errors:>6} {cpu:>16}"
)


def _print_header() -> None:
    print(
        _COLUMNS.format(
            run="run",
            tool="tool",
            name="case",
            requests="requests",
            rps="req/s",
            per_cpu="req/cpu-s",
            p50="p50 ms",
            p99="p99 ms",
            errors="errors",
            cpu="cpu wkr/gen/oth",
        )
    )


def _print_rows(summaries: list[dict], tool: str, run: int) -> None:
    for summary in summaries:
        worker = summary["worker_cpu_percent"]
        cpu = f"{'-' if worker is None else f'{worker:.0f}'}%/"
        cpu += f"{summary['generator_cpu_percent']:.0f}%/"
        cpu += f"{summary['others_cpu_percent']:.0f}%"
        print(
            _COLUMNS.format(
                run=run,
                tool=tool,
                name=summary["name"],
                requests=summary["requests"],
                rps=f"{summary['rps']:.0f}",
                per_cpu=_figure(summary["requests_per_worker_cpu_second"]),
                p50=f"{summary['p50_ms']:.2f}",
                p99=f"{summary['p99_ms']:.2f}",
                errors=summary["errors"],
                cpu=cpu,
            ),
            flush=True,
        )


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def spread(rows: list[dict]) -> list[dict]:
    """Per case and tool over the runs: median req/s and the spread around it."""
    grouped: dict = {}
    for row in rows:
        grouped.setdefault((row["tool"], row["name"]), []).append(row)
    result = []
    for (tool, name), runs in grouped.items():
        rates = [r["rps"] for r in runs]
        median = statistics.median(rates)
        result.append(
            {
                "tool": tool,
                "name": name,
                "runs": len(runs),
                "median_rps": median,
                "min_rps": min(rates),
                "max_rps": max(rates),
                "spread_percent": 100 * (max(rates) - min(rates)) / median
                if median
                else 0.0,
                "median_p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "median_p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "median_requests_per_worker_cpu_second": _median_of(
                    [r["requests_per_worker_cpu_second"] for r in runs]
                ),
                "max_others_cpu_percent": max(r["others_cpu_percent"] for r in runs),
            }
        )
    return result


def _median_of(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _per_cpu_text(value: float | None) -> str:
    return "" if value is None else f"{value:.0f} req/cpu-s  "


def _print_spread(summary: list[dict]) -> None:
    print(
        "\nover the runs: median req/s (min-max, spread), median req/cpu-s,"
        " median p50/p99"
    )
    for row in summary:
        print(
            f"    {row['tool']:<7} {row['name']:<27} {row['median_rps']:>9.0f} "
            f"({row['min_rps']:.0f}-{row['max_rps']:.0f}, "
            f"{row['spread_percent']:.0f}%)  "
            f"{_per_cpu_text(row['median_requests_per_worker_cpu_second'])}"
            f"p50 {row['median_p50_ms']:.2f} ms  p99 {row['median_p99_ms']:.2f} ms"
            f"  others' cpu up to {row['max_others_cpu_percent']:.0f}%"
        )


def _print_memory(memory: list[dict]) -> None:
    for worker in memory:
        print(
            f"\nworker {worker['pid']}: peak memory (VmHWM) {worker['peak_mb']:.1f} MB,"
            f" RSS at the end {worker['rss_mb']:.1f} MB"
        )


def parse_arguments(argv=None):
    """The command line, checked."""
    parser = argparse.ArgumentParser(
        description="Load a session worker and print what it sustains."
    )
    parser.add_argument(
        "--store",
        help="store of the worker started here (default: sqlite: in a new "
        "temporary folder); any STORE the worker accepts",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=REPOSITORY,
        help="the checkout whose worker is started (default: this one); "
        "for example a `git archive` of another commit",
    )
    parser.add_argument(
        "--url",
        action="append",
        default=[],
        help="load this running worker instead of starting one; repeat it to "
        "spread the connections over several workers sharing one store",
    )
    parser.add_argument(
        "--pid",
        type=int,
        action="append",
        default=[],
        help="with --url: a worker's process id, to report its CPU and memory",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("GLOBAL_AUTH_TOKEN", "bench-token"),
        help="the apikey [env: GLOBAL_AUTH_TOKEN, else bench-token]",
    )
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds per case [5]"
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=500_000,
        help="most requests per case [500000]",
    )
    parser.add_argument(
        "--connections", type=int, default=32, help="concurrent connections [32]"
    )
    parser.add_argument(
        "--sockets", type=int, default=8, help="simulated Baileys sockets in mix [8]"
    )
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"comma-separated cases to run [{','.join(CASES)}]",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case [1]")
    parser.add_argument(
        "--no-wrk",
        dest="wrk",
        action="store_false",
        help="do not also run wrk for get and post, even if it is installed",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed [1]")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    options = parser.parse_args(argv)

    options.cases = [c for c in options.cases.split(",") if c]
    unknown = set(options.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; known: {', '.join(CASES)}")
    if options.url and options.store:
        parser.error("--store starts a worker; --url loads running ones: not both")
    for name in ("duration", "requests", "connections", "sockets", "repeat"):
        if getattr(options, name) <= 0:
            parser.error(f"--{name} must be positive")
    return options


async def bench_main(options) -> dict:
    """Start or find the workers, run the cases, and return every figure."""
    local = None
    urls, pids = options.url, options.pid
    if not urls:
        local = LocalWorker(options.store, options.token, options.source)
        local.start()
        urls, pids = [local.url], [local.process.pid]
    try:
        if local is not None:
            await local.wait_ready()
        targets = [Target(url, options.token) for url in urls]
        for target in targets:
            check_loopback(target.host)
        bench = Bench(targets, options)
        await bench.setup()
        if not options.json:
            _print_preamble(bench, local, options)
            _print_header()
        rows = await run_cases(bench, pids, options)
        await bench.teardown()
        memory = _memory(pids)
    finally:
        if local is not None:
            local.stop()

    return {
        "store": local.store if local else None,
        "urls": urls,
        "connections": options.connections,
        "duration": options.duration,
        "sockets": options.sockets,
        "value_bytes": len(bench.session_text),
        "body_bytes": len(bench.session_body),
        "rows": rows,
        "spread": spread(rows),
        "worker_memory": memory,
    }


def _print_preamble(bench: Bench, local, options) -> None:
    where = f"a new worker on {local.store}" if local else ", ".join(options.url)
    print(
        f"session-worker bench: {where}; {options.connections} connections, "
        f"{options.duration:g} s or {options.requests} requests per case; "
        f"session value {len(bench.session_text)} B "
        f"(body {len(bench.session_body)} B); mix: {options.sockets} sockets\n"
        "cpu: worker (all its threads) / load generator / all other processes"
        f" of the machine, in % of one core; {os.cpu_count()} cores\n"
    )


def main(argv=None) -> None:
    """Run the bench and print its table, or its JSON."""
    options = parse_arguments(argv)
    result = asyncio.run(bench_main(options))
    if options.json:
        print(json.dumps(result, indent=2))
        return
    if options.repeat > 1:
        _print_spread(result["spread"])
    _print_memory(result["worker_memory"])


if __name__ == "__main__":
    main()
