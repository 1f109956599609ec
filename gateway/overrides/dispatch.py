"""The operator's override of market dispatch: curtail the DERs behind a constrained location, as stored controls.

A request names the constrained location, a span, a direction (export or import), the reduction needed, how to
share it (``gateway.overrides.curtailment``) and the DR program the controls belong to. This module

1. checks the request against the world: the location exists, the span has not ended, the program's enforcement in
   the override policy (``mappings/overrides.yaml``) is the one the request states (a hard curtailment must not land
   in a program whose customers may override it, and a soft one must not promise an override the gateway refuses);
2. finds the candidates: every resource at the location or at any location below it that can give a reduction in
   the direction, with what it was dispatched to (its party's cleared transactions at its location, net, split among
   the party's resources there by rating; its rating when the party holds no position there), when it was
   connected, and what its dispatch was worth (the offer or bid price of the tenders those trades came from);
3. allocates the reduction per *piece* of the span (the span cut at the market's interval boundaries, because
   dispatch changes with the interval) and builds one control per curtailed resource, aimed at that resource only;
4. hands the controls to the ingestor in one batch: all are stored or none.

"Connected" (for first-in last-out) is the first time the gateway stored the resource at the location it is at now:
the earliest message of the unbroken run of its versions at that location in the message log. The log's sequence
orders it (no clock ties), and a DER that moved to this connection point counts as new here.

Controls:

- soft: a LIMIT on export_power / import_power in kW of dispatch - reduction per piece. The customer may override
  it (and is settled for it by the program's terms);
- hard: the same LIMIT, or CONNECT 0 (isolation) when the whole dispatch of the resource is removed for the whole
  span. An override is refused by the ingest rules because the program is hard;
- priority 0 (the canonical highest, 2030.5 primacy 0 unless the program is configured there), so it supersedes
  market dispatch and default controls;
- a deterministic id ``curtail-<key>-<resource>``, where the key is the curtailment's location, direction, span and
  program: re-posting the same curtailment changes nothing, posting a different reduction or method for the same
  key revises the controls (their revision goes up, devices see the change), and a resource the new allocation
  no longer curtails has its earlier control cancelled.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.model import (
    Control,
    ControlKind,
    ControlPeriod,
    ControlSignal,
    ControlStatus,
    ControlTargets,
    ControlUnit,
    EnergyUnit,
    Envelope,
    Identifier,
    Interval,
    Location,
    MessageKind,
    PowerUnit,
    Resource,
    ResourceKind,
    Side,
    Tender,
    TimeSpan,
    Transaction,
    convert_power,
    convert_price,
)
from gateway.model.products import EnergyProduct
from gateway.overrides.curtailment import WATT, Allocation, Candidate, Direction, Method, allocate, apportion
from gateway.overrides.policy import Enforcement, OverridePolicy
from gateway.store import Store, StoredMessage

MAX_SPAN = timedelta(days=7)
"""A curtailment is an operating action for hours or days; a longer one is a tariff or a connection agreement."""

CURTAILMENT_PRIORITY = 0
"""Canonical priority of curtailment controls: the highest (2030.5 primacy 0), above market dispatch."""

MAX_PIECES = 10_000
"""A control holds at most this many periods."""

_YEAR = timedelta(days=366)  # the longest market interval: transactions that may cover the span start this far back

_EXPORTERS = {
    ResourceKind.PV,
    ResourceKind.GENERATOR,
    ResourceKind.BATTERY,
    ResourceKind.EV_CHARGER,
    ResourceKind.OTHER,
}
_IMPORTERS = {
    ResourceKind.LOAD,
    ResourceKind.BATTERY,
    ResourceKind.EV_CHARGER,
    ResourceKind.HEAT_PUMP,
    ResourceKind.WATER_HEATER,
    ResourceKind.HVAC,
    ResourceKind.OTHER,
}


# -- the request ------------------------------------------------------------------------------------------------


class CurtailmentRequest(BaseModel):
    """What the operator asks for. The span is given either as ``span`` (any start and duration) or as a market
    ``interval``; both are UTC with an offset."""

    model_config = ConfigDict(extra="forbid")

    location_id: Identifier = Field(description="the constrained location (feeder, transformer, service point...)")
    span: TimeSpan | None = Field(default=None, description="start and ISO 8601 duration, e.g. PT1H")
    interval: Interval | None = Field(default=None, description="a market interval instead of a span")
    direction: Direction = Field(description="export: reduce reverse flow (generation); import: reduce load")
    reduce_kw: Decimal = Field(gt=0, allow_inf_nan=False, description="the reduction needed, kW (whole watts)")
    method: Method = Field(
        default=Method.PRO_RATA,
        description="filo: the latest connected first; pro_rata: in proportion to dispatch; bid_order: the least"
        " valuable dispatch first",
    )
    program_id: Identifier = Field(description="the DR program the controls belong to (its terms settle overrides)")
    enforcement: Enforcement = Field(
        description="soft: ask (the customer may override and pays the program's penalty); hard: curtail or isolate"
        " directly. Must match the program's enforcement in the override policy"
    )

    @field_validator("reduce_kw")
    @classmethod
    def _whole_watts(cls, value: Decimal) -> Decimal:
        if value != value.quantize(WATT):
            raise ValueError(f"reduce_kw is in kW with at most 3 decimals (whole watts), not {value}")
        return value

    @model_validator(mode="after")
    def _one_window(self) -> Self:
        if (self.span is None) == (self.interval is None):
            raise ValueError("give the curtailment's time as either span or interval (exactly one)")
        if self.window.duration > MAX_SPAN:
            raise ValueError(
                f"a curtailment lasts at most {MAX_SPAN.days} days; for longer limits use an operating envelope"
            )
        return self

    @property
    def window(self) -> TimeSpan:
        if self.span is not None:
            return self.span
        assert self.interval is not None
        return TimeSpan(start=self.interval.start, duration=self.interval.length)


class CurtailmentError(Exception):
    """A curtailment that cannot be made as asked; ``status`` is the HTTP status a REST client gets."""

    status = 422
    type = "curtailment"

    def __init__(self, reason: str, loc: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.loc = loc


class UnknownLocation(CurtailmentError):
    status = 404
    type = "not_found"


class PolicyConflict(CurtailmentError):
    status = 409
    type = "policy_conflict"


# -- the plan ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One resource in one piece of the span."""

    start: datetime
    end: datetime
    dispatched_kw: Decimal
    reduction_kw: Decimal
    price: Decimal | None

    @property
    def limit_kw(self) -> Decimal:
        return self.dispatched_kw - self.reduction_kw


@dataclass(frozen=True)
class ResourcePlan:
    """A candidate and what the curtailment does to it (``control`` None: it is not curtailed)."""

    resource: Resource
    connected_seq: int
    connected_at: datetime | None
    steps: tuple[Step, ...]
    control: Control | None

    @property
    def reduction_kw(self) -> Decimal:
        """The largest reduction asked of it in any piece of the span."""
        return max((s.reduction_kw for s in self.steps), default=Decimal(0))

    @property
    def dispatched_kw(self) -> Decimal:
        """Its largest dispatch in any piece of the span."""
        return max((s.dispatched_kw for s in self.steps), default=Decimal(0))


@dataclass(frozen=True)
class Piece:
    start: datetime
    end: datetime
    allocation: Allocation


@dataclass(frozen=True)
class Skipped:
    resource_id: str
    reason: str


@dataclass(frozen=True)
class Plan:
    curtailment_id: str
    request: CurtailmentRequest
    pieces: tuple[Piece, ...]
    resources: tuple[ResourcePlan, ...]
    cancelled: tuple[Control, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def controls(self) -> list[Control]:
        """What the plan stores: the curtailed resources' controls and the cancelled earlier ones."""
        return [r.control for r in self.resources if r.control is not None] + list(self.cancelled)

    @property
    def shortfall_kw(self) -> Decimal:
        """The largest shortfall in any piece: what the operator must still find elsewhere."""
        return max((p.allocation.shortfall_kw for p in self.pieces), default=Decimal(0))


def curtailment_key(request: CurtailmentRequest) -> str:
    """What makes two requests the same curtailment: where, which way, when, under which program."""
    window = request.window
    parts = (request.location_id, request.direction.value, window.start.isoformat(), window.end.isoformat())
    text = "|".join((*parts, request.program_id))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def control_id(key: str, resource_id: str) -> str:
    readable = f"curtail-{key}-{resource_id}"
    if len(readable) <= 200:
        return readable
    return f"curtail-{key}-{hashlib.sha256(resource_id.encode()).hexdigest()[:32]}"


def plan_curtailment(store: Store, request: CurtailmentRequest, policy: OverridePolicy, now: datetime) -> Plan:
    """The allocation and controls for ``request``, or :class:`CurtailmentError` with the reason. Stores nothing."""
    window = request.window
    if window.end <= now:
        raise CurtailmentError(
            f"the curtailment's span ended at {window.end.isoformat()}; a curtailment can only change what happens"
            " from now on",
            ("span" if request.span is not None else "interval",),
        )
    if not isinstance(store.get(MessageKind.LOCATION, request.location_id), Location):
        raise UnknownLocation(f"unknown location '{request.location_id}'", ("location_id",))
    warnings = _check_enforcement(policy, request)
    terms = policy.program(request.program_id)
    market_id = terms.market_id if terms is not None else None
    sites, skipped = _sites(store, request.location_id, request.direction, window, market_id)
    if not sites:
        raise CurtailmentError(_nobody(request, skipped), ("location_id",))
    bounds = _bounds(window, [t for site in sites for t in site.transactions])
    if len(bounds) - 1 > MAX_PIECES:
        raise CurtailmentError(f"the span covers more than {MAX_PIECES} market intervals; curtail a shorter span")
    prices = _Prices(store)
    pieces: list[Piece] = []
    steps: dict[str, list[Step]] = {}
    for start, end in itertools.pairwise(bounds):
        candidates = [c for site in sites for c in site.candidates(start, end, request.direction, prices)]
        allocation = allocate(request.reduce_kw, candidates, request.method, request.direction)
        pieces.append(Piece(start, end, allocation))
        for share in allocation.shares:
            c = share.candidate
            steps.setdefault(c.resource_id, []).append(Step(start, end, c.dispatched_kw, share.reduction_kw, c.price))
    if all(p.allocation.available_kw == 0 for p in pieces):
        raise CurtailmentError(
            f"nothing to curtail: the DERs behind '{request.location_id}' are dispatched to {request.direction.value}"
            f" 0 kW from {window.start.isoformat()} to {window.end.isoformat()}",
            ("location_id",),
        )
    key = curtailment_key(request)
    plans = tuple(
        ResourcePlan(
            resource=site.resources[rid].resource,
            connected_seq=site.resources[rid].connected_seq,
            connected_at=site.resources[rid].connected_at,
            steps=tuple(steps[rid]),
            control=_control(request, control_id(key, rid), rid, steps[rid]),
        )
        for site in sites
        for rid in sorted(site.resources)
    )
    planned = {p.control.id for p in plans if p.control is not None}
    cancelled = tuple(
        c.model_copy(update={"status": ControlStatus.CANCELLED})
        for c in store.list(MessageKind.CONTROL, filters={"program_id": request.program_id}, limit=None)
        if isinstance(c, Control)
        and c.id.startswith(f"curtail-{key}-")
        and c.id not in planned
        and c.status is not ControlStatus.CANCELLED
    )
    return Plan(
        curtailment_id=f"curtail-{key}",
        request=request,
        pieces=tuple(pieces),
        resources=tuple(sorted(plans, key=lambda p: p.resource.id)),
        cancelled=cancelled,
        skipped=tuple(skipped),
        warnings=tuple(warnings),
    )


def changed_envelopes(store: Store, plan: Plan) -> list[Envelope]:
    """The plan's controls that differ from what is stored (re-posting a curtailment stores nothing new, whichever
    peer posts it), each carrying the curtailment id as its correlation id."""
    out: list[Envelope] = []
    for control in plan.controls:
        stored = store.get(MessageKind.CONTROL, control.id)
        if isinstance(stored, Control) and _same(stored, control):
            continue
        out.append(Envelope(payload=control, correlation_id=plan.curtailment_id))
    return out


def _same(stored: Control, planned: Control) -> bool:
    ignored = {"revision", "created_at"}
    return stored.model_dump(exclude=ignored) == planned.model_dump(exclude=ignored)


# -- policy -----------------------------------------------------------------------------------------------------


def _check_enforcement(policy: OverridePolicy, request: CurtailmentRequest) -> list[str]:
    """Refuse a stated enforcement the program's terms contradict; warn about a program without terms."""
    program = request.program_id
    terms = policy.program(program)
    actual = terms.enforcement if terms is not None else Enforcement.SOFT
    if request.enforcement is Enforcement.HARD and actual is Enforcement.SOFT:
        why = (
            f"program '{program}' is not in the override policy (mappings/overrides.yaml), so its controls are soft"
            if terms is None
            else f"program '{program}' is soft in the override policy (mappings/overrides.yaml)"
        )
        raise PolicyConflict(
            f"{why}: its customers may override its controls, so it cannot carry a hard curtailment; use a program"
            " with enforcement: hard, or ask for enforcement soft",
            ("enforcement",),
        )
    if request.enforcement is Enforcement.SOFT and actual is Enforcement.HARD:
        raise PolicyConflict(
            f"program '{program}' is hard in the override policy (mappings/overrides.yaml): its controls cannot be"
            " overridden, which a soft curtailment promises the customer; ask for enforcement hard, or use a soft"
            " program",
            ("enforcement",),
        )
    if terms is None:
        return [
            f"program '{program}' has no terms in the override policy: a customer who overrides these controls pays"
            " no penalty and no deviation"
        ]
    return []


# -- candidates -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Placed:
    resource: Resource
    rating_kw: Decimal | None
    connected_seq: int
    connected_at: datetime | None


@dataclass
class _Site:
    """One party's resources at one location, and the party's trades there that may cover the span."""

    party_id: str
    location_id: str
    resources: dict[str, _Placed] = field(default_factory=dict)
    transactions: list[Transaction] = field(default_factory=list)

    def candidates(self, start: datetime, end: datetime, direction: Direction, prices: _Prices) -> list[Candidate]:
        """Each resource's dispatch in [start, end): the party's net position here split by rating, else its
        rating; and the price its dispatch was offered or bid at."""
        ordered = sorted(self.resources.values(), key=lambda p: p.resource.id)
        held = covering(self.transactions, start, end)
        if not held:
            return [self._candidate(p, p.rating_kw or Decimal(0), None) for p in ordered]
        side = Side.SELL if direction is Direction.EXPORT else Side.BUY
        price = prices.weighted([t for t in held if t.side is side])
        parts = split_dispatch(held, [p.rating_kw for p in ordered], direction)
        return [self._candidate(p, kw, price) for p, kw in zip(ordered, parts, strict=True)]

    def _candidate(self, placed: _Placed, kw: Decimal, price: Decimal | None) -> Candidate:
        return Candidate(
            resource_id=placed.resource.id,
            party_id=self.party_id,
            location_id=self.location_id,
            dispatched_kw=kw,
            connected=placed.connected_seq,
            price=price,
        )


def _kw(transaction: Transaction) -> Decimal:
    return convert_power(transaction.quantity, transaction.quantity_unit, PowerUnit.KW)


def covering(transactions: Sequence[Transaction], start: datetime, end: datetime) -> list[Transaction]:
    """The trades whose interval holds all of [start, end): the party's position in that piece (none: it holds no
    position there, and its resources are not market-dispatched)."""
    return [t for t in transactions if t.interval.start <= start and end <= t.interval.end]


def split_dispatch(
    held: Sequence[Transaction], ratings: Sequence[Decimal | None], direction: Direction
) -> list[Decimal]:
    """What each of one party's resources at one site was dispatched to by ``held`` (its trades there covering one
    piece, see :func:`covering`): the party's net position in ``direction`` (export: net sold, import: net bought;
    never negative) split in proportion to the resources' ratings in that direction (``ratings``, in resource id
    order; equal shares when none is rated). Pure: curtailment sizes its controls by it, and override settlement
    prices an override of a limit by it."""
    net = sum((_kw(t) if t.side is Side.BUY else -_kw(t) for t in held), Decimal(0))
    flow = max(Decimal(0), -net if direction is Direction.EXPORT else net)
    return apportion(flow, [r or Decimal(0) for r in ratings])


def rating_kw(resource: Resource, direction: Direction) -> Decimal | None:
    """The most a resource can deliver in ``direction`` by its declared ratings (None: it declares none)."""
    r = resource.ratings
    if direction is Direction.EXPORT:
        if resource.kind is ResourceKind.EV_CHARGER:
            return r.max_discharge_kw  # only a bidirectional charger declares a discharge rating
        if resource.kind is ResourceKind.BATTERY:
            return _first(r.max_discharge_kw, r.max_kw, r.max_kva)
        return _first(r.max_kw, r.max_kva)
    if resource.kind in (ResourceKind.BATTERY, ResourceKind.EV_CHARGER):
        return _first(r.max_charge_kw, r.max_kw, r.max_kva)
    return _first(r.max_kw, r.max_kva)


def _first(*values: Decimal | None) -> Decimal | None:
    return next((v for v in values if v is not None), None)


def can_serve(resource: Resource, direction: Direction) -> bool:
    """Whether a resource of this kind can reduce flow in ``direction`` (a PV cannot reduce import)."""
    if direction is Direction.EXPORT:
        ev_exports = resource.kind is not ResourceKind.EV_CHARGER or resource.ratings.max_discharge_kw is not None
        return resource.kind in _EXPORTERS and ev_exports
    return resource.kind in _IMPORTERS


def locations_below(store: Store, location_id: str) -> list[str]:
    """The location and every location below it (breadth first; a tree is checked on its way in)."""
    found = [location_id]
    seen = {location_id}
    at = 0
    while at < len(found):
        for child in store.list(MessageKind.LOCATION, filters={"parent_id": found[at]}, limit=None):
            if child.id not in seen:
                seen.add(child.id)
                found.append(child.id)
        at += 1
    return found


def connected(store: Store, resource: Resource) -> tuple[int, datetime | None]:
    """When the resource was connected where it is now: the log sequence and time of the first message of the
    unbroken run of its versions at its current location (see the module's description)."""
    history: list[StoredMessage] = []
    after = 0
    while True:
        page = store.query_messages(kind=MessageKind.RESOURCE, entity_id=resource.id, after_seq=after, limit=500)
        history.extend(page)
        if len(page) < 500:
            break
        after = page[-1].seq
    first = None
    for message in reversed(history):
        payload = message.envelope.payload
        if not isinstance(payload, Resource) or payload.location_id != resource.location_id:
            break
        first = message
    return (first.seq, first.stored_at) if first is not None else (0, None)


def _sites(
    store: Store, location_id: str, direction: Direction, window: TimeSpan, market_id: str | None
) -> tuple[list[_Site], list[Skipped]]:
    sites: dict[tuple[str, str], _Site] = {}
    skipped: list[Skipped] = []
    for place in locations_below(store, location_id):
        for resource in store.list(MessageKind.RESOURCE, filters={"location_id": place}, limit=None):
            assert isinstance(resource, Resource)
            if not can_serve(resource, direction):
                skipped.append(Skipped(resource.id, f"a {resource.kind.value} cannot reduce {direction.value}"))
                continue
            site = sites.setdefault((resource.owner_id, place), _Site(resource.owner_id, place))
            seq, at = connected(store, resource)
            site.resources[resource.id] = _Placed(resource, rating_kw(resource, direction), seq, at)
    for site in sites.values():
        site.transactions = _transactions(store, site, window, market_id)
    for site in list(sites.values()):
        if site.transactions:
            continue
        for rid, placed in list(site.resources.items()):
            if not placed.rating_kw:
                skipped.append(
                    Skipped(
                        rid,
                        f"no market position at '{site.location_id}' in the span and no {direction.value} rating"
                        " (max_kw) to assume it runs at",
                    )
                )
                del site.resources[rid]
        if not site.resources:
            del sites[(site.party_id, site.location_id)]
    return sorted(sites.values(), key=lambda s: (s.location_id, s.party_id)), sorted(
        skipped, key=lambda s: s.resource_id
    )


def _transactions(store: Store, site: _Site, window: TimeSpan, market_id: str | None) -> list[Transaction]:
    return site_transactions(store, site.party_id, site.location_id, window.start, window.end, market_id)


def site_transactions(
    store: Store, party_id: str, location_id: str, start: datetime, end: datetime, market_id: str | None
) -> list[Transaction]:
    """The party's energy trades at the location whose interval overlaps [start, end) (in ``market_id``, if
    given)."""
    filters = {"party_id": party_id} | ({"market_id": market_id} if market_id else {})
    since = (start - _YEAR).isoformat()
    found = store.list(
        MessageKind.TRANSACTION, filters=filters, ranges={"interval_start": (since, end.isoformat())}, limit=None
    )
    return [
        t
        for t in found
        if isinstance(t, Transaction)
        and t.location_id == location_id
        and isinstance(t.product, EnergyProduct)
        and t.interval.end > start
    ]


def _bounds(window: TimeSpan, transactions: Sequence[Transaction]) -> list[datetime]:
    return piece_bounds(window.start, window.end, transactions)


def piece_bounds(start: datetime, end: datetime, transactions: Sequence[Transaction]) -> list[datetime]:
    """[start, end) cut where any trade's interval begins or ends inside it: dispatch is constant in each piece."""
    inner = {moment for t in transactions for moment in (t.interval.start, t.interval.end) if start < moment < end}
    return [start, *sorted(inner), end]


class _Prices:
    """Offer and bid prices of the tenders trades came from, per kWh (each tender read once)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.tenders: dict[str, Tender | None] = {}

    def of(self, transaction: Transaction) -> Decimal:
        tender = self._tender(transaction.tender_id) if transaction.tender_id else None
        if tender is not None:
            for row in tender.rows:
                if row["start"] == transaction.interval.start:
                    return convert_price(row["price"], tender.price_per, EnergyUnit.KWH)
        return convert_price(transaction.price, transaction.price_per, EnergyUnit.KWH)  # a bilateral trade's price

    def weighted(self, transactions: Sequence[Transaction]) -> Decimal | None:
        """The quantity-weighted price of these trades (None when they carry no quantity)."""
        total = sum((_kw(t) for t in transactions), Decimal(0))
        if total == 0:
            return None
        return sum((self.of(t) * _kw(t) for t in transactions), Decimal(0)) / total

    def _tender(self, tender_id: str) -> Tender | None:
        if tender_id not in self.tenders:
            found = self.store.get(MessageKind.TENDER, tender_id)
            self.tenders[tender_id] = found if isinstance(found, Tender) else None
        return self.tenders[tender_id]


def _nobody(request: CurtailmentRequest, skipped: list[Skipped]) -> str:
    where = f"location '{request.location_id}'"
    if not skipped:
        return f"no DER behind {where}: no resource is at it or at any location below it"
    reasons = "; ".join(f"{s.resource_id}: {s.reason}" for s in skipped[:10])
    more = f" (and {len(skipped) - 10} more)" if len(skipped) > 10 else ""
    return f"no DER behind {where} can reduce {request.direction.value}: {reasons}{more}"


# -- controls ---------------------------------------------------------------------------------------------------


def _control(request: CurtailmentRequest, cid: str, resource_id: str, steps: Sequence[Step]) -> Control | None:
    """The resource's control over the pieces from its first to its last reduction, or None if it gives none."""
    curtailed = [i for i, s in enumerate(steps) if s.reduction_kw > 0]
    if not curtailed:
        return None
    kept = steps[curtailed[0] : curtailed[-1] + 1]
    isolate = request.enforcement is Enforcement.HARD and all(
        s.dispatched_kw > 0 and s.reduction_kw == s.dispatched_kw for s in kept
    )
    if isolate:
        kind, signal, unit = ControlKind.CONNECT, ControlSignal.CONNECT, ControlUnit.BOOLEAN
        values = [Decimal(0)] * len(kept)
    else:
        kind, unit = ControlKind.LIMIT, ControlUnit.KW
        signal = ControlSignal.EXPORT_POWER if request.direction is Direction.EXPORT else ControlSignal.IMPORT_POWER
        values = [s.limit_kw for s in kept]
    periods: list[ControlPeriod] = []
    start = kept[0].start
    for i, step in enumerate(kept):  # adjacent pieces with the same value are one period
        if i + 1 < len(kept) and values[i + 1] == values[i]:
            continue
        periods.append(ControlPeriod(span=TimeSpan(start=start, duration=step.end - start), value=values[i]))
        start = step.end
    return Control(
        id=cid,
        program_id=request.program_id,
        targets=ControlTargets(resource_ids=[resource_id]),
        kind=kind,
        signal=signal,
        unit=unit,
        periods=periods,
        priority=CURTAILMENT_PRIORITY,
    )
