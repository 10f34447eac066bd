"""
Read-only sources for migrations: the Go worker's sqlite image, and our own
SQLite store opened without being changed.

The Go worker's sqlite image: C{<root>/<group>/<instance>.db},
each with a table C{creds(id, name, content)} that got one row per write.

Both are migration sources only: every write fails with L{StoreError}, and
the databases are opened read-only, so reading never changes them.
"""

import json
import os
import sqlite3
from urllib.request import pathname2url

from twisted.internet.defer import Deferred
from zope.interface import implementer

from session_daemon.store import (
    InstanceNotFound,
    ISessionStore,
    KeyNotFound,
    StoreError,
)
from session_daemon.store.sql import Queries
from session_daemon.store.threaded import ReadOnlyStore

_SUFFIX = ".db"

_queries = Queries("?")


@implementer(ISessionStore)
class GoSQLiteStore(ReadOnlyStore):
    """The groups, instances and latest key values of a Go sqlite volume."""

    backend = "go-sqlite"

    def __init__(self, root: str, threads: int = 4, reactor=None) -> None:
        super().__init__(threads, reactor)
        self.root = root
        self.description = f"go-sqlite:{root}"

    def startService(self) -> None:
        """Refuse a root that is not a folder, then start."""
        if not os.path.isdir(self.root):
            raise StoreError(f"cannot open {self.description}: not a folder")
        super().startService()

    def list_groups(self) -> Deferred:
        return self._run(self._list_groups)

    def list_instances(self, group) -> Deferred:
        return self._run(self._list_instances, group)

    def list_keys(self, group, instance) -> Deferred:
        return self._run(self._list_keys, group, instance)

    def read_key(self, group, instance, key) -> Deferred:
        return self._run(self._read_key, group, instance, key)

    def check(self) -> Deferred:
        return self._run(self._list_groups)

    # The blocking work, run in the pool.

    def _list_groups(self) -> list[str]:
        return sorted(
            entry.name
            for entry in os.scandir(self.root)
            if entry.is_dir() and not entry.name.startswith(".")
        )

    def _list_instances(self, group: str) -> list[str]:
        if not _plain(group):
            return []
        try:
            entries = list(os.scandir(os.path.join(self.root, group)))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(
            entry.name[: -len(_SUFFIX)]
            for entry in entries
            if entry.name.endswith(_SUFFIX) and entry.is_file()
        )

    def _list_keys(self, group: str, instance: str) -> list[str]:
        rows = self._query(
            group,
            instance,
            "SELECT DISTINCT name FROM creds WHERE name IS NOT NULL",
        )
        return sorted(name for (name,) in rows)

    def _read_key(self, group: str, instance: str, key: str) -> bytes:
        try:
            rows = self._query(
                group,
                instance,
                "SELECT content FROM creds WHERE name = ? ORDER BY id DESC LIMIT 1",
                key,
            )
        except InstanceNotFound:
            raise KeyNotFound(key) from None
        if not rows:
            raise KeyNotFound(key)
        return _value(rows[0][0])

    # XXX: one connection per read: simple and safe across threads, but each
    # key of a migration pays for opening its instance's database.
    def _query(self, group: str, instance: str, query: str, *args) -> list:
        path = os.path.join(self.root, group, instance + _SUFFIX)
        if not (_plain(group) and _plain(instance) and os.path.isfile(path)):
            raise InstanceNotFound(instance)
        connection = _read_only_connection(path)
        try:
            return connection.execute(query, args).fetchall()
        finally:
            connection.close()


def _plain(name: str) -> bool:
    # The old worker joined names into paths as they were; a name that is
    # not one path segment can only point somewhere else.
    return bool(name) and "/" not in name and name not in (".", "..")


def _value(content) -> bytes:
    """The value's JSON text, from the C{content} the old worker stored."""
    if isinstance(content, bytes):
        content = content.decode("utf-8", errors="surrogateescape")
    if not isinstance(content, str):
        # SQLite gave the column NUMERIC affinity: a bare number came back
        # as one.  Its text is the value.
        return str(content).encode("utf-8")
    try:
        decoded = json.loads(content)
    except ValueError:
        # Not JSON at all: handed on as it is, for the migration to refuse.
        return content.encode("utf-8", errors="surrogateescape")
    if isinstance(decoded, str):
        return decoded.encode("utf-8", errors="surrogateescape")
    # A client that sent data as a JSON value rather than as a string.
    return content.encode("utf-8")


@implementer(ISessionStore)
class SQLiteSource(ReadOnlyStore):
    """
    Our own SQLite store, opened read-only as a migration source: unlike
    L{session_daemon.store.sqlite.SQLiteStore}, it neither creates the file
    nor upgrades its schema.
    """

    backend = "sqlite"

    def __init__(self, path: str, threads: int = 4, reactor=None) -> None:
        super().__init__(threads, reactor)
        self.path = path
        self.description = f"sqlite:{path}"

    def startService(self) -> None:
        """Refuse a file that is not there, then start."""
        if not os.path.isfile(self.path):
            raise StoreError(f"cannot open {self.description}: no such file")
        super().startService()

    def list_groups(self) -> Deferred:
        return self._run(self._query, _queries.list_groups)

    def list_instances(self, group) -> Deferred:
        return self._run(self._query, _queries.list_instances, group)

    def list_keys(self, group, instance) -> Deferred:
        return self._run(self._query, _queries.list_keys, group, instance)

    def read_key(self, group, instance, key) -> Deferred:
        return self._run(self._read_key, group, instance, key)

    def check(self) -> Deferred:
        return self._run(self._query, _queries.check)

    def _read_key(self, group: str, instance: str, key: str) -> bytes:
        value = self._query(_queries.read_key, group, instance, key)
        if value is None:
            raise KeyNotFound(key)
        return value

    def _query(self, operation, *args):
        connection = _read_only_connection(self.path)
        try:
            return operation(connection.cursor(), *args)
        finally:
            connection.close()


def _read_only_connection(path: str) -> sqlite3.Connection:
    # mode=ro: a migration source is never written, not even by a recovery
    # of its journal.
    uri = f"file:{pathname2url(os.path.abspath(path))}?mode=ro"
    return sqlite3.connect(uri, uri=True)
