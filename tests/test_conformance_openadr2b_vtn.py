"""The openadr2b-vtn conformance suite against the gateway's own VTN (it must pass), against a deliberately broken
VTN (named cases must fail) and against a closed port (every case fails with the reason; the run completes)."""

from __future__ import annotations

import json
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from certs import Issued, TestCa
from fastapi import FastAPI, Request, Response

from conformance.framework import Outcome, Severity, SuiteResult, Target, get_suite
from conformance.runner import run_suite
from gateway.api import create_app
from gateway.api.server import free_port, serve_in_thread
from gateway.api.tls import server_tls_options
from gateway.config import Settings
from gateway.ingest import Ingestor
from gateway.model import Envelope
from gateway.protocols.openadr2b import codec
from gateway.protocols.openadr2b.messages import (
    EiResponse,
    Event,
    EventSignal,
    EventStatus,
    OadrMessage,
    Payload,
    Registration,
    SignalInterval,
)
from gateway.protocols.openadr2b.messages import (
    Target as OadrTarget,
)
from gateway.protocols.openadr2b.vens import short_fingerprint
from gateway.store import Store

SUITE = "openadr2b-vtn"
PATH = "/OpenADR2/Simple/2.0b"
VEN = "tgw-conformance"
START = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)


def env(object_type: str, /, **payload: Any) -> Envelope:
    return Envelope.model_validate({"payload": {"object_type": object_type, **payload}})


def seed(store: Store, identities: dict[str, str] | None = None) -> None:
    Ingestor(store).ingest_sync(
        [
            env("party", id="utility", name="Utility", roles=["dso"]),
            env("party", id=VEN, name="Conformance harness", roles=["prosumer"], identities=identities or {}),
            env("location", id="feeder", name="Feeder", kind="feeder"),
            env("location", id="sp-h", name="Harness meter", kind="service_point", parent_id="feeder"),
            env("resource", id="h-load", name="Harness load", kind="load", owner_id=VEN, location_id="sp-h"),
        ],
        protocol="test",
        peer="seed",
    )


def curtailment() -> dict[str, Any]:
    return {
        "object_type": "control",
        "id": "conformance-peak",
        "targets": {"party_ids": [VEN]},
        "kind": "level",
        "signal": "dr_level",
        "unit": "level",
        "periods": [
            {"span": {"start": START.isoformat(), "duration": "PT30M"}, "value": "2"},
            {"span": {"start": (START + timedelta(minutes=30)).isoformat(), "duration": "PT30M"}, "value": "1"},
        ],
    }


@pytest.fixture
def gateway_vtn(store: Store) -> Iterator[str]:
    seed(store)
    app = create_app(Settings(market_tick_seconds=0, openadr_insecure=True), store=store)
    with serve_in_thread(app) as base:
        yield base


@pytest.fixture
def gateway_vtn_tls(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TestCa, Issued]]:
    """The VTN as deployed: mutual TLS, the VEN known by its certificate's fingerprint."""
    ca = TestCa(tmp_path_factory.mktemp("pki"), kind="rsa")
    server, client = ca.issue("vtn", server=True), ca.issue(VEN)
    seed(store, {"oadr-fingerprint": short_fingerprint(client.der)})
    app = create_app(Settings(market_tick_seconds=0), store=store)
    options = server_tls_options(str(server.cert), str(server.key), str(ca.ca_file), require_client=True)
    with serve_in_thread(app, **options) as base:
        yield base, ca, client


def by_id(result: SuiteResult) -> dict[str, Any]:
    return {c.id: c for c in result.cases}


def test_the_gateway_vtn_passes_every_required_case(gateway_vtn: str, tmp_path: Path) -> None:
    with httpx.Client(base_url=gateway_vtn, timeout=30) as api:
        assert api.post("/v1/controls", json=curtailment()).status_code in (200, 201)
    seen: list[str] = []
    target = Target(gateway_vtn + PATH, options={"ven_name": VEN, "expect_events": "true"})
    result = run_suite(SUITE, target, tmp_path, on_result=lambda r: seen.append(r.id))
    cases = by_id(result)
    failed = {c.id: c.reason for c in result.cases if c.outcome is not Outcome.PASSED}
    assert not failed, failed
    assert result.ok
    assert seen == [c.id for c in get_suite(SUITE).cases()]  # every case, in order, reported live
    assert cases["OADR-VTN-EVT-006"].outcome is Outcome.PASSED and cases["OADR-VTN-EVT-006"].exchanges
    # the reports
    junit = ET.parse(tmp_path / f"{SUITE}.xml").getroot()
    assert int(junit.find("testsuite").get("tests")) == len(result.cases)  # type: ignore[union-attr]
    data = json.loads((tmp_path / f"{SUITE}.json").read_text())
    assert {c["id"] for c in data["cases"]} == {c.id for c in get_suite(SUITE).cases()}
    assert all({"rule", "severity", "outcome", "duration", "reason", "exchanges"} <= set(c) for c in data["cases"])
    html = (tmp_path / f"{SUITE}.html").read_text()
    assert all(c.id in html for c in result.cases) and "oadrCreatePartyRegistration" in html


def test_over_mutual_tls_every_case_passes(gateway_vtn_tls: tuple[str, TestCa, Issued], tmp_path: Path) -> None:
    base, ca, client = gateway_vtn_tls
    context = ssl.create_default_context(cafile=str(ca.ca_file))
    context.load_cert_chain(str(client.cert), str(client.key))
    with httpx.Client(base_url=base, verify=context, timeout=30) as api:
        assert api.post("/v1/controls", json=curtailment()).status_code in (200, 201)
    target = Target(
        base + PATH,
        cert=str(client.cert),
        key=str(client.key),
        ca=str(ca.ca_file),
        options={"ven_name": VEN, "expect_events": "true"},
    )
    result = run_suite(SUITE, target, tmp_path)
    assert {c.id: c.reason for c in result.cases if c.outcome is not Outcome.PASSED} == {}
    assert result.ok


def test_event_cases_skip_without_events_and_only_selects(gateway_vtn: str, tmp_path: Path) -> None:
    only = ["OADR-VTN-REG-002", "OADR-VTN-EVT-003", "OADR-VTN-EVT-006"]
    result = run_suite(SUITE, Target(gateway_vtn + PATH, options={"ven_name": VEN}), tmp_path, only=only)
    cases = by_id(result)
    assert sorted(cases) == sorted(only)
    assert cases["OADR-VTN-REG-002"].outcome is Outcome.PASSED
    assert cases["OADR-VTN-EVT-003"].outcome is Outcome.SKIPPED and "no event" in cases["OADR-VTN-EVT-003"].reason
    assert result.ok  # skips are not failures...
    expecting = Target(gateway_vtn + PATH, options={"ven_name": VEN, "expect_events": "1"})
    strict = run_suite(SUITE, expecting, tmp_path, only=["OADR-VTN-EVT-003"])
    assert strict.cases[0].outcome is Outcome.FAILED and not strict.ok  # ...unless events were expected


# --- a broken VTN ---------------------------------------------------------------------------------------------------


def broken_vtn() -> FastAPI:
    """Answers everything with schema-valid messages, but: 200 to anyone's poll, currentValue 2 on a far event,
    no EiOpt (an oadrResponse instead of oadrCreatedOpt), and polls still answered after a cancellation."""
    app = FastAPI()

    @app.post(PATH + "/{service}")
    async def answer(service: str, request: Request) -> Response:
        message = codec.decode(await request.body())
        reply = OadrMessage(payload=Payload.RESPONSE, response=EiResponse(request_id=message.request_id), ven_id="v")
        if message.payload in (Payload.CREATE_PARTY_REGISTRATION, Payload.QUERY_REGISTRATION):
            registration = Registration(registration_id="r1", ven_id="v", vtn_id="broken")
            reply = OadrMessage(
                payload=Payload.CREATED_PARTY_REGISTRATION,
                response=EiResponse(request_id=message.request_id),
                ven_id="v",
                vtn_id="broken",
                registration=registration,
            )
        elif message.payload is Payload.CANCEL_PARTY_REGISTRATION:
            reply = OadrMessage(
                payload=Payload.CANCELED_PARTY_REGISTRATION, response=EiResponse(), registration_id="r1", ven_id="v"
            )
        elif message.payload is Payload.REQUEST_EVENT:
            reply = OadrMessage(
                payload=Payload.DISTRIBUTE_EVENT,
                response=EiResponse(request_id=message.request_id),
                request_id="d1",
                vtn_id="broken",
                events=[bad_event()],
            )
        return Response(codec.encode(reply), media_type="application/xml")

    return app


def bad_event() -> Event:
    signal = EventSignal(
        name="SIMPLE",
        type="level",
        id="0",
        intervals=[SignalInterval(uid=0, duration=timedelta(minutes=30), value=Decimal(2))],
        current_value=Decimal(2),
    )
    return Event(
        event_id="e1",
        modification_number=0,
        market_context="http://broken.example",
        created=datetime.now(UTC).replace(microsecond=0),
        status=EventStatus.FAR,
        start=START,
        duration=timedelta(minutes=30),
        signals=[signal],
        target=OadrTarget(ven_ids=["v"]),
    )


def test_a_broken_vtn_fails_named_cases(tmp_path: Path) -> None:
    with serve_in_thread(broken_vtn()) as base:
        result = run_suite(SUITE, Target(base + PATH), tmp_path)
    cases = by_id(result)
    for failing in ("OADR-VTN-POLL-002", "OADR-VTN-EVT-006", "OADR-VTN-OPT-001", "OADR-VTN-REG-004"):
        assert cases[failing].outcome is Outcome.FAILED, failing
    assert "code 200" in cases["OADR-VTN-POLL-002"].reason
    assert "currentValue 2" in cases["OADR-VTN-EVT-006"].reason
    assert cases["OADR-VTN-REG-002"].outcome is Outcome.PASSED
    assert not result.ok
    html = (tmp_path / f"{SUITE}.html").read_text()
    assert "currentValue 2" in html and "oadrDistributeEvent" in html  # why, and what came back


def test_an_unreachable_vtn_fails_every_case_without_crashing(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}{PATH}"  # nothing listens there
    result = run_suite(SUITE, Target(url, timeout=2), tmp_path)
    assert len(result.cases) == len(get_suite(SUITE).cases())
    assert all(c.outcome is Outcome.FAILED and "could not reach the DUT" in c.reason for c in result.cases)
    assert all(c.severity in (Severity.REQUIRED, Severity.RECOMMENDED) for c in result.cases)
    assert not result.ok and (tmp_path / f"{SUITE}.html").exists()
