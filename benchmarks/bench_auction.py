"""Uniform-price double auction: one interval of 1,000,000 bids on one core, against ``np.argsort``.

Target (DOMAIN.md, "Clearing"): clearing 1e6 bids (half buys, half sells) takes at most 3x the time of
``np.argsort`` of 1e6 float64 on the same machine in the same run; the reference is measured interleaved with
the contender, so the ratio survives a noisy shared machine. For contrast, a TESP-style auction (pure Python,
each bid inserted into a sorted list, the O(N^2) curve building of ``tesp_support`` ``curve.add_to_bid``, then
GridLAB-D's walk) clears 10,000 bids next to our clear of the same 10,000.

Run: ``.venv/bin/python benchmarks/bench_auction.py [--quick]``. Not a test: it prints its figures.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

from gateway.market import Book, clear

TARGET_RATIO = 3.0


def pin_to_one_core() -> str:
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        return f"pinned to core {min(os.sched_getaffinity(0))}"
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return "not pinned (no sched_setaffinity)"


def random_book(n: int, seed: int) -> Book:
    """n bids, half buys and half sells, prices uniform on [0, 100) $/MWh, quantities on [0.1, 10) kW."""
    rng = np.random.default_rng(seed)
    half = n // 2
    return Book.from_arrays(
        [f"b{i}" for i in range(half)],
        rng.uniform(0.1, 10.0, half),
        rng.uniform(0.0, 100.0, half),
        [f"s{i}" for i in range(n - half)],
        rng.uniform(0.1, 10.0, n - half),
        rng.uniform(0.0, 100.0, n - half),
    )


def median_times(contenders: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Interleaved repetitions (A B A B ...), GC off while timing; medians in seconds."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(reps):
        for name, run in contenders.items():
            gc.collect()
            gc.disable()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
            gc.enable()
    return {name: statistics.median(values) for name, values in times.items()}


class TespStyleAuction:
    """The TESP way: keep each curve as parallel Python lists sorted by price, inserting every bid with a linear
    scan (equal prices aggregate), then walk the curves as GridLAB-D does. Quadratic in the number of bids."""

    def __init__(self) -> None:
        self.buy_price: list[float] = []
        self.buy_quantity: list[float] = []
        self.sell_price: list[float] = []
        self.sell_quantity: list[float] = []

    @staticmethod
    def _insert(prices: list[float], quantities: list[float], price: float, quantity: float, descending: bool) -> None:
        for i, p in enumerate(prices):
            if p == price:
                quantities[i] += quantity
                return
            if (price > p) if descending else (price < p):
                prices.insert(i, price)
                quantities.insert(i, quantity)
                return
        prices.append(price)
        quantities.append(quantity)

    def add_buy(self, price: float, quantity: float) -> None:
        self._insert(self.buy_price, self.buy_quantity, price, quantity, descending=True)

    def add_sell(self, price: float, quantity: float) -> None:
        self._insert(self.sell_price, self.sell_quantity, price, quantity, descending=False)

    def clear(self) -> tuple[float, float]:
        i = j = 0
        demand = supply = cleared = 0.0
        price = 0.0
        while i < len(self.buy_price) and j < len(self.sell_price) and self.buy_price[i] >= self.sell_price[j]:
            buy_q, sell_q = demand + self.buy_quantity[i], supply + self.sell_quantity[j]
            if buy_q > sell_q:
                cleared = supply = sell_q
                price = self.buy_price[i]
                j += 1
            elif buy_q < sell_q:
                cleared = demand = buy_q
                price = self.sell_price[j]
                i += 1
            else:
                cleared = demand = supply = buy_q
                price = (self.buy_price[i] + self.sell_price[j]) / 2
                i += 1
                j += 1
        return price, cleared


def tesp_style(book: Book) -> tuple[float, float]:
    auction = TespStyleAuction()
    for price, quantity in zip(book.buy_price.tolist(), book.buy_quantity.tolist(), strict=True):
        auction.add_buy(price, quantity)
    for price, quantity in zip(book.sell_price.tolist(), book.sell_quantity.tolist(), strict=True):
        auction.add_sell(price, quantity)
    return auction.clear()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 repetitions and 2,000 TESP-style bids")
    parser.add_argument("--reps", type=int, default=None)
    args = parser.parse_args()
    reps = max(5, args.reps or (5 if args.quick else 9))
    small_n = 2_000 if args.quick else 10_000

    pinned = pin_to_one_core()
    print(f"# bench_auction: Python {platform.python_version()}, numpy {np.__version__}, {pinned}, {reps} reps")

    book = random_book(1_000_000, seed=1)
    reference = np.random.default_rng(2).random(1_000_000)
    result = clear(book)
    print(
        f"1e6 bids: {result.type} {result.cleared_quantity:,.3f} kW at {result.clearing_price:.4f}"
        f" (marginal {result.marginal})"
    )
    big = median_times({"clear": lambda: clear(book), "argsort": lambda: np.argsort(reference)}, reps)
    ratio = big["clear"] / big["argsort"]
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print(f"{'our clear, 1,000,000 bids':<44} {big['clear'] * 1e3:9.2f} ms (median)")
    print(f"{'np.argsort, 1,000,000 float64 (reference)':<44} {big['argsort'] * 1e3:9.2f} ms (median)")
    print(f"{'ratio clear / argsort':<44} {ratio:9.2f} x   target <= {TARGET_RATIO:.0f}x: {verdict}")

    small = random_book(small_n, seed=3)
    ours, theirs = clear(small), tesp_style(small)
    agree = abs(ours.cleared_quantity - theirs[1]) <= 1e-6 * max(1.0, theirs[1])
    times = median_times({"tesp": lambda: tesp_style(small), "ours": lambda: clear(small)}, reps)
    print(f"{f'TESP-style list insertion, {small_n:,} bids':<44} {times['tesp'] * 1e3:9.2f} ms (median)")
    print(f"{f'our clear, same {small_n:,} bids':<44} {times['ours'] * 1e3:9.2f} ms (median)")
    print(f"{'speed-up':<44} {times['tesp'] / times['ours']:9.0f} x   (same cleared quantity: {agree})")
    return 0 if verdict == "PASS" and agree else 1


if __name__ == "__main__":
    sys.exit(main())
