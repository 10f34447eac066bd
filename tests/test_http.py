"""
The worker end to end: the plugin's service on a real loopback port, a real
SQLite file, real HTTP clients.
"""

import json
import socket
import time

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.threads import deferToThread

from session_daemon.site import SessionSite
from session_daemon.store.memory import MemoryStore
from session_daemon.web import SessionAPI
from tests.corpus import KEYS
from tests.worker import InProcessWorker, call

TOKEN = "end-to-end-token"
AUTH = {"apikey": TOKEN}


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "data" / "sessions.db"


@pytest.fixture
def worker(tmp_path, store_path, monkeypatch, no_proxy_env):
    monkeypatch.chdir(tmp_path)
    running = InProcessWorker(
        token=TOKEN, store=f"sqlite:{store_path}", **{"body-size": "1"}
    ).start()
    yield running
    pytest_twisted.blockon(running.stop())


async def _call(worker, method, path, body=None, headers=AUTH):
    return await call(worker, method, path, body, headers)


async def _pair(worker, group="g", instance="i"):
    assert (await _call(worker, "POST", "/session", {"group": group}))[0] == 204
    answer = await _call(worker, "POST", f"/session/{group}", {"instance": instance})
    assert answer[0] == 204


def _files_under(folder) -> set:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest_twisted.ensureDeferred
async def test_a_client_session_lives_and_dies_over_http(worker):
    """Create, store every key type, read back identical, list, remove."""
    assert (await _call(worker, "OPTIONS", "/ping", headers={})) == (200, b"pong")
    await _pair(worker)
    for key, value in KEYS.items():
        status, _ = await _call(worker, "POST", f"/session/g/i/{key}", {"data": value})
        assert status == 204
    for key, value in KEYS.items():
        assert await _call(worker, "GET", f"/session/g/i/{key}") == (
            200,
            value.encode(),
        )
    assert await _call(worker, "GET", "/session/g/list-instances") == (200, b'["i"]')
    assert (await _call(worker, "DELETE", "/session/g/i"))[0] == 200
    assert await _call(worker, "GET", "/session/g/list-instances") == (200, b"[]")
    assert (await _call(worker, "GET", "/session/g/i/creds"))[0] == 404


@pytest_twisted.ensureDeferred
async def test_health_answers_over_http(worker):
    assert await _call(worker, "GET", "/health", headers={}) == (
        200,
        b'{"status": "ok"}',
    )


@pytest_twisted.ensureDeferred
async def test_a_request_without_apikey_is_refused_over_http(worker):
    status, body = await _call(worker, "GET", "/session/g/list-instances", headers={})
    assert status == 401
    assert json.loads(body)["error"] == "unauthorized"


@pytest_twisted.ensureDeferred
async def test_concurrent_writes_to_one_key_leave_one_whole_value(worker):
    await _pair(worker)
    values = [json.dumps({"writer": n, "pad": "x" * 100_000}) for n in range(20)]
    answers = await gatherResults(
        [
            ensureDeferred(_call(worker, "POST", "/session/g/i/creds", {"data": v}))
            for v in values
        ]
    )
    assert [status for status, _ in answers] == [204] * len(values)
    status, body = await _call(worker, "GET", "/session/g/i/creds")
    assert status == 200
    assert body.decode() in values


@pytest_twisted.ensureDeferred
async def test_a_burst_of_parallel_reads_is_answered(worker):
    """Baileys asks for many keys at once, most of them missing."""
    await _pair(worker)
    for n in range(0, 60, 3):
        await _call(worker, "POST", f"/session/g/i/pre-key-{n}", {"data": f"{n}"})
    answers = await gatherResults(
        [
            ensureDeferred(_call(worker, "GET", f"/session/g/i/pre-key-{n}"))
            for n in range(60)
        ]
    )
    for n, (status, body) in enumerate(answers):
        if n % 3 == 0:
            assert (status, body) == (200, str(n).encode())
        else:
            assert status == 404


@pytest_twisted.ensureDeferred
async def test_traversal_attempts_write_nothing_anywhere(worker, tmp_path):
    """No name, however encoded, creates or removes a file, or changes data."""
    await _pair(worker)
    await _call(worker, "POST", "/session/g/i/creds", {"data": '"kept"'})
    before = _files_under(tmp_path)
    for bad in ["..", "%2e%2e", "%2E%2e", ".", "a%00b", "x" * 600]:
        for path in (
            f"/session/{bad}/i/creds",
            f"/session/g/{bad}/creds",
            f"/session/g/i/{bad}",
            f"/session/g/{bad}",
            f"/session/{bad}",
        ):
            for method in ("POST", "DELETE"):
                status, _ = await _call(
                    worker, method, path, {"data": "{}", "instance": "x"}
                )
                assert status in (400, 405), (method, path, status)
    # A name made of dots and slashes is only a name: kept as data, it
    # reaches no file either.
    for method in ("POST", "DELETE"):
        await _call(worker, method, "/session/%2e%2e%2f%2e%2e", {"instance": "x"})
        await _call(worker, method, "/session/g/%2e%2e%2fi/creds", {"data": "{}"})
    assert _files_under(tmp_path) - {"data/sessions.db-journal"} <= before
    assert await _call(worker, "GET", "/session/g/i/creds") == (200, b'"kept"')
    assert await _call(worker, "GET", "/session/g/list-instances") == (200, b'["i"]')


@pytest_twisted.ensureDeferred
async def test_a_restarted_worker_keeps_every_value(
    tmp_path, store_path, monkeypatch, no_proxy_env
):
    monkeypatch.chdir(tmp_path)
    flags = {"token": TOKEN, "store": f"sqlite:{store_path}"}
    first = InProcessWorker(**flags).start()
    await _pair(first)
    await _call(first, "POST", "/session/g", {"instance": "no-keys-yet"})
    for key, value in KEYS.items():
        await _call(first, "POST", f"/session/g/i/{key}", {"data": value})
    await first.stop()

    second = InProcessWorker(**flags).start()
    try:
        listed = await _call(second, "GET", "/session/g/list-instances")
        assert listed == (200, b'["i", "no-keys-yet"]')
        for key, value in KEYS.items():
            assert await _call(second, "GET", f"/session/g/i/{key}") == (
                200,
                value.encode(),
            )
    finally:
        await second.stop()


# The body limit, over raw sockets: what a client sees on the wire.

LIMIT = 1024 * 1024


def _head(path: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: worker\r\napikey: {TOKEN}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


def _send_and_read(port: int, head: bytes, body_chunks, read_first=False) -> bytes:
    """
    Send C{head} then body chunks until the server stops us; return all the
    bytes the server sent before closing.
    """
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        if read_first:
            s.settimeout(3)
            answer += s.recv(65536)
        try:
            for chunk in body_chunks:
                s.sendall(chunk)
        except OSError:
            pass  # The server closed while we sent: expected after a refusal.
        s.settimeout(10)
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    return answer


def _status_and_body(answer: bytes):
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), head, body


def _megabytes(count: int):
    chunk = b"x" * (1024 * 1024)
    return (chunk for _ in range(count))


@pytest_twisted.ensureDeferred
async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(worker):
    """A 1 GB Content-Length gets 413 JSON; the body is dropped, not kept."""
    await _pair(worker)
    head = _head("/session/g/i/creds", f"Content-Length: {1024**3}\r\n")
    answer = await deferToThread(_send_and_read, worker.port, head, _megabytes(64))
    status, headers, body = _status_and_body(answer)
    assert status == 413
    assert json.loads(body)["error"] == "payload_too_large"
    assert b"connection: close" in headers.lower()
    assert (await _call(worker, "GET", "/session/g/i/creds"))[0] == 404


@pytest_twisted.ensureDeferred
async def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives(worker):
    await _pair(worker)
    head = _head("/session/g/i/creds", "Transfer-Encoding: chunked\r\n")
    piece = b"x" * 65536
    chunks = (b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(4 * 1024))
    answer = await deferToThread(_send_and_read, worker.port, head, chunks)
    status, _, body = _status_and_body(answer)
    assert status == 413
    assert json.loads(body)["statusCode"] == 413
    assert (await _call(worker, "GET", "/session/g/i/creds"))[0] == 404


@pytest_twisted.ensureDeferred
async def test_expect_continue_over_the_limit_gets_413_and_no_100(worker):
    """A client that waits for 100 Continue is told 413 instead."""
    head = _head(
        "/session/g/i/creds",
        f"Content-Length: {50 * LIMIT}\r\nExpect: 100-continue\r\n",
    )
    answer = await deferToThread(
        _send_and_read, worker.port, head, iter(()), read_first=True
    )
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in answer


@pytest_twisted.ensureDeferred
async def test_a_body_at_the_limit_is_accepted(worker):
    await _pair(worker)
    data = json.dumps("y" * (LIMIT - 100))
    body = json.dumps({"data": data}).encode()
    assert len(body) <= LIMIT
    assert (await _call(worker, "POST", "/session/g/i/creds", body))[0] == 204
    assert await _call(worker, "GET", "/session/g/i/creds") == (200, data.encode())


@pytest_twisted.ensureDeferred
async def test_a_connection_stays_usable_between_requests(worker):
    """Keep-alive works: two requests, one connection."""
    await _pair(worker)

    def two_requests():
        with socket.create_connection(("127.0.0.1", worker.port), timeout=5) as s:
            body = b'{"data": "1"}'
            request = (
                _head("/session/g/i/creds", f"Content-Length: {len(body)}\r\n") + body
            )
            s.sendall(request + request)
            answer = b""
            while answer.count(b"HTTP/1.1 204") < 2:
                data = s.recv(65536)
                assert data
                answer += data
            return answer

    answer = await deferToThread(two_requests)
    assert answer.count(b"HTTP/1.1 204") == 2


@pytest.mark.parametrize(
    "garbage",
    [
        b"NONSENSE\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nHost: w\r\nX-Big: " + b"x" * 70_000 + b"\r\n\r\n",
        b"POST /session HTTP/1.1\r\nHost: w\r\nContent-Length: many\r\n\r\n",
        b"POST /session HTTP/1.1\r\nHost: w\r\nTransfer-Encoding: chunked"
        b"\r\n\r\nzz\r\n",
    ],
    ids=["request-line", "huge-header", "bad-length", "bad-chunk"],
)
@pytest_twisted.ensureDeferred
async def test_a_request_that_is_not_http_gets_a_json_400(worker, garbage):
    def send():
        with socket.create_connection(("127.0.0.1", worker.port), timeout=5) as s:
            s.sendall(garbage)
            answer = b""
            while data := s.recv(65536):
                answer += data
            return answer

    status, headers, body = _status_and_body(await deferToThread(send))
    assert status == 400
    assert b"application/json" in headers
    assert json.loads(body)["error"] == "bad_request"


@pytest_twisted.ensureDeferred
async def test_a_silent_connection_is_closed():
    """A client that connects and sends nothing does not hold a connection."""
    api = SessionAPI(MemoryStore(), TOKEN.encode())
    site = SessionSite(api.resource(), body_limit=LIMIT, idle_seconds=0.5)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")

    def wait_for_close():
        with socket.create_connection(("127.0.0.1", port.getHost().port)) as s:
            s.settimeout(10)
            began = time.monotonic()
            assert s.recv(1024) == b""
            return time.monotonic() - began

    try:
        assert 0.3 < await deferToThread(wait_for_close) < 5
    finally:
        await port.stopListening()
