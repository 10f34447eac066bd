"""
The HTTP site: a body limit enforced while the body arrives, and one access
line per request when asked for.
"""

import json
import time
from io import BytesIO

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import ISSLTransport, ITCPTransport
from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from twisted.web.server import Request, Site

from session_daemon.errors import APIError, BadRequest, PayloadTooLarge
from session_daemon.metrics import UNMATCHED
from session_daemon.web import route_of_path

_log = Logger()

#: How long a connection may stay silent before it is closed.
IDLE_SECONDS = 75

#: How long a refused connection is kept reading (and dropping) what the
#: client still sends, so that it can read the refusal before we close.
LINGER_SECONDS = 2.0


def _raw_answer(error: APIError) -> bytes:
    """A complete HTTP response refusing a request, closing its connection."""
    body = json.dumps(error.as_json()).encode("utf-8")
    reason = {400: b"Bad Request", 413: b"Payload Too Large"}[error.status]
    head = b"\r\n".join(
        [
            b"HTTP/1.1 %d %s" % (error.status, reason),
            b"Content-Type: application/json",
            b"Content-Length: %d" % (len(body),),
            b"Connection: close",
            b"",
            b"",
        ]
    )
    return head + body


class BoundedChannel(HTTPChannel):
    """An HTTP connection that can refuse a request before its body is read."""

    _refused = False
    _linger = None
    _host = None
    _peer = None

    # Both addresses are fixed for the life of a connection, yet Twisted asks
    # the socket again for every request: a system call and a new address
    # object each time, a few percent of a GET.
    def getHost(self):
        if self._host is None:
            self._host = super().getHost()
        return self._host

    def getPeer(self):
        if self._peer is None:
            self._peer = super().getPeer()
        return self._peer

    def refuse(self, error: APIError) -> None:
        """
        Answer C{error} at once and close: the rest of the body is dropped as
        it arrives, never buffered.
        """
        self._refused = True
        self.setTimeout(None)
        # Stop parsing what is already buffered too, not only what comes.
        self.clearLineBuffer()
        self.transport.write(_raw_answer(error))

        if ISSLTransport.providedBy(self.transport):
            # TLS claims ITCPTransport too, and its loseWriteConnection is
            # the raw socket's: a FIN beneath TLS, without close_notify, that
            # clients cannot tell from a truncated answer.  TLS's own close
            # is already a half-close: close_notify goes after the answer,
            # and what the client still sends is read and dropped until its
            # own close_notify; the linger bounds that wait.
            # XXX: unlike over TCP, what the client still sends is decrypted
            # before it is dropped, for up to LINGER_SECONDS: CPU spent on a
            # refused body (never memory).
            self.loseConnection()
            self._linger = self.callLater(
                LINGER_SECONDS, self.transport.abortConnection
            )
        elif ITCPTransport.providedBy(self.transport):
            # Closing while the client is still sending makes the kernel
            # reset the connection, which can destroy the answer before the
            # client reads it; so send our FIN, keep reading for a moment.
            self.transport.loseWriteConnection()
            self._linger = self.callLater(LINGER_SECONDS, self.transport.loseConnection)
        else:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        super().dataReceived(data)

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted's answer to a request it cannot parse (a garbled request
        # line, too many headers, a broken chunk) is a bare 400, and to an
        # over-long line none at all; every refusal of ours is JSON.
        self.refuse(BadRequest("the request is not valid HTTP"))

    def lineLengthExceeded(self, line) -> None:
        self.refuse(BadRequest("a line of the request head is too long"))

    def connectionMade(self) -> None:
        super().connectionMade()
        self.site.connection_opened(self)

    def connectionLost(self, reason) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)
        self.site.connection_closed(self)


class BoundedRequest(Request):
    """A request whose body may not be larger than its site's C{body_limit}."""

    #: The route template the app matched, for metrics; the app sets it.
    route = UNMATCHED

    def __init__(self, channel, *args, **kwargs) -> None:
        # Bodies are JSON: parsing Content-Type for a form on every POST
        # was a quarter of a write's cost.
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(channel, *args, **kwargs)
        self.arrived = time.monotonic()
        self._body_size = 0
        self._refused = False
        site = getattr(self.channel, "site", None)
        if site is not None:
            site.request_started(self)

    def gotLength(self, length) -> None:
        if length is not None and length > self.channel.site.body_limit:
            # No 100 Continue for a body we will not read.
            self.requestHeaders.removeHeader(b"Expect")
            self._refuse_body()
            return
        # The limit bounds the body, so it is kept in memory; Twisted would
        # otherwise spill large bodies to a temporary file on the reactor.
        self.content = BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._body_size += len(data)
        if self._body_size > self.channel.site.body_limit:
            self.content = BytesIO()
            self._refuse_body()
            return
        self.content.write(data)

    def requestReceived(self, command, path, version) -> None:
        if self._refused:
            return
        super().requestReceived(command, path, version)

    def process(self) -> None:
        try:
            self.path.decode("utf-8")
        except UnicodeDecodeError:
            self._answer_now(BadRequest("the path is not valid UTF-8"))
            return
        super().process()

    def _refuse_body(self) -> None:
        limit = self.channel.site.body_limit
        self._refused = True
        self.channel.site.log_refusal(self, 413)
        self.channel.refuse(PayloadTooLarge(f"the body is larger than {limit} bytes"))

    def _answer_now(self, error: APIError) -> None:
        self.setResponseCode(error.status)
        self.setHeader(b"Content-Type", b"application/json")
        self.write(json.dumps(error.as_json()).encode("utf-8"))
        self.finish()


def _give_up(result, timeout):
    """A wait that timed out is over all the same."""
    return None


class SessionSite(Site):
    """The site serving the API, with its body limit and access log."""

    protocol = BoundedChannel
    requestFactory = BoundedRequest
    displayTracebacks = False
    noisy = False

    def __init__(
        self,
        resource,
        body_limit: int,
        access_log: bool = False,
        metrics=None,
        idle_seconds: float = IDLE_SECONDS,
    ):
        # A connection idle (or a request stalled) this long is closed;
        # Twisted's default is twelve hours, long enough for a slow client
        # to hold connections open for nothing.
        super().__init__(resource, timeout=idle_seconds)
        self.body_limit = body_limit
        self.access_log = access_log
        self.metrics = metrics
        self.in_flight = 0
        self._idle: list[Deferred] = []
        if metrics is not None:
            # Read when scraped: the hot path keeps a plain counter.
            metrics.in_flight.set_function(lambda: self.in_flight)
        self._connections: set[BoundedChannel] = set()
        self._all_closed: list[Deferred] = []

    def connection_opened(self, channel) -> None:
        self._connections.add(channel)

    def connection_closed(self, channel) -> None:
        self._connections.discard(channel)
        if not self._connections:
            closed, self._all_closed = self._all_closed, []
            for d in closed:
                d.callback(None)

    def request_started(self, request) -> None:
        """Count C{request} as in flight until it is answered or abandoned."""
        self.in_flight += 1
        request.notifyFinish().addBoth(self._request_ended)

    def _request_ended(self, _) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)

    async def drain(self, timeout: float, reactor=None) -> None:
        """
        Let the requests in flight finish (for up to C{timeout} seconds),
        then close every connection once its answers are sent.
        """
        reactor = reactor or global_reactor
        if self.in_flight:
            idle = Deferred()
            self._idle.append(idle)
            await idle.addTimeout(timeout, reactor, onTimeoutCancel=_give_up)

        # The reactor would drop open connections, answers still buffered
        # in them included; closing them ourselves sends those first.
        if self._connections:
            closed = Deferred()
            self._all_closed.append(closed)
            for channel in list(self._connections):
                channel.transport.loseConnection()
            await closed.addTimeout(LINGER_SECONDS, reactor, onTimeoutCancel=_give_up)

    def log(self, request) -> None:
        """
        Count every answered request, and log one line for it if asked for:
        never headers or bodies.
        """
        duration = time.monotonic() - request.arrived
        if self.metrics is not None:
            self.metrics.request_answered(
                request.route, request.method, request.code, duration
            )
        if not self.access_log:
            return
        _log.info(
            "{method} {path} {status} {size}B {duration_ms:.1f}ms",
            method=request.method.decode("ascii", "replace"),
            path=request.path.decode("utf-8", "replace"),
            status=request.code,
            size=request.sentLength,
            duration_ms=duration * 1000,
        )

    def log_refusal(self, request, status: int) -> None:
        """Count, and log if asked for, a request refused before it was read."""
        # The request line is known, but the request itself was never made.
        channel = request.channel
        if self.metrics is not None:
            self.metrics.request_answered(
                route_of_path(channel._path),
                channel._command,
                status,
                time.monotonic() - request.arrived,
            )
        if not self.access_log:
            return
        _log.info(
            "{method} {path} {status} refused before its body was read",
            method=channel._command.decode("ascii", "replace"),
            path=channel._path.decode("utf-8", "replace"),
            status=status,
        )
