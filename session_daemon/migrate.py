"""
Copy every group, instance and key from one store to another, then check
that the destination holds every value of the source.

Both stores are used through L{ISessionStore} alone, so any backend can be
either end.  The source is only read.  A key already holding the source's
value is left as it is, so a migration that was interrupted, or that ran
before, can simply be run again.
"""

import json

from attrs import Factory, define
from twisted.internet.defer import DeferredSemaphore, ensureDeferred, gatherResults

from session_daemon.store import KeyNotFound

#: How many keys are read and written at the same time.
PARALLEL_KEYS = 16


class DestinationFailed(Exception):
    """The destination refused a write; the migration cannot go on."""


@define
class Report:
    """What a migration found, did and checked."""

    groups: int = 0
    instances: int = 0
    empty_instances: int = 0
    keys: int = 0
    copied: int = 0
    already: int = 0
    verified: int = 0
    #: Source values that are not JSON text, by name: skipped, not copied.
    invalid: list[str] = Factory(list)
    #: Entries that could not be read, or differ in the destination.
    problems: list[str] = Factory(list)


def describe(group: str, instance: str | None = None, key: str | None = None) -> str:
    """An entry's full name, unambiguous whatever characters the names hold."""
    parts = [f"group {group!r}"]
    if instance is not None:
        parts.append(f"instance {instance!r}")
    if key is not None:
        parts.append(f"key {key!r}")
    return ", ".join(parts)


def _is_json(value: bytes) -> bool:
    try:
        json.loads(value.decode("utf-8"))
    except ValueError:
        return False
    return True


def _reason(error: Exception) -> str:
    return str(error) or type(error).__name__


def _each_key(limit, operation, group, instance, keys):
    """Run C{operation(group, instance, key)} for each key, a few at a time."""

    def one(key):
        return ensureDeferred(operation(group, instance, key))

    d = gatherResults([limit.run(one, key) for key in keys], consumeErrors=True)
    # The first failure itself, rather than the FirstError wrapping it.
    d.addErrback(lambda failure: failure.value.subFailure)
    return d


class Migration:
    """One run of a migration from C{source} to C{destination}."""

    def __init__(self, source, destination, progress, dry_run=False, group=None):
        self.source = source
        self.destination = destination
        self.progress = progress
        self.dry_run = dry_run
        self.group = group
        self.report = Report()
        # group -> instance -> keys, as listed in the source.
        # XXX: every key name is held in memory for the run: some hundred
        # bytes per key, so tens of millions of keys need gigabytes.
        self._plan: dict[str, dict[str, list[str]]] = {}
        self._skipped: set[tuple[str, str, str]] = set()

    async def run(self) -> Report:
        """List the source, copy it, then verify the destination."""
        await self._list()
        await self._copy()
        if not self.dry_run:
            await self._verify()
        return self.report

    async def _list(self) -> None:
        groups = await self.source.list_groups()
        if self.group is not None:
            groups = [g for g in groups if g == self.group]
            if not groups:
                self.report.problems.append(
                    f"{describe(self.group)}: not in {self.source.description}"
                )

        for group in groups:
            self._plan[group] = {}
            for instance in await self.source.list_instances(group):
                try:
                    keys = await self.source.list_keys(group, instance)
                except Exception as e:
                    self.report.problems.append(
                        f"{describe(group, instance)}: unreadable: {_reason(e)}"
                    )
                    continue
                self._plan[group][instance] = keys
                self.report.instances += 1
                self.report.empty_instances += not keys
                self.report.keys += len(keys)
        self.report.groups = len(self._plan)

    async def _copy(self) -> None:
        self.progress.start(
            "would copy" if self.dry_run else "copying", self.report.keys
        )
        limit = DeferredSemaphore(PARALLEL_KEYS)
        for group, instances in self._plan.items():
            if not self.dry_run:
                await self._to_destination(self.destination.create_group, group)
            for instance, keys in instances.items():
                if not self.dry_run:
                    await self._to_destination(
                        self.destination.create_instance, group, instance
                    )
                await _each_key(limit, self._copy_key, group, instance, keys)
        self.progress.finish()

    async def _copy_key(self, group: str, instance: str, key: str) -> None:
        value = await self._read_source(group, instance, key)
        if value is not None:
            await self._put(group, instance, key, value)
        self.progress.advance()

    async def _read_source(self, group, instance, key) -> bytes | None:
        """The source value, or None (reported) if it cannot be copied."""
        try:
            value = await self.source.read_key(group, instance, key)
        except Exception as e:
            self._skipped.add((group, instance, key))
            self.report.problems.append(
                f"{describe(group, instance, key)}: unreadable: {_reason(e)}"
            )
            return None
        if not _is_json(value):
            self._skipped.add((group, instance, key))
            self.report.invalid.append(describe(group, instance, key))
            return None
        return value

    async def _put(self, group, instance, key, value: bytes) -> None:
        if self.dry_run:
            self.report.copied += 1
            return
        try:
            present = await self.destination.read_key(group, instance, key)
        except KeyNotFound:
            present = None
        if present == value:
            self.report.already += 1
            return
        await self._to_destination(
            self.destination.write_key, group, instance, key, value
        )
        self.report.copied += 1

    async def _to_destination(self, operation, *args) -> None:
        try:
            await operation(*args)
        except Exception as e:
            raise DestinationFailed(
                f"{self.destination.description} refused to "
                f"{operation.__name__.replace('_', ' ')} "
                f"({describe(*args[:3])}): {_reason(e)}"
            ) from None

    async def _verify(self) -> None:
        self.progress.start("verifying", self.report.keys)
        limit = DeferredSemaphore(PARALLEL_KEYS)
        for group, instances in self._plan.items():
            present = set(await self.destination.list_instances(group))
            for instance, keys in instances.items():
                if instance not in present:
                    self.report.problems.append(
                        f"{describe(group, instance)}: missing in "
                        f"{self.destination.description}"
                    )
                await _each_key(limit, self._verify_key, group, instance, keys)
        self.progress.finish()

    async def _verify_key(self, group: str, instance: str, key: str) -> None:
        self.progress.advance()
        if (group, instance, key) in self._skipped:
            return
        name = describe(group, instance, key)
        try:
            expected = await self.source.read_key(group, instance, key)
        except Exception as e:
            self.report.problems.append(f"{name}: unreadable: {_reason(e)}")
            return
        try:
            found = await self.destination.read_key(group, instance, key)
        except KeyNotFound:
            found = None
        except Exception as e:
            self.report.problems.append(
                f"{name}: unreadable in {self.destination.description}: {_reason(e)}"
            )
            return
        if found is None:
            self.report.problems.append(
                f"{name}: missing in {self.destination.description}"
            )
        elif found != expected:
            self.report.problems.append(
                f"{name}: differs in {self.destination.description}"
            )
        else:
            self.report.verified += 1
