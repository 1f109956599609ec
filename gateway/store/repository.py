"""The repository: the one interface through which everything reads and writes persistent state.

Append is idempotent on the envelope's key (protocol, peer, native id, version): appending a message that
is already stored returns the stored record, marked as a duplicate, and changes nothing. Appends are
batched in one transaction so a batch is stored entirely or not at all, and a message is durable when
``append`` returns, which is when an adapter may acknowledge it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.pool import StaticPool

from gateway.model import PAYLOAD_TYPES, CanonicalObject, Envelope, MessageKind, utc_now
from gateway.store.sqlite_append import SqliteAppender
from gateway.store.tables import STATE_TABLES, adapter_state, cursors, messages, rejections

MAX_RAW_REJECTION = 64 * 1024
_IN_CHUNK = 500  # bound on IN (...) lists: SQLite caps bound parameters per statement
_APPEND_ATTEMPTS = 10  # a lost race with a concurrent writer is retried; each retry sees more stored


_IN_CHUNK = 500
"""Ids per IN (...) query: well under SQLite's bound-parameter limit."""


class StoreError(Exception):
    """A store operation failed for a reason the caller can act on."""


class MessageIdConflict(StoreError):
    """A message id was reused for a different message (a different idempotency key)."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as the log holds it: its place in the log and whether this append was a duplicate."""

    seq: int
    envelope: Envelope
    stored_at: datetime
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Rejection:
    id: int
    at: datetime
    protocol: str
    peer: str
    kind: str | None
    reason: str
    raw: str | None


def key_hash(envelope: Envelope) -> str:
    return hashlib.sha256(envelope.idempotency_key.encode()).hexdigest()


def normalise_url(url: str) -> str:
    """Accept the URLs people type (postgres://, postgresql://) and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; synchronous=FULL makes each commit durable before append
    # returns (the acknowledgement promise), which batching keeps affordable.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_store_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if in_memory else None,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


class Store:
    """Persistent state behind one interface: SQLite by default, PostgreSQL by URL."""

    def __init__(self, url: str = "sqlite:///tgw.db", *, migrate: bool = True) -> None:
        self.url = normalise_url(url)
        try:
            self.engine = create_store_engine(self.url)
        except Exception as exc:  # bad URL, missing driver
            raise StoreError(f"cannot open the database at {redact(self.url)}: {exc}") from exc
        self._insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        self._sqlite = SqliteAppender(self.engine.dialect) if self.engine.dialect.name == "sqlite" else None
        if migrate:
            self.migrate()

    def migrate(self) -> None:
        """Bring the schema to the newest revision (alembic)."""
        from gateway.store.migrate import upgrade

        try:
            upgrade(self.engine)
        except OperationalError as exc:
            raise StoreError(f"cannot reach the database at {redact(self.url)}: {exc.orig}") from exc

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
            return True
        except Exception:
            return False

    # -- appending -------------------------------------------------------------------------------------

    def append(self, envelope: Envelope) -> StoredMessage:
        return self.append_many([envelope])[0]

    def append_many(self, envelopes: Sequence[Envelope]) -> list[StoredMessage]:
        """Store a batch atomically; return one record per input, in order (duplicates marked)."""
        if not envelopes:
            return []
        prepared = [_Prepared.of(envelope) for envelope in envelopes]
        for attempt in range(_APPEND_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    return self._append(conn, prepared)
            except IntegrityError as exc:
                # Either a message id reused for other content (the caller's error), or another writer stored
                # one of these messages between our lookup and our insert (look again: it is a duplicate now).
                # Which constraint fired does not tell them apart: a concurrent writer storing the very same
                # message trips the message_id constraint too. So look at what is stored.
                conflict = self._message_id_conflict(prepared)
                if conflict is not None:
                    raise MessageIdConflict(conflict) from exc
                if attempt == _APPEND_ATTEMPTS - 1:
                    raise StoreError(
                        f"append kept colliding with concurrent writers: {_integrity_reason(exc)}"
                    ) from exc
        raise AssertionError("unreachable")

    def _message_id_conflict(self, prepared: list[_Prepared]) -> str | None:
        """Why the batch reuses a message id for a different message, or None if it does not."""
        hashes = list(dict.fromkeys(p.key_hash for p in prepared))
        ids = list(dict.fromkeys(p.envelope.message_id for p in prepared))
        stored_keys: set[str] = set()
        owner: dict[str, str] = {}  # message_id -> key_hash, stored first, then the batch's new messages
        with self.engine.connect() as conn:
            for start in range(0, len(hashes), _IN_CHUNK):
                chunk = hashes[start : start + _IN_CHUNK]
                stored_keys.update(
                    conn.execute(select(messages.c.key_hash).where(messages.c.key_hash.in_(chunk))).scalars()
                )
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                query = select(messages.c.message_id, messages.c.key_hash).where(messages.c.message_id.in_(chunk))
                owner.update({message_id: key for message_id, key in conn.execute(query)})
        for item in prepared:
            if item.key_hash in stored_keys:
                continue  # a duplicate (stored, or earlier in this batch): its message id is irrelevant
            stored_keys.add(item.key_hash)
            message_id = item.envelope.message_id
            if owner.setdefault(message_id, item.key_hash) != item.key_hash:
                return (
                    f"message_id '{message_id}' is already used by a different message;"
                    " use a new message_id for new content"
                )
        return None

    def _append(self, conn: Connection, prepared: list[_Prepared]) -> list[StoredMessage]:
        if self._sqlite is not None:
            return self._append_sqlite(conn, self._sqlite, prepared)
        existing = self._existing(conn, [p.key_hash for p in prepared])
        now = utc_now()
        new = _new_items(prepared, existing)
        seqs: dict[str, int] = {}
        if new:
            # A plain executemany, then one query for the sequence numbers: INSERT ... RETURNING with
            # guaranteed order costs a round trip per row on SQLite, which halved the batched append rate.
            rows = [item.message_row(now) for item in new.values()]
            if len(rows) == 1:  # one row: RETURNING has no order to keep and saves the second query
                seqs = {
                    rows[0]["key_hash"]: conn.execute(insert(messages).returning(messages.c.seq), rows[0]).scalar_one()
                }
            else:
                conn.execute(insert(messages), rows)
                seqs = self._seqs(conn, list(new))
            self._update_state(conn, [(item, seqs[key]) for key, item in new.items()], now)
        return _records(prepared, existing, seqs, now)

    def _append_sqlite(
        self, conn: Connection, statements: SqliteAppender, prepared: list[_Prepared]
    ) -> list[StoredMessage]:
        """``_append`` for SQLite, through the cursor (see ``sqlite_append``): the same steps and outcomes."""
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            existing: dict[str, StoredMessage] = {}
            unique = list(dict.fromkeys(p.key_hash for p in prepared))
            for start in range(0, len(unique), _IN_CHUNK):
                for seq, key, stored_at, body in statements.existing(cursor, unique[start : start + _IN_CHUNK]):
                    existing[key] = StoredMessage(seq, Envelope.model_validate_json(body), stored_at, duplicate=True)
            now = utc_now()
            new = _new_items(prepared, existing)
            seqs: dict[str, int] = {}
            if new:
                numbers = statements.insert_messages(cursor, [item.message_row(now) for item in new.values()])
                seqs = dict(zip(new, numbers, strict=True))
                for kind, rows in _state_rows([(item, seqs[key]) for key, item in new.items()], now).items():
                    statements.upsert_state(cursor, kind, rows)
        except sqlite3.IntegrityError as exc:  # what append_many's retry and conflict report understand
            raise IntegrityError("append", None, exc) from exc
        finally:
            cursor.close()
        return _records(prepared, existing, seqs, now)

    def _seqs(self, conn: Connection, hashes: list[str]) -> dict[str, int]:
        seqs: dict[str, int] = {}
        for start in range(0, len(hashes), _IN_CHUNK):
            chunk = hashes[start : start + _IN_CHUNK]
            query = select(messages.c.key_hash, messages.c.seq).where(messages.c.key_hash.in_(chunk))
            seqs.update({key: seq for key, seq in conn.execute(query)})
        return seqs

    def _existing(self, conn: Connection, hashes: list[str]) -> dict[str, StoredMessage]:
        found: dict[str, StoredMessage] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            query = select(messages.c.seq, messages.c.key_hash, messages.c.stored_at, messages.c.body).where(
                messages.c.key_hash.in_(chunk)
            )
            for seq, key, stored_at, body in conn.execute(query):
                found[key] = StoredMessage(seq, Envelope.model_validate_json(body), stored_at, duplicate=True)
        return found

    def _update_state(self, conn: Connection, items: list[tuple[_Prepared, int]], now: datetime) -> None:
        for kind, rows in _state_rows(items, now).items():
            table = STATE_TABLES[kind].table
            stmt = self._insert(table)
            stmt = stmt.on_conflict_do_update(
                index_elements=[table.c.id],
                set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name != "id"},
                # Concurrent writers may commit out of log order; the newest log entry always wins.
                where=table.c.message_seq < stmt.excluded.message_seq,
            )
            conn.execute(stmt, rows)

    # -- reading ---------------------------------------------------------------------------------------

    def get_message(self, message_id: str) -> StoredMessage | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(messages.c.seq, messages.c.stored_at, messages.c.body).where(messages.c.message_id == message_id)
            ).first()
        return None if row is None else StoredMessage(row.seq, Envelope.model_validate_json(row.body), row.stored_at)

    def query_messages(
        self,
        *,
        kind: MessageKind | None = None,
        protocol: str | None = None,
        peer: str | None = None,
        entity_id: str | None = None,
        correlation_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[StoredMessage]:
        """Messages in log order, filtered; ``after_seq`` pages through the log (or resumes a consumer)."""
        query = select(messages.c.seq, messages.c.stored_at, messages.c.body).where(messages.c.seq > after_seq)
        for column, value in (
            (messages.c.kind, kind.value if kind else None),
            (messages.c.protocol, protocol),
            (messages.c.peer, peer),
            (messages.c.entity_id, entity_id),
            (messages.c.correlation_id, correlation_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(messages.c.received_at >= since)
        if until is not None:
            query = query.where(messages.c.received_at < until)
        query = query.order_by(messages.c.seq).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [StoredMessage(r.seq, Envelope.model_validate_json(r.body), r.stored_at) for r in rows]

    def last_seq(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.coalesce(func.max(messages.c.seq), 0))).scalar_one()

    def get(self, kind: MessageKind, entity_id: str) -> CanonicalObject | None:
        """The current state of one object (the payload of its newest message)."""
        table = STATE_TABLES[kind].table
        with self.engine.connect() as conn:
            body = conn.execute(select(table.c.body).where(table.c.id == entity_id)).scalar_one_or_none()
        return None if body is None else PAYLOAD_TYPES[kind].model_validate_json(body)  # type: ignore[return-value]

    def exists(self, kind: MessageKind, entity_id: str) -> bool:
        table = STATE_TABLES[kind].table
        with self.engine.connect() as conn:
            return conn.execute(select(table.c.id).where(table.c.id == entity_id)).first() is not None

    def list(
        self,
        kind: MessageKind,
        *,
        filters: dict[str, str] | None = None,
        ranges: dict[str, tuple[str | None, str | None]] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[CanonicalObject]:
        """Current objects of one kind, filtered on the kind's indexed columns, in id order (``limit`` None: all).

        ``ranges`` bounds a column from below (inclusive) and above (exclusive), e.g. ``interval_start``: those
        columns hold UTC ISO text, which sorts as time does.
        """
        state = STATE_TABLES[kind]
        query = select(state.table.c.body)
        for name in (*(filters or {}), *(ranges or {})):
            if name not in state.columns:
                raise StoreError(f"{kind.value} cannot be filtered by '{name}'; try one of {sorted(state.columns)}")
        for name, value in (filters or {}).items():
            query = query.where(state.table.c[name] == value)
        for name, (low, high) in (ranges or {}).items():
            if low is not None:
                query = query.where(state.table.c[name] >= low)
            if high is not None:
                query = query.where(state.table.c[name] < high)
        query = query.order_by(state.table.c.id).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            bodies = conn.execute(query).scalars().all()
        model = PAYLOAD_TYPES[kind]
        return [model.model_validate_json(body) for body in bodies]  # type: ignore[misc]

    def versions(self, kind: MessageKind, *, filters: dict[str, str] | None = None) -> dict[str, int]:
        """id -> log sequence of the current version, for the objects that match: lets a reader that keeps parsed
        objects re-read only the ones that changed."""
        state = STATE_TABLES[kind]
        query = select(state.table.c.id, state.table.c.message_seq)
        for name, value in (filters or {}).items():
            if name not in state.columns:
                raise StoreError(f"{kind.value} cannot be filtered by '{name}'; try one of {sorted(state.columns)}")
            query = query.where(state.table.c[name] == value)
        with self.engine.connect() as conn:
            return {row_id: seq for row_id, seq in conn.execute(query).all()}

    def revised(self, kinds: Iterable[MessageKind]) -> set[tuple[MessageKind, str]]:
        """The (kind, id) of the objects of these kinds that the log holds more than one version of: one grouped
        query, no bodies, for a reader that rebuilds only those objects' histories from the log."""
        query = (
            select(messages.c.kind, messages.c.entity_id)
            .where(messages.c.kind.in_([kind.value for kind in kinds]))
            .group_by(messages.c.kind, messages.c.entity_id)
            .having(func.count() > 1)
        )
        with self.engine.connect() as conn:
            return {(MessageKind(kind), entity_id) for kind, entity_id in conn.execute(query)}

    def get_many(self, kind: MessageKind, ids: Sequence[str]) -> list[CanonicalObject]:
        """The current objects with these ids (those that exist), in id order."""
        state = STATE_TABLES[kind]
        model = PAYLOAD_TYPES[kind]
        bodies: list[str] = []
        with self.engine.connect() as conn:
            for at in range(0, len(ids), _IN_CHUNK):
                chunk = list(ids[at : at + _IN_CHUNK])
                query = select(state.table.c.body).where(state.table.c.id.in_(chunk)).order_by(state.table.c.id)
                bodies.extend(conn.execute(query).scalars().all())
        return [model.model_validate_json(body) for body in bodies]  # type: ignore[misc]

    def values(
        self,
        kind: MessageKind,
        column: str,
        *,
        filters: dict[str, str] | None = None,
        ranges: dict[str, tuple[str | None, str | None]] | None = None,
        distinct: bool = False,
    ) -> list[str]:
        """One indexed column of the current objects that match, without parsing their bodies."""
        state = STATE_TABLES[kind]
        for name in (column, *(filters or {}), *(ranges or {})):
            if name not in state.columns:
                raise StoreError(f"{kind.value} has no indexed column '{name}'")
        query = select(state.table.c[column])
        if distinct:
            query = query.distinct()
        for name, value in (filters or {}).items():
            query = query.where(state.table.c[name] == value)
        for name, (low, high) in (ranges or {}).items():
            if low is not None:
                query = query.where(state.table.c[name] >= low)
            if high is not None:
                query = query.where(state.table.c[name] < high)
        with self.engine.connect() as conn:
            return [v for v in conn.execute(query).scalars().all() if v is not None]

    # -- rejections and cursors --------------------------------------------------------------------------

    def record_rejection(
        self, *, protocol: str, peer: str, reason: str, raw: str | bytes | None = None, kind: str | None = None
    ) -> int:
        """Keep bad input and why it was refused, for the sender's operator and for audits."""
        if isinstance(raw, bytes):
            raw = raw[:MAX_RAW_REJECTION].decode("utf-8", errors="replace")
        elif raw is not None:
            raw = raw[:MAX_RAW_REJECTION]
        row = {"at": utc_now(), "protocol": protocol, "peer": peer, "kind": kind, "reason": reason, "raw": raw}
        with self.engine.begin() as conn:
            return conn.execute(insert(rejections).returning(rejections.c.id), row).scalar_one()

    def rejections(self, *, limit: int = 100, protocol: str | None = None) -> list[Rejection]:
        query = select(rejections).order_by(rejections.c.id.desc()).limit(limit)
        if protocol is not None:
            query = query.where(rejections.c.protocol == protocol)
        with self.engine.connect() as conn:
            return [Rejection(**row._mapping) for row in conn.execute(query)]

    def get_cursor(self, name: str) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(cursors.c.seq).where(cursors.c.name == name)).scalar_one_or_none()
        return value or 0

    def set_cursor(self, name: str, seq: int) -> None:
        """Remember how far a consumer (e.g. the MQTT bridge) got; it never moves backwards."""
        now = utc_now()
        with self.engine.begin() as conn:
            stmt = self._insert(cursors).values(name=name, seq=seq, updated_at=now)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[cursors.c.name],
                    set_={"seq": stmt.excluded.seq, "updated_at": stmt.excluded.updated_at},
                    where=cursors.c.seq < stmt.excluded.seq,
                )
            )

    def get_state(self, protocol: str, peer: str, name: str) -> dict[str, Any] | None:
        """An adapter's record about a peer (see ``tables.adapter_state``), or None."""
        t = adapter_state
        query = select(t.c.body).where(t.c.protocol == protocol, t.c.peer == peer, t.c.name == name)
        with self.engine.connect() as conn:
            body = conn.execute(query).scalar_one_or_none()
        return None if body is None else json.loads(body)

    def list_state(self, protocol: str, name: str) -> dict[str, dict[str, Any]]:
        """peer -> record, for every peer of ``protocol`` that has a record called ``name``."""
        t = adapter_state
        query = select(t.c.peer, t.c.body).where(t.c.protocol == protocol, t.c.name == name)
        with self.engine.connect() as conn:
            return {peer: json.loads(body) for peer, body in conn.execute(query).all()}

    def peer_state(self, protocol: str, peer: str, prefix: str = "") -> dict[str, dict[str, Any]]:
        """name -> record, for every record of one peer whose name starts with ``prefix`` (a 2030.5 device's
        subscriptions are ``sub/<id>``, its DER resources ``der/<n>/<kind>``)."""
        t = adapter_state
        query = select(t.c.name, t.c.body).where(t.c.protocol == protocol, t.c.peer == peer)
        if prefix:
            query = query.where(t.c.name.startswith(prefix, autoescape=True))
        with self.engine.connect() as conn:
            return {name: json.loads(body) for name, body in conn.execute(query.order_by(t.c.name)).all()}

    def prefixed_state(self, protocol: str, prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(peer, name, record) for every record of ``protocol`` whose name starts with ``prefix``, every peer
        (the 2030.5 server loads all subscriptions, ``sub/<id>``, at start)."""
        t = adapter_state
        query = select(t.c.peer, t.c.name, t.c.body).where(
            t.c.protocol == protocol, t.c.name.startswith(prefix, autoescape=True)
        )
        with self.engine.connect() as conn:
            return [(peer, name, json.loads(body)) for peer, name, body in conn.execute(query).all()]

    def put_state(self, protocol: str, peer: str, name: str, record: dict[str, Any] | None) -> None:
        """Replace (or, with None, delete) an adapter's record, durably before returning."""
        t = adapter_state
        with self.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.protocol == protocol, t.c.peer == peer, t.c.name == name))
            if record is not None:
                body = json.dumps(record, sort_keys=True, default=str)
                conn.execute(
                    t.insert().values(protocol=protocol, peer=peer, name=name, body=body, updated_at=utc_now())
                )

    def counts(self) -> dict[str, int]:
        """Current objects per kind, for summaries and health."""
        with self.engine.connect() as conn:
            return {
                kind.value: conn.execute(select(func.count()).select_from(state.table)).scalar_one()
                for kind, state in STATE_TABLES.items()
            }


@dataclass(slots=True)
class _Prepared:
    envelope: Envelope
    kind: MessageKind
    key_hash: str
    body: str
    payload_json: str

    @classmethod
    def of(cls, envelope: Envelope) -> _Prepared:
        if envelope.source is None:
            raise StoreError("a message needs a source before it is stored (see Envelope.with_source)")
        payload_json = envelope.payload.model_dump_json()
        return cls(
            envelope, envelope.message_kind, key_hash(envelope), envelope_json(envelope, payload_json), payload_json
        )

    def message_row(self, now: datetime) -> dict[str, Any]:
        env = self.envelope
        source = env.source
        assert source is not None
        return {
            "message_id": env.message_id,
            "key_hash": self.key_hash,
            "kind": self.kind.value,
            "entity_id": env.payload.id,
            "protocol": source.protocol,
            "peer": source.peer,
            "native_id": source.native_id,
            "version": source.version,
            "correlation_id": env.correlation_id,
            "received_at": env.received_at,
            "stored_at": now,
            "body": self.body,
        }


def _new_items(prepared: list[_Prepared], existing: dict[str, StoredMessage]) -> dict[str, _Prepared]:
    """The batch's messages that are not stored yet, by key hash, each once (first appearance)."""
    new: dict[str, _Prepared] = {}
    for item in prepared:
        if item.key_hash not in existing and item.key_hash not in new:
            new[item.key_hash] = item
    return new


def _state_rows(items: list[tuple[_Prepared, int]], now: datetime) -> dict[MessageKind, list[dict[str, Any]]]:
    """Current-state rows per kind for newly stored messages: the batch's last version of an object counts."""
    latest: dict[tuple[MessageKind, str], tuple[_Prepared, int]] = {}
    for item, seq in items:
        latest[(item.kind, item.envelope.payload.id)] = (item, seq)
    by_kind: dict[MessageKind, list[dict[str, Any]]] = {}
    for (kind, _), (item, seq) in latest.items():
        by_kind.setdefault(kind, []).append(STATE_TABLES[kind].row(item.envelope.payload, item.payload_json, seq, now))
    return by_kind


def _records(
    prepared: list[_Prepared], existing: dict[str, StoredMessage], seqs: dict[str, int], now: datetime
) -> list[StoredMessage]:
    """One record per input, in order: stored ones as duplicates, new ones with their sequence numbers."""
    results: list[StoredMessage] = []
    for item in prepared:
        if item.key_hash in existing:
            results.append(existing[item.key_hash])
        else:
            record = StoredMessage(seqs[item.key_hash], item.envelope, now, duplicate=False)
            # A key that appears twice in one batch is stored once; its second appearance is a duplicate.
            existing[item.key_hash] = _as_duplicate(record)
            results.append(record)
    return results


def envelope_json(envelope: Envelope, payload_json: str) -> str:
    """``envelope.model_dump_json()``, reusing the payload's JSON instead of serialising it a second time.

    The payload is the envelope's last field and pydantic writes compact JSON, so the envelope is its
    other fields' object with the payload member appended (a test holds the two forms equal).
    """
    head = envelope.model_dump_json(exclude={"payload"})
    return f'{head[:-1]},"payload":{payload_json}}}'


def _as_duplicate(record: StoredMessage) -> StoredMessage:
    return StoredMessage(record.seq, record.envelope, record.stored_at, duplicate=True)


def _integrity_reason(exc: IntegrityError) -> str:
    text = str(exc.orig)
    if "message_id" in text:
        return "message_id is already used by a different message; use a new message_id for new content"
    return f"the message conflicts with a stored one: {text.splitlines()[0]}"


def redact(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"
