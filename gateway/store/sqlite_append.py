"""The append path's statements for SQLite, executed straight on the DBAPI cursor.

Why not SQLAlchemy Core here, as everywhere else in the store: SQLite runs in this process, so an append costs
what Python spends on it, and Core's per-statement work (cache key, compiled-parameter construction, a bind
processor call per value) was most of it. Measured on a file database with synchronous=FULL
(``benchmarks/bench_store.py``): a transaction of the four append statements cost about 550 us of CPU through
Core against about 100 us through the cursor, and each row about 45 us against under 10. Device edges answer only
after the append, so this is their ceiling.

The statements are compiled once per store by SQLAlchemy from the same ``Table`` objects (so names, columns and
the upsert's newest-log-entry-wins rule cannot drift from the schema), and values pass through the same column
types' bind and result processors, so what is stored is byte for byte what Core stores. The one exception is a
timestamp, which is written by :func:`sqlite_utc_text` (one C call) instead of the two Python-level processors
UtcDateTime and SQLAlchemy's DATETIME chain (three per row, ~3 us each); a test holds the two to the same text.
PostgreSQL keeps the Core path: there an append is dominated by round trips, not Python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Dialect, Table, insert, select
from sqlalchemy.dialects import sqlite

from gateway.model import MessageKind
from gateway.store.tables import STATE_TABLES, UtcDateTime, messages

Processor = Callable[[Any], Any] | None

_MESSAGE_COLUMNS = [c.name for c in messages.columns if c.name != "seq"]


def _positional(statement: Any, dialect: Dialect) -> tuple[str, list[str]]:
    """SQL text with ``?`` placeholders and the parameter names in placeholder order."""
    compiled = statement.compile(dialect=dialect)
    return str(compiled), list(compiled.positiontup or [])


def sqlite_utc_text(value: datetime) -> str:
    """A timestamp as SQLAlchemy's SQLite DATETIME stores a UtcDateTime: UTC, naive, microseconds always shown."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _processors(table: Table, names: Sequence[str], dialect: Dialect) -> list[Processor]:
    return [
        sqlite_utc_text
        if isinstance(table.c[name].type, UtcDateTime)
        else table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        for name in names
    ]


class SqliteAppender:
    """Prepared append statements for one SQLite dialect; every method runs on a caller's cursor, inside the
    caller's transaction."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        sql, names = _positional(insert(messages).values({name: None for name in _MESSAGE_COLUMNS}), dialect)
        self._insert_sql, self._insert_names = sql, names
        self._insert_processors = _processors(messages, names, dialect)
        self._stored_at = messages.c.stored_at.type.dialect_impl(dialect).result_processor(dialect, None)
        self._select_head = str(
            select(messages.c.seq, messages.c.key_hash, messages.c.stored_at, messages.c.body).compile(dialect=dialect)
        )
        self._upserts: dict[MessageKind, tuple[str, list[str], list[Processor]]] = {}
        for kind, state in STATE_TABLES.items():
            table = state.table
            values = {c.name: None for c in table.columns}
            stmt = sqlite.insert(table).values(values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[table.c.id],
                set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name != "id"},
                # Concurrent writers may commit out of log order; the newest log entry always wins.
                where=table.c.message_seq < stmt.excluded.message_seq,
            )
            sql, names = _positional(stmt, dialect)
            self._upserts[kind] = (sql, names, _processors(table, names, dialect))

    @staticmethod
    def _values(row: dict[str, Any], names: list[str], processors: list[Processor]) -> tuple[Any, ...]:
        return tuple(
            row[name] if process is None or row[name] is None else process(row[name])
            for name, process in zip(names, processors, strict=True)
        )

    def existing(self, cursor: Any, hashes: Sequence[str]) -> list[tuple[int, str, Any, str]]:
        """(seq, key_hash, stored_at, body) of the stored messages among ``hashes`` (at most a few hundred)."""
        if not hashes:
            return []
        marks = ", ".join("?" * len(hashes))
        cursor.execute(f"{self._select_head} WHERE messages.key_hash IN ({marks})", list(hashes))
        process = self._stored_at
        return [(seq, key, process(at) if process else at, body) for seq, key, at, body in cursor.fetchall()]

    def insert_messages(self, cursor: Any, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert log rows in order and return their sequence numbers (one execute per row: the rowid of each
        comes back for free, where executemany would need a second query to find them)."""
        seqs: list[int] = []
        names, processors, sql = self._insert_names, self._insert_processors, self._insert_sql
        for row in rows:
            cursor.execute(sql, self._values(row, names, processors))
            seqs.append(int(cursor.lastrowid))
        return seqs

    def upsert_state(self, cursor: Any, kind: MessageKind, rows: Sequence[dict[str, Any]]) -> None:
        sql, names, processors = self._upserts[kind]
        cursor.executemany(sql, [self._values(row, names, processors) for row in rows])
