"""Store descriptions (C{sqlite:instances/sessions.db}) and the stores they name."""

import re
from functools import partial

from session_daemon.store.files import FilesStore
from session_daemon.store.memory import MemoryStore
from session_daemon.store.sqlite import SQLiteStore


def _sqlite(rest: str, threads: int):
    if not rest:
        raise ValueError("a sqlite store needs a file path, as in sqlite:sessions.db")
    return SQLiteStore(rest, threads=threads)


def _memory(rest: str, threads: int):
    return MemoryStore()


def _files(rest: str, threads: int):
    if not rest:
        raise ValueError("a files store needs a folder, as in files:instances")
    return FilesStore(rest, threads=threads)


def _postgresql(scheme: str, rest: str, threads: int):
    # Imported here so that only workers that use PostgreSQL load its driver.
    from session_daemon.store.postgresql import PostgreSQLStore

    return PostgreSQLStore(f"{scheme}:{rest}", pool_size=threads)


#: Scheme -> function of (the text after the scheme, pool size) -> store.
SCHEMES = {
    "sqlite": _sqlite,
    "memory": _memory,
    "files": _files,
    "postgresql": partial(_postgresql, "postgresql"),
    "postgres": partial(_postgresql, "postgres"),
}


def store_from_description(description: str, threads: int = 4):
    """
    Return the (not yet started) store that C{description} names, or raise
    L{ValueError} saying what is wrong with it.
    """
    scheme, colon, rest = description.partition(":")
    if not colon or scheme not in SCHEMES:
        known = ", ".join(f"{name}:" for name in SCHEMES)
        raise ValueError(
            f"unknown store {redact(description)!r}; known schemes: {known}"
        )
    return SCHEMES[scheme](rest, threads)


def _go_sqlite(rest: str, threads: int):
    from session_daemon.store.gosqlite import GoSQLiteStore

    if not rest:
        raise ValueError("a go-sqlite source needs a folder, as in go-sqlite:instances")
    return GoSQLiteStore(rest, threads=threads)


def _sqlite_source(rest: str, threads: int):
    from session_daemon.store.gosqlite import SQLiteSource

    if not rest:
        raise ValueError("a sqlite store needs a file path, as in sqlite:sessions.db")
    return SQLiteSource(rest, threads=threads)


# XXX: a postgresql: source has no read-only opener and is started as a
# worker starts it, so a migration from it may create or upgrade its schema.
#: How a description names a store to migrate from, where it differs from
#: a store to serve: a source-only layout, or a store opened read-only.
SOURCE_SCHEMES = {"go-sqlite": _go_sqlite, "sqlite": _sqlite_source}


def source_from_description(description: str, threads: int = 4):
    """Like L{store_from_description}, also knowing the source-only schemes."""
    scheme, colon, rest = description.partition(":")
    if colon and scheme in SOURCE_SCHEMES:
        return SOURCE_SCHEMES[scheme](rest, threads)
    return store_from_description(description, threads)


def redact(description: str) -> str:
    """C{description} with the password of a URL's user part hidden."""
    return re.sub(r"(//[^/:@]*:)[^/@]*@", r"\1***@", description)
