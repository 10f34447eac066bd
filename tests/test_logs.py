"""
LOG_FORMAT=json: every log line one JSON object for log shippers, the token
and stored values kept out; text stays the default.
"""

import io
import json

import pytest
from twisted.logger import Logger, LogPublisher
from twisted.python.failure import Failure
from twisted.python.usage import UsageError
from twisted.scripts.twistd import ServerOptions

from session_daemon.config import ConfigError, resolve
from session_daemon.logs import json_observer
from tests.worker import TwistdWorker, free_port, request

TOKEN = "json-logs-token-5f0c2d9e"
#: A value written through the API: it must not reach the log either.
VALUE_MARK = "stored-value-4b1e77a0"


def _logged(emit) -> list[dict]:
    """The JSON objects one call of C{emit(log)} writes, parsed line by line."""
    out = io.StringIO()
    publisher = LogPublisher(json_observer(out))
    emit(Logger(namespace="session_daemon.test", observer=publisher))
    return [json.loads(line) for line in out.getvalue().splitlines()]


class _Request:
    """Stands in for an object a careless log call might pass along."""

    def __repr__(self) -> str:
        return f"<Request apikey={TOKEN}>"


def test_a_line_holds_time_level_message_and_plain_fields():
    (line,) = _logged(
        lambda log: log.info("Stored {key} for {instance}", key="creds", instance="i")
    )

    assert line["level"] == "info"
    assert line["namespace"] == "session_daemon.test"
    assert line["message"] == "Stored creds for i"
    assert line["key"] == "creds"
    assert line["instance"] == "i"
    assert line["timestamp"].endswith("Z")
    assert "T" in line["timestamp"]


def test_objects_and_secret_fields_are_never_dumped():
    """Only plain values become fields; secret names never do."""
    (line,) = _logged(
        lambda log: log.warn(
            "Refused a request",
            request=_Request(),
            token=TOKEN,
            apikey=TOKEN,
            value=VALUE_MARK,
            data=VALUE_MARK,
            status=401,
        )
    )

    assert line["level"] == "warn"
    assert line["status"] == 401
    text = json.dumps(line)
    assert TOKEN not in text
    assert VALUE_MARK not in text
    assert "request" not in line


def test_a_failure_is_logged_with_its_traceback():
    def emit(log):
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            log.failure("Unexpected error answering {path}", Failure(), path="/x")

    (line,) = _logged(emit)

    assert line["level"] == "critical"
    assert line["path"] == "/x"
    assert "ZeroDivisionError" in line["traceback"]
    assert line["error"] == "division by zero"


def test_a_field_that_is_not_a_finite_number_still_makes_valid_json():
    (line,) = _logged(lambda log: log.info("ratio {ratio}", ratio=float("nan")))
    assert line["ratio"] == "nan"


# LOG_FORMAT, resolved and applied under twistd.


def test_log_format_defaults_to_text():
    assert resolve({}, {"GLOBAL_AUTH_TOKEN": "t"}, {}).log_format == "text"


def test_log_format_json_is_logged_among_the_settings():
    settings = resolve({}, {"GLOBAL_AUTH_TOKEN": "t", "LOG_FORMAT": "JSON"}, {})
    assert settings.log_format == "json"
    assert settings.for_log()["LOG_FORMAT"] == "json"


def test_a_bad_log_format_names_the_variable_and_the_value():
    with pytest.raises(ConfigError, match="LOG_FORMAT='yaml'"):
        resolve({}, {"GLOBAL_AUTH_TOKEN": "t", "LOG_FORMAT": "yaml"}, {})


@pytest.fixture
def twistd_env(monkeypatch, tmp_path, no_proxy_env):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    monkeypatch.setenv("GLOBAL_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("STORE", "memory:")
    return monkeypatch


def _twistd(*argv: str) -> ServerOptions:
    options = ServerOptions()
    options.parseOptions([*argv, "session-worker"])
    return options


def test_json_makes_twistd_log_through_the_json_observer(twistd_env):
    twistd_env.setenv("LOG_FORMAT", "json")
    assert _twistd("-n")["logger"] is json_observer


def test_text_leaves_twistd_its_own_observer(twistd_env):
    assert _twistd("-n")["logger"] is None


def test_an_explicit_logger_beats_log_format(twistd_env):
    twistd_env.setenv("LOG_FORMAT", "json")
    chosen = _twistd("-n", "--logger=twisted.logger.textFileLogObserver")
    assert chosen["logger"] is not json_observer


@pytest.mark.parametrize(
    "argv", [(), ("-n", "--logfile=worker.log")], ids=["daemon", "logfile"]
)
def test_json_logs_refuse_a_destination_other_than_standard_output(twistd_env, argv):
    twistd_env.setenv("LOG_FORMAT", "json")
    with pytest.raises((UsageError, SystemExit), match="LOG_FORMAT=json"):
        _twistd(*argv)


# The real thing: twistd in a process of its own.


def _request(port, method, path, body=None, timeout=10):
    return request(port, TOKEN, method, path, body, timeout)


def test_a_twistd_worker_writes_only_json_lines_without_token_or_values(tmp_path):
    worker = TwistdWorker(
        tmp_path,
        free_port(),
        GLOBAL_AUTH_TOKEN=TOKEN,
        STORE=f"sqlite:{tmp_path / 'sessions.db'}",
        HTTP_LOGS="true",
        LOG_FORMAT="json",
    ).start()
    try:
        port = worker.port
        value = json.dumps({"noiseKey": VALUE_MARK})
        assert _request(port, "POST", "/session", {"group": "g"})[0] == 204
        assert _request(port, "POST", "/session/g", {"instance": "i"})[0] == 204
        assert _request(port, "POST", "/session/g/i/creds", {"data": value})[0] == 204
        assert _request(port, "GET", "/session/g/i/creds") == (200, value.encode())
        assert _request(port, "GET", "/session/g/i/pre-key-9")[0] == 404
    finally:
        worker.stop()

    text = worker.log()
    lines = [json.loads(line) for line in text.splitlines()]
    assert TOKEN not in text
    assert VALUE_MARK not in text
    for line in lines:
        assert {"timestamp", "level", "namespace", "message"} <= set(line)
    messages = [line["message"] for line in lines]
    assert any(m.startswith("session-worker ") for m in messages)
    assert "Setting GLOBAL_AUTH_TOKEN=<redacted>" in messages
    reads = [line for line in lines if line.get("path") == "/session/g/i/creds"]
    assert [(r["method"], r["status"]) for r in reads] == [("POST", 204), ("GET", 200)]
