"""The HTTP API of PROTOCOL.md, as a Klein app over a store."""

import hmac
import json
from typing import ClassVar

from attrs import define, field
from klein import Klein
from twisted.logger import Logger
from werkzeug import exceptions as routing
from werkzeug.routing import BaseConverter

from session_daemon.errors import (
    APIError,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
)
from session_daemon.metrics import CONTENT_TYPE, UNMATCHED, WorkerMetrics
from session_daemon.names import check_name, decode_segment
from session_daemon.store import InstanceNotFound, KeyNotFound, StoreError

_log = Logger()

#: The one instance name that, under GET, lists the group instead.
LIST_INSTANCES = "list-instances"

#: The route template of a /session path, by its number of name segments:
#: what metrics label a request with, never the names themselves.
SESSION_ROUTES = (
    "/session",
    "/session/{group}",
    "/session/{group}/{instance}",
    "/session/{group}/{instance}/{key}",
)
LIST_ROUTE = "/session/{group}/list-instances"


class _Rest(BaseConverter):
    """Everything after a prefix, slashes and emptiness included."""

    regex = r"[\s\S]*"
    part_isolating = False


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


_decoder = json.JSONDecoder(parse_constant=_refuse_constant)


def _parse_json(text: str | bytes):
    """Parse strict JSON text (no NaN or Infinity), raising L{ValueError}."""
    try:
        if isinstance(text, bytes):
            # UnicodeDecodeError is a ValueError: JSON on the wire is UTF-8.
            text = text.decode("utf-8")
        return _decoder.decode(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _json(request, document, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(document).encode("utf-8")


@define(slots=False)
class SessionAPI:
    """
    The worker's routes over one store.

    C{token} is the shared apikey; C{body_limit} the largest body, in bytes,
    a request may carry (the site refuses larger ones as they arrive; the
    check here covers other ways in, such as in-memory tests).
    """

    store: object
    token: bytes = field(repr=False)
    body_limit: int = 5 * 1024 * 1024
    metrics: WorkerMetrics = field(factory=WorkerMetrics, repr=False)

    router: ClassVar[Klein] = Klein()
    router.url_map.converters["rest"] = _Rest

    def resource(self):
        """The Twisted resource serving this API."""
        return self.router.resource()

    # Open routes.

    @router.route("/ping", methods=["GET", "OPTIONS"])
    def ping(self, request) -> bytes:
        """The API servers' liveness probe: the body must be exactly C{pong}."""
        request.route = "/ping"
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"pong"

    @router.route("/health", methods=["GET"])
    async def health(self, request) -> bytes:
        """200 while the store answers, 503 when it does not."""
        request.route = "/health"
        try:
            await self.store.check()
        except StoreError:
            return _json(request, {"status": "unavailable"}, 503)
        return _json(request, {"status": "ok"})

    @router.route("/metrics", methods=["GET"])
    def scrape(self, request) -> bytes:
        """The worker's series for Prometheus, behind the apikey."""
        request.route = "/metrics"
        self._authorise(request, bearer=True)
        # XXX: the text is rendered on the reactor thread; with every route,
        # method and status seen it takes about 25 ms here, during which no
        # other request is served. Scrape every 15 s or more.
        request.setHeader(b"Content-Type", CONTENT_TYPE.encode("ascii"))
        return self.metrics.exposition()

    # The /session routes, dispatched by hand: see _session_path.

    @router.route("/session<rest:rest>", merge_slashes=False, strict_slashes=False)
    async def session(self, request, rest) -> bytes:
        """Every C{/session} route: authorise, match, then act."""
        segments = _session_path(request.path)
        request.route = session_route(segments)
        self._authorise(request)

        method = request.method.decode("ascii", "replace")
        if method == "HEAD":
            method = "GET"
        actions = self._actions(segments)
        if method not in actions:
            raise MethodNotAllowed(
                f"{method} is not allowed here", tuple(sorted(actions))
            )
        return await actions[method](request, *segments)

    def _authorise(self, request, bearer: bool = False) -> None:
        given = request.getHeader(b"apikey")
        if given is None and bearer:
            # Prometheus sends its credentials this way.
            given = _bearer_token(request.getHeader(b"Authorization"))
        if given is None:
            raise Unauthorized("the apikey header is missing")
        if not hmac.compare_digest(given, self.token):
            raise Unauthorized("the apikey is not valid")

    def _actions(self, segments: list[bytes]) -> dict:
        if len(segments) == 0:
            return {"POST": self._create_group}
        if len(segments) == 1:
            return {"POST": self._create_instance, "DELETE": self._delete_group}
        if len(segments) == 2:
            if segments[1] == LIST_INSTANCES.encode():
                return {"GET": self._list_instances, "DELETE": self._delete_instance}
            return {"DELETE": self._delete_instance}
        return {
            "GET": self._read_key,
            "POST": self._write_key,
            "DELETE": self._delete_key,
        }

    async def _create_group(self, request) -> bytes:
        group = check_name("group", self._body_field(request, "group"))
        await self.store.create_group(group)
        return _no_content(request)

    async def _delete_group(self, request, raw_group) -> bytes:
        group = decode_segment("group", raw_group)
        await self.store.delete_group(group)
        return _json(request, {"deleted": True})

    async def _create_instance(self, request, raw_group) -> bytes:
        group = decode_segment("group", raw_group)
        instance = check_name("instance", self._body_field(request, "instance"))
        await self.store.create_instance(group, instance)
        return _no_content(request)

    async def _list_instances(self, request, raw_group, _) -> bytes:
        group = decode_segment("group", raw_group)
        return _json(request, await self.store.list_instances(group))

    async def _delete_instance(self, request, raw_group, raw_instance) -> bytes:
        group = decode_segment("group", raw_group)
        instance = decode_segment("instance", raw_instance)
        await self.store.delete_instance(group, instance)
        return _json(request, {"deleted": True})

    async def _read_key(self, request, raw_group, raw_instance, raw_key) -> bytes:
        group, instance, key = _key_names(raw_group, raw_instance, raw_key)
        try:
            value = await self.store.read_key(group, instance, key)
        except KeyNotFound:
            raise NotFound(f"key {key!r} not found") from None
        request.setHeader(b"Content-Type", b"application/json")
        return value

    async def _write_key(self, request, raw_group, raw_instance, raw_key) -> bytes:
        group, instance, key = _key_names(raw_group, raw_instance, raw_key)
        value = _value(self._body_field(request, "data"))
        try:
            await self.store.write_key(group, instance, key, value)
        except InstanceNotFound:
            raise NotFound(f"instance {instance!r} not found") from None
        return _no_content(request)

    async def _delete_key(self, request, raw_group, raw_instance, raw_key) -> bytes:
        group, instance, key = _key_names(raw_group, raw_instance, raw_key)
        await self.store.delete_key(group, instance, key)
        return _json(request, {"deleted": True})

    def _body_field(self, request, name: str):
        """The field C{name} of the request's JSON object body."""
        body = request.content.read()
        if len(body) > self.body_limit:
            raise PayloadTooLarge(f"the body is larger than {self.body_limit} bytes")
        try:
            document = _parse_json(body)
        except ValueError:
            raise BadRequest("the body is not JSON") from None
        if not isinstance(document, dict):
            raise BadRequest("the body must be a JSON object")
        if name not in document:
            raise BadRequest(f"the body has no {name!r}")
        return document[name]

    # Refusals, as JSON.

    @router.handle_errors(APIError)
    def api_error(self, request, failure) -> bytes:
        return _refusal(request, failure.value)

    @router.handle_errors(routing.NotFound)
    def unknown_path(self, request, failure) -> bytes:
        method = request.method.decode("ascii", "replace")
        path = request.path.decode("utf-8", "replace")
        return _refusal(request, NotFound(f"Cannot {method} {path}"))

    @router.handle_errors(routing.MethodNotAllowed)
    def wrong_method(self, request, failure) -> bytes:
        # No handler ran to name the route; a wrong method is still counted
        # under the route it was sent to.
        request.route = route_of_path(request.path)
        method = request.method.decode("ascii", "replace")
        allowed = tuple(sorted(failure.value.valid_methods or ()))
        return _refusal(
            request, MethodNotAllowed(f"{method} is not allowed here", allowed)
        )

    @router.handle_errors(StoreError)
    def store_error(self, request, failure) -> bytes:
        # The store logged the cause; the client only learns to retry.
        return _refusal(request, Unavailable("the store is unavailable; try again"))

    @router.handle_errors
    def unexpected(self, request, failure) -> bytes:
        _log.failure(
            "Unexpected error answering {method} {path}",
            failure,
            method=request.method.decode("ascii", "replace"),
            path=request.path.decode("utf-8", "replace"),
        )
        return _refusal(request, APIError("the worker failed to answer; see its log"))


def _refusal(request, error: APIError) -> bytes:
    if isinstance(error, MethodNotAllowed):
        request.setHeader(b"Allow", ", ".join(error.allowed).encode("ascii"))
    return _json(request, error.as_json(), error.status)


def _session_path(path: bytes) -> list[bytes]:
    """
    Split a raw request path under C{/session} into its raw name segments:
    none, group, group and instance, or group, instance and key.

    The key runs to the end of the path, slashes included, because Baileys
    puts base64 ids (with C{/}) into the path unescaped.  Segments are split
    before they are percent-decoded, so C{%2F} never splits a name.
    """
    rest = path[len(b"/session") :]
    if rest in (b"", b"/"):
        return []
    if not rest.startswith(b"/"):
        raise routing.NotFound()
    return rest[1:].split(b"/", 2)


def session_route(segments: list[bytes]) -> str:
    """The route template of a /session path split by L{_session_path}."""
    if len(segments) == 2 and segments[1] == LIST_INSTANCES.encode():
        return LIST_ROUTE
    return SESSION_ROUTES[len(segments)]


def route_of_path(path: bytes) -> str:
    """
    The route template of a raw path, for requests refused before the app
    saw them (a body over the limit).
    """
    path = path.split(b"?", 1)[0]
    # XXX: this repeats the route table by hand; a route added above and
    # not here has its refused requests counted as unmatched.
    if path in (b"/ping", b"/health", b"/metrics"):
        return path.decode("ascii")
    if path.startswith(b"/session"):
        try:
            return session_route(_session_path(path))
        except routing.NotFound:
            pass
    return UNMATCHED


def _bearer_token(authorization: bytes | None) -> bytes | None:
    """The token of an C{Authorization: Bearer <token>} header, if any."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        return None
    return token.strip()


def _key_names(raw_group, raw_instance, raw_key) -> tuple[str, str, str]:
    return (
        decode_segment("group", raw_group),
        decode_segment("instance", raw_instance),
        decode_segment("key", raw_key),
    )


def _value(data) -> bytes:
    """
    The bytes to store for the C{data} a client sent: the JSON text itself
    when C{data} is a string of JSON text (what the API servers send), or
    the JSON encoding of any other JSON value.
    """
    if isinstance(data, str):
        try:
            _parse_json(data)
            return data.encode("utf-8")
        except ValueError:
            # UnicodeEncodeError, for lone surrogates, is a ValueError too.
            raise BadRequest("'data' is a string that is not JSON text") from None
    return json.dumps(
        data, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def _no_content(request) -> bytes:
    request.setResponseCode(204)
    return b""
