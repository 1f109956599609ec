"""Settlement runs against the store: load a market's clearings, trades, metered deliveries and the overrides that
count for a window (``gateway.overrides.inputs`` reads what overrides need), settle them
(``gateway.market.settlement`` and ``gateway.overrides.settlement``, both pure) and store the bill lines in one
atomic append.

Lines have stable ids and a content-derived version, so settling the same window again stores nothing new, while
corrected meter data produces a new version of exactly the lines it changes (the log keeps both). A line stored by
an earlier run that the data no longer supports (an override withdrawn, a reading that arrived and now covers an
estimated deviation) gets a new version with quantity and amount zero: the store never deletes, and the stored
lines of a window always add up to its bill.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from gateway.market.rules import network_path
from gateway.market.runs import MARKET_PROTOCOL, MarketError, UnknownMarket
from gateway.market.settlement import SettlementReport, order, settle, totals_of
from gateway.model import (
    Delivery,
    Envelope,
    Location,
    Market,
    MessageKind,
    SettlementLine,
    Source,
    content_version,
)
from gateway.model.intervals import floor_to_boundary
from gateway.overrides.inputs import override_inputs
from gateway.overrides.policy import OverridePolicy, load_policy
from gateway.overrides.settlement import settle_overrides
from gateway.store import Store, StoredMessage


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

    overrides, subjects = override_inputs(store, market.id, start, end, policy)
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
