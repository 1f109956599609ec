"""Pausing Python's cyclic garbage collector around bulk work that allocates many small, acyclic, surviving
objects (a CIM model read, a market run parsing 10,000 tenders and writing 9,000 messages).

Each generation-0 collection re-scans those survivors for cycles that cannot exist: a quarter of the CIM read on
IEEE 9500 and of a 10,000-tender market run (benchmarks/README.md). Reference counting still frees everything.
The pause is process-wide, so nested and concurrent pauses are counted and the collector comes back when the last
one ends, and only if it was on before the first.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
