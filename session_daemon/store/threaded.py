"""The base of the stores whose blocking work runs in a thread pool of their own."""

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from session_daemon.store import InstanceNotFound, KeyNotFound, StoreError

_log = Logger()


class ThreadedStore(Service):
    """
    A store service owning a pool of C{threads} threads: started with the
    service, drained and stopped with it.

    Subclasses run each blocking operation through L{_run}; an operation
    raises L{KeyNotFound} or L{InstanceNotFound} for the expected answers,
    and anything else it raises is logged and becomes a L{StoreError}.
    """

    backend = "?"

    def __init__(self, threads: int = 4, reactor=None) -> None:
        self._threads = threads
        self._reactor = reactor
        self._pool = None

    def startService(self) -> None:
        """Start the pool."""
        self._pool = ThreadPool(
            minthreads=0, maxthreads=self._threads, name=f"{self.backend}-store"
        )
        self._pool.start()
        super().startService()

    def stopService(self) -> None:
        """Let the queued operations finish, then stop the pool's threads."""
        super().stopService()
        pool, self._pool = self._pool, None
        # Joining takes as long as the operations in flight: file and SQLite
        # work of a few milliseconds, which shutdown may wait for.
        pool.stop()

    def _run(self, operation, *args) -> Deferred:
        if self._reactor is None:
            from twisted.internet import reactor
        else:
            reactor = self._reactor
        d = deferToThreadPool(reactor, self._pool, operation, *args)
        d.addErrback(self._failed, operation.__name__.strip("_"))
        return d

    def _failed(self, failure, what: str):
        if failure.check(KeyNotFound, InstanceNotFound):
            return failure
        _log.failure(
            "{backend} store: {what} failed", failure, backend=self.backend, what=what
        )
        raise StoreError(f"{self.backend} {what} failed")


class ReadOnlyStore(ThreadedStore):
    """A threaded store opened only to be read: a migration source."""

    def _read_only(self, *args) -> Deferred:
        return fail(StoreError(f"{self.description} is opened read-only"))

    create_group = delete_group = create_instance = delete_instance = _read_only
    write_key = delete_key = _read_only
