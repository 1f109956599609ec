"""Ex-post settlement of a market: forward trades at their own price, deviations from them at spot.

Why it works this way (the TeMIX rule): a forward transaction is a firm commitment to deliver or take a
rate over an interval, and it is paid at the price agreed when it was made. What the customer actually does
is never constrained by it: the customer always decides, and whatever its meter shows beyond (or short of)
its forward position is bought (or sold) after the fact at the spot price of that interval. A retail
transactive tariff is exactly this: a subscription (a standing forward block at a fixed price) plus the
deviations at spot. So a customer who follows its position pays only the forward cost, one who uses more
pays spot for the extra, and one who exports more than it sold is paid spot for the surplus.

This module is pure: it takes a market, its clearings, the transactions and the metered deliveries, and
returns the bill lines; it reads and writes nothing. Re-settling the same data gives the same lines with the
same ids (ids are uuid5 of what a line is about, ``settled_at`` is left unset), so a store can upsert them.

Units and money: quantities are rates (``market.quantity_unit``) over an interval; energy is rate x hours;
money is energy x price (per ``market.price_per``). Amounts are computed exactly (as fractions) and rounded
once, half to even, to 0.000001 of the currency: a 5-minute interval is 1/12 h, which no decimal holds.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from itertools import pairwise

from gateway.model.intervals import Interval, Resolution, floor_to_boundary, is_aligned
from gateway.model.market import Delivery, SettlementKind, SettlementLine, Transaction
from gateway.model.markets import Clearing, Market
from gateway.model.units import convert_power, convert_price

SETTLEMENT_NAMESPACE = uuid.UUID("6f1d3c1e-5b7a-4f0e-9c2d-8a4b3e7f1d20")
"""Fixed namespace of the uuid5 line ids: changing it would rename every line ever settled."""

_EXACT = Context(prec=100)
MONEY = Decimal("0.000001")
"""The quantum amounts are rounded to (half to even)."""

_ENERGY = "energy"

Key = tuple[str, str, datetime]
"""(party, location, start of a market interval)"""


@dataclass(frozen=True)
class SettlementReport:
    """The outcome of :func:`settle`.

    ``lines`` are the bill lines in (party, location, interval start, kind, id) order; ``totals`` the sum of
    each party's line amounts (positive = the party pays). ``missing_deliveries`` lists the market intervals
    where a party holds a position at a location but metering does not cover the whole interval: the metered
    part (if any) is settled, the rest is not. ``unpriced`` lists market intervals with metered deliveries but
    no clearing, so no spot price: nothing of them is settled.
    """

    lines: list[SettlementLine]
    totals: dict[str, Decimal]
    missing_deliveries: list[tuple[str, str, Interval]]
    unpriced: list[tuple[str, str, Interval]]
    unquantified: list[tuple[str, str]] = field(default_factory=list)
    """(override id, reason): overrides that count in this market but whose quantity nobody can say."""


def settle(
    market: Market,
    clearings: Sequence[Clearing],
    transactions: Sequence[Transaction],
    deliveries: Sequence[Delivery],
) -> SettlementReport:
    """Settle ``market``: one line per forward transaction, one deviation line per metered (sub)interval.

    * Transactions count when they are in this market and trade energy (others are ignored). Each gives a
      SUBSCRIPTION line (when it came from a subscription) or a TRANSACTION line at its own price, to its party
      and, mirrored, to its counterparty unless that is the market's operator (see :func:`_sides`).
    * Per (party, location, market interval) the position is the net signed rate of those transactions.
    * Deliveries are grouped per (party, location). Where a site meter (``resource_id`` None) reported for a
      market interval only site-meter readings count there; otherwise the resource meters are summed.
      Reactive deliveries (var units) are ignored: the market settles real energy.
    * A delivery finer than the market resolution is compared with the position of the market interval
      holding it. A delivery coarser than it is split into the market intervals it spans, its average rate
      taken as constant within it (a meter that reports a day says nothing about the hours inside it).
    * Each metered (sub)interval gives one DEVIATION line, delivered rate - position rate, at the spot price
      ``clearing.price_at(location)`` of its market interval, including a zero line when the meter matched
      the position exactly (so an auditor sees it was settled). A market interval is cut at the finest
      resolution of the deliveries and transactions in it, so each line's rates are constant over it.

    Raises ``ValueError`` for a counting transaction or a clearing in another currency than the market's,
    for two clearings of one interval that disagree, for duplicate transaction or delivery ids, for two
    readings of one meter that overlap (they would be counted twice), and for an interval that does not lie
    on the market's interval grid.
    """
    prices = _spot_prices(market, clearings)
    counting = [t for t in transactions if t.market_id == market.id and t.product.type == _ENERGY]
    _check_transactions(market, counting)

    lines: list[SettlementLine] = [
        _transaction_line(market, t, party, rate) for t in counting for party, rate in _sides(market, t)
    ]

    # Transactions by the market intervals they touch: the position is built from them piece by piece.
    trades: defaultdict[Key, list[tuple[Interval, Decimal]]] = defaultdict(list)
    takers: set[Key] = set()  # keys where some trade's own party is: a meter is expected there
    market_intervals: dict[datetime, Interval] = {}
    for t in counting:
        sides = _sides(market, t)
        for slot in _market_slots(t.interval, market, f"transaction '{t.id}'"):
            market_intervals[slot.start] = slot
            takers.add((t.party_id, t.location_id, slot.start))
            for party, rate in sides:
                trades[(party, t.location_id, slot.start)].append((t.interval, rate))

    # Deliveries by market interval, site meters apart from resource meters.
    site: defaultdict[Key, list[tuple[Delivery, Decimal]]] = defaultdict(list)
    resources: defaultdict[Key, list[tuple[Delivery, Decimal]]] = defaultdict(list)
    for d in _real_deliveries(deliveries):
        rate = convert_power(d.quantity, d.quantity_unit, market.quantity_unit)
        target = site if d.resource_id is None else resources
        for slot in _market_slots(d.interval, market, f"delivery '{d.id}'"):
            market_intervals[slot.start] = slot
            target[(d.party_id, d.location_id, slot.start)].append((d, rate))

    missing: list[tuple[str, str, Interval]] = []
    unpriced: list[tuple[str, str, Interval]] = []
    for key in sorted(set(trades) | set(site) | set(resources)):
        party, location, start = key
        slot = market_intervals[start]
        metered = site.get(key) or resources.get(key) or []
        if not metered:
            # A counterparty only (a retailer selling a customer's subscription) need not meter the customer's
            # site: its forward lines stand, no deviation is due from it there, and nothing is missing.
            if key in takers:
                missing.append((party, location, slot))
            continue
        clearing = prices.get(start)
        if clearing is None:
            unpriced.append((party, location, slot))
            continue
        price = convert_price(clearing.price_at(location), clearing.price_per, market.price_per)
        position = trades.get(key, [])
        pieces = _pieces(slot, [d.interval for d, _ in metered] + [i for i, _ in position])
        covered_all = True
        for piece in pieces:
            used = [(d, rate) for d, rate in metered if _covers(d.interval, piece)]
            if not used:
                covered_all = False
                continue
            delivered = _exact_sum(rate for _, rate in used)
            forward = _exact_sum(rate for interval, rate in position if _covers(interval, piece))
            deviation = _exact_sum((delivered, -forward))
            lines.append(
                _line(
                    market,
                    SettlementKind.DEVIATION,
                    party,
                    location,
                    piece,
                    deviation,
                    price,
                    sorted(d.id for d, _ in used),
                )
            )
        if not covered_all and key in trades:
            missing.append((party, location, slot))

    return SettlementReport(lines=order(lines), totals=totals_of(lines), missing_deliveries=missing, unpriced=unpriced)


def order(lines: Iterable[SettlementLine]) -> list[SettlementLine]:
    """Bill order: party, location, interval start, kind, id."""
    return sorted(lines, key=lambda x: (x.party_id, x.location_id, x.interval.start, x.kind.value, x.id))


def totals_of(lines: Iterable[SettlementLine]) -> dict[str, Decimal]:
    """Each party's exact sum of line amounts (positive = the party pays)."""
    amounts: defaultdict[str, list[Decimal]] = defaultdict(list)
    for line in lines:
        amounts[line.party_id].append(line.amount)
    return {party: _exact_sum(values) for party, values in amounts.items()}


def amount(rate: Decimal, seconds: int, price: Decimal, market: Market) -> Decimal:
    """Money for ``rate`` (in the market's quantity unit) held ``seconds`` at ``price`` (per its price unit).

    Exact, then rounded once, half to even, to :data:`MONEY`; the ratio of the units (kW priced per MWh, say) is
    part of the exact product. Decimal rather than Fraction (a tenth of the cost, and this runs per trade): the
    product of the inputs is exact at 100 digits, and dividing it by 3600 at 100 significant digits cannot land
    on a rounding tie that the exact quotient is not on (a quotient with k decimals of input is at least
    1/(3600 * 10^k) from any tie it does not sit on), so the one rounding to MONEY is the exact value's.
    """
    with localcontext(_EXACT):
        exact = rate * seconds * price * _unit_ratio(market) / 3600
        return exact.quantize(MONEY, rounding=ROUND_HALF_EVEN)


def _unit_ratio(market: Market) -> Decimal:
    return market.quantity_unit.watts_per_unit / market.price_per.wh_per_unit  # powers of ten: exact


def _exact_sum(values: Iterable[Decimal]) -> Decimal:
    """The sum of ``values`` with no digit dropped (the default context keeps only 28 significant digits)."""
    values = list(values)
    if not values:
        return Decimal(0)
    span = max(v.adjusted() for v in values) - min(int(v.as_tuple().exponent) for v in values)
    with localcontext(prec=max(28, span + len(values).bit_length() + 2)):
        return sum(values, Decimal(0))


def line_id(market: Market, kind: SettlementKind, party: str, location: str, interval: Interval, ref: str) -> str:
    """The deterministic id of a line: what it is about, under :data:`SETTLEMENT_NAMESPACE`."""
    key = f"{market.id}|{kind.value}|{party}|{location}|{interval.start.isoformat()}|{interval.duration.value}|{ref}"
    return str(uuid.uuid5(SETTLEMENT_NAMESPACE, key))


# ------------------------------------------------------------------------------------------------------------


def _spot_prices(market: Market, clearings: Iterable[Clearing]) -> dict[datetime, Clearing]:
    """This market's clearings by interval start (other markets' are ignored)."""
    out: dict[datetime, Clearing] = {}
    for clearing in clearings:
        if clearing.market_id != market.id:
            continue
        if clearing.currency != market.currency:
            raise ValueError(
                f"clearing '{clearing.id}' is in {clearing.currency} but market '{market.id}' settles in"
                f" {market.currency}; currencies are never mixed"
            )
        start = clearing.interval.start
        known = out.get(start)
        if known is not None and (
            convert_price(known.price, known.price_per, market.price_per),
            {k: convert_price(v, known.price_per, market.price_per) for k, v in known.prices.items()},
        ) != (
            convert_price(clearing.price, clearing.price_per, market.price_per),
            {k: convert_price(v, clearing.price_per, market.price_per) for k, v in clearing.prices.items()},
        ):
            raise ValueError(f"two clearings of market '{market.id}' for {start.isoformat()} disagree on the price")
        out[start] = clearing
    return out


def _check_transactions(market: Market, counting: Sequence[Transaction]) -> None:
    seen: set[str] = set()
    for t in counting:
        if t.currency != market.currency:
            raise ValueError(
                f"transaction '{t.id}' is in {t.currency} but market '{market.id}' settles in {market.currency};"
                " currencies are never mixed"
            )
        if t.id in seen:
            raise ValueError(f"transaction '{t.id}' is given twice; it would be settled twice")
        seen.add(t.id)


def _real_deliveries(deliveries: Iterable[Delivery]) -> list[Delivery]:
    """Real-power deliveries, after checking that no reading is counted twice."""
    out = [d for d in deliveries if not d.quantity_unit.is_reactive]
    ids: set[str] = set()
    by_meter: defaultdict[tuple[str, str, str | None], list[Delivery]] = defaultdict(list)
    for d in out:
        if d.id in ids:
            raise ValueError(f"delivery '{d.id}' is given twice; it would be settled twice")
        ids.add(d.id)
        by_meter[(d.party_id, d.location_id, d.resource_id)].append(d)
    for (party, location, resource), readings in by_meter.items():
        readings.sort(key=lambda d: (d.interval.start, d.interval.end))
        for before, after in pairwise(readings):
            if after.interval.start < before.interval.end:
                meter = "the site meter" if resource is None else f"resource '{resource}'"
                raise ValueError(
                    f"deliveries '{before.id}' and '{after.id}' of {meter} of party '{party}' at '{location}'"
                    " overlap in time; a meter's readings must not be counted twice"
                )
    return out


def _market_slots(interval: Interval, market: Market, what: str) -> list[Interval]:
    """The market intervals ``interval`` lies in: itself, the one holding it, or the ones it spans."""
    resolution = market.resolution
    zone = market.time_zone
    if interval.duration is resolution:
        starts = [interval.start]
    elif interval.duration.rank < resolution.rank:
        starts = [floor_to_boundary(interval.start, resolution, zone)]
    else:
        starts = [piece.start for piece in interval.split(resolution)]
    slots = [Interval.model_construct(start=s, duration=resolution, time_zone=zone) for s in starts]
    finer = interval.duration.rank < resolution.rank
    on_grid = (
        all(is_aligned(s.start, resolution, zone) for s in slots)
        and all(a.end == b.start for a, b in pairwise(slots))
        and slots[0].start <= interval.start
        and interval.end <= slots[-1].end
        and (finer or (slots[0].start == interval.start and slots[-1].end == interval.end))
    )
    if not on_grid:
        raise ValueError(
            f"{what}: interval {interval.start.isoformat()}/{interval.duration.value} does not lie on the"
            f" {resolution.value} grid of market '{market.id}' (time zone {zone})"
        )
    return slots


def _pieces(slot: Interval, intervals: Sequence[Interval]) -> list[Interval]:
    """``slot`` cut at the finest resolution among ``intervals`` (none finer than the slot itself).

    Every delivery and transaction is then constant over each piece, so nothing is averaged or divided.
    """
    finer = [i.duration for i in intervals if i.duration.rank < slot.duration.rank]
    if not finer:
        return [slot]
    finest: Resolution = min(finer, key=lambda r: r.rank)
    return slot.split(finest)


def _covers(outer: Interval, inner: Interval) -> bool:
    """Whether ``outer`` holds all of ``inner``; a partial overlap means the grids do not nest."""
    if outer.start <= inner.start and inner.end <= outer.end:
        return True
    if outer.start < inner.end and inner.start < outer.end:
        raise ValueError(
            f"interval {outer.start.isoformat()}/{outer.duration.value} overlaps"
            f" {inner.start.isoformat()}/{inner.duration.value} in part: the intervals do not nest"
        )
    return False


def _sides(market: Market, t: Transaction) -> list[tuple[str, Decimal]]:
    """Who a trade binds, with the rate each side holds (+ = bought): the party, and its counterparty unless that is
    the market's operator (a pool's side of every cleared trade is the pool's, not a bill). A retailer selling a
    subscription, or the seller of a bilaterally accepted tender, is billed (paid) like any party."""
    rate = convert_power(t.signed_quantity, t.quantity_unit, market.quantity_unit)
    if t.counterparty_id == market.operator_id:
        return [(t.party_id, rate)]
    return [(t.party_id, rate), (t.counterparty_id, -rate)]


def _transaction_line(market: Market, t: Transaction, party: str, rate: Decimal) -> SettlementLine:
    kind = SettlementKind.TRANSACTION if t.subscription_id is None else SettlementKind.SUBSCRIPTION
    price = convert_price(t.price, t.price_per, market.price_per)
    return _line(market, kind, party, t.location_id, t.interval, rate, price, [t.id], ref=t.id)


def _line(
    market: Market,
    kind: SettlementKind,
    party: str,
    location: str,
    interval: Interval,
    rate: Decimal,
    price: Decimal,
    references: list[str],
    ref: str = "",
) -> SettlementLine:
    return SettlementLine(
        id=line_id(market, kind, party, location, interval, ref),
        party_id=party,
        market_id=market.id,
        location_id=location,
        interval=interval,
        kind=kind,
        quantity=rate,
        price=price,
        amount=amount(rate, int(interval.length.total_seconds()), price, market),
        reference_ids=references,
        currency=market.currency,
        quantity_unit=market.quantity_unit,
        price_per=market.price_per,
    )
