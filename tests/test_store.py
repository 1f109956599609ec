"""The durable store, on SQLite and on a real PostgreSQL: every test takes the ``store`` or ``store_url``
fixture, which is parametrized over both backends."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect

from gateway.model import (
    Control,
    Envelope,
    MessageKind,
    Party,
    Role,
    Tender,
)
from gateway.store import STATE_FILTERS, MessageIdConflict, Store, StoreError, redact
from gateway.store.migrate import downgrade, upgrade
from gateway.store.repository import MAX_RAW_REJECTION, envelope_json
from gateway.store.tables import metadata

from services import free_port

# -- builders ----------------------------------------------------------------------------------------------


def party(pid: str, name: str = "Alice", *, peer: str = "peer-1", protocol: str = "rest", **env: Any) -> Envelope:
    payload = Party(id=pid, name=name, roles=["consumer"], created_at=datetime(2024, 1, 1, tzinfo=UTC))
    return Envelope(payload=payload, **env).with_source(protocol, peer)


def tender(
    tid: str, *, party_id: str = "p1", market_id: str = "m1", status: str = "open", price: str = "0.1", **env: Any
) -> Envelope:
    payload = Tender(
        id=tid,
        market_id=market_id,
        party_id=party_id,
        side="buy",
        location_id="l1",
        status=status,
        rows=[{"start": "2024-01-01T00:00:00Z", "quantity": "1.5", "price": price}],
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    return Envelope(payload=payload, **env).with_source("ei", "vtn-1")


def control(cid: str, **env: Any) -> Envelope:
    payload = Control(
        id=cid,
        targets={"broadcast": True},
        kind="limit",
        signal="export_power",
        unit="kW",
        periods=[{"span": {"start": "2024-01-01T00:00:00Z", "duration": "PT1H"}, "value": "5"}],
    )
    return Envelope(payload=payload, **env).with_source("openadr2b", "ven-9")


def log(store: Store) -> list[tuple[int, str]]:
    return [(m.seq, m.envelope.message_id) for m in store.query_messages(limit=10_000)]


# -- appending ---------------------------------------------------------------------------------------------


def test_append_and_get(store: Store) -> None:
    envelope = party("p1", correlation_id="corr-1")
    stored = store.append(envelope)
    assert stored.seq > 0
    assert not stored.duplicate
    assert stored.envelope == envelope
    assert stored.stored_at.tzinfo is not None
    assert stored.stored_at.utcoffset() == timedelta(0)

    fetched = store.get_message(envelope.message_id)
    assert fetched is not None
    assert fetched.seq == stored.seq
    assert fetched.envelope == envelope
    assert fetched.envelope.received_at == envelope.received_at  # timezone-aware on both backends
    assert store.get(MessageKind.PARTY, "p1") == envelope.payload
    assert store.exists(MessageKind.PARTY, "p1")
    assert not store.exists(MessageKind.PARTY, "p2")
    assert not store.exists(MessageKind.TENDER, "p1")
    assert store.get(MessageKind.PARTY, "nobody") is None
    assert store.get_message("no-such-message") is None
    assert store.last_seq() == stored.seq
    assert store.query_messages(correlation_id="corr-1")[0].seq == stored.seq


def test_append_without_source_is_refused(store: Store) -> None:
    bare = Envelope(payload=Party(id="p1", name="A", roles=["consumer"]))
    with pytest.raises(StoreError, match="needs a source"):
        store.append(bare)
    assert store.last_seq() == 0


def test_duplicate_append_returns_the_stored_record(store: Store) -> None:
    first = store.append(party("p1"))
    resent = party("p1")  # same key (protocol, peer, native id, content version), new message id
    assert resent.message_id != first.envelope.message_id
    again = store.append(resent)
    assert again.duplicate
    assert again.seq == first.seq
    assert again.envelope.message_id == first.envelope.message_id  # the stored record, not the resend
    assert store.append(first.envelope).duplicate
    assert log(store) == [(first.seq, first.envelope.message_id)]
    assert store.get_message(resent.message_id) is None


def test_same_key_twice_in_one_batch_is_stored_once(store: Store) -> None:
    a, b = party("p1"), party("p1")
    other = party("p2")
    results = store.append_many([a, other, b])
    assert [r.duplicate for r in results] == [False, False, True]
    assert results[0].seq == results[2].seq
    assert results[0].seq != results[1].seq
    assert results[2].envelope.message_id == a.message_id
    assert len(log(store)) == 2
    assert store.append_many([]) == []


def test_message_id_reuse_fails_the_whole_batch(store: Store) -> None:
    stored = store.append(party("p1"))
    before_log, before_counts = log(store), store.counts()
    reuse = party("p9", message_id=stored.envelope.message_id)  # a different message under a stored id
    batch = [tender("t1"), control("c1"), reuse, party("p2")]
    with pytest.raises(MessageIdConflict, match=f"message_id '{stored.envelope.message_id}' is already used"):
        store.append_many(batch)
    # nothing of the batch was stored, neither in the log nor in the state tables
    assert log(store) == before_log
    assert store.counts() == before_counts
    assert not store.exists(MessageKind.TENDER, "t1")
    assert not store.exists(MessageKind.CONTROL, "c1")
    assert not store.exists(MessageKind.PARTY, "p9")
    assert store.get_message(batch[0].message_id) is None
    # and the store still works afterwards
    assert not store.append(tender("t1")).duplicate


def test_message_id_reused_inside_one_batch_is_a_conflict(store: Store) -> None:
    first = party("p1")
    with pytest.raises(MessageIdConflict):
        store.append_many([first, tender("t1"), party("p2", message_id=first.message_id)])
    assert store.last_seq() == 0
    assert store.counts()["party"] == 0


def test_resending_a_stored_message_under_its_own_id_is_a_duplicate(store: Store) -> None:
    envelope = party("p1")
    store.append(envelope)
    results = store.append_many([tender("t1"), envelope])
    assert [r.duplicate for r in results] == [False, True]


# -- current state ---------------------------------------------------------------------------------------


def test_newest_version_wins(store: Store) -> None:
    store.append(party("p1", "Alice"))
    store.append(party("p1", "Alice B."))
    assert store.get(MessageKind.PARTY, "p1").name == "Alice B."
    store.append_many([party("p2", "one"), party("p2", "two"), party("p2", "three")])
    assert store.get(MessageKind.PARTY, "p2").name == "three"
    # resending an old version is a duplicate and does not roll the state back
    assert store.append(party("p1", "Alice")).duplicate
    assert store.get(MessageKind.PARTY, "p1").name == "Alice B."
    assert [p.id for p in store.list(MessageKind.PARTY)] == ["p1", "p2"]
    assert len(log(store)) == 5


def test_list_filters_on_indexed_columns(store: Store) -> None:
    store.append_many(
        [
            tender("t1", party_id="p1", market_id="m1"),
            tender("t2", party_id="p2", market_id="m1"),
            tender("t3", party_id="p1", market_id="m2", status="filled"),
            tender("t4", party_id="p1", market_id="m1", status="cancelled"),
        ]
    )
    ids = lambda **filters: [t.id for t in store.list(MessageKind.TENDER, filters=filters)]  # noqa: E731
    assert ids() == ["t1", "t2", "t3", "t4"]
    assert ids(party_id="p1") == ["t1", "t3", "t4"]
    assert ids(party_id="p1", market_id="m1") == ["t1", "t4"]
    assert ids(status="filled") == ["t3"]
    assert ids(party_id="nobody") == []
    assert [t.id for t in store.list(MessageKind.TENDER, limit=2, offset=1)] == ["t2", "t3"]
    # a status change moves the tender between filters
    store.append(tender("t1", party_id="p1", market_id="m1", status="filled"))
    assert ids(status="filled") == ["t1", "t3"]


@pytest.mark.parametrize("kind", list(MessageKind))
def test_list_rejects_unknown_filters(store: Store, kind: MessageKind) -> None:
    with pytest.raises(StoreError, match=f"{kind.value} cannot be filtered by 'colour'") as info:
        store.list(kind, filters={"colour": "red"})
    for name in STATE_FILTERS[kind]:
        assert name in str(info.value)
        assert store.list(kind, filters={name: "x"}) == []
    with pytest.raises(StoreError):
        store.list(kind, filters={"body": "x"})  # a column, but not a filter


# -- the log --------------------------------------------------------------------------------------------


def test_query_messages_filters_and_pages(store: Store) -> None:
    t0 = datetime(2024, 6, 1, tzinfo=UTC)
    envelopes = [
        party("p1", peer="a", received_at=t0),
        party("p2", peer="b", received_at=t0 + timedelta(minutes=1)),
        tender("t1", received_at=t0 + timedelta(minutes=2)),
        control("c1", received_at=t0 + timedelta(minutes=3)),
        party("p1", "Alice 2", peer="a", received_at=t0 + timedelta(minutes=4)),
        tender("t2", received_at=t0 + timedelta(minutes=5)),
    ]
    seqs = [r.seq for r in store.append_many(envelopes)]
    assert seqs == sorted(seqs)

    def q(**kwargs: Any) -> list[int]:
        return [m.seq for m in store.query_messages(**kwargs)]

    assert q() == seqs
    assert q(kind=MessageKind.PARTY) == [seqs[0], seqs[1], seqs[4]]
    assert q(kind=MessageKind.TENDER) == [seqs[2], seqs[5]]
    assert q(protocol="openadr2b") == [seqs[3]]
    assert q(protocol="rest", peer="a") == [seqs[0], seqs[4]]
    assert q(peer="vtn-1") == [seqs[2], seqs[5]]
    assert q(entity_id="p1") == [seqs[0], seqs[4]]
    assert q(since=t0 + timedelta(minutes=2)) == seqs[2:]
    assert q(until=t0 + timedelta(minutes=2)) == seqs[:2]
    assert q(since=t0 + timedelta(minutes=1), until=t0 + timedelta(minutes=4), kind=MessageKind.PARTY) == [seqs[1]]
    # since/until given with another offset mean the same instants
    berlin = timezone(timedelta(hours=2))
    assert q(since=(t0 + timedelta(minutes=2)).astimezone(berlin)) == seqs[2:]
    assert q(after_seq=seqs[3]) == seqs[4:]
    assert q(after_seq=seqs[-1]) == []

    paged: list[int] = []
    after = 0
    while page := store.query_messages(after_seq=after, limit=4):
        assert len(page) <= 4
        paged += [m.seq for m in page]
        after = page[-1].seq
    assert paged == seqs
    first = store.query_messages(limit=1)[0]
    assert first.envelope == envelopes[0]
    assert not first.duplicate


# -- rejections and cursors ------------------------------------------------------------------------------


def test_rejections_are_recorded_and_truncated(store: Store) -> None:
    big = "x" * (MAX_RAW_REJECTION + 1000)
    first = store.record_rejection(protocol="rest", peer="c1", reason="bad tender", raw=big, kind="tender")
    second = store.record_rejection(protocol="openadr2b", peer="ven", reason="bad xml", raw=b"<a>" + b"y" * 100_000)
    third = store.record_rejection(protocol="rest", peer="c2", reason="empty")
    assert first < second < third
    rejections = store.rejections()
    assert [r.id for r in rejections] == [third, second, first]  # newest first
    by_id = {r.id: r for r in rejections}
    assert by_id[first].raw == big[:MAX_RAW_REJECTION]
    assert len(by_id[first].raw) == 64 * 1024
    assert by_id[first].kind == "tender"
    assert by_id[first].reason == "bad tender"
    assert by_id[first].at.utcoffset() == timedelta(0)
    assert by_id[second].raw == ("<a>" + "y" * 100_000)[: 64 * 1024]
    assert by_id[second].kind is None
    assert by_id[third].raw is None
    assert [r.id for r in store.rejections(protocol="rest")] == [third, first]
    assert [r.id for r in store.rejections(limit=1)] == [third]
    assert store.last_seq() == 0  # rejections are not messages


def test_cursors_never_move_backwards(store: Store) -> None:
    assert store.get_cursor("mqtt") == 0
    store.set_cursor("mqtt", 5)
    assert store.get_cursor("mqtt") == 5
    store.set_cursor("mqtt", 3)
    assert store.get_cursor("mqtt") == 5
    store.set_cursor("mqtt", 5)
    assert store.get_cursor("mqtt") == 5
    store.set_cursor("mqtt", 2**40)
    assert store.get_cursor("mqtt") == 2**40
    store.set_cursor("api", 1)
    assert store.get_cursor("api") == 1
    assert store.get_cursor("mqtt") == 2**40


# -- durability and concurrency ----------------------------------------------------------------------------


def test_everything_survives_a_restart(store_url: str) -> None:
    envelopes = [party("p1"), party("p2"), tender("t1"), control("c1"), party("p1", "Alice 2")]
    first = Store(store_url)
    stored = first.append_many(envelopes)
    first.set_cursor("bridge", stored[2].seq)
    first.record_rejection(protocol="rest", peer="c", reason="no", raw="{}")
    before = (log(first), first.counts(), first.last_seq())
    first.close()

    second = Store(store_url)  # migrating an up-to-date schema again changes nothing
    try:
        assert (log(second), second.counts(), second.last_seq()) == before
        assert second.get(MessageKind.PARTY, "p1").name == "Alice 2"
        assert second.get(MessageKind.TENDER, "t1") == envelopes[2].payload
        assert second.get_cursor("bridge") == stored[2].seq
        assert [r.reason for r in second.rejections()] == ["no"]
        again = second.append_many(envelopes)
        assert all(r.duplicate for r in again)
        assert [r.seq for r in again] == [r.seq for r in stored]
        assert second.last_seq() == before[2]
        assert not second.append(party("p3")).duplicate
    finally:
        second.close()


def test_concurrent_overlapping_appends_store_each_key_once(store: Store) -> None:
    envelopes = [party(f"p{i}") if i % 3 else tender(f"t{i}") for i in range(120)]
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        rnd = random.Random(n)
        try:
            start.wait()
            for _ in range(6):
                first = rnd.randrange(0, 90)
                batch = envelopes[first : first + 30]
                if n % 2:
                    # the same keys under fresh message ids (a peer that re-wraps what it resends); the other
                    # threads resend the very same envelopes, so they also race on the message id
                    batch = [e.model_copy(update={"message_id": f"{e.message_id}-{n}-{rnd.random()}"}) for e in batch]
                got = store.append_many(batch)
                with lock:
                    results.extend(got)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    entries = store.query_messages(limit=10_000)
    keys = [m.envelope.idempotency_key for m in entries]
    assert len(keys) == len(set(keys)), "a key was stored twice"
    assert len({m.seq for m in entries}) == len(entries)
    new = [r for r in results if not r.duplicate]
    assert sorted(r.seq for r in new) == [m.seq for m in entries]  # each stored message was new exactly once
    seq_of_key = {m.envelope.idempotency_key: m.seq for m in entries}
    assert all(seq_of_key[r.envelope.idempotency_key] == r.seq for r in results)
    assert store.counts()["party"] + store.counts()["tender"] == len(entries)


# -- schema ------------------------------------------------------------------------------------------------


def schema_diff(store: Store) -> list[Any]:
    with store.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


def test_migrated_schema_matches_the_metadata(store: Store) -> None:
    assert schema_diff(store) == []


def test_downgrade_to_base_and_upgrade_again(store: Store) -> None:
    store.append(party("p1"))
    downgrade(store.engine, "base")
    tables = set(inspect(store.engine).get_table_names())
    assert tables <= {"alembic_version"}
    upgrade(store.engine, "head")
    assert set(metadata.tables) <= set(inspect(store.engine).get_table_names())
    assert schema_diff(store) == []
    assert store.last_seq() == 0
    assert not store.append(party("p1")).duplicate


def test_unreachable_database_raises_store_error_without_password(store_url: str, tmp_path: Any) -> None:
    if store_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path}/no/such/dir/store.db"
        secret = None
    else:
        secret = "s3cr3t-Passw0rd"
        url = f"postgresql://tgw:{secret}@127.0.0.1:{free_port()}/tgw"
    with pytest.raises(StoreError) as info:
        Store(url)
    message = str(info.value)
    assert "cannot reach the database" in message
    if secret is not None:
        assert secret not in message
        assert "127.0.0.1" in message
        assert "***" in message
        assert secret not in redact(url)


def test_redact_hides_passwords(store_url: str) -> None:
    url = store_url.replace("postgres@", "postgres:hunter2@") if "postgres" in store_url else store_url
    assert "hunter2" not in redact(url)
    assert redact("not a url at all ::") == "<unparseable database URL>"


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(min_size=1, max_size=40).filter(lambda t: t.strip() == t and t),
    correlation=st.none() | st.text(max_size=30),
    identities=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)
def test_spliced_envelope_json_equals_pydantics(name: str, correlation: str | None, identities: dict[str, str]) -> None:
    # The store builds the envelope's JSON from the payload's (serialising it once); it must be the same text.
    party = Party(id="p-1", name=name, roles=[Role.PROSUMER], identities=identities)
    envelope = Envelope(payload=party, correlation_id=correlation).with_source("api", 'peer "x" ü')
    assert envelope_json(envelope, envelope.payload.model_dump_json()) == envelope.model_dump_json()


def test_revision_0002_fills_the_new_columns_of_rows_stored_before_it(store_url: str) -> None:
    """Rows written under 0001 get their interval_start / tender_id / clearing_id from their JSON bodies."""
    import json

    from sqlalchemy import text

    store = Store(store_url, migrate=False)
    upgrade(store.engine, "0001")
    body = {
        "object_type": "transaction",
        "id": "tx-old",
        "tender_id": "t-old",
        "clearing_id": None,
        "interval": {"start": "2030-01-07T08:00:00Z", "duration": "PT1H"},
    }
    delivery = {"object_type": "delivery", "interval": {"start": "2030-01-07T09:00:00-08:00", "duration": "PT1H"}}
    with store.engine.begin() as conn:
        for table, row_id, payload in (("state_transaction", "tx-old", body), ("state_delivery", "d-old", delivery)):
            conn.execute(
                text(f"INSERT INTO {table} (id, message_seq, updated_at, body) VALUES (:id, 1, :at, :body)"),
                {"id": row_id, "at": datetime(2030, 1, 1, tzinfo=UTC), "body": json.dumps(payload)},
            )
    upgrade(store.engine, "head")
    with store.engine.connect() as conn:
        tx = conn.execute(text("SELECT tender_id, clearing_id, interval_start FROM state_transaction")).one()
        delivered = conn.execute(text("SELECT interval_start FROM state_delivery")).scalar_one()
    assert tuple(tx) == ("t-old", None, "2030-01-07T08:00:00+00:00")
    assert delivered == "2030-01-07T17:00:00+00:00"  # normalised to UTC, so ranges compare as text
    store.close()


def _dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the log and the state tables as the database holds it (raw text, no type processing)."""
    tables = ["messages", *(f"state_{kind.value}" for kind in MessageKind)]
    with store.engine.connect() as conn:
        raw = conn.connection.driver_connection  # type: ignore[union-attr]
        return {t: sorted(raw.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}


def test_sqlite_cursor_path_stores_what_the_core_path_stores(tmp_path: Any) -> None:
    """SQLite appends go through the DBAPI cursor (``sqlite_append``) for speed; PostgreSQL keeps SQLAlchemy Core.
    Both must write the same bytes: the same batches through each path give equal tables (stored_at aside)."""
    batches = [
        [party("p1"), tender("t1"), control("c1")],
        [tender("t1", status="cancelled", **{"message_id": "m-t1-2"}), party("p2", "Bob")],
        [party("p1"), tender("t2", price="0.25"), tender("t2", price="0.25")],  # a duplicate, a repeat in the batch
    ]
    fast = Store(f"sqlite:///{tmp_path}/fast.db")
    core = Store(f"sqlite:///{tmp_path}/core.db")
    core._sqlite = None  # the PostgreSQL path, on SQLite
    assert fast._sqlite is not None
    outcomes = []
    for batch in batches:
        for store in (fast, core):
            outcomes.append([(r.seq, r.duplicate, r.envelope.message_id) for r in store.append_many(batch)])
    assert outcomes[0::2] == outcomes[1::2]
    frozen = "2000-01-01 00:00:00.000000"
    for store in (fast, core):
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE messages SET stored_at = ?", (frozen,))
            for kind in MessageKind:
                conn.exec_driver_sql(f"UPDATE state_{kind.value} SET updated_at = ?", (frozen,))
    assert _dump(fast) == _dump(core)
    assert _dump(fast)["state_tender"]  # the comparison saw rows
    fast.close()
    core.close()


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9000, 1, 1)),
    offset_minutes=st.integers(min_value=-23 * 60, max_value=23 * 60),
)
def test_sqlite_timestamp_text_is_what_sqlalchemy_writes(moment: datetime, offset_minutes: int) -> None:
    # The cursor path formats timestamps itself (one C call); SQLAlchemy's processors must give the same text.
    from sqlalchemy.dialects import sqlite

    from gateway.store.sqlite_append import sqlite_utc_text
    from gateway.store.tables import messages

    dialect = sqlite.dialect()
    core = messages.c.received_at.type.dialect_impl(dialect).bind_processor(dialect)
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    assert sqlite_utc_text(aware) == core(aware)
