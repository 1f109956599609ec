"""Create, withdraw, list and audit overrides: what the REST API and ``tgw override`` share.

Every change goes through the gateway's one ingest path (so the refusals of ``rules`` apply and the change is
stored before it is answered, then published on the bus), and nothing is ever deleted: withdrawing is a new
version with status withdrawn. The audit trail is the message log itself: each stored version of an override,
with when it was stored, which protocol and peer sent it, and what it changed from the version before.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.ingest import Ingestor
from gateway.model import Envelope, MessageKind, Override
from gateway.model.overrides import OverrideStatus
from gateway.overrides.resolve import effective_at
from gateway.store import Store, StoredMessage

AUDITED = ("status", "mode", "reason", "reason_text", "span", "quantity_kw", "resource_id", "subject")
"""The fields whose change an audit entry names (ids, party and created_at are the override's identity)."""


class OverrideError(Exception):
    """A request the service refuses before anything is written; ``status`` is the HTTP status that fits."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One stored version of an override: who sent it, through what, when, and what it changed."""

    seq: int
    stored_at: datetime
    received_at: datetime
    protocol: str
    peer: str
    status: OverrideStatus
    override: Override
    changes: list[str] = field(default_factory=list)


class OverrideService:
    def __init__(self, store: Store, ingestor: Ingestor) -> None:
        self.store = store
        self.ingestor = ingestor

    def get(self, override_id: str) -> Override:
        found = self.store.get(MessageKind.OVERRIDE, override_id)
        if not isinstance(found, Override):
            raise OverrideError(404, f"no override with id '{override_id}'")
        return found

    async def withdraw(
        self, override_id: str, *, protocol: str, peer: str, party_id: str | None = None
    ) -> StoredMessage:
        """Withdraw an active override (a new version, status withdrawn). ``party_id``, when the caller is known
        to act for a party, must be the override's own."""
        withdrawn = await asyncio.to_thread(self._withdrawn, override_id, party_id)
        [record] = await self.ingestor.ingest([Envelope(payload=withdrawn)], protocol=protocol, peer=peer)
        return record

    def withdraw_sync(self, override_id: str, *, protocol: str, peer: str) -> StoredMessage:
        """``withdraw`` for callers without an event loop (the CLI)."""
        withdrawn = self._withdrawn(override_id, None)
        [record] = self.ingestor.ingest_sync([Envelope(payload=withdrawn)], protocol=protocol, peer=peer)
        return record

    def _withdrawn(self, override_id: str, party_id: str | None) -> Override:
        """The withdrawn version of an active override, or the OverrideError that says why there is none."""
        current = self.get(override_id)
        if party_id is not None and party_id != current.party_id:
            raise OverrideError(
                403, f"override '{override_id}' belongs to party '{current.party_id}', not '{party_id}'"
            )
        if current.status is OverrideStatus.WITHDRAWN:
            raise OverrideError(409, f"override '{override_id}' is withdrawn already")
        return current.model_copy(update={"status": OverrideStatus.WITHDRAWN})

    def history(self, override_id: str) -> list[AuditEntry]:
        """Every stored version of the override, oldest first."""
        records = self.store.query_messages(kind=MessageKind.OVERRIDE, entity_id=override_id, limit=10_000)
        if not records:
            raise OverrideError(404, f"no override with id '{override_id}'")
        entries: list[AuditEntry] = []
        previous: dict[str, Any] | None = None
        for record in records:
            override = record.envelope.payload
            assert isinstance(override, Override)
            now = override.model_dump(mode="json", include=set(AUDITED))
            if previous is None:
                changes = ["created"]
            else:
                changes = [
                    f"{name}: {_short(previous.get(name))} -> {_short(now.get(name))}"
                    for name in AUDITED
                    if previous.get(name) != now.get(name)
                ]
            source = record.envelope.source
            entries.append(
                AuditEntry(
                    seq=record.seq,
                    stored_at=record.stored_at,
                    received_at=record.envelope.received_at,
                    protocol=source.protocol if source else "",
                    peer=source.peer if source else "",
                    status=override.status,
                    override=override,
                    changes=changes,
                )
            )
            previous = now
        return entries

    def effective(self, at: datetime, *, party_id: str | None = None, subject_id: str | None = None) -> list[Override]:
        """The overrides that count at ``at`` (see ``resolve``), in (party, subject, resource) order."""
        filters = {"status": OverrideStatus.ACTIVE.value}
        if party_id is not None:
            filters["party_id"] = party_id
        if subject_id is not None:
            filters["subject_id"] = subject_id
        found = [
            o for o in self.store.list(MessageKind.OVERRIDE, filters=filters, limit=None) if isinstance(o, Override)
        ]
        winners = effective_at(found, at)
        return [winners[key] for key in sorted(winners, key=lambda k: (k[0], k[1].value, k[2], k[3] or ""))]


def _short(value: Any) -> str:
    text = "none" if value is None else str(value)
    return text if len(text) <= 80 else text[:77] + "..."
