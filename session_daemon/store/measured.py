"""A store that measures another: every backend is timed the same way."""

import time

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import implementer

from session_daemon.store import InstanceNotFound, ISessionStore, KeyNotFound

#: The operations of L{ISessionStore} that are timed, as named in metrics.
OPERATIONS = (
    "create_group",
    "delete_group",
    "create_instance",
    "delete_instance",
    "list_groups",
    "list_instances",
    "list_keys",
    "write_key",
    "read_key",
    "delete_key",
    "check",
)

#: Outcomes the contract expects; they are answers, not store failures.
_EXPECTED = (KeyNotFound, InstanceNotFound)


@implementer(ISessionStore)
class MeasuredStore:
    """
    Delegates every operation to C{store}, observing how long it took and
    counting its failures by backend and operation in C{metrics}.

    It is not a service: the store it wraps is started and stopped as before.
    """

    def __init__(self, store, metrics) -> None:
        self.store = store
        self.backend = store.backend
        self.description = store.description
        self._timers = {}
        self._errors = {}
        for operation in OPERATIONS:
            self._timers[operation] = metrics.store_seconds.labels(
                self.backend, operation
            )
            # Created at zero, so that an alert on the rate of errors has a
            # series to read before the first error.
            self._errors[operation] = metrics.store_errors.labels(
                self.backend, operation
            )

    def _measure(self, operation: str, *args) -> Deferred:
        started = time.perf_counter()
        timer = self._timers[operation]
        errors = self._errors[operation]

        def settle(result):
            timer.observe(time.perf_counter() - started)
            if isinstance(result, Failure) and not result.check(*_EXPECTED):
                errors.inc()
            return result

        try:
            answer = getattr(self.store, operation)(*args)
        except Exception:
            # A backend is meant to fail through its Deferred; one that
            # raised still failed.
            errors.inc()
            raise
        return answer.addBoth(settle)

    def create_group(self, group) -> Deferred:
        return self._measure("create_group", group)

    def delete_group(self, group) -> Deferred:
        return self._measure("delete_group", group)

    def create_instance(self, group, instance) -> Deferred:
        return self._measure("create_instance", group, instance)

    def delete_instance(self, group, instance) -> Deferred:
        return self._measure("delete_instance", group, instance)

    def list_groups(self) -> Deferred:
        return self._measure("list_groups")

    def list_instances(self, group) -> Deferred:
        return self._measure("list_instances", group)

    def list_keys(self, group, instance) -> Deferred:
        return self._measure("list_keys", group, instance)

    def write_key(self, group, instance, key, value) -> Deferred:
        return self._measure("write_key", group, instance, key, value)

    def read_key(self, group, instance, key) -> Deferred:
        return self._measure("read_key", group, instance, key)

    def delete_key(self, group, instance, key) -> Deferred:
        return self._measure("delete_key", group, instance, key)

    def check(self) -> Deferred:
        return self._measure("check")
