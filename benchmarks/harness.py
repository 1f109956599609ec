"""Timing helpers every benchmark here shares: pin to one core (figures are per core and not spread by the
scheduler), calibrated ops/s with the collector paused inside a batch, and interleaved medians of contenders
measured side by side in one run (the machines are shared and noisy: ratios in one run, never one absolute time).
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable


def pin_to_one_core() -> int:
    """Run on the last core only, so figures are per core and not spread by the scheduler."""
    core = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def ops_per_second(operation: Callable[[], object], seconds: float) -> float:
    """Run ``operation`` for about ``seconds`` (calibrated batch, no GC pauses inside) and return ops/s."""
    batch = 1
    while True:
        started = time.perf_counter()
        for _ in range(batch):
            operation()
        elapsed = time.perf_counter() - started
        if elapsed > 0.02:
            break
        batch *= 2
    count = max(1, int(batch * seconds / elapsed))
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(count):
            operation()
        elapsed = time.perf_counter() - started
    finally:
        gc.enable()
    return count / elapsed


def compare(
    title: str,
    contenders: dict[str, Callable[[], object]],
    repetitions: int,
    seconds: float,
    *,
    unit: str = "ops/s",
    versus: str = "first",
) -> dict[str, float]:
    """Median ops/s of each contender over ``repetitions`` interleaved rounds; prints a table with each one's ratio
    to the first contender (named ``versus`` in the header)."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for operation in contenders.values():  # warm-up: caches, lazily built validators
        ops_per_second(operation, 0.05)
    for _ in range(repetitions):
        for name, operation in contenders.items():
            samples[name].append(ops_per_second(operation, seconds))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    reference = next(iter(medians.values()))
    width = max(len(name) for name in contenders)
    print(f"\n{title}")
    print(f"  {'name':<{width}} {'median ' + unit:>14} {'spread':>8} {'vs ' + versus:>13}")
    for name, median in medians.items():
        spread = (max(samples[name]) - min(samples[name])) / median
        print(f"  {name:<{width}} {median:>14,.0f} {spread:>7.1%} {median / reference:>12.2f}x")
    return medians
