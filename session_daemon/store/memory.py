"""A store kept in a dict: for tests and trials; it keeps nothing on exit."""

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from session_daemon.store import (
    InstanceNotFound,
    ISessionStore,
    KeyNotFound,
    StoreError,
)


@implementer(ISessionStore)
class MemoryStore(Service):
    """
    Groups, instances and keys in memory.

    Set C{broken} to make every operation fail with L{StoreError}, as a
    store whose disk or server has gone away would.
    """

    backend = "memory"
    description = "memory:"

    def __init__(self) -> None:
        self.broken = False
        # group -> instance -> key -> value
        self._groups: dict[str, dict[str, dict[str, bytes]]] = {}

    def _answer(self, action, *args) -> Deferred:
        if self.broken:
            return fail(StoreError("memory store is broken"))
        try:
            return succeed(action(*args))
        except Exception as e:
            return fail(e)

    def create_group(self, group) -> Deferred:
        return self._answer(self._groups.setdefault, group, {})

    def delete_group(self, group) -> Deferred:
        return self._answer(self._groups.pop, group, None)

    def create_instance(self, group, instance) -> Deferred:
        def create():
            self._groups.setdefault(group, {}).setdefault(instance, {})

        return self._answer(create)

    def delete_instance(self, group, instance) -> Deferred:
        return self._answer(self._groups.get(group, {}).pop, instance, None)

    def list_groups(self) -> Deferred:
        return self._answer(sorted, self._groups)

    def list_instances(self, group) -> Deferred:
        return self._answer(sorted, self._groups.get(group, {}))

    def list_keys(self, group, instance) -> Deferred:
        return self._answer(lambda: sorted(self._keys(group, instance)))

    def write_key(self, group, instance, key, value) -> Deferred:
        def write():
            self._keys(group, instance)[key] = bytes(value)

        return self._answer(write)

    def read_key(self, group, instance, key) -> Deferred:
        def read():
            keys = self._groups.get(group, {}).get(instance, {})
            if key not in keys:
                raise KeyNotFound(key)
            return keys[key]

        return self._answer(read)

    def delete_key(self, group, instance, key) -> Deferred:
        def delete():
            self._groups.get(group, {}).get(instance, {}).pop(key, None)

        return self._answer(delete)

    def check(self) -> Deferred:
        return self._answer(lambda: None)

    def _keys(self, group, instance) -> dict[str, bytes]:
        try:
            return self._groups[group][instance]
        except KeyError:
            raise InstanceNotFound(instance) from None
