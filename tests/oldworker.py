"""Volumes laid out the way the old Go worker left them, for tests."""

import json
import os
import sqlite3


def write_files_volume(root, groups: dict) -> None:
    """
    Write C{groups} (group -> instance -> key -> JSON text) as the Go
    worker's files image did: folders joined from the names as they are, and
    each key's JSON text written in place.
    """
    for group, instances in groups.items():
        for instance, keys in instances.items():
            folder = os.path.join(root, group, instance)
            os.makedirs(folder, exist_ok=True)
            for key, value in keys.items():
                with open(os.path.join(folder, key), "w", encoding="utf-8") as file:
                    file.write(value)


def write_go_sqlite_volume(root, groups: dict, older: dict | None = None) -> None:
    """
    Write C{groups} as the Go worker's sqlite image did: one database per
    instance, one row per write.  C{older} (same shape) holds values written
    before, so that each key has several rows and the last one is current.
    """
    older = older or {}
    for group, instances in groups.items():
        os.makedirs(os.path.join(root, group), exist_ok=True)
        for instance, keys in instances.items():
            path = os.path.join(root, group, f"{instance}.db")
            connection = sqlite3.connect(path)
            connection.execute(
                "CREATE TABLE IF NOT EXISTS creds ("
                "id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, "
                "content JSON NOT NULL)"
            )
            history = older.get(group, {}).get(instance, {})
            for rows in (history, keys):
                for key, value in rows.items():
                    # content is what the client sent in data, JSON-encoded:
                    # a JSON string whose text is the value.
                    connection.execute(
                        "INSERT INTO creds (name, content) VALUES (?, ?)",
                        (key, json.dumps(value)),
                    )
            connection.commit()
            connection.close()


def volume_files(root) -> dict[str, bytes]:
    """Every file under C{root}, by path relative to it, with its content."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as file:
                found[os.path.relpath(path, root)] = file.read()
    return found
