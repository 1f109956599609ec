"""OpenADR 2.0 certificate fingerprints: how a VTN knows which VEN signed a message or opened a TLS connection.

2.0b identifies a party by a short fingerprint registered out of band (the VEN hands it to the VTN operator,
who types it into the VTN), not by a name in the certificate. The convention every certified implementation and
openleadr use is the *last* ten bytes of the SHA-256 of the DER certificate, written as colon-separated uppercase
hex pairs (``AB:CD:...``, 29 characters). Ten bytes keeps it short enough to read over the phone; taking the tail
rather than the head is the convention, and we follow it bit for bit because a mismatch means a peer is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

FINGERPRINT_BYTES = 10

_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"


def fingerprint_of_der(der: bytes) -> str:
    """The fingerprint of a DER certificate; the one place the format is written down."""
    return hashlib.sha256(der).digest()[-FINGERPRINT_BYTES:].hex(":").upper()


def certificate_fingerprint(certificate: bytes | str | x509.Certificate) -> str:
    """The OpenADR fingerprint of a certificate given as PEM, DER or a parsed certificate.

    PEM and DER are hashed as they are, without parsing the certificate: the fingerprint is a property of the
    exact DER bytes, and parsing would add a failure mode (an unusual but valid extension) for no benefit.
    Only the first certificate of a PEM chain counts, as it is the leaf in every chain file convention.
    """
    if isinstance(certificate, x509.Certificate):
        return fingerprint_of_der(certificate.public_bytes(Encoding.DER))
    data = certificate.encode("ascii") if isinstance(certificate, str) else bytes(certificate)
    start = data.find(_PEM_BEGIN)
    if start < 0:
        if not data.startswith(b"\x30"):  # every DER certificate is an ASN.1 SEQUENCE
            raise ValueError("not a certificate: neither PEM nor DER")
        return fingerprint_of_der(data)
    end = data.find(_PEM_END, start)
    if end < 0:
        raise ValueError("PEM certificate without its END line")
    try:
        der = base64.b64decode(b"".join(data[start + len(_PEM_BEGIN) : end].split()), validate=True)
    except binascii.Error as error:
        raise ValueError(f"PEM certificate body is not base64: {error}") from None
    return fingerprint_of_der(der)
