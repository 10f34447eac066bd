"""
What a worker measures about itself, in the Prometheus text format.

Every series is labelled by a route template or a store operation, never by
a group, instance or key name: those are chosen by end users, and one
series per name would grow without bound and leak them to the scraper.
"""

import platform

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from twisted.copyright import version as twisted_version

from session_daemon import __version__

#: The route label of a request no route claimed (unknown paths and the
#: like), so that scanners cannot mint new series.
UNMATCHED = "unmatched"

#: The methods labelled as themselves; any other is labelled C{OTHER}.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"

#: Seconds; a GET from memory takes well under a millisecond, a write to a
#: busy disk or a distant database can take a second.
REQUEST_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: The media type of L{WorkerMetrics.exposition}.
CONTENT_TYPE = CONTENT_TYPE_LATEST


class WorkerMetrics:
    """
    The series of one worker, in a registry of its own.

    A registry per worker (rather than the library's global one) keeps two
    apps in one process, as in the tests, from adding to each other's counts.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "session_worker_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "session_worker_http_request_duration_seconds",
            "Time from a request's first byte to its answer, by route template.",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        # XXX: the site counts a request from its first byte until it is
        # answered or its connection closes, so a request refused with 413
        # stays in flight while its connection lingers (up to 2 s).
        self.in_flight = Gauge(
            "session_worker_http_requests_in_flight",
            "Requests begun and not yet answered or abandoned.",
            registry=self.registry,
        )
        self.store_seconds = Histogram(
            "session_worker_store_operation_duration_seconds",
            "Time a store operation took, by backend and operation.",
            ["backend", "operation"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.store_errors = Counter(
            "session_worker_store_errors",
            "Store operations that failed (a missing key is not a failure).",
            ["backend", "operation"],
            registry=self.registry,
        )
        Info(
            "session_worker_build",
            "The worker's version and what it runs on.",
            registry=self.registry,
        ).info(
            {
                "version": __version__,
                "python": platform.python_version(),
                "twisted": twisted_version,
            }
        )
        # Memory, CPU and open files: read from /proc only when scraped.
        ProcessCollector(registry=self.registry)

        # labels() validates its arguments on every call; the children are
        # few (route templates x methods x statuses), so keep them at hand.
        self._answered: dict = {}
        self._timed: dict = {}

    def request_answered(
        self, route: str, method: bytes, status: int, seconds: float
    ) -> None:
        """Count one answered (or refused) request and observe its duration."""
        name = method.decode("ascii", "replace")
        if name not in METHODS:
            name = OTHER

        answered = self._answered.get((route, name, status))
        if answered is None:
            answered = self.requests.labels(route, name, str(status))
            self._answered[route, name, status] = answered
        timed = self._timed.get((route, name))
        if timed is None:
            timed = self.request_seconds.labels(route, name)
            self._timed[route, name] = timed

        answered.inc()
        timed.observe(seconds)

    def exposition(self) -> bytes:
        """Every series, in the Prometheus text format."""
        return generate_latest(self.registry)
