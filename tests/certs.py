"""The test PKI: :mod:`gateway.pki`'s throwaway CA under the name the tests use."""

from __future__ import annotations

from gateway.pki import CertificateAuthority, Issued

__all__ = ["Issued", "TestCa"]


class TestCa(CertificateAuthority):
    """A throwaway certificate authority in ``folder`` (see :class:`gateway.pki.CertificateAuthority`)."""

    __test__ = False  # not a pytest class
