"""Bilateral trades: a counterparty accepts a standing tender (EI eiCreateTransaction, or a trade reported over REST
with ``tender_id``), so the trade is stored, both parties' positions move at once, and the tender shows what is
left of it.

One desk per gateway process serialises acceptances (check what is left, store the trade, mark the tender) so two
counterparties racing for the last kilowatts of one row cannot both get them; gateways sharing one database
would need the database's lock for that, which is not here yet (see docs). The call auction subtracts accepted
quantities when it builds its book (``books.gather``), so a tender never trades more than it offered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from gateway.ingest import Ingestor
from gateway.market.fills import fill_status, left, traded
from gateway.market.runs import MARKET_PROTOCOL, MarketRunner
from gateway.model import Envelope, MessageKind, Source, Tender, TenderStatus, Transaction, content_version
from gateway.model.base import utc_now
from gateway.store import StoredMessage


@dataclass
class TradeRefused(Exception):
    """Why an acceptance is refused; ``kind`` says which protocol status fits (each edge maps it)."""

    kind: str  # "not_found", "conflict", "expired", "unprocessable"
    reason: str

    def __str__(self) -> str:
        return self.reason


class BilateralDesk:
    def __init__(self, ingestor: Ingestor, runner: MarketRunner) -> None:
        self.ingestor = ingestor
        self.store = ingestor.store
        self.runner = runner
        self._lock = asyncio.Lock()

    async def trade(
        self, transactions: Sequence[Transaction], envelopes: Sequence[Envelope], *, protocol: str, peer: str
    ) -> list[StoredMessage]:
        """Check every acceptance in ``transactions`` against what is left of its tender, store ``envelopes`` (the
        same transactions, as the edge received them) through the ingest path, then mark the tenders and refresh
        both parties' positions. Raises :class:`TradeRefused` before anything is stored, or ``Rejected``."""
        async with self._lock:
            tenders = await asyncio.to_thread(self._check, transactions)
            stored = await self.ingestor.ingest(list(envelopes), protocol=protocol, peer=peer)
            if any(not s.duplicate for s in stored):
                marked = await asyncio.to_thread(self._mark, tenders)
                positions = await asyncio.to_thread(self._refresh, transactions)
                if self.ingestor.bus is not None:
                    self.ingestor.bus.publish([*marked, *positions])
            return stored

    def _check(self, transactions: Sequence[Transaction]) -> list[Tender]:
        tenders: dict[str, Tender] = {}
        pending: dict[tuple[str, datetime], Decimal] = {}  # accepted earlier in this same batch
        for t in transactions:
            if t.tender_id is None:
                continue
            tender = tenders.get(t.tender_id) or self.store.get(MessageKind.TENDER, t.tender_id)
            if not isinstance(tender, Tender):
                raise TradeRefused("not_found", f"unknown tender '{t.tender_id}'")
            _tradable(tender, t, resent=self.store.exists(MessageKind.TRANSACTION, t.id))
            tenders[tender.id] = tender
            others = [x for x in self._trades_of(tender.id) if x.id != t.id]  # a resend is not traded twice
            done = traded(tender, others)
            for (tender_id, start), quantity in pending.items():
                if tender_id == tender.id:
                    done[start] = done.get(start, Decimal(0)) + quantity
            rest = left(tender, t.interval.start, done)
            if rest is None:
                raise TradeRefused(
                    "unprocessable", f"tender '{tender.id}' offers nothing for {t.interval.start.isoformat()}"
                )
            wanted = traded(tender, [t]).get(t.interval.start, Decimal(0))
            if wanted > rest:
                raise TradeRefused(
                    "conflict",
                    f"tender '{tender.id}' has {rest} {tender.quantity_unit.value} left for"
                    f" {t.interval.start.isoformat()}; {wanted} cannot be accepted",
                )
            key = (tender.id, t.interval.start)
            pending[key] = pending.get(key, Decimal(0)) + wanted
        return list(tenders.values())

    def _trades_of(self, tender_id: str) -> list[Transaction]:
        found = self.store.list(MessageKind.TRANSACTION, filters={"tender_id": tender_id}, limit=None)
        return [t for t in found if isinstance(t, Transaction)]

    def _mark(self, tenders: list[Tender]) -> list[StoredMessage]:
        """New versions of the tenders whose fill status changed (the gateway's own write, like a market result)."""
        envelopes = []
        for tender in tenders:
            current = self.store.get(MessageKind.TENDER, tender.id)
            if not isinstance(current, Tender):
                continue
            status = fill_status(current, traded(current, self._trades_of(current.id)))
            if status is not current.status:
                updated = current.model_copy(update={"status": status})
                source = Source(
                    protocol=MARKET_PROTOCOL,
                    peer=current.market_id,
                    native_id=current.id,
                    version=content_version(updated),
                )
                envelopes.append(Envelope(payload=updated, source=source))
        return self.store.append_many(envelopes) if envelopes else []

    def _refresh(self, transactions: Sequence[Transaction]) -> list[StoredMessage]:
        stored: list[StoredMessage] = []
        for market_id in sorted({t.market_id for t in transactions}):
            intervals = {t.interval for t in transactions if t.market_id == market_id}
            stored.extend(self.runner.refresh_positions(market_id, intervals))
        return stored


def _tradable(tender: Tender, t: Transaction, *, resent: bool) -> None:
    """The acceptance's shape first (it is wrong whatever the tender's state), then the tender's state, which a
    trade already stored (``resent``: a resend, or a correction of it) does not need: it filled the tender."""
    if tender.party_id != t.counterparty_id or tender.side == t.side:
        raise TradeRefused(
            "unprocessable",
            f"accepting tender '{tender.id}' means trading the other side with its party '{tender.party_id}'",
        )
    if tender.market_id != t.market_id:
        raise TradeRefused(
            "unprocessable", f"tender '{tender.id}' is in market '{tender.market_id}', not '{t.market_id}'"
        )
    if resent:
        return
    if tender.status is TenderStatus.INDICATIVE:
        raise TradeRefused("conflict", f"'{tender.id}' is a quote, a price indication: ask its party for a tender")
    if tender.status not in (TenderStatus.OPEN, TenderStatus.PARTIALLY_FILLED):
        raise TradeRefused("conflict", f"tender '{tender.id}' is {tender.status.value}")
    if tender.expires_at is not None and tender.expires_at <= utc_now():
        raise TradeRefused("expired", f"tender '{tender.id}' expired at {tender.expires_at.isoformat()}")
