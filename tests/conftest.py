"""Fixtures shared by the tests: every store backend, ready to use."""

import os
import shutil
import sqlite3

import pytest
import pytest_twisted
from twisted.internet.defer import maybeDeferred

from session_daemon.config import SETTINGS
from session_daemon.store.files import FilesStore
from session_daemon.store.memory import MemoryStore
from session_daemon.store.sqlite import SQLiteStore
from tests import postgres


class Backend:
    """How the store suite opens, breaks and reopens one kind of store."""

    name = "?"
    persistent = True

    def __init__(self, tmp_path) -> None:
        self.tmp_path = tmp_path

    def open(self):
        """A new, not yet started store; reopening keeps the same data."""
        raise NotImplementedError

    def break_store(self, store) -> None:
        """Make every later operation of C{store} fail as a real fault would."""
        raise NotImplementedError


class MemoryBackend(Backend):
    name = "memory"
    persistent = False

    def open(self):
        return MemoryStore()

    def break_store(self, store) -> None:
        store.broken = True


class SQLiteBackend(Backend):
    name = "sqlite"

    def open(self):
        return SQLiteStore(str(self.tmp_path / "db" / "sessions.db"), threads=2)

    def break_store(self, store) -> None:
        # What a lost or replaced database looks like to the worker: its
        # tables are gone.
        connection = sqlite3.connect(store.path)
        for table in ("session_keys", "session_instances", "session_groups"):
            connection.execute(f"DROP TABLE {table}")
        connection.commit()
        connection.close()


class PostgreSQLBackend(Backend):
    name = "postgresql"

    def __init__(self, tmp_path) -> None:
        super().__init__(tmp_path)
        # One database per run; each test starts it without tables.
        self.url = postgres.database_url()
        postgres.allow_connections()
        postgres.empty(self.url)

    def open(self):
        from session_daemon.store.postgresql import PostgreSQLStore

        return PostgreSQLStore(self.url, pool_size=2)

    def break_store(self, store) -> None:
        # The database goes away: the store's sessions are ended and new
        # ones refused, until the next test lets them in again.
        postgres.refuse_connections()


class FilesBackend(Backend):
    name = "files"

    def open(self):
        return FilesStore(str(self.tmp_path / "files"), threads=2)

    def break_store(self, store) -> None:
        # What an unmounted or replaced volume looks like to the worker: the
        # root folder is gone and a file stands in its place.
        shutil.rmtree(store.root)
        with open(store.root, "w") as file:
            file.write("not a folder")


#: Every backend the store suite runs against; later backends add themselves.
BACKENDS = [MemoryBackend, SQLiteBackend, PostgreSQLBackend, FilesBackend]


def pytest_sessionfinish(session, exitstatus):
    """Drop the run's own PostgreSQL database, if it made one."""
    postgres.drop_database()


@pytest.fixture(params=BACKENDS, ids=lambda backend: backend.name)
def backend(request, tmp_path):
    return request.param(tmp_path)


@pytest.fixture(
    params=[b for b in BACKENDS if b.persistent], ids=lambda backend: backend.name
)
def persistent_backend(request, tmp_path):
    """Each backend that keeps its data across a restart."""
    return request.param(tmp_path)


@pytest.fixture
def store(backend):
    """A started store of each backend, stopped after the test."""
    started = backend.open()
    started.startService()
    yield started
    if started.running:
        pytest_twisted.blockon(maybeDeferred(started.stopService))


#: Every variable the worker reads, which a test must not inherit.
WORKER_VARIABLES = frozenset(setting.variable for setting in SETTINGS)


@pytest.fixture
def no_proxy_env(monkeypatch):
    """An environment without the worker's variables, so tests set their own."""
    for name in list(os.environ):
        if name in WORKER_VARIABLES:
            monkeypatch.delenv(name)
