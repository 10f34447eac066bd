"""
The PostgreSQL server the tests use: a database of this run's own, dropped
when the run ends, and the server stopped and started for outage tests.

Without a reachable server, PostgreSQL tests are skipped with the reason;
with C{SESSION_WORKER_REQUIRE_PG=1} (as in CI) they fail instead.
"""

import fcntl
import glob
import os
import secrets
import subprocess
import tempfile
import time

import psycopg
import pytest

from session_daemon.store.registry import redact

#: Where the server is, as a user allowed to create databases.
ADMIN_URL = os.environ.get(
    "SESSION_WORKER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRED = os.environ.get("SESSION_WORKER_REQUIRE_PG") == "1"

_TABLES = ("session_keys", "session_instances", "session_groups", "session_schema")

#: Runs on this machine share the server: each holds this file locked
#: (shared) while it uses the server, and a run stops the server only while
#: it holds the lock alone, so that it never breaks another run's tests.
LOCK_PATH = os.path.join(tempfile.gettempdir(), "session-worker-tests-pg.lock")

_database: str | None = None
_unreachable: str | None = None
_lock = None


def _use_server() -> None:
    global _lock
    if _lock is None:
        _lock = open(LOCK_PATH, "a")  # noqa: SIM115 - held until the run ends
        fcntl.flock(_lock, fcntl.LOCK_SH)


def take_server(timeout: float = 180.0) -> None:
    """Wait (up to C{timeout}) until no other run uses the server."""
    _use_server()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fcntl.flock(_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            time.sleep(0.2)


def give_back_server() -> None:
    """Let other runs use the server again."""
    fcntl.flock(_lock, fcntl.LOCK_SH)


def _admin(database: str | None = None):
    url = ADMIN_URL if database is None else _url_for(database)
    return psycopg.connect(url, autocommit=True, connect_timeout=3)


def _url_for(database: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


def _unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"{reason}, and SESSION_WORKER_REQUIRE_PG=1", pytrace=False)
    pytest.skip(reason)


def database_url() -> str:
    """The URL of this run's own database, created on first use."""
    global _database, _unreachable
    if _unreachable is not None:
        _unavailable(_unreachable)
    if _database is None:
        _use_server()
        name = f"session_worker_test_{os.getpid()}_{secrets.token_hex(4)}"
        try:
            with _admin() as connection:
                connection.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
            _unreachable = f"no PostgreSQL server at {redact(ADMIN_URL)}: {first}"
            _unavailable(_unreachable)
        _database = name
    return _url_for(_database)


def drop_database() -> None:
    """Drop this run's database, if one was made; the run's last step."""
    global _database
    if _database is None:
        return
    wait_until_accepting()
    with _admin() as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{_database}" WITH (FORCE)')
    _database = None


def refuse_connections() -> None:
    """Cut this run's database off: its sessions ended, new ones refused."""
    with _admin() as connection:
        connection.execute(f'ALTER DATABASE "{_database}" ALLOW_CONNECTIONS false')
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (_database,),
        )


def allow_connections() -> None:
    """Undo L{refuse_connections}."""
    with _admin() as connection:
        connection.execute(f'ALTER DATABASE "{_database}" ALLOW_CONNECTIONS true')


def empty(url: str) -> None:
    """Drop every table of the store at C{url}, its schema version included."""
    with psycopg.connect(url, autocommit=True, connect_timeout=3) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {', '.join(_TABLES)} CASCADE")


def _cluster() -> list[str]:
    versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
    if not versions:
        _unavailable("no PostgreSQL cluster under /etc/postgresql to stop and start")
    return [versions[-1], "main"]


def _pg_ctlcluster(action: str) -> None:
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", *_cluster(), action]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def stop_server() -> None:
    """Stop the server (fast shutdown: sessions are cut, as in a crash)."""
    _pg_ctlcluster("stop")


def start_server() -> None:
    """Start the server again and wait until it accepts connections."""
    try:
        _pg_ctlcluster("start")
    except subprocess.CalledProcessError as e:
        # "already running" is fine; anything else shows in the wait below.
        if b"already running" not in (e.stderr or b"") + (e.stdout or b""):
            raise
    wait_until_accepting()


def wait_until_accepting(timeout: float = 30.0) -> None:
    """Return once the server accepts connections; fail after C{timeout}."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with _admin() as connection:
                connection.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
