"""
Names as file names: kept literally when they can be, encoded reversibly
when they cannot.

The old Go worker used every name as a file name as it was.  A name that is
a fine file name keeps that file name here too, so old volumes read
unchanged.  Characters a file name cannot hold, or that would give it
another meaning, are written as C{%XX} (the bytes of their UTF-8): C{/},
C{%} itself, control characters, and a leading C{.} (so that C{.}, C{..}
and hidden names are never what they seem, and every file name starting
with a dot is the store's own).  A name whose encoding is longer than a
file name may be becomes C{%#} and the SHA-256 of the name; the name itself
is then kept inside (see L{session_daemon.store.files}).
"""

import hashlib
import unicodedata
from urllib.parse import unquote_to_bytes

#: The longest file name, in bytes, of the file systems we run on.
NAME_MAX = 255

#: The start of the file name of a name too long to be a file name.
HASHED = "%#"

#: The start of the store's own temporary files and folders.
TEMPORARY = ".tmp-"


def _escape(character: str) -> str:
    return "".join(f"%{byte:02X}" for byte in character.encode("utf-8"))


def _needs_escape(character: str) -> bool:
    return character in "/%" or unicodedata.category(character) == "Cc"


def encode_name(name: str) -> str:
    """The file name that holds C{name}; raise L{ValueError} for an empty name."""
    if not name:
        raise ValueError("an empty name has no file name")
    encoded = "".join(_escape(c) if _needs_escape(c) else c for c in name)
    if encoded.startswith("."):
        encoded = _escape(".") + encoded[1:]
    if len(encoded.encode("utf-8")) > NAME_MAX:
        return HASHED + hashlib.sha256(name.encode("utf-8")).hexdigest()
    return encoded


def is_hashed(filename: str) -> bool:
    """Whether C{filename} stands for a name kept inside the file or folder."""
    return filename.startswith(HASHED)


def decode_name(filename: str) -> str | None:
    """
    The name that L{encode_name} turned into C{filename}, or None if
    C{filename} is not one (a temporary file, a hashed name, a file name
    this store would not have written).
    """
    if filename.startswith(".") or is_hashed(filename):
        return None
    try:
        name = unquote_to_bytes(filename).decode("utf-8")
    except UnicodeError:
        # File names that are not UTF-8 reach Python with surrogates.
        return None
    # XXX: an old volume's entries that this encoding would have written
    # differently (a name starting with ".", or holding "%") are not listed,
    # served or migrated; they are left on disk, untouched.
    if not name or encode_name(name) != filename:
        return None
    return name
