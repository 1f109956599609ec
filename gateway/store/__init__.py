"""Durable storage behind one repository interface: SQLite by default, PostgreSQL by URL."""

from gateway.store.repository import (
    MessageIdConflict,
    Rejection,
    Store,
    StoredMessage,
    StoreError,
    normalise_url,
    redact,
)
from gateway.store.tables import STATE_FILTERS

__all__ = [
    "STATE_FILTERS",
    "MessageIdConflict",
    "Rejection",
    "Store",
    "StoreError",
    "StoredMessage",
    "normalise_url",
    "redact",
]
