"""The start-up hint: an empty SQLite store beside a volume of the Go worker."""

import os

import pytest
import pytest_twisted
from twisted.internet.defer import maybeDeferred
from twisted.logger import LogLevel, capturedLogs

from session_daemon.store.sqlite import SQLiteStore
from tests.corpus import KEYS
from tests.oldworker import write_files_volume, write_go_sqlite_volume


def _warnings_at_start(path) -> list[str]:
    store = SQLiteStore(str(path), threads=1)
    with capturedLogs() as events:
        store.startService()
    maybeDeferred(store.stopService)
    return [
        event["command"]
        for event in events
        if event["log_level"] == LogLevel.warn and "command" in event
    ]


@pytest.mark.parametrize(
    "write, scheme",
    [(write_files_volume, "files"), (write_go_sqlite_volume, "go-sqlite")],
)
def test_an_empty_store_beside_an_old_volume_names_the_command(
    tmp_path, monkeypatch, write, scheme
):
    """The warning holds the exact command, with the paths as configured."""
    monkeypatch.chdir(tmp_path)
    write("instances", {"evolution": {"loja-1": {"creds": KEYS["creds"]}}})

    commands = _warnings_at_start(os.path.join("instances", "sessions.db"))

    assert commands == [
        f"session-worker migrate {scheme}:instances sqlite:instances/sessions.db"
    ]


def test_paths_with_spaces_are_quoted(tmp_path):
    folder = tmp_path / "old volume"
    write_files_volume(folder, {"g": {"i": {"creds": "{}"}}})
    commands = _warnings_at_start(folder / "sessions.db")
    assert commands == [
        f"session-worker migrate 'files:{folder}' 'sqlite:{folder}/sessions.db'"
    ]


@pytest_twisted.ensureDeferred
async def test_no_hint_once_the_store_holds_sessions(tmp_path):
    write_files_volume(tmp_path, {"g": {"i": {"creds": "{}"}}})
    path = tmp_path / "sessions.db"
    store = SQLiteStore(str(path), threads=1)
    store.startService()
    await store.create_instance("g", "i")
    await maybeDeferred(store.stopService)
    assert _warnings_at_start(path) == []


def test_no_hint_for_a_folder_without_old_sessions(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a session")
    assert _warnings_at_start(tmp_path / "sessions.db") == []
