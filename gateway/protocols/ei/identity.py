"""Who is calling the EI service: a party found by its bearer token, or by its client certificate's fingerprint as
forwarded by a trusted TLS proxy.

Tokens are never stored: a party's ``identities["ei-token-sha256"]`` holds the SHA-256 of its token (hex), so a
leaked database does not leak credentials. Certificates: the party's ``identities["tls-sha256"]`` holds the
SHA-256 of its certificate (DER). Under mutual TLS at the gateway itself (``tgw serve --tls-client-ca``) the
certificate comes from the connection (``gateway.api.tls``); behind a proxy that verifies clients, it is
forwarded as a fingerprint in a header the operator names (``TGW_EI_CERT_HEADER``), honoured only when
configured: otherwise any client could claim any fingerprint.
"""

from __future__ import annotations

import hashlib
import threading
import time

from gateway.model import MessageKind, Party
from gateway.store import Store

TOKEN_IDENTITY = "ei-token-sha256"
CERT_IDENTITY = "tls-sha256"
_REFRESH_SECONDS = 1.0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class PartyDirectory:
    """Maps credentials to party ids, from the parties in the store; rebuilt on a miss at most once a second (a
    party registered a moment ago is found; a flood of bad tokens cannot turn into a flood of table scans)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_credential: dict[tuple[str, str], str] = {}
        self._built_at = 0.0
        self._lock = threading.Lock()

    def _rebuild(self) -> None:
        table: dict[tuple[str, str], str] = {}
        for party in self.store.list(MessageKind.PARTY, limit=None):
            assert isinstance(party, Party)
            for kind in (TOKEN_IDENTITY, CERT_IDENTITY):
                value = party.identities.get(kind)
                if value:
                    table[(kind, value.lower().replace(":", ""))] = party.id
        self._by_credential = table
        self._built_at = time.monotonic()

    def find(self, kind: str, value: str) -> str | None:
        key = (kind, value.lower().replace(":", ""))
        with self._lock:
            found = self._by_credential.get(key)
            if found is None and time.monotonic() - self._built_at >= _REFRESH_SECONDS:
                self._rebuild()
                found = self._by_credential.get(key)
        return found

    def by_token(self, token: str) -> str | None:
        return self.find(TOKEN_IDENTITY, token_hash(token))

    def by_certificate(self, fingerprint: str) -> str | None:
        return self.find(CERT_IDENTITY, fingerprint)
