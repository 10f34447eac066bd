"""
Log lines as JSON objects, one a line, for log shippers (C{LOG_FORMAT=json}).

Each line holds the time, the level, the rendered message, and the event's
own fields when they are plain values.  Objects an event carries (requests,
addresses, failures) are only ever rendered into the message, never dumped.
"""

import json
import math
import sys
from datetime import datetime, timezone

from twisted.logger import FileLogObserver, formatEvent

#: The keys every line has; an event's field of the same name is left out.
_OWN_KEYS = ("timestamp", "level", "namespace", "message")

#: Field names never written, whatever code logged them: defence in depth,
#: since the worker itself never logs a token or a stored value.
# XXX: names are a guess at what a secret is called; a secret logged as a
# plain string under another name would be written, as text logs would.
_WITHHELD = frozenset(
    {
        "apikey",
        "authorization",
        "body",
        "data",
        "password",
        "secret",
        "token",
        "value",
        # Legacy log.msg bookkeeping: already part of the message.
        "format",
        "isError",
        "message",
    }
)

_PLAIN = (str, int, float, bool, type(None))


def event_as_json(event: dict) -> str:
    """One event as one line of JSON text, newline included."""
    document = {
        "timestamp": _timestamp(event.get("log_time")),
        "level": getattr(event.get("log_level"), "name", "info"),
        "namespace": event.get("log_namespace", "?"),
        "message": formatEvent(event),
    }
    for name, value in event.items():
        if name.startswith("log_") or name in _OWN_KEYS or name in _WITHHELD:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            document[name] = str(value)
        elif isinstance(value, _PLAIN):
            document[name] = value

    failure = event.get("log_failure")
    if failure is not None:
        # The traceback names our files and lines, never local values.
        document["error"] = failure.getErrorMessage()
        document["traceback"] = failure.getTraceback()

    return json.dumps(document, ensure_ascii=False) + "\n"


def json_observer(out=None) -> FileLogObserver:
    """
    An observer writing JSON lines to C{out}, standard output by default.

    twistd calls it with no argument when C{--logger} names it.
    """
    return FileLogObserver(out or sys.stdout, event_as_json)


def _timestamp(when: float | None) -> str | None:
    if when is None:
        return None
    moment = datetime.fromtimestamp(when, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
