"""session-worker: keeps the Baileys auth state of WhatsApp API servers."""

__version__ = "1.0.0"
