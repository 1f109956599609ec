"""Store throughput: canonical messages appended per second, SQLite and PostgreSQL, batched and single.

Each figure is the median of >= 5 repetitions, each into a fresh database, of appending the same
pre-built mix of canonical messages (parties, 24-row tenders, controls): ``Store.append_many`` in batches
of 500, and ``Store.append`` one message (one transaction) at a time. Side by side, the ceiling: raw DBAPI
``executemany`` of the same pre-serialised rows into a plain table (sqlite3 with the store's PRAGMAs,
WAL + synchronous=FULL; psycopg), with the same transaction sizes, so the ratio shows what the store's
idempotency lookup, RETURNING, state upserts and SQLAlchemy cost on top of the bare inserts.

Run: ``.venv/bin/python benchmarks/bench_store.py [--quick]``. Not a test: it prints its figures.
PostgreSQL is a private throw-away server from tests/services.py (skipped with a note if not installed).
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy

from gateway.model import Control, Envelope, Party, Source, Tender
from gateway.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from harness import pin_to_one_core
from services import PostgresServer, ServiceUnavailable, start_postgres

TARGET_SQLITE_BATCHED = 5_000
BATCH = 500


def filesystem_of(path: Path) -> str:
    """The file system type ``path`` lives on (fsync costs differ wildly between ext4, tmpfs, overlay...)."""
    best, fstype = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount, kind, *_ = line.split()
            if str(path).startswith(mount) and len(mount) > len(best):
                best, fstype = mount, kind
    except OSError:
        pass
    return fstype


# -- the messages, built once --------------------------------------------------------------------------------


def build_messages(count: int) -> list[Envelope]:
    """A mix as a feeder market sees it: 10% parties, 60% day-ahead tenders (24 rows), 30% DER controls."""
    day = datetime(2025, 7, 1, tzinfo=UTC)
    envelopes = []
    for i in range(count):
        if i % 10 == 0:
            payload: Any = Party(id=f"party-{i}", name=f"Prosumer {i}", roles=["prosumer"], created_at=day)
            source = Source(protocol="rest", peer="portal", native_id=payload.id, version="1")
        elif i % 10 <= 6:
            payload = Tender(
                id=f"tender-{i}",
                market_id="day-ahead-feeder-12",
                party_id=f"party-{i - i % 10}",
                side="sell" if i % 2 else "buy",
                location_id=f"sp-{i % 97}",
                rows=[
                    {
                        "start": day + timedelta(hours=h),
                        "quantity": Decimal(i % 13) + Decimal(h) / 8,
                        "price": Decimal("0.08125") + Decimal(h % 7) / 1000,
                    }
                    for h in range(24)
                ],
                created_at=day,
            )
            source = Source(protocol="ei", peer="vtn.example", native_id=payload.id, version="1")
        else:
            payload = Control(
                id=f"control-{i}",
                targets={"resource_ids": [f"inverter-{i % 211}"]},
                kind="limit",
                signal="export_power",
                unit="kW",
                periods=[
                    {"span": {"start": day + timedelta(minutes=5 * k), "duration": "PT5M"}, "value": str(5 - k % 3)}
                    for k in range(12)
                ],
                created_at=day,
            )
            source = Source(protocol="ieee2030_5", peer="lfdi-3e4f", native_id=payload.id, version="1")
        envelopes.append(
            Envelope(message_id=f"msg-{i}", payload=payload, source=source, created_at=day, received_at=day)
        )
    return envelopes


def raw_rows(envelopes: list[Envelope]) -> list[tuple[Any, ...]]:
    """The rows the store writes to its log, serialised up front (the ceiling pays for no Python-side work)."""
    now = datetime.now(UTC).isoformat()
    rows = []
    for e in envelopes:
        s = e.source
        assert s is not None
        key = hashlib.sha256(e.idempotency_key.encode()).hexdigest()
        rows.append(
            (
                e.message_id,
                key,
                e.message_kind.value,
                e.payload.id,
                s.protocol,
                s.peer,
                s.native_id,
                s.version,
                e.correlation_id,
                e.received_at.isoformat(),
                now,
                e.model_dump_json(),
            )
        )
    return rows


COLUMNS = (
    "message_id, key_hash, kind, entity_id, protocol, peer, native_id, version, correlation_id, received_at,"
    " stored_at, body"
)
_TEXT_COLUMNS = ", ".join(c + " TEXT" for c in COLUMNS.split(", "))
PLAIN_TABLE = {
    "sqlite": f"CREATE TABLE plain (seq INTEGER PRIMARY KEY, {_TEXT_COLUMNS})",
    "postgresql": f"CREATE TABLE plain (seq BIGSERIAL PRIMARY KEY, {_TEXT_COLUMNS})",
}


# -- runners: each returns (messages, seconds) for one repetition on a fresh database ---------------------------


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def run_store(url: str, envelopes: list[Envelope], batched: bool) -> float:
    store = Store(url)
    try:
        started = time.perf_counter()
        if batched:
            for chunk in chunks(envelopes, BATCH):
                store.append_many(chunk)
        else:
            for envelope in envelopes:
                store.append(envelope)
        elapsed = time.perf_counter() - started
        assert store.last_seq() == len(envelopes), "every message must be stored once"
        return len(envelopes) / elapsed
    finally:
        store.close()


def run_sqlite_raw(path: Path, rows: list[tuple[Any, ...]], batched: bool) -> float:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(PLAIN_TABLE["sqlite"])
        conn.commit()
        insert = f"INSERT INTO plain ({COLUMNS}) VALUES ({', '.join('?' * 12)})"
        started = time.perf_counter()
        for chunk in chunks(rows, BATCH if batched else 1):
            conn.executemany(insert, chunk)
            conn.commit()
        elapsed = time.perf_counter() - started
        assert conn.execute("SELECT count(*) FROM plain").fetchone()[0] == len(rows)
        return len(rows) / elapsed
    finally:
        conn.close()


def run_postgres_raw(conninfo: str, rows: list[tuple[Any, ...]], batched: bool) -> float:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        conn.execute(PLAIN_TABLE["postgresql"])
        conn.commit()
        insert = f"INSERT INTO plain ({COLUMNS}) VALUES ({', '.join(['%s'] * 12)})"
        started = time.perf_counter()
        with conn.cursor() as cur:
            for chunk in chunks(rows, BATCH if batched else 1):
                cur.executemany(insert, chunk)
                conn.commit()
        elapsed = time.perf_counter() - started
        assert conn.execute("SELECT count(*) FROM plain").fetchone()[0] == len(rows)
        return len(rows) / elapsed


@dataclass
class Result:
    backend: str
    mode: str
    store: float
    ceiling: float
    messages: int


def measure(repetitions: int, one: Callable[[int], tuple[float, float]]) -> tuple[float, float]:
    """Interleave store and ceiling repetitions; medians of each."""
    store, ceiling = [], []
    for rep in range(repetitions):
        s, c = one(rep)
        store.append(s)
        ceiling.append(c)
    return statistics.median(store), statistics.median(ceiling)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages per repetition (a smoke run)")
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()
    repetitions = max(5, args.repetitions)
    batched_n, single_n = (1_000, 100) if args.quick else (5_000, 400)

    # PostgreSQL first: the server's processes inherit this process's CPU affinity, and they must not share
    # the benchmark's core.
    workdir = Path(tempfile.mkdtemp(prefix="bench-store-"))
    server: PostgresServer | None = None
    note = ""
    try:
        server = start_postgres(workdir)
    except ServiceUnavailable as exc:
        note = f"PostgreSQL skipped: {exc}"
    except Exception as exc:
        note = f"PostgreSQL skipped: could not start a private server ({exc})"
    core = pin_to_one_core()

    print(
        f"bench_store: Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, "
        f"sqlite {sqlite3.sqlite_version}, pinned to core {core}"
    )
    print(f"{repetitions} repetitions each into a fresh database; medians reported; batches of {BATCH}")
    envelopes = build_messages(batched_n)
    rows = raw_rows(envelopes)
    avg = sum(len(r[-1]) for r in rows) / len(rows)
    print(f"messages: {batched_n} batched / {single_n} single; mix 10% party, 60% tender (24 rows), 30% control;")
    print(f"          average body {avg:,.0f} bytes; database files in {workdir} ({filesystem_of(workdir)})")

    results: list[Result] = []
    counter = iter(range(10**6))
    try:
        for batched, n in ((True, batched_n), (False, single_n)):
            mode = f"batched ({BATCH})" if batched else "single"

            def sqlite_once(_: int, batched: bool = batched, n: int = n) -> tuple[float, float]:
                k = next(counter)
                store = run_store(f"sqlite:///{workdir}/store-{k}.db", envelopes[:n], batched)
                raw = run_sqlite_raw(workdir / f"raw-{k}.db", rows[:n], batched)
                return store, raw

            s, c = measure(repetitions, sqlite_once)
            results.append(Result("SQLite (file, WAL, sync=FULL)", mode, s, c, n))

            if server is not None:

                def postgres_once(_: int, batched: bool = batched, n: int = n) -> tuple[float, float]:
                    k = next(counter)
                    assert server is not None
                    store = run_store(server.create_database(f"bench_store_{k}"), envelopes[:n], batched)
                    server.create_database(f"bench_raw_{k}")
                    raw = run_postgres_raw(server.conninfo(f"bench_raw_{k}"), rows[:n], batched)
                    return store, raw

                s, c = measure(repetitions, postgres_once)
                results.append(Result("PostgreSQL (local, fsync=off)", mode, s, c, n))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"  {'backend':<31} {'mode':<14} {'msgs':>6} {'store msg/s':>12} {'ceiling msg/s':>14} {'store/ceiling':>14}")
    for r in results:
        print(
            f"  {r.backend:<31} {r.mode:<14} {r.messages:>6} {r.store:>12,.0f} {r.ceiling:>14,.0f}"
            f" {r.store / r.ceiling:>13.2f}x"
        )
    if note:
        print(f"\n  note: {note}")
    elif server is not None:
        print(
            "\n  note: the test PostgreSQL runs with fsync=off (tests/services.py), so its commits skip the disk flush;"
        )
        print("        the SQLite figures include an fsync per commit (synchronous=FULL)")
    sqlite_batched = next(r.store for r in results if r.backend.startswith("SQLite") and r.mode.startswith("batched"))
    verdict = "PASS" if sqlite_batched >= TARGET_SQLITE_BATCHED else "FAIL"
    print(
        f"\n{verdict}: SQLite batched appends {sqlite_batched:,.0f} messages/s on one core"
        f" (target >= {TARGET_SQLITE_BATCHED:,})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
