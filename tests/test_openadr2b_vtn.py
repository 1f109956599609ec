"""The southbound VTN against a real legacy VEN: openleadr's OpenADRClient, over mutual TLS on loopback, with
certificates made here. The VEN registers, polls, receives an event created through our REST API, opts out (the
opt-out becomes a canonical Response and Override), sends an EiOpt availability schedule, and a restart of the
gateway loses neither its registration nor what it sent. Refusals: unknown certificate, unregistered VEN, a
venID that is not the caller's, schema-invalid XML, a payload posted to the wrong service."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from certs import Issued, TestCa
from openleadr import OpenADRClient

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.api.tls import server_tls_options
from gateway.config import Settings
from gateway.ingest import Ingestor
from gateway.model import Delivery, Envelope, MessageKind, Override, Response
from gateway.model.overrides import OverrideMode, OverrideStatus, ResponseStatus
from gateway.protocols.openadr2b import codec
from gateway.protocols.openadr2b.messages import OadrMessage, Payload, Registration
from gateway.protocols.openadr2b.security import MessageSigner
from gateway.protocols.openadr2b.vens import short_fingerprint
from gateway.store import Store

VTN_PATH = "/OpenADR2/Simple/2.0b"
START = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)


def env(object_type: str, /, **payload: Any) -> Envelope:
    return Envelope.model_validate({"payload": {"object_type": object_type, **payload}})


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("pki")
    ca = TestCa(folder, kind="rsa")
    return {
        "ca": ca,
        "server": ca.issue("vtn", server=True),
        "ven-a": ca.issue("ven-a"),
        "ven-b": ca.issue("ven-b"),
        "stranger": ca.issue("stranger"),
    }


@pytest.fixture
def seeded(store: Store, pki: dict[str, Any]) -> Store:
    Ingestor(store).ingest_sync(
        [
            env("party", id="utility", name="Utility", roles=["dso"]),
            env(
                "party",
                id="ven-a",
                name="Ann's house",
                roles=["prosumer"],
                identities={"oadr-fingerprint": short_fingerprint(pki["ven-a"].der)},
            ),
            env(
                "party",
                id="ven-b",
                name="Bob's shop",
                roles=["prosumer"],
                identities={"oadr-fingerprint": short_fingerprint(pki["ven-b"].der)},
            ),
            env("location", id="feeder", name="Feeder", kind="feeder"),
            env("location", id="sp-a", name="Ann's meter", kind="service_point", parent_id="feeder"),
            env("resource", id="a-hvac", name="Ann's HVAC", kind="load", owner_id="ven-a", location_id="sp-a"),
            env("resource", id="a-ev", name="Ann's EV", kind="ev_charger", owner_id="ven-a", location_id="sp-a"),
        ],
        protocol="test",
        peer="seed",
    )
    return store


def vtn_settings(pki: dict[str, Any]) -> Settings:
    """The VTN signs its answers with its TLS certificate, as `tgw serve --tls-cert/--tls-key` does."""
    server: Issued = pki["server"]
    return Settings(market_tick_seconds=0, openadr_sign_cert=str(server.cert), openadr_sign_key=str(server.key))


@pytest.fixture
def vtn(seeded: Store, pki: dict[str, Any]) -> Iterator[str]:
    app = create_app(vtn_settings(pki), store=seeded)
    server: Issued = pki["server"]
    options = server_tls_options(str(server.cert), str(server.key), str(pki["ca"].ca_file), require_client=True)
    with serve_in_thread(app, **options) as base_url:
        yield base_url


def client_for(base_url: str, pki: dict[str, Any], name: str, **extra: Any) -> OpenADRClient:
    issued: Issued = pki[name]
    return OpenADRClient(
        ven_name=name,
        vtn_url=base_url + VTN_PATH,
        cert=str(issued.cert),
        key=str(issued.key),
        ca_file=str(pki["ca"].ca_file),
        vtn_fingerprint=short_fingerprint(pki["server"].der),  # the VEN checks every answer's signature
        show_fingerprint=False,
        **extra,
    )


def https(base_url: str, pki: dict[str, Any], name: str = "ven-a") -> httpx.Client:
    issued: Issued = pki[name]
    context = ssl.create_default_context(cafile=str(pki["ca"].ca_file))
    context.load_cert_chain(str(issued.cert), str(issued.key))
    return httpx.Client(base_url=base_url, verify=context, timeout=30)


def post(client: httpx.Client, service: str, message: OadrMessage | bytes) -> OadrMessage:
    body = message if isinstance(message, bytes) else codec.encode(message)
    answer = client.post(f"{VTN_PATH}/{service}", content=body, headers={"content-type": "application/xml"})
    assert answer.status_code == 200, answer.text
    return codec.decode(answer.content)


def code(answer: OadrMessage) -> int:
    assert answer.response is not None
    return answer.response.code


def curtailment(control_id: str = "peak-1", level: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "object_type": "control",
        "id": control_id,
        "targets": {"party_ids": ["ven-a"]},
        "kind": "level",
        "signal": "dr_level",
        "unit": "level",
        "periods": [
            {"span": {"start": START.isoformat(), "duration": "PT30M"}, "value": str(level)},
            {"span": {"start": (START + timedelta(minutes=30)).isoformat(), "duration": "PT30M"}, "value": "1"},
        ],
        **extra,
    }


def test_a_legacy_ven_registers_receives_an_event_and_opts_out(vtn: str, seeded: Store, pki: dict[str, Any]) -> None:
    received: list[dict[str, Any]] = []

    async def on_event(event: dict[str, Any]) -> str:
        received.append(event)
        return "optOut"

    async def scenario() -> None:
        ven = client_for(vtn, pki, "ven-a")
        ven.add_handler("on_event", on_event)
        try:
            await ven.create_party_registration()
            assert ven.ven_id == "ven-a" and ven.registration_id
            kind, _ = await ven.poll()
            assert kind == "oadrDistributeEvent"  # the first poll after registering: the (empty) event list
            with https(vtn, pki) as api:
                assert api.post("/v1/controls", json=curtailment()).status_code in (200, 201)
            await ven._poll()  # receives the event, answers optOut through oadrCreatedEvent
            assert [e["event_descriptor"]["event_id"] for e in received] == ["peak-1"]
            signal = received[0]["event_signals"][0]
            assert signal["signal_name"] == "SIMPLE"
            assert [i["signal_payload"] for i in signal["intervals"]] == [2, 1]
            assert received[0]["event_descriptor"]["event_status"] == "far"
            kind, _ = await ven.poll()
            assert kind == "oadrResponse"  # nothing new
            opt_id = await ven.create_opt(
                "optOut",
                "overrideStatus",
                targets=[{"resource_id": "a-ev"}],
                vavailability={"components": [{"dtstart": START, "duration": timedelta(hours=1)}]},
            )
            assert opt_id
            assert await ven.cancel_opt(opt_id)  # EiOpt cancel: the override is withdrawn, not deleted
            # telemetry: the VEN offers its HVAC's power; the VTN asks for it every 15 minutes; a reading arrives
            ven.add_report(
                callback=lambda: 2500.0,
                resource_id="a-hvac",
                measurement="power_real",
                sampling_rate=timedelta(minutes=15),
                report_specifier_id="hvac-telemetry",
                r_id="hvac-power",
            )
            sender = asyncio.get_running_loop().create_task(ven._report_queue_worker())
            await ven.register_reports(ven.reports)
            assert [r["r_ids"] for r in ven.report_requests] == [["hvac-power"]]
            await ven.update_report(ven.report_requests[0]["report_request_id"])
            for _ in range(100):  # the worker posts the oadrUpdateReport
                if ven.pending_reports.empty() and seeded.list(MessageKind.DELIVERY, limit=None):
                    break
                await asyncio.sleep(0.05)
            sender.cancel()
            # the operator asks for a re-registration, then ends the registration: the VEN learns both by polling
            with https(vtn, pki) as api:
                assert api.post("/v1/openadr2b/vens/ven-a/reregister").status_code == 202
                first_registration = ven.registration_id
                ven.loop = asyncio.get_running_loop()  # openleadr sets this in run(), which this test drives by hand
                await ven._poll()
                assert ven.registration_id == first_registration  # re-registered under the same registration
                assert api.post("/v1/openadr2b/vens/ven-a/cancel").status_code == 202
                await ven._poll()
                assert ven.registration_id is None
                (listed,) = [v for v in api.get("/v1/openadr2b/vens").json() if v["ven_id"] == "ven-a"]
                assert listed["registered"] is False and listed["data_points"] == ["hvac-power"]
                assert api.post("/v1/openadr2b/vens/ven-a/cancel").status_code == 404
            kind, answer = await ven.poll()
            assert answer["response"]["response_code"] == 463  # no longer registered: it cannot poll
        finally:
            await ven.stop()

    asyncio.run(scenario())
    response = seeded.get(MessageKind.RESPONSE, "oadr.ven-a.peak-1.0")
    assert isinstance(response, Response) and response.status is ResponseStatus.OPTED_OUT
    override = seeded.get(MessageKind.OVERRIDE, "oadr-optout.ven-a.peak-1")
    assert isinstance(override, Override)
    assert override.status is OverrideStatus.ACTIVE and override.mode is OverrideMode.OPT_OUT
    assert override.span.start == START and override.span.duration == timedelta(hours=1)
    overrides = [o for o in seeded.list(MessageKind.OVERRIDE, limit=None) if o.id.startswith("oadr-opt.")]
    assert len(overrides) == 1 and overrides[0].resource_id == "a-ev"  # type: ignore[union-attr]
    assert overrides[0].reason.value == "override_status"  # type: ignore[union-attr]
    assert overrides[0].status is OverrideStatus.WITHDRAWN  # type: ignore[union-attr]
    record = seeded.get_state("openadr2b", "ven-a", "ven")
    assert record is not None and record["registration_id"] is None  # cancelled at the end
    point = record["data_points"]["hvac-power"]
    assert "a-hvac" in (point["resource_id"], point["data_source"]) and point["min_period_s"] == 900
    (delivery,) = seeded.list(MessageKind.DELIVERY, limit=None)
    assert isinstance(delivery, Delivery)
    assert (delivery.party_id, delivery.resource_id, delivery.location_id) == ("ven-a", "a-hvac", "sp-a")
    assert delivery.quantity == Decimal("2.5") and delivery.interval.duration.value == "PT15M"
    assert delivery.quality.value == "estimated"  # an instantaneous reading standing for its interval


def test_registration_survives_a_restart_and_changes_bump_the_modification_number(
    seeded: Store, pki: dict[str, Any]
) -> None:
    server: Issued = pki["server"]
    options = server_tls_options(str(server.cert), str(server.key), str(pki["ca"].ca_file), require_client=True)
    with (
        serve_in_thread(create_app(Settings(market_tick_seconds=0), store=seeded), **options) as base,
        https(base, pki) as api,
    ):
        registered = post(
            api,
            "EiRegisterParty",
            OadrMessage(
                payload=Payload.CREATE_PARTY_REGISTRATION, request_id="r1", registration=Registration(ven_name="ven-a")
            ),
        )
        assert code(registered) == 200 and registered.registration is not None
        registration_id = registered.registration.registration_id
        assert api.post("/v1/controls", json=curtailment()).status_code in (200, 201)
    with (
        serve_in_thread(create_app(Settings(market_tick_seconds=0), store=seeded), **options) as base,
        https(base, pki) as api,
    ):
        first = post(api, "OadrPoll", OadrMessage(payload=Payload.POLL, ven_id="ven-a"))
        assert first.payload is Payload.DISTRIBUTE_EVENT  # the restarted VTN re-sends what the VEN must know
        assert [(e.event_id, e.modification_number) for e in first.events] == [("peak-1", 0)]
        assert first.events[0].target.ven_ids == ["ven-a"]
        poll = OadrMessage(payload=Payload.POLL, ven_id="ven-a")
        assert post(api, "OadrPoll", poll).payload is Payload.RESPONSE
        assert post(api, "OadrPoll", poll).payload is Payload.RESPONSE  # answered from memory now
        reregister = OadrMessage(
            payload=Payload.CREATE_PARTY_REGISTRATION,
            request_id="r2",
            registration=Registration(ven_name="ven-a", registration_id=registration_id),
        )
        assert code(post(api, "EiRegisterParty", reregister)) == 200
        assert post(api, "OadrPoll", poll).payload is Payload.DISTRIBUTE_EVENT  # a re-registered VEN gets all again
        assert post(api, "OadrPoll", poll).payload is Payload.RESPONSE
        assert api.post("/v1/controls/peak-1/cancel").status_code in (200, 201)
        changed = post(api, "OadrPoll", OadrMessage(payload=Payload.POLL, ven_id="ven-a"))
        assert changed.payload is Payload.DISTRIBUTE_EVENT
        assert [(e.event_id, e.modification_number, e.status.value) for e in changed.events] == [
            ("peak-1", 1, "cancelled")
        ]
        again = post(api, "EiRegisterParty", OadrMessage(payload=Payload.QUERY_REGISTRATION, request_id="q"))
        assert again.registration is not None and again.registration.registration_id == registration_id
        metrics = api.get("/metrics").text
        assert "tgw_openadr_vens_registered 1" in metrics.splitlines()


def test_refusals_have_2_0b_codes_and_change_nothing(vtn: str, seeded: Store, pki: dict[str, Any]) -> None:
    with https(vtn, pki, "stranger") as stranger:
        answer = post(
            stranger,
            "EiRegisterParty",
            OadrMessage(
                payload=Payload.CREATE_PARTY_REGISTRATION,
                request_id="r",
                registration=Registration(ven_name="stranger"),
            ),
        )
        assert code(answer) == 463 and "fingerprint" in answer.response.description  # type: ignore[union-attr]
    with https(vtn, pki, "ven-b") as bob:
        assert code(post(bob, "OadrPoll", OadrMessage(payload=Payload.POLL, ven_id="ven-b"))) == 463  # unregistered
        assert code(post(bob, "OadrPoll", OadrMessage(payload=Payload.POLL, ven_id="ven-a"))) == 452  # not his
        assert code(post(bob, "EiEvent", OadrMessage(payload=Payload.POLL, ven_id="ven-b"))) == 453  # wrong service
        assert code(post(bob, "EiEvent", b"<oadrPayload>not 2.0b</oadrPayload>")) == 453  # not an OpenADR root
        invalid = (
            b'<oadr:oadrPayload xmlns:oadr="http://openadr.org/oadr-2.0b/2012/07"><oadr:oadrSignedObject>'
            b"<oadr:oadrPoll/></oadr:oadrSignedObject></oadr:oadrPayload>"
        )
        refused = post(bob, "OadrPoll", invalid)
        assert code(refused) == 454 and "venID" in refused.response.description  # type: ignore[union-attr]
        assert code(post(bob, "OadrPoll", b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>")) in (
            453,
            454,
        )
        assert bob.post(f"{VTN_PATH}/EiNothing", content=b"<x/>").status_code == 404
        assert f"{VTN_PATH}/{{service}}" in bob.get("/openapi.json").json()["paths"]  # documented all the same
    assert seeded.get_state("openadr2b", "ven-b", "ven") is None
    reasons = [r.reason for r in seeded.rejections(protocol="openadr2b")]
    assert len(reasons) >= 5


def test_signed_requests_are_verified_and_replays_refused(vtn: str, seeded: Store, pki: dict[str, Any]) -> None:
    issued: Issued = pki["ven-a"]
    signer = MessageSigner(issued.cert.read_bytes(), issued.key.read_bytes())
    other: Issued = pki["ven-b"]
    impostor = MessageSigner(other.cert.read_bytes(), other.key.read_bytes())
    register = OadrMessage(
        payload=Payload.CREATE_PARTY_REGISTRATION,
        request_id="r1",
        registration=Registration(ven_name="ven-a", xml_signature=True),
    )
    with https(vtn, pki) as api:
        signed = signer.sign(codec.encode_tree(register))
        assert code(post(api, "EiRegisterParty", signed)) == 200
        replayed = post(api, "EiRegisterParty", signed)
        assert code(replayed) == 463 and "nonce" in replayed.response.description  # type: ignore[union-attr]
        tampered = signer.sign(codec.encode_tree(register)).replace(b"ven-a", b"ven-b", 1)
        assert code(post(api, "EiRegisterParty", tampered)) in (463, 452)
        wrong_key = post(api, "EiRegisterParty", impostor.sign(codec.encode_tree(register)))
        assert code(wrong_key) == 463  # signed with a certificate that is not the TLS client's
        poll = OadrMessage(payload=Payload.POLL, ven_id="ven-a")
        unsigned = post(api, "OadrPoll", poll)
        assert code(unsigned) == 463 and "must be signed" in unsigned.response.description  # type: ignore[union-attr]
        assert post(api, "OadrPoll", signer.sign(codec.encode_tree(poll))).payload is Payload.DISTRIBUTE_EVENT


def test_a_client_without_a_certificate_is_turned_away_by_tls(vtn: str, pki: dict[str, Any]) -> None:
    context = ssl.create_default_context(cafile=str(pki["ca"].ca_file))
    with (
        httpx.Client(base_url=vtn, verify=context, timeout=10) as anonymous,
        pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
    ):
        anonymous.post(f"{VTN_PATH}/OadrPoll", content=b"<x/>")
