"""OAuth2 client-credentials grant (RFC 6749 section 4.4) for EI parties: a party's software trades its client id
(the party id) and secret for a short-lived bearer token at ``POST /ei/v1/oauth/token``.

The operator keeps only the SHA-256 of each party's client secret (``identities["ei-client-secret-sha256"]``).
Issued tokens live in memory for ``TOKEN_LIFETIME``: a restart forgets them, and an OAuth2 client answers the
resulting 403 by asking for a new token, which is the grant's normal cycle. Long-lived tokens set by the operator
(``identity.TOKEN_IDENTITY``) keep working beside them.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import secrets
import threading
import time
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.model import MessageKind, Party
from gateway.protocols.ei.identity import token_hash

SECRET_IDENTITY = "ei-client-secret-sha256"
TOKEN_LIFETIME = 3600.0
_MAX_TOKENS = 100_000


class TokenIssuer:
    """Bearer tokens issued by the grant: token hash -> (party, expiry)."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def issue(self, party_id: str) -> str:
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            if len(self._tokens) >= _MAX_TOKENS:  # drop the expired first; a flood cannot grow this without bound
                self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
                if len(self._tokens) >= _MAX_TOKENS:
                    self._tokens.pop(next(iter(self._tokens)))
            self._tokens[token_hash(token)] = (party_id, now + TOKEN_LIFETIME)
        return token

    def party(self, token: str) -> str | None:
        with self._lock:
            found = self._tokens.get(token_hash(token))
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]


def _client(request: Request, form: dict[str, list[str]]) -> tuple[str | None, str | None]:
    """Client credentials from HTTP Basic (preferred by the RFC) or the form body."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, None
        return unquote(user), unquote(password)
    return (form.get("client_id") or [None])[0], (form.get("client_secret") or [None])[0]


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="ei"'} if status == 401 else None
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=headers)


router = APIRouter(prefix="/ei/v1", tags=["ei"])


@router.post("/oauth/token", summary="OAuth2 client-credentials grant: a bearer token for the EI service")
async def token(request: Request) -> JSONResponse:
    body = (await request.body())[:8192]
    form = parse_qs(body.decode(errors="replace"), keep_blank_values=False)
    if (form.get("grant_type") or [None])[0] != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "only grant_type=client_credentials is supported")
    client_id, secret = _client(request, form)
    if not client_id or not secret:
        return _oauth_error(401, "invalid_client", "client_id and client_secret are required")
    party = await asyncio.to_thread(request.app.state.store.get, MessageKind.PARTY, client_id)
    expected = party.identities.get(SECRET_IDENTITY) if isinstance(party, Party) else None
    if expected is None or not hmac.compare_digest(expected.lower(), token_hash(secret)):
        return _oauth_error(401, "invalid_client", "unknown client or wrong secret")
    issued = issuer(request).issue(client_id)
    return JSONResponse(
        {"access_token": issued, "token_type": "Bearer", "expires_in": int(TOKEN_LIFETIME)},
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def issuer(request: Request) -> TokenIssuer:
    found = getattr(request.app.state, "ei_tokens", None)
    if found is None:
        found = request.app.state.ei_tokens = TokenIssuer()
    return found  # type: ignore[no-any-return]
