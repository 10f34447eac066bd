"""Group commit: the writes waiting for a database share one transaction."""

from collections import deque

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from session_daemon.store import StoreError

_log = Logger()


class WriteQueue:
    """
    Run write operations one transaction at a time, in arrival order, with
    every operation that arrived while the previous transaction ran sharing
    the next one.

    Under bursty load this turns many commits (and their fsyncs) into one,
    and since only one transaction writes at a time, writers never wait for
    each other's locks.  An operation is a function of a DB-API cursor; it
    returns its result, or an exception instance for an expected refusal
    (which fails only its own Deferred).  An unexpected error rolls back the
    whole batch and fails every operation in it with L{StoreError}.

    A database shared with other writers may abort a transaction that met a
    concurrent one (a deadlock, a serialization failure); C{retry_if} tells
    such failures apart, and the batch is then run again, up to C{attempts}
    times in all.  Operations must therefore be safe to run again.
    Failures of the C{quiet} types (a database that is away) are logged in
    one line each rather than with a traceback, which would bury the log.
    """

    def __init__(
        self,
        pool,
        backend: str,
        begin: str | None = None,
        max_batch: int = 256,
        retry_if=None,
        attempts: int = 3,
        quiet: tuple = (),
    ) -> None:
        self._quiet = quiet
        self._pool = pool
        self._begin = begin
        self._retry_if = retry_if
        self._attempts = attempts
        self._backend = backend
        self._max_batch = max_batch
        self._waiting: deque = deque()
        self._running = False
        self._idle: list[Deferred] = []

    def submit(self, operation, *args) -> Deferred:
        """Queue C{operation(cursor, *args)}; fire with its result once committed."""
        done = Deferred()
        self._waiting.append((operation, args, done))
        if not self._running:
            self._run_next()
        return done

    def drain(self) -> Deferred:
        """Fire once every queued write has been committed or failed."""
        done = Deferred()
        if self._running:
            self._idle.append(done)
        else:
            done.callback(None)
        return done

    def _run_next(self) -> None:
        if not self._waiting:
            self._running = False
            idle, self._idle = self._idle, []
            for done in idle:
                done.callback(None)
            return

        self._running = True
        count = min(len(self._waiting), self._max_batch)
        batch = [self._waiting.popleft() for _ in range(count)]
        operations = [(operation, args) for operation, args, _ in batch]

        d = self._transaction(operations, self._attempts)
        d.addCallbacks(self._committed, self._failed, (batch,), None, (batch,))
        d.addBoth(lambda _: self._run_next())

    def _transaction(self, operations, attempts: int) -> Deferred:
        d = self._pool.runInteraction(_apply, self._begin, operations)
        if self._retry_if is not None and attempts > 1:
            d.addErrback(self._retry, operations, attempts - 1)
        return d

    def _retry(self, failure, operations, attempts: int):
        if not self._retry_if(failure):
            return failure
        _log.info(
            "A {backend} write transaction met a concurrent one ({reason}); "
            "running it again",
            backend=self._backend,
            reason=failure.type.__name__,
        )
        return self._transaction(operations, attempts)

    def _committed(self, results, batch) -> None:
        for (_, _, done), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                done.errback(result)
            else:
                done.callback(result)

    def _failed(self, failure, batch) -> None:
        if self._quiet and failure.check(*self._quiet):
            _log.warn(
                "A {backend} write transaction of {count} operations failed: {reason}",
                backend=self._backend,
                count=len(batch),
                reason=failure.getErrorMessage().strip().split("\n")[0],
            )
        else:
            _log.failure(
                "A {backend} write transaction of {count} operations failed",
                failure,
                backend=self._backend,
                count=len(batch),
            )
        for _, _, done in batch:
            done.errback(StoreError(f"{self._backend} write failed"))


def _apply(cursor, begin, operations):
    if begin is not None:
        cursor.execute(begin)
    return [operation(cursor, *args) for operation, args in operations]
