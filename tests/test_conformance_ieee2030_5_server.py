"""The ieee2030_5-server conformance suite against the gateway's own 2030.5 server over mutual TLS (every case must
pass), against deliberately broken variants of it (named cases must fail) and against a closed port (every case
fails with the connection reason; the run completes).

One gateway serves the whole module: a provisioned device (PIN 111115), a control active now and a newer one that
supersedes it. The broken variants are an ASGI wrapper around that same app that rewrites requests or answers;
``Breaker.variant`` selects the misbehaviour for one run.
"""

from __future__ import annotations

import dataclasses
import json
import re
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from certs import Issued, TestCa
from fastapi import FastAPI
from lxml import etree
from typer.testing import CliRunner

from conformance.framework import Outcome, SuiteResult, Target, get_suite
from conformance.ieee2030_5_harness import sfdi_of_lfdi, stranger_lfdi
from conformance.runner import run_suite
from gateway.api import create_app
from gateway.api.server import free_port, serve_in_thread
from gateway.api.tls import server_tls_options
from gateway.cli_conformance import conformance_app
from gateway.config import Settings
from gateway.protocols.ieee2030_5 import codec
from gateway.protocols.ieee2030_5 import models as m
from gateway.protocols.ieee2030_5.identity import lfdi_of_certificate
from gateway.store import Store

SUITE = "ieee2030_5-server"
PIN = "111115"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Breaker:
    """The gateway's ASGI app, misbehaving as ``variant`` says (None: passing everything through)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.variant: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        variant = self.variant
        if scope["type"] != "http" or variant is None:
            await self.app(scope, receive, send)
            return
        if variant == "ignore_paging":  # every list comes whole, whatever s and l say
            query = [(k, v) for k, v in parse_qsl(scope["query_string"].decode()) if k not in ("s", "l")]
            scope = dict(scope, query_string=urlencode([*query, ("l", "255")]).encode())
        if variant == "accept_malformed" and scope["method"] == "POST":
            body, more = b"", True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
            try:
                etree.fromstring(body)
            except etree.XMLSyntaxError:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            replayed = [{"type": "http.request", "body": body, "more_body": False}]

            async def replay() -> Message:
                return replayed.pop() if replayed else await receive()

            receive = replay
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            body = b"".join(chunks)
            if scope["method"] == "GET":
                body = self.rewrite(variant, scope["path"], body)
            if variant == "text_xml":
                headers = [(k, b"text/xml" if k.lower() == b"content-type" else v) for k, v in headers]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)

    @staticmethod
    def rewrite(variant: str, path: str, body: bytes) -> bytes:
        if not body.startswith(b"<"):
            return body
        if variant == "other_device" and path == "/edev":
            listing = codec.decode(body, m.EndDeviceList)
            lfdi = stranger_lfdi()
            other = m.EndDevice(href=f"/edev/{sfdi_of_lfdi(lfdi)}", lFDI=lfdi, sFDI=sfdi_of_lfdi(lfdi), changedTime=0)
            listing.EndDevice.append(other)
            listing.all += 1
            listing.results += 1
            return codec.encode(listing)
        if variant == "wrong_sfdi":
            return re.sub(rb"<sFDI>\d+</sFDI>", f"<sFDI>{sfdi_of_lfdi(stranger_lfdi())}</sFDI>".encode(), body)
        if variant == "no_event_status":
            return re.sub(rb"<EventStatus>.*?</EventStatus>", b"", body)
        if variant == "bad_mrid" and "/derc" in path:
            return re.sub(rb"<mRID>([0-9A-F]{8})[0-9A-F]{24}</mRID>", rb"<mRID>\1</mRID>", body)
        return body


@dataclass
class Gateway:
    base: str
    ca: TestCa
    device: Issued
    stranger: Issued
    listener: Issued
    breaker: Breaker
    app: FastAPI

    def api(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.ca.ca_file))
        context.load_cert_chain(str(self.device.cert), str(self.device.key))
        return httpx.Client(base_url=self.base, verify=context, timeout=30)

    def target(self, **options: str) -> Target:
        return Target(
            self.base,
            cert=str(self.device.cert),
            key=str(self.device.key),
            ca=str(self.ca.ca_file),
            timeout=10,
            options=options,
        )


def control(ident: str, value: str, start: datetime, duration: str, created: datetime) -> dict[str, Any]:
    return {
        "id": ident,
        "targets": {"resource_ids": ["inv-harness"]},
        "kind": "limit",
        "signal": "real_power",
        "unit": "percent",
        "created_at": created.isoformat(),
        "periods": [{"span": {"start": start.isoformat(), "duration": duration}, "value": value}],
    }


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("sep2-conformance")
    ca = TestCa(folder)
    server, device, stranger = ca.issue("localhost", server=True), ca.issue("inverter"), ca.issue("stranger")
    listener = ca.issue("listener", server=True)  # the harness's notification endpoint (SAN 127.0.0.1)
    store = Store(f"sqlite:///{folder / 'store.db'}")
    app = create_app(Settings(market_tick_seconds=0, ieee2030_5_notify_ca=str(ca.ca_file)), store=store)
    breaker = Breaker(app)
    tls = server_tls_options(str(server.cert), str(server.key), str(ca.ca_file), require_client=True)
    with serve_in_thread(cast(FastAPI, breaker), **tls) as base:
        gw = Gateway(base, ca, device, stranger, listener, breaker, app)
        now = datetime.now(UTC).replace(microsecond=0)
        identities = {"lfdi": lfdi_of_certificate(device.der), "ieee2030_5-pin": PIN}
        with gw.api() as api:
            for path, body in (
                ("/v1/parties", {"id": "harness", "name": "Harness", "roles": ["prosumer"]}),
                ("/v1/locations", {"id": "site-h", "name": "Harness site", "kind": "service_point"}),
                (
                    "/v1/resources",
                    {
                        "id": "inv-harness",
                        "name": "Harness PV",
                        "kind": "pv",
                        "owner_id": "harness",
                        "location_id": "site-h",
                        "ratings": {"max_kw": "5"},
                        "identities": identities,
                    },
                ),
                # active since 10 minutes ago; superseded 2 minutes ago by the newer, deeper curtailment below
                (
                    "/v1/controls",
                    control("curtail-1", "50", now - timedelta(minutes=10), "PT1H", now - timedelta(minutes=20)),
                ),
                (
                    "/v1/controls",
                    control("curtail-2", "30", now - timedelta(minutes=2), "PT30M", now - timedelta(minutes=5)),
                ),
            ):
                answer = api.post(path, json=body)
                assert answer.status_code in (200, 201), (path, answer.text)
        yield gw
    store.close()


def by_id(result: SuiteResult) -> dict[str, Any]:
    return {c.id: c for c in result.cases}


def change_controls_once_subscribed(gw: Gateway) -> threading.Thread:
    """Plays the operator of S2030-SRV-SUB-002: once the harness has subscribed, a new control for the device."""

    def run() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not gw.app.state.sep2.notifier.subscriptions:
            time.sleep(0.05)
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
        with gw.api() as api:
            api.post("/v1/controls", json=control("curtail-3", "70", start, "PT30M", datetime.now(UTC)))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_the_gateway_server_passes_every_case(gateway: Gateway, tmp_path: Path) -> None:
    gateway.breaker.variant = None
    seen: list[str] = []
    target = gateway.target(
        pin=PIN,
        alt_cert=str(gateway.stranger.cert),
        alt_key=str(gateway.stranger.key),
        listen_cert=str(gateway.listener.cert),
        listen_key=str(gateway.listener.key),
        expect_events="true",
        expect_notification="true",
        notify_wait="20",
    )
    operator = change_controls_once_subscribed(gateway)
    result = run_suite(SUITE, target, tmp_path, on_result=lambda r: seen.append(r.id))
    operator.join(timeout=5)
    failed = {c.id: c.reason for c in result.cases if c.outcome is not Outcome.PASSED}
    assert failed == {}
    assert result.ok
    assert seen == [c.id for c in get_suite(SUITE).cases()]
    cases = by_id(result)
    assert cases["S2030-SRV-DERC-003"].exchanges and cases["S2030-SRV-SUB-002"].exchanges
    data = json.loads((tmp_path / f"{SUITE}.json").read_text())
    assert {c["id"] for c in data["cases"]} == set(seen)
    html = (tmp_path / f"{SUITE}.html").read_text()
    assert "S2030-SRV-PAGE-001" in html and "DERControlList" in html


def test_option_cases_skip_without_their_options(gateway: Gateway, tmp_path: Path) -> None:
    gateway.breaker.variant = None
    only = ["S2030-SRV-REG-002", "S2030-SRV-SEC-005", "S2030-SRV-SUB-002", "S2030-SRV-EDEV-001"]
    result = run_suite(SUITE, gateway.target(), tmp_path, only=only)
    cases = by_id(result)
    assert cases["S2030-SRV-EDEV-001"].outcome is Outcome.PASSED
    for skipped, why in (("REG-002", "--pin"), ("SEC-005", "--alt-cert"), ("SUB-002", "--expect-notification")):
        assert cases[f"S2030-SRV-{skipped}"].outcome is Outcome.SKIPPED, skipped
        assert why in cases[f"S2030-SRV-{skipped}"].reason
    assert result.ok
    wrong_pin = run_suite(SUITE, gateway.target(pin="123450"), tmp_path, only=["S2030-SRV-REG-002"])
    assert wrong_pin.cases[0].outcome is Outcome.FAILED and "123450" in wrong_pin.cases[0].reason


BROKEN = [
    # variant, cases run, the case(s) that must fail, a piece of the reason, a case that must still pass
    (
        "text_xml",
        ["S2030-SRV-DCAP-001", "S2030-SRV-TIME-001"],
        ["S2030-SRV-DCAP-001", "S2030-SRV-TIME-001"],
        "text/xml",
        None,
    ),
    (
        "other_device",
        ["S2030-SRV-EDEV-001", "S2030-SRV-EDEV-002"],
        ["S2030-SRV-EDEV-002"],
        "other devices",
        "S2030-SRV-EDEV-001",
    ),
    (
        "wrong_sfdi",
        ["S2030-SRV-EDEV-001", "S2030-SRV-TIME-001"],
        ["S2030-SRV-EDEV-001"],
        "the certificate's is",
        "S2030-SRV-TIME-001",
    ),
    (
        "ignore_paging",
        ["S2030-SRV-PAGE-001", "S2030-SRV-DERP-001"],
        ["S2030-SRV-PAGE-001"],
        "exceeds l",
        "S2030-SRV-DERP-001",
    ),
    (
        "accept_malformed",
        ["S2030-SRV-SEC-002", "S2030-SRV-SEC-004"],
        ["S2030-SRV-SEC-002"],
        "HTTP 200",
        "S2030-SRV-SEC-004",
    ),
    (
        "no_event_status",
        ["S2030-SRV-DERC-001", "S2030-SRV-FSA-001"],
        ["S2030-SRV-DERC-001"],
        "EventStatus",
        "S2030-SRV-FSA-001",
    ),
    (
        "bad_mrid",
        ["S2030-SRV-DERC-001", "S2030-SRV-DERP-001"],
        ["S2030-SRV-DERC-001"],
        "not 128 bits",
        "S2030-SRV-DERP-001",
    ),
]


@pytest.mark.parametrize(("variant", "only", "failing", "reason", "passing"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_server_fails_named_cases(
    gateway: Gateway,
    tmp_path: Path,
    variant: str,
    only: list[str],
    failing: list[str],
    reason: str,
    passing: str | None,
) -> None:
    gateway.breaker.variant = variant
    try:
        result = run_suite(SUITE, gateway.target(), tmp_path, only=only)
    finally:
        gateway.breaker.variant = None
    cases = by_id(result)
    for name in failing:
        assert cases[name].outcome is Outcome.FAILED, (name, cases[name].outcome, cases[name].reason)
    assert reason in cases[failing[0]].reason, cases[failing[0]].reason
    if passing is not None:
        assert cases[passing].outcome is Outcome.PASSED, (passing, cases[passing].reason)
    assert not result.ok


def test_a_server_without_the_2030_5_suite_fails_the_strict_handshake_case(gateway: Gateway, tmp_path: Path) -> None:
    """The same gateway app behind uvicorn's default TLS suites (Python's, which leave CCM out): every other case
    still reaches it, but a device offering only TLS 1.2 with ECDHE-ECDSA-AES128-CCM8 cannot."""
    server = gateway.ca.issue("localhost-default-suites", server=True)
    tls = server_tls_options(str(server.cert), str(server.key), str(gateway.ca.ca_file), require_client=True)
    del tls["ssl_ciphers"]
    with serve_in_thread(gateway.app, **tls) as base:
        target = dataclasses.replace(gateway.target(), url=base.replace("127.0.0.1", "localhost"))
        result = run_suite(SUITE, target, tmp_path, only=["S2030-SRV-SEC-006", "S2030-SRV-DCAP-001"])
    cases = by_id(result)
    assert cases["S2030-SRV-DCAP-001"].outcome is Outcome.PASSED, cases["S2030-SRV-DCAP-001"].reason
    strict = cases["S2030-SRV-SEC-006"]
    assert strict.outcome is Outcome.FAILED and "ECDHE-ECDSA-AES128-CCM8" in strict.reason, strict.reason
    assert strict.exchanges and strict.exchanges[0].error, strict.exchanges


def test_a_closed_port_fails_every_case_without_crashing(tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{free_port()}/dcap"  # nothing listens there
    result = run_suite(SUITE, Target(url, timeout=2), tmp_path)
    assert len(result.cases) == len(get_suite(SUITE).cases())
    assert {c.id: c.reason for c in result.cases if "could not reach the DUT" not in c.reason} == {}
    assert all(c.outcome is Outcome.FAILED for c in result.cases)
    assert not result.ok and (tmp_path / f"{SUITE}.html").exists()


def test_the_cli_lists_the_suite() -> None:
    listing = CliRunner().invoke(conformance_app, ["list", SUITE])
    assert listing.exit_code == 0 and "S2030-SRV-EDEV-001" in listing.output and "recommended" in listing.output
