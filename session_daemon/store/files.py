"""
The files store: the old Go worker's layout, C{<root>/<group>/<instance>/<key>},
one file per key holding the value's JSON text.

Names become file names through L{session_daemon.store.filenames}.  A name
too long for a file name is kept inside: a hashed folder holds it in a
C{.name} file, a hashed key file starts with it and a NUL byte (neither a
name nor JSON text holds a raw NUL).  Every file name starting with a dot is
the store's own: temporary files and folders, and C{.name}.
"""

import contextlib
import errno
import os
import shutil
import uuid

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import implementer

from session_daemon.store import (
    InstanceNotFound,
    ISessionStore,
    KeyNotFound,
    StoreError,
)
from session_daemon.store.filenames import (
    TEMPORARY,
    decode_name,
    encode_name,
    is_hashed,
)
from session_daemon.store.threaded import ThreadedStore

_log = Logger()

#: The file inside a hashed folder that holds the folder's name.
NAME_FILE = ".name"

# Keys are private keys: readable by the worker's user only.
# XXX: an old Go worker running as another user cannot read what we write.
_FILE_MODE = 0o600
_FOLDER_MODE = 0o700


@implementer(ISessionStore)
class FilesStore(ThreadedStore):
    """
    Groups and instances as folders, keys as files, under C{root}.

    Every write goes to a temporary file of its own in the instance folder,
    synced, then renamed over the key and the folder synced: a reader, or a
    restart after a crash, finds the old value or the new one, whole.
    Deletes first rename a folder out of the way, so that nothing written
    afterwards can land in it, then remove it.
    """

    backend = "files"

    #: Whether starting removes what interrupted writes left; a migration
    #: source is only read, so it leaves them (they are never listed).
    clean_at_start = True

    def __init__(self, root: str, threads: int = 4, reactor=None) -> None:
        super().__init__(threads, reactor)
        self.root = root
        self.description = f"files:{root}"

    def startService(self) -> None:
        """Create the root if needed, remove what interrupted writes left, start."""
        try:
            if self.clean_at_start:
                os.makedirs(self.root, mode=_FOLDER_MODE, exist_ok=True)
                removed = _remove_temporaries(self.root)
            elif not os.path.isdir(self.root):
                raise NotADirectoryError(errno.ENOTDIR, "not a folder", self.root)
            else:
                removed = 0
        except OSError as e:
            raise StoreError(f"cannot open {self.description}: {e}") from None
        if removed:
            _log.info(
                "Removed {count} temporary files or folders left in {root} "
                "by interrupted writes or deletes",
                count=removed,
                root=self.root,
            )
        super().startService()

    # Writes.

    def create_group(self, group) -> Deferred:
        return self._run(self._create_group, group)

    def delete_group(self, group) -> Deferred:
        return self._run(self._delete_group, group)

    def create_instance(self, group, instance) -> Deferred:
        return self._run(self._create_instance, group, instance)

    def delete_instance(self, group, instance) -> Deferred:
        return self._run(self._delete_instance, group, instance)

    def write_key(self, group, instance, key, value) -> Deferred:
        return self._run(self._write_key, group, instance, key, bytes(value))

    def delete_key(self, group, instance, key) -> Deferred:
        return self._run(self._delete_key, group, instance, key)

    # Reads.

    def list_groups(self) -> Deferred:
        return self._run(self._list_groups)

    def list_instances(self, group) -> Deferred:
        return self._run(self._list_instances, group)

    def list_keys(self, group, instance) -> Deferred:
        return self._run(self._list_keys, group, instance)

    def read_key(self, group, instance, key) -> Deferred:
        return self._run(self._read_key, group, instance, key)

    def check(self) -> Deferred:
        return self._run(self._check)

    # The blocking work, run in the pool.

    def _group_folder(self, group: str) -> str:
        return os.path.join(self.root, encode_name(group))

    def _instance_folder(self, group: str, instance: str) -> str:
        return os.path.join(self._group_folder(group), encode_name(instance))

    def _broken(self) -> bool:
        # A path that runs into a missing folder, or a file where a folder
        # should be, names something absent; unless the root itself is what
        # is gone, and then the store is broken.
        return not os.path.isdir(self.root)

    def _create_group(self, group: str) -> None:
        _make_folder(self.root, group)

    def _create_instance(self, group: str, instance: str) -> None:
        # A delete of the group may rename its folder away between the two
        # steps; the group is then made again, as a create after it would.
        for _ in range(3):
            folder = _make_folder(self.root, group)
            try:
                _make_folder(folder, instance)
                return
            except FileNotFoundError:
                continue
        raise StoreError(f"instance {instance!r} kept losing its group folder")

    def _delete_group(self, group: str) -> None:
        _remove_folder(self.root, group)

    def _delete_instance(self, group: str, instance: str) -> None:
        try:
            _remove_folder(self._group_folder(group), instance)
        except (FileNotFoundError, NotADirectoryError):
            if self._broken():
                raise

    def _write_key(self, group: str, instance: str, key: str, value: bytes) -> None:
        folder = self._instance_folder(group, instance)
        filename = encode_name(key)
        if is_hashed(filename):
            value = key.encode("utf-8") + b"\0" + value

        temporary = os.path.join(folder, TEMPORARY + uuid.uuid4().hex)
        try:
            descriptor = os.open(
                temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE
            )
        except (FileNotFoundError, NotADirectoryError):
            if self._broken():
                raise
            raise InstanceNotFound(instance) from None

        try:
            with open(descriptor, "wb") as file:
                file.write(value)
                file.flush()
                os.fsync(file.fileno())
            # The rename finds no temporary file if the instance was deleted
            # meanwhile (its folder renamed away): the write then fails, and
            # the instance is not made again by it.
            os.rename(temporary, os.path.join(folder, filename))
        except FileNotFoundError:
            raise InstanceNotFound(instance) from None
        except BaseException:
            _remove_quietly(temporary)
            raise
        # If the instance was deleted right after the rename, the write came
        # first and its value went with the instance: nothing is left to sync.
        with contextlib.suppress(FileNotFoundError):
            _sync_folder(folder)

    def _read_key(self, group: str, instance: str, key: str) -> bytes:
        filename = encode_name(key)
        path = os.path.join(self._instance_folder(group, instance), filename)
        try:
            with open(path, "rb") as file:
                content = file.read()
        except (FileNotFoundError, IsADirectoryError):
            raise KeyNotFound(key) from None
        except NotADirectoryError:
            if self._broken():
                raise
            raise KeyNotFound(key) from None

        if not is_hashed(filename):
            return content
        name, _, value = content.partition(b"\0")
        if name != key.encode("utf-8"):
            raise KeyNotFound(key)
        return value

    def _delete_key(self, group: str, instance: str, key: str) -> None:
        folder = self._instance_folder(group, instance)
        try:
            os.unlink(os.path.join(folder, encode_name(key)))
        except (FileNotFoundError, IsADirectoryError):
            return
        except NotADirectoryError:
            if self._broken():
                raise
            return
        _sync_folder(folder)

    def _list_groups(self) -> list[str]:
        return _folder_names(self.root)

    def _list_instances(self, group: str) -> list[str]:
        try:
            return _folder_names(self._group_folder(group))
        except (FileNotFoundError, NotADirectoryError):
            if self._broken():
                raise
            return []

    def _list_keys(self, group: str, instance: str) -> list[str]:
        folder = self._instance_folder(group, instance)
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            if self._broken():
                raise
            raise InstanceNotFound(instance) from None

        keys = []
        for entry in entries:
            if not entry.is_file(follow_symlinks=False):
                continue
            name = decode_name(entry.name)
            if name is None and is_hashed(entry.name):
                name = _hashed_key_name(entry.path)
            if name is not None:
                keys.append(name)
        return sorted(keys)

    def _check(self) -> None:
        if not os.path.isdir(self.root):
            raise NotADirectoryError(f"{self.root} is not a folder")


def _make_folder(parent: str, name: str) -> str:
    """Make the folder of C{name} in C{parent} if needed; return its path."""
    filename = encode_name(name)
    path = os.path.join(parent, filename)
    if os.path.isdir(path):
        return path

    if is_hashed(filename):
        # The folder appears with its name inside, or not at all.
        temporary = os.path.join(parent, TEMPORARY + uuid.uuid4().hex)
        os.mkdir(temporary, _FOLDER_MODE)
        _write_whole(os.path.join(temporary, NAME_FILE), name.encode("utf-8"))
        try:
            os.rename(temporary, path)
        except OSError:
            shutil.rmtree(temporary, ignore_errors=True)
            if not os.path.isdir(path):
                raise
    else:
        try:
            os.mkdir(path, _FOLDER_MODE)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
    _sync_folder(parent)
    return path


def _remove_folder(parent: str, name: str) -> None:
    """Remove the folder of C{name} in C{parent} and everything in it."""
    path = os.path.join(parent, encode_name(name))
    if not os.path.isdir(path):
        # Missing, or a stray file: in neither case a group or instance.
        if not os.path.isdir(parent):
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", parent)
        return
    # Once renamed, the folder cannot receive new keys; what is left of it
    # if the removal is interrupted is removed at the next start.
    doomed = os.path.join(parent, TEMPORARY + uuid.uuid4().hex)
    try:
        os.rename(path, doomed)
    except FileNotFoundError:
        return
    _sync_folder(parent)
    # XXX: a write racing the removal can leave the renamed folder behind;
    # it is never listed, and takes disk space until the next start.
    shutil.rmtree(doomed, ignore_errors=True)


def _folder_names(parent: str) -> list[str]:
    names = []
    for entry in os.scandir(parent):
        if not entry.is_dir(follow_symlinks=False):
            continue
        name = decode_name(entry.name)
        if name is None and is_hashed(entry.name):
            name = _read_text(os.path.join(entry.path, NAME_FILE))
        if name is not None:
            names.append(name)
    return sorted(names)


def _hashed_key_name(path: str) -> str | None:
    try:
        with open(path, "rb") as file:
            # A name's encoding is at most a few kilobytes.
            head = file.read(8192)
    except FileNotFoundError:
        return None
    name, separator, _ = head.partition(b"\0")
    return name.decode("utf-8") if separator else None


def _read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as file:
            return file.read().decode("utf-8")
    except FileNotFoundError:
        return None


def _write_whole(path: str, content: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    with open(descriptor, "wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())


def _sync_folder(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _remove_temporaries(root: str) -> int:
    """Remove the temporary files and folders under C{root}; return how many."""
    removed = 0
    folders = [root]
    for depth in range(3):
        below = []
        for folder in folders:
            for entry in os.scandir(folder):
                if entry.name.startswith(TEMPORARY):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
                    removed += 1
                elif depth < 2 and entry.is_dir(follow_symlinks=False):
                    below.append(entry.path)
        folders = below
    return removed
