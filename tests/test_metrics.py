"""
GET /metrics: Prometheus series labelled by route template, never by name,
behind the apikey (or a Bearer token), counting exactly what was asked.
"""

import json

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq

from session_daemon import __version__
from session_daemon.metrics import WorkerMetrics
from session_daemon.store import KeyNotFound, StoreError
from session_daemon.store.measured import OPERATIONS, MeasuredStore
from session_daemon.store.memory import MemoryStore
from session_daemon.web import SessionAPI
from tests.worker import InProcessWorker, call

TOKEN = "metrics-s3cret-token"
AUTH = {"apikey": TOKEN}

#: Names a client chose: none may reach a label or the exposition.
INSTANCE = "Loja Centro 5511987654321"
KEY = "app-state-sync-key-AAAAAPj/kQ=="
MISSING_KEY = "pre-key-4242"


def _samples(exposition: bytes) -> dict:
    """(sample name, sorted labels) -> value, from the Prometheus text format."""
    samples = {}
    for family in text_string_to_metric_families(exposition.decode("utf-8")):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples[sample.name, labels] = sample.value
    return samples


def _requests(samples: dict) -> dict:
    """(route, method, status) -> count, of the request counter."""
    return {
        (labels["route"], labels["method"], labels["status"]): value
        for (name, pairs), value in samples.items()
        if name == "session_worker_http_requests_total"
        for labels in [dict(pairs)]
    }


@pytest.fixture
def worker(tmp_path, monkeypatch, no_proxy_env):
    monkeypatch.chdir(tmp_path)
    running = InProcessWorker(token=TOKEN, store="memory:", **{"body-size": "1"})
    running.start()
    yield running
    pytest_twisted.blockon(running.stop())


async def _call(worker, method, path, body=None, headers=AUTH):
    return await call(worker, method, path, body, headers)


async def _status(worker, method, path, body=None, headers=AUTH) -> int:
    return (await _call(worker, method, path, body, headers))[0]


async def _a_known_day(worker) -> None:
    """What an API server does, with one of each refusal."""
    instance = f"/session/g/{INSTANCE.replace(' ', '%20')}"
    key, missing = f"{instance}/{KEY}", f"{instance}/{MISSING_KEY}"
    too_large = json.dumps({"data": "x" * (2 * 1024 * 1024)}).encode()

    assert await _status(worker, "OPTIONS", "/ping", headers={}) == 200
    assert await _status(worker, "GET", "/health", headers={}) == 200
    assert await _status(worker, "POST", "/session", {"group": "g"}) == 204
    assert await _status(worker, "POST", "/session/g", {"instance": INSTANCE}) == 204
    for n in range(3):
        assert await _status(worker, "POST", key, {"data": str(n)}) == 204
    for _ in range(2):
        assert await _status(worker, "GET", key) == 200
    assert await _status(worker, "GET", missing) == 404
    assert await _status(worker, "GET", "/session/g/list-instances") == 200
    assert await _status(worker, "GET", missing, headers={}) == 401
    assert await _status(worker, "GET", f"/{INSTANCE}/{KEY}") == 404
    assert await _status(worker, "POST", key, too_large) == 413
    assert await _status(worker, "DELETE", instance) == 200


@pytest_twisted.ensureDeferred
async def test_a_scrape_counts_a_known_sequence_of_requests_exactly(worker):
    """Every request is counted once under its route template and status."""
    await _a_known_day(worker)
    assert await _status(worker, "GET", "/metrics", headers={}) == 401

    status, exposition = await _call(
        worker, "GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )

    assert status == 200
    key_route = "/session/{group}/{instance}/{key}"
    assert _requests(_samples(exposition)) == {
        ("/ping", "OPTIONS", "200"): 1,
        ("/health", "GET", "200"): 1,
        ("/session", "POST", "204"): 1,
        ("/session/{group}", "POST", "204"): 1,
        (key_route, "POST", "204"): 3,
        (key_route, "GET", "200"): 2,
        (key_route, "GET", "404"): 1,
        (key_route, "GET", "401"): 1,
        (key_route, "POST", "413"): 1,
        ("/session/{group}/list-instances", "GET", "200"): 1,
        ("unmatched", "GET", "404"): 1,
        ("/session/{group}/{instance}", "DELETE", "200"): 1,
        ("/metrics", "GET", "401"): 1,
    }


@pytest_twisted.ensureDeferred
async def test_store_operations_latency_and_errors_by_backend(worker):
    """Reads are timed by backend; a missing key is not a store error."""
    await _a_known_day(worker)

    _, exposition = await _call(worker, "GET", "/metrics")
    samples = _samples(exposition)

    def store(series, operation):
        labels = (("backend", "memory"), ("operation", operation))
        return samples[series, labels]

    duration = "session_worker_store_operation_duration_seconds_count"
    assert store(duration, "read_key") == 3
    assert store(duration, "write_key") == 3
    assert store(duration, "check") == 1
    for operation in OPERATIONS:
        assert store("session_worker_store_errors_total", operation) == 0


@pytest_twisted.ensureDeferred
async def test_latency_is_observed_per_route_template(worker):
    await _a_known_day(worker)

    _, exposition = await _call(worker, "GET", "/metrics")

    histogram = "session_worker_http_request_duration_seconds_count"
    key_reads = (("method", "GET"), ("route", "/session/{group}/{instance}/{key}"))
    # Two reads, one miss, one refusal.
    assert _samples(exposition)[histogram, key_reads] == 4


@pytest_twisted.ensureDeferred
async def test_requests_in_flight_and_build_information(worker):
    assert await _status(worker, "GET", "/ping") == 200

    _, exposition = await _call(worker, "GET", "/metrics")
    samples = _samples(exposition)

    # The scrape itself is the one request in flight while it is answered.
    assert samples["session_worker_http_requests_in_flight", ()] == 1
    build = [labels for name, labels in samples if name == "session_worker_build_info"]
    assert len(build) == 1
    assert dict(build[0])["version"] == __version__


@pytest_twisted.ensureDeferred
async def test_no_instance_or_key_name_reaches_a_label(worker):
    await _a_known_day(worker)

    _, exposition = await _call(worker, "GET", "/metrics")

    values = {value for _, labels in _samples(exposition) for _, value in labels}
    for name in (INSTANCE, "Loja", KEY, "kQ==", MISSING_KEY):
        assert not any(name in value for value in values)
        assert name.encode() not in exposition
        assert name.replace(" ", "%20").encode() not in exposition
    assert TOKEN.encode() not in exposition


# In memory: who may scrape.


@pytest.fixture
def stub():
    return StubTreq(SessionAPI(MemoryStore(), TOKEN.encode()).resource())


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"apikey": "wrong"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer"},
    ],
    ids=["none", "wrong apikey", "wrong bearer", "other scheme", "empty bearer"],
)
async def test_a_scrape_without_the_token_is_refused_as_json(stub, headers):
    response = await stub.get("http://worker.test/metrics", headers=headers)

    assert response.code == 401
    assert response.headers.getRawHeaders("content-type") == ["application/json"]
    document = json.loads(await response.content())
    assert document["statusCode"] == 401
    assert document["error"] == "unauthorized"


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "headers",
    [AUTH, {"Authorization": f"Bearer {TOKEN}"}, {"authorization": f"bearer {TOKEN}"}],
    ids=["apikey", "bearer", "bearer in lower case"],
)
async def test_a_scrape_with_the_token_gets_the_text_format(stub, headers):
    response = await stub.get("http://worker.test/metrics", headers=headers)

    assert response.code == 200
    (content_type,) = response.headers.getRawHeaders("content-type")
    assert content_type.startswith("text/plain; version=")
    assert b"session_worker_build_info{" in await response.content()


def test_two_workers_in_one_process_keep_their_own_series():
    first, second = WorkerMetrics(), WorkerMetrics()

    first.request_answered("/ping", b"GET", 200, 0.001)

    assert _requests(_samples(first.exposition())) == {("/ping", "GET", "200"): 1}
    assert _requests(_samples(second.exposition())) == {}


def test_an_unknown_method_is_labelled_other():
    metrics = WorkerMetrics()

    metrics.request_answered("unmatched", b"BREW", 405, 0.001)

    assert _requests(_samples(metrics.exposition())) == {
        ("unmatched", "other", "405"): 1
    }


# The measuring store, over any backend.


@pytest_twisted.ensureDeferred
async def test_a_failing_store_operation_is_counted_as_an_error():
    memory = MemoryStore()
    metrics = WorkerMetrics()
    measured = MeasuredStore(memory, metrics)
    memory.broken = True

    with pytest.raises(StoreError):
        await measured.read_key("g", "i", "creds")

    samples = _samples(metrics.exposition())
    labels = (("backend", "memory"), ("operation", "read_key"))
    assert samples["session_worker_store_errors_total", labels] == 1
    duration = "session_worker_store_operation_duration_seconds_count"
    assert samples[duration, labels] == 1


@pytest_twisted.ensureDeferred
async def test_a_missing_key_is_an_answer_not_a_store_error():
    metrics = WorkerMetrics()
    measured = MeasuredStore(MemoryStore(), metrics)

    with pytest.raises(KeyNotFound):
        await measured.read_key("g", "i", "creds")

    samples = _samples(metrics.exposition())
    labels = (("backend", "memory"), ("operation", "read_key"))
    assert samples["session_worker_store_errors_total", labels] == 0


@pytest_twisted.ensureDeferred
async def test_the_measuring_store_hands_back_what_the_backend_answers():
    """Values pass through byte for byte; the wrapper adds nothing."""
    memory = MemoryStore()
    measured = MeasuredStore(memory, WorkerMetrics())
    await measured.create_instance("g", "i")

    await measured.write_key("g", "i", "creds", b'{"a": 1}')

    assert await measured.read_key("g", "i", "creds") == b'{"a": 1}'
    assert await measured.list_instances("g") == ["i"]
    assert measured.backend == "memory"
    assert measured.description == memory.description


@pytest_twisted.ensureDeferred
async def test_a_wrong_method_is_counted_under_its_route(worker):
    """POST /ping is a 405 of /ping, not a request to an unknown path."""
    assert await _status(worker, "POST", "/ping", b"") == 405

    _, exposition = await _call(worker, "GET", "/metrics")

    assert _requests(_samples(exposition)) == {("/ping", "POST", "405"): 1}
