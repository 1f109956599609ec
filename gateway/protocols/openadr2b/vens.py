"""Who a VEN is, and what the VTN remembers about it, durably.

A VEN is a canonical Party's OpenADR face. The operator provisions the party with the VEN's certificate
fingerprint (``identities["oadr-fingerprint"]``, openleadr's short form, or ``identities["tls-sha256"]``, the full
SHA-256) and the VEN proves it by mutual TLS; the venID is ``identities["oadr-ven-id"]`` or else the party id.
Only on a VTN explicitly run without TLS (a demo on loopback) may a VEN name itself, by venID or venName.

The registration (registrationID, transport, pull or push) and the data points of the VEN's registered reports
live in the store's ``adapter_state`` (protocol ``openadr2b``, peer = venID), written before the VEN is answered,
so a restart loses neither and a VEN need not re-register.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.model import MessageKind, Party, Resource
from gateway.protocols.openadr2b.fingerprint import fingerprint_of_der
from gateway.store import Store

PROTOCOL = "openadr2b"
FINGERPRINT_IDENTITY = "oadr-fingerprint"
TLS_IDENTITY = "tls-sha256"
VEN_ID_IDENTITY = "oadr-ven-id"
VEN_NAME_IDENTITY = "oadr-ven-name"
_REFRESH_SECONDS = 1.0


short_fingerprint = fingerprint_of_der
"""The 2.0b (openleadr) certificate fingerprint of a DER certificate."""


@dataclass
class VenRecord:
    """The VTN's durable record of one VEN."""

    ven_id: str
    party_id: str
    registration_id: str | None = None
    ven_name: str | None = None
    transport_address: str | None = None
    http_pull_model: bool = True
    xml_signature: bool = False
    report_only: bool = False
    # rID -> the registered data point (report type, reading type, resource, unit) as plain JSON
    data_points: dict[str, dict[str, Any]] = field(default_factory=dict)
    # reportRequestID -> the rIDs the VTN asked for
    report_requests: dict[str, list[str]] = field(default_factory=dict)

    @property
    def registered(self) -> bool:
        return self.registration_id is not None


class VenDirectory:
    """Parties by their OpenADR credentials and VEN records by venID, from the store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_credential: dict[tuple[str, str], str] = {}
        self._ven_ids: dict[str, str] = {}
        self._records: dict[str, VenRecord] = {}
        self._built_at = 0.0
        self._lock = threading.Lock()

    def _rebuild(self) -> None:
        table: dict[tuple[str, str], str] = {}
        ven_ids: dict[str, str] = {}
        for party in self.store.list(MessageKind.PARTY, limit=None):
            assert isinstance(party, Party)
            table[("party", party.id)] = party.id
            ven_ids[party.id] = party.identities.get(VEN_ID_IDENTITY) or party.id
            for kind in (FINGERPRINT_IDENTITY, TLS_IDENTITY, VEN_ID_IDENTITY, VEN_NAME_IDENTITY):
                value = party.identities.get(kind)
                if value:
                    table[(kind, _norm(kind, value))] = party.id
        self._by_credential = table
        self._ven_ids = ven_ids
        self._built_at = time.monotonic()

    def _find(self, kind: str, value: str, refresh: bool = True) -> str | None:
        key = (kind, _norm(kind, value))
        if not refresh:
            return self._by_credential.get(key)
        with self._lock:
            found = self._by_credential.get(key)
            if found is None and time.monotonic() - self._built_at >= _REFRESH_SECONDS:
                self._rebuild()
                found = self._by_credential.get(key)
        return found

    # The lookups take ``refresh=False`` to answer from memory only (on the event loop); a miss is then asked
    # again with ``refresh=True`` in a thread, which may re-read the parties.

    def party_by_certificate(self, der: bytes, refresh: bool = True) -> str | None:
        return self._find(FINGERPRINT_IDENTITY, short_fingerprint(der), refresh) or self._find(
            TLS_IDENTITY, hashlib.sha256(der).hexdigest(), refresh
        )

    def party_by_sha256(self, fingerprint: str, refresh: bool = True) -> str | None:
        return self._find(TLS_IDENTITY, fingerprint, refresh)

    def party_by_name(self, ven_id: str | None, ven_name: str | None, refresh: bool = True) -> str | None:
        """Only for a VTN run without TLS: a VEN that names itself."""
        candidates = ((VEN_ID_IDENTITY, ven_id), ("party", ven_id), (VEN_NAME_IDENTITY, ven_name), ("party", ven_name))
        for kind, value in candidates:
            if value:
                found = self._find(kind, value, refresh)
                if found:
                    return found
        return None

    def known_ven_id(self, party_id: str) -> str | None:
        return self._ven_ids.get(party_id)

    def ven_id_of(self, party_id: str) -> str:
        """The venID of a party found by :meth:`party_by_certificate` or :meth:`party_by_name` (so in the table)."""
        found = self._ven_ids.get(party_id)
        if found is None:
            party = self.store.get(MessageKind.PARTY, party_id)
            assert isinstance(party, Party)
            found = party.identities.get(VEN_ID_IDENTITY) or party.id
        return found

    def cached_record(self, ven_id: str) -> VenRecord | None:
        """The record as this process last read or wrote it (polls need no database round trip)."""
        return self._records.get(ven_id)

    def record(self, ven_id: str) -> VenRecord | None:
        """The record from the store (and into the cache). Records are written only through :meth:`save`; with
        several gateway processes a VEN is served by the one its registration went to until the others reload."""
        raw = self.store.get_state(PROTOCOL, ven_id, "ven")
        record = None if raw is None else VenRecord(**raw)
        if record is not None:
            self._records[ven_id] = record
        return record

    def save(self, record: VenRecord) -> None:
        self.store.put_state(PROTOCOL, record.ven_id, "ven", asdict(record))
        self._records[record.ven_id] = record

    def records(self) -> list[VenRecord]:
        return [VenRecord(**raw) for raw in self.store.list_state(PROTOCOL, "ven").values()]

    def resources_of(self, party_id: str) -> list[Resource]:
        found = self.store.list(MessageKind.RESOURCE, filters={"owner_id": party_id}, limit=None)
        return [r for r in found if isinstance(r, Resource)]


def _norm(kind: str, value: str) -> str:
    if kind in (FINGERPRINT_IDENTITY, TLS_IDENTITY):
        return value.replace(":", "").lower()
    return value
