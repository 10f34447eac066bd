"""Wiring for twistd: the command-line options and the service they make."""

import os

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.python import usage

from session_daemon.config import SETTINGS, ConfigError, read_dotenv, resolve
from session_daemon.metrics import WorkerMetrics
from session_daemon.service import ListeningService, WorkerService
from session_daemon.site import SessionSite
from session_daemon.store.measured import MeasuredStore
from session_daemon.store.registry import store_from_description
from session_daemon.web import SessionAPI


class Options(usage.Options):
    """Flags for ``twistd session-worker``; each beats its environment variable."""

    # Defaults stay None here so that an unset flag falls through to the
    # environment; the help states the real default instead.
    optParameters = [
        [
            s.name,
            None,
            None,
            f"{s.help} [env: {s.variable}"
            + (f"; default: {s.default}]" if s.default is not None else "]"),
        ]
        for s in SETTINGS
    ]

    def postOptions(self) -> None:
        flags = {s.name: self[s.name] for s in SETTINGS}
        try:
            self.settings = resolve(flags, os.environ, read_dotenv())
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
        if self.settings.log_format == "json" and self.parent is not None:
            _log_json_under(self.parent)

    def parseOptions(self, options=None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            if self.parent is None:
                raise
            # Under twistd, a UsageError prints twistd's whole help before the
            # reason; an operator should see the reason alone.
            raise SystemExit(f"session-worker: {e}") from None


def _log_json_under(twistd: usage.Options) -> None:
    """
    Have twistd log through the JSON observer, unless its own --logger was
    given: twistd builds its observer before any service starts, from the
    name in its C{logger} option, which it resolves after our options.
    """
    if twistd.get("logger") is not None:
        return
    # XXX: JSON lines go to standard output only; rather than lose them to
    # /dev/null in a daemon or write text to a --logfile, refuse to start.
    if not twistd.get("nodaemon", True) or twistd.get("logfile") not in (None, "-"):
        raise usage.UsageError(
            "LOG_FORMAT=json writes to standard output: run twistd with -n "
            "(--nodaemon) and without --logfile"
        )
    twistd["logger"] = "session_daemon.logs.json_observer"


def makeService(options: Options) -> WorkerService:
    """The worker: its store, and the API served over it."""
    settings = options.settings
    store = store_from_description(settings.store, settings.store_pool_size)
    metrics = WorkerMetrics()
    # The API reaches every backend through the same measuring wrapper; the
    # service still starts and stops the store itself.
    measured = MeasuredStore(store, metrics)
    token = settings.token.encode("utf-8")
    api = SessionAPI(measured, token, settings.body_limit, metrics)
    site = SessionSite(api.resource(), settings.body_limit, settings.http_logs, metrics)
    endpoint = serverFromString(reactor, settings.listen)
    listening = ListeningService(endpoint, site, settings.listen)
    return WorkerService(settings, store, listening)
