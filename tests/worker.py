"""Real workers for tests: in this process on a loopback port, or under twistd."""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import treq

from session_daemon.tap import Options, makeService
from tests.conftest import WORKER_VARIABLES

ROOT = Path(__file__).resolve().parent.parent

#: How the tests start the worker: twistd from this interpreter's Twisted.
TWISTD = [
    sys.executable,
    "-c",
    "from twisted.scripts.twistd import run; run()",
    "-n",
    "--pidfile=",
    "session-worker",
]


def worker_options(flags: dict[str, str]) -> Options:
    """Options parsed from C{flags} (option name -> value), as twistd would."""
    options = Options()
    argv = []
    for name, value in flags.items():
        argv.append(f"--{name}={value}")
    options.parseOptions(argv)
    return options


class InProcessWorker:
    """A worker made by the plugin's own makeService, served on loopback."""

    def __init__(self, **flags: str) -> None:
        flags.setdefault("listen", "tcp:0:interface=127.0.0.1")
        self.options = worker_options(flags)
        self.service = makeService(self.options)

    def start(self) -> "InProcessWorker":
        self.service.startService()
        port = self.service.listening.port.getHost().port
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        return self

    def stop(self):
        """Stop serving and close the store; fires when done."""
        return self.service.stopService()


def twistd_environment(**variables: str) -> dict[str, str]:
    """The environment of a twistd child: ours, the tree first on the path."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if name not in WORKER_VARIABLES
    }
    environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    environ.update(variables)
    return environ


class TwistdWorker:
    """C{twistd -n session-worker} in a child process, on a free port."""

    def __init__(self, cwd: Path, port: int, **variables: str) -> None:
        self.cwd = cwd
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = cwd / f"twistd-{port}.log"
        variables.setdefault("LISTEN", f"tcp:{port}:interface=127.0.0.1")
        self.environ = twistd_environment(**variables)
        self.process = None

    def start(self, timeout: float = 20.0) -> "TwistdWorker":
        """Start the child and wait until it answers /ping."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                TWISTD,
                cwd=self.cwd,
                env=self.environ,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"twistd exited early:\n{self.log()}")
            if _answers(self.port):
                return self
            time.sleep(0.05)
        self.process.kill()
        raise RuntimeError(f"twistd did not answer in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> int:
        """Send SIGTERM, wait for the exit, return the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: the crash no code of ours gets to see."""
        self.process.kill()
        self.process.wait(10)


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().read() == b"pong"
    except OSError:
        return False
    finally:
        connection.close()


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def call(worker, method, path, body=None, headers=None):
    """
    One request to a running worker over real HTTP, with treq; C{body} is
    sent as JSON unless it is bytes.  Fires with (status, body bytes).
    """
    data = (
        body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    )
    response = await treq.request(
        method, worker.url + path, data=data, headers=headers, persistent=False
    )
    return response.code, await response.content()


def request(port, token, method, path, body=None, timeout=10):
    """The same, blocking, with http.client: for tests that run no reactor."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=data, headers={"apikey": token})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
