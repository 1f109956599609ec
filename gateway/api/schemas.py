"""Response shapes of the REST API (what clients read back), kept apart from the canonical model."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from gateway.model import Envelope, MessageKind
from gateway.store import StoredMessage


class StoredMessageOut(BaseModel):
    """A message as stored: ``duplicate`` is true when this exact message (same idempotency key) was already there."""

    seq: int
    message_id: str
    kind: MessageKind
    duplicate: bool
    stored_at: datetime
    envelope: Envelope

    @classmethod
    def of(cls, record: StoredMessage) -> StoredMessageOut:
        env = record.envelope
        return cls(
            seq=record.seq,
            message_id=env.message_id,
            kind=env.message_kind,
            duplicate=record.duplicate,
            stored_at=record.stored_at,
            envelope=env,
        )


class MessagePage(BaseModel):
    items: list[StoredMessageOut]
    next_after_seq: int | None = Field(description="pass as after_seq to read on; null at the end of the log")


class DatabaseHealth(BaseModel):
    ok: bool
    backend: str
    log_seq: int | None = None


class MqttHealth(BaseModel):
    enabled: bool
    connected: bool = False
    published_seq: int | None = None


class Health(BaseModel):
    status: str = Field(description="ok, or degraded when the database or a configured broker is unreachable")
    version: str
    database: DatabaseHealth
    mqtt: MqttHealth
    bus_published: int
    counts: dict[str, int]


class RejectionOut(BaseModel):
    """A refused input as the store recorded it (the raw bytes stay in the store)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    protocol: str
    peer: str
    kind: str | None
    reason: str
