"""
The shared store: one PostgreSQL database that several workers use at once.

Nothing is cached in the worker, so what one worker commits is what every
other reads next.  Across workers, correctness rests on PostgreSQL's locks:
upserts for racing writes and creates, and foreign keys that cascade deletes
so that no key outlives its instance.
"""

import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from twisted.enterprise.adbapi import Connection, ConnectionLost, ConnectionPool
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from session_daemon.store import StoreError
from session_daemon.store.batch import WriteQueue
from session_daemon.store.reads import ReadQueue
from session_daemon.store.registry import redact
from session_daemon.store.sql import Queries, SQLStore

_log = Logger()

#: Each schema version and the statements that lead to it from the one before.
MIGRATIONS = {
    1: [
        "CREATE TABLE session_groups (name TEXT NOT NULL PRIMARY KEY)",
        "CREATE TABLE session_instances ("
        " group_name TEXT NOT NULL"
        "  REFERENCES session_groups (name) ON DELETE CASCADE,"
        " name TEXT NOT NULL,"
        " PRIMARY KEY (group_name, name))",
        "CREATE TABLE session_keys ("
        " group_name TEXT NOT NULL,"
        " instance_name TEXT NOT NULL,"
        " name TEXT NOT NULL,"
        " value BYTEA NOT NULL,"
        " PRIMARY KEY (group_name, instance_name, name),"
        " FOREIGN KEY (group_name, instance_name)"
        "  REFERENCES session_instances (group_name, name) ON DELETE CASCADE)",
    ],
}
SCHEMA_VERSION = max(MIGRATIONS)

#: The advisory lock that lets one worker at a time create or upgrade tables.
MIGRATION_LOCK = 0x5E55_1047

#: Connection parameters a store URL may override.  They bound how long a
#: request can wait on a database that has gone away: a refused or silent
#: connect, a dead peer, a stuck statement.
# XXX: a host cut off from the network mid-statement is only noticed after
# tcp_user_timeout or the keepalive probes (5 to 16 seconds), and a server
# that hangs while its kernel still answers TCP (a frozen postmaster) not at
# all: requests in flight wait that long, or until it thaws, instead of
# getting their 503 within the 2 seconds a stopped server costs.
# XXX: each pending connect holds one of the pool's threads for up to
# connect_timeout; with a blackholed host and more requests than threads,
# later requests queue behind them and take a multiple of 2 seconds.
CONNECTION_DEFAULTS = {
    "connect_timeout": "2",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "5000",
    "application_name": "session-worker",
    "options": "-c statement_timeout=5000 -c idle_in_transaction_session_timeout=60000",
}

#: Failures that only mean a transaction met another worker's; run it again.
_CONCURRENT = (
    errors.DeadlockDetected,
    errors.SerializationFailure,
    errors.ForeignKeyViolation,
)


def connection_string(url: str) -> str:
    """
    The libpq connection string for the store C{url}, with our timeouts
    wherever the URL does not set its own; L{ValueError} if it is no URL.
    """
    try:
        parameters = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        # psycopg's own message may quote the URL, password included.
        raise ValueError(
            f"{redact(url)!r} is not a PostgreSQL URL "
            "(postgresql://user:password@host:port/database)"
        ) from None
    for name, value in CONNECTION_DEFAULTS.items():
        parameters.setdefault(name, value)
    return make_conninfo("", **parameters)


def migrate(cursor) -> int:
    """
    Create or upgrade the tables to L{SCHEMA_VERSION} and return the version
    found; workers starting together take turns on an advisory lock.
    """
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
    cursor.execute("CREATE TABLE IF NOT EXISTS session_schema (version INTEGER)")
    cursor.execute("SELECT max(version) FROM session_schema")
    found = cursor.fetchone()[0] or 0
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"the database has schema version {found}, newer than this "
            f"release's {SCHEMA_VERSION}; run a newer session-worker"
        )

    for version in range(found + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[version]:
            cursor.execute(statement)
    if found < SCHEMA_VERSION:
        cursor.execute("DELETE FROM session_schema")
        cursor.execute(
            "INSERT INTO session_schema (version) VALUES (%s)", (SCHEMA_VERSION,)
        )
    return found


class _Connection(Connection):
    """A pooled connection, dropped without ceremony once it is broken."""

    # XXX: a connection the server closed while it sat idle in the pool is
    # only found dead when next used, so after a database restart each
    # pooled connection still open fails one request (503) before it is
    # replaced.

    def rollback(self) -> None:
        # adbapi would try a rollback and a probe query on a dead connection
        # and log a traceback for each; dropping it is enough for the next
        # operation on this thread to connect afresh.
        if self._connection.broken or self._connection.closed:
            self._pool.disconnect(self._connection)
            return
        super().rollback()


class _Pool(ConnectionPool):
    """An adbapi pool of psycopg connections."""

    connectionFactory = _Connection


class PostgreSQLStore(SQLStore):
    """
    Groups, instances and keys in a PostgreSQL database.

    Reads share a pool of C{pool_size} connections in autocommit mode (one
    round trip a read, no transaction to end), the reads that wait sharing a
    thread hand-off (L{ReadQueue}); this worker's writes are committed in
    batches by a L{WriteQueue} on a connection of their own.  The store
    starts whether or not the database answers: until it does, every
    operation fails with L{StoreError}, and the first that reaches it
    creates the tables.
    """

    backend = "postgresql"
    queries = Queries("%s", instance_lock="FOR KEY SHARE", cascade=True)

    def __init__(self, url: str, pool_size: int = 4, reactor=None) -> None:
        self.description = redact(url)
        self._conninfo = connection_string(url)
        self._pool_size = pool_size
        self._reactor = reactor
        self._schema_ready = False
        self._migrating = None
        self._waiting_for_schema: list[Deferred] = []

    def startService(self) -> None:
        """Open the pool and try, without waiting, to create the tables."""
        options = dict(cp_min=1, cp_reconnect=True, cp_noisy=False)
        if self._reactor is not None:
            options["cp_reactor"] = self._reactor
        # The WriteQueue runs one transaction at a time: one connection is
        # all it can use.
        self._writer = _Pool("psycopg", self._conninfo, cp_max=1, **options)
        self._readers = _Pool(
            "psycopg",
            self._conninfo,
            autocommit=True,
            cp_max=self._pool_size,
            **options,
        )
        self._reads = ReadQueue(
            self._readers,
            lanes=min(2, self._pool_size),
            fatal=(psycopg.OperationalError, psycopg.InterfaceError),
        )
        self._writes = WriteQueue(
            self._writer,
            self.backend,
            retry_if=lambda failure: failure.check(*_CONCURRENT) is not None,
            quiet=(psycopg.OperationalError, ConnectionLost),
        )
        super().startService()
        self._ready().addErrback(lambda _: None)

    def _write(self, operation, *args) -> Deferred:
        write = super()._write
        return self._ready().addCallback(lambda _: write(operation, *args))

    def _read(self, operation, *args) -> Deferred:
        read = super()._read
        return self._ready().addCallback(lambda _: read(operation, *args))

    def _failed(self, failure, what: str):
        if failure.check(psycopg.OperationalError, ConnectionLost):
            # The database is away: one line, not a traceback per request.
            _log.warn(
                "PostgreSQL {what} failed: {reason}",
                what=what,
                reason=_first_line(failure),
            )
        elif failure.check(psycopg.Error):
            _log.failure("PostgreSQL {what} failed", failure, what=what)
        else:
            return failure
        raise StoreError(f"postgresql {what} failed")

    # The schema, made once the database answers.

    def _ready(self) -> Deferred:
        """Fire once the tables exist, trying to create them if need be."""
        if self._schema_ready:
            return succeed(None)
        waiting = Deferred()
        self._waiting_for_schema.append(waiting)
        if self._migrating is None:
            self._migrating = self._writer.runInteraction(migrate)
            self._migrating.addBoth(self._migrated)
        return waiting

    def _migrated(self, result) -> None:
        self._migrating = None
        waiting, self._waiting_for_schema = self._waiting_for_schema, []
        if isinstance(result, Failure):
            _log.warn(
                "PostgreSQL store {store} is not ready: {reason}",
                store=self.description,
                reason=_first_line(result),
            )
            for d in waiting:
                d.errback(StoreError(f"{self.description} is not ready"))
            return

        self._schema_ready = True
        if result < SCHEMA_VERSION:
            _log.info(
                "PostgreSQL store {store} migrated from schema {found} to {version}",
                store=self.description,
                found=result,
                version=SCHEMA_VERSION,
            )
        for d in waiting:
            d.callback(None)


def _first_line(failure: Failure) -> str:
    lines = failure.getErrorMessage().strip().splitlines()
    return lines[0] if lines else failure.type.__name__
