"""OpenADR 2.0b message security in one import: XML signatures, replay protection, certificate fingerprints.

The concerns live in their own modules (signature and signer, replay, fingerprint) because each is used on its own:
the TLS layer needs fingerprints without signatures, tests drive the replay memory with a fake clock. Services
import from here so that moving code between those modules never touches them.
"""

from __future__ import annotations

from gateway.protocols.openadr2b.fingerprint import certificate_fingerprint
from gateway.protocols.openadr2b.replay import ReplayGuard, ReplayRejected
from gateway.protocols.openadr2b.signature import Failure, MessageVerifier, SignatureError, verify
from gateway.protocols.openadr2b.signer import MessageSigner

__all__ = [
    "Failure",
    "MessageSigner",
    "MessageVerifier",
    "ReplayGuard",
    "ReplayRejected",
    "SignatureError",
    "certificate_fingerprint",
    "verify",
]
