"""
The store contract, run against every backend in C{conftest.BACKENDS}.

Each behaviour is written once; C{test_x_error} beside C{test_x} checks that
a broken store fails with L{StoreError} and never with anything else.
"""

import pytest
import pytest_twisted
from twisted.internet.defer import gatherResults, maybeDeferred

from session_daemon.store import (
    InstanceNotFound,
    ISessionStore,
    KeyNotFound,
    StoreError,
)
from tests.corpus import INSTANCE_NAMES, KEYS, PLAIN_VALUES


async def _fails_with(error, d):
    with pytest.raises(error):
        await d


def test_store_provides_the_interface(store):
    """Every backend claims, and has, the whole store interface."""
    assert ISessionStore.providedBy(store)
    assert store.backend
    assert store.description


@pytest_twisted.ensureDeferred
async def test_every_real_key_round_trips_byte_for_byte(store):
    """Keys of every Baileys type read back exactly the bytes written."""
    await store.create_instance("g", "i")
    for key, value in KEYS.items():
        await store.write_key("g", "i", key, value.encode())
    for key, value in KEYS.items():
        assert await store.read_key("g", "i", key) == value.encode()
    assert await store.list_keys("g", "i") == sorted(KEYS)


@pytest_twisted.ensureDeferred
async def test_any_json_value_round_trips(store):
    """Strings, arrays, numbers, booleans and null are kept as written."""
    await store.create_instance("g", "i")
    for n, value in enumerate(PLAIN_VALUES):
        await store.write_key("g", "i", f"k{n}", value.encode())
    for n, value in enumerate(PLAIN_VALUES):
        assert await store.read_key("g", "i", f"k{n}") == value.encode()


@pytest_twisted.ensureDeferred
async def test_a_large_value_round_trips(store):
    """A value of several megabytes is kept whole."""
    value = b'"' + b"x" * (4 * 1024 * 1024) + b'"'
    await store.create_instance("g", "i")
    await store.write_key("g", "i", "big", value)
    assert await store.read_key("g", "i", "big") == value


@pytest_twisted.ensureDeferred
async def test_a_key_written_twice_reads_back_the_second_value(store):
    await store.create_instance("g", "i")
    await store.write_key("g", "i", "creds", b'{"v":1}')
    await store.write_key("g", "i", "creds", b'{"v":2}')
    assert await store.read_key("g", "i", "creds") == b'{"v":2}'


@pytest_twisted.ensureDeferred
async def test_a_missing_key_is_not_found(store):
    await store.create_instance("g", "i")
    await _fails_with(KeyNotFound, store.read_key("g", "i", "pre-key-7"))
    await _fails_with(KeyNotFound, store.read_key("g", "nobody", "pre-key-7"))
    await _fails_with(KeyNotFound, store.read_key("nogroup", "i", "pre-key-7"))


@pytest_twisted.ensureDeferred
async def test_writing_into_a_missing_instance_stores_nothing(store):
    """A write into an instance that does not exist fails and leaves no trace."""
    await store.create_instance("g", "i")
    await _fails_with(InstanceNotFound, store.write_key("g", "gone", "creds", b"{}"))
    await _fails_with(InstanceNotFound, store.write_key("h", "i", "creds", b"{}"))
    assert await store.list_instances("g") == ["i"]
    assert await store.list_groups() == ["g"]
    await _fails_with(KeyNotFound, store.read_key("g", "gone", "creds"))


@pytest_twisted.ensureDeferred
async def test_creating_an_instance_creates_its_group(store):
    await store.create_instance("g", "i")
    assert await store.list_groups() == ["g"]


@pytest_twisted.ensureDeferred
async def test_creating_what_exists_changes_nothing(store):
    """Creating a group or instance twice is not an error and keeps its keys."""
    await store.create_group("g")
    await store.create_instance("g", "i")
    await store.write_key("g", "i", "creds", b"{}")
    await store.create_group("g")
    await store.create_instance("g", "i")
    assert await store.list_instances("g") == ["i"]
    assert await store.read_key("g", "i", "creds") == b"{}"


@pytest_twisted.ensureDeferred
async def test_listing_is_sorted_and_includes_instances_without_keys(store):
    for name in reversed(INSTANCE_NAMES):
        await store.create_instance("g", name)
    await store.write_key("g", INSTANCE_NAMES[0], "creds", b"{}")
    assert await store.list_instances("g") == sorted(INSTANCE_NAMES)


@pytest_twisted.ensureDeferred
async def test_an_unknown_group_lists_no_instances(store):
    assert await store.list_instances("nobody") == []


@pytest_twisted.ensureDeferred
async def test_listing_the_keys_of_a_missing_instance_fails(store):
    await _fails_with(InstanceNotFound, store.list_keys("g", "nobody"))


@pytest_twisted.ensureDeferred
async def test_deleting_a_key_removes_only_that_key(store):
    await store.create_instance("g", "i")
    await store.write_key("g", "i", "pre-key-1", b"1")
    await store.write_key("g", "i", "pre-key-2", b"2")
    await store.delete_key("g", "i", "pre-key-1")
    await _fails_with(KeyNotFound, store.read_key("g", "i", "pre-key-1"))
    assert await store.read_key("g", "i", "pre-key-2") == b"2"


@pytest_twisted.ensureDeferred
async def test_deletes_of_what_is_not_there_succeed(store):
    await store.delete_key("g", "i", "creds")
    await store.delete_instance("g", "i")
    await store.delete_group("g")
    await store.create_instance("g", "i")
    await store.delete_key("g", "i", "creds")
    assert await store.list_instances("g") == ["i"]


@pytest_twisted.ensureDeferred
async def test_deleting_an_instance_removes_its_keys_and_nothing_else(store):
    """Other instances, and a same-named instance in another group, stay."""
    for group in ("g", "h"):
        for instance in ("i", "j"):
            await store.create_instance(group, instance)
            await store.write_key(group, instance, "creds", b'"kept"')
    await store.delete_instance("g", "i")

    assert await store.list_instances("g") == ["j"]
    await _fails_with(KeyNotFound, store.read_key("g", "i", "creds"))
    assert await store.read_key("g", "j", "creds") == b'"kept"'
    assert await store.read_key("h", "i", "creds") == b'"kept"'


@pytest_twisted.ensureDeferred
async def test_an_instance_created_again_has_no_old_keys(store):
    await store.create_instance("g", "i")
    await store.write_key("g", "i", "creds", b"{}")
    await store.delete_instance("g", "i")
    await store.create_instance("g", "i")
    await _fails_with(KeyNotFound, store.read_key("g", "i", "creds"))


@pytest_twisted.ensureDeferred
async def test_deleting_a_group_removes_it_and_only_it(store):
    await store.create_instance("g", "i")
    await store.create_instance("h", "i")
    await store.write_key("g", "i", "creds", b"1")
    await store.write_key("h", "i", "creds", b"2")
    await store.delete_group("g")

    assert await store.list_groups() == ["h"]
    assert await store.list_instances("g") == []
    await _fails_with(KeyNotFound, store.read_key("g", "i", "creds"))
    assert await store.read_key("h", "i", "creds") == b"2"


@pytest_twisted.ensureDeferred
async def test_names_are_data_not_paths(store):
    """Names that would mean something as paths are kept as plain names."""
    names = ["...", ".hidden", "a/b", "%2e%2e", "a\\b", "~", "con", "*", "é"]
    for name in names:
        await store.create_instance(name, name)
        await store.write_key(name, name, name, b'"v"')
    assert await store.list_groups() == sorted(names)
    for name in names:
        assert await store.list_instances(name) == [name]
        assert await store.read_key(name, name, name) == b'"v"'


@pytest_twisted.ensureDeferred
async def test_concurrent_writes_to_one_key_leave_one_whole_value(store):
    """Racing writes of large values leave exactly one of them, whole."""
    await store.create_instance("g", "i")
    values = [b'"' + bytes([65 + n]) * 300_000 + b'"' for n in range(8)]
    await gatherResults([store.write_key("g", "i", "creds", v) for v in values])
    assert await store.read_key("g", "i", "creds") in values


@pytest_twisted.ensureDeferred
async def test_concurrent_creates_of_one_instance_succeed(store):
    await gatherResults([store.create_instance("g", "i") for _ in range(10)])
    assert await store.list_instances("g") == ["i"]


@pytest_twisted.ensureDeferred
async def test_a_restarted_store_keeps_every_value(persistent_backend):
    """What a persistent store acknowledged is there after a restart."""
    backend = persistent_backend
    first = backend.open()
    first.startService()
    await first.create_instance("g", "empty")
    await first.create_instance("g", "i")
    for key, value in KEYS.items():
        await first.write_key("g", "i", key, value.encode())
    await maybeDeferred(first.stopService)

    second = backend.open()
    second.startService()
    try:
        assert await second.list_instances("g") == ["empty", "i"]
        for key, value in KEYS.items():
            assert await second.read_key("g", "i", key) == value.encode()
    finally:
        await maybeDeferred(second.stopService)


@pytest_twisted.ensureDeferred
async def test_check_succeeds_while_the_store_answers(store):
    assert await store.check() is None


@pytest_twisted.ensureDeferred
async def test_check_error(store, backend):
    backend.break_store(store)
    await _fails_with(StoreError, store.check())


@pytest_twisted.ensureDeferred
async def test_read_key_error(store, backend):
    await store.create_instance("g", "i")
    await store.write_key("g", "i", "creds", b"{}")
    backend.break_store(store)
    await _fails_with(StoreError, store.read_key("g", "i", "creds"))


@pytest_twisted.ensureDeferred
async def test_write_key_error(store, backend):
    await store.create_instance("g", "i")
    backend.break_store(store)
    await _fails_with(StoreError, store.write_key("g", "i", "creds", b"{}"))


@pytest_twisted.ensureDeferred
async def test_listing_error(store, backend):
    await store.create_instance("g", "i")
    backend.break_store(store)
    await _fails_with(StoreError, store.list_instances("g"))
    await _fails_with(StoreError, store.list_groups())
    await _fails_with(StoreError, store.list_keys("g", "i"))


@pytest_twisted.ensureDeferred
async def test_create_and_delete_error(store, backend):
    backend.break_store(store)
    await _fails_with(StoreError, store.create_group("g"))
    await _fails_with(StoreError, store.create_instance("g", "i"))
    await _fails_with(StoreError, store.delete_key("g", "i", "creds"))
    await _fails_with(StoreError, store.delete_instance("g", "i"))
    await _fails_with(StoreError, store.delete_group("g"))
