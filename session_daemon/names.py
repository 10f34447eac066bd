"""Group, instance and key names: checked as data, never used as paths."""

import re
from urllib.parse import unquote_to_bytes

from session_daemon.errors import BadRequest

GROUP_LIMIT = 128
INSTANCE_LIMIT = 128
KEY_LIMIT = 512

_LIMITS = {"group": GROUP_LIMIT, "instance": INSTANCE_LIMIT, "key": KEY_LIMIT}

#: Unicode's control characters (category Cc): C0, DEL and C1.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def check_name(kind: str, name: object) -> str:
    """
    Return C{name} if it may name a group, instance or key, else raise
    L{BadRequest} saying why.  C{kind} is one of C{group}, C{instance}, C{key}.
    """
    if not isinstance(name, str):
        raise BadRequest(f"{kind} name must be a string")
    if name == "":
        raise BadRequest(f"{kind} name is empty")
    if name in (".", ".."):
        raise BadRequest(f"{kind} name may not be '.' or '..'")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadRequest(f"{kind} name is not valid UTF-8") from None
    if size > _LIMITS[kind]:
        raise BadRequest(f"{kind} name is longer than {_LIMITS[kind]} bytes")
    if _CONTROL.search(name):
        raise BadRequest(f"{kind} name holds a control character")
    return name


def decode_segment(kind: str, raw: bytes) -> str:
    """
    Percent-decode one path segment into a checked name.

    Each segment is decoded on its own, after the path was split, so that an
    encoded C{%2F} stays part of its name instead of splitting it.
    """
    try:
        name = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{kind} name is not valid UTF-8") from None
    return check_name(kind, name)
