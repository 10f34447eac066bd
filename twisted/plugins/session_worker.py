"""The twistd plugin: ``twistd -n session-worker`` runs the worker."""

from twisted.application.service import ServiceMaker

session_worker = ServiceMaker(
    "session-worker",
    "session_daemon.tap",
    "Keeps WhatsApp API auth state (Baileys creds and keys) over HTTP.",
    "session-worker",
)
