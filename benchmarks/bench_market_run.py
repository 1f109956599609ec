"""One market run end to end: ``MarketRunner.clear_interval`` of one hour, and its parts side by side.

A feeder market holds N day-ahead tenders (half buys, half sells), each a 24-row hourly strip with random
prices in [0.05, 0.50] $/kWh and quantities in [1, 20] kW, on 50 service points under 5 transformers of one
feeder (n1 > f1 > t0..t4 > sp00..sp49). Sells sit under t0 more often than elsewhere, so in the network market
t0's rating (set to half of what the plain auction would push through it) binds and the network LP clears; the
copper-plate market is the same tree without a network root. Each repetition clears a different hour of the
strip, so no run finds a stored result ("already cleared"); a warm-up run goes first.

Figures, medians of interleaved repetitions, pinned to one core:
  * whole: ``clear_interval(market_id, start, now=after the gate)`` of one fresh hour by a runner that has run
    before (the periodic call auction's steady state: it keeps parsed tenders and re-reads only changed ones);
  * cold: the same on a fresh ``MarketRunner`` (the first run after a restart parses every tender);
  * load: ``store.list(TENDER, filters={"market_id": ...}, limit=None)`` alone (SQL + JSON -> models), and of
    it the bare SQL fetch of the same bodies (no parsing), so load - fetch is pydantic;
  * book+clear: on already loaded tenders, ``gather`` + ``clear`` (+ for the network market the network
    build from loaded locations, the overload check and the LP, via the runner's ``_network_outcome``);
  * rest = cold - load - book+clear: building Transactions, Positions, the Clearing, envelopes, the few
    small queries, and the append; of it the append alone (``store.append_many`` of a run's envelopes,
    timed on a run of another fresh hour reproduced with the runner's ``_run``/``_envelopes``).
  Shares are of the cold run; "cache" is the share of it the warm runner saves. A run pauses Python's cyclic
  garbage collector itself (gateway/gcpause.py); the benchmark's own copy of the tenders is frozen out of the
  collector's sight so that it does not lengthen the runs' collections.
The private runner methods are used only to time parts exactly as the run does them.

Run: ``.venv/bin/python benchmarks/bench_market_run.py [--quick]`` (``--quick``: N = 1,000 only, 3 repetitions).
SQLite is a temporary file (WAL, synchronous=FULL, as the store opens it). PostgreSQL only when the env var
TGW_BENCH_PG_URL names a database: the store migrates it and the benchmark leaves its objects there (ids carry
a per-run tag, so runs do not collide). Not a test: it prints its figures.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy
from sqlalchemy import select

from gateway.ingest import Ingestor
from gateway.market.auction import clear
from gateway.market.books import gather
from gateway.market.grid import market_network
from gateway.market.runs import MarketRunner
from gateway.model import Envelope, Interval, Location, Market, MessageKind, Source, Tender, wrap
from gateway.store import Store
from gateway.store.tables import STATE_TABLES

from harness import pin_to_one_core

START = datetime(2030, 1, 7, tzinfo=UTC)
HOURS = 24
TRANSFORMERS = 5
SERVICE_POINTS = 50  # 10 per transformer
PARTIES = 500
SKEW = 0.4  # share of sells placed under t0 (t0 holds 20% of the service points)
SEED_BATCH = 1_000
BINDING = "t0"


def env(object_type: str, /, **payload: Any) -> Envelope:
    return Envelope.model_validate({"payload": {"object_type": object_type, **payload}})


# -- the market ------------------------------------------------------------------------------------------------


@dataclass
class Setup:
    """One store holding one market and its N tenders."""

    backend: str
    kind: str  # "copper" or "network"
    n: int
    store: Store
    market: Market
    tag: str
    rating_kva: float | None = None


def service_point(tag: str, k: int) -> str:
    return f"{tag}sp{k:02d}"


def transformer_of(k: int) -> int:
    return k // (SERVICE_POINTS // TRANSFORMERS)


def seed_grid(store: Store, tag: str, kind: str, rating_kva: float | None) -> Market:
    """Parties, the location tree and the market, through the ingest checks as any client would send them."""
    parties = [env("party", id=f"{tag}op", name="operator", roles=["dmo"])]
    parties += [env("party", id=f"{tag}p{i}", name=f"prosumer {i}", roles=["prosumer"]) for i in range(PARTIES)]
    locations = [
        env("location", id=f"{tag}n1", name="n1", kind="pnode"),
        env("location", id=f"{tag}f1", name="f1", kind="feeder", parent_id=f"{tag}n1"),
    ]
    for t in range(TRANSFORMERS):
        rating = {"rating_kva": str(rating_kva)} if t == 0 and rating_kva is not None else {}
        locations.append(
            env("location", id=f"{tag}t{t}", name=f"t{t}", kind="transformer", parent_id=f"{tag}f1", **rating)
        )
    locations += [
        env(
            "location",
            id=service_point(tag, k),
            name=f"sp{k}",
            kind="service_point",
            parent_id=f"{tag}t{transformer_of(k)}",
        )
        for k in range(SERVICE_POINTS)
    ]
    root = {"network_root_id": f"{tag}n1"} if kind == "network" else {}
    market = env("market", id=f"{tag}m", operator_id=f"{tag}op", **root)
    Ingestor(store).ingest_sync([*parties, *locations, market], protocol="rest", peer="bench")
    return market.payload  # type: ignore[return-value]


def build_tenders(n: int, tag: str, market_id: str, seed: int) -> list[Tender]:
    """n 24-row tenders: even i buys, odd i sells; prices 0.05..0.50 (4 decimals), quantities 1..20 kW (3)."""
    rng = np.random.default_rng(seed)
    prices = rng.uniform(0.05, 0.50, (n, HOURS))
    quantities = rng.uniform(1.0, 20.0, (n, HOURS))
    anywhere = rng.integers(0, SERVICE_POINTS, n)
    under_t0 = rng.integers(0, SERVICE_POINTS // TRANSFORMERS, n)
    skewed = rng.random(n) < SKEW
    starts = [START + timedelta(hours=h) for h in range(HOURS)]
    created = START - timedelta(days=1)
    tenders = []
    for i in range(n):
        sell = i % 2 == 1
        k = int(under_t0[i] if sell and skewed[i] else anywhere[i])
        rows = [
            {"start": s, "quantity": Decimal(f"{q:.3f}"), "price": Decimal(f"{p:.4f}")}
            for s, q, p in zip(starts, quantities[i].tolist(), prices[i].tolist(), strict=True)
        ]
        tenders.append(
            Tender(
                id=f"{tag}t{i:06d}",
                market_id=market_id,
                party_id=f"{tag}p{i % PARTIES}",
                side="sell" if sell else "buy",
                location_id=service_point(tag, k),
                rows=rows,  # type: ignore[arg-type]
                created_at=created + timedelta(microseconds=i),
            )
        )
    return tenders


def t0_export(market: Market, tenders: list[Tender], tag: str, hour: int) -> float:
    """kW the plain auction of ``hour`` pushes out of t0 (sells awarded under it minus buys awarded under it)."""
    interval = runner_interval(market, hour)
    book = gather(market, interval, tenders, gate_closed_at=interval.start - market.gate_closure)
    auction = clear(book.auction_book(market))
    under = {service_point(tag, k) for k in range(SERVICE_POINTS) if transformer_of(k) == 0}
    buys = [b for b in book.energy if b.is_buy]
    sells = [b for b in book.energy if not b.is_buy]
    out = sum(float(a) for b, a in zip(sells, auction.sell_awards, strict=True) if b.tender.location_id in under)
    into = sum(float(a) for b, a in zip(buys, auction.buy_awards, strict=True) if b.tender.location_id in under)
    return out - into


def runner_interval(market: Market, hour: int) -> Interval:
    return Interval(start=START + timedelta(hours=hour), duration=market.resolution, time_zone=market.time_zone)


def set_up(backend: str, store: Store, kind: str, n: int) -> Setup:
    tag = f"b{uuid.uuid4().hex[:6]}{kind[0]}{n}-"
    market_id = f"{tag}m"
    tenders = build_tenders(n, tag, market_id, seed=n)
    rating = None
    if kind == "network":
        # Half of what the plain auction of hour 0 pushes through t0: it binds in every hour (sums over
        # hundreds of random tenders vary by a few percent from hour to hour); the runs check it did.
        plain = Market(id=market_id, operator_id=f"{tag}op", network_root_id=f"{tag}n1")
        rating = round(0.5 * t0_export(plain, tenders, tag, 0))
        assert rating > 0, "the skew should make t0 export"
    market = seed_grid(store, tag, kind, rating)
    envelopes = [wrap(t, Source(protocol="rest", peer="bench", native_id=t.id, version="1")) for t in tenders]
    for i in range(0, len(envelopes), SEED_BATCH):
        store.append_many(envelopes[i : i + SEED_BATCH])
    return Setup(backend, kind, n, store, market, tag, rating)


# -- the measurements ----------------------------------------------------------------------------------------


@dataclass
class Row:
    backend: str
    kind: str
    n: int
    whole: float
    whole_nogc: float
    load: float
    fetch: float
    book_clear: float
    append: float
    transactions: int
    positions: int
    binding: str
    method: str


def timed(run: Any, *, gc_paused: bool = False) -> tuple[float, Any]:
    gc.collect()
    if gc_paused:
        gc.disable()
    try:
        started = time.perf_counter()
        out = run()
        return time.perf_counter() - started, out
    finally:
        gc.enable()


def fetch_bodies(store: Store, market_id: str) -> list[str]:
    """The SQL part of ``Store.list`` for tenders: the same query, bodies as text, nothing parsed."""
    table = STATE_TABLES[MessageKind.TENDER].table
    query = select(table.c.body).where(table.c.market_id == market_id).order_by(table.c.id)
    with store.engine.connect() as conn:
        return list(conn.execute(query).scalars().all())


def measure(setup: Setup, reps: int) -> Row:
    store, market = setup.store, setup.market
    runner = MarketRunner(store)
    hours = iter([HOURS - 1, *range(HOURS - 1)])  # the warm-up clears the last hour; then 3 fresh hours a rep

    def whole_run(hour: int, using: MarketRunner = runner) -> Any:
        interval = using.interval(market, START + timedelta(hours=hour))
        return using.clear_interval(market.id, interval.start, now=interval.start - timedelta(minutes=4))

    warm = whole_run(next(hours))
    assert warm.created
    tenders: list[Tender] = store.list(MessageKind.TENDER, filters={"market_id": market.id}, limit=None)  # type: ignore[assignment]
    assert len(tenders) == setup.n
    locations: list[Location] = store.list(MessageKind.LOCATION, limit=None)  # type: ignore[assignment]
    # The benchmark's own copy of the tenders (~100 objects each) must not make the collector's passes during
    # the timed runs longer than in a gateway process: set it aside, out of the collector's sight.
    gc.collect()
    gc.freeze()

    def book_and_clear(hour: int) -> Any:
        interval = runner.interval(market, START + timedelta(hours=hour))
        book = gather(market, interval, tenders, gate_closed_at=interval.start - market.gate_closure)
        auction = clear(book.auction_book(market))
        network = market_network(market, locations)
        return runner._network_outcome(market, network, book, auction)

    times: dict[str, list[float]] = {k: [] for k in ("whole", "whole_nogc", "load", "fetch", "book_clear", "append")}
    transactions, positions, bindings, methods = [], [], set(), set()
    for _ in range(reps):
        hour, other, third = next(hours), next(hours), next(hours)
        seconds, result = timed(lambda hour=hour: whole_run(hour))
        assert result.created and not any(s.duplicate for s in result.stored)
        times["whole"].append(seconds)
        seconds, cold = timed(lambda third=third: whole_run(third, MarketRunner(store)))
        assert cold.created
        times["whole_nogc"].append(seconds)
        transactions.append(len(result.transactions))
        positions.append(len(result.positions))
        bindings.add(",".join(b.removeprefix(setup.tag) for b in result.clearing.binding_location_ids) or "-")
        methods.add(result.clearing.method.value)

        seconds, loaded = timed(lambda: store.list(MessageKind.TENDER, filters={"market_id": market.id}, limit=None))
        assert len(loaded) == setup.n
        times["load"].append(seconds)
        seconds, bodies = timed(lambda: fetch_bodies(store, market.id))
        assert len(bodies) == setup.n
        times["fetch"].append(seconds)

        times["book_clear"].append(timed(lambda hour=hour: book_and_clear(hour))[0])

        interval = runner.interval(market, START + timedelta(hours=other))
        gate = interval.start - market.gate_closure
        again = runner._run(market, interval, gate, gate + timedelta(minutes=1))
        envelopes = runner._envelopes(market, again)
        seconds, stored = timed(lambda envelopes=envelopes: store.append_many(envelopes))
        assert len(stored) == len(envelopes) and not any(s.duplicate for s in stored)
        times["append"].append(seconds)

    gc.unfreeze()
    med = {k: statistics.median(v) for k, v in times.items()}
    return Row(
        setup.backend,
        setup.kind,
        setup.n,
        med["whole"],
        med["whole_nogc"],
        med["load"],
        med["fetch"],
        med["book_clear"],
        med["append"],
        int(statistics.median(transactions)),
        int(statistics.median(positions)),
        "/".join(sorted(bindings)),
        "/".join(sorted(methods)),
    )


def print_table(rows: list[Row]) -> None:
    head = (
        f"  {'backend':<10} {'N':>6} {'market':<8} {'whole ms':>9} {'(cold)':>8} {'load ms':>8} {'(SQL)':>7}"
        f" {'book+clr':>9} {'rest ms':>8} {'(append)':>9} {'tx':>5} {'pos':>4} {'load':>5} {'b+c':>5} {'rest':>5}"
        f" {'(apnd)':>6} {'cache':>5}  method / binding"
    )
    print(head)
    for r in rows:
        rest = r.whole_nogc - r.load - r.book_clear
        share = [100 * x / r.whole_nogc for x in (r.load, r.book_clear, rest, r.append, r.whole_nogc - r.whole)]
        print(
            f"  {r.backend:<10} {r.n:>6,} {r.kind:<8} {r.whole * 1e3:>9.1f} {r.whole_nogc * 1e3:>8.1f}"
            f" {r.load * 1e3:>8.1f}"
            f" {r.fetch * 1e3:>7.1f} {r.book_clear * 1e3:>9.1f} {rest * 1e3:>8.1f} {r.append * 1e3:>9.1f}"
            f" {r.transactions:>5} {r.positions:>4} {share[0]:>4.0f}% {share[1]:>4.0f}% {share[2]:>4.0f}%"
            f" {share[3]:>5.0f}% {share[4]:>3.0f}%  {r.method} / {r.binding}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1,000 only, 3 repetitions")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (at most 7: 3 fresh hours each)")
    args = parser.parse_args()
    reps = min(7, max(1, args.reps or (3 if args.quick else 5)))
    sizes = (1_000,) if args.quick else (1_000, 10_000)

    core = pin_to_one_core()
    print(
        f"# bench_market_run: Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__},"
        f" sqlite {sqlite3.sqlite_version}, numpy {np.__version__}, pinned to core {core}, {reps} reps (medians)"
    )
    print(
        f"# {HOURS}-row tenders on {SERVICE_POINTS} service points under {TRANSFORMERS} transformers;"
        f" {PARTIES} parties; each rep clears a fresh hour"
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-market-run-"))
    backends: list[tuple[str, Any]] = [("SQLite", lambda name: Store(f"sqlite:///{workdir}/{name}.db"))]
    pg_url = os.environ.get("TGW_BENCH_PG_URL")
    if pg_url:
        backends.append(("PostgreSQL", lambda _name: Store(pg_url)))
    rows: list[Row] = []
    try:
        for backend, open_store in backends:
            for n in sizes:
                for kind in ("copper", "network"):
                    store = open_store(f"{kind}-{n}")
                    try:
                        started = time.perf_counter()
                        setup = set_up(backend, store, kind, n)
                        seeded = time.perf_counter() - started
                        rows.append(measure(setup, reps))
                        limit = f", t0 rating {setup.rating_kva:,.0f} kVA" if setup.rating_kva else ""
                        print(f"  .. {backend} N={n:,} {kind}: seeded in {seeded:.1f} s{limit}", flush=True)
                    finally:
                        store.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print_table(rows)
    print(
        "\n  whole = a run by a runner that has run before (parsed tenders kept); (cold) = a fresh runner;\n"
        "  load = store.list of the market's tenders, (SQL) = the bare SQL fetch within it (the rest is JSON ->"
        " models);\n  book+clr = gather + clear (+ network build, overload check, LP); rest = cold - load - book+clr"
        " (transactions,\n  positions, clearing, envelopes, small queries, append); (append) = store.append_many of"
        " one run's envelopes alone;\n  shares are of the cold run; cache = the share the warm runner saves"
    )
    if not pg_url:
        print("  note: PostgreSQL skipped (set TGW_BENCH_PG_URL to a database URL to include it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
