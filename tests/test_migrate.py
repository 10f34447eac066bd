"""`session-worker migrate`: every direction, reruns, dry runs, faults, the command."""

import io
import os
import signal
import sqlite3
import subprocess
import sys

import pytest
import pytest_twisted
from twisted.internet.defer import maybeDeferred

from session_daemon.migrate import Migration
from session_daemon.progress import Progress
from session_daemon.store import KeyNotFound
from session_daemon.store.registry import (
    source_from_description,
    store_from_description,
)
from tests.corpus import INSTANCE_NAMES, KEYS, PLAIN_VALUES
from tests.oldworker import (
    volume_files,
    write_files_volume,
    write_go_sqlite_volume,
)

#: What the old worker could hold: no key with "/", no name starting with ".".
OLD_KEYS = {key: value for key, value in KEYS.items() if "/" not in key}
OLD_KEYS.update({f"plain-{n}": value for n, value in enumerate(PLAIN_VALUES)})
OLD_VOLUME = {
    "evolution": {
        **{name: OLD_KEYS for name in INSTANCE_NAMES if not name.startswith(".")},
        "empty": {},
    },
    "codechat": {"5511987654321": {"creds": KEYS["creds"]}},
}
#: What our own stores may hold besides.
OUR_VOLUME = {
    **OLD_VOLUME,
    "evolution": {**OLD_VOLUME["evolution"], ".hidden": KEYS},
}
#: Values the go-sqlite volume held before its last writes.
OLDER = {"evolution": {"loja-1": {"creds": '{"stale":true}', "pre-key-1": "{}"}}}


def _count(volume) -> int:
    return sum(len(keys) for group in volume.values() for keys in group.values())


async def _open(description, source=False):
    """A started store; as a C{source}, opened the way migrations open one."""
    opener = source_from_description if source else store_from_description
    store = opener(description, 2)
    store.startService()
    return store


async def _fill(description, volume) -> None:
    store = await _open(description)
    try:
        for group, instances in volume.items():
            for instance, keys in instances.items():
                await store.create_instance(group, instance)
                for key, value in keys.items():
                    await store.write_key(group, instance, key, value.encode())
    finally:
        await maybeDeferred(store.stopService)


async def _source(kind, tmp_path):
    """A source of C{kind} holding its volume, built as its writer builds it."""
    if kind == "files":
        write_files_volume(tmp_path / "old", OLD_VOLUME)
        return f"files:{tmp_path / 'old'}", OLD_VOLUME
    if kind == "go-sqlite":
        write_go_sqlite_volume(tmp_path / "old", OLD_VOLUME, older=OLDER)
        return f"go-sqlite:{tmp_path / 'old'}", OLD_VOLUME
    if kind == "our-files":
        await _fill(f"files:{tmp_path / 'ours'}", OUR_VOLUME)
        return f"files:{tmp_path / 'ours'}", OUR_VOLUME
    await _fill(f"sqlite:{tmp_path / 'ours.db'}", OUR_VOLUME)
    return f"sqlite:{tmp_path / 'ours.db'}", OUR_VOLUME


async def _migrate(source, destination, **options):
    """Run a migration in this process; answer its report and its output."""
    out = io.StringIO()
    stores = [await _open(source, source=True)]
    if not options.get("dry_run"):
        stores.append(await _open(destination))
    else:
        stores.append(store_from_description(destination))
    try:
        report = await Migration(
            stores[0], stores[1], Progress(out, terminal=False), **options
        ).run()
    finally:
        for store in stores:
            if store.running:
                await maybeDeferred(store.stopService)
    return report, out.getvalue()


async def _contents(description) -> dict:
    """Everything a store holds: group -> instance -> key -> value."""
    store = await _open(description)
    try:
        found = {}
        for group in await store.list_groups():
            found[group] = {}
            for instance in await store.list_instances(group):
                found[group][instance] = {
                    key: (await store.read_key(group, instance, key)).decode()
                    for key in await store.list_keys(group, instance)
                }
        return found
    finally:
        await maybeDeferred(store.stopService)


@pytest.mark.parametrize(
    "kind, destination",
    [
        ("files", "sqlite"),
        ("go-sqlite", "sqlite"),
        ("go-sqlite", "files"),
        ("our-sqlite", "files"),
        ("our-files", "sqlite"),
        ("our-files", "files"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_migration_brings_every_latest_value_over(tmp_path, kind, destination):
    """Every group, instance (also without keys) and key arrives, verified."""
    source, volume = await _source(kind, tmp_path)
    target = f"{destination}:{tmp_path / 'new'}"
    before = volume_files(tmp_path)

    report, output = await _migrate(source, target)

    assert await _contents(target) == volume
    assert report.problems == [] and report.invalid == []
    assert report.keys == report.copied == report.verified == _count(volume)
    assert report.instances == sum(len(group) for group in volume.values())
    assert report.empty_instances == 1
    assert "copying: " in output and "verifying: " in output
    changed = {
        path: content
        for path, content in volume_files(tmp_path).items()
        if path in before and before[path] != content
    }
    assert changed == {}, "the source was modified"


@pytest_twisted.ensureDeferred
async def test_a_second_run_copies_nothing_and_verifies_again(tmp_path):
    source, volume = await _source("files", tmp_path)
    target = f"sqlite:{tmp_path / 'new.db'}"
    await _migrate(source, target)

    report, _ = await _migrate(source, target)

    assert report.copied == 0
    assert report.already == report.verified == _count(volume)
    assert report.problems == []


@pytest_twisted.ensureDeferred
async def test_a_dry_run_reports_and_writes_nothing(tmp_path):
    source, volume = await _source("go-sqlite", tmp_path)
    target = tmp_path / "new.db"

    report, output = await _migrate(source, f"sqlite:{target}", dry_run=True)

    assert not target.exists()
    assert report.copied == report.keys == _count(volume)
    assert report.verified == 0
    assert "would copy: " in output


@pytest_twisted.ensureDeferred
async def test_a_value_that_is_not_json_is_reported_and_skipped(tmp_path):
    """The rest is copied and verified; the corrupt value is named."""
    volume = {"g": {"i": {"creds": KEYS["creds"], "pre-key-9": '{"private":'}}}
    write_files_volume(tmp_path / "old", volume)
    target = f"sqlite:{tmp_path / 'new.db'}"

    report, _ = await _migrate(f"files:{tmp_path / 'old'}", target)

    assert report.invalid == ["group 'g', instance 'i', key 'pre-key-9'"]
    assert report.problems == []
    assert report.copied == report.verified == 1
    assert await _contents(target) == {"g": {"i": {"creds": KEYS["creds"]}}}


@pytest_twisted.ensureDeferred
async def test_an_interrupted_migration_runs_again_to_completion(tmp_path):
    """A DEST holding part of the data, one value stale, ends up whole."""
    source, volume = await _source("files", tmp_path)
    target = f"files:{tmp_path / 'new'}"
    part = {"evolution": {"loja-1": dict(list(OLD_KEYS.items())[:5])}}
    part["evolution"]["loja-1"]["creds"] = '{"half":"written"}'
    await _fill(target, part)
    # What a write killed before its rename leaves behind.
    (tmp_path / "new" / "evolution" / "loja-1" / ".tmp-dead").write_text('{"cut')

    report, _ = await _migrate(source, target)

    assert await _contents(target) == volume
    assert report.already == 4
    assert report.copied == _count(volume) - 4
    assert report.problems == []


@pytest_twisted.ensureDeferred
async def test_one_group_can_be_migrated_alone(tmp_path):
    source, volume = await _source("go-sqlite", tmp_path)
    target = f"sqlite:{tmp_path / 'new.db'}"

    report, _ = await _migrate(source, target, group="codechat")

    assert await _contents(target) == {"codechat": volume["codechat"]}
    assert report.problems == []

    report, _ = await _migrate(source, target, group="nobody")
    assert report.problems == [f"group 'nobody': not in {source}"]


class _DamagingProgress(Progress):
    """Progress that, when verification starts, damages a value in DEST."""

    def __init__(self, out, path):
        super().__init__(out, terminal=False)
        self._path = path

    def start(self, label, total):
        if label == "verifying":
            self._path.write_text('{"damaged":true}')
        super().start(label, total)


@pytest_twisted.ensureDeferred
async def test_verification_names_a_value_that_differs_in_dest(tmp_path):
    write_files_volume(tmp_path / "old", {"g": {"i": {"creds": KEYS["creds"]}}})
    source = await _open(f"files:{tmp_path / 'old'}", source=True)
    destination = await _open(f"files:{tmp_path / 'new'}")
    progress = _DamagingProgress(io.StringIO(), tmp_path / "new" / "g" / "i" / "creds")
    try:
        report = await Migration(source, destination, progress).run()
    finally:
        await maybeDeferred(source.stopService)
        await maybeDeferred(destination.stopService)
    assert report.problems == [
        f"group 'g', instance 'i', key 'creds': differs in files:{tmp_path / 'new'}"
    ]
    assert report.verified == 0


#: The working tree, importable from any folder the command runs in.
_ENVIRONMENT = {
    **os.environ,
    "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
}


def _command(*arguments, **options):
    return subprocess.run(
        [sys.executable, "-m", "session_daemon.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env=_ENVIRONMENT,
        **options,
    )


def test_the_command_migrates_verifies_and_prints_its_totals(tmp_path):
    write_go_sqlite_volume(tmp_path / "old", OLD_VOLUME, older=OLDER)
    target = tmp_path / "new.db"

    done = _command("migrate", f"go-sqlite:{tmp_path / 'old'}", f"sqlite:{target}")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"Migrating go-sqlite:{tmp_path / 'old'} -> sqlite:{target}"
    assert "copying: 0/" in done.stdout and "\r" not in done.stdout
    count = _count(OLD_VOLUME)
    assert lines[-3:] == [
        f"Found 2 groups, 7 instances (1 without keys), {count} keys.",
        f"Copied {count} keys, 0 already in DEST.",
        f"Verified {count} keys: all identical in DEST.",
    ]
    connection = sqlite3.connect(target)
    (value,) = connection.execute(
        "SELECT value FROM session_keys WHERE instance_name = 'loja-1' "
        "AND name = 'creds'"
    ).fetchone()
    connection.close()
    assert bytes(value) == KEYS["creds"].encode()


def test_the_command_names_an_unreadable_source_entry_and_fails(tmp_path):
    write_go_sqlite_volume(tmp_path / "old", {"g": {"good": {"creds": "{}"}}})
    (tmp_path / "old" / "g" / "broken.db").write_bytes(b"not a database at all")

    done = _command(
        "migrate", f"go-sqlite:{tmp_path / 'old'}", f"files:{tmp_path / 'new'}"
    )

    assert done.returncode == 1
    assert "PROBLEM: group 'g', instance 'broken': unreadable" in done.stdout
    assert "Verified 1 key: see PROBLEM lines." in done.stdout
    assert (tmp_path / "new" / "g" / "good" / "creds").read_text() == "{}"


def test_the_command_reports_a_corrupt_value_and_succeeds(tmp_path):
    write_files_volume(tmp_path / "old", {"g": {"i": {"a": "{}", "b": "{nope"}}})

    done = _command(
        "migrate", f"files:{tmp_path / 'old'}", "sqlite:new.db", cwd=tmp_path
    )

    assert done.returncode == 0, done.stderr
    assert "skipped, not JSON: group 'g', instance 'i', key 'b'" in done.stdout
    assert "Copied 1 key, 0 already in DEST, 1 skipped (not JSON)." in done.stdout


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["migrate", "nowhere:x", "sqlite:y.db"], "unknown store 'nowhere:x'"),
        (["migrate", "sqlite:a.db", "go-sqlite:x"], "unknown store 'go-sqlite:x'"),
        (["migrate", "files:x", "files:x"], "SOURCE and DEST are the same store"),
        (["migrate", "files:x"], "the following arguments are required: DEST"),
        ([], "migrate"),
    ],
)
def test_a_wrong_command_exits_with_2_and_says_why(tmp_path, arguments, message):
    done = _command(*arguments, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert os.listdir(tmp_path) == []


def test_a_missing_source_is_not_created(tmp_path):
    done = _command("migrate", "sqlite:old.db", "files:new", cwd=tmp_path)
    assert done.returncode == 1
    assert "cannot open sqlite:old.db: no such file" in done.stderr
    assert os.listdir(tmp_path) == []


def test_a_killed_migration_completes_when_run_again(tmp_path):
    """SIGKILL in the middle of copying, then the same command: all there."""
    value = '{"_sessions":{"BQ==":{"registrationId":1}},"version":"v1"}'
    volume = {
        "g": {f"i{n}": {f"pre-key-{k}": value for k in range(300)} for n in range(10)}
    }
    write_files_volume(tmp_path / "old", volume)
    arguments = [
        sys.executable,
        "-m",
        "session_daemon.cli",
        "migrate",
        f"files:{tmp_path / 'old'}",
        f"files:{tmp_path / 'new'}",
    ]
    running = subprocess.Popen(
        arguments, stdout=subprocess.PIPE, text=True, env=_ENVIRONMENT
    )
    for line in running.stdout:
        if line.startswith("copying: ") and not line.endswith(" 0%\n"):
            running.send_signal(signal.SIGKILL)
            break
    running.stdout.close()
    assert running.wait() == -signal.SIGKILL

    done = _command(*arguments[3:])

    assert done.returncode == 0, done.stderr
    assert "Verified 3000 keys: all identical in DEST." in done.stdout
    copied = volume_files(tmp_path / "new")
    assert len(copied) == 3000
    assert set(copied.values()) == {value.encode()}


def test_progress_on_a_terminal_is_one_bar_redrawn():
    out = io.StringIO()
    ticks = iter(range(0, 1000))
    progress = Progress(out, terminal=True, clock=lambda: next(ticks))
    progress.start("copying", 4)
    for _ in range(4):
        progress.advance()
    progress.finish()
    text = out.getvalue()
    assert text.endswith("4/4 keys 100%\n")
    assert text.count("\n") == 1
    assert text.count("\r") == 6
    assert "[" in text and "#" in text


@pytest_twisted.ensureDeferred
async def test_the_go_sqlite_source_refuses_writes(tmp_path):
    write_go_sqlite_volume(tmp_path / "old", {"g": {"i": {"creds": "{}"}}})
    store = await _open(f"go-sqlite:{tmp_path / 'old'}", source=True)
    try:
        with pytest.raises(Exception, match="read-only"):
            await store.write_key("g", "i", "creds", b"[]")
        with pytest.raises(KeyNotFound):
            await store.read_key("g", "../g/i", "creds")
    finally:
        await maybeDeferred(store.stopService)
