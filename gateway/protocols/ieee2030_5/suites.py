"""The TLS cipher suite IEEE 2030.5 requires, allowed wherever 2030.5 peers connect to us or we connect to them.

IEEE 2030.5-2018 and CSIP's COMM tests name one suite: TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 over TLS 1.2, with
P-256 (ECDSA) certificates. Python's default cipher list leaves out every AES-CCM suite, so a device whose TLS
stack offers only that suite (as embedded 2030.5 stacks often do) failed our handshake with "no shared cipher".
OpenSSL implements the suite; it only has to be allowed. Rather than write our own list, we keep Python's vetted
defaults for every other peer and add this one suite to them.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

SEP2_SUITE = "ECDHE-ECDSA-AES128-CCM8"
"""OpenSSL's name for TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8."""


def _tls12_names(context: ssl.SSLContext) -> list[str]:
    """The TLS 1.2 suites a context allows, in its order (TLS 1.3 suites are configured apart and stay as they are)."""
    return [c["name"] for c in context.get_ciphers() if c["protocol"] != "TLSv1.3"]


def allow_sep2_suite(context: ssl.SSLContext, *, first: bool = False) -> ssl.SSLContext:
    """Add the 2030.5 suite to ``context``'s TLS 1.2 suites: last by default (peers that offer better suites keep
    them), or ``first`` where the point is to see whether a peer offers it."""
    names = [name for name in _tls12_names(context) if name != SEP2_SUITE]
    context.set_ciphers(":".join([SEP2_SUITE, *names] if first else [*names, SEP2_SUITE]))
    return context


def server_cipher_string() -> str:
    """An OpenSSL cipher string for a server: Python's default server suites plus the 2030.5 one (for uvicorn's
    ``ssl_ciphers``, which takes a string rather than a context)."""
    return ":".join([*_tls12_names(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)), SEP2_SUITE])


def sep2_client(ca: str | None, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """A 2030.5 client's context: Python's defaults plus the 2030.5 suite (a strict server may speak nothing else),
    trusting ``ca`` (else the system's roots), presenting ``cert`` if given."""
    context = allow_sep2_suite(ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context())
    if cert:
        context.load_cert_chain(cert, key)
    return context


def sep2_only_client(ca: str | None, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """A client context that speaks exactly what 2030.5 requires, TLS 1.2 and the one suite: a peer that
    completes a handshake with it supports what a strict 2030.5 device offers."""
    context = sep2_client(ca, cert, key)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(SEP2_SUITE)
    return context


def is_ecdsa_certificate(path: str | Path) -> bool:
    """Whether the (first) certificate in a PEM file has an EC key: the 2030.5 suite needs one on the server."""
    certificate = x509.load_pem_x509_certificate(Path(path).read_bytes())
    return isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
