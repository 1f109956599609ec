"""Replay protection for signed OpenADR 2.0b messages: a freshness window and a bounded memory of nonces.

A signed 2.0b message carries, inside its signature, a ReplayProtect property: the time it was signed and a
random nonce. A receiver accepts a message only if that time is close to its own clock and it has not seen the
nonce before. The nonce only has to be remembered for as long as a message carrying it could still pass the
time check; after that the time check alone rejects a replay. That is what makes the memory bounded.

Why not openleadr's way: it keeps one global set of (timestamp, nonce) and, for every message, copies and scans
the whole set to drop old entries (O(n) per message, n = messages in the window), and it checks only the past
side of the window, so a message stamped an hour ahead stays fresh for an hour while its nonce is forgotten after
five seconds. Here every entry is kept until a fixed deadline (arrival + past window + future window), which is
monotone in arrival order, so eviction pops from the head of a deque: O(1) amortised per message. Far-future
timestamps are rejected, which is what makes that deadline sound: an accepted message's timestamp is at most
``arrival + future``, so it turns stale (``timestamp + past``) no later than the deadline.

Under a flood of valid messages the ``max_entries`` cap evicts the oldest entry early; to stay safe it then raises
a floor, and messages stamped at or before the newest timestamp ever evicted that way are refused. The guard
degrades by narrowing its window, never by forgetting a nonce whose message could still be accepted.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta


def utc_now() -> datetime:
    """The default clock: timezone-aware UTC, as every time inside the gateway."""
    return datetime.now(UTC)


class ReplayRejected(Exception):
    """A message's ReplayProtect failed: stale, from the future, or a nonce already seen."""

    def __init__(self, reason: str, *, stale: bool = False, future: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stale = stale
        self.future = future


class ReplayGuard:
    """Freshness window plus nonce memory, shared by every connection of one process; thread-safe.

    ``window`` is how old a message may be (openleadr uses 5 s, and a signature is made just before sending, so
    5 s covers transport and a busy receiver); ``future_window`` is how far ahead of our clock a timestamp may be
    (5 s: NTP keeps hosts within milliseconds, this allows a poorly synchronised embedded VEN a few seconds in
    either direction, symmetrically). Memory is at most ``max_entries`` keys and in steady state
    rate x (window + future_window).
    """

    def __init__(
        self,
        window: timedelta = timedelta(seconds=5),
        max_entries: int = 100_000,
        *,
        future_window: timedelta = timedelta(seconds=5),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if window <= timedelta(0) or future_window < timedelta(0):
            raise ValueError("the replay window must be positive and the future window not negative")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.window = window
        self.future_window = future_window
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: set[Hashable] = set()
        self._order: deque[tuple[datetime, Hashable, datetime]] = deque()  # (forget after, key, timestamp)
        self._floor: datetime | None = None  # newest timestamp evicted early by the size cap

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, key: Hashable, timestamp: datetime) -> None:
        """Accept ``key`` (a nonce, scoped by its signer) stamped ``timestamp`` exactly once, or raise.

        Check and insert happen under one lock: two threads receiving the same replayed message at once cannot
        both accept it.
        """
        if timestamp.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        with self._lock:
            now = self._clock()
            if timestamp < now - self.window:
                raise ReplayRejected(
                    f"message signed {(now - timestamp).total_seconds():.3f} s ago, more than the"
                    f" {self.window.total_seconds():g} s replay window",
                    stale=True,
                )
            if timestamp > now + self.future_window:
                raise ReplayRejected(
                    f"message signed {(timestamp - now).total_seconds():.3f} s in the future, more than the"
                    f" {self.future_window.total_seconds():g} s allowed for clock skew",
                    future=True,
                )
            order, seen = self._order, self._seen
            while order and order[0][0] <= now:
                seen.discard(order.popleft()[1])
            if self._floor is not None and timestamp <= self._floor:
                raise ReplayRejected("message older than the replay memory reaches under the current load", stale=True)
            if key in seen:
                raise ReplayRejected("nonce already used: the message is a replay")
            if len(seen) >= self.max_entries:
                _, evicted, evicted_at = order.popleft()
                seen.discard(evicted)
                if self._floor is None or evicted_at > self._floor:
                    self._floor = evicted_at
            seen.add(key)
            order.append((now + self.window + self.future_window, key, timestamp))
