"""Reads through a connection pool, the reads that wait sharing one thread hop."""

from collections import deque

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure


class ReadQueue:
    """
    Run read operations in a pool's threads, at most C{lanes} at a time, each
    lane taking every read that waits for it.

    Handing work to a thread and waking the reactor with its result costs
    more than a keyed SQLite read; under a burst (Baileys asks for thirty
    keys at once) the reads that arrive while the lanes are busy go in one
    hand-off instead of thirty.  When the worker is idle a read starts at
    once, alone, so nothing waits for a batch to fill.  An operation is a
    function of a DB-API cursor; an exception it raises fails only its own
    Deferred, except one of the C{fatal} types (a lost connection), which
    fails the whole batch so that the pool sees it and drops the connection.
    """

    def __init__(
        self, pool, lanes: int, max_batch: int = 64, fatal: tuple = ()
    ) -> None:
        self._pool = pool
        self._lanes = lanes
        self._fatal = fatal
        self._max_batch = max_batch
        self._busy = 0
        self._waiting: deque = deque()

    def submit(self, operation, *args) -> Deferred:
        """Queue C{operation(cursor, *args)}; fire with its result."""
        done = Deferred()
        self._waiting.append((operation, args, done))
        self._start_lanes()
        return done

    def _start_lanes(self) -> None:
        while self._waiting and self._busy < self._lanes:
            count = min(len(self._waiting), self._max_batch)
            batch = [self._waiting.popleft() for _ in range(count)]
            self._busy += 1
            d = self._pool.runWithConnection(
                _run, [(operation, args) for operation, args, _ in batch], self._fatal
            )
            d.addCallbacks(self._answered, self._failed, (batch,), None, (batch,))
            d.addBoth(self._lane_free)

    def _answered(self, results, batch) -> None:
        for (_, _, done), result in zip(batch, results, strict=True):
            if isinstance(result, Failure):
                done.errback(result)
            else:
                done.callback(result)

    def _failed(self, failure, batch) -> None:
        for _, _, done in batch:
            done.errback(failure)

    def _lane_free(self, _) -> None:
        self._busy -= 1
        self._start_lanes()


def _run(connection, reads, fatal):
    cursor = connection.cursor()
    results = []
    try:
        for operation, args in reads:
            try:
                results.append(operation(cursor, *args))
            except fatal:
                raise
            except Exception:
                results.append(Failure())
    finally:
        cursor.close()
    return results
