"""The TeMIX ticker: a market's open tenders for its next intervals, as an eiDistributeTender.

TeMIX markets publish 5-, 15- and 60-minute tenders continuously; a party's software watches the ticker to see
what it can accept. Served at GET /ei/v1/ticker and, when a broker is configured, kept as a retained MQTT message
per market (``<prefix>/ei/ticker/<market>``, CTS JSON) so that a subscriber gets the current ticker on connecting.
"""

from __future__ import annotations

from datetime import datetime

from gateway.model import Market, MessageKind, Tender, TenderStatus, utc_now
from gateway.model.intervals import floor_to_boundary, interval_end
from gateway.protocols.ei.messages import EiMessage, Payload
from gateway.store import Store

TICKER_INTERVALS = 12


def open_tenders(store: Store, market_id: str, start: datetime | None, end: datetime | None) -> list[Tender]:
    """Open, unexpired tenders of a market with a row starting in [start, end) (the ticker's and eiRequestTender's)."""
    now = utc_now()
    out: list[Tender] = []
    for status in (TenderStatus.OPEN, TenderStatus.PARTIALLY_FILLED):
        for tender in store.list(MessageKind.TENDER, filters={"market_id": market_id, "status": status}, limit=None):
            assert isinstance(tender, Tender)
            if tender.expires_at is not None and tender.expires_at <= now:
                continue
            rows = tender.rows
            if any((start is None or row["start"] >= start) and (end is None or row["start"] < end) for row in rows):
                out.append(tender)
    return sorted(out, key=lambda t: t.id)


def ticker_window(market: Market, now: datetime, intervals: int) -> tuple[datetime, datetime]:
    """From the start of the current interval to the end of the ``intervals``-th one after it."""
    start = floor_to_boundary(now, market.resolution, market.time_zone)
    end = start
    for _ in range(intervals + 1):
        end = interval_end(end, market.resolution, market.time_zone)
    return start, end


def ticker_message(store: Store, market: Market, now: datetime, intervals: int = TICKER_INTERVALS) -> EiMessage:
    start, end = ticker_window(market, now, intervals)
    tenders = open_tenders(store, market.id, start, end)
    return EiMessage(payload=Payload.DISTRIBUTE_TENDER, party_id=market.operator_id, tenders=tenders)
