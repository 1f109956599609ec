"""Mutual TLS at the gateway itself: the client certificate handed to the app as the ASGI TLS extension.

Uvicorn verifies client certificates (``ssl_cert_reqs=CERT_REQUIRED`` with ``ssl_ca_certs``) but does not tell the
application *which* certificate a connection presented, and OpenADR (certificate fingerprint = VEN identity),
IEEE 2030.5 (LFDI/SFDI) and EI all need exactly that. :class:`PeerCertificateProtocol` is uvicorn's httptools
protocol plus one step: when a TLS connection is made it reads the peer's certificate (DER) once, and puts it in
each request's scope as ``scope["extensions"]["tls"]["client_cert_chain"]`` (PEM, as the ASGI TLS extension
specifies). Behind a TLS-terminating proxy the services use a forwarded-fingerprint header instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from typing import Any

from starlette.requests import Request
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.protocols.ieee2030_5.suites import server_cipher_string


class PeerCertificateProtocol(HttpToolsProtocol):
    """Uvicorn's HTTP/1.1 protocol, exposing the verified client certificate to the app."""

    _peer_pem: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self._peer_pem = ssl.DER_cert_to_PEM_cert(der) if der else None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._peer_pem is not None:
            self.scope["extensions"] = {"tls": {"client_cert_chain": [self._peer_pem]}}  # type: ignore[typeddict-unknown-key]


def peer_certificate_der(request: Request) -> bytes | None:
    """The DER bytes of the client certificate this request's connection presented, if any."""
    tls: dict[str, Any] = request.scope.get("extensions", {}).get("tls", {})
    chain = tls.get("client_cert_chain") or []
    return ssl.PEM_cert_to_DER_cert(chain[0]) if chain else None


def sha256_fingerprint(der: bytes) -> str:
    """Lower-case hex SHA-256 of a DER certificate (the ``tls-sha256`` party identity)."""
    return hashlib.sha256(der).hexdigest()


def server_tls_options(certfile: str, keyfile: str, client_ca: str | None, *, require_client: bool) -> dict[str, Any]:
    """uvicorn.Config keyword arguments for TLS 1.2+ with (optionally required) client certificates.

    The suites are Python's defaults plus the one IEEE 2030.5 requires (``suites``): the same port serves OpenADR,
    EI and the REST API, whose peers keep the suites they prefer."""
    options: dict[str, Any] = {
        "ssl_certfile": certfile,
        "ssl_keyfile": keyfile,
        "ssl_ciphers": server_cipher_string(),
        "http": PeerCertificateProtocol,
    }
    if client_ca:
        options["ssl_ca_certs"] = client_ca
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED if require_client else ssl.CERT_OPTIONAL
    return options
