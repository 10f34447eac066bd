"""
The worker as operators run it: C{twistd -n session-worker} in a process of
its own, started, stopped with SIGTERM, and killed with SIGKILL.
"""

import hashlib
import json
import signal
import socket
import subprocess
import threading
import time

import pytest

from tests.worker import TWISTD, TwistdWorker, free_port, request, twistd_environment

TOKEN = "process-token-0123456789"

#: twistd ends by the signal it was stopped with, as its own convention.
STOPPED_BY_SIGTERM = -signal.SIGTERM


def _request(port, method, path, body=None, timeout=10):
    return request(port, TOKEN, method, path, body, timeout)


def _refusal(tmp_path, **variables):
    result = subprocess.run(
        TWISTD,
        cwd=tmp_path,
        env=twistd_environment(**variables),
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.returncode, result.stdout + result.stderr


def test_without_a_token_the_worker_refuses_to_start_with_one_line(tmp_path):
    status, output = _refusal(tmp_path)
    assert status != 0
    assert output.strip().splitlines() == [
        "session-worker: GLOBAL_AUTH_TOKEN is not set: set it (or --token) "
        "to the apikey the API servers send"
    ]
    assert not (tmp_path / "instances").exists()


@pytest.mark.parametrize(
    "variable,value",
    [("BODY_SIZE", "abc"), ("STORE", "redis:somewhere"), ("HTTP_LOGS", "sometimes")],
)
def test_a_bad_setting_stops_start_up_naming_it(tmp_path, variable, value):
    status, output = _refusal(tmp_path, GLOBAL_AUTH_TOKEN=TOKEN, **{variable: value})
    assert status != 0
    lines = output.strip().splitlines()
    assert len(lines) == 1
    assert variable in lines[0] and value in lines[0]
    assert "Traceback" not in output


def test_a_store_that_cannot_be_opened_stops_start_up_in_one_line(tmp_path):
    (tmp_path / "occupied").write_text("a file where the folder should be")
    status, output = _refusal(
        tmp_path,
        GLOBAL_AUTH_TOKEN=TOKEN,
        STORE="sqlite:occupied/sessions.db",
        LISTEN=f"tcp:{free_port()}:interface=127.0.0.1",
    )
    assert status != 0
    assert "Traceback" not in output
    assert "session-worker: cannot open sqlite:occupied/sessions.db" in output


def test_start_up_logs_version_address_store_and_settings_without_the_token(
    tmp_path,
):
    worker = TwistdWorker(tmp_path, free_port(), GLOBAL_AUTH_TOKEN=TOKEN).start()
    try:
        assert _request(worker.port, "GET", "/health")[0] == 200
    finally:
        assert worker.stop() == STOPPED_BY_SIGTERM
    log = worker.log()
    assert "session-worker 1.0.0 starting on" in log
    assert f"port={worker.port}" in log
    assert "store sqlite:instances/sessions.db" in log
    assert "Setting GLOBAL_AUTH_TOKEN=<redacted>" in log
    assert "Setting BODY_SIZE=5" in log
    assert TOKEN not in log
    assert (tmp_path / "instances" / "sessions.db").is_file()


def test_access_lines_never_carry_the_apikey_or_a_value(tmp_path):
    worker = TwistdWorker(
        tmp_path, free_port(), GLOBAL_AUTH_TOKEN=TOKEN, HTTP_LOGS="true"
    ).start()
    try:
        _request(worker.port, "POST", "/session", {"group": "g"})
        _request(worker.port, "POST", "/session/g", {"instance": "i"})
        secret = '{"private":"do-not-log-me"}'
        assert (
            _request(worker.port, "POST", "/session/g/i/creds", {"data": secret})[0]
            == 204
        )
        assert _request(worker.port, "GET", "/session/g/i/creds")[1] == secret.encode()
        assert _request(worker.port, "GET", "/session/g/i/pre-key-9")[0] == 404
    finally:
        worker.stop()
    log = worker.log()
    assert "POST /session/g/i/creds 204" in log
    assert "GET /session/g/i/creds 200" in log
    assert "do-not-log-me" not in log
    assert TOKEN not in log
    # A missing key is the most common request, not an error.
    assert "Traceback" not in log and "Unhandled" not in log


def test_sigterm_lets_a_request_in_flight_finish(tmp_path):
    """A write whose body is still arriving at SIGTERM is stored and answered."""
    worker = TwistdWorker(tmp_path, free_port(), GLOBAL_AUTH_TOKEN=TOKEN).start()
    _request(worker.port, "POST", "/session/g", {"instance": "i"})
    body = json.dumps({"data": json.dumps({"v": "x" * 50_000})}).encode()
    with socket.create_connection(("127.0.0.1", worker.port), timeout=10) as s:
        s.sendall(
            b"POST /session/g/i/creds HTTP/1.1\r\nHost: w\r\n"
            + f"apikey: {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[:1000]
        )
        time.sleep(0.3)
        worker.process.terminate()
        time.sleep(0.5)
        s.sendall(body[1000:])
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 204")
    assert worker.process.wait(15) == STOPPED_BY_SIGTERM
    log = worker.log()
    assert "Received SIGTERM" in log
    assert "session-worker stopped" in log

    again = TwistdWorker(tmp_path, free_port(), GLOBAL_AUTH_TOKEN=TOKEN).start()
    try:
        assert _request(again.port, "GET", "/session/g/i/creds")[0] == 200
    finally:
        again.stop()


def _value(key: str, version: int) -> str:
    """A value that proves it is whole: its own digest is inside."""
    pad = (key * 200)[: 3000 + version % 1000]
    digest = hashlib.sha256(f"{key}:{version}:{pad}".encode()).hexdigest()
    return json.dumps({"key": key, "version": version, "pad": pad, "sha": digest})


def _is_whole(key: str, text: bytes) -> int:
    """The version of a whole value of C{key}; fail the test otherwise."""
    value = json.loads(text)
    expected = hashlib.sha256(
        f"{key}:{value['version']}:{value['pad']}".encode()
    ).hexdigest()
    assert value["key"] == key and value["sha"] == expected
    return value["version"]


def test_kill_9_during_heavy_writes_leaves_every_key_whole(tmp_path):
    """After SIGKILL mid-write, every acknowledged write is there, whole."""
    port = free_port()
    worker = TwistdWorker(tmp_path, port, GLOBAL_AUTH_TOKEN=TOKEN).start()
    _request(port, "POST", "/session/g", {"instance": "i"})

    acknowledged: dict[str, int] = {}
    attempted: dict[str, int] = {}
    stop = threading.Event()

    def writer(n: int) -> None:
        version = 0
        while not stop.is_set():
            key = f"session-55119{n:04d}{version % 25}.0"
            version += 1
            attempted[key] = version
            try:
                status, _ = _request(
                    port, "POST", f"/session/g/i/{key}", {"data": _value(key, version)}
                )
            except OSError:
                return
            if status == 204:
                acknowledged[key] = version

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in writers:
        thread.start()
    time.sleep(1.5)
    worker.kill()
    stop.set()
    for thread in writers:
        thread.join(15)
    assert len(acknowledged) > 50, "the load never got going"

    again = TwistdWorker(tmp_path, free_port(), GLOBAL_AUTH_TOKEN=TOKEN).start()
    try:
        for key in attempted:
            status, body = _request(again.port, "GET", f"/session/g/i/{key}")
            if key in acknowledged:
                assert status == 200, key
            if status == 200:
                version = _is_whole(key, body)
                assert acknowledged.get(key, 0) <= version <= attempted[key]
    finally:
        again.stop()
