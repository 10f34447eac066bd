"""`session-worker migrate` with PostgreSQL at either end."""

import os
import sqlite3
import subprocess
import sys

import pytest_twisted
from twisted.internet.defer import maybeDeferred
from twisted.internet.threads import deferToThread

from session_daemon.store.sqlite import SQLiteStore
from tests import postgres
from tests.corpus import INSTANCE_NAMES, KEYS

_ENVIRONMENT = {
    **os.environ,
    "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
}


def _migrate(source: str, destination: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "session_daemon.cli", "migrate", source, destination],
        capture_output=True,
        text=True,
        timeout=120,
        env=_ENVIRONMENT,
    )


def _contents(path) -> dict:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT group_name, instance_name, name, value FROM session_keys"
        ).fetchall()
        instances = connection.execute(
            "SELECT group_name, name FROM session_instances"
        ).fetchall()
    finally:
        connection.close()
    return {
        "keys": {(g, i, k): bytes(v) for g, i, k, v in rows},
        "instances": sorted(instances),
    }


@pytest_twisted.ensureDeferred
async def test_sessions_go_from_sqlite_to_postgresql_and_back_unchanged(tmp_path):
    """Every instance (with keys or none) and every value survives both ways."""
    url = postgres.database_url()
    postgres.allow_connections()
    postgres.empty(url)
    with_password = url.replace("postgres@", "postgres:hunter2@", 1)

    first = SQLiteStore(str(tmp_path / "first.db"))
    first.startService()
    for instance in INSTANCE_NAMES:
        await first.create_instance("deployment", instance)
    for key, value in KEYS.items():
        await first.write_key("deployment", INSTANCE_NAMES[0], key, value.encode())
    await maybeDeferred(first.stopService)

    there = await deferToThread(
        _migrate, f"sqlite:{tmp_path / 'first.db'}", with_password
    )
    assert there.returncode == 0, there.stderr
    back = await deferToThread(
        _migrate, with_password, f"sqlite:{tmp_path / 'second.db'}"
    )
    assert back.returncode == 0, back.stderr

    for done in (there, back):
        assert "hunter2" not in done.stdout + done.stderr
        assert "postgres:***@" in done.stdout
        assert f"Verified {len(KEYS)} keys: all identical in DEST." in done.stdout
    assert _contents(tmp_path / "second.db") == _contents(tmp_path / "first.db")
