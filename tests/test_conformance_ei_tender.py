"""The ei-tender conformance suite against the gateway's own EI/CTS service on loopback (every case must pass),
against deliberately broken variants of it (named cases must fail), against a closed port (every case fails with
the connection reason; the run completes), through the CLI, and over mutual TLS with certificate identities.

One gateway serves the module: a market ``m1`` run by ``op``, a location, and two TeMIX parties known by bearer
tokens. The broken variants are an ASGI wrapper around that same app that answers some requests itself or
rewrites them (``Breaker.variant`` selects the misbehaviour for one run), or a patch of the EI service's checks.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from certs import TestCa
from fastapi import FastAPI
from typer.testing import CliRunner

from conformance.framework import Outcome, SuiteResult, Target, get_suite
from conformance.runner import run_suite
from gateway.api import create_app
from gateway.api.server import free_port, serve_in_thread
from gateway.api.tls import server_tls_options
from gateway.cli_conformance import conformance_app
from gateway.config import Settings
from gateway.ingest import Ingestor
from gateway.model import Envelope
from gateway.protocols.ei import json_codec, xml_codec
from gateway.protocols.ei import service as ei_service
from gateway.protocols.ei.identity import token_hash
from gateway.protocols.ei.messages import EiDecodeError, EiMessage, EiResponse, Payload, ResponseCode
from gateway.store import Store

SUITE = "ei-tender"
TOKENS = {"harness": "token-of-the-harness", "other": "token-of-the-other-party"}
ALT_CASES = {f"EI-TND-{n:03d}" for n in (9, 10, 12, 13, 14)}  # need a second party
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def env(object_type: str, /, **payload: Any) -> Envelope:
    return Envelope.model_validate({"payload": {"object_type": object_type, **payload}})


def provision(store: Store, identities: dict[str, dict[str, str]]) -> None:
    """The market, its operator, a location and the two parties, as an operator provisions them."""
    Ingestor(store).ingest_sync(
        [
            env("party", id="op", name="Exchange", roles=["dmo"]),
            *(env("party", id=p, name=p.title(), roles=["prosumer"], identities=i) for p, i in identities.items()),
            env("location", id="sp1", name="Service point 1", kind="service_point"),
            env("market", id="m1", operator_id="op"),
        ],
        protocol="test",
        peer="seed",
    )


class Breaker:
    """The gateway's ASGI app, misbehaving as ``variant`` says (None: passing everything through)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.variant: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        variant = self.variant
        if scope["type"] != "http" or variant is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = dict(scope["headers"])
        xml = headers.get(b"content-type", b"").startswith(b"application/xml")
        codec: Any = xml_codec if xml else json_codec
        media = b"application/xml" if xml else b"application/json"
        try:
            request: EiMessage | None = codec.decode(body)
        except EiDecodeError:
            request = None
        answer = self.misbehave(variant, request)
        if answer is not None:
            encoded = codec.encode(answer)
            start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", media)]}
            await send(start)
            await send({"type": "http.response.body", "body": encoded})
            return
        if variant == "ignore_expiry" and request is not None and request.payload is Payload.CREATE_TENDER:
            request.tenders = [t.model_copy(update={"expires_at": None}) for t in request.tenders]
            body = codec.encode(request)
            scope = dict(scope, headers=[(k, v) for k, v in scope["headers"] if k != b"content-length"])
        replayed = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay() -> Message:
            return replayed.pop() if replayed else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def misbehave(variant: str, request: EiMessage | None) -> EiMessage | None:
        """The answer the broken service gives without asking the gateway, or None to pass the request on."""
        ok = EiResponse(ResponseCode.OK, "OK")
        if variant == "accept_malformed" and request is None:
            return EiMessage(Payload.CREATED_TENDER, tender_ids=["accepted"], response=ok)
        if request is None:
            return None
        if variant == "cancel_keeps_open" and request.payload is Payload.CANCEL_TENDER:
            return EiMessage(Payload.CANCELED_TENDER, request.request_id, tender_ids=request.tender_ids, response=ok)
        if variant == "positions_ignore_trades" and request.payload is Payload.REQUEST_POSITION:
            return EiMessage(Payload.REPLY_POSITION, request.request_id, request.party_id, response=ok)
        return None


@dataclass
class Gateway:
    base: str
    breaker: Breaker

    def target(self, **options: str) -> Target:
        defaults = {"party": "harness", "token": TOKENS["harness"], "market": "m1", "location": "sp1"}
        alt = {"alt_party": "other", "alt_token": TOKENS["other"]}
        return Target(self.base + "/ei/v1", timeout=10, options=defaults | alt | options)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("ei-conformance")
    store = Store(f"sqlite:///{folder / 'store.db'}")
    provision(store, {party: {"ei-token-sha256": token_hash(token)} for party, token in TOKENS.items()})
    breaker = Breaker(create_app(Settings(market_tick_seconds=0), store=store))
    with serve_in_thread(cast(FastAPI, breaker)) as base:
        yield Gateway(base, breaker)
    store.close()


def by_id(result: SuiteResult) -> dict[str, Any]:
    return {c.id: c for c in result.cases}


def not_passed(result: SuiteResult) -> dict[str, str]:
    return {c.id: f"{c.outcome.value}: {c.reason}" for c in result.cases if c.outcome is not Outcome.PASSED}


@pytest.mark.parametrize("fmt", ["both", "xml"])
def test_the_gateway_passes_every_case(gateway: Gateway, tmp_path: Path, fmt: str) -> None:
    """With --format both the lifecycle cases speak CTS JSON; with xml they speak EI 1.0 XML (the JSON cases skip)."""
    gateway.breaker.variant = None
    seen: list[str] = []
    result = run_suite(SUITE, gateway.target(format=fmt), tmp_path, on_result=lambda r: seen.append(r.id))
    if fmt == "xml":
        assert {c.id: c.outcome for c in result.cases if c.outcome is not Outcome.PASSED} == {
            "EI-TND-018": Outcome.SKIPPED,
            "EI-TND-023": Outcome.SKIPPED,
        }
        assert result.ok and "<emix:quantity>-5</emix:quantity>" in by_id(result)["EI-TND-021"].exchanges[-2].request
        return
    assert not_passed(result) == {}
    assert result.ok
    assert seen == [c.id for c in get_suite(SUITE).cases()]  # every case, in file order, reported live
    assert len(seen) == 23 and len(set(seen)) == 23
    cases = by_id(result)
    assert any("eiCreateTransaction" in (e.note or "") for e in cases["EI-TND-013"].exchanges)
    assert any(e.status == 409 for e in cases["EI-TND-007"].exchanges)
    # the reports
    junit = ET.parse(tmp_path / f"{SUITE}.xml").getroot()
    assert int(junit.find("testsuite").get("tests")) == len(result.cases)  # type: ignore[union-attr]
    data = json.loads((tmp_path / f"{SUITE}.json").read_text())
    assert {c["id"] for c in data["cases"]} == set(seen) and data["ok"] is True
    html = (tmp_path / f"{SUITE}.html").read_text()
    assert all(case_id in html for case_id in seen)
    assert "eiCreatedTender" in html and "eiReplyPosition" in html  # what was sent and what came back


def test_cases_needing_options_skip_with_the_reason(gateway: Gateway, tmp_path: Path) -> None:
    gateway.breaker.variant = None
    target = gateway.target(format="json", alt_party="", alt_token="")
    result = run_suite(SUITE, target, tmp_path)
    cases = by_id(result)
    skipped = {c.id for c in result.cases if c.outcome is Outcome.SKIPPED}
    assert skipped == ALT_CASES | {"EI-TND-017", "EI-TND-022"}
    assert all("--alt-party" in cases[i].reason for i in ALT_CASES)
    assert "does not speak XML" in cases["EI-TND-022"].reason
    assert cases["EI-TND-016"].outcome is Outcome.PASSED  # expiry without a second party: no longer open
    assert result.ok


def test_missing_options_fail_every_case_with_the_reason(gateway: Gateway, tmp_path: Path) -> None:
    result = run_suite(SUITE, Target(gateway.base + "/ei/v1"), tmp_path, only=["EI-TND-001", "EI-TND-019"])
    assert [c.outcome for c in result.cases] == [Outcome.FAILED, Outcome.FAILED]
    assert all("--party, --market, --location" in c.reason for c in result.cases)
    bad = gateway.target(format="yaml")
    assert "--format yaml" in run_suite(SUITE, bad, tmp_path, only=["EI-TND-001"]).cases[0].reason


def cid(number: int) -> str:
    return f"EI-TND-{number:03d}"


BROKEN = [
    # variant, cases run, the case(s) that must fail, a piece of the first one's reason, a case that must pass
    ("accept_malformed", [17, 18, 1], [17, 18], "HTTP 200", 1),
    ("cancel_keeps_open", [6, 7, 8, 4], [6, 7, 8], "still among the market's open tenders", 4),
    ("positions_ignore_trades", [13, 12], [13], "moved by 0 kW, expected -5 kW", 12),
    ("ignore_expiry", [15, 16, 2], [15, 16], "expected responseCode 410", 2),
    ("anyone_acts", [10, 9, 6], [10, 9], "expected responseCode 403", 6),
    ("past_intervals", [20, 19], [20], "expected responseCode 410/422", 19),
]


def patch_service(variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The misbehaviours that live in the service's own checks rather than on the wire."""
    if variant == "anyone_acts":  # a tender's owner is never checked: anyone creates or cancels anyone's tenders
        monkeypatch.setattr(ei_service.EiService, "_own", lambda self, objects, party_id, what: None)
    if variant == "past_intervals":  # every interval looks still to come
        monkeypatch.setattr(ei_service, "interval_end", lambda start, *args: start + timedelta(days=36500))


@pytest.mark.parametrize(("variant", "only", "failing", "reason", "passing"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_service_fails_named_cases(
    gateway: Gateway,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variant: str,
    only: list[int],
    failing: list[int],
    reason: str,
    passing: int,
) -> None:
    patch_service(variant, monkeypatch)
    gateway.breaker.variant = None if variant in ("anyone_acts", "past_intervals") else variant
    try:
        result = run_suite(SUITE, gateway.target(), tmp_path, only=[cid(n) for n in only])
    finally:
        gateway.breaker.variant = None
    cases = by_id(result)
    for name in map(cid, failing):
        assert cases[name].outcome is Outcome.FAILED, (name, cases[name].outcome, cases[name].reason)
    assert reason in cases[cid(failing[0])].reason, cases[cid(failing[0])].reason
    assert cases[cid(passing)].outcome is Outcome.PASSED, (passing, cases[cid(passing)].reason)
    assert not result.ok


def test_a_closed_port_fails_every_case_without_crashing(tmp_path: Path) -> None:
    dead = Gateway(f"http://127.0.0.1:{free_port()}", Breaker(FastAPI()))  # nothing listens there
    target = dead.target()
    result = run_suite(SUITE, Target(target.url, timeout=2, options=target.options), tmp_path)
    assert len(result.cases) == len(get_suite(SUITE).cases())
    assert {c.id: c.reason for c in result.cases if "could not reach the DUT" not in c.reason} == {}
    assert all(c.outcome is Outcome.FAILED and c.exchanges and c.exchanges[0].error for c in result.cases)
    assert not result.ok and (tmp_path / f"{SUITE}.html").exists()


def test_the_cli_runs_the_suite(gateway: Gateway, tmp_path: Path) -> None:
    gateway.breaker.variant = None
    runner = CliRunner()
    listing = runner.invoke(conformance_app, ["list", SUITE])
    assert listing.exit_code == 0 and "EI-TND-013" in listing.output and "recommended" in listing.output
    args = ["run", SUITE, "--target", gateway.base + "/ei/v1", "--report-dir", str(tmp_path)]
    args += ["--party", "harness", "--token", TOKENS["harness"], "--market", "m1", "--location", "sp1"]
    args += ["--alt-party", "other", "--alt-token", TOKENS["other"], "--format", "xml", "--option", "lead_intervals=5"]
    result = runner.invoke(conformance_app, [*args, "--only", "EI-TND-013,EI-TND-022,EI-TND-023"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / f"{SUITE}.json").read_text())
    outcomes = {c["id"]: c["outcome"] for c in data["cases"]}
    assert outcomes == {"EI-TND-013": "passed", "EI-TND-022": "passed", "EI-TND-023": "skipped"}
    sent = data["cases"][0]["exchanges"][0]["request"]
    assert sent.startswith("<?xml")  # --format xml: the lifecycle cases speak XML
    start = datetime.fromisoformat(sent.split("<xcal:dateTime>")[1].split("</xcal:dateTime>")[0])
    assert start - datetime.now(start.tzinfo) > timedelta(hours=4)  # --option lead_intervals=5
    bad = runner.invoke(conformance_app, [*args, "--option", "no-equals-sign"])
    assert bad.exit_code == 2 and "NAME=VALUE" in bad.output


def test_over_mutual_tls_parties_are_known_by_their_certificates(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    ca = TestCa(tmp_path / "pki")
    server, harness, other = ca.issue("gateway", server=True), ca.issue("harness"), ca.issue("other")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    provision(
        store,
        {p: {"tls-sha256": hashlib.sha256(i.der).hexdigest()} for p, i in (("harness", harness), ("other", other))},
    )
    app = create_app(Settings(market_tick_seconds=0), store=store)
    tls = server_tls_options(str(server.cert), str(server.key), str(ca.ca_file), require_client=True)
    only = ["EI-TND-001", "EI-TND-009", "EI-TND-010", "EI-TND-011", "EI-TND-013", "EI-TND-022"]
    options = {"party": "harness", "market": "m1", "location": "sp1", "alt_party": "other"}
    options |= {"alt_cert": str(other.cert), "alt_key": str(other.key)}
    try:
        with serve_in_thread(app, **tls) as base:
            target = Target(base + "/ei/v1", str(harness.cert), str(harness.key), str(ca.ca_file), 10, options)
            result = run_suite(SUITE, target, tmp_path / "reports", only=only)
    finally:
        store.close()
    assert not_passed(result) == {"EI-TND-011": "skipped: " + by_id(result)["EI-TND-011"].reason}
    assert "client certificate" in by_id(result)["EI-TND-011"].reason
    assert result.ok
