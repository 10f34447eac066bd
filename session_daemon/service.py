"""The services a worker is made of: its store, then its listening site."""

from twisted.application.service import MultiService, Service
from twisted.logger import Logger

from session_daemon import __version__
from session_daemon.store import StoreError

_log = Logger()


class ListeningService(Service):
    """Listens on an endpoint with a factory while running."""

    def __init__(self, endpoint, factory, description: str) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self.description = description
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

    def stopService(self):
        """Stop listening; connections in flight are left to finish."""
        super().stopService()
        if self.port is not None:
            return self.port.stopListening()
        return None


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
