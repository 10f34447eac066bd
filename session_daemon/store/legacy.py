"""
Spotting the Go worker's volumes beside an empty SQLite store, so that the
operator is told how to bring the sessions over instead of re-pairing.
"""

import os
import shlex
import sqlite3

from twisted.logger import Logger

_log = Logger()


def old_layouts(folder: str) -> list[str]:
    """
    The schemes of the Go worker's layouts found in C{folder}: C{files} for
    C{<group>/<instance>/} folders, C{go-sqlite} for C{<group>/<instance>.db}.
    """
    found = set()
    try:
        groups = [e for e in os.scandir(folder) if _visible_folder(e)]
        for group in groups:
            for entry in os.scandir(group.path):
                if _visible_folder(entry):
                    found.add("files")
                elif entry.name.endswith(".db") and entry.is_file():
                    found.add("go-sqlite")
            if len(found) == 2:
                break
    except OSError:
        # Only a hint: a folder that cannot be read has nothing to say.
        return []
    return sorted(found)


def _visible_folder(entry) -> bool:
    return not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)


def _is_empty(path: str) -> bool:
    connection = sqlite3.connect(path)
    try:
        row = connection.execute("SELECT 1 FROM session_groups LIMIT 1").fetchone()
    finally:
        connection.close()
    return row is None


def hint_migration(path: str) -> None:
    """
    Warn, with the command to run, if the SQLite store at C{path} is empty
    and its folder holds a volume of the Go worker.
    """
    folder = os.path.dirname(path) or "."
    layouts = old_layouts(folder)
    if not layouts:
        return
    try:
        if not _is_empty(path):
            return
    except sqlite3.Error:
        return
    for scheme in layouts:
        command = shlex.join(
            ["session-worker", "migrate", f"{scheme}:{folder}", f"sqlite:{path}"]
        )
        _log.warn(
            "The SQLite store {path} is empty, but {folder} holds sessions of the "
            "Go worker ({scheme} layout). To keep them, stop the worker and run: "
            "{command}",
            path=path,
            folder=folder,
            scheme=scheme,
            command=command,
        )
