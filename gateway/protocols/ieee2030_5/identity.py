"""Who is calling: a 2030.5 device is its certificate, named by the LFDI and SFDI the standard derives from it.

The LFDI is the first 160 bits of the SHA-256 of the certificate's DER encoding (40 upper-case hex digits);
the SFDI is the first 36 bits of it as a decimal number with a check digit appended that makes the sum of all
digits a multiple of 10. A device never names itself: the server derives both from the certificate it presented
under mutual TLS (uvicorn's ``CERT_REQUIRED``, the certificate handed over by
:class:`gateway.api.tls.PeerCertificateProtocol`), or that a trusted TLS-terminating proxy forwarded in a
configured header. An LFDI or SFDI a device writes in a body (EndDevice, Response) is compared with that, never
believed.
"""

from __future__ import annotations

import hashlib
import ssl
import string
from dataclasses import dataclass
from urllib.parse import unquote

from starlette.requests import Request

_HEX = frozenset(string.hexdigits)


class IdentityError(ValueError):
    """The request carries no usable device certificate (the service answers 403 with the reason)."""


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """The certificate-derived names of the calling device."""

    lfdi: str
    sfdi: int


def lfdi_of_certificate(der: bytes) -> str:
    """LFDI: SHA-256 of the DER certificate, truncated to 160 bits, as 40 upper-case hex digits."""
    return hashlib.sha256(der).hexdigest()[:40].upper()


def lfdi_of_fingerprint(sha256_hex: str) -> str:
    """The LFDI from a SHA-256 certificate fingerprint (a proxy may forward only that); ``:`` separators allowed."""
    digits = sha256_hex.replace(":", "").strip()
    if len(digits) != 64 or not _HEX.issuperset(digits):
        raise IdentityError("a certificate fingerprint must be 64 hex digits (SHA-256)")
    return digits[:40].upper()


def sfdi_of_lfdi(lfdi: str) -> int:
    """SFDI: the first 36 bits of the LFDI as a decimal number followed by its sum-of-digits check digit."""
    if len(lfdi) < 9 or not _HEX.issuperset(lfdi):
        raise ValueError(f"{lfdi!r} is not an LFDI (hex digits)")
    base = int(lfdi[:9], 16)  # 9 hex digits = 36 bits
    check = (10 - sum(int(d) for d in str(base)) % 10) % 10
    return base * 10 + check


def sfdi_is_valid(sfdi: int) -> bool:
    """Whether the check digit holds (the digit sum of the whole number is a multiple of 10)."""
    return sfdi >= 0 and sum(int(d) for d in str(sfdi)) % 10 == 0


def identity_of_certificate(der: bytes) -> DeviceIdentity:
    lfdi = lfdi_of_certificate(der)
    return DeviceIdentity(lfdi, sfdi_of_lfdi(lfdi))


def forwarded_identity(value: str) -> DeviceIdentity:
    """The identity in a proxy's header: the client certificate as (URL-escaped) PEM, as nginx's
    ``$ssl_client_escaped_cert`` and Envoy's XFCC ``Cert=`` give it, or its SHA-256 fingerprint."""
    text = unquote(value).strip().strip('"')
    if "-----BEGIN CERTIFICATE-----" in text:
        try:
            der = ssl.PEM_cert_to_DER_cert(text)
        except ValueError as exc:
            raise IdentityError(f"the forwarded client certificate is not a PEM certificate: {exc}") from None
        return identity_of_certificate(der)
    lfdi = lfdi_of_fingerprint(text)
    return DeviceIdentity(lfdi, sfdi_of_lfdi(lfdi))


def request_identity(request: Request, cert_header: str | None) -> DeviceIdentity:
    """The calling device: its TLS client certificate, else the configured proxy header; IdentityError if none.

    The header is only read when the operator configured one (the gateway then sits behind a proxy that strips any
    client-supplied copy); a certificate on the connection itself always wins.
    """
    from gateway.api.tls import peer_certificate_der  # here: gateway.api imports the 2030.5 server, which needs us

    der = peer_certificate_der(request)
    if der is not None:
        return identity_of_certificate(der)
    if cert_header:
        value = request.headers.get(cert_header)
        if value:
            return forwarded_identity(value)
    raise IdentityError(
        "no client certificate: a 2030.5 device must present its certificate (mutual TLS)"
        + (f" or be behind the proxy that forwards it in {cert_header}" if cert_header else "")
    )
