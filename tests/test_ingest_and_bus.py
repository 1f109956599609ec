"""The ingest path (reference checks, all-or-nothing batches) and the in-process bus.

pytest-asyncio is not installed: async code runs under ``asyncio.run`` inside plain tests.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.bus import Bus
from gateway.ingest import Ingestor, Problem, Rejected
from gateway.model import Envelope, MessageKind
from gateway.store import Store, StoredMessage

SPAN = {"start": "2024-01-01T00:00:00Z", "duration": "PT1H"}
LATER = {"start": "2099-01-01T00:00:00Z", "duration": "PT1H"}  # overrides of the past are refused


def env(object_type: str, /, **payload: Any) -> Envelope:
    return Envelope.model_validate({"payload": {"object_type": object_type, **payload}})


def party(pid: str) -> Envelope:
    return env("party", id=pid, name=pid.upper(), roles=["prosumer"])


def location(lid: str, kind: str, parent: str | None = None) -> Envelope:
    return env("location", id=lid, name=lid, kind=kind, parent_id=parent)


def tender(tid: str, party_id: str = "p1", location_id: str = "sp1", **extra: Any) -> Envelope:
    return env(
        "tender",
        id=tid,
        market_id="m1",
        party_id=party_id,
        side="sell",
        location_id=location_id,
        rows=[{"start": "2024-01-01T00:00:00Z", "quantity": "2", "price": "0.2"}],
        **extra,
    )


def control(cid: str, **targets: Any) -> Envelope:
    return env(
        "control",
        id=cid,
        targets=targets,
        kind="limit",
        signal="export_power",
        unit="kW",
        periods=[{"span": SPAN, "value": "3"}],
    )


def seed(store: Store) -> None:
    """A party and a small location tree: pnode n1 > feeder f1 > transformer t1 > service point sp1."""
    Ingestor(store).ingest_sync(
        [
            party("p1"),
            party("op"),
            env("market", id="m1", operator_id="op"),
            location("n1", "pnode"),
            location("f1", "feeder", "n1"),
            location("t1", "transformer", "f1"),
            location("sp1", "service_point", "t1"),
        ],
        protocol="rest",
        peer="setup",
    )


# -- reference checks ---------------------------------------------------------------------------------------


def test_unknown_party_in_a_tender_points_at_its_field(store: Store) -> None:
    seed(store)
    problems = Ingestor(store).check([tender("t1", party_id="p9")])
    # paths are batch-relative, a single message too; the REST edge drops the index when it presents them
    assert problems == [Problem((0, "payload", "party_id"), "unknown party 'p9'")]


def test_every_problem_is_reported_with_its_path(store: Store) -> None:
    seed(store)
    batch = [
        tender("t1", party_id="p9", location_id="sp9"),
        tender("t2", product={"type": "transport", "from_location_id": "sp1", "to_location_id": "x9"}),
        control("c1", party_ids=["p1", "p7"], location_ids=["l5"]),
        env("override", party_id="p1", subject={"kind": "control", "id": "c404"}, mode="opt_out", span=SPAN),
        env("resource", id="r1", name="pv", kind="pv", owner_id="p1", location_id="sp1"),
    ]
    problems = Ingestor(store).check(batch)
    assert [(p.loc, p.msg) for p in problems] == [
        ((0, "payload", "party_id"), "unknown party 'p9'"),
        ((0, "payload", "location_id"), "unknown location 'sp9'"),
        ((1, "payload", "product", "to_location_id"), "unknown location 'x9'"),
        ((2, "payload", "targets", "party_ids", 1), "unknown party 'p7'"),
        ((2, "payload", "targets", "location_ids", 0), "unknown location 'l5'"),
        ((3, "payload", "subject", "id"), "unknown control 'c404'"),
    ]
    assert all(p.type == "reference_error" for p in problems)


def test_references_may_be_satisfied_earlier_in_the_same_batch(store: Store) -> None:
    batch = [
        party("p1"),
        location("n1", "pnode"),
        location("sp1", "service_point", "n1"),
        party("op"),
        env("market", id="m1", operator_id="op"),
        tender("t1"),
        control("c1", party_ids=["p1"]),
        env("override", party_id="p1", subject={"kind": "control", "id": "c1"}, mode="opt_out", span=LATER),
    ]
    assert Ingestor(store).check(batch) == []
    # but not later in it: order is the order of definition
    reordered = [batch[5], *batch[:5]]
    assert [p.loc for p in Ingestor(store).check(reordered)] == [
        (0, "payload", "market_id"),
        (0, "payload", "party_id"),
        (0, "payload", "location_id"),
    ]


def test_location_level_order_is_enforced(store: Store) -> None:
    seed(store)
    ingestor = Ingestor(store)
    # parent in the store
    (problem,) = ingestor.check([location("f2", "feeder", "t1")])
    assert problem.loc == (0, "payload", "parent_id")
    assert problem.msg == "a feeder ('f2') cannot sit under a transformer ('t1')"
    # parent earlier in the batch
    problems = ingestor.check([location("t2", "transformer", "f1"), location("f3", "feeder", "t2")])
    assert [(p.loc, p.msg) for p in problems] == [
        ((1, "payload", "parent_id"), "a feeder ('f3') cannot sit under a transformer ('t2')")
    ]
    # unknown parent
    (problem,) = ingestor.check([location("sp2", "service_point", "nowhere")])
    assert problem.loc == (0, "payload", "parent_id")
    assert "unknown parent 'nowhere'" in problem.msg
    # skipping levels downwards is fine
    assert ingestor.check([location("sp3", "service_point", "f1")]) == []


def test_a_rejected_batch_stores_nothing(store: Store) -> None:
    seed(store)
    before_counts, before_seq = store.counts(), store.last_seq()
    batch = [party("p2"), location("sp2", "service_point", "t1"), tender("t1", party_id="p3")]
    with pytest.raises(Rejected) as info:
        Ingestor(store).ingest_sync(batch, protocol="rest", peer="c1")
    assert info.value.problems == [Problem((2, "payload", "party_id"), "unknown party 'p3'")]
    assert str(info.value) == "2.payload.party_id: unknown party 'p3'"
    assert store.counts() == before_counts
    assert store.last_seq() == before_seq
    assert not store.exists(MessageKind.PARTY, "p2")


def test_ingest_stores_and_deduplicates(store: Store) -> None:
    seed(store)
    ingestor = Ingestor(store)
    first = ingestor.ingest_sync([tender("t1"), party("p2")], protocol="rest", peer="c1")
    assert [m.duplicate for m in first] == [False, False]
    assert first[0].envelope.source is not None
    assert first[0].envelope.source.protocol == "rest"
    assert first[0].envelope.source.peer == "c1"
    # the same content again, freshly wrapped: duplicates by content version
    again = ingestor.ingest_sync([tender("t1"), party("p2")], protocol="rest", peer="c1")
    assert [m.duplicate for m in again] == [True, True]
    assert [m.seq for m in again] == [m.seq for m in first]
    # a changed tender is a new version
    changed = ingestor.ingest_sync([tender("t1", status="cancelled")], protocol="rest", peer="c1")
    assert not changed[0].duplicate
    assert store.get(MessageKind.TENDER, "t1").status.value == "cancelled"


def test_async_ingest_publishes_only_what_is_new(store: Store) -> None:
    seed(store)

    async def main() -> list[StoredMessage]:
        bus = Bus()
        subscription = bus.subscribe([MessageKind.TENDER, MessageKind.PARTY])
        ingestor = Ingestor(store, bus)
        await ingestor.ingest([tender("t1"), party("p2")], protocol="rest", peer="c1")
        await ingestor.ingest([tender("t1"), party("p2")], protocol="rest", peer="c1")  # duplicates
        await ingestor.ingest([tender("t2")], protocol="rest", peer="c1")
        with pytest.raises(Rejected):
            await ingestor.ingest([tender("t3", party_id="nobody")], protocol="rest", peer="c1")
        got = [await asyncio.wait_for(subscription.get(), 1) for _ in range(3)]
        assert bus.published == 3
        subscription.close()
        return got

    got = asyncio.run(main())
    assert [m.envelope.payload.id for m in got] == ["t1", "p2", "t2"]


# -- the bus ------------------------------------------------------------------------------------------------


def stored(seq: int, envelope: Envelope, *, duplicate: bool = False) -> StoredMessage:
    return StoredMessage(seq, envelope.with_source("rest", "c"), datetime(2024, 1, 1, tzinfo=UTC), duplicate)


def run(coroutine: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine(), timeout=10))


def drain(subscription: Any) -> list[StoredMessage]:
    items = []
    while not subscription._queue.empty():
        item = subscription._queue.get_nowait()
        if item is not None:
            items.append(item)
    return items


def test_subscribers_get_only_their_kinds() -> None:
    async def main() -> None:
        bus = Bus()
        tenders = bus.subscribe([MessageKind.TENDER])
        parties_and_controls = bus.subscribe([MessageKind.PARTY, MessageKind.CONTROL])
        everything = bus.subscribe()
        messages = [stored(1, party("p1")), stored(2, tender("t1")), stored(3, control("c1", broadcast=True))]
        bus.publish(messages)
        assert [m.seq for m in drain(tenders)] == [2]
        assert [m.seq for m in drain(parties_and_controls)] == [1, 3]
        assert [m.seq for m in drain(everything)] == [1, 2, 3]

    run(main)


def test_duplicates_are_not_republished() -> None:
    async def main() -> None:
        bus = Bus()
        subscription = bus.subscribe()
        bus.publish([stored(1, party("p1")), stored(1, party("p1"), duplicate=True)])
        bus.publish(stored(1, party("p1"), duplicate=True))
        bus.publish(stored(2, party("p2")))
        assert [m.seq for m in drain(subscription)] == [1, 2]
        assert bus.published == 2

    run(main)


def test_a_full_queue_drops_the_oldest_and_counts() -> None:
    async def main() -> None:
        bus = Bus()
        slow = bus.subscribe(maxsize=3)
        roomy = bus.subscribe()
        bus.publish([stored(seq, party(f"p{seq}")) for seq in range(1, 9)])
        assert slow.dropped == 5
        assert [(await slow.get()).seq for _ in range(3)] == [6, 7, 8]
        assert roomy.dropped == 0
        assert len(drain(roomy)) == 8

    run(main)


def test_a_failing_handler_does_not_stop_later_deliveries(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[int]:
        bus = Bus()
        seen: list[int] = []
        done = asyncio.Event()

        async def handler(message: StoredMessage) -> None:
            seen.append(message.seq)
            if message.seq == 3:
                done.set()
            if message.seq % 2:
                raise RuntimeError(f"boom on {message.seq}")

        other: list[int] = []

        async def other_handler(message: StoredMessage) -> None:
            other.append(message.seq)

        bus.on([MessageKind.PARTY], handler)
        bus.on(None, other_handler)
        bus.publish([stored(1, party("p1")), stored(2, tender("t1")), stored(3, party("p3"))])
        bus.publish(stored(4, party("p4")))
        await asyncio.wait_for(done.wait(), 5)
        for _ in range(50):
            if len(seen) == 3 and len(other) == 4:
                break
            await asyncio.sleep(0.01)
        assert other == [1, 2, 3, 4]
        await bus.close()
        return seen

    assert run(main) == [1, 3, 4]
    failures = [r for r in caplog.records if "failed on message" in r.getMessage()]
    assert len(failures) == 2


def test_publish_threadsafe_from_a_thread() -> None:
    async def main() -> list[int]:
        bus = Bus()
        subscription = bus.subscribe([MessageKind.PARTY])
        with pytest.raises(RuntimeError, match="bind"):
            bus.publish_threadsafe(stored(1, party("p1")))
        bus.bind(asyncio.get_running_loop())

        def worker() -> None:
            bus.publish_threadsafe([stored(1, party("p1")), stored(2, tender("t1"))])
            bus.publish_threadsafe(stored(3, party("p3")))

        thread = threading.Thread(target=worker)
        thread.start()
        got = [(await asyncio.wait_for(subscription.get(), 5)).seq for _ in range(2)]
        thread.join()
        return got

    assert run(main) == [1, 3]


def test_closed_subscription_ends_iteration_and_gets_nothing_more() -> None:
    async def main() -> list[int]:
        bus = Bus()
        subscription = bus.subscribe(maxsize=2)
        bus.publish([stored(1, party("p1")), stored(2, party("p2"))])
        subscription.close()
        bus.publish(stored(3, party("p3")))
        return [m.seq async for m in subscription]

    # closing a full queue makes room for the end marker by dropping the oldest entry
    assert run(main) == [2]
