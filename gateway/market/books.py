"""The order book of one market interval, gathered from stored canonical tenders.

Tenders arrive from every edge (REST, MQTT, EI, OpenADR price bridges) as strips of rows; a call auction needs the
one row of each tender that falls in the interval being cleared, in the market's units, as columns. Tenders that
can no longer trade (cancelled, expired by the gate closure, for another grid) are left out here and counted, so a
run can say what it did not clear and why.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import numpy as np

from gateway.market.auction import Book
from gateway.model import Interval, Market, Tender, TenderStatus, TransportProduct, convert_power, convert_price
from gateway.model.market import Side

_TRADING = frozenset({TenderStatus.OPEN, TenderStatus.PARTIALLY_FILLED})


@dataclass(frozen=True, slots=True)
class Bid:
    """One tender's row for the interval, in the market's units."""

    tender: Tender
    quantity: float
    price: float

    @property
    def is_buy(self) -> bool:
        return self.tender.side is Side.BUY


@dataclass
class IntervalBook:
    """Energy bids and transport offers of one interval, and what was left out."""

    interval: Interval
    energy: list[Bid] = field(default_factory=list)
    transport: list[Bid] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    def auction_book(self, market: Market) -> Book:
        """The columnar book of the uniform auction; ties within a price level go to the earlier tender."""
        buys = [b for b in self.energy if b.is_buy]
        sells = [b for b in self.energy if not b.is_buy]
        return Book(
            buy_ids=[b.tender.id for b in buys],
            buy_quantity=np.array([b.quantity for b in buys], dtype=float),
            buy_price=np.array([b.price for b in buys], dtype=float),
            buy_time=np.array([_micros(b.tender.created_at) for b in buys], dtype=np.int64),
            buy_all_or_none=np.array([b.tender.all_or_none for b in buys], dtype=bool),
            sell_ids=[b.tender.id for b in sells],
            sell_quantity=np.array([b.quantity for b in sells], dtype=float),
            sell_price=np.array([b.price for b in sells], dtype=float),
            sell_time=np.array([_micros(b.tender.created_at) for b in sells], dtype=np.int64),
            sell_all_or_none=np.array([b.tender.all_or_none for b in sells], dtype=bool),
            price_cap=float(market.price_cap),
            price_floor=float(market.price_floor),
            k=float(market.k),
        )


def _micros(instant: datetime) -> int:
    return int(instant.timestamp() * 1_000_000)


def gather(
    market: Market,
    interval: Interval,
    tenders: Iterable[Tender],
    *,
    gate_closed_at: datetime,
    accepted: Mapping[str, Decimal] | None = None,
) -> IntervalBook:
    """The book of ``interval``: each trading tender's row for it, converted to the market's units.

    ``accepted``: per tender id, what of its row for this interval counterparties already accepted bilaterally
    (in the tender's unit, see ``fills``); the auction offers only the rest, so nothing is sold twice.

    A tender counts when it was created before the gate closed, is open or partly filled, was not expired when the
    gate closed, matches the market's currency and grid, and has a row with a positive quantity in the interval.
    ``created_at`` is the edge's arrival time unless the sender set it (a tender stored late for an interval whose
    run has not happened yet stays out). Anything else is skipped and
    counted by reason (the ingest rules refuse most of it up front; a market edited since can still strand some).
    """
    book = IntervalBook(interval)
    start = interval.start
    for tender in tenders:
        if tender.market_id != market.id:
            continue
        reason = _why_not(tender, market, gate_closed_at)
        if reason:
            book.skipped[reason] += 1
            continue
        starts = [row["start"] for row in tender.rows]
        at = bisect_left(starts, start)
        if at == len(starts) or starts[at] != start:
            continue  # no row for this interval: not in the book, nothing to report
        row = tender.rows[at]
        rest = row["quantity"] - (accepted.get(tender.id, Decimal(0)) if accepted else Decimal(0))
        if rest <= 0:
            if row["quantity"] > 0:
                book.skipped["filled"] += 1
            continue
        quantity = float(convert_power(rest, tender.quantity_unit, market.quantity_unit))
        price = float(convert_price(row["price"], tender.price_per, market.price_per))
        bid = Bid(tender, quantity, price)
        (book.transport if isinstance(tender.product, TransportProduct) else book.energy).append(bid)
    return book


def _why_not(tender: Tender, market: Market, gate_closed_at: datetime) -> str | None:
    if tender.status not in _TRADING:
        return tender.status.value
    if tender.created_at > gate_closed_at:
        return "after_gate"
    if tender.expires_at is not None and tender.expires_at <= gate_closed_at:
        return "expired"
    if tender.currency != market.currency:
        return "currency"
    if tender.resolution is not market.resolution:
        return "resolution"
    if tender.product.type not in ("energy", "transport"):
        return "product"
    return None
