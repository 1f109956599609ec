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

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

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
from gateway.overrides.policy import OverridePolicy, load_policy
from gateway.overrides.settlement import OverrideSubjects, settle_overrides
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
    subjects = _subjects(store, overrides)
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


def _subjects(store: Store, overrides: Sequence[Override]) -> OverrideSubjects:
    """What the overrides name, read once each."""
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
    return OverrideSubjects(
        transactions=transactions, controls=controls, resources=resources, resources_of=owned, reaches=reaches
    )


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
