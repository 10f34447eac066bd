"""The files store against volumes of the old Go worker, and names as file names."""

import os

import pytest
import pytest_twisted
from twisted.internet.defer import ensureDeferred, gatherResults, maybeDeferred

from session_daemon.store import InstanceNotFound, KeyNotFound
from session_daemon.store.filenames import decode_name, encode_name
from session_daemon.store.files import FilesStore
from session_daemon.store.registry import store_from_description
from tests.corpus import INSTANCE_NAMES, KEYS, PLAIN_VALUES
from tests.oldworker import volume_files, write_files_volume

#: Keys and instances the old worker could hold as file names.
OLD_KEYS = {key: value for key, value in KEYS.items() if "/" not in key}
OLD_INSTANCES = [name for name in INSTANCE_NAMES if not name.startswith(".")]

#: Names that mean something as paths, or cannot be file names as they are.
HARD_NAMES = [
    ".",
    "..",
    "...",
    ".hidden",
    "a/b",
    "/",
    "../outside",
    "../../etc/passwd",
    "/etc/passwd",
    "%",
    "%25",
    "%2F",
    "%#deadbeef",
    ".tmp-0123",
    ".name",
    "a\\b",
    "tab\there",
    "new\nline",
    "é" * 64,
    "/" * 128,
    "%" * 128,
]


@pytest.fixture
def root(tmp_path):
    return tmp_path / "instances"


async def _started(root, threads=2):
    store = FilesStore(str(root), threads=threads)
    store.startService()
    return store


@pytest_twisted.ensureDeferred
async def test_an_old_files_volume_is_served_as_it_is(root):
    """Every group, instance and key the old worker wrote reads back unchanged."""
    groups = {
        "evolution": {name: OLD_KEYS for name in OLD_INSTANCES},
        "codechat": {"5511987654321": {"creds": KEYS["creds"]}},
    }
    write_files_volume(root, groups)
    # Beside the instances: what is not an instance folder is not listed.
    (root / "evolution" / "notes.txt").write_text("kept")
    (root / "evolution" / "old.db").write_bytes(b"")
    (root / "sessions.db").write_bytes(b"")

    store = await _started(root)
    try:
        assert await store.list_groups() == ["codechat", "evolution"]
        assert await store.list_instances("evolution") == sorted(OLD_INSTANCES)
        for instance in OLD_INSTANCES:
            assert await store.list_keys("evolution", instance) == sorted(OLD_KEYS)
            for key, value in OLD_KEYS.items():
                read = await store.read_key("evolution", instance, key)
                assert read == value.encode()
    finally:
        await maybeDeferred(store.stopService)


@pytest_twisted.ensureDeferred
async def test_names_the_old_worker_could_hold_keep_their_file_names(root):
    """What is written here lands where the old worker would read it."""
    store = await _started(root)
    try:
        await store.create_instance("evolution", "Loja São João")
        await store.create_instance("evolution", "empty")
        for key, value in OLD_KEYS.items():
            await store.write_key("evolution", "Loja São João", key, value.encode())
    finally:
        await maybeDeferred(store.stopService)

    expected = {
        os.path.join("evolution", "Loja São João", key): value.encode()
        for key, value in OLD_KEYS.items()
    }
    assert volume_files(root) == expected
    assert (root / "evolution" / "empty").is_dir()


@pytest_twisted.ensureDeferred
async def test_every_name_round_trips(root):
    """Every name of PROTOCOL.md and the corpus, and the hard ones, comes back."""
    names = sorted({*KEYS, *INSTANCE_NAMES, *HARD_NAMES, "evolution", "k" * 512})
    store = await _started(root)
    try:
        await store.create_instance("g", "i")
        for name in names:
            await store.create_instance(name, name)
            await store.write_key(name, name, name, b'"' + name.encode() + b'"')
            await store.write_key("g", "i", name, b"[]")

        assert await store.list_groups() == sorted({*names, "g"})
        assert await store.list_keys("g", "i") == names
        for name in names:
            assert await store.list_instances(name) == [name]
            assert await store.list_keys(name, name) == [name]
            read = await store.read_key(name, name, name)
            assert read == b'"' + name.encode() + b'"'
    finally:
        await maybeDeferred(store.stopService)


def test_names_encode_reversibly_and_only_when_needed():
    """Plain names keep their file name; others come back from theirs."""
    for name in [*KEYS, *INSTANCE_NAMES, *HARD_NAMES]:
        filename = encode_name(name)
        assert "/" not in filename and "\0" not in filename
        assert filename not in (".", "..")
        assert len(filename.encode()) <= 255
        plain = "/" not in name and "%" not in name and not name.startswith(".")
        if plain and name.isprintable():
            assert filename == name
        if decode_name(filename) is None:
            assert filename.startswith("%#")
        else:
            assert decode_name(filename) == name


@pytest_twisted.ensureDeferred
async def test_no_name_reaches_outside_the_root(tmp_path, root):
    """Writing and deleting under path-like names touches nothing outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "creds").write_text('{"not":"yours"}')
    (tmp_path / "passwd").write_text("root:x:0:0")
    before = volume_files(tmp_path)

    store = await _started(root)
    try:
        for name in HARD_NAMES:
            await store.create_instance(name, name)
            await store.write_key(name, name, name, b"{}")
            await store.write_key(name, name, "creds", b"{}")
        for name in HARD_NAMES:
            await store.delete_key(name, name, name)
            await store.delete_instance(name, name)
            await store.delete_group(name)
        assert await store.list_groups() == []
    finally:
        await maybeDeferred(store.stopService)

    after = volume_files(tmp_path)
    assert {p: v for p, v in after.items() if not p.startswith("instances")} == before
    assert os.listdir(root) == []


@pytest_twisted.ensureDeferred
async def test_deleting_removes_its_files_and_only_its_files(root):
    """Stray files beside an instance or a group survive its deletion."""
    write_files_volume(
        root, {"g": {"i": {"creds": "{}"}, "j": {"creds": "{}"}}, "h": {"i": {}}}
    )
    (root / "g" / "notes.txt").write_text("kept")
    (root / "g" / "i.db").write_text("kept")
    (root / "sessions.db").write_text("kept")

    store = await _started(root)
    try:
        await store.delete_instance("g", "i")
        assert sorted(os.listdir(root / "g")) == ["i.db", "j", "notes.txt"]
        await store.delete_instance("g", "notes.txt")
        await store.delete_group("g")
        assert sorted(os.listdir(root)) == ["h", "sessions.db"]
        assert await store.list_instances("h") == ["i"]
    finally:
        await maybeDeferred(store.stopService)


@pytest_twisted.ensureDeferred
async def test_temporary_files_are_never_keys_and_are_removed_at_start(root):
    """What an interrupted write or delete left is skipped, then cleaned."""
    write_files_volume(root, {"g": {"i": {"creds": "{}"}}})
    (root / "g" / "i" / ".tmp-3f2a").write_text('{"half')
    (root / "g" / ".tmp-9c1d").mkdir()
    (root / "g" / ".tmp-9c1d" / "creds").write_text("{}")
    (root / ".tmp-77").mkdir()

    store = await _started(root)
    try:
        assert await store.list_groups() == ["g"]
        assert await store.list_instances("g") == ["i"]
        assert await store.list_keys("g", "i") == ["creds"]
    finally:
        await maybeDeferred(store.stopService)
    assert volume_files(root) == {os.path.join("g", "i", "creds"): b"{}"}
    assert sorted(os.listdir(root / "g")) == ["i"]


@pytest_twisted.ensureDeferred
async def test_a_write_racing_a_delete_never_makes_the_instance_again(root):
    """Writes that lose the race fail as writes into a missing instance."""
    store = await _started(root, threads=8)
    try:
        for _ in range(20):
            await store.create_instance("g", "i")
            writes = [
                store.write_key("g", "i", f"pre-key-{n}", b'"v"') for n in range(16)
            ]
            deleted = store.delete_instance("g", "i")
            outcomes = [ensureDeferred(_outcome(d)) for d in [*writes, deleted]]
            results = await gatherResults(outcomes)
            assert set(results) <= {None, InstanceNotFound}
            assert await store.list_instances("g") == []
            assert not (root / "g" / "i").exists()
    finally:
        await maybeDeferred(store.stopService)


async def _outcome(d):
    try:
        await d
    except Exception as e:
        return type(e)
    return None


@pytest_twisted.ensureDeferred
async def test_a_long_key_is_kept_inside_its_file(root):
    """A key too long for a file name reads, lists and deletes like any other."""
    key = "app-state-sync-key-" + "A/+=" * 120
    store = await _started(root)
    try:
        await store.create_instance("g", "i")
        for value in PLAIN_VALUES:
            await store.write_key("g", "i", key, value.encode())
            assert await store.read_key("g", "i", key) == value.encode()
        assert await store.list_keys("g", "i") == [key]
        with pytest.raises(KeyNotFound):
            await store.read_key("g", "i", key + "B")
        await store.delete_key("g", "i", key)
        assert await store.list_keys("g", "i") == []
    finally:
        await maybeDeferred(store.stopService)


def test_the_files_scheme_names_a_files_store(tmp_path):
    store = store_from_description(f"files:{tmp_path}", 3)
    assert isinstance(store, FilesStore)
    assert store.root == str(tmp_path)
    assert store.description == f"files:{tmp_path}"
    with pytest.raises(ValueError, match="needs a folder"):
        store_from_description("files:")
