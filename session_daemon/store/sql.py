"""
The SQL every relational store shares: one table each for groups, instances
and keys, and the operations on them as functions of a DB-API cursor.

Queries are written with C{?} placeholders; L{Queries} rewrites them for a
driver whose paramstyle differs.  The upserts (C{ON CONFLICT}) are understood
by SQLite 3.24+ and PostgreSQL 9.5+ alike.  A server database shared by
several workers passes a row-lock clause (C{FOR KEY SHARE}) so that a key
write holds its instance until it commits, and says whether its foreign keys
cascade deletes (then removing an instance or group is one statement, taking
the instance's lock before its keys', the order writers take them in).
"""

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from zope.interface import implementer

from session_daemon.store import InstanceNotFound, ISessionStore, KeyNotFound

_QUERIES = {
    "create_group": (
        "INSERT INTO session_groups (name) VALUES (?) ON CONFLICT (name) DO NOTHING"
    ),
    "create_instance": (
        "INSERT INTO session_instances (group_name, name) VALUES (?, ?) "
        "ON CONFLICT (group_name, name) DO NOTHING"
    ),
    "instance_exists": (
        "SELECT 1 FROM session_instances WHERE group_name = ? AND name = ?"
    ),
    "write_key": (
        "INSERT INTO session_keys (group_name, instance_name, name, value) "
        "VALUES (?, ?, ?, ?) "
        "ON CONFLICT (group_name, instance_name, name) "
        "DO UPDATE SET value = excluded.value"
    ),
    "read_key": (
        "SELECT value FROM session_keys "
        "WHERE group_name = ? AND instance_name = ? AND name = ?"
    ),
    "delete_key": (
        "DELETE FROM session_keys "
        "WHERE group_name = ? AND instance_name = ? AND name = ?"
    ),
    "delete_instance_keys": (
        "DELETE FROM session_keys WHERE group_name = ? AND instance_name = ?"
    ),
    "delete_instance": (
        "DELETE FROM session_instances WHERE group_name = ? AND name = ?"
    ),
    "delete_group_keys": "DELETE FROM session_keys WHERE group_name = ?",
    "delete_group_instances": "DELETE FROM session_instances WHERE group_name = ?",
    "delete_group": "DELETE FROM session_groups WHERE name = ?",
    "list_groups": "SELECT name FROM session_groups",
    "list_instances": "SELECT name FROM session_instances WHERE group_name = ?",
    "list_keys": (
        "SELECT name FROM session_keys WHERE group_name = ? AND instance_name = ?"
    ),
    "check": "SELECT 1 FROM session_groups LIMIT 1",
}


class Queries:
    """The shared queries and operations, for one driver's paramstyle."""

    def __init__(
        self, placeholder: str = "?", instance_lock: str = "", cascade: bool = False
    ) -> None:
        self._cascade = cascade
        self._sql = {
            name: query.replace("?", placeholder) for name, query in _QUERIES.items()
        }
        self._sql["lock_instance"] = (
            f"{self._sql['instance_exists']} {instance_lock}".rstrip()
        )

    # Writes: run inside one transaction by a WriteQueue.

    def create_group(self, cursor, group):
        cursor.execute(self._sql["create_group"], (group,))

    def create_instance(self, cursor, group, instance):
        cursor.execute(self._sql["create_group"], (group,))
        cursor.execute(self._sql["create_instance"], (group, instance))

    def write_key(self, cursor, group, instance, key, value):
        cursor.execute(self._sql["lock_instance"], (group, instance))
        if cursor.fetchone() is None:
            return InstanceNotFound(instance)
        cursor.execute(self._sql["write_key"], (group, instance, key, value))

    def delete_key(self, cursor, group, instance, key):
        cursor.execute(self._sql["delete_key"], (group, instance, key))

    def delete_instance(self, cursor, group, instance):
        if not self._cascade:
            cursor.execute(self._sql["delete_instance_keys"], (group, instance))
        cursor.execute(self._sql["delete_instance"], (group, instance))

    def delete_group(self, cursor, group):
        if not self._cascade:
            cursor.execute(self._sql["delete_group_keys"], (group,))
            cursor.execute(self._sql["delete_group_instances"], (group,))
        cursor.execute(self._sql["delete_group"], (group,))

    # Reads.

    def read_key(self, cursor, group, instance, key):
        cursor.execute(self._sql["read_key"], (group, instance, key))
        row = cursor.fetchone()
        return None if row is None else bytes(row[0])

    def list_groups(self, cursor):
        cursor.execute(self._sql["list_groups"])
        return sorted(name for (name,) in cursor.fetchall())

    def list_instances(self, cursor, group):
        cursor.execute(self._sql["list_instances"], (group,))
        return sorted(name for (name,) in cursor.fetchall())

    def list_keys(self, cursor, group, instance):
        cursor.execute(self._sql["instance_exists"], (group, instance))
        if cursor.fetchone() is None:
            raise InstanceNotFound(instance)
        cursor.execute(self._sql["list_keys"], (group, instance))
        return sorted(name for (name,) in cursor.fetchall())

    def check(self, cursor):
        cursor.execute(self._sql["check"])
        cursor.fetchall()


@implementer(ISessionStore)
class SQLStore(Service):
    """
    The store interface over L{Queries}, for every relational backend: a
    backend sets C{queries}, opens its pools when started, and says what
    its driver's errors mean.
    """

    queries: Queries

    #: Set by a backend's C{startService}: a pool of reading connections and
    #: the L{ReadQueue} over it, one writing connection and its L{WriteQueue}.
    _readers = _reads = _writer = _writes = None

    def stopService(self) -> Deferred:
        """Let queued writes commit, then close both pools."""
        super().stopService()
        d = self._writes.drain()
        d.addCallback(lambda _: self._close_pools())
        return d

    def _close_pools(self) -> None:
        self._readers.close()
        self._writer.close()

    def _write(self, operation, *args) -> Deferred:
        """Run C{operation(cursor, *args)} in a write transaction."""
        return self._writes.submit(operation, *args)

    def _read(self, operation, *args) -> Deferred:
        """Run C{operation(cursor, *args)} as a read."""
        d = self._reads.submit(operation, *args)
        d.addErrback(self._failed, operation.__name__)
        return d

    def _failed(self, failure, what: str):
        """Turn a driver's error into a logged L{StoreError}."""
        raise NotImplementedError

    def create_group(self, group) -> Deferred:
        return self._write(self.queries.create_group, group)

    def delete_group(self, group) -> Deferred:
        return self._write(self.queries.delete_group, group)

    def create_instance(self, group, instance) -> Deferred:
        return self._write(self.queries.create_instance, group, instance)

    def delete_instance(self, group, instance) -> Deferred:
        return self._write(self.queries.delete_instance, group, instance)

    def write_key(self, group, instance, key, value) -> Deferred:
        return self._write(self.queries.write_key, group, instance, key, value)

    def delete_key(self, group, instance, key) -> Deferred:
        return self._write(self.queries.delete_key, group, instance, key)

    def list_groups(self) -> Deferred:
        return self._read(self.queries.list_groups)

    def list_instances(self, group) -> Deferred:
        return self._read(self.queries.list_instances, group)

    def list_keys(self, group, instance) -> Deferred:
        return self._read(self.queries.list_keys, group, instance)

    def read_key(self, group, instance, key) -> Deferred:
        d = self._read(self.queries.read_key, group, instance, key)
        d.addCallback(_found, key)
        return d

    def check(self) -> Deferred:
        return self._read(self.queries.check)


def _found(value, key):
    if value is None:
        raise KeyNotFound(key)
    return value
