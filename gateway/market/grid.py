"""A market's network: the subtree of the location tree under its ``network_root_id``, with transport limits and the
operating envelopes that bound its connection points; and the envelopes computed from that network and the
market's cleared positions.

Limits come from each location's ``rating_kva`` (the CIM import fills them from transformer ratedS and feeder head
ratings, see ``gateway.protocols.cim.mapper.transport_limits``). The clearing treats a kVA limit as the same number
of kW: power factor 1, the loosest reading, so a limit binds only when real power alone overruns the rating.

Envelopes as market constraints (:func:`envelope_bounds`): every stored envelope, operator-set or computed, whose
periods overlap the interval being cleared bounds its location's net injection (import <= import limit, export <=
export limit; the tightest overlapping period wins; a missing limit bounds nothing). An envelope for one resource
bounds its whole location too: the market clears per location and cannot tell which of a site's bids that device
will serve, so it never sells more at a site than a device limit there allows (safe, and tight only for sites with
several devices, whose operator should then set the envelope on the location).

Computed envelopes (:func:`plan_envelopes`) are written for exactly the spans of the intervals whose positions they
come from. A market interval clears once (its clearing id is its key and a second run returns the stored result),
so an envelope computed from interval T's positions never bounds the clearing it came from: it bounds markets that
clear later over the same network and span (a 5-minute market under an hourly one, an intraday market after a
day-ahead one), which is what they are for.
"""

from __future__ import annotations

import uuid
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from gateway.market.network_clearing import Network
from gateway.model import (
    Interval,
    IntervalError,
    Location,
    LocationKind,
    Market,
    MessageKind,
    OperatingEnvelope,
    Position,
    PowerUnit,
    TimeSpan,
    convert_power,
)
from gateway.model.controls import EnvelopePeriod, EnvelopeSource
from gateway.overrides.envelopes import Sharing, compute_limits
from gateway.store import Store

ENVELOPE_PROTOCOL = "doe"
"""The source protocol of computed envelopes in the message log (they are ingested like any other object)."""

MAX_INTERVALS = 10_000
"""Most intervals one computation may cover: an envelope holds at most this many periods."""

_NAMESPACE = uuid.UUID("0f3c5a52-8d51-4c1b-9f0e-5b7d2e6a4c31")


def network_locations(market: Market, locations: Iterable[Location]) -> dict[str, Location]:
    """The locations of the market's network (its root's subtree, the root included); empty without a root."""
    if market.network_root_id is None:
        return {}
    children: dict[str, list[Location]] = {}
    by_id: dict[str, Location] = {}
    for location in locations:
        by_id[location.id] = location
        if location.parent_id is not None:
            children.setdefault(location.parent_id, []).append(location)
    if market.network_root_id not in by_id:
        raise ValueError(f"market '{market.id}' names network root '{market.network_root_id}', which is not stored")
    inside = {market.network_root_id: by_id[market.network_root_id]}
    stack = [market.network_root_id]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child.id not in inside:  # a stored cycle must not loop forever
                inside[child.id] = child
                stack.append(child.id)
    return inside


def market_network(
    market: Market,
    locations: Iterable[Location],
    envelopes: Iterable[OperatingEnvelope] = (),
    interval: Interval | None = None,
) -> Network | None:
    """The network of ``market`` (None for a copper-plate market without a network root), in the market's unit,
    with the ``envelopes`` that overlap ``interval`` as one-way limits (see :func:`envelope_bounds`)."""
    inside = network_locations(market, locations)
    if not inside:
        return None
    parent: dict[str, str | None] = {loc: inside[loc].parent_id for loc in inside}
    parent[market.network_root_id or ""] = None
    capacity = {
        loc.id: float(_in_market_unit(loc.rating_kva, market))
        for loc in inside.values()
        if loc.rating_kva is not None and loc.id != market.network_root_id
    }
    imports: dict[str, float] = {}
    exports: dict[str, float] = {}
    if interval is not None:
        imports, exports = envelope_bounds(envelopes, interval, inside, market)
    return Network(parent=parent, capacity_kva=capacity, import_limit=imports, export_limit=exports)


def envelope_bounds(
    envelopes: Iterable[OperatingEnvelope], interval: Interval, inside: Container[str], market: Market
) -> tuple[dict[str, float], dict[str, float]]:
    """(import, export) limit per location of the network, in the market's unit: the tightest of every envelope
    period that overlaps the interval (see the module docstring for resource envelopes). The root has no edge to
    bound and is left out."""
    span = TimeSpan(start=interval.start, duration=interval.length)
    imports: dict[str, Decimal] = {}
    exports: dict[str, Decimal] = {}
    for envelope in envelopes:
        location = envelope.location_id
        if location not in inside or location == market.network_root_id:
            continue
        for period in envelope.periods:
            if period.span.start >= span.end:
                break  # periods are in time order
            if not period.span.overlaps(span):
                continue
            for limit, found in ((period.import_limit_kw, imports), (period.export_limit_kw, exports)):
                if limit is not None and (location not in found or limit < found[location]):
                    found[location] = limit
    return (
        {loc: float(_in_market_unit(v, market)) for loc, v in imports.items()},
        {loc: float(_in_market_unit(v, market)) for loc, v in exports.items()},
    )


def _in_market_unit(kw: Decimal, market: Market) -> Decimal:
    if market.quantity_unit is PowerUnit.KW:
        return kw
    return convert_power(kw, PowerUnit.KW, market.quantity_unit)


# -- computed envelopes -------------------------------------------------------------------------------------------


class EnvelopeError(ValueError):
    """Envelopes cannot be computed as asked; the message says why and what to do."""


class NotCleared(EnvelopeError):
    """An interval asked for has no clearing yet: there are no positions to compute from."""


@dataclass
class EnvelopePlan:
    """Envelopes computed for a window, not stored yet. ``overloaded``: per interval start (ISO), per direction,
    the edges that the flows of locations without envelopes already overrun (their points got 0 that way);
    ``unbounded``: connection points with no rated edge above them, which got no envelope."""

    market_id: str
    start: datetime
    end: datetime
    envelopes: list[OperatingEnvelope]
    points: list[str]
    overloaded: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    unbounded: list[str] = field(default_factory=list)


def envelope_id(market_id: str, location_id: str, start: datetime, end: datetime) -> str:
    """Stable id of the envelope a market computes for a location and window: recomputing the same window writes a
    new version of the same envelope (a duplicate when nothing changed)."""
    key = "|".join((market_id, location_id, start.isoformat(), end.isoformat()))
    return f"doe:{market_id}:{uuid.uuid5(_NAMESPACE, key)}"


def market_intervals(market: Market, start: datetime, end: datetime | None) -> list[Interval]:
    """The market's intervals from ``start`` (an interval start) to ``end`` (an interval end; default: one)."""
    try:
        first = Interval(start=start, duration=market.resolution, time_zone=market.time_zone)
    except (ValueError, IntervalError) as exc:
        raise EnvelopeError(
            f"{start.isoformat()} does not start a {market.resolution.value} interval of market '{market.id}' "
            f"(time zone {market.time_zone})"
        ) from exc
    if end is None:
        return [first]
    if end <= start:
        raise EnvelopeError("end must be after start")
    out = [first]
    while out[-1].end < end:
        if len(out) >= MAX_INTERVALS:
            raise EnvelopeError(f"at most {MAX_INTERVALS} intervals per computation; ask for a shorter window")
        out.append(Interval(start=out[-1].end, duration=market.resolution, time_zone=market.time_zone))
    if out[-1].end != end:
        raise EnvelopeError(
            f"{end.isoformat()} does not end a {market.resolution.value} interval of market '{market.id}' "
            f"(the interval from {out[-1].start.isoformat()} ends at {out[-1].end.isoformat()})"
        )
    return out


def plan_envelopes(
    store: Store, market: Market, start: datetime, end: datetime | None = None, sharing: Sharing = Sharing.EQUAL
) -> EnvelopePlan:
    """Envelopes for every connection point (service point with resources) of ``market``'s network over the
    intervals from ``start`` to ``end``, from the network and the stored positions of each interval's clearing.

    Raises :class:`EnvelopeError` for a market without a network, a window not on the market's interval grid,
    no connection point, or a rating missing for sharing by rating; :class:`NotCleared` when an interval has no
    clearing. Nothing is stored here.
    """
    if market.network_root_id is None:
        raise EnvelopeError(
            f"market '{market.id}' has no network (network_root_id): envelopes are computed from network ratings"
        )
    intervals = market_intervals(market, start, end)
    window_start, window_end = intervals[0].start, intervals[-1].end
    window = {"interval_start": (window_start.isoformat(), window_end.isoformat())}
    cleared = set(store.values(MessageKind.CLEARING, "interval_start", filters={"market_id": market.id}, ranges=window))
    missing = [i.start.isoformat() for i in intervals if i.start.isoformat() not in cleared]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise NotCleared(
            f"market '{market.id}' has not cleared {shown}: envelopes are computed from an interval's cleared "
            "positions, so clear it first"
        )
    try:
        inside = network_locations(market, store.list(MessageKind.LOCATION, limit=None))  # type: ignore[arg-type]
    except ValueError as exc:
        raise EnvelopeError(str(exc)) from exc
    network = _kw_network(market, inside)
    sited = set(store.values(MessageKind.RESOURCE, "location_id", distinct=True))
    points = sorted(
        loc.id
        for loc in inside.values()
        if loc.kind is LocationKind.SERVICE_POINT and loc.id in sited and loc.id != market.network_root_id
    )
    if not points:
        raise EnvelopeError(
            f"market '{market.id}' has no connection point (a service point with resources) in its network"
        )
    net = _net_imports(store, market, intervals, inside)
    periods: dict[str, list[EnvelopePeriod]] = {p: [] for p in points}
    plan = EnvelopePlan(market.id, window_start, window_end, [], points)
    unbounded: set[str] = set()
    for interval in intervals:
        try:
            limits = compute_limits(network, points, net.get(interval.start, {}), sharing=sharing)
        except ValueError as exc:
            raise EnvelopeError(str(exc)) from exc
        if limits.overloaded:
            plan.overloaded[interval.start.isoformat()] = limits.overloaded
        span = TimeSpan(start=interval.start, duration=interval.length)
        for point, found in limits.points.items():
            if found.import_kw is None and found.export_kw is None:
                unbounded.add(point)
                continue
            periods[point].append(
                EnvelopePeriod(span=span, import_limit_kw=found.import_kw, export_limit_kw=found.export_kw)
            )
    plan.unbounded = sorted(unbounded)
    plan.envelopes = [
        OperatingEnvelope(
            id=envelope_id(market.id, point, window_start, window_end),
            location_id=point,
            periods=found,
            source=EnvelopeSource.COMPUTED,
        )
        for point, found in periods.items()
        if found
    ]
    return plan


def _kw_network(market: Market, inside: dict[str, Location]) -> Network:
    """The network with ratings in kW (envelopes are in kW whatever the market's unit), as exact Decimals."""
    parent: dict[str, str | None] = {loc: inside[loc].parent_id for loc in inside}
    parent[market.network_root_id or ""] = None
    ratings = {loc.id: loc.rating_kva for loc in inside.values() if loc.rating_kva is not None}
    return Network(parent=parent, capacity_kva=ratings)  # type: ignore[arg-type]


def _net_imports(
    store: Store, market: Market, intervals: list[Interval], inside: Container[str]
) -> dict[datetime, dict[str, Decimal]]:
    """Per interval start and location, the participants' net cleared import in kW (energy positions; the market
    operator is the other side of every cleared trade and is left out, or every location would net to zero)."""
    window = {"interval_start": (intervals[0].start.isoformat(), intervals[-1].end.isoformat())}
    found = store.list(MessageKind.POSITION, filters={"market_id": market.id}, ranges=window, limit=None)
    starts = {i.start for i in intervals}
    out: dict[datetime, dict[str, Decimal]] = {}
    for position in found:
        assert isinstance(position, Position)
        if (
            position.party_id == market.operator_id
            or position.product_type != "energy"
            or position.interval.start not in starts
            or position.interval.duration is not market.resolution
            or position.location_id not in inside
        ):
            continue
        kw = convert_power(position.quantity, position.quantity_unit, PowerUnit.KW)
        at = out.setdefault(position.interval.start, {})
        at[position.location_id] = at.get(position.location_id, Decimal(0)) + kw
    return out


def envelopes_in_network(
    store: Store,
    market: Market,
    start: datetime | None = None,
    end: datetime | None = None,
    source: EnvelopeSource | None = None,
) -> list[OperatingEnvelope]:
    """Stored envelopes at the market's network locations with a period overlapping [start, end): the ones that
    bound its clearing there, whoever set them. In (location, first period start, id) order."""
    inside = network_locations(market, store.list(MessageKind.LOCATION, limit=None))  # type: ignore[arg-type]
    out: list[OperatingEnvelope] = []
    for envelope in store.list(MessageKind.OPERATING_ENVELOPE, limit=None):
        assert isinstance(envelope, OperatingEnvelope)
        if envelope.location_id not in inside or (source is not None and envelope.source is not source):
            continue
        if any((start is None or p.span.end > start) and (end is None or p.span.start < end) for p in envelope.periods):
            out.append(envelope)
    return sorted(out, key=lambda e: (e.location_id, e.periods[0].span.start, e.id))
