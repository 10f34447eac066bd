"""
The HTTP contract of PROTOCOL.md, in memory: a real Klein resource and a
real store, requests through L{treq.testing.StubTreq}, no sockets.
"""

import json
from urllib.parse import quote

import pytest
from treq.testing import StubTreq

from session_daemon.store.memory import MemoryStore
from session_daemon.web import SessionAPI
from tests.corpus import INSTANCE_NAMES, KEYS, PLAIN_VALUES

TOKEN = "s3cret-token"
AUTH = {"apikey": TOKEN}


class Client:
    """Requests against one API, answered synchronously."""

    def __init__(self, api: SessionAPI) -> None:
        self.api = api
        self.stub = StubTreq(api.resource())

    def request(self, method, path, body=None, headers=AUTH):
        """Send a request; return (status, headers, body bytes)."""
        if isinstance(body, dict | list):
            body = json.dumps(body).encode()
        answers = []
        d = self.stub.request(
            method, "http://worker.test" + path, data=body, headers=headers
        )
        d.addCallback(
            lambda r: self.stub.content(r).addCallback(
                lambda content: answers.append((r.code, r.headers, content))
            )
        )
        d.addErrback(answers.append)
        self.stub.flush()
        assert len(answers) == 1, answers
        if not isinstance(answers[0], tuple):
            answers[0].raiseException()
        return answers[0]

    def status(self, *args, **kwargs) -> int:
        return self.request(*args, **kwargs)[0]

    def json(self, *args, **kwargs):
        status, headers, body = self.request(*args, **kwargs)
        assert headers.getRawHeaders("content-type") == ["application/json"]
        return status, json.loads(body)


@pytest.fixture
def memory():
    return MemoryStore()


@pytest.fixture
def client(memory):
    return Client(SessionAPI(memory, TOKEN.encode(), body_limit=64 * 1024))


@pytest.fixture
def paired(client):
    """A client whose group C{g} holds an instance C{i}."""
    assert client.status("POST", "/session", {"group": "g"}) == 204
    assert client.status("POST", "/session/g", {"instance": "i"}) == 204
    return client


def _write(client, key, data, instance="i"):
    return client.status("POST", f"/session/g/{instance}/{key}", {"data": data})


def _everything(memory) -> dict:
    """All a memory store holds, to compare before and after a refusal."""
    return json.loads(json.dumps(memory._groups, default=lambda value: value.decode()))


# The open routes.


def test_options_ping_answers_exactly_pong_without_an_apikey(client):
    status, headers, body = client.request("OPTIONS", "/ping", headers={})
    assert (status, body) == (200, b"pong")


def test_get_ping_answers_pong(client):
    assert client.request("GET", "/ping", headers={})[2] == b"pong"


def test_health_is_ok_while_the_store_answers(client):
    assert client.json("GET", "/health", headers={}) == (200, {"status": "ok"})


def test_health_is_503_when_the_store_does_not_answer(client, memory):
    memory.broken = True
    assert client.json("GET", "/health", headers={})[0] == 503


# The client's whole life, as the API servers drive it.


def test_a_paired_session_is_stored_and_read_back_identical(paired):
    """Creds and keys of every Baileys type read back exactly as written."""
    for key, value in KEYS.items():
        assert _write(paired, key, value) == 204
    for key, value in KEYS.items():
        status, headers, body = paired.request("GET", f"/session/g/i/{key}")
        assert status == 200
        assert body == value.encode()
        assert headers.getRawHeaders("content-type") == ["application/json"]


def test_plain_json_values_round_trip(paired):
    """Strings, arrays and numbers come back as JSON, not as null."""
    for n, value in enumerate(PLAIN_VALUES):
        assert _write(paired, f"lid-mapping-{n}", value) == 204
        assert paired.request("GET", f"/session/g/i/lid-mapping-{n}")[2] == (
            value.encode()
        )


def test_data_given_as_a_json_value_is_stored_as_its_json_text(paired):
    assert _write(paired, "device-list-1", ["0", "12"]) == 204
    assert _write(paired, "creds", {"me": {"name": "São"}}) == 204
    assert paired.request("GET", "/session/g/i/device-list-1")[2] == b'["0","12"]'
    body = paired.request("GET", "/session/g/i/creds")[2]
    assert json.loads(body) == {"me": {"name": "São"}}


def test_a_key_with_slashes_is_kept_whole(paired):
    """app-state-sync-key ids are base64: '/' in the key is part of it."""
    assert _write(paired, "app-state-sync-key-AA//kQ==", '{"k":1}') == 204
    assert paired.request("GET", "/session/g/i/app-state-sync-key-AA//kQ==")[2] == (
        b'{"k":1}'
    )
    assert paired.status("GET", "/session/g/i/app-state-sync-key-AA/kQ==") == 404
    assert paired.status("GET", "/session/g/i/app-state-sync-key-AA") == 404


def test_percent_encoded_names_are_decoded_one_segment_at_a_time(paired):
    """An encoded slash in an instance name does not split the path."""
    assert paired.status("POST", "/session/g", {"instance": "a/b"}) == 204
    assert paired.status("POST", "/session/g/a%2Fb/creds", {"data": "1"}) == 204
    assert paired.request("GET", "/session/g/a%2Fb/creds")[2] == b"1"
    assert paired.status("GET", "/session/g/a/b/creds") == 404


def test_instance_names_chosen_by_end_users_work(paired):
    """Spaces and non-ASCII letters arrive percent-encoded and are decoded."""
    for name in INSTANCE_NAMES:
        assert paired.status("POST", "/session/g", {"instance": name}) == 204
        path = f"/session/g/{quote(name, safe='')}/creds"
        assert paired.status("POST", path, {"data": "{}"}) == 204
        assert paired.status("GET", path) == 200
    listed = paired.json("GET", "/session/g/list-instances")[1]
    assert listed == sorted(INSTANCE_NAMES + ["i"])


def test_a_key_written_twice_reads_back_the_second_value(paired):
    _write(paired, "creds", '{"v":1}')
    _write(paired, "creds", '{"v":2}')
    assert paired.request("GET", "/session/g/i/creds")[2] == b'{"v":2}'


def test_a_missing_key_is_404_json(paired):
    assert paired.json("GET", "/session/g/i/pre-key-7") == (
        404,
        {
            "statusCode": 404,
            "message": "key 'pre-key-7' not found",
            "error": "not_found",
        },
    )


def test_writing_into_a_missing_instance_is_404_and_stores_nothing(paired, memory):
    before = _everything(memory)
    status, body = paired.json("POST", "/session/g/gone/creds", {"data": "{}"})
    assert (status, body["error"]) == (404, "not_found")
    assert _everything(memory) == before


def test_creating_what_exists_answers_204_again(paired):
    _write(paired, "creds", "{}")
    assert paired.status("POST", "/session", {"group": "g"}) == 204
    assert paired.status("POST", "/session/g", {"instance": "i"}) == 204
    assert paired.request("GET", "/session/g/i/creds")[2] == b"{}"


def test_creating_an_instance_creates_its_group(client):
    assert client.status("POST", "/session/new", {"instance": "i"}) == 204
    assert client.json("GET", "/session/new/list-instances") == (200, ["i"])


def test_listing_is_sorted_and_includes_instances_without_keys(paired):
    for name in ("zeta", "alpha", "Beta"):
        paired.status("POST", "/session/g", {"instance": name})
    assert paired.json("GET", "/session/g/list-instances") == (
        200,
        ["Beta", "alpha", "i", "zeta"],
    )


def test_an_unknown_group_lists_nothing(client):
    assert client.json("GET", "/session/nobody/list-instances") == (200, [])


def test_deleting_a_key_answers_200_and_it_is_gone(paired):
    _write(paired, "pre-key-1", "{}")
    assert paired.status("DELETE", "/session/g/i/pre-key-1") == 200
    assert paired.status("GET", "/session/g/i/pre-key-1") == 404


def test_removing_an_instance_removes_its_keys(paired):
    _write(paired, "creds", "{}")
    assert paired.json("DELETE", "/session/g/i")[0] == 200
    assert paired.json("GET", "/session/g/list-instances") == (200, [])
    assert paired.status("GET", "/session/g/i/creds") == 404
    assert _write(paired, "creds", "{}") == 404


def test_removing_a_group_removes_its_instances(paired):
    _write(paired, "creds", "{}")
    assert paired.json("DELETE", "/session/g")[0] == 200
    assert paired.json("GET", "/session/g/list-instances") == (200, [])
    assert paired.status("GET", "/session/g/i/creds") == 404


def test_deletes_of_what_is_not_there_answer_200(client):
    assert client.status("DELETE", "/session/nobody") == 200
    assert client.status("DELETE", "/session/nobody/none") == 200
    assert client.status("DELETE", "/session/nobody/none/creds") == 200


def test_an_instance_named_list_instances_can_still_be_removed(paired):
    paired.status("POST", "/session/g", {"instance": "list-instances"})
    assert paired.status("DELETE", "/session/g/list-instances") == 200
    assert paired.json("GET", "/session/g/list-instances") == (200, ["i"])


# The apikey.

GUARDED = [
    ("POST", "/session", {"group": "g"}),
    ("POST", "/session/g", {"instance": "i"}),
    ("DELETE", "/session/g", None),
    ("GET", "/session/g/list-instances", None),
    ("DELETE", "/session/g/i", None),
    ("GET", "/session/g/i/creds", None),
    ("POST", "/session/g/i/creds", {"data": "{}"}),
    ("DELETE", "/session/g/i/creds", None),
]


@pytest.mark.parametrize("method,path,body", GUARDED)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"apikey": "wrong"},
        {"apikey": ""},
        {"apikey": TOKEN + "x"},
        {"Authorization": f"Bearer {TOKEN}"},
    ],
    ids=["missing", "wrong", "empty", "longer", "bearer-only"],
)
def test_every_session_route_refuses_a_missing_or_wrong_apikey(
    paired, memory, method, path, body, headers
):
    _write(paired, "creds", '"secret"')
    before = _everything(memory)
    status, answer = paired.json(method, path, body, headers=headers)
    assert status == 401
    assert answer["error"] == "unauthorized"
    assert b"secret" not in json.dumps(answer).encode()
    assert _everything(memory) == before


# Names are data.

BAD_NAMES = {
    "dotdot": "..",
    "dot": ".",
    "encoded-dotdot": "%2e%2e",
    "encoded-dot": "%2E",
    "nul": "a%00b",
    "control": "a%0Ab",
    "delete": "a%7Fb",
    "bad-utf8": "%ff%fe",
    "empty": "",
}
LONG = {"group": "g" * 129, "instance": "i" * 129, "key": "k" * 513}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
@pytest.mark.parametrize("position", ["group", "instance", "key"])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_a_traversal_name_in_any_position_is_refused_and_changes_nothing(
    paired, memory, name, position, method
):
    _write(paired, "creds", "{}")
    before = _everything(memory)
    names = {"group": "g", "instance": "i", "key": "creds", position: name}
    path = "/session/{group}/{instance}/{key}".format(**names)
    body = {"data": "{}"} if method == "POST" else None
    status = paired.status(method, path, body)
    # An empty key is an empty last segment; an empty group or instance
    # shifts the path, which the router may also refuse as 404 or 405.
    assert status in ((400,) if name else (400, 404, 405))
    assert _everything(memory) == before


@pytest.mark.parametrize("position", ["group", "instance", "key"])
def test_an_over_long_name_is_refused(paired, memory, position):
    before = _everything(memory)
    names = {"group": "g", "instance": "i", "key": "creds", position: LONG[position]}
    path = "/session/{group}/{instance}/{key}".format(**names)
    status, body = paired.json("POST", path, {"data": "{}"})
    assert (status, body["error"]) == (400, "bad_request")
    assert _everything(memory) == before


def test_names_at_the_limit_are_accepted(paired):
    group, instance, key = "g" * 128, "é" * 64, "k" * 512
    assert paired.status("POST", f"/session/{group}", {"instance": instance}) == 204
    path = f"/session/{group}/{instance}/{key}"
    assert paired.status("POST", path, {"data": "1"}) == 204
    assert paired.request("GET", path)[2] == b"1"


@pytest.mark.parametrize(
    "body",
    [
        {"group": ".."},
        {"group": ""},
        {"group": "a\u0000b"},
        {"group": 7},
        {"group": None},
        {"group": "g" * 129},
    ],
)
def test_a_bad_group_name_in_the_body_is_refused(client, memory, body):
    status, answer = client.json("POST", "/session", body)
    assert (status, answer["error"]) == (400, "bad_request")
    assert memory._groups == {}


@pytest.mark.parametrize("name", ["..", ".", "", "a\u0001b", "\ud800"])
def test_a_bad_instance_name_in_the_body_is_refused(paired, memory, name):
    before = _everything(memory)
    body = json.dumps({"instance": name}).encode()
    assert paired.json("POST", "/session/g", body)[0] == 400
    assert _everything(memory) == before


# Bad bodies.

BAD_WRITE_BODIES = {
    "not-json": b"{not json",
    "not-an-object": b'["data"]',
    "no-data": b'{"value": "{}"}',
    "data-not-json-text": b'{"data": "{not json"}',
    "data-empty-string": b'{"data": ""}',
    "data-nan": b'{"data": "NaN"}',
    "nan-value": b'{"data": NaN}',
    "lone-surrogate": b'{"data": "\\"\\ud800\\""}',
    "not-utf8": b'{"data": "\xff"}',
    "empty": b"",
}


@pytest.mark.parametrize("body", BAD_WRITE_BODIES.values(), ids=BAD_WRITE_BODIES.keys())
def test_a_bad_write_body_is_400_and_changes_nothing(paired, memory, body):
    _write(paired, "creds", '{"old":true}')
    before = _everything(memory)
    status, answer = paired.json("POST", "/session/g/i/creds", body)
    assert (status, answer["statusCode"], answer["error"]) == (400, 400, "bad_request")
    assert _everything(memory) == before


def test_a_create_without_its_field_is_400(paired):
    assert paired.json("POST", "/session", {"name": "g"})[0] == 400
    assert paired.json("POST", "/session/g", {"group": "g"})[0] == 400


def test_a_body_over_the_limit_is_413_and_changes_nothing(paired, memory):
    before = _everything(memory)
    big = {"data": json.dumps("x" * (64 * 1024))}
    status, answer = paired.json("POST", "/session/g/i/creds", big)
    assert (status, answer["error"]) == (413, "payload_too_large")
    assert _everything(memory) == before


# Unknown paths and wrong methods.


@pytest.mark.parametrize("path", ["/", "/nope", "/sessions", "/session-x", "/ping/x"])
def test_an_unknown_path_is_404_cannot_method_path(client, path):
    assert client.json("GET", path) == (
        404,
        {"statusCode": 404, "message": f"Cannot GET {path}", "error": "not_found"},
    )


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/session"),
        ("DELETE", "/session"),
        ("GET", "/session/g"),
        ("PUT", "/session/g"),
        ("POST", "/session/g/i"),
        ("GET", "/session/g/i"),
        ("POST", "/session/g/list-instances"),
        ("PUT", "/session/g/i/creds"),
        ("PATCH", "/session/g/i/creds"),
        ("POST", "/health"),
        ("DELETE", "/ping"),
    ],
)
def test_a_known_path_with_a_wrong_method_is_405(paired, method, path):
    status, headers, body = paired.request(method, path)
    assert status == 405
    assert json.loads(body)["error"] == "method_not_allowed"
    assert headers.getRawHeaders("allow")


def test_a_store_failure_is_503_json_without_details(paired, memory):
    memory.broken = True
    status, headers, body = paired.request("GET", "/session/g/i/creds")
    assert status == 503
    answer = json.loads(body)
    assert answer["error"] == "unavailable"
    assert "Traceback" not in body.decode() and "/" not in answer["message"]
