"""Database tables: the append-only message log, one current-state table per message kind, rejections
and consumer cursors.

SQLAlchemy Core rather than the ORM: the store's hot path is a batched insert of pre-serialised JSON, and
the ORM's unit of work would cost more than the database does here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

from gateway.model import CanonicalObject, MessageKind

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY, so the 64-bit sequence is INTEGER there.
SequenceType = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored as UTC and always read back timezone-aware, on SQLite (no tz support) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


messages = Table(
    "messages",
    metadata,
    Column("seq", SequenceType, primary_key=True, autoincrement=True),
    Column("message_id", String(200), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False, unique=True, comment="sha256 of the idempotency key"),
    Column("kind", String(40), nullable=False, index=True),
    Column("entity_id", String(400), nullable=False, index=True),
    Column("protocol", String(40), nullable=False),
    Column("peer", String(200), nullable=False),
    Column("native_id", String(400), nullable=False),
    Column("version", String(200), nullable=False),
    Column("correlation_id", String(200), nullable=True, index=True),
    Column("received_at", UtcDateTime(), nullable=False, index=True),
    Column("stored_at", UtcDateTime(), nullable=False),
    Column("body", Text, nullable=False, comment="the envelope as canonical JSON"),
    Index("ix_messages_protocol_peer", "protocol", "peer"),
)

rejections = Table(
    "rejections",
    metadata,
    Column("id", SequenceType, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False, index=True),
    Column("protocol", String(40), nullable=False),
    Column("peer", String(200), nullable=False),
    Column("kind", String(40), nullable=True),
    Column("reason", Text, nullable=False),
    Column("raw", Text, nullable=True, comment="the rejected input, truncated"),
)

cursors = Table(
    "cursors",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

adapter_state = Table(
    "adapter_state",
    metadata,
    Column("protocol", String(40), primary_key=True),
    Column("peer", String(200), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("body", Text, nullable=False, comment="the adapter's record as JSON"),
    Column("updated_at", UtcDateTime(), nullable=False),
)
"""What a protocol edge must remember about a peer that is not a canonical object: an OpenADR VEN's registration
and registered reports, a 2030.5 subscription. Keyed by (protocol, peer, name); each row is replaced whole."""

Extractor = Callable[[Any], Any]


@dataclass(frozen=True)
class StateTable:
    """A current-state table and how to fill its indexed columns from a canonical object."""

    table: Table
    columns: dict[str, Extractor]

    def row(self, payload: CanonicalObject, body: str, seq: int, at: datetime) -> dict[str, Any]:
        row = {"id": payload.id, "body": body, "message_seq": seq, "updated_at": at}
        for name, extract in self.columns.items():
            value = extract(payload)
            row[name] = value.value if hasattr(value, "value") else value
        return row


def _state(kind: MessageKind, **columns: Extractor) -> StateTable:
    table = Table(
        f"state_{kind.value}",
        metadata,
        Column("id", String(400), primary_key=True),
        Column("message_seq", BigInteger, nullable=False),
        Column("updated_at", UtcDateTime(), nullable=False),
        Column("body", Text, nullable=False, comment="the canonical object as JSON"),
        *(Column(name, String(200), nullable=True, index=True) for name in columns),
    )
    return StateTable(table, columns)


def _attr(name: str) -> Extractor:
    return lambda payload: getattr(payload, name)


def _interval_start(payload: Any) -> str:
    """ISO text of the interval start: UTC and whole seconds, so it sorts and compares as text on every database."""
    return payload.interval.start.isoformat()


STATE_TABLES: dict[MessageKind, StateTable] = {
    MessageKind.PARTY: _state(MessageKind.PARTY),
    MessageKind.LOCATION: _state(MessageKind.LOCATION, parent_id=_attr("parent_id"), location_kind=_attr("kind")),
    MessageKind.RESOURCE: _state(MessageKind.RESOURCE, owner_id=_attr("owner_id"), location_id=_attr("location_id")),
    MessageKind.TENDER: _state(
        MessageKind.TENDER,
        market_id=_attr("market_id"),
        party_id=_attr("party_id"),
        location_id=_attr("location_id"),
        status=_attr("status"),
    ),
    MessageKind.TRANSACTION: _state(
        MessageKind.TRANSACTION,
        market_id=_attr("market_id"),
        party_id=_attr("party_id"),
        tender_id=_attr("tender_id"),
        clearing_id=_attr("clearing_id"),
        interval_start=_interval_start,
    ),
    MessageKind.POSITION: _state(
        MessageKind.POSITION, market_id=_attr("market_id"), party_id=_attr("party_id"), interval_start=_interval_start
    ),
    MessageKind.DELIVERY: _state(
        MessageKind.DELIVERY,
        party_id=_attr("party_id"),
        location_id=_attr("location_id"),
        interval_start=_interval_start,
    ),
    MessageKind.SETTLEMENT_LINE: _state(
        MessageKind.SETTLEMENT_LINE,
        market_id=_attr("market_id"),
        party_id=_attr("party_id"),
        interval_start=_interval_start,
    ),
    MessageKind.CONTROL: _state(MessageKind.CONTROL, program_id=_attr("program_id"), status=_attr("status")),
    MessageKind.OPERATING_ENVELOPE: _state(MessageKind.OPERATING_ENVELOPE, location_id=_attr("location_id")),
    MessageKind.OVERRIDE: _state(
        MessageKind.OVERRIDE, party_id=_attr("party_id"), subject_id=lambda o: o.subject.id, status=_attr("status")
    ),
    MessageKind.RESPONSE: _state(MessageKind.RESPONSE, subject_id=lambda r: r.subject.id, status=_attr("status")),
    MessageKind.MARKET: _state(MessageKind.MARKET, operator_id=_attr("operator_id")),
    MessageKind.SUBSCRIPTION: _state(
        MessageKind.SUBSCRIPTION, market_id=_attr("market_id"), party_id=_attr("party_id")
    ),
    MessageKind.CLEARING: _state(MessageKind.CLEARING, market_id=_attr("market_id"), interval_start=_interval_start),
}

STATE_FILTERS: dict[MessageKind, list[str]] = {kind: sorted(state.columns) for kind, state in STATE_TABLES.items()}
"""The columns each kind's current state can be filtered by (the API turns them into query parameters)."""
