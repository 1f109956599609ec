"""The one path every inbound canonical message takes: fill in its source, check what it refers to,
store it durably, then publish it. Adapters, the REST API and the MQTT bridge all call this, so the
"stored before acknowledged" and "bad input changes nothing" rules live in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.bus import Bus
from gateway.model import (
    CanonicalObject,
    Control,
    Delivery,
    Envelope,
    Location,
    LocationTreeError,
    MessageKind,
    OperatingEnvelope,
    Override,
    Position,
    Resource,
    Response,
    SettlementLine,
    Tender,
    Transaction,
    TransportProduct,
    check_parent,
)
from gateway.store import Store, StoredMessage


@dataclass(frozen=True)
class Problem:
    """One reason a message was refused, pointing at the field that caused it.

    ``loc`` is a JSON path from the batch: (index, "payload", field, ...); each edge presents it in its own
    terms (the REST API drops the index for single messages).
    """

    loc: tuple[str | int, ...]
    msg: str
    type: str = "reference_error"


@dataclass
class Rejected(Exception):
    """The batch was refused; nothing of it was stored."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{'.'.join(map(str, p.loc))}: {p.msg}" for p in self.problems)


Reference = tuple[MessageKind, str, tuple[str | int, ...]]


def references(payload: CanonicalObject) -> list[Reference]:
    """The objects ``payload`` refers to, each with the field that names it."""
    refs: list[Reference] = []

    def add(kind: MessageKind, value: str | None, *loc: str | int) -> None:
        if value is not None:
            refs.append((kind, value, loc))

    match payload:
        case Resource():
            add(MessageKind.PARTY, payload.owner_id, "owner_id")
            add(MessageKind.LOCATION, payload.location_id, "location_id")
        case Tender() | Transaction() | Position() | SettlementLine() | Delivery():
            add(MessageKind.PARTY, payload.party_id, "party_id")
            add(MessageKind.LOCATION, payload.location_id, "location_id")
            product = getattr(payload, "product", None)
            if isinstance(product, TransportProduct):
                add(MessageKind.LOCATION, product.from_location_id, "product", "from_location_id")
                add(MessageKind.LOCATION, product.to_location_id, "product", "to_location_id")
            if isinstance(payload, Transaction):
                add(MessageKind.PARTY, payload.counterparty_id, "counterparty_id")
            if isinstance(payload, Delivery):
                add(MessageKind.RESOURCE, payload.resource_id, "resource_id")
        case Control():
            for i, party in enumerate(payload.targets.party_ids):
                add(MessageKind.PARTY, party, "targets", "party_ids", i)
            for i, resource in enumerate(payload.targets.resource_ids):
                add(MessageKind.RESOURCE, resource, "targets", "resource_ids", i)
            for i, location in enumerate(payload.targets.location_ids):
                add(MessageKind.LOCATION, location, "targets", "location_ids", i)
        case OperatingEnvelope():
            add(MessageKind.LOCATION, payload.location_id, "location_id")
            add(MessageKind.RESOURCE, payload.resource_id, "resource_id")
        case Override() | Response():
            add(MessageKind.PARTY, payload.party_id, "party_id")
            add(MessageKind(payload.subject.kind.value), payload.subject.id, "subject", "id")
            add(MessageKind.RESOURCE, payload.resource_id, "resource_id")
    return refs


class Ingestor:
    """Checks, stores and publishes canonical messages."""

    def __init__(self, store: Store, bus: Bus | None = None) -> None:
        self.store = store
        self.bus = bus

    def check(self, envelopes: Sequence[Envelope]) -> list[Problem]:
        """Problems with what the batch refers to; objects defined earlier in the same batch count."""
        pending: dict[tuple[MessageKind, str], CanonicalObject] = {}
        problems: list[Problem] = []
        for index, envelope in enumerate(envelopes):
            payload = envelope.payload
            base: tuple[str | int, ...] = (index, "payload")
            for kind, ref_id, loc in references(payload):
                if (kind, ref_id) not in pending and not self.store.exists(kind, ref_id):
                    problems.append(Problem((*base, *loc), f"unknown {kind.value} '{ref_id}'"))
            if isinstance(payload, Location) and payload.parent_id is not None:
                parent = pending.get((MessageKind.LOCATION, payload.parent_id)) or self.store.get(
                    MessageKind.LOCATION, payload.parent_id
                )
                try:
                    check_parent(payload, parent)  # type: ignore[arg-type]
                except LocationTreeError as exc:
                    problems.append(Problem((*base, "parent_id"), str(exc)))
            pending[(envelope.message_kind, payload.id)] = payload
        return problems

    def ingest_sync(self, envelopes: Sequence[Envelope], *, protocol: str, peer: str) -> list[StoredMessage]:
        """Store a batch (all or nothing) after checking it; raises :class:`Rejected` with every problem."""
        sourced = [envelope.with_source(protocol, peer) for envelope in envelopes]
        problems = self.check(sourced)
        if problems:
            raise Rejected(problems)
        return self.store.append_many(sourced)

    async def ingest(self, envelopes: Sequence[Envelope], *, protocol: str, peer: str) -> list[StoredMessage]:
        """Like :meth:`ingest_sync`, off the event loop, then publish what was new on the bus."""
        stored = await asyncio.to_thread(self.ingest_sync, envelopes, protocol=protocol, peer=peer)
        if self.bus is not None:
            self.bus.publish(stored)
        return stored
