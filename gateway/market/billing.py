"""Settlement runs against the store: load a market's clearings, trades and metered deliveries for a window,
settle them (``gateway.market.settlement``, pure) and store the bill lines in one atomic append.

Lines have stable ids and a content-derived version, so settling the same window again stores nothing new, while
corrected meter data produces a new version of exactly the lines it changes (the log keeps both).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from gateway.market.rules import network_path
from gateway.market.runs import MARKET_PROTOCOL, MarketError, UnknownMarket
from gateway.market.settlement import SettlementReport, settle
from gateway.model import Delivery, Envelope, Location, Market, MessageKind, Source, content_version
from gateway.store import Store, StoredMessage


def settle_window(
    store: Store, market_id: str, start: datetime, end: datetime
) -> tuple[SettlementReport, list[StoredMessage]]:
    """Settle every market interval starting in [start, end) and store the lines."""
    if end <= start:
        raise MarketError("the settlement window must end after it starts")
    market = store.get(MessageKind.MARKET, market_id)
    if not isinstance(market, Market):
        raise UnknownMarket(f"unknown market '{market_id}'")
    window = {"interval_start": (start.isoformat(), end.isoformat())}
    clearings = store.list(MessageKind.CLEARING, filters={"market_id": market.id}, ranges=window, limit=None)
    transactions = store.list(MessageKind.TRANSACTION, filters={"market_id": market.id}, ranges=window, limit=None)
    # Whose meters count: every party that ever traded in the market, not only inside this window, so that an
    # interval settles the same whichever window holds it (and a reading in an uncleared interval is reported).
    parties = set(store.values(MessageKind.TRANSACTION, "party_id", filters={"market_id": market.id}, distinct=True))
    parties |= {t.counterparty_id for t in transactions if t.counterparty_id != market.operator_id}  # type: ignore[union-attr]
    inside = _network_membership(store, market)
    deliveries = [
        d
        for d in store.list(MessageKind.DELIVERY, ranges=window, limit=None)
        if isinstance(d, Delivery) and d.party_id in parties and inside(d.location_id)
    ]
    report = settle(market, clearings, transactions, deliveries)  # type: ignore[arg-type]
    envelopes = [
        Envelope(
            payload=line,
            source=Source(protocol=MARKET_PROTOCOL, peer=market.id, native_id=line.id, version=content_version(line)),
        )
        for line in report.lines
    ]
    return report, store.append_many(envelopes)


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
