"""The one path every inbound canonical message takes: fill in its source, check what it refers to,
store it durably, then publish it. Adapters, the REST API and the MQTT bridge all call this, so the
"stored before acknowledged" and "bad input changes nothing" rules live in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gateway.bus import Bus
from gateway.market.rules import Finding, subscription_findings, tender_findings, transaction_findings
from gateway.model import (
    CanonicalObject,
    Control,
    Delivery,
    Envelope,
    Location,
    LocationTreeError,
    Market,
    MessageKind,
    OperatingEnvelope,
    Override,
    Position,
    Resource,
    Response,
    SettlementLine,
    Subscription,
    Tender,
    Transaction,
    TransportProduct,
    check_parent,
)
from gateway.model.base import utc_now
from gateway.overrides.policy import OverridePolicy, load_policy
from gateway.overrides.rules import override_findings
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
            if not isinstance(payload, Delivery):
                add(MessageKind.MARKET, payload.market_id, "market_id")
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
        case Market():
            add(MessageKind.PARTY, payload.operator_id, "operator_id")
            add(MessageKind.LOCATION, payload.network_root_id, "network_root_id")
        case Subscription():
            add(MessageKind.MARKET, payload.market_id, "market_id")
            add(MessageKind.PARTY, payload.party_id, "party_id")
            add(MessageKind.PARTY, payload.counterparty_id, "counterparty_id")
            add(MessageKind.LOCATION, payload.location_id, "location_id")
        case Override() | Response():
            add(MessageKind.PARTY, payload.party_id, "party_id")
            add(MessageKind(payload.subject.kind.value), payload.subject.id, "subject", "id")
            add(MessageKind.RESOURCE, payload.resource_id, "resource_id")
    return refs


DERIVED_KINDS = frozenset({MessageKind.CLEARING, MessageKind.POSITION, MessageKind.SETTLEMENT_LINE})
"""Kinds only the clearing service writes (it stores them directly, not through this path): a clearing is a market
run's result, a position the sum of transactions, a settlement line the bill of metered deliveries. Taking them from
a client would let it forge a market result or a bill."""

RESERVED_PROTOCOLS = frozenset({"market"})
"""Source protocols of the gateway's own writers; no edge may claim them."""


class Ingestor:
    """Checks, stores and publishes canonical messages."""

    def __init__(self, store: Store, bus: Bus | None = None, policy: OverridePolicy | None = None) -> None:
        self.store = store
        self.bus = bus
        self.policy = policy if policy is not None else load_policy()

    def check(
        self, envelopes: Sequence[Envelope], *, known: set[tuple[MessageKind, str]] | None = None
    ) -> list[Problem]:
        """Problems with what the batch refers to; objects defined earlier in the same batch count. ``known``: the
        (kind, id) references a caller that checks often has seen stored before, extended here (the store never
        deletes an object, so what was stored once is there for good)."""
        lookup = _Lookup(self.store, known)
        problems: list[Problem] = []
        now = utc_now()
        for index, envelope in enumerate(envelopes):
            payload = envelope.payload
            base: tuple[str | int, ...] = (index, "payload")
            if envelope.message_kind in DERIVED_KINDS:
                problems.append(
                    Problem(
                        (*base, "object_type"),
                        f"{envelope.message_kind.value} objects are derived by the clearing service (from market runs,"
                        " transactions and metered deliveries); send those instead",
                        "derived_kind",
                    )
                )
                continue
            if envelope.source is not None and envelope.source.protocol in RESERVED_PROTOCOLS:
                problems.append(
                    Problem(
                        (index, "source", "protocol"),
                        f"protocol '{envelope.source.protocol}' is reserved for the gateway's clearing service",
                        "reserved_protocol",
                    )
                )
            missing = False
            for kind, ref_id, loc in references(payload):
                if not lookup.exists(kind, ref_id):
                    problems.append(Problem((*base, *loc), f"unknown {kind.value} '{ref_id}'"))
                    missing = True
            if isinstance(payload, Location) and payload.parent_id is not None:
                try:
                    check_parent(payload, lookup.location(payload.parent_id))
                except LocationTreeError as exc:
                    problems.append(Problem((*base, "parent_id"), str(exc)))
            if not missing:
                for loc, msg in _market_findings(payload, lookup, now):
                    problems.append(Problem((*base, *loc), msg, "market_rule"))
                if isinstance(payload, Override):
                    for loc, msg in override_findings(payload, lookup.get, lookup.resources_of, now, self.policy):
                        problems.append(Problem((*base, *loc), msg, "override_rule"))
            lookup.add(envelope.message_kind, payload)
        return problems

    def ingest_sync(self, envelopes: Sequence[Envelope], *, protocol: str, peer: str) -> list[StoredMessage]:
        """Store a batch (all or nothing) after checking it; raises :class:`Rejected` with every problem."""
        sourced = [self._revised(envelope.with_source(protocol, peer)) for envelope in envelopes]
        problems = self.check(sourced)
        if problems:
            raise Rejected(problems)
        return self.store.append_many(sourced)

    def _revised(self, envelope: Envelope) -> Envelope:
        """A changed control gets the next revision even when its sender did not bump it: OpenADR VENs and 2030.5
        clients only act on a change they can see in the number (modificationNumber), so the gateway guarantees
        it. Re-sending the same control (any created_at) is not a change."""
        payload = envelope.payload
        if not isinstance(payload, Control):
            return envelope
        current = self.store.get(MessageKind.CONTROL, payload.id)
        if not isinstance(current, Control) or payload.revision > current.revision:
            return envelope
        ignored = {"revision", "created_at"}
        if payload.model_dump(exclude=ignored) == current.model_dump(exclude=ignored):
            return envelope
        return envelope.model_copy(update={"payload": payload.model_copy(update={"revision": current.revision + 1})})

    async def ingest(self, envelopes: Sequence[Envelope], *, protocol: str, peer: str) -> list[StoredMessage]:
        """Like :meth:`ingest_sync`, off the event loop, then publish what was new on the bus."""
        stored = await asyncio.to_thread(self.ingest_sync, envelopes, protocol=protocol, peer=peer)
        if self.bus is not None:
            self.bus.publish(stored)
        return stored


class _Lookup:
    """Objects the batch defines or the store holds, read once per check (a batch of 1,000 tenders for one market
    asks for the same market 1,000 times)."""

    def __init__(self, store: Store, known: set[tuple[MessageKind, str]] | None = None) -> None:
        self.store = store
        self.pending: dict[tuple[MessageKind, str], CanonicalObject] = {}
        self.cache: dict[tuple[MessageKind, str], CanonicalObject | None] = {}
        self.known = known if known is not None else set()  # found stored by exists() (not read, only found)
        self.cleared: dict[tuple[str, str, str], set[str]] = {}
        self.owned: dict[str, list[Resource]] = {}

    def add(self, kind: MessageKind, payload: CanonicalObject) -> None:
        self.pending[(kind, payload.id)] = payload

    def get(self, kind: MessageKind, entity_id: str) -> CanonicalObject | None:
        key = (kind, entity_id)
        if key in self.pending:
            return self.pending[key]
        if key not in self.cache:
            self.cache[key] = self.store.get(kind, entity_id)
        return self.cache[key]

    def exists(self, kind: MessageKind, entity_id: str) -> bool:
        key = (kind, entity_id)
        if key in self.pending or self.cache.get(key) is not None or key in self.known:
            return True
        found = self.store.exists(kind, entity_id)
        if found:  # a batch of 2030.5 Responses names the same party, control and resource again and again
            self.known.add(key)
        return found

    def resources_of(self, party_id: str) -> list[Resource]:
        """The resources ``party_id`` owns, stored or earlier in the batch (read once per batch and party)."""
        if party_id not in self.owned:
            found = self.store.list(MessageKind.RESOURCE, filters={"owner_id": party_id}, limit=None)
            self.owned[party_id] = [r for r in found if isinstance(r, Resource)]
        stored = self.owned[party_id]
        pending = {
            payload.id: payload
            for (kind, _), payload in self.pending.items()
            if kind is MessageKind.RESOURCE and isinstance(payload, Resource)
        }
        merged = {r.id: r for r in stored if r.id not in pending}
        merged.update({rid: r for rid, r in pending.items() if r.owner_id == party_id})
        return list(merged.values())

    def location(self, location_id: str) -> Location | None:
        return self.get(MessageKind.LOCATION, location_id)  # type: ignore[return-value]

    def market(self, market_id: str) -> Market | None:
        return self.get(MessageKind.MARKET, market_id)  # type: ignore[return-value]

    def all_cleared(self, market_id: str, starts: list[datetime]) -> bool:
        """Whether every one of these interval starts has a clearing in the market: one range query per tender,
        answered from the index (most tenders are for intervals far from any clearing and find none)."""
        first, last = starts[0].isoformat(), starts[-1].isoformat()
        key = (market_id, first, last)
        if key not in self.cleared:
            self.cleared[key] = set(
                self.store.values(
                    MessageKind.CLEARING,
                    "interval_start",
                    filters={"market_id": market_id},
                    ranges={"interval_start": (first, last + "~")},  # "~" sorts after any ISO text: inclusive
                )
            )
        cleared = self.cleared[key]
        return len(cleared) >= len(starts) and all(start.isoformat() in cleared for start in starts)


def _market_findings(payload: CanonicalObject, lookup: _Lookup, now: datetime) -> list[Finding]:
    """The rules of the market a tender, subscription or trade is sent to (see gateway.market.rules)."""
    match payload:
        case Tender():
            market = lookup.market(payload.market_id)
            if market is None:
                return []
            found = tender_findings(payload, market, lookup.location, now)
            if not found and lookup.all_cleared(market.id, [row["start"] for row in payload.rows]):
                found.append(
                    (("rows",), f"every interval of the tender has been cleared already in market '{market.id}'")
                )
            return found
        case Subscription():
            market = lookup.market(payload.market_id)
            return [] if market is None else subscription_findings(payload, market, lookup.location)
        case Transaction():
            market = lookup.market(payload.market_id)
            return [] if market is None else transaction_findings(payload, market, lookup.location)
    return []
