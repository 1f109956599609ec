"""Uniform-price double auction for one interval, with the clearing types GridLAB-D and TESP users know.

What we follow, and where we differ on purpose
----------------------------------------------
The walk and the clearing types are those of GridLAB-D's ``market/auction.cpp`` (``auction::clear_market``,
gridlab-d/gridlab-d) and its Python port in TESP (``pnnl/tesp``, ``tesp_support/simple_auction.py``,
``AUCTION.clear_market``): buys sorted by price descending, sells ascending, walk while the buy price >= the sell
price, and

* ``MARGINAL_BUYER``: the last step ends inside a buy level (supply ran out or got too dear first); the price is
  that buyer's price (``a = b = buy->price``).
* ``MARGINAL_SELLER``: the last step ends inside a sell level; price = that seller's price.
* ``EXACT``: both sides end a price level at the same quantity and the marginal buy and sell bid the same price
  (``check && a == b``); price = that price.
* ``MARGINAL_PRICE``: both sides end a level at the same quantity but the marginal prices differ
  (``check && a != b``); the price is put in the gap, ``sell + k * (buy - sell)`` (GridLAB-D hard-codes
  ``avg = (a + b) / 2`` here and uses its ``clearing_scalar`` k only for NULL; we use k for both), and then
  moved so that it does not trigger another bid: GridLAB-D moves it just past the next unmatched bid
  (``dHigh + bid_offset`` / ``dLow - bid_offset``); we clamp it to
  ``[max(sell, next buy), min(buy, next sell)]``, the interval of prices at which the cleared quantity is the
  market's. A cap-priced (unresponsive) marginal buy has no willingness to pay, so, as GridLAB-D does, the price
  is the low end of that interval (and symmetrically the high end for a floor-priced sell).
  NB: EXACT means "exact price and quantity" in GridLAB-D (its curve log prints ``exact_p_and_q``); the gap case
  is MARGINAL_PRICE there, and we keep GridLAB-D's names.
* ``FAILURE``: cleared quantity < the unresponsive (cap-priced) demand: price = cap, all supply sold, the
  unresponsive demand rationed. Symmetrically unresponsive (floor-priced) supply above all demand: price = floor.
* ``NULL``: nothing cleared. Price (GridLAB-D's convention with ``bid_offset`` = 0): only sells -> the lowest
  sell price; only buys -> the highest buy price; neither -> 0; both but no cross -> ``sell0 + k (buy0 - sell0)``
  of the best bids (or the best buy when the best sell is at the cap, the best sell when the best buy is at the
  floor).

Deliberate differences from GridLAB-D (each one keeps the price an equilibrium price of the book):
exhausted buyers with more sellers at the marginal seller's price give MARGINAL_SELLER at the *seller's* price
(GridLAB-D leaves the buyer's); "only unresponsive bids cleared" is priced by the gap rule rather than forced to
0; and marginal quantities are shared pro rata among all bids at the marginal price (GridLAB-D reports a
``marginal_frac`` and leaves the sharing to the bidders).

Rationing and order
-------------------
Bids strictly better than the marginal price level are filled, worse ones get nothing, and the bids AT the
marginal level of the marginal side share the remainder pro rata. Price, quantity, type, awards and the (price
level aggregated) curves therefore depend only on the price levels, never on the order of bids within a level,
so the engine sorts by price alone (numpy's fast unstable argsort; a (price, time) lexsort measured ~10x
slower and changes no output). Time and id order matter only where a choice is made between bids of one level:
which all-or-none bid is dropped first, and which bid is reported as ``marginal``; both use (time, id).

Numbers
-------
Quantities are integer ticks of ``1 / TICKS_PER_UNIT`` of the book's unit (the Book rounds them on the way in), so
cumulative sums are exact and independent of order, and "both sides meet exactly" is an exact test. Prices stay
float64: they are only compared, and interpolated once for MARGINAL_PRICE / NULL. The canonical edge converts
price and quantity to Decimal.

Cost: two argsorts of n/2 prices, a few O(n) numpy passes, and O(log n) scalar probes to find the crossing (the
walk is monotone, so it is a binary search over the cumulative quantities); no Python loop over bids.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import numpy as np

from gateway.model.markets import ClearingType

TICKS_PER_UNIT = 1_000_000
"""Quantity resolution: 1e-6 of the book's unit (1 mW in a kW book)."""

DEFAULT_PRICE_CAP = 9999.0
"""GridLAB-D's default ``price_cap`` (auction::init); a buy at the cap is price-taking."""

_MAX_TOTAL_TICKS = 2**62
"""Cumulative ticks must fit in int64 with room to spare."""

_ONE_AT_A_TIME_ROUNDS = 16
"""All-or-none: rounds that drop a single bid before the engine drops every partly filled one per round."""


class Curve(NamedTuple):
    """A step curve aggregated by price level: ``quantity[i]`` is the cumulative quantity at the end of level i."""

    quantity: np.ndarray
    price: np.ndarray


# --------------------------------------------------------------------------------------------------------------
# Book


def _as_array(values: Any, dtype: type, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=dtype)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional")
    return array


@dataclass(frozen=True, eq=False)
class Book:
    """All bids of one interval, one array per field and side (the engine's native, columnar form).

    Quantities are rounded to ``1 / TICKS_PER_UNIT`` here, so the engine's exact integer arithmetic and the
    awards it reports agree with what the book holds. A buy at ``price_cap`` is unresponsive (price-taking), as
    is a sell at ``price_floor``.
    """

    buy_ids: list[str]
    buy_quantity: np.ndarray
    buy_price: np.ndarray
    buy_time: np.ndarray
    buy_all_or_none: np.ndarray
    sell_ids: list[str]
    sell_quantity: np.ndarray
    sell_price: np.ndarray
    sell_time: np.ndarray
    sell_all_or_none: np.ndarray
    price_cap: float = DEFAULT_PRICE_CAP
    price_floor: float = -DEFAULT_PRICE_CAP
    k: float = 0.5

    def __post_init__(self) -> None:
        for side in ("buy", "sell"):
            self._coerce_side(side)
        self._check_limits()
        for side in ("buy", "sell"):
            self._check_side(side)
        self._check_ids()

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _coerce_side(self, side: str) -> None:
        ids = [str(i) for i in getattr(self, f"{side}_ids")]
        self._set(f"{side}_ids", ids)
        quantity = _as_array(getattr(self, f"{side}_quantity"), np.float64, f"{side}_quantity")
        self._set(f"{side}_quantity", np.round(quantity * TICKS_PER_UNIT) / TICKS_PER_UNIT)
        self._set(f"{side}_price", _as_array(getattr(self, f"{side}_price"), np.float64, f"{side}_price"))
        self._set(f"{side}_time", _as_array(getattr(self, f"{side}_time"), np.int64, f"{side}_time"))
        self._set(f"{side}_all_or_none", _as_array(getattr(self, f"{side}_all_or_none"), bool, f"{side}_all_or_none"))
        for name in ("quantity", "price", "time", "all_or_none"):
            if len(getattr(self, f"{side}_{name}")) != len(ids):
                raise ValueError(
                    f"{side}_{name} has {len(getattr(self, f'{side}_{name}'))} entries, ids have {len(ids)}"
                )

    def _check_limits(self) -> None:
        cap, floor, k = float(self.price_cap), float(self.price_floor), float(self.k)
        if not (math.isfinite(cap) and math.isfinite(floor)) or floor >= cap:
            raise ValueError(f"price_floor ({floor}) must be finite and below price_cap ({cap})")
        if not 0.0 <= k <= 1.0:
            raise ValueError(f"k must be in [0, 1], got {k}")
        self._set("price_cap", cap)
        self._set("price_floor", floor)
        self._set("k", k)

    def _check_side(self, side: str) -> None:
        quantity, price = getattr(self, f"{side}_quantity"), getattr(self, f"{side}_price")
        ids = getattr(self, f"{side}_ids")
        bad = np.flatnonzero(~np.isfinite(quantity) | (quantity < 0))
        if bad.size:
            raise ValueError(f"{side} {ids[bad[0]]!r}: quantity must be finite and >= 0, got {quantity[bad[0]]}")
        bad = np.flatnonzero(~((price >= self.price_floor) & (price <= self.price_cap)))
        if bad.size:
            raise ValueError(
                f"{side} {ids[bad[0]]!r}: price {price[bad[0]]} is outside [price_floor {self.price_floor}, "
                f"price_cap {self.price_cap}]"
            )
        if quantity.sum() * TICKS_PER_UNIT >= _MAX_TOTAL_TICKS:
            raise ValueError(f"total {side} quantity is too large for exact tick arithmetic")

    def _check_ids(self) -> None:
        seen: set[str] = set()
        for bid_id in (*self.buy_ids, *self.sell_ids):
            if bid_id in seen:
                raise ValueError(f"duplicate bid id {bid_id!r} (ids must be unique across buys and sells)")
            seen.add(bid_id)

    @classmethod
    def from_arrays(
        cls,
        buy_ids: Sequence[str],
        buy_quantity: Any,
        buy_price: Any,
        sell_ids: Sequence[str],
        sell_quantity: Any,
        sell_price: Any,
        *,
        buy_time: Any = None,
        buy_all_or_none: Any = None,
        sell_time: Any = None,
        sell_all_or_none: Any = None,
        price_cap: float = DEFAULT_PRICE_CAP,
        price_floor: float = -DEFAULT_PRICE_CAP,
        k: float = 0.5,
    ) -> Book:
        """Build a book from columns; time defaults to the position in the side, all-or-none to False."""
        nb, ns = len(buy_ids), len(sell_ids)
        return cls(
            buy_ids=list(buy_ids),
            buy_quantity=buy_quantity,
            buy_price=buy_price,
            buy_time=np.arange(nb) if buy_time is None else buy_time,
            buy_all_or_none=np.zeros(nb, bool) if buy_all_or_none is None else buy_all_or_none,
            sell_ids=list(sell_ids),
            sell_quantity=sell_quantity,
            sell_price=sell_price,
            sell_time=np.arange(ns) if sell_time is None else sell_time,
            sell_all_or_none=np.zeros(ns, bool) if sell_all_or_none is None else sell_all_or_none,
            price_cap=price_cap,
            price_floor=price_floor,
            k=k,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Book:
        """Read the plain book of DESIGN.md ("Command-line contracts", ``tgw clear``).

        ``{"buys": [{"id", "quantity", "price", "all_or_none"?, "time"?}], "sells": [...], "price_cap"?,
        "price_floor"?, "k"?}``. A missing ``time`` is the bid's position in its list. Unknown keys are refused
        so that a misspelt ``all_or_none`` cannot be silently ignored.
        """
        if not isinstance(data, Mapping):
            raise ValueError("a book must be a JSON object")
        unknown = set(data) - {"buys", "sells", "price_cap", "price_floor", "k"}
        if unknown:
            raise ValueError(f"unknown book field(s): {', '.join(sorted(unknown))}")
        cap = _number(data.get("price_cap", DEFAULT_PRICE_CAP), "price_cap")
        floor = _number(data.get("price_floor", -DEFAULT_PRICE_CAP), "price_floor")
        k = _number(data.get("k", 0.5), "k")
        buys = _read_side(data.get("buys", []), "buys")
        sells = _read_side(data.get("sells", []), "sells")
        return cls(
            buy_ids=buys[0],
            buy_quantity=buys[1],
            buy_price=buys[2],
            buy_time=buys[3],
            buy_all_or_none=buys[4],
            sell_ids=sells[0],
            sell_quantity=sells[1],
            sell_price=sells[2],
            sell_time=sells[3],
            sell_all_or_none=sells[4],
            price_cap=cap,
            price_floor=floor,
            k=k,
        )


_BID_FIELDS = frozenset({"id", "quantity", "price", "all_or_none", "time"})


def _number(value: Any, where: str) -> float:
    """A finite number from JSON (int, float, Decimal or a numeric string; never a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    try:
        number = float(Decimal(value) if isinstance(value, str) else value)
    except (InvalidOperation, ValueError, OverflowError):
        raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    return number


def _read_side(bids: Any, side: str) -> tuple[list[str], list[float], list[float], list[int], list[bool]]:
    if not isinstance(bids, list):
        raise ValueError(f"{side} must be a list of bids")
    ids: list[str] = []
    quantity: list[float] = []
    price: list[float] = []
    time: list[int] = []
    aon: list[bool] = []
    for n, bid in enumerate(bids):
        where = f"{side}[{n}]"
        if not isinstance(bid, Mapping):
            raise ValueError(f"{where}: a bid must be an object")
        missing = [name for name in ("id", "quantity", "price") if name not in bid]
        if missing:
            raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
        unknown = set(bid) - _BID_FIELDS
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        if not isinstance(bid["id"], str) or not bid["id"]:
            raise ValueError(f"{where}: id must be a non-empty string")
        flag = bid.get("all_or_none", False)
        if not isinstance(flag, bool):
            raise ValueError(f"{where}: all_or_none must be true or false")
        order = bid.get("time", n)
        if isinstance(order, bool) or not isinstance(order, int):
            raise ValueError(f"{where}: time must be an integer (submission order)")
        ids.append(bid["id"])
        quantity.append(_number(bid["quantity"], f"{where}.quantity"))
        price.append(_number(bid["price"], f"{where}.price"))
        time.append(order)
        aon.append(flag)
    return ids, quantity, price, time, aon


# --------------------------------------------------------------------------------------------------------------
# Result


@dataclass(frozen=True, eq=False)
class ClearingResult:
    """The outcome of one interval; awards are aligned with the book's arrays (0 where nothing was awarded).

    ``marginal`` is the id of the first (by time, then id) bid at the rationed price level for MARGINAL_BUYER,
    MARGINAL_SELLER and FAILURE, else None. ``excluded`` lists all-or-none bids dropped because they would have
    been filled in part. Curves are aggregated by price level, demand in descending price order.
    """

    clearing_price: float
    cleared_quantity: float
    type: ClearingType
    buy_awards: np.ndarray
    sell_awards: np.ndarray
    marginal: str | None
    supply_curve: Curve
    demand_curve: Curve
    excluded: tuple[str, ...] = field(default=())

    def awards(self, book: Book) -> dict[str, float]:
        """Awarded quantity by bid id, non-zero awards only (buys first, then sells, in book order)."""
        out: dict[str, float] = {}
        for ids, awards in ((book.buy_ids, self.buy_awards), (book.sell_ids, self.sell_awards)):
            for n in np.flatnonzero(awards):
                out[ids[n]] = float(awards[n])
        return out


# --------------------------------------------------------------------------------------------------------------
# Engine


@dataclass(frozen=True)
class _Side:
    """One side sorted best price first. ``key`` is ascending in badness: -price for buys, price for sells."""

    key: np.ndarray  # per bid, book order
    ticks: np.ndarray  # per bid, book order
    order: np.ndarray  # sorted position -> bid
    sorted_key: np.ndarray
    cum: np.ndarray  # cumulative ticks in sorted order

    @property
    def total(self) -> int:
        return int(self.cum[-1]) if self.cum.size else 0

    def first_positive(self) -> int:
        """Sorted position of the best bid with a non-zero quantity (zero-quantity bids are inert)."""
        return int(np.searchsorted(self.cum, 0, side="right"))

    def step_after(self, q: int) -> int:
        """Sorted position of the step the walk is on just after cumulative quantity q (== n when exhausted)."""
        return int(np.searchsorted(self.cum, q, side="right"))

    def level_bounds(self, key: float) -> tuple[int, int]:
        """Sorted positions [lo, hi) of the price level with this key."""
        return (
            int(np.searchsorted(self.sorted_key, key, side="left")),
            int(np.searchsorted(self.sorted_key, key, side="right")),
        )

    def ticks_before(self, lo: int) -> int:
        return int(self.cum[lo - 1]) if lo > 0 else 0

    def curve(self, sign: float) -> Curve:
        if not self.cum.size:
            return Curve(np.zeros(0), np.zeros(0))
        ends = np.append(np.flatnonzero(self.sorted_key[1:] != self.sorted_key[:-1]), self.cum.size - 1)
        return Curve(self.cum[ends] / TICKS_PER_UNIT, sign * self.sorted_key[ends])


def _side(price: np.ndarray, quantity: np.ndarray, sign: float) -> _Side:
    key = price if sign > 0 else -price
    ticks = np.rint(quantity * TICKS_PER_UNIT).astype(np.int64)
    order = np.argsort(key)
    return _Side(key=key, ticks=ticks, order=order, sorted_key=key[order], cum=np.cumsum(ticks[order]))


@dataclass(frozen=True)
class _Margin:
    """Where the cleared quantity Q falls on one side: the price level holding the last matched quantity."""

    key: float  # of that level
    lo: int
    hi: int
    share: float  # fraction of the level awarded, in (0, 1]
    rationed: bool  # the level continues past Q
    next_price: float | None  # price of the next level with quantity, None when exhausted


def _margin(side: _Side, q: int, sign: float) -> _Margin:
    last = int(np.searchsorted(side.cum, q, side="left"))  # first step whose end reaches Q
    key = float(side.sorted_key[last])
    lo, hi = side.level_bounds(key)
    before = side.ticks_before(lo)
    level = int(side.cum[hi - 1]) - before
    nxt = side.step_after(int(side.cum[hi - 1]))
    next_price = sign * float(side.sorted_key[nxt]) if nxt < side.cum.size else None
    return _Margin(key, lo, hi, (q - before) / level, q - before < level, next_price)


def _crosses(buy: _Side, sell: _Side, q: int) -> bool:
    """Would GridLAB-D's walk take another step from cumulative quantity q (buy price >= sell price)?"""
    i, j = buy.step_after(q), sell.step_after(q)
    return i < buy.cum.size and j < sell.cum.size and -buy.sorted_key[i] >= sell.sorted_key[j]


def _first_stop(cum: np.ndarray, buy: _Side, sell: _Side) -> int:
    """Smallest breakpoint in ``cum`` where the walk stops; the walk is monotone, so this is a bisection."""
    lo, hi = 0, cum.size - 1  # at cum[-1] this side is exhausted, so the walk stops there
    while lo < hi:
        mid = (lo + hi) // 2
        if _crosses(buy, sell, int(cum[mid])):
            lo = mid + 1
        else:
            hi = mid
    return int(cum[lo])


def _cleared_ticks(buy: _Side, sell: _Side) -> int:
    """End of GridLAB-D's walk: the cleared quantity in ticks (0 when a side is empty or nothing crosses)."""
    if buy.total == 0 or sell.total == 0 or not _crosses(buy, sell, 0):
        return 0
    return min(_first_stop(buy.cum, buy, sell), _first_stop(sell.cum, buy, sell))


def _null_price(buy: _Side, sell: _Side, book: Book) -> float:
    """GridLAB-D's price when nothing clears (auction.cpp, ``clear.quantity == 0`` and the missing-side branch)."""
    has_buy, has_sell = buy.total > 0, sell.total > 0
    best_buy = -float(buy.sorted_key[buy.first_positive()]) if has_buy else 0.0
    best_sell = float(sell.sorted_key[sell.first_positive()]) if has_sell else 0.0
    if not has_buy:
        return best_sell  # 0.0 when neither side bid
    if not has_sell:
        return best_buy
    if best_sell >= book.price_cap:
        return best_buy
    if best_buy <= book.price_floor:
        return best_sell
    return best_sell + book.k * (best_buy - best_sell)


def _gap_price(bm: _Margin, sm: _Margin, book: Book) -> float:
    """MARGINAL_PRICE: ``sell + k (buy - sell)`` kept inside the prices that clear exactly this quantity."""
    a, b = -bm.key, sm.key
    lo = b if bm.next_price is None else max(b, bm.next_price)
    hi = a if sm.next_price is None else min(a, sm.next_price)
    unresponsive_buy, unresponsive_sell = a >= book.price_cap, b <= book.price_floor
    if unresponsive_buy and unresponsive_sell:
        return lo + book.k * (hi - lo)
    if unresponsive_buy:
        return lo
    if unresponsive_sell:
        return hi
    return min(max(b + book.k * (a - b), lo), hi)


def _unresponsive(side: _Side, key: float) -> int:
    """Ticks bid at the cap (buys, key -cap) or the floor (sells, key floor)."""
    return side.ticks_before(int(np.searchsorted(side.sorted_key, key, side="right")))


def _classify(buy: _Side, sell: _Side, q: int, bm: _Margin, sm: _Margin, book: Book) -> tuple[ClearingType, float]:
    if q < _unresponsive(buy, -book.price_cap):
        return ClearingType.FAILURE, book.price_cap
    if q < _unresponsive(sell, book.price_floor):
        return ClearingType.FAILURE, book.price_floor
    if bm.rationed:
        return ClearingType.MARGINAL_BUYER, -bm.key
    if sm.rationed:
        return ClearingType.MARGINAL_SELLER, sm.key
    if -bm.key == sm.key:
        return ClearingType.EXACT, sm.key
    return ClearingType.MARGINAL_PRICE, _gap_price(bm, sm, book)


def _awards(side: _Side, quantity: np.ndarray, margin: _Margin | None) -> np.ndarray:
    """Strictly better than the marginal level: filled; at it: pro rata (all of it when not rationed); worse: 0."""
    if margin is None:
        return np.zeros(quantity.size)
    if not margin.rationed:
        return np.where(side.key <= margin.key, quantity, 0.0)
    awards = np.where(side.key < margin.key, quantity, 0.0)
    at_level = side.order[margin.lo : margin.hi]
    awards[at_level] = quantity[at_level] * margin.share
    return awards


@dataclass(frozen=True)
class _Outcome:
    result: ClearingResult
    rationed_buy_key: float | None
    rationed_sell_key: float | None


def _scatter(values: np.ndarray, index: np.ndarray, size: int, full: bool) -> np.ndarray:
    """Awards of the active bids back onto book positions (the common all-active case needs no copy)."""
    if full:
        return values
    out = np.zeros(size)
    out[index] = values
    return out


def _first_by_time(ids: list[str], time: np.ndarray, candidates: np.ndarray) -> str:
    first = min(candidates.tolist(), key=lambda n: (int(time[n]), ids[n]))
    return ids[first]


def _clear_once(book: Book, buy_index: np.ndarray, sell_index: np.ndarray) -> _Outcome:
    """One pass of the auction over the bids at ``buy_index`` / ``sell_index`` (book positions)."""
    full_b, full_s = buy_index.size == len(book.buy_ids), sell_index.size == len(book.sell_ids)
    bq = book.buy_quantity if full_b else book.buy_quantity[buy_index]
    sq = book.sell_quantity if full_s else book.sell_quantity[sell_index]
    buy = _side(book.buy_price if full_b else book.buy_price[buy_index], bq, -1.0)
    sell = _side(book.sell_price if full_s else book.sell_price[sell_index], sq, 1.0)
    q = _cleared_ticks(buy, sell)
    bm = sm = None
    marginal: str | None = None
    if q == 0:
        kind, price = ClearingType.NULL, _null_price(buy, sell, book)
    else:
        bm, sm = _margin(buy, q, -1.0), _margin(sell, q, 1.0)
        kind, price = _classify(buy, sell, q, bm, sm, book)
        for margin, side, index, ids, time in (
            (bm, buy, buy_index, book.buy_ids, book.buy_time),
            (sm, sell, sell_index, book.sell_ids, book.sell_time),
        ):
            if margin.rationed:
                marginal = _first_by_time(ids, time, index[side.order[margin.lo : margin.hi]])
    buy_awards = _scatter(_awards(buy, bq, bm), buy_index, len(book.buy_ids), full_b)
    sell_awards = _scatter(_awards(sell, sq, sm), sell_index, len(book.sell_ids), full_s)
    result = ClearingResult(
        clearing_price=float(price),
        cleared_quantity=q / TICKS_PER_UNIT,
        type=kind,
        buy_awards=buy_awards,
        sell_awards=sell_awards,
        marginal=marginal,
        supply_curve=sell.curve(1.0),
        demand_curve=buy.curve(-1.0),
    )
    return _Outcome(
        result,
        bm.key if bm is not None and bm.rationed else None,
        sm.key if sm is not None and sm.rationed else None,
    )


def _partly_filled(
    index: np.ndarray, key: np.ndarray, aon: np.ndarray, quantity: np.ndarray, level: float | None
) -> np.ndarray:
    """Book positions of active all-or-none bids with quantity at the rationed level (i.e. filled in part)."""
    if level is None:
        return np.zeros(0, np.int64)
    return index[aon[index] & (key[index] == level) & (quantity[index] > 0)]


def _lowest_priority(ids: list[str], time: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    return np.array([max(candidates.tolist(), key=lambda n: (int(time[n]), ids[n]))])


def _clear_all_or_none(book: Book) -> ClearingResult:
    """Clear, drop all-or-none bids that would be filled in part, clear again.

    Each round drops the lowest-priority partly filled bid (latest time, then greatest id; they share one price
    level, since only one side is ever rationed); after ``_ONE_AT_A_TIME_ROUNDS`` rounds every partly filled one
    goes at once. Every round drops at least one bid, so there are at most (all-or-none bids + 1) rounds. Dropped
    bids stay out for this interval and are listed in ``ClearingResult.excluded``.
    """
    active = {"buy": np.ones(len(book.buy_ids), bool), "sell": np.ones(len(book.sell_ids), bool)}
    excluded: list[str] = []
    rounds = int(book.buy_all_or_none.sum() + book.sell_all_or_none.sum()) + 1
    for round_no in range(rounds):
        index = {side: np.flatnonzero(mask) for side, mask in active.items()}
        outcome = _clear_once(book, index["buy"], index["sell"])
        levels = {"buy": outcome.rationed_buy_key, "sell": outcome.rationed_sell_key}
        for side in ("buy", "sell"):
            ids, time = getattr(book, f"{side}_ids"), getattr(book, f"{side}_time")
            key = -book.buy_price if side == "buy" else book.sell_price
            aon, quantity = getattr(book, f"{side}_all_or_none"), getattr(book, f"{side}_quantity")
            candidates = _partly_filled(index[side], key, aon, quantity, levels[side])
            if candidates.size:
                break
        else:
            return replace(outcome.result, excluded=tuple(excluded))
        if round_no < _ONE_AT_A_TIME_ROUNDS:
            candidates = _lowest_priority(ids, time, candidates)
        active[side][candidates] = False
        excluded.extend(ids[n] for n in sorted(candidates.tolist(), key=lambda n: (int(time[n]), ids[n])))
    raise AssertionError("all-or-none rounds exceeded their bound")  # pragma: no cover - each round drops a bid


def clear(book: Book) -> ClearingResult:
    """Clear one interval: uniform price, GridLAB-D clearing types, pro rata at the margin, all-or-none honoured."""
    if book.buy_all_or_none.any() or book.sell_all_or_none.any():
        return _clear_all_or_none(book)
    return _clear_once(book, np.arange(len(book.buy_ids)), np.arange(len(book.sell_ids))).result
