"""
What the PostgreSQL store promises beyond the shared store suite: several
stores on one database, a hidden password, and a database that is away.
"""

import socket
import time

import psycopg
import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList, gatherResults, maybeDeferred

from session_daemon.store import InstanceNotFound, KeyNotFound, StoreError
from session_daemon.store.postgresql import PostgreSQLStore
from session_daemon.store.registry import store_from_description
from tests import postgres


@pytest.fixture
def database():
    """This run's database, reachable and without tables."""
    url = postgres.database_url()
    postgres.allow_connections()
    postgres.empty(url)
    return url


@pytest.fixture
def stores():
    """Start stores on a URL; every one is stopped after the test."""
    started = []

    def start(url: str, pool_size: int = 2) -> PostgreSQLStore:
        store = PostgreSQLStore(url, pool_size=pool_size)
        store.startService()
        started.append(store)
        return store

    yield start
    for store in started:
        pytest_twisted.blockon(maybeDeferred(store.stopService))


def _rows(url: str, query: str) -> list:
    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute(query).fetchall()


# The description.


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_both_schemes_name_the_store_with_the_password_hidden(scheme):
    store = store_from_description(f"{scheme}://worker:s3cret@db:5432/sessions", 3)
    assert store.backend == "postgresql"
    assert store.description == f"{scheme}://worker:***@db:5432/sessions"


def test_a_bad_url_is_refused_without_showing_its_password():
    with pytest.raises(ValueError) as raised:
        store_from_description("postgresql://worker:s3cret@db/sessions?bogus=1")
    assert "s3cret" not in str(raised.value)
    assert "worker:***@db" in str(raised.value)


# Several stores on one database.


@pytest_twisted.ensureDeferred
async def test_stores_starting_together_create_the_tables_once(database, stores):
    """Concurrent first starts take turns; neither fails."""
    racing = [stores(database) for _ in range(4)]
    await gatherResults([store.check() for store in racing])
    assert _rows(database, "SELECT version FROM session_schema") == [(1,)]


@pytest_twisted.ensureDeferred
async def test_a_write_through_one_store_is_read_at_once_through_another(
    database, stores
):
    one, other = stores(database), stores(database)
    await one.create_instance("g", "i")
    for n in range(5):
        await one.write_key("g", "i", "creds", b'{"n":%d}' % n)
        assert await other.read_key("g", "i", "creds") == b'{"n":%d}' % n
    await other.delete_key("g", "i", "creds")
    with pytest.raises(KeyNotFound):
        await one.read_key("g", "i", "creds")
    assert await other.list_instances("g") == ["i"]


@pytest_twisted.ensureDeferred
async def test_racing_writes_from_two_stores_leave_one_whole_value(database, stores):
    one, other = stores(database), stores(database)
    await one.create_instance("g", "i")
    values = [b'"' + bytes([65 + n]) * 200_000 + b'"' for n in range(8)]
    await gatherResults(
        [
            (one if n % 2 else other).write_key("g", "i", "creds", value)
            for n, value in enumerate(values)
        ]
    )
    assert await one.read_key("g", "i", "creds") in values
    assert await other.read_key("g", "i", "creds") in values


@pytest_twisted.ensureDeferred
async def test_creating_one_instance_from_two_stores_at_once_succeeds(database, stores):
    one, other = stores(database), stores(database)
    await gatherResults(
        [(one, other)[n % 2].create_instance("g", "i") for n in range(10)]
    )
    assert await one.list_instances("g") == ["i"]
    assert await other.list_groups() == ["g"]


@pytest_twisted.ensureDeferred
async def test_writes_racing_a_delete_leave_no_key_of_a_deleted_instance(
    database, stores
):
    """Each racing write is stored before the delete or refused after it."""
    writer, deleter = stores(database, 4), stores(database)
    for round in range(15):
        instance = f"i{round}"
        await writer.create_instance("g", instance)
        writes = [
            writer.write_key("g", instance, f"pre-key-{n}", b"{}") for n in range(20)
        ]
        results = await DeferredList(
            [*writes, deleter.delete_instance("g", instance)], consumeErrors=True
        )
        for succeeded, result in results:
            assert succeeded or result.check(InstanceNotFound)
        with pytest.raises(InstanceNotFound):
            await deleter.list_keys("g", instance)

    assert await writer.list_instances("g") == []
    assert _rows(database, "SELECT count(*) FROM session_keys") == [(0,)]


@pytest_twisted.ensureDeferred
async def test_a_deleted_group_takes_its_instances_and_keys_along(database, stores):
    one, other = stores(database), stores(database)
    await one.create_instance("g", "i")
    await one.write_key("g", "i", "creds", b"{}")
    await other.delete_group("g")
    assert await one.list_groups() == []
    assert _rows(database, "SELECT count(*) FROM session_instances") == [(0,)]
    assert _rows(database, "SELECT count(*) FROM session_keys") == [(0,)]


# A database that is away.


@pytest_twisted.ensureDeferred
async def test_a_store_starts_while_its_database_is_away_and_recovers(database, stores):
    """It refuses operations quickly, then creates its tables once let in."""
    postgres.refuse_connections()
    store = stores(database)

    began = time.monotonic()
    with pytest.raises(StoreError):
        await store.check()
    with pytest.raises(StoreError):
        await store.create_instance("g", "i")
    assert time.monotonic() - began < 2

    postgres.allow_connections()
    assert await store.check() is None
    await store.create_instance("g", "i")
    assert await store.list_instances("g") == ["i"]


@pytest_twisted.ensureDeferred
async def test_a_silent_server_fails_requests_within_seconds(stores):
    """A server that accepts the connection and never answers: the timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        store = stores(f"postgresql://worker:s3cret@127.0.0.1:{port}/sessions")

        began = time.monotonic()
        with pytest.raises(StoreError):
            await store.check()
        assert time.monotonic() - began < 4


@pytest_twisted.ensureDeferred
async def test_connections_cut_by_the_server_are_replaced(database, stores):
    """After the server ends every session, the store reconnects by itself."""
    store = stores(database, 3)
    await store.create_instance("g", "i")
    await gatherResults([store.check() for _ in range(6)])

    postgres.refuse_connections()
    postgres.allow_connections()

    # Each pooled connection may fail once as it is found dead, the readers'
    # and the writer's; after that every operation is served on a new one.
    for _ in range(6):
        await DeferredList([store.check()], consumeErrors=True)
    await DeferredList([store.write_key("g", "i", "creds", b"1")], consumeErrors=True)
    await store.write_key("g", "i", "creds", b'"after"')
    assert await store.read_key("g", "i", "creds") == b'"after"'


@pytest_twisted.ensureDeferred
async def test_a_newer_schema_is_refused(database, stores):
    """A database upgraded by a newer release is not written to."""
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute("CREATE TABLE session_schema (version INTEGER)")
        connection.execute("INSERT INTO session_schema VALUES (99)")
    store = stores(database)
    with pytest.raises(StoreError):
        await store.check()
    assert _rows(database, "SELECT version FROM session_schema") == [(99,)]
