"""OpenADR 2.0b XML signatures, ReplayProtect and certificate fingerprints.

Certificates come from a throwaway CA made here (RSA-2048 and EC P-256 leaves, the two 2.0b key types).
Interoperability is checked with real openleadr 0.5.36 calls in both directions, and with signxml for signed
messages openleadr cannot produce (odd ReplayProtect contents, exclusive C14N).
"""

from __future__ import annotations

import random
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from openleadr import messaging, objects, utils
from signxml import XMLSigner, methods

from gateway.protocols.openadr2b import codec
from gateway.protocols.openadr2b import signer as signer_module
from gateway.protocols.openadr2b.security import (
    Failure,
    MessageSigner,
    MessageVerifier,
    ReplayGuard,
    ReplayRejected,
    SignatureError,
    certificate_fingerprint,
    verify,
)
from gateway.protocols.openadr2b.signature import C14N, DS_NS, DSP_NS, EXC_C14N, OADR_NS

from conftest import shared_path

PARSER = etree.XMLParser(resolve_entities=False, no_network=True)
NOW = datetime.now(UTC).replace(microsecond=0)  # the test certificates are valid around the real now

SIGNED_OBJECT = f"""<oadr:oadrSignedObject xmlns:oadr="{OADR_NS}" oadr:Id="oadrSignedObject">
  <oadr:oadrDistributeEvent xmlns:ei="http://docs.oasis-open.org/ns/energyinterop/201110"
      xmlns:pyld="http://docs.oasis-open.org/ns/energyinterop/201110/payloads"
      xmlns:emix="http://docs.oasis-open.org/ns/emix/2011/06" xmlns:xcal="urn:ietf:params:xml:ns:icalendar-2.0"
      xmlns:strm="urn:ietf:params:xml:ns:icalendar-2.0:stream" ei:schemaVersion="2.0b">
    <pyld:requestID>req-7</pyld:requestID>
    <ei:vtnID>vtn-north</ei:vtnID>
    <oadr:oadrEvent>
      <ei:eiEvent>
        <ei:eventDescriptor>
          <ei:eventID>price-0042</ei:eventID>
          <ei:modificationNumber>3</ei:modificationNumber>
          <ei:eiMarketContext><emix:marketContext>http://market.example/rtp</emix:marketContext></ei:eiMarketContext>
          <ei:createdDateTime>2026-07-01T12:00:00Z</ei:createdDateTime>
          <ei:eventStatus>far</ei:eventStatus>
        </ei:eventDescriptor>
        <ei:eiActivePeriod>
          <xcal:properties>
            <xcal:dtstart><xcal:date-time>2026-07-01T16:00:00Z</xcal:date-time></xcal:dtstart>
            <xcal:duration><xcal:duration>PT1H</xcal:duration></xcal:duration>
          </xcal:properties>
          <xcal:components/>
        </ei:eiActivePeriod>
        <ei:eiEventSignals>
          <ei:eiEventSignal>
            <strm:intervals>
              <ei:interval>
                <xcal:duration><xcal:duration>PT1H</xcal:duration></xcal:duration>
                <xcal:uid><xcal:text>0</xcal:text></xcal:uid>
                <ei:signalPayload><ei:payloadFloat><ei:value>0.1234</ei:value></ei:payloadFloat></ei:signalPayload>
              </ei:interval>
            </strm:intervals>
            <ei:signalName>ELECTRICITY_PRICE</ei:signalName>
            <ei:signalType>price</ei:signalType>
            <ei:signalID>sig-0</ei:signalID>
            <ei:currentValue><ei:payloadFloat><ei:value>0</ei:value></ei:payloadFloat></ei:currentValue>
          </ei:eiEventSignal>
        </ei:eiEventSignals>
        <ei:eiTarget><ei:venID>ven-17</ei:venID></ei:eiTarget>
      </ei:eiEvent>
      <oadr:oadrResponseRequired>always</oadr:oadrResponseRequired>
    </oadr:oadrEvent>
  </oadr:oadrDistributeEvent>
</oadr:oadrSignedObject>""".encode()


CA = tuple[ec.EllipticCurvePrivateKey, x509.Certificate]


@dataclass(frozen=True)
class Credentials:
    kind: str
    cert_pem: bytes
    key_pem: bytes
    certificate: x509.Certificate

    @property
    def fingerprint(self) -> str:
        return certificate_fingerprint(self.cert_pem)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def ca() -> CA:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("test 2.0b root"))
        .issuer_name(_name("test 2.0b root"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def issue(
    ca: CA, kind: str, name: str, *, valid: tuple[timedelta, timedelta] = (timedelta(days=-1), timedelta(days=30))
) -> Credentials:
    ca_key, ca_certificate = ca
    key = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + valid[0])
        .not_valid_after(now + valid[1])
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Credentials(kind, certificate.public_bytes(serialization.Encoding.PEM), key_pem, certificate)


@pytest.fixture(scope="module")
def parties(ca: CA) -> dict[str, Credentials]:
    """Two parties per key type: ``rsa``/``ec`` sign, ``rsa-other``/``ec-other`` are someone else."""
    return {
        f"{kind}{suffix}": issue(ca, kind, f"{kind}{suffix}.example")
        for kind in ("rsa", "ec")
        for suffix in ("", "-other")
    }


@pytest.fixture(params=["rsa", "ec"])
def party(request: pytest.FixtureRequest, parties: dict[str, Credentials]) -> Credentials:
    return parties[request.param]


@pytest.fixture
def other(party: Credentials, parties: dict[str, Credentials]) -> Credentials:
    return parties[f"{party.kind}-other"]


def fixed_clock(at: datetime) -> Callable[[], datetime]:
    return lambda: at


def signed_object() -> etree._Element:
    return etree.fromstring(SIGNED_OBJECT, PARSER)


def sign(credentials: Credentials, *, at: datetime = NOW, element: etree._Element | None = None) -> bytes:
    signer = MessageSigner(credentials.cert_pem, credentials.key_pem, clock=fixed_clock(at))
    return signer.sign(signed_object() if element is None else element)


def guard(at: datetime = NOW, **kwargs: Any) -> ReplayGuard:
    return ReplayGuard(clock=fixed_clock(at), **kwargs)


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, PARSER)


def failure_of(data: bytes | etree._Element, expected: str | None = None, replay: ReplayGuard | None = None) -> Failure:
    root = parse(data) if isinstance(data, bytes) else data
    with pytest.raises(SignatureError) as raised:
        verify(root, expected, replay or guard())
    assert raised.value.reason and str(raised.value) == raised.value.reason
    return raised.value.failure


# --- fingerprints ---------------------------------------------------------------------------------------------


def test_fingerprint_matches_openleadr_in_every_input_form(party, ca):
    theirs = utils.certificate_fingerprint(party.cert_pem)
    der = party.certificate.public_bytes(serialization.Encoding.DER)
    chain = party.cert_pem + ca[1].public_bytes(serialization.Encoding.PEM)
    assert len(theirs) == 29 and theirs == theirs.upper()
    for given in (party.cert_pem, party.cert_pem.decode(), der, party.certificate, chain):
        assert certificate_fingerprint(given) == theirs


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        b"-----BEGIN CERTIFICATE-----\nMIIB",
        b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----",
    ],
)
def test_fingerprint_refuses_what_is_not_a_certificate(data):
    with pytest.raises(ValueError):
        certificate_fingerprint(data)


# --- sign and verify ------------------------------------------------------------------------------------------


def test_signed_message_verifies_and_names_its_signer(party):
    data = sign(party)
    root = parse(data)
    assert verify(root, party.fingerprint, guard()) == party.fingerprint
    # what was signed arrives unchanged (as its canonical form)
    assert etree.tostring(root[1], method="c14n") == etree.tostring(signed_object(), method="c14n")
    method = root.find(f"{{{DS_NS}}}Signature/{{{DS_NS}}}SignedInfo/{{{DS_NS}}}SignatureMethod").get("Algorithm")
    assert method.endswith("#rsa-sha256" if party.kind == "rsa" else "#ecdsa-sha256")


def _payload_with_many_namespaces() -> etree._Element:
    """Like the certification samples: every 2.0b namespace declared on the root, some unused."""
    declarations = " ".join(
        f'xmlns:{prefix}="{uri}"'
        for prefix, uri in {
            "oadr": OADR_NS,
            "ei": "http://docs.oasis-open.org/ns/energyinterop/201110",
            "xcal": "urn:ietf:params:xml:ns:icalendar-2.0",
            "properties": DSP_NS,
            "xmldsig": DS_NS,
        }.items()
    )
    return etree.fromstring(f"<oadr:oadrPayload {declarations}>".encode() + SIGNED_OBJECT + b"</oadr:oadrPayload>")


def _default_namespace() -> etree._Element:
    return etree.fromstring(
        SIGNED_OBJECT.replace(b"oadr:oadrSignedObject", b"oadrSignedObject").replace(
            b'xmlns:oadr="', b'xmlns="' + OADR_NS.encode() + b'" xmlns:oadr="'
        )
    )


def _other_prefix() -> etree._Element:
    return etree.fromstring(SIGNED_OBJECT.replace(b"oadr:", b"dsp:").replace(b"xmlns:oadr=", b"xmlns:dsp="))


def _without_id() -> etree._Element:
    return etree.fromstring(SIGNED_OBJECT.replace(b' oadr:Id="oadrSignedObject"', b""))


@pytest.mark.parametrize(
    "make", [_payload_with_many_namespaces, _default_namespace, _other_prefix, _without_id], ids=lambda f: f.__name__
)
def test_any_shape_of_input_signs_and_verifies_here_and_in_openleadr(party, make):
    element = make()
    before = etree.tostring(element)
    data = MessageSigner(party.cert_pem, party.key_pem).sign(element)
    assert etree.tostring(element) == before, "the caller's tree must not change"
    assert verify(parse(data), party.fingerprint, ReplayGuard()) == party.fingerprint
    messaging.validate_xml_signature(parse(data), cert_fingerprint=party.fingerprint)


def test_signer_refuses_keys_and_inputs_outside_the_profile(ca, parties):
    rsa_party, ec_party = parties["rsa"], parties["ec"]
    with pytest.raises(ValueError, match="not the certificate of this private key"):
        MessageSigner(rsa_party.cert_pem, parties["rsa-other"].key_pem)
    for weak in (rsa.generate_private_key(65537, 1024), ec.generate_private_key(ec.SECP384R1())):
        pem = weak.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        with pytest.raises(ValueError, match="RSA"):
            MessageSigner(ec_party.cert_pem, pem)
    signer = MessageSigner(ec_party.cert_pem, ec_party.key_pem)
    with pytest.raises(ValueError, match="oadrSignedObject"):
        signer.sign(etree.fromstring(b"<oadrPoll/>"))


def test_encrypted_key_with_passphrase(party):
    key = serialization.load_pem_private_key(party.key_pem, None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"s3cret")
    )
    signer = MessageSigner(party.cert_pem, encrypted, b"s3cret")
    assert signer.fingerprint == party.fingerprint
    assert verify(parse(signer.sign(signed_object())), party.fingerprint, ReplayGuard()) == party.fingerprint


# --- what must be refused -------------------------------------------------------------------------------------


def test_tampered_signed_object_is_refused(party):
    data = sign(party)
    assert failure_of(data.replace(b"vtn-north", b"vtn-south")) is Failure.DIGEST
    assert failure_of(data.replace(b"<ei:value>0.1234<", b"<ei:value>0.1235<")) is Failure.DIGEST


def test_tampered_replay_protect_is_refused(party):
    root = parse(sign(party))
    nonce = root.find(f".//{{{DSP_NS}}}nonce")
    nonce.text = "0" + nonce.text[1:] if nonce.text[0] != "0" else "1" + nonce.text[1:]
    assert failure_of(root) is Failure.DIGEST


def test_altered_signature_value_is_refused(party):
    root = parse(sign(party))
    value = root.find(f".//{{{DS_NS}}}SignatureValue")
    value.text = ("B" if value.text[0] == "A" else "A") + value.text[1:]
    assert failure_of(root) is Failure.SIGNATURE


def test_signature_made_with_another_key_is_refused(party, other):
    """The certificate in KeyInfo is swapped for another party's: the signature does not match its key."""
    root = parse(sign(party))
    body = other.cert_pem.decode().split("-----")[2]
    root.find(f".//{{{DS_NS}}}X509Certificate").text = body
    assert failure_of(root, other.fingerprint) is Failure.SIGNATURE
    assert failure_of(root) is Failure.SIGNATURE


def test_fingerprint_must_match_the_registered_one(party, other):
    data = sign(party)
    assert failure_of(data, other.fingerprint) is Failure.FINGERPRINT
    assert verify(parse(data), party.fingerprint.lower(), guard()) == party.fingerprint


def test_verifier_with_trusted_fingerprints(party, other):
    data = sign(party)
    trusting = MessageVerifier(guard(), trusted=[party.fingerprint.lower()])
    assert trusting.verify(parse(data)) == party.fingerprint
    with pytest.raises(SignatureError) as raised:
        MessageVerifier(guard(), trusted=[other.fingerprint]).verify(parse(data))
    assert raised.value.failure is Failure.FINGERPRINT


def test_replayed_message_is_refused(party):
    replay = guard()
    data = sign(party)
    assert verify(parse(data), party.fingerprint, replay) == party.fingerprint
    assert failure_of(data, party.fingerprint, replay) is Failure.REPLAY


def test_nonces_are_scoped_by_signer(party, other, monkeypatch):
    """Another certificate reusing a nonce neither replays nor blocks this party's message."""
    monkeypatch.setattr(signer_module.secrets, "token_hex", lambda _: "00" * 16)
    replay = guard()
    assert verify(parse(sign(other)), None, replay) == other.fingerprint
    assert verify(parse(sign(party)), None, replay) == party.fingerprint
    assert failure_of(sign(party), None, replay) is Failure.REPLAY


@pytest.mark.parametrize(
    ("offset", "failure"),
    [(-6, Failure.STALE), (-60, Failure.STALE), (6, Failure.FUTURE), (3600, Failure.FUTURE), (-4.9, None), (4.9, None)],
)
def test_timestamp_must_be_inside_the_window(party, offset, failure):
    data = sign(party, at=NOW + timedelta(seconds=offset))
    if failure is None:
        assert verify(parse(data), party.fingerprint, guard()) == party.fingerprint
    else:
        assert failure_of(data, party.fingerprint) is failure


def test_window_is_configurable(party):
    data = sign(party, at=NOW - timedelta(seconds=20))
    assert verify(parse(data), None, guard(window=timedelta(seconds=30))) == party.fingerprint


def test_certificate_must_be_valid_when_the_message_was_signed(ca):
    expired = issue(ca, "ec", "expired.example", valid=(timedelta(days=-30), timedelta(days=-1)))
    now = datetime.now(UTC)
    assert failure_of(sign(expired, at=now), replay=ReplayGuard()) is Failure.CERTIFICATE


def test_unsigned_message(party):
    unsigned = f'<oadr:oadrPayload xmlns:oadr="{OADR_NS}">'.encode() + SIGNED_OBJECT + b"</oadr:oadrPayload>"
    assert failure_of(unsigned) is Failure.UNSIGNED
    assert MessageVerifier(guard(), require_signature=False).verify(parse(unsigned)) is None
    with pytest.raises(SignatureError) as raised:
        MessageVerifier(guard()).verify(parse(unsigned))
    assert raised.value.failure is Failure.UNSIGNED
    # a signed message is still checked in full where signatures are optional
    lenient = MessageVerifier(guard(), require_signature=False)
    with pytest.raises(SignatureError):
        lenient.verify(parse(sign(party).replace(b"vtn-north", b"vtn-south")))


@pytest.mark.parametrize(
    ("pattern", "replacement", "failure"),
    [
        (rb"xmldsig-more#(rsa|ecdsa)-sha256", b"xmldsig#rsa-sha1", Failure.ALGORITHM),
        (rb"xmlenc#sha256", b"xmldsig#sha1", Failure.ALGORITHM),
        (rb"REC-xml-c14n-20010315", b"REC-xml-c14n11", Failure.ALGORITHM),
        (rb'URI="#oadrReplayProtect"', b'URI="#elsewhere"', Failure.MALFORMED),
        (rb"dsp:ReplayProtect", b"dsp:SomethingElse", Failure.REPLAY_PROTECT),
        (rb"X509Certificate>MII", b"X509Certificate>!!MII", Failure.MALFORMED),
        (rb"X509Certificate>MII", b"X509Certificate>AAAAMII", Failure.CERTIFICATE),
    ],
)
def test_outside_the_profile_is_refused_with_its_reason(party, pattern, replacement, failure):
    data, count = re.subn(pattern, replacement, sign(party))
    assert count
    assert failure_of(data) is failure


def test_structure_errors(party):
    data = sign(party)
    root = parse(data)
    assert failure_of(etree.fromstring(SIGNED_OBJECT)) is Failure.MALFORMED  # a signed object without its envelope
    assert failure_of(etree.fromstring(b"<oadrPayload/>")) is Failure.MALFORMED  # not the 2.0b namespace
    bare = etree.fromstring(SIGNED_OBJECT)[0]  # a bare oadrDistributeEvent, as a file may hold: unsigned
    assert failure_of(bare) is Failure.UNSIGNED
    assert MessageVerifier(require_signature=False).verify(bare) is None
    root.remove(root.find(f"{{{DS_NS}}}Signature"))
    assert failure_of(root) is Failure.UNSIGNED  # signature removed: unsigned, not a crash
    no_key_info = parse(data)
    signature = no_key_info.find(f"{{{DS_NS}}}Signature")
    signature.remove(signature.find(f"{{{DS_NS}}}KeyInfo"))
    assert failure_of(no_key_info) is Failure.CERTIFICATE
    extra = parse(data)
    extra.append(etree.fromstring(SIGNED_OBJECT))
    assert failure_of(extra) is Failure.MALFORMED


def test_signature_wrapping_is_refused(party):
    """The signed original hidden in a ds:Object while the payload carries another signed object."""
    root = parse(sign(party))
    original = root[1]
    evil = etree.fromstring(SIGNED_OBJECT.replace(b"vtn-north", b"vtn-evil"))
    wrapper = etree.SubElement(root[0], f"{{{DS_NS}}}Object", Id="wrapper")
    wrapper.append(original)
    root.append(evil)
    assert failure_of(root) is Failure.DIGEST  # same Id: the payload's own object is the one checked
    evil.set(f"{{{OADR_NS}}}Id", "evil")
    assert failure_of(root) is Failure.MALFORMED  # the signed Id is no longer the payload's object


# --- signxml-made signatures: other legal shapes and odd ReplayProtect contents ------------------------------------


def signxml_payload(credentials: Credentials, properties: etree._Element | None, *, c14n: str = C14N) -> etree._Element:
    signer = XMLSigner(
        method=methods.detached,
        c14n_algorithm=c14n,
        signature_algorithm="rsa-sha256" if credentials.kind == "rsa" else "ecdsa-sha256",
    )
    # the Signature will sit inside an oadrPayload declaring oadr: inclusive C14N of the ReplayProtect Object sees
    # that declaration, so it must be in scope when signing too (openleadr does the same)
    signer.namespaces["oadr"] = OADR_NS
    signature = signer.sign(
        etree.fromstring(SIGNED_OBJECT),
        key=credentials.key_pem,
        cert=credentials.cert_pem.decode(),
        reference_uri="#oadrSignedObject",
        signature_properties=properties,
    )
    head = f'<oadr:oadrPayload xmlns:oadr="{OADR_NS}">'.encode()
    return parse(head + etree.tostring(signature) + SIGNED_OBJECT + b"</oadr:oadrPayload>")


def replay_protect(timestamp: str | None, nonce: str | None) -> etree._Element:
    element = etree.Element(f"{{{DSP_NS}}}ReplayProtect", nsmap={"dsp": DSP_NS})
    if timestamp is not None:
        etree.SubElement(element, f"{{{DSP_NS}}}timestamp").text = timestamp
    if nonce is not None:
        etree.SubElement(element, f"{{{DSP_NS}}}nonce").text = nonce
    return element


def test_exclusive_c14n_and_zoneless_timestamp_are_accepted(party):
    fresh = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")  # no zone: read as UTC
    root = signxml_payload(party, replay_protect(fresh, "abc123"), c14n=EXC_C14N)
    assert verify(root, party.fingerprint, ReplayGuard()) == party.fingerprint


@pytest.mark.parametrize(
    ("timestamp", "nonce"),
    [("yesterday", "n1"), ("2026-13-45T00:00:00Z", "n1"), (None, "n1"), ("now", None), ("now", "x" * 300)],
)
def test_malformed_replay_protect_is_refused(party, timestamp, nonce):
    if timestamp == "now":
        timestamp = datetime.now(UTC).isoformat()
    root = signxml_payload(party, replay_protect(timestamp, nonce))
    assert failure_of(root, party.fingerprint, ReplayGuard()) is Failure.REPLAY_PROTECT


def test_a_single_reference_is_not_the_profile(party):
    assert failure_of(signxml_payload(party, None), party.fingerprint, ReplayGuard()) is Failure.MALFORMED


# --- interoperability with openleadr ----------------------------------------------------------------------------


def openleadr_distribute_event() -> dict[str, Any]:
    start = datetime(2026, 7, 1, 16, tzinfo=UTC)
    event = objects.Event(
        event_descriptor=objects.EventDescriptor(
            event_id="ev-1", modification_number=0, market_context="http://market.example", event_status="far"
        ),
        event_signals=[
            objects.EventSignal(
                intervals=[
                    objects.Interval(
                        dtstart=start + timedelta(hours=h), duration=timedelta(hours=1), signal_payload=0.1 + h, uid=h
                    )
                    for h in range(4)
                ],
                signal_name="ELECTRICITY_PRICE",
                signal_type="price",
                signal_id="sig-1",
                current_value=0.0,
            )
        ],
        targets=[objects.Target(ven_id="ven-1")],
        active_period=objects.ActivePeriod(dtstart=start, duration=timedelta(hours=4)),
    )
    return {"request_id": "req-1", "vtn_id": "vtn-1", "events": [utils.asdict(event)]}


def test_openleadr_signed_messages_verify_here(party):
    message = messaging.create_message(
        "oadrDistributeEvent", cert=party.cert_pem, key=party.key_pem, **openleadr_distribute_event()
    )
    data = message.encode()
    assert verify(parse(data), party.fingerprint, ReplayGuard()) == party.fingerprint
    assert failure_of(data.replace(b"vtn-1", b"vtn-2"), party.fingerprint, ReplayGuard()) is Failure.DIGEST


def test_our_messages_pass_openleadr_schema_and_signature_checks(party, other):
    data = MessageSigner(party.cert_pem, party.key_pem).sign(signed_object())
    messaging.validate_xml_schema(data)
    messaging.validate_xml_signature(parse(data), cert_fingerprint=party.fingerprint)
    # and openleadr's checks are real: it refuses what we refuse
    with pytest.raises(Exception):  # noqa: B017 - signxml's InvalidDigest / openleadr's FingerprintMismatch
        messaging.validate_xml_signature(parse(data.replace(b"vtn-north", b"vtn-south")))
    with pytest.raises(Exception):  # noqa: B017
        messaging.validate_xml_signature(parse(data), cert_fingerprint=other.fingerprint)


def test_codec_output_signs_and_the_decoded_tree_verifies(party):
    """The outbound and inbound paths as the service runs them: codec elements in, codec's parsed tree checked."""
    unsigned = f'<oadr:oadrPayload xmlns:oadr="{OADR_NS}">'.encode() + SIGNED_OBJECT + b"</oadr:oadrPayload>"
    message = codec.decode(unsigned)
    signer = MessageSigner(party.cert_pem, party.key_pem)
    for element in (codec.encode_tree(message), codec.encode_signed_object(message)):
        decoded = codec.decode_tree(signer.sign(element))
        assert decoded.signature is not None and decoded.message == message
        assert verify(decoded.root, party.fingerprint, ReplayGuard()) == party.fingerprint


# --- the shared certification samples -----------------------------------------------------------------------------

AVOB = ("fixtures", "openadr2b", "avob", "xmlsignature")


def _sample(name: str) -> etree._Element:
    return etree.parse(str(shared_path(*AVOB, name)), PARSER).getroot()


def test_sample_enveloped_signature_is_not_the_2_0b_profile():
    """signatureOadrPayload.xml is an *enveloped* signature over the whole payload (URI=""), RSA-SHA1, a bare
    RSAKeyValue and no oadrSignedObject and no ReplayProtect at all: it shows XMLDSig syntax, not a 2.0b message,
    so there is no timestamp to find stale. What matters is a clear refusal, not a crash."""
    with pytest.raises(SignatureError) as raised:
        verify(_sample("signatureOadrPayload.xml"), None, ReplayGuard())
    assert raised.value.failure is Failure.MALFORMED and "oadrSignedObject" in raised.value.reason


def test_sample_two_reference_signature_is_understood_up_to_its_sha1():
    """oadrPayload.xml (UTF-16) has the 2.0b shape: references #signedObject (the payload's own object, with an
    enveloped-signature transform that is a no-op beside it) and #prop (a ds:Object with ReplayProtect, timestamp
    2017-04-05T18:22:44, nonce "mouaiccool"). Structure resolves, so the refusal is the first thing outside the
    profile: RSA-SHA1. It could not verify even with SHA-1 allowed: KeyInfo holds an RSAKeyValue and no
    certificate (no fingerprint to pin), and neither DigestValue matches its content under any C14N variant (we
    computed inclusive/exclusive, with/without blank text, SHA-1/SHA-256): the sample was edited after signing.
    Its 2017 timestamp would then be refused as stale."""
    root = _sample("oadrPayload.xml")
    with pytest.raises(SignatureError) as raised:
        verify(root, None, ReplayGuard())
    assert raised.value.failure is Failure.ALGORITHM and "rsa-sha1" in raised.value.reason
    assert root.findtext(f".//{{{DSP_NS}}}timestamp") == "2017-04-05T18:22:44"


def test_sample_without_signature():
    root = _sample("noSignatureOadrPayload.xml")
    with pytest.raises(SignatureError) as raised:
        verify(root, None, ReplayGuard())
    assert raised.value.failure is Failure.UNSIGNED
    # that sample's oadrSignedObject has no Id, which matters only for signing
    assert MessageVerifier(require_signature=False).verify(root) is None


# --- ReplayGuard --------------------------------------------------------------------------------------------------


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def test_guard_accepts_a_nonce_once():
    replay = ReplayGuard(clock=Clock(NOW))
    replay.check("a", NOW)
    replay.check("b", NOW)
    with pytest.raises(ReplayRejected) as raised:
        replay.check("a", NOW - timedelta(seconds=1))
    assert not raised.value.stale and not raised.value.future


def test_guard_window_edges_and_arguments():
    replay = ReplayGuard(timedelta(seconds=5), clock=Clock(NOW), future_window=timedelta(seconds=2))
    replay.check("edge-past", NOW - timedelta(seconds=5))
    replay.check("edge-future", NOW + timedelta(seconds=2))
    with pytest.raises(ReplayRejected) as stale:
        replay.check("old", NOW - timedelta(seconds=5, microseconds=1))
    with pytest.raises(ReplayRejected) as future:
        replay.check("ahead", NOW + timedelta(seconds=2, microseconds=1))
    assert stale.value.stale and future.value.future
    with pytest.raises(ValueError):
        replay.check("naive", NOW.replace(tzinfo=None))
    for bad in ({"window": timedelta(0)}, {"max_entries": 0}, {"future_window": timedelta(seconds=-1)}):
        with pytest.raises(ValueError):
            ReplayGuard(**bad)


def test_guard_forgets_by_time_and_stays_bounded():
    """100k messages at 1000/s: memory stays at rate x (window + future window), far under the cap."""
    clock = Clock(NOW)
    replay = ReplayGuard(timedelta(seconds=5), 1_000_000, clock=clock)
    for n in range(100_000):
        clock.at = NOW + timedelta(milliseconds=n)
        replay.check(n, clock.at)
    assert len(replay) <= 10_001
    with pytest.raises(ReplayRejected):  # a forgotten nonce is still refused: its timestamp is stale
        replay.check(0, NOW)


def test_guard_cap_narrows_the_window_instead_of_forgetting():
    """A burst of 100k fresh nonces against a cap of 1000: never more than 1000 kept, no replay accepted."""
    clock = Clock(NOW)
    replay = ReplayGuard(timedelta(seconds=5), 1000, clock=clock)
    stamps = [NOW + timedelta(microseconds=n) for n in range(100_000)]
    for n, stamp in enumerate(stamps):
        clock.at = stamp
        replay.check(n, stamp)
        assert len(replay) <= 1000
    for n in (0, 50_000, 98_999):  # evicted early by the cap: refused as older than the memory reaches
        with pytest.raises(ReplayRejected) as raised:
            replay.check(n, stamps[n])
        assert raised.value.stale
    with pytest.raises(ReplayRejected) as raised:  # still remembered: refused as a replay
        replay.check(99_999, stamps[99_999])
    assert not raised.value.stale
    replay.check("new", clock.at)  # fresh traffic still flows


def test_guard_is_thread_safe():
    """Eight threads offer the same 20k nonces in different orders: each nonce is accepted exactly once."""
    replay = ReplayGuard(max_entries=100_000)
    nonces = [f"n{n}" for n in range(20_000)]
    accepted: list[str] = []
    start = threading.Barrier(8)

    def offer(seed: int) -> None:
        mine = nonces[:]
        random.Random(seed).shuffle(mine)
        start.wait()
        for nonce in mine:
            try:
                replay.check(nonce, datetime.now(UTC))
            except ReplayRejected:
                continue
            accepted.append(nonce)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=offer, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    counts = Counter(accepted)
    assert len(counts) == len(nonces) and set(counts.values()) == {1}
