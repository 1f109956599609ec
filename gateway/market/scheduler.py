"""The periodic call auction under ``tgw serve``: every tick, clear each auto-clearing market's intervals whose
gate has closed.

It only asks the runner for what is due; the runner's derived keys make a run idempotent, so a tick that overlaps
another gateway process (or an operator's manual run) clears nothing twice. Runs happen in a worker thread so the
API stays responsive while a large book clears; their results go on the bus like any other stored message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from gateway.bus import Bus
from gateway.market.runs import MarketRunner, RunResult
from gateway.model import Market, MessageKind, utc_now

log = logging.getLogger("tgw.market")


class CallAuctionScheduler:
    """Runs due market intervals every ``tick``; ``clock`` is injectable so tests can drive time."""

    def __init__(
        self,
        runner: MarketRunner,
        bus: Bus | None = None,
        *,
        tick: timedelta = timedelta(seconds=15),
        lookback: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.runner = runner
        self.bus = bus
        self.tick = tick
        self.lookback = lookback
        self.clock = clock
        self.runs = 0
        self.failures = 0
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None

    def run_due(self) -> list[RunResult]:
        """One tick, synchronously: clear every due interval of every active auto-clearing market."""
        now = self.clock()
        results: list[RunResult] = []
        markets = self.runner.store.list(MessageKind.MARKET, limit=None)
        for market in markets:
            if not isinstance(market, Market) or not (market.active and market.auto_clear):
                continue
            for interval in self.runner.due(market, now, lookback=self.lookback):
                try:
                    result = self.runner.clear_interval(market.id, interval.start, now=now)
                except Exception as exc:  # one bad market must not stop the others; the reason is kept
                    self.failures += 1
                    self.last_error = f"{market.id} {interval.start.isoformat()}: {exc}"
                    log.exception("market run failed: %s", self.last_error)
                    break
                self.runs += 1
                results.append(result)
        return results

    async def _loop(self) -> None:
        assert self._stopping is not None
        while not self._stopping.is_set():
            results = await asyncio.to_thread(self.run_due)
            if self.bus is not None:
                for result in results:
                    self.bus.publish([m for m in result.stored if not m.duplicate])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.tick.total_seconds())

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="call-auction")

    async def stop(self) -> None:
        """Stop after the run in progress, if any, has finished: cancelling would leave its worker thread writing
        to a store the app is about to close."""
        if self._task is None or self._stopping is None:
            return
        self._stopping.set()
        await self._task
        self._task = None
