"""Settlement runs against the store: load a market's clearings, trades, metered deliveries and the overrides that
count for a window, settle them (``gateway.market.settlement`` and ``gateway.overrides.settlement``, both pure) and
store the bill lines in one atomic append.

Lines have stable ids and a content-derived version, so settling the same window again stores nothing new, while
corrected meter data produces a new version of exactly the lines it changes (the log keeps both). A line stored by
an earlier run that the data no longer supports (an override withdrawn, a reading that arrived and now covers an
estimated deviation) gets a new version with quantity and amount zero: the store never deletes, and the stored
lines of a window always add up to its bill.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from gateway.market.rules import network_path
from gateway.market.runs import MARKET_PROTOCOL, MarketError, UnknownMarket
from gateway.market.settlement import SettlementReport, order, settle, totals_of
from gateway.model import (
    Control,
    Delivery,
    Envelope,
    Location,
    Market,
    MessageKind,
    Override,
    Resource,
    SettlementLine,
    Source,
    Transaction,
    content_version,
)
from gateway.model.intervals import floor_to_boundary
from gateway.model.overrides import SubjectKind
from gateway.overrides.curtailment import Direction
from gateway.overrides.dispatch import can_serve, covering, piece_bounds, rating_kw, site_transactions, split_dispatch
from gateway.overrides.policy import OverridePolicy, load_policy
from gateway.overrides.settlement import Dispatched, OverrideSubjects, settle_overrides
from gateway.store import Store, StoredMessage

_LONGEST_INTERVAL = timedelta(days=366)
"""An override starting this long after the window cannot touch an interval that starts inside it."""


def settle_window(
    store: Store, market_id: str, start: datetime, end: datetime, policy: OverridePolicy | None = None
) -> tuple[SettlementReport, list[StoredMessage]]:
    """Settle every market interval starting in [start, end) and store the lines."""
    if end <= start:
        raise MarketError("the settlement window must end after it starts")
    market = store.get(MessageKind.MARKET, market_id)
    if not isinstance(market, Market):
        raise UnknownMarket(f"unknown market '{market_id}'")
    policy = policy if policy is not None else load_policy()
    window = {"interval_start": (start.isoformat(), end.isoformat())}
    clearings = store.list(MessageKind.CLEARING, filters={"market_id": market.id}, ranges=window, limit=None)
    transactions = store.list(MessageKind.TRANSACTION, filters={"market_id": market.id}, ranges=window, limit=None)
    # Whose meters count: every party that ever traded in the market, not only inside this window, so that an
    # interval settles the same whichever window holds it (and a reading in an uncleared interval is reported).
    parties = set(store.values(MessageKind.TRANSACTION, "party_id", filters={"market_id": market.id}, distinct=True))
    parties |= {t.counterparty_id for t in transactions if t.counterparty_id != market.operator_id}  # type: ignore[union-attr]
    inside = _network_membership(store, market)
    readings = [d for d in store.list(MessageKind.DELIVERY, ranges=window, limit=None) if isinstance(d, Delivery)]
    deliveries = [d for d in readings if d.party_id in parties and inside(d.location_id)]
    report = settle(market, clearings, transactions, deliveries)  # type: ignore[arg-type]

    overrides = _overrides_near(store, start, end)
    subjects = _subjects(store, overrides, market.id, policy)
    # Only meters the market settles can replace an override's estimate: a party without a position here is billed
    # elsewhere for what its meter shows, so here the estimate is all the market knows of its deviation.
    priced = settle_overrides(market, clearings, overrides, subjects, deliveries, policy, (start, end))  # type: ignore[arg-type]
    lines = report.lines + priced.lines
    lines += _reversals(store, market, start, end, {line.id for line in lines})
    unpriced = report.unpriced + [item for item in priced.unpriced if item not in report.unpriced]
    report = replace(
        report,
        lines=order(lines),
        totals=totals_of(lines),
        unpriced=unpriced,
        unquantified=[(u.override_id, u.reason) for u in priced.unquantified],
    )
    envelopes = [
        Envelope(
            payload=line,
            source=Source(protocol=MARKET_PROTOCOL, peer=market.id, native_id=line.id, version=content_version(line)),
        )
        for line in report.lines
    ]
    return report, store.append_many(envelopes)


def _overrides_near(store: Store, start: datetime, end: datetime) -> list[Override]:
    """Every override (any status: resolution needs them all) whose span meets the window's intervals.

    Overrides are few next to tenders and readings, and their spans are not indexed, so they are filtered here.
    """
    found = store.list(MessageKind.OVERRIDE, limit=None)
    return [
        o for o in found if isinstance(o, Override) and o.span.end > start and o.span.start < end + _LONGEST_INTERVAL
    ]


def _subjects(store: Store, overrides: Sequence[Override], market_id: str, policy: OverridePolicy) -> OverrideSubjects:
    """What the overrides name, read once each, and the market dispatch of the resources that overrides of the
    market's controls may be about."""
    transactions: dict[str, Transaction] = {}
    controls: dict[str, Control] = {}
    resources: dict[str, Resource] = {}
    owned: dict[str, list[Resource]] = {}
    for o in overrides:
        found = store.get(MessageKind(o.subject.kind.value), o.subject.id)
        if isinstance(found, Transaction):
            transactions[found.id] = found
        elif isinstance(found, Control):
            controls[found.id] = found
        if o.resource_id is not None and o.resource_id not in resources:
            resource = store.get(MessageKind.RESOURCE, o.resource_id)
            if isinstance(resource, Resource):
                resources[resource.id] = resource
        if o.subject.kind is SubjectKind.CONTROL and o.party_id not in owned:
            listed = store.list(MessageKind.RESOURCE, filters={"owner_id": o.party_id}, limit=None)
            owned[o.party_id] = [r for r in listed if isinstance(r, Resource)]
    paths: dict[str, list[str]] = {}

    def path(location_id: str) -> list[str]:
        if location_id not in paths:
            paths[location_id] = network_path(location_id, lambda i: _location(store, i))
        return paths[location_id]

    reaches = {
        control.id: frozenset(
            r.id for party in owned.values() for r in party if _reached(control, r, path(r.location_id))
        )
        for control in controls.values()
    }
    dispatch = _dispatch(store, market_id, policy, overrides, controls, resources, owned, reaches)
    return OverrideSubjects(
        transactions=transactions,
        controls=controls,
        resources=resources,
        resources_of=owned,
        reaches=reaches,
        dispatch=dispatch,
    )


def _dispatch(
    store: Store,
    market_id: str,
    policy: OverridePolicy,
    overrides: Sequence[Override],
    controls: Mapping[str, Control],
    resources: Mapping[str, Resource],
    owned: Mapping[str, Sequence[Resource]],
    reaches: Mapping[str, frozenset[str]],
) -> dict[str, list[Dispatched]]:
    """What the market dispatched each resource an override of a control settled in ``market_id`` may be about (the
    one it names, else the party's resources the control reaches), while the control ran: the pieces of time in
    which the resource's party held a position at its site in the market, as curtailment reckons it
    (``gateway.overrides.dispatch``: the party's net position there split among its resources there by rating)."""
    known = {r.id: r for party in owned.values() for r in party} | dict(resources)
    windows: dict[str, tuple[datetime, datetime]] = {}
    for o in overrides:
        control = controls.get(o.subject.id) if o.subject.kind is SubjectKind.CONTROL else None
        terms = policy.program(control.program_id) if control is not None else None
        if control is None or terms is None or terms.market_id != market_id:
            continue
        mine = {r.id for r in owned.get(o.party_id, ())}
        about = [o.resource_id] if o.resource_id is not None else sorted(reaches.get(control.id, frozenset()) & mine)
        span = control.span
        for rid in about:
            if rid in known:
                start, end = windows.get(rid, (span.start, span.end))
                windows[rid] = (min(start, span.start), max(end, span.end))
    sites: dict[tuple[str, str], list[Resource]] = {}
    out: dict[str, list[Dispatched]] = {}
    for rid in sorted(windows):
        resource = known[rid]
        start, end = windows[rid]
        trades = site_transactions(store, resource.owner_id, resource.location_id, start, end, market_id)
        if not trades:
            continue
        key = (resource.owner_id, resource.location_id)
        if key not in sites:
            listed = store.list(MessageKind.RESOURCE, filters={"location_id": resource.location_id}, limit=None)
            sites[key] = sorted(
                (r for r in listed if isinstance(r, Resource) and r.owner_id == resource.owner_id), key=lambda r: r.id
            )
        pieces: list[Dispatched] = []
        for a, b in pairwise(piece_bounds(start, end, trades)):
            held = covering(trades, a, b)
            if held:
                kw = {d: _share(resource, sites[key], held, d) for d in Direction}
                pieces.append(Dispatched(a, b, export_kw=kw[Direction.EXPORT], import_kw=kw[Direction.IMPORT]))
        out[rid] = pieces
    return out


def _share(resource: Resource, site: Sequence[Resource], held: Sequence[Transaction], direction: Direction) -> Decimal:
    """The resource's part of its party's position at its site in ``direction`` (0 if it cannot flow that way)."""
    if not can_serve(resource, direction):
        return Decimal(0)
    team = [r for r in site if can_serve(r, direction)]
    parts = split_dispatch(held, [rating_kw(r, direction) for r in team], direction)
    return next((kw for r, kw in zip(team, parts, strict=True) if r.id == resource.id), Decimal(0))


def _reached(control: Control, resource: Resource, path: list[str]) -> bool:
    targets = control.targets
    return (
        targets.broadcast
        or bool(targets.group_ids)
        or resource.owner_id in targets.party_ids
        or resource.id in targets.resource_ids
        or not set(targets.location_ids).isdisjoint(path)
    )


def _location(store: Store, location_id: str) -> Location | None:
    found = store.get(MessageKind.LOCATION, location_id)
    return found if isinstance(found, Location) else None


def _reversals(store: Store, market: Market, start: datetime, end: datetime, current: set[str]) -> list[SettlementLine]:
    """Zero versions of the stored lines of the window's intervals that this run no longer produces (and that are
    not zero already). A line finer than the market's interval belongs to the interval that holds it."""
    window = {"interval_start": (start.isoformat(), end.isoformat())}
    stored = store.list(MessageKind.SETTLEMENT_LINE, filters={"market_id": market.id}, ranges=window, limit=None)
    zero = Decimal(0)
    return [
        line.model_copy(update={"quantity": zero, "amount": zero})
        for line in stored
        if isinstance(line, SettlementLine)
        and line.id not in current
        and (line.amount != 0 or line.quantity != 0)
        and start <= floor_to_boundary(line.interval.start, market.resolution, market.time_zone)
    ]


def _network_membership(store: Store, market: Market) -> Callable[[str], bool]:
    """Whether a location is inside the market's network (always, for a copper-plate market); walks are cached."""
    if market.network_root_id is None:
        return lambda _location: True
    root = market.network_root_id
    known: dict[str, Location | None] = {}

    def locate(location: str) -> Location | None:
        if location not in known:
            known[location] = store.get(MessageKind.LOCATION, location)  # type: ignore[assignment]
        return known[location]

    return lambda location: root in network_path(location, locate)
