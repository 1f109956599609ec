"""How much of a tender has traded: the rule that one tender row sells (or buys) its quantity once.

A tender is a standing offer. It trades in two ways: the call auction clears a row when its interval's gate
closes, and a counterparty may accept it bilaterally before that (EI eiCreateTransaction, or a reported trade
with ``tender_id``). Either way the trades are stored transactions naming the tender, so what is left of a row is
its quantity minus the transactions of that tender in that interval; this module only does that arithmetic, in the
tender's own unit, exactly. The callers decide what to do with it: refuse an acceptance larger than what is left,
give the auction only the rest, and mark the tender partly filled or filled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from gateway.model import Tender, TenderStatus, Transaction, convert_power

Traded = Mapping[datetime, Decimal]
"""Per interval start: the quantity of a tender already traded, in the tender's unit."""


def traded(
    tender: Tender, transactions: Iterable[Transaction], *, bilateral_only: bool = False
) -> dict[datetime, Decimal]:
    """What of ``tender`` the transactions naming it traded, per interval start (``bilateral_only``: leave out the
    auction's own trades, which the auction does not need to subtract from itself)."""
    out: defaultdict[datetime, Decimal] = defaultdict(Decimal)
    for t in transactions:
        if t.tender_id != tender.id or (bilateral_only and t.clearing_id is not None):
            continue
        out[t.interval.start] += convert_power(t.quantity, t.quantity_unit, tender.quantity_unit)
    return dict(out)


def left(tender: Tender, start: datetime, done: Traded) -> Decimal | None:
    """What is left of the row starting at ``start`` (None: the tender has no such row); never below zero."""
    for row in tender.rows:
        if row["start"] == start:
            return max(row["quantity"] - done.get(start, Decimal(0)), Decimal(0))
    return None


def fill_status(tender: Tender, done: Traded) -> TenderStatus:
    """OPEN while nothing traded, FILLED when every row has traded its whole quantity, PARTIALLY_FILLED between;
    a tender that cannot trade any more (cancelled, expired, a quote) keeps its status."""
    if tender.status not in (TenderStatus.OPEN, TenderStatus.PARTIALLY_FILLED):
        return tender.status
    rest = [left(tender, row["start"], done) for row in tender.rows]
    if all(r == 0 for r in rest):
        return TenderStatus.FILLED
    if any(done.get(row["start"], Decimal(0)) > 0 for row in tender.rows):
        return TenderStatus.PARTIALLY_FILLED
    return TenderStatus.OPEN


def by_tender(transactions: Iterable[Transaction]) -> dict[str, list[Transaction]]:
    found: defaultdict[str, list[Transaction]] = defaultdict(list)
    for t in transactions:
        if t.tender_id is not None:
            found[t.tender_id].append(t)
    return dict(found)
