"""
The store interface every backend implements, and how a backend is chosen.

A store keeps groups, the instances inside them, and the keys of each
instance.  A value is the JSON text of a key, kept and returned as bytes,
byte for byte.  Every method returns a L{Deferred}; none of them blocks the
reactor.  Names reaching a store have been checked by L{session_daemon.names}.
"""

from zope.interface import Attribute, Interface


class StoreError(Exception):
    """The store could not do what was asked; the details are in the log."""


class InstanceNotFound(Exception):
    """The instance a key was written to does not exist."""


class KeyNotFound(Exception):
    """The key asked for was never written, or was deleted."""


class ISessionStore(Interface):
    """Where groups, instances and their keys are kept."""

    backend = Attribute("A short name of the backend, for logs and metrics.")
    description = Attribute("The store description, with any password hidden.")

    def create_group(group):
        """Create C{group}; creating one that exists is not an error."""

    def delete_group(group):
        """Remove C{group} with all its instances and keys, if it exists."""

    def create_instance(group, instance):
        """Create C{instance} in C{group}, creating the group if needed."""

    def delete_instance(group, instance):
        """Remove C{instance} and all its keys, if it exists."""

    def list_groups():
        """Fire with the sorted names of every group."""

    def list_instances(group):
        """Fire with the sorted names of the instances created in C{group}."""

    def list_keys(group, instance):
        """Fire with the sorted key names of C{instance}, or fail with
        L{InstanceNotFound}."""

    def write_key(group, instance, key, value):
        """Store C{value} (bytes) under C{key}, whole or not at all; fail with
        L{InstanceNotFound} if the instance does not exist."""

    def read_key(group, instance, key):
        """Fire with the bytes stored under C{key}, or fail with
        L{KeyNotFound}."""

    def delete_key(group, instance, key):
        """Remove C{key} if it exists."""

    def check():
        """Fire with None if the store answers, fail with L{StoreError} if not."""
