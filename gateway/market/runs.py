"""One market run: gather the interval's book, clear it (on the network when there is one), and store the
transactions, positions and clearing record of the run in one atomic append.

A call auction clears each market interval once. The clearing's id is derived from (market, interval), every
object it writes is keyed by that id, so running an interval again (a retry, a second gateway process, an operator
pressing the button twice) finds the stored result instead of trading twice, and a crash half-way leaves nothing
behind (the append is one database transaction).

On a network, the stored operating envelopes whose periods overlap the interval bound the connection points' net
injections as well as the ratings bound the edges (``gateway.market.grid``): a DSO's envelope is a constraint of
the clearing, not something the dispatch finds out about afterwards.

The objects written here skip the ingest reference checks on purpose: they are built from tenders, subscriptions
and a market whose references were checked on their way in, and a 100,000-tender run must not ask the database
about each party again.
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from gateway.gcpause import gc_paused
from gateway.market.auction import ClearingResult, clear
from gateway.market.books import Bid, IntervalBook, gather
from gateway.market.fills import by_tender, traded
from gateway.market.grid import market_network
from gateway.market.network_clearing import (
    Bids,
    Network,
    NetworkClearingResult,
    TransportTender,
    clear_network,
    overloaded,
)
from gateway.market.settlement import amount
from gateway.model import (
    Clearing,
    ClearingMethod,
    Envelope,
    Interval,
    IntervalError,
    Market,
    MessageKind,
    OperatingEnvelope,
    Position,
    Source,
    Subscription,
    Tender,
    Transaction,
    TransportProduct,
    clearing_id,
    convert_power,
    convert_price,
    utc_now,
)
from gateway.model.intervals import floor_to_boundary
from gateway.model.market import Side
from gateway.store import Store, StoredMessage

MARKET_PROTOCOL = "market"
"""The source protocol of everything the clearing service writes."""

_NAMESPACE = uuid.UUID("5b0c7f0e-7a0d-4c53-9a57-1f3f2f3c9e10")
_QUANTITY = Decimal("0.000001")  # the auction's tick (TICKS_PER_UNIT)
_PRICE_DIGITS = 9  # prices come out of float arithmetic (gap rule, LP duals): keep 9 decimals
_AON_ROUNDS = 20


class MarketError(ValueError):
    """A run that cannot be done as asked (misaligned interval, bad window)."""


class UnknownMarket(MarketError):
    """No market with that id."""


class GateOpen(MarketError):
    """The interval's gate has not closed yet."""


@dataclass
class RunResult:
    """What a run did. ``created`` is False when the interval had been cleared before and the stored result is
    returned; ``skipped`` counts tenders left out, by reason."""

    clearing: Clearing
    transactions: list[Transaction]
    positions: list[Position]
    created: bool
    stored: list[StoredMessage] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def to_decimal(value: float, digits: int = _PRICE_DIGITS) -> Decimal:
    """A float from the engine as a short exact decimal: 0.11000000000000001 -> 0.11, 10.0 -> 10."""
    rounded = round(float(value), digits)
    text = format(Decimal(repr(rounded)).normalize(), "f")
    return Decimal(text)


def _quantity(value: float) -> Decimal:
    """An award on the auction's tick grid, written without trailing zeros (505, not 505.000000)."""
    ticked = Decimal(repr(float(value))).quantize(_QUANTITY, rounding=ROUND_HALF_EVEN)
    return Decimal(format(ticked.normalize(), "f"))


def derived_id(*parts: str) -> str:
    """A stable id for an object a run derives (a retried run must produce the same ids)."""
    return str(uuid.uuid5(_NAMESPACE, "|".join(parts)))


class MarketRunner:
    """Clears market intervals against the store. Thread-safe: one run per market at a time in this process;
    across processes the derived keys make a concurrent second run a no-op."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()
        self._tenders: dict[str, dict[str, tuple[int, Tender]]] = {}  # market -> id -> (log seq, parsed tender)
        self._operating: dict[str, tuple[int, OperatingEnvelope]] = {}  # id -> (log seq, parsed envelope)
        self._operating_lock = threading.Lock()  # shared by every market's runs

    def _lock(self, market_id: str) -> threading.Lock:
        with self._guard:
            return self._locks[market_id]

    # -- what to run ------------------------------------------------------------------------------------

    def market(self, market_id: str) -> Market:
        market = self.store.get(MessageKind.MARKET, market_id)
        if market is None:
            raise UnknownMarket(f"unknown market '{market_id}'")
        return market  # type: ignore[return-value]

    def interval(self, market: Market, start: datetime) -> Interval:
        try:
            return Interval(start=start, duration=market.resolution, time_zone=market.time_zone)
        except (ValueError, IntervalError) as exc:
            raise MarketError(
                f"{start.isoformat()} does not start a {market.resolution.value} interval of market '{market.id}' "
                f"(time zone {market.time_zone})"
            ) from exc

    def next_interval(self, market: Market, now: datetime) -> Interval:
        """The first interval whose gate has not closed yet at ``now``."""
        start = floor_to_boundary(now + market.gate_closure, market.resolution, market.time_zone)
        interval = self.interval(market, start)
        while interval.start - market.gate_closure <= now:
            interval = self.interval(market, interval.end)
        return interval

    def due(self, market: Market, now: datetime, *, lookback: timedelta = timedelta(hours=24)) -> list[Interval]:
        """Intervals whose gate has closed by ``now``, that started less than ``lookback`` ago, and that have not
        been cleared: what the periodic call auction runs. The lookback bounds the catch-up after an outage."""
        cleared = {c.interval.start for c in self.clearings(market.id, since=now - lookback - market.gate_closure)}
        first = floor_to_boundary(now - lookback, market.resolution, market.time_zone)
        out: list[Interval] = []
        interval = self.interval(market, first)
        while interval.start - market.gate_closure <= now:
            if interval.start not in cleared and interval.start >= now - lookback:
                out.append(interval)
            interval = self.interval(market, interval.end)
        return out

    def clearings(
        self, market_id: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[Clearing]:
        """Stored clearings of a market with interval start in [since, until), in time order."""
        window = {"interval_start": (since.isoformat() if since else None, until.isoformat() if until else None)}
        found = self.store.list(MessageKind.CLEARING, filters={"market_id": market_id}, ranges=window, limit=None)
        return sorted(found, key=lambda c: c.interval.start)  # type: ignore[union-attr,return-value]

    # -- running ----------------------------------------------------------------------------------------

    def clear_interval(
        self, market_id: str, start: datetime, *, now: datetime | None = None, early: bool = False
    ) -> RunResult:
        """Clear one interval (or return its stored result). ``early`` allows a run before the gate closes."""
        now = now or utc_now()
        market = self.market(market_id)
        interval = self.interval(market, start)
        with self._lock(market.id):
            stored = self._stored_result(market, interval)
            if stored is not None:
                return stored
            gate = interval.start - market.gate_closure
            if now < gate and not early:
                raise GateOpen(
                    f"the gate of {interval.start.isoformat()} in market '{market.id}' closes at {gate.isoformat()}; "
                    "clearing earlier would shut out tenders that may still come (ask for an early run explicitly)"
                )
            with gc_paused():  # thousands of tenders parsed and messages written: see gateway/gcpause.py
                result = self._run(market, interval, min(now, gate) if early else gate, now)
                envelopes = self._envelopes(market, result)
                result.stored = self.store.append_many(envelopes)
            if result.stored and result.stored[-1].duplicate:  # another process stored this run first
                again = self._stored_result(market, interval)
                if again is not None:
                    return again
            return result

    def refresh_positions(self, market_id: str, intervals: Iterable[Interval]) -> list[StoredMessage]:
        """Derive and store every party's positions in these intervals again from the stored transactions.

        A position is the sum of its party's transactions, so a trade stored between clearings (a tender accepted
        bilaterally over EI) must show in both parties' positions at once, not only after the interval's clearing
        (which derives them the same way, this trade included). Under the market's lock, so a clearing of the same
        interval does not interleave; each refresh is a new version (a position may return to an earlier value).
        """
        market = self.market(market_id)
        with self._lock(market.id):
            positions = [p for interval in intervals for p in self._positions(market, interval, [])]
            version = f"refresh-{uuid.uuid4()}"
            envelopes = [
                Envelope(
                    payload=p, source=Source(protocol=MARKET_PROTOCOL, peer=market.id, native_id=p.id, version=version)
                )
                for p in positions
            ]
            return self.store.append_many(envelopes)

    def _accepted(self, market: Market, interval: Interval) -> dict[str, Decimal]:
        """Per tender, what counterparties accepted bilaterally of its row for ``interval`` (tender's unit): the
        auction offers only the rest (``gateway.market.fills``)."""
        window = {"interval_start": (interval.start.isoformat(), interval.end.isoformat())}
        found = self.store.list(MessageKind.TRANSACTION, filters={"market_id": market.id}, ranges=window, limit=None)
        bilateral = [t for t in found if isinstance(t, Transaction) and t.tender_id and t.clearing_id is None]
        if not bilateral:
            return {}
        tenders = {t.id: t for t in self.store.get_many(MessageKind.TENDER, sorted({t.tender_id for t in bilateral}))}
        out: dict[str, Decimal] = {}
        for tender_id, trades in by_tender(bilateral).items():
            tender = tenders.get(tender_id)
            if isinstance(tender, Tender):
                out[tender_id] = traded(tender, trades).get(interval.start, Decimal(0))
        return out

    def _market_tenders(self, market_id: str) -> list[Tender]:
        """The market's current tenders, parsing only those new or changed since the last run: a periodic auction
        clears one interval of strips that span many, and re-parsing every strip each time was a third of a run."""
        current = self.store.versions(MessageKind.TENDER, filters={"market_id": market_id})
        known = self._tenders.setdefault(market_id, {})
        for gone in known.keys() - current.keys():
            del known[gone]
        stale = [tid for tid, seq in current.items() if tid not in known or known[tid][0] != seq]
        for tender in self.store.get_many(MessageKind.TENDER, stale):
            known[tender.id] = (current[tender.id], tender)  # type: ignore[assignment]
        return [known[tid][1] for tid in sorted(known)]  # id order: the same book whatever was cached

    def _operating_envelopes(self) -> list[OperatingEnvelope]:
        """The stored operating envelopes (operator-set and computed), parsing only those new or changed since the
        last run; they bound the connection points of every network market (see ``gateway.market.grid``)."""
        with self._operating_lock:
            current = self.store.versions(MessageKind.OPERATING_ENVELOPE)
            known = self._operating
            for gone in known.keys() - current.keys():
                del known[gone]
            stale = [eid for eid, seq in current.items() if eid not in known or known[eid][0] != seq]
            for envelope in self.store.get_many(MessageKind.OPERATING_ENVELOPE, stale):
                known[envelope.id] = (current[envelope.id], envelope)  # type: ignore[assignment]
            return [known[eid][1] for eid in sorted(known)]

    def _stored_result(self, market: Market, interval: Interval) -> RunResult | None:
        clearing = self.store.get(MessageKind.CLEARING, _cid(market, interval))
        if clearing is None:
            return None
        transactions = self.store.list(MessageKind.TRANSACTION, filters={"clearing_id": clearing.id}, limit=None)
        positions = [
            p
            for p in self.store.list(
                MessageKind.POSITION,
                filters={"market_id": market.id, "interval_start": interval.start.isoformat()},
                limit=None,
            )
            if p.interval == interval  # type: ignore[union-attr]
        ]
        return RunResult(clearing, transactions, positions, created=False)  # type: ignore[arg-type]

    def _run(self, market: Market, interval: Interval, gate: datetime, now: datetime) -> RunResult:
        book = gather(
            market,
            interval,
            self._market_tenders(market.id),
            gate_closed_at=gate,
            accepted=self._accepted(market, interval),
        )
        auction = clear(book.auction_book(market))
        network = None
        if market.network_root_id is not None:
            locations = self.store.list(MessageKind.LOCATION, limit=None)
            network = market_network(market, locations, self._operating_envelopes(), interval)  # type: ignore[arg-type]
        awards, prices, flows, binding, method, excluded = self._network_outcome(market, network, book, auction)
        transactions = self._transactions(market, interval, book, awards, prices, auction)
        transactions += self._subscription_transactions(market, interval)
        transactions.sort(key=lambda t: t.id)  # the order a stored result reads back in
        positions = self._positions(market, interval, transactions)
        root_price = (
            prices.get(market.network_root_id or "", auction.clearing_price) if prices else auction.clearing_price
        )
        clearing = Clearing(
            market_id=market.id,
            interval=interval,
            method=method,
            type=auction.type,
            price=to_decimal(root_price),
            cleared_quantity=_quantity(_cleared(book, awards)),
            prices={loc: to_decimal(p) for loc, p in sorted(prices.items())},
            binding_location_ids=binding,
            flows={loc: to_decimal(f, 6) for loc, f in sorted(flows.items())},
            tender_count=len(book.energy) + len(book.transport),
            transaction_count=len(transactions),
            excluded_tender_ids=list(auction.excluded) if method is ClearingMethod.UNIFORM else sorted(excluded),
            supply_curve=[(to_decimal(q, 6), to_decimal(p)) for q, p in zip(*auction.supply_curve, strict=True)],
            demand_curve=[(to_decimal(q, 6), to_decimal(p)) for q, p in zip(*auction.demand_curve, strict=True)],
            gate_closed_at=gate,
            cleared_at=now,
            currency=market.currency,
            quantity_unit=market.quantity_unit,
            price_per=market.price_per,
        )
        return RunResult(clearing, transactions, positions, created=True, skipped=dict(book.skipped))

    def _network_outcome(
        self, market: Market, network: Network | None, book: IntervalBook, auction: ClearingResult
    ) -> tuple[dict[str, float], dict[str, float], dict[str, float], list[str], ClearingMethod, set[str]]:
        """Awards by tender id, prices and flows by location, binding locations, method, all-or-none tenders left
        out by the network rounds.

        The plain auction stands when the network carries its result (then it *is* the network optimum and knows
        the clearing types and all-or-none); otherwise the network LP clears, with all-or-none tenders that it
        fills in part left out one round at a time.
        """
        buys = [b for b in book.energy if b.is_buy]
        sells = [b for b in book.energy if not b.is_buy]
        awards = {b.tender.id: float(a) for b, a in zip(buys, auction.buy_awards, strict=True) if a > 0}
        awards.update({b.tender.id: float(a) for b, a in zip(sells, auction.sell_awards, strict=True) if a > 0})
        if network is None:
            return awards, {}, {}, [], ClearingMethod.UNIFORM, set()
        injection: dict[str, float] = defaultdict(float)
        for bid in book.energy:
            injection[bid.tender.location_id] += awards.get(bid.tender.id, 0.0) * (-1.0 if bid.is_buy else 1.0)
        if not overloaded(network, injection):
            uniform = dict.fromkeys(network.parent, auction.clearing_price)
            return awards, uniform, {}, [], ClearingMethod.UNIFORM, set()
        bids = [b for b in book.energy if b.tender.location_id in network.parent]
        transport = [
            TransportTender(
                b.tender.id, b.tender.product.from_location_id, b.tender.product.to_location_id, b.quantity, b.price
            )
            for b in book.transport
            if isinstance(b.tender.product, TransportProduct)
        ]
        excluded: set[str] = set()
        result = self._clear_network(market, network, bids, transport, excluded)
        for _ in range(_AON_ROUNDS):
            partial = [
                b
                for b in bids
                if b.tender.all_or_none
                and b.tender.id not in excluded
                and 1e-9 < result.awards.get(b.tender.id, 0.0) < b.quantity - 1e-6
            ]
            if not partial:
                break
            partial.sort(key=lambda b: (b.tender.created_at, b.tender.id))
            excluded.add(partial[-1].tender.id)  # the latest tender gives way first (price-then-time priority)
            result = self._clear_network(market, network, bids, transport, excluded)
        awards = {k: v for k, v in result.awards.items() if v > 1e-9}
        return awards, result.prices, result.flows, sorted(result.binding), ClearingMethod.NETWORK, excluded

    @staticmethod
    def _clear_network(
        market: Market, network: Network, bids: Sequence[Bid], transport: Sequence[TransportTender], excluded: set[str]
    ) -> NetworkClearingResult:
        kept = [b for b in bids if b.tender.id not in excluded]
        return clear_network(
            network,
            Bids(
                ids=[b.tender.id for b in kept],
                side=[b.tender.side.value for b in kept],
                location=[b.tender.location_id for b in kept],
                quantity_kw=[b.quantity for b in kept],
                price=[b.price for b in kept],
            ),
            transport,
            price_cap=float(market.price_cap),
            price_floor=float(market.price_floor),
        )

    def _transactions(
        self,
        market: Market,
        interval: Interval,
        book: IntervalBook,
        awards: dict[str, float],
        prices: dict[str, float],
        auction: ClearingResult,
    ) -> list[Transaction]:
        cid = _cid(market, interval)
        out: list[Transaction] = []
        for bid in (*book.energy, *book.transport):
            award = awards.get(bid.tender.id, 0.0)
            quantity = _quantity(award)
            if quantity <= 0:
                continue
            tender = bid.tender
            if isinstance(tender.product, TransportProduct):
                # The seller of transport earns the price difference it carries energy across (>= its offer).
                price = prices.get(tender.product.to_location_id, 0.0) - prices.get(
                    tender.product.from_location_id, 0.0
                )
            else:
                price = prices.get(tender.location_id, auction.clearing_price)
            out.append(
                Transaction(
                    id=derived_id(cid, tender.id),
                    market_id=market.id,
                    party_id=tender.party_id,
                    counterparty_id=market.operator_id,
                    side=tender.side,
                    tender_id=tender.id,
                    clearing_id=cid,
                    product=tender.product,
                    location_id=tender.location_id,
                    interval=interval,
                    quantity=quantity,
                    price=to_decimal(price),
                    executed_at=utc_now(),
                    currency=market.currency,
                    quantity_unit=market.quantity_unit,
                    price_per=market.price_per,
                )
            )
        return out

    def _subscription_transactions(self, market: Market, interval: Interval) -> list[Transaction]:
        cid = _cid(market, interval)
        subscriptions: Iterable[Subscription] = self.store.list(
            MessageKind.SUBSCRIPTION, filters={"market_id": market.id}, limit=None
        )  # type: ignore[assignment]
        out = []
        for sub in subscriptions:
            if not sub.covers(interval) or sub.quantity == 0:
                continue
            out.append(
                Transaction(
                    id=derived_id(cid, "subscription", sub.id),
                    market_id=market.id,
                    party_id=sub.party_id,
                    counterparty_id=sub.counterparty_id,
                    side=sub.side,
                    clearing_id=cid,
                    subscription_id=sub.id,
                    location_id=sub.location_id,
                    interval=interval,
                    quantity=convert_power(sub.quantity, sub.quantity_unit, market.quantity_unit),
                    price=convert_price(sub.price, sub.price_per, market.price_per),
                    executed_at=utc_now(),
                    currency=market.currency,
                    quantity_unit=market.quantity_unit,
                    price_per=market.price_per,
                )
            )
        return out

    def _positions(self, market: Market, interval: Interval, new: list[Transaction]) -> list[Position]:
        """Each party's net position per (location, product) in the interval: this run's trades plus any stored
        before it (bilateral trades reported into the market), the counterparty's side included."""
        stored = self.store.list(
            MessageKind.TRANSACTION,
            filters={"market_id": market.id, "interval_start": interval.start.isoformat()},
            limit=None,
        )
        ids = {t.id for t in new}
        trades = [t for t in stored if t.interval == interval and t.id not in ids] + new  # type: ignore[union-attr]
        quantity: defaultdict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        cost: defaultdict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        seconds = int(interval.length.total_seconds())
        for trade in trades:
            rate = convert_power(trade.quantity, trade.quantity_unit, market.quantity_unit)  # type: ignore[union-attr]
            price = convert_price(trade.price, trade.price_per, market.price_per)  # type: ignore[union-attr]
            signed = rate if trade.side is Side.BUY else -rate  # type: ignore[union-attr]
            for party, sign in ((trade.party_id, 1), (trade.counterparty_id, -1)):  # type: ignore[union-attr]
                key = (party, trade.location_id, trade.product.type)  # type: ignore[union-attr]
                quantity[key] += sign * signed
                cost[key] += amount(sign * signed, seconds, price, market)
        return [
            Position(
                party_id=party,
                market_id=market.id,
                location_id=location,
                product_type=product,  # type: ignore[arg-type]
                interval=interval,
                quantity=quantity[(party, location, product)],
                cost=cost[(party, location, product)],
                currency=market.currency,
                quantity_unit=market.quantity_unit,
                price_per=market.price_per,
            )
            for party, location, product in sorted(quantity)
        ]

    def _envelopes(self, market: Market, result: RunResult) -> list[Envelope]:
        version = result.clearing.id
        objects = [*result.transactions, *result.positions, result.clearing]  # the clearing last: it marks "done"
        return [
            Envelope(
                payload=obj,
                source=Source(protocol=MARKET_PROTOCOL, peer=market.id, native_id=obj.id, version=version),
                correlation_id=result.clearing.id[:200],
            )
            for obj in objects
        ]


def _cid(market: Market, interval: Interval) -> str:
    return clearing_id(market.id, interval)


def _cleared(book: IntervalBook, awards: dict[str, float]) -> float:
    return sum(awards.get(b.tender.id, 0.0) for b in book.energy if b.is_buy)
