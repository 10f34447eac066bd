"""The embedded store: one SQLite database file in WAL mode."""

import os
import sqlite3

from twisted.enterprise.adbapi import ConnectionPool
from twisted.logger import Logger

from session_daemon.store import StoreError
from session_daemon.store.batch import WriteQueue
from session_daemon.store.legacy import hint_migration
from session_daemon.store.reads import ReadQueue
from session_daemon.store.sql import Queries, SQLStore

_log = Logger()

#: Each schema version and the statements that lead to it from the one before.
MIGRATIONS = {
    1: [
        "CREATE TABLE session_groups (name TEXT NOT NULL PRIMARY KEY)",
        "CREATE TABLE session_instances ("
        " group_name TEXT NOT NULL,"
        " name TEXT NOT NULL,"
        " PRIMARY KEY (group_name, name))",
        "CREATE TABLE session_keys ("
        " group_name TEXT NOT NULL,"
        " instance_name TEXT NOT NULL,"
        " name TEXT NOT NULL,"
        " value BLOB NOT NULL,"
        " PRIMARY KEY (group_name, instance_name, name))",
    ],
}
SCHEMA_VERSION = max(MIGRATIONS)


def migrate(path: str) -> int:
    """
    Create or upgrade the database at C{path} to L{SCHEMA_VERSION}; return
    the version it had.  The version lives in SQLite's C{user_version}.
    """
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("BEGIN IMMEDIATE")
        found = connection.execute("PRAGMA user_version").fetchone()[0]
        if found > SCHEMA_VERSION:
            connection.execute("ROLLBACK")
            raise StoreError(
                f"{path} has schema version {found}, newer than this "
                f"release's {SCHEMA_VERSION}; run a newer session-worker"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
        return found
    finally:
        connection.close()


def _configure(connection) -> None:
    # FULL: a 204 is only sent once the commit is on disk, so an
    # acknowledged write survives a power cut, not only a process crash.
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=5000")


class SQLiteStore(SQLStore):
    """
    Groups, instances and keys in one SQLite file.

    Reads go through a pool of C{threads} connections; writes go through a
    single connection that commits them in batches (L{WriteQueue}), so that
    writers never wait on each other and, WAL being on, readers never wait
    on writers.
    """

    backend = "sqlite"
    queries = Queries("?")

    def __init__(self, path: str, threads: int = 4, reactor=None) -> None:
        self.path = path
        self.description = f"sqlite:{path}"
        self._threads = threads
        self._reactor = reactor

    def startService(self) -> None:
        """Create the file and its folder if needed, migrate it, open pools."""
        # Done before serving and before the reactor runs under twistd, so
        # that a store that cannot be opened stops the start with its reason
        # rather than leaving a worker that refuses every request.
        try:
            folder = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(folder, exist_ok=True)
            found = migrate(self.path)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open {self.description}: {e}") from None
        if found < SCHEMA_VERSION:
            _log.info(
                "SQLite store {path} migrated from schema {found} to {version}",
                path=self.path,
                found=found,
                version=SCHEMA_VERSION,
            )
        hint_migration(self.path)

        common = dict(
            check_same_thread=False,
            isolation_level=None,
            cp_openfun=_configure,
            cp_noisy=False,
        )
        if self._reactor is not None:
            common["cp_reactor"] = self._reactor
        self._readers = ConnectionPool(
            "sqlite3", self.path, cp_min=1, cp_max=self._threads, **common
        )
        self._writer = ConnectionPool(
            "sqlite3", self.path, cp_min=1, cp_max=1, **common
        )
        # Two lanes measured best: more hand off smaller batches, one lets a
        # slow read (a large value, a long listing) hold up every other.
        self._reads = ReadQueue(self._readers, lanes=min(2, self._threads))
        self._writes = WriteQueue(self._writer, self.backend, begin="BEGIN IMMEDIATE")
        super().startService()

    def _failed(self, failure, what: str):
        if not failure.check(sqlite3.Error):
            return failure
        _log.failure("SQLite {what} failed", failure, what=what)
        raise StoreError(f"sqlite {what} failed")
