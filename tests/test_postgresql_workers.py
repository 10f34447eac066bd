"""
Two workers on one PostgreSQL database, over real HTTP: the same answers
through either, and the database stopped and started under load.
"""

import http.client
import json
import signal
import time

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from tests import postgres
from tests.corpus import INSTANCE_NAMES, KEYS
from tests.worker import InProcessWorker, TwistdWorker, call, free_port

TOKEN = "two-workers-token"
AUTH = {"apikey": TOKEN}


@pytest.fixture
def workers(tmp_path, monkeypatch, no_proxy_env):
    """Two in-process workers on this run's database, emptied first."""
    url = postgres.database_url()
    postgres.allow_connections()
    postgres.empty(url)
    monkeypatch.chdir(tmp_path)
    running = [InProcessWorker(token=TOKEN, store=url).start() for _ in range(2)]
    yield running
    for worker in running:
        pytest_twisted.blockon(worker.stop())


async def _call(worker, method, path, body=None, headers=AUTH):
    return await call(worker, method, path, body, headers)


def _sleep(seconds: float):
    return deferLater(reactor, seconds, lambda: None)


@pytest_twisted.ensureDeferred
async def test_either_worker_gives_the_same_answers(workers):
    """What is written through one worker reads back alike through both."""
    one, other = workers
    assert (await _call(one, "POST", "/session", {"group": "g"}))[0] == 204
    for n, instance in enumerate(INSTANCE_NAMES):
        worker = workers[n % 2]
        answer = await _call(worker, "POST", "/session/g", {"instance": instance})
        assert answer[0] == 204
    instance = INSTANCE_NAMES[0]
    for n, (key, value) in enumerate(KEYS.items()):
        path = f"/session/g/{instance}/{key}"
        assert (await _call(workers[n % 2], "POST", path, {"data": value}))[0] == 204

    for key, value in KEYS.items():
        path = f"/session/g/{instance}/{key}"
        assert await _call(one, "GET", path) == (200, value.encode())
        assert await _call(other, "GET", path) == (200, value.encode())
    listed = await _call(one, "GET", "/session/g/list-instances")
    assert listed == await _call(other, "GET", "/session/g/list-instances")
    assert json.loads(listed[1]) == sorted(INSTANCE_NAMES)

    assert (await _call(other, "DELETE", f"/session/g/{instance}"))[0] == 200
    assert (await _call(one, "GET", f"/session/g/{instance}/creds"))[0] == 404
    assert (await _call(one, "POST", f"/session/g/{instance}/creds", {"data": "1"}))[
        0
    ] == 404


@pytest_twisted.ensureDeferred
async def test_creating_one_instance_through_both_workers_at_once(workers):
    answers = await gatherResults(
        [
            ensureDeferred(
                _call(workers[n % 2], "POST", "/session/g", {"instance": "i"})
            )
            for n in range(10)
        ]
    )
    assert [status for status, _ in answers] == [204] * 10
    assert await _call(workers[0], "GET", "/session/g/list-instances") == (
        200,
        b'["i"]',
    )


@pytest.fixture
def server_restarted():
    """Whatever a test does to the server, it is running again afterwards."""
    yield
    postgres.start_server()


class _Load:
    """Writers that each store new keys, one after another, and keep score."""

    def __init__(self, workers) -> None:
        self.workers = workers
        self.running = True
        self.acknowledged: dict[str, str] = {}
        self.attempted: dict[str, str] = {}
        self.unavailable: list[float] = []
        self.other: list[tuple[int, bytes]] = []

    async def writer(self, worker, name: str) -> None:
        n = 0
        while self.running:
            key = f"pre-key-{name}-{n}"
            value = json.dumps({"keyId": n, "pad": name * 2000})
            self.attempted[key] = value
            began = time.monotonic()
            status, body = await _call(
                worker, "POST", f"/session/g/i/{key}", {"data": value}
            )
            if status == 204:
                self.acknowledged[key] = value
            elif status == 503 and json.loads(body)["statusCode"] == 503:
                self.unavailable.append(time.monotonic() - began)
            else:
                self.other.append((status, body))
            n += 1
            await _sleep(0.005)

    def start(self):
        return gatherResults(
            [
                ensureDeferred(self.writer(worker, f"{w}{k}"))
                for w, worker in enumerate(self.workers)
                for k in "ab"
            ]
        )


async def _until_healthy(worker, timeout: float) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if (await _call(worker, "GET", "/health", headers={}))[0] == 200:
            return time.monotonic() - began
        await _sleep(0.1)
    raise AssertionError(f"{worker.url} did not recover in {timeout}s")


@pytest_twisted.ensureDeferred
async def test_the_database_stopped_and_started_under_load(workers, server_restarted):
    """Fast 503s while it is away, recovery alone, no acknowledged write lost."""
    for worker in workers:
        assert (await _call(worker, "POST", "/session/g", {"instance": "i"}))[0] == 204
    load = _Load(workers)
    writing = load.start()
    await _sleep(1.0)
    before = len(load.acknowledged)

    await deferToThread(postgres.take_server)
    await deferToThread(postgres.stop_server)
    try:
        await _sleep(3.0)
        for worker in workers:
            status, body = await _call(worker, "GET", "/health", headers={})
            assert (status, json.loads(body)) == (503, {"status": "unavailable"})
    finally:
        await deferToThread(postgres.start_server)
        postgres.give_back_server()

    for worker in workers:
        await _until_healthy(worker, 15)
    during = len(load.acknowledged)
    await _sleep(1.0)
    load.running = False
    await writing

    assert before > 0 and len(load.acknowledged) > during
    assert load.other == []
    assert load.unavailable, "no request met the outage"
    assert max(load.unavailable) < 2.5
    for key, value in load.acknowledged.items():
        for worker in workers:
            assert await _call(worker, "GET", f"/session/g/i/{key}") == (
                200,
                value.encode(),
            )
    # A write answered 503 may or may not have been committed; if it was,
    # it is whole.
    for key in load.attempted.keys() - load.acknowledged.keys():
        status, body = await _call(workers[0], "GET", f"/session/g/i/{key}")
        assert status == 404 or body == load.attempted[key].encode()


def _get(port: int, path: str, headers=None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_twistd_starts_while_the_database_is_away(tmp_path):
    """The worker serves 503 until PostgreSQL lets it in, then serves."""
    url = postgres.database_url()
    postgres.allow_connections()
    postgres.empty(url)
    postgres.refuse_connections()
    password_url = url.replace("postgres@", "postgres:hunter2@", 1)
    worker = TwistdWorker(
        tmp_path, free_port(), GLOBAL_AUTH_TOKEN=TOKEN, STORE=password_url
    )
    try:
        worker.start()
        assert _get(worker.port, "/health")[0] == 503
        status, body = _get(worker.port, "/session/g/list-instances", AUTH)
        assert (status, json.loads(body)["error"]) == (503, "unavailable")

        postgres.allow_connections()
        deadline = time.monotonic() + 10
        while _get(worker.port, "/health")[0] != 200:
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.1)
        assert _get(worker.port, "/session/g/list-instances", AUTH) == (200, b"[]")
    finally:
        postgres.allow_connections()
        # twistd ends a graceful stop by dying of the SIGTERM it handled.
        assert worker.stop() == -signal.SIGTERM
    assert "hunter2" not in worker.log()
    assert "postgres:***@" in worker.log()
