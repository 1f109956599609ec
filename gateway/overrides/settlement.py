"""What an override costs: the overridden quantity as a deviation at the spot price, and the program's penalty.

The TeMIX rule: the customer always decides, and pays (or is paid) the difference. An override says *how much* the
party stepped away from what it had committed (a transaction it holds) or was expected to give (a soft DR control of
a program it is enrolled in), for how long, and where:

- a **transaction** opted out leaves the whole traded rate undone (a partial override keeps ``quantity_kw`` of it);
- a **control** opted out leaves undone the reduction the program expected of the party (``response_kw`` in
  ``mappings/overrides.yaml``), or, for a kW limit or setpoint on one resource, what the resource would otherwise
  have done minus the limit: its market dispatch in that interval when its party holds a position at its site
  (``OverrideSubjects.dispatch``, computed as curtailment computes it, ``gateway.overrides.dispatch``), else its
  rating. A disconnection (connect 0) leaves undone all of it. So the override of a curtailment is charged the
  reduction the curtailment asked for, not the resource's rating minus the limit;
- anything else (a tender, a resource, an envelope) has no committed quantity: it is listed as unquantified.

Where a meter covers the time, the meter already tells the truth: the ordinary deviation line of
:func:`gateway.market.settlement.settle` settles what the party really did, so the override adds no deviation
(adding one would count the same energy twice). Where no meter covers it, the overridden quantity *is* the best
estimate of the deviation, and it is settled at the spot price of the party's location. The penalty, when the
program (or, for transactions, the market) has one, is charged on the overridden energy either way.

Only the override that counts is settled (``resolve``: per party, subject and resource, the one made last), and
only while it counts: an opt-in that later won ends the charge at that moment.

Time: override spans are free-form (an OpenADR event's span, a device's answer) while bill lines sit on the market's
uniform grid. Each end is rounded to the nearest 5 minutes (the finest grid settlement uses in practice), and
the span is cut into the largest aligned intervals (PT5M, PT15M, PT1H ... up to the market's resolution), so
an hour-long override is one line and nothing is averaged into a rate no decimal can hold.

Pure like the market's settlement: no reads, no writes, stable line ids (see ``settlement.line_id``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from gateway.market.settlement import amount, line_id
from gateway.model import Control, Delivery, Override, Resource
from gateway.model.controls import ControlKind, ControlSignal, ControlUnit
from gateway.model.intervals import Interval, Resolution, floor_to_boundary, is_aligned
from gateway.model.market import SettlementKind, SettlementLine, Transaction
from gateway.model.markets import Clearing, Market
from gateway.model.overrides import OverrideMode, SubjectKind
from gateway.model.parties import ResourceKind
from gateway.model.units import EnergyUnit, PowerUnit, convert_power, convert_price
from gateway.overrides.curtailment import Direction
from gateway.overrides.dispatch import can_serve, rating_kw
from gateway.overrides.policy import OverridePolicy
from gateway.overrides.resolve import change_points, effective_at

GRID = Resolution.FIVE_MINUTES
"""Override spans are rounded to this grid before they are settled."""

_STEPS = [r for r in Resolution if not r.is_calendar and r.rank >= GRID.rank]


@dataclass(frozen=True)
class Dispatched:
    """What the market dispatched one resource to over [start, end) (a piece in which its party held a position at
    its site): its share of the party's net position there in each direction, as curtailment sizes it
    (``gateway.overrides.dispatch.split_dispatch``). At most one of the two is non-zero."""

    start: datetime
    end: datetime
    export_kw: Decimal = Decimal(0)
    import_kw: Decimal = Decimal(0)

    def kw(self, direction: Direction) -> Decimal:
        return self.export_kw if direction is Direction.EXPORT else self.import_kw


@dataclass(frozen=True)
class OverrideSubjects:
    """What overrides refer to, as the store holds it (only what the overrides name is needed)."""

    transactions: Mapping[str, Transaction] = field(default_factory=dict)
    controls: Mapping[str, Control] = field(default_factory=dict)
    resources: Mapping[str, Resource] = field(default_factory=dict)
    resources_of: Mapping[str, Sequence[Resource]] = field(default_factory=dict)
    """Each party's resources, to place an override that names none (an OpenADR event-level optOut)."""
    reaches: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Per control id, the resources it reaches (its targets, and every resource below a targeted location)."""
    dispatch: Mapping[str, Sequence[Dispatched]] = field(default_factory=dict)
    """Per resource id, its market dispatch in the pieces of time in which its party held a position at its site (in
    the program's market), non-overlapping. Outside them the resource counts at its rating."""


@dataclass(frozen=True)
class Unquantified:
    override_id: str
    reason: str


@dataclass(frozen=True)
class OverrideSettlement:
    lines: list[SettlementLine]
    unpriced: list[tuple[str, str, Interval]]
    """(party, location, market interval) of override deviations with no spot price yet: not settled."""
    unquantified: list[Unquantified]
    """Overrides of this market that count but whose quantity nobody can say: recorded, not charged."""


@dataclass(frozen=True)
class _Charge:
    """One override's step away from its commitment over one span: ``rate`` signed, + = the party took more."""

    override: Override
    location_id: str
    start: datetime
    end: datetime
    rate: Decimal
    penalty_per_kwh: Decimal | None


def settle_overrides(
    market: Market,
    clearings: Sequence[Clearing],
    overrides: Iterable[Override],
    subjects: OverrideSubjects,
    deliveries: Sequence[Delivery],
    policy: OverridePolicy,
    window: tuple[datetime, datetime],
) -> OverrideSettlement:
    """The override lines of ``market`` for the market intervals starting in ``window``."""
    mine = [o for o in overrides if _market_of(o, subjects, policy) == market.id]
    charges: list[_Charge] = []
    unquantified: list[Unquantified] = []
    for override, start, end in _counting(mine):
        found = _charges(override, start, end, market, subjects, policy)
        if isinstance(found, Unquantified):
            if found not in unquantified:
                unquantified.append(found)
        else:
            charges.extend(found)
    spot = {c.interval.start: c for c in clearings if c.market_id == market.id}
    metered = _meters(deliveries)
    lines: list[SettlementLine] = []
    unpriced: list[tuple[str, str, Interval]] = []
    for charge in charges:
        for slot, pieces in _slots(charge.start, charge.end, market, window):
            party = charge.override.party_id
            for piece in pieces:
                lines.extend(_penalty(market, charge, piece))
                open_pieces = _unmetered(piece, metered.get((party, charge.location_id), []))
                if not open_pieces:
                    continue
                clearing = spot.get(slot.start)
                if clearing is None:
                    if (party, charge.location_id, slot) not in unpriced:
                        unpriced.append((party, charge.location_id, slot))
                    continue
                price = convert_price(clearing.price_at(charge.location_id), clearing.price_per, market.price_per)
                for open_piece in open_pieces:
                    lines.append(_line(market, SettlementKind.DEVIATION, charge, open_piece, charge.rate, price))
    return OverrideSettlement(lines=lines, unpriced=unpriced, unquantified=unquantified)


def _market_of(override: Override, subjects: OverrideSubjects, policy: OverridePolicy) -> str | None:
    if override.subject.kind is SubjectKind.TRANSACTION:
        t = subjects.transactions.get(override.subject.id)
        return None if t is None else t.market_id
    if override.subject.kind is SubjectKind.CONTROL:
        control = subjects.controls.get(override.subject.id)
        terms = policy.program(control.program_id) if control is not None else None
        return None if terms is None else terms.market_id
    return None


def _counting(overrides: Sequence[Override]) -> list[tuple[Override, datetime, datetime]]:
    """Each override with the spans in which it is the one that counts and takes its party (partly) out."""
    spans: dict[str, list[tuple[Override, datetime, datetime]]] = {}
    for start, end in pairwise(change_points(overrides)):
        for winner in effective_at(overrides, start).values():
            if winner.mode is OverrideMode.OPT_IN:
                continue
            mine = spans.setdefault(winner.id, [])
            if mine and mine[-1][2] == start:
                mine[-1] = (winner, mine[-1][1], end)
            else:
                mine.append((winner, start, end))
    return [span for key in sorted(spans) for span in spans[key]]


def _charges(
    override: Override,
    start: datetime,
    end: datetime,
    market: Market,
    subjects: OverrideSubjects,
    policy: OverridePolicy,
) -> list[_Charge] | Unquantified:
    if override.subject.kind is SubjectKind.TRANSACTION:
        t = subjects.transactions[override.subject.id]
        committed = convert_power(t.quantity, t.quantity_unit, market.quantity_unit)
        kept = Decimal(0) if override.quantity_kw is None else _kw(override.quantity_kw, market)
        undone = max(committed - kept, Decimal(0))
        rate = undone if t.signed_quantity < 0 else -undone  # a seller who does not deliver buys it back
        span = _clip(start, end, t.interval.start, t.interval.end)
        if span is None or undone == 0:
            return []
        return [_Charge(override, t.location_id, *span, rate, policy.market_penalty(market.id))]
    control = subjects.controls[override.subject.id]
    terms = policy.program(control.program_id)
    assert terms is not None  # _market_of found the program
    resource, location = _placed(override, control, subjects)
    if location is None:
        return Unquantified(override.id, f"party '{override.party_id}' has no resource that control reaches")
    expected = terms.expected_kw(override.party_id)
    charges: list[_Charge] = []
    for period in control.periods:
        span = _clip(start, end, period.span.start, period.span.end)
        if span is None:
            continue
        if expected is not None:
            asked = [(*span, expected, _curbs_output(control, resource))]
        else:
            dispatch = subjects.dispatch.get(resource.id, ()) if resource is not None else ()
            found = _asked(control, period.value, resource, dispatch, *span)
            if found is None:
                return Unquantified(
                    override.id,
                    f"program '{control.program_id}' gives no response_kw for party '{override.party_id}' and control"
                    f" '{control.id}' is not a kW limit or setpoint (or a disconnection) on one resource that is"
                    " dispatched or rated",
                )
            asked = found
        mine: list[_Charge] = []  # this period's, adjacent pieces at the same rate as one
        for a, b, reduction_kw, output in asked:
            reduction = _kw(reduction_kw, market)
            if override.quantity_kw is not None:
                reduction = max(reduction - _kw(override.quantity_kw, market), Decimal(0))
            if reduction == 0:
                continue
            rate = -reduction if output else reduction
            if mine and mine[-1].end == a and mine[-1].rate == rate:
                mine[-1] = _Charge(override, location, mine[-1].start, b, rate, terms.penalty_per_kwh)
            else:
                mine.append(_Charge(override, location, a, b, rate, terms.penalty_per_kwh))
        charges.extend(mine)
    return charges


def _placed(override: Override, control: Control, subjects: OverrideSubjects) -> tuple[Resource | None, str | None]:
    """The resource and location an override of ``control`` is about: the one it names, else the party's first
    resource (by id) that the control reaches."""
    if override.resource_id is not None:
        resource = subjects.resources.get(override.resource_id)
        return resource, None if resource is None else resource.location_id
    reached = subjects.reaches.get(control.id, frozenset())
    owned = sorted((r for r in subjects.resources_of.get(override.party_id, ()) if r.id in reached), key=lambda r: r.id)
    if not owned:
        return None, None
    return (owned[0] if len(owned) == 1 else None), owned[0].location_id


GENERATING = frozenset({ResourceKind.PV, ResourceKind.GENERATOR})


def _curbs_output(control: Control, resource: Resource | None) -> bool:
    """Whether the control held output down (so overriding it exported more) rather than consumption."""
    if control.signal is ControlSignal.EXPORT_POWER:
        return True
    return control.signal is ControlSignal.REAL_POWER and resource is not None and resource.kind in GENERATING


def _asked(
    control: Control,
    value: Decimal | None,
    resource: Resource | None,
    dispatch: Sequence[Dispatched],
    start: datetime,
    end: datetime,
) -> list[tuple[datetime, datetime, Decimal, bool]] | None:
    """The reduction (kW) a kW limit or setpoint, or a disconnection, on one resource asked for over [start, end):
    what the resource would otherwise have done (its dispatch where it has one, else its rating) minus the limit,
    cut where its dispatch changes; each piece with whether it held output down. None when that cannot be said."""
    if resource is None or value is None:
        return None
    direction: Direction | None
    if control.kind is ControlKind.CONNECT:
        if value != 0:
            return None  # a control that connects asks for no reduction
        direction, limit_kw = None, Decimal(0)  # the whole dispatch, whichever way it flowed
    elif control.kind in (ControlKind.LIMIT, ControlKind.SETPOINT) and control.unit in (ControlUnit.KW, ControlUnit.W):
        direction = _direction(control, resource)
        if direction is None:
            return None
        limit_kw = abs(convert_power(value, PowerUnit(control.unit.value), PowerUnit.KW))
    else:
        return None
    out: list[tuple[datetime, datetime, Decimal, bool]] = []
    for a, b, piece in _cut(start, end, dispatch):
        if piece is not None:
            way = direction or (Direction.EXPORT if piece.export_kw > 0 else Direction.IMPORT)
            otherwise = piece.kw(way)
        else:
            way = direction or _only_way(resource)
            if way is None:
                return None  # a disconnected battery with no position: which rating it would have run at is unknown
            rating = rating_kw(resource, way)
            if rating is None:
                return None
            otherwise = rating
        out.append((a, b, max(otherwise - limit_kw, Decimal(0)), way is Direction.EXPORT))
    return out


def _direction(control: Control, resource: Resource) -> Direction | None:
    """Which flow a kW control limits: export or import power as it says, real power by what the resource is."""
    if control.signal is ControlSignal.EXPORT_POWER:
        return Direction.EXPORT
    if control.signal is ControlSignal.IMPORT_POWER:
        return Direction.IMPORT
    if control.signal is ControlSignal.REAL_POWER:
        return Direction.EXPORT if _curbs_output(control, resource) else Direction.IMPORT
    return None


def _only_way(resource: Resource) -> Direction | None:
    """The one direction a resource of its kind can flow in (None: either, like a battery)."""
    ways = [d for d in Direction if can_serve(resource, d)]
    return ways[0] if len(ways) == 1 else None


def _cut(
    start: datetime, end: datetime, dispatch: Sequence[Dispatched]
) -> list[tuple[datetime, datetime, Dispatched | None]]:
    """[start, end) cut where the resource's dispatch begins or ends, each piece with the dispatch covering it."""
    inner = {m for d in dispatch for m in (d.start, d.end) if start < m < end}
    bounds = [start, *sorted(inner), end]
    return [(a, b, next((d for d in dispatch if d.start <= a and b <= d.end), None)) for a, b in pairwise(bounds)]


def _kw(value: Decimal, market: Market) -> Decimal:
    return convert_power(value, PowerUnit.KW, market.quantity_unit)


def _clip(start: datetime, end: datetime, lo: datetime, hi: datetime) -> tuple[datetime, datetime] | None:
    a, b = max(start, lo), min(end, hi)
    return (a, b) if a < b else None


def _nearest(instant: datetime, zone: str) -> datetime:
    below = floor_to_boundary(instant, GRID, zone)
    step = timedelta(seconds=GRID.seconds)
    return below + step if (instant - below) * 2 >= step else below


def _slots(
    start: datetime, end: datetime, market: Market, window: tuple[datetime, datetime]
) -> list[tuple[Interval, list[Interval]]]:
    """The market intervals (starting inside ``window``) that [start, end) touches, each with the largest aligned
    pieces of it that the rounded span covers."""
    zone = market.time_zone
    a, b = _nearest(start, zone), _nearest(end, zone)
    out: list[tuple[Interval, list[Interval]]] = []
    steps = [r for r in _STEPS if r.rank <= market.resolution.rank]
    slot_start = floor_to_boundary(a, market.resolution, zone) if a < b else b
    while slot_start < b:
        slot = Interval(start=slot_start, duration=market.resolution, time_zone=zone)
        lo, hi = max(a, slot.start), min(b, slot.end)
        if window[0] <= slot.start < window[1] and lo < hi:
            out.append((slot, _aligned_pieces(lo, hi, steps, zone)))
        slot_start = slot.end
    return out


def _aligned_pieces(start: datetime, end: datetime, steps: list[Resolution], zone: str) -> list[Interval]:
    """[start, end) as the fewest aligned intervals, largest first where they fit (both ends are on the grid)."""
    pieces: list[Interval] = []
    at = start
    while at < end:
        step = next(r for r in reversed(steps) if is_aligned(at, r, zone) and at + timedelta(seconds=r.seconds) <= end)
        pieces.append(Interval(start=at, duration=step, time_zone=zone))
        at += timedelta(seconds=step.seconds)
    return pieces


def _meters(deliveries: Sequence[Delivery]) -> dict[tuple[str, str], list[Interval]]:
    """The real-power metered intervals per (party, location), site meters and resource meters alike."""
    out: defaultdict[tuple[str, str], list[Interval]] = defaultdict(list)
    for d in deliveries:
        if not d.quantity_unit.is_reactive:
            out[(d.party_id, d.location_id)].append(d.interval)
    return out


def _unmetered(piece: Interval, metered: list[Interval]) -> list[Interval]:
    """The parts of ``piece`` no reading covers: none, all of it, or its finer pieces when readings are finer."""
    touching = [m for m in metered if m.start < piece.end and piece.start < m.end]
    if not touching:
        return [piece]
    if any(m.start <= piece.start and piece.end <= m.end for m in touching):
        return []
    finest = min((m.duration for m in touching), key=lambda r: r.rank)
    if finest.rank >= piece.duration.rank:
        return [piece]  # readings that do not nest in the grid: nothing covers the piece as a whole
    return [p for p in piece.split(finest) if not any(m.start <= p.start and p.end <= m.end for m in touching)]


def _penalty(market: Market, charge: _Charge, piece: Interval) -> list[SettlementLine]:
    if not charge.penalty_per_kwh:
        return []
    price = convert_price(charge.penalty_per_kwh, EnergyUnit.KWH, market.price_per)
    return [_line(market, SettlementKind.PENALTY, charge, piece, abs(charge.rate), price)]


def _line(
    market: Market, kind: SettlementKind, charge: _Charge, piece: Interval, rate: Decimal, price: Decimal
) -> SettlementLine:
    override = charge.override
    party, location = override.party_id, charge.location_id
    return SettlementLine(
        id=line_id(market, kind, party, location, piece, override.id),
        party_id=party,
        market_id=market.id,
        location_id=location,
        interval=piece,
        kind=kind,
        quantity=rate,
        price=price,
        amount=amount(rate, int(piece.length.total_seconds()), price, market),
        reference_ids=[override.id, override.subject.id],
        currency=market.currency,
        quantity_unit=market.quantity_unit,
        price_per=market.price_per,
    )
