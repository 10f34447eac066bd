"""The services a worker is made of: its store, then its listening site."""

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.logger import Logger

from session_daemon import __version__
from session_daemon.store import StoreError

_log = Logger()


class ListeningService(Service):
    """Listens on an endpoint with a factory while running."""

    def __init__(
        self, endpoint, factory, description: str, drain_seconds: float = 10.0
    ) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self.description = description
        self.drain_seconds = drain_seconds
        self.port = None

    def startService(self) -> None:
        """Listen; a listening failure known at once stops the start."""
        super().startService()
        listening = self.endpoint.listen(self.factory)
        failures = []
        listening.addCallbacks(self._listening, failures.append)
        if failures:
            reason = failures[0].getErrorMessage()
            raise SystemExit(
                f"session-worker: cannot listen on {self.description}: {reason}"
            )

    def _listening(self, port) -> None:
        self.port = port
        _log.info("Listening on {address}", address=port.getHost())

    def stopService(self) -> Deferred:
        """Stop listening, then give the requests in flight time to finish."""
        super().stopService()
        stopped = maybeDeferred(self.port.stopListening) if self.port else None
        if stopped is None:
            return maybeDeferred(lambda: None)
        stopped.addCallback(lambda _: self._drain())
        return stopped

    def _drain(self):
        in_flight = getattr(self.factory, "in_flight", 0)
        if in_flight:
            _log.info(
                "Waiting up to {seconds}s for {count} requests in flight",
                seconds=self.drain_seconds,
                count=in_flight,
            )
        return ensureDeferred(self.factory.drain(self.drain_seconds))


class WorkerService(MultiService):
    """A store and the site over it, started in that order, stopped in reverse."""

    def __init__(self, settings, store, listening: ListeningService) -> None:
        super().__init__()
        self.settings = settings
        self.store = store
        self.listening = listening
        store.setServiceParent(self)
        listening.setServiceParent(self)

    def startService(self) -> None:
        """Log who we are and how we are set, then open the store and listen."""
        _log.info(
            "session-worker {version} starting on {listen} with store {store}",
            version=__version__,
            listen=self.settings.listen,
            store=self.store.description,
        )
        for variable, value in self.settings.for_log().items():
            _log.info("Setting {variable}={value}", variable=variable, value=value)
        try:
            super().startService()
        except StoreError as e:
            raise SystemExit(f"session-worker: {e}") from None

    def stopService(self) -> Deferred:
        """Stop taking requests, let those in flight finish, then close the store."""
        # MultiService would stop both at once; the store must outlive the
        # requests that still use it.
        Service.stopService(self)
        d = maybeDeferred(self.listening.stopService)
        d.addCallback(lambda _: self.store.stopService())
        d.addCallback(lambda _: _log.info("session-worker stopped"))
        return d
