"""OpenADR 2.0b XML signatures: sign + verify of one oadrDistributeEvent per second on one core, against openleadr.

The message is an oadrDistributeEvent with one price event of four hourly intervals, as openleadr renders it.
Each contender produces a signed message and verifies it, with the same key type, in the same run:
  * openleadr 0.5.36: ``create_message`` (templating + signing, which parses the PEM key twice per message)
    then ``validate_xml_signature`` on the parsed bytes. Its global nonce cache is emptied before each verify:
    left alone, it is scanned in full per message and would grow with the benchmark's own rate, flattering us;
  * ours: ``MessageSigner.sign`` of the same oadrSignedObject (key loaded once), parse of the bytes (hardened
    parser), ``verify`` with a real ReplayGuard;
  * for information: signxml with key and certificate already loaded (what a faster openleadr could reach by
    caching keys; the reason the signer and verifier are written by hand), openleadr's ``create_message``
    without signing (its templating share, so openleadr's signing-only cost can be read off), and the bare
    cryptographic sign + verify of a SignedInfo-sized input (the floor no XMLDSig code can go under).
RSA-2048 is the common 2.0b key; EC P-256 is the other one the 2.0b CAs issue. For P-256 the floor bounds the
ratio: openleadr's EC path has no expensive key load, so 50x is out of reach whatever the XML code costs.

Run: ``.venv/bin/python benchmarks/bench_openadr2b_sign.py [--quick]``. Not a test: it prints its figures.
"""

from __future__ import annotations

import argparse
import platform
import sys
from datetime import UTC, datetime, timedelta
from importlib.metadata import version

import cryptography
import lxml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from openleadr import messaging, objects, utils
from signxml import XMLSigner, XMLVerifier, methods

from gateway.protocols.openadr2b.security import MessageSigner, ReplayGuard, certificate_fingerprint, verify

from harness import compare, pin_to_one_core

TARGET_RATIO = 50
PARSER = etree.XMLParser(resolve_entities=False, no_network=True)
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"


def credentials(kind: str) -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"vtn-{kind}.example")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def distribute_event() -> dict:
    start = datetime(2026, 7, 1, 16, tzinfo=UTC)
    event = objects.Event(
        event_descriptor=objects.EventDescriptor(
            event_id="rtp-2026-07-01", modification_number=0, market_context="http://market.example/rtp",
            event_status="far", created_date_time=start - timedelta(hours=20),
        ),
        event_signals=[
            objects.EventSignal(
                intervals=[
                    objects.Interval(
                        dtstart=start + timedelta(hours=h), duration=timedelta(hours=1),
                        signal_payload=0.1 + h / 100, uid=h,
                    )
                    for h in range(4)
                ],
                signal_name="ELECTRICITY_PRICE", signal_type="price", signal_id="price-0", current_value=0.0,
            )
        ],
        targets=[objects.Target(ven_id="ven-0017")],
        active_period=objects.ActivePeriod(dtstart=start, duration=timedelta(hours=4)),
    )  # fmt: skip
    return {
        "request_id": "req-0001",
        "vtn_id": "vtn-north",
        "events": [utils.asdict(event)],
        "response": {"response_code": 200, "response_description": "OK", "request_id": "req-0001"},
    }


def contenders(kind: str, repetitions: int, seconds: float) -> dict[str, float]:
    cert_pem, key_pem = credentials(kind)
    fingerprint = certificate_fingerprint(cert_pem)
    payload = distribute_event()
    unsigned = messaging.create_message("oadrDistributeEvent", **payload).encode()
    signed_object = etree.fromstring(unsigned, PARSER)[0]

    signer = MessageSigner(cert_pem, key_pem)
    replay = ReplayGuard()
    key = serialization.load_pem_private_key(key_pem, None)
    certificate = x509.load_pem_x509_certificate(cert_pem)
    signxml_verifier = XMLVerifier()
    signed_info_sized = b"x" * 900

    def openleadr_sign_verify() -> None:
        message = messaging.create_message("oadrDistributeEvent", cert=cert_pem, key=key_pem, **payload)
        tree = etree.fromstring(message.encode(), PARSER)
        messaging.NONCE_CACHE.clear()
        messaging.validate_xml_signature(tree, cert_fingerprint=fingerprint)

    def ours_sign_verify() -> None:
        verify(etree.fromstring(signer.sign(signed_object), PARSER), fingerprint, replay)

    def signxml_preloaded() -> None:
        xml_signer = XMLSigner(
            method=methods.detached, c14n_algorithm=C14N,
            signature_algorithm="rsa-sha256" if kind == "rsa" else "ecdsa-sha256",
        )  # fmt: skip
        xml_signer.namespaces["oadr"] = "http://openadr.org/oadr-2.0b/2012/07"  # as openleadr does
        signature = xml_signer.sign(
            etree.fromstring(etree.tostring(signed_object), PARSER), key=key, cert=[certificate],
            reference_uri="#oadrSignedObject", signature_properties=messaging._create_replay_protect(),
        )  # fmt: skip
        data = b"".join((
            b'<oadr:oadrPayload xmlns:oadr="http://openadr.org/oadr-2.0b/2012/07">',
            etree.tostring(signature), etree.tostring(signed_object), b"</oadr:oadrPayload>",
        ))  # fmt: skip
        signxml_verifier.verify(etree.fromstring(data, PARSER), x509_cert=certificate, expect_references=2)

    def crypto_floor() -> None:
        if isinstance(key, rsa.RSAPrivateKey):
            value = key.sign(signed_info_sized, padding.PKCS1v15(), hashes.SHA256())
            key.public_key().verify(value, signed_info_sized, padding.PKCS1v15(), hashes.SHA256())
        else:
            value = key.sign(signed_info_sized, ec.ECDSA(hashes.SHA256()))
            key.public_key().verify(value, signed_info_sized, ec.ECDSA(hashes.SHA256()))

    # every contender must produce and accept a valid signed message before it is timed
    openleadr_sign_verify()
    ours = signer.sign(signed_object)
    messaging.validate_xml_signature(etree.fromstring(ours, PARSER), cert_fingerprint=fingerprint)
    assert verify(etree.fromstring(ours, PARSER), fingerprint, ReplayGuard()) == fingerprint
    signxml_preloaded()
    print(f"\n{kind.upper()}: signed oadrDistributeEvent {len(ours):,} bytes (ours), fingerprint {fingerprint}")

    return compare(
        f"{'RSA-2048' if kind == 'rsa' else 'EC P-256'}: sign + verify one oadrDistributeEvent",
        {
            "openleadr create_message(signed) + validate_xml_signature": openleadr_sign_verify,
            "ours: MessageSigner.sign + parse + verify": ours_sign_verify,
            "signxml, key and cert preloaded: sign + verify (info)": signxml_preloaded,
            "openleadr create_message unsigned (templating, info)": lambda: messaging.create_message(
                "oadrDistributeEvent", **payload
            ),
            "bare crypto sign + verify (floor, info)": crypto_floor,
        },
        repetitions,
        seconds,
        unit="msgs/s",
        versus="openleadr",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repetitions (a smoke run)")
    args = parser.parse_args()
    repetitions, seconds = (3, 0.2) if args.quick else (7, 0.6)

    core = pin_to_one_core()
    print(
        f"bench_openadr2b_sign: Python {platform.python_version()}, openleadr {version('openleadr')},"
        f" signxml {version('signxml')}, cryptography {cryptography.__version__}, lxml {lxml.__version__},"
        f" pinned to core {core}"
    )
    print(f"{repetitions} repetitions of ~{seconds}s each per contender, interleaved; medians reported")

    verdicts = []
    for kind in ("rsa", "ec"):
        medians = contenders(kind, repetitions, seconds)
        theirs, ours, unsigned, floor = (
            medians["openleadr create_message(signed) + validate_xml_signature"],
            medians["ours: MessageSigner.sign + parse + verify"],
            medians["openleadr create_message unsigned (templating, info)"],
            medians["bare crypto sign + verify (floor, info)"],
        )
        signing_only = 1 / (1 / theirs - 1 / unsigned)  # openleadr with its templating time taken out
        verdicts.append((kind, ours / theirs, ours / signing_only, floor / theirs, ours, theirs))

    print()
    for kind, ratio, ratio_signing_only, ceiling, ours, theirs in verdicts:
        name = "RSA-2048" if kind == "rsa" else "EC P-256"
        verdict = "PASS" if ratio >= TARGET_RATIO else "BELOW TARGET"
        print(
            f"{verdict}: {name}: ours {ours:,.0f} msgs/s vs openleadr {theirs:,.1f} msgs/s = {ratio:,.1f}x"
            f" (target >= {TARGET_RATIO}x; {ratio_signing_only:,.1f}x against openleadr without its templating;"
            f" the crypto floor caps any implementation at {ceiling:,.1f}x)"
        )
    return 0 if verdicts[0][1] >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
