"""The message envelope: how any canonical object travels, is stored once, and is traced to its source.

The idempotency key (protocol, peer, native id, version) is what makes "store before acknowledge" safe to
retry: a peer that resends a message it is unsure we received gets the stored record back, not a duplicate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import Field, model_validator

from gateway.model.base import CanonicalModel, Identifier, UtcDatetime, new_id, utc_now
from gateway.model.controls import Control, OperatingEnvelope
from gateway.model.market import Delivery, Position, SettlementLine, Tender, Transaction
from gateway.model.markets import Clearing, Market, Subscription
from gateway.model.overrides import Override, Response
from gateway.model.parties import Location, Party, Resource


class MessageKind(StrEnum):
    PARTY = "party"
    LOCATION = "location"
    RESOURCE = "resource"
    TENDER = "tender"
    TRANSACTION = "transaction"
    POSITION = "position"
    DELIVERY = "delivery"
    SETTLEMENT_LINE = "settlement_line"
    CONTROL = "control"
    OPERATING_ENVELOPE = "operating_envelope"
    OVERRIDE = "override"
    RESPONSE = "response"
    MARKET = "market"
    SUBSCRIPTION = "subscription"
    CLEARING = "clearing"


CanonicalObject = (
    Party
    | Location
    | Resource
    | Tender
    | Transaction
    | Position
    | Delivery
    | SettlementLine
    | Control
    | OperatingEnvelope
    | Override
    | Response
    | Market
    | Subscription
    | Clearing
)
Payload = Annotated[CanonicalObject, Field(discriminator="object_type")]

PAYLOAD_TYPES: dict[MessageKind, type[CanonicalModel]] = {
    MessageKind(model.model_fields["object_type"].default): model
    for model in (
        Party,
        Location,
        Resource,
        Tender,
        Transaction,
        Position,
        Delivery,
        SettlementLine,
        Control,
        OperatingEnvelope,
        Override,
        Response,
        Market,
        Subscription,
        Clearing,
    )
}


class Source(CanonicalModel):
    """Where a message came from, in the sender's own terms."""

    protocol: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")
    peer: str = Field(min_length=1, max_length=200)
    native_id: str = Field(min_length=1, max_length=400)
    version: str = Field(default="0", min_length=1, max_length=200)


def content_version(payload: CanonicalModel) -> str:
    """A version derived from content, for sources that have no version of their own (REST, MQTT).

    Re-sending identical content is then a duplicate, and any change is a new version. Only the fields
    the sender gave count: defaults the gateway fills in (``created_at`` = now) would make every resend new.
    """
    return hashlib.sha256(payload.model_dump_json(exclude_unset=True).encode()).hexdigest()[:32]


class Envelope(CanonicalModel):
    """Carries one canonical object with its provenance and correlation."""

    message_id: Identifier = Field(default_factory=new_id)
    kind: MessageKind | None = Field(default=None, description="filled from payload.object_type when absent")
    source: Source | None = Field(
        default=None,
        description="absent for messages the gateway accepts on its own canonical edges; filled on ingest",
    )
    correlation_id: str | None = Field(default=None, max_length=200)
    created_at: UtcDatetime = Field(default_factory=utc_now)
    received_at: UtcDatetime = Field(default_factory=utc_now)
    payload: Payload

    @model_validator(mode="after")
    def _kind_matches_payload(self) -> Self:
        actual = MessageKind(self.payload.object_type)
        if self.kind is None:
            object.__setattr__(self, "kind", actual)
        elif self.kind is not actual:
            raise ValueError(f"kind '{self.kind.value}' does not match payload object_type '{actual.value}'")
        return self

    @property
    def message_kind(self) -> MessageKind:
        assert self.kind is not None  # set by the validator
        return self.kind

    def with_source(self, protocol: str, peer: str) -> Envelope:
        """This envelope with a source filled in for messages received on a canonical edge (REST, MQTT)."""
        if self.source is not None:
            return self
        source = Source(
            protocol=protocol,
            peer=peer,
            native_id=self.payload.id or self.message_id,
            version=content_version(self.payload),
        )
        return self.model_copy(update={"source": source})

    @property
    def idempotency_key(self) -> str:
        if self.source is None:
            raise ValueError("an envelope without a source has no idempotency key")
        s = self.source
        return "\x1f".join((s.protocol, s.peer, s.native_id, s.version))


def wrap(payload: CanonicalModel, source: Source, *, correlation_id: str | None = None, **fields: Any) -> Envelope:
    """Envelope ``payload`` as an adapter received it."""
    return Envelope(payload=payload, source=source, correlation_id=correlation_id, **fields)  # type: ignore[arg-type]


def received(
    objects: Iterable[CanonicalModel], *, protocol: str, peer: str, correlation_id: str | None = None
) -> list[Envelope]:
    """Envelopes for objects a protocol edge received from ``peer``: each object's own id is its native id and its
    content its version, so a peer that sends the same object again is a duplicate and a change a new version."""
    return [
        Envelope(
            payload=obj,  # type: ignore[arg-type]
            source=Source(protocol=protocol, peer=peer, native_id=obj.id, version=content_version(obj)),  # type: ignore[attr-defined]
            correlation_id=correlation_id,
        )
        for obj in objects
    ]
