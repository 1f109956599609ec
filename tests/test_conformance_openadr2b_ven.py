"""The openadr2b-ven conformance suite against the gateway's own VEN (the northbound VenBridge: every required case
must pass), against plain openleadr OpenADRClient (its known gaps, named), against a hand-made VEN over mutual TLS
(every case passes), against deliberately broken variants of that VEN (each fails the named cases, and only
those), and against no VEN, garbage and a VEN without a client certificate (every case fails with the reason, the
run completes).

The suite's harness is a VTN the VEN polls, started inside ``run_suite``; each VEN here runs in a thread of its own
and waits for the harness's port before registering, as a vendor starts their VEN after starting the run. The
harness asks for 1-second polls (the least an xcal duration can say) and ``--timeout`` is short, so a VEN that does
not answer costs about a second per step.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from certs import TestCa
from hand_ven import HandVen
from openleadr import OpenADRClient
from typer.testing import CliRunner

from conformance.framework import Outcome, Severity, SuiteResult, Target, get_suite
from conformance.runner import run_suite
from gateway.api.server import free_port
from gateway.bus import Bus
from gateway.cli_conformance import conformance_app
from gateway.ingest import Ingestor
from gateway.model import Control, ControlStatus, Envelope, MessageKind
from gateway.protocols.openadr2b.bridge import Received, VenBridge
from gateway.store import Store

SUITE = "openadr2b-ven"
PATH = "/OpenADR2/Simple/2.0b"
QUICK = {"poll_freq": "1", "ven_wait": "30"}
ALL_CASES = [c.id for c in get_suite(SUITE).cases()]


def harness_url(scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{free_port()}{PATH}"


def not_passed(result: SuiteResult) -> dict[str, str]:
    return {c.id: c.outcome.value for c in result.cases if c.outcome is not Outcome.PASSED}


def reason(result: SuiteResult, case_id: str) -> str:
    return next(c.reason for c in result.cases if c.id == case_id)


class Background:
    """An asyncio VEN in a thread of its own (``run_suite`` blocks the test's thread; the VEN must keep polling).
    ``main`` runs until the block ends, then its stop event is set."""

    def __init__(self, main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        self.main = main
        self.errors: list[str] = []
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        self.ready.set()
        try:
            await self.main(self.stop)
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> Background:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(20)


async def port_open(url: str) -> None:
    """Wait until the harness listens at ``url`` (it starts inside run_suite, after the VEN)."""
    parts = httpx.URL(url)
    deadline = time.monotonic() + 30
    while True:
        try:
            _, writer = await asyncio.open_connection(parts.host, parts.port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


# --- (1) the gateway's own VEN ---------------------------------------------------------------------------------------


def env(object_type: str, /, **payload: Any) -> Envelope:
    return Envelope.model_validate({"payload": {"object_type": object_type, **payload}})


@pytest.fixture
def bridge_store(tmp_path: Path) -> Iterator[Store]:
    """Party "ann" with a heat pump metered a quarter-hour ago (its telemetry is what REP-004 receives)."""
    store = Store(f"sqlite:///{tmp_path / 'bridge.db'}")
    now = datetime.now(UTC)
    metered = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0) - timedelta(minutes=15)
    Ingestor(store).ingest_sync(
        [
            env("party", id="ann", name="Ann", roles=["prosumer"]),
            env("location", id="feeder", name="Feeder", kind="feeder"),
            env("location", id="sp-ann", name="Ann's meter", kind="service_point", parent_id="feeder"),
            env("resource", id="ann-hvac", name="Heat pump", kind="heat_pump", owner_id="ann", location_id="sp-ann"),
            env(
                "delivery",
                id="d1",
                party_id="ann",
                location_id="sp-ann",
                resource_id="ann-hvac",
                interval={"start": metered.isoformat(), "duration": "PT15M"},
                quantity="1.5",
            ),
        ],
        protocol="test",
        peer="seed",
    )
    yield store
    store.close()


def test_the_gateway_ven_bridge_passes_every_required_case(bridge_store: Store, tmp_path: Path) -> None:
    """The bridge registers, answers every event version, notices the implied cancellation (its canonical control
    is cancelled), delivers its telemetry, and sends an oadrCreateOpt when Ann opts out of the last event."""
    url = harness_url()
    notices: list[Received] = []

    async def bridge_ven(stop: asyncio.Event) -> None:
        await port_open(url)
        bus = Bus()
        bridge = VenBridge(
            bridge_store,
            Ingestor(bridge_store, bus),
            vtn_url=url,
            ven_name="tgw-bridge",
            party_id="ann",
            poll_seconds=1,
            override_check_seconds=None,
        )

        def opt_out_of_the_last_event(notice: Received) -> None:
            notices.append(notice)
            if notice.event_id.endswith("-E3") and notice.status == "far":  # E3 stays live to the end of the run
                override = env(
                    "override",
                    id="ann-skips-e3",
                    party_id="ann",
                    subject={"kind": "control", "id": notice.object_ids[0]},
                    mode="opt_out",
                    reason="economic",
                    span={"start": datetime.now(UTC).isoformat(), "duration": "P7D"},
                )
                asyncio.get_running_loop().create_task(bridge.ingestor.ingest([override], protocol="api", peer="ann"))

        bridge.listeners.append(opt_out_of_the_last_event)
        await bridge.start()
        await stop.wait()
        await bridge.stop()
        await bus.close()

    seen: list[str] = []
    options = QUICK | {"expect_ven_name": "tgw-bridge", "opt_wait": "5"}
    with Background(bridge_ven) as ven:
        result = run_suite(
            SUITE, Target(url, timeout=3, options=options), tmp_path, on_result=lambda r: seen.append(r.id)
        )
    assert ven.errors == []
    # openleadr, inside the bridge, drops a schema-invalid message silently: the one (recommended) miss
    assert not_passed(result) == {"OADR-VEN-ERR-002": "failed"}, [(c.id, c.reason) for c in result.cases]
    assert result.ok and seen == ALL_CASES
    # what the bridge made of the script: E1 and E2 (left out of the list) cancelled, E3 opted out of
    controls = {n.event_id.rsplit("-", 1)[-1]: n.object_ids[0] for n in notices if n.object_ids}
    for event in ("E1", "E2"):
        found = bridge_store.get(MessageKind.CONTROL, controls[event])
        assert isinstance(found, Control) and found.status is ControlStatus.CANCELLED, event
    assert any(n.event_id.endswith("-E3") and n.note == "oadrCreateOpt optOut" for n in notices)
    # the reports
    junit = ET.parse(tmp_path / f"{SUITE}.xml").getroot()
    assert int(junit.find("testsuite").get("tests")) == len(ALL_CASES)  # type: ignore[union-attr]
    data = json.loads((tmp_path / f"{SUITE}.json").read_text())
    assert [c["id"] for c in data["cases"]] == ALL_CASES
    html = (tmp_path / f"{SUITE}.html").read_text()
    assert "oadrCreatePartyRegistration" in html and "oadrCreatedEvent" in html and "oadrCreateOpt" in html


# --- (2) openleadr's OpenADRClient, as it comes --------------------------------------------------------------------


def test_plain_openleadr_client_passes_the_required_cases(tmp_path: Path) -> None:
    """openleadr 0.5.36 with an on_event handler and one report (see docs/openleadr-0.5.36.md): it sends no opt
    unprompted (skipped) and ignores a schema-invalid message without telling the VTN (recommended)."""
    url = harness_url()

    async def openleadr_ven(stop: asyncio.Event) -> None:
        await port_open(url)
        client = OpenADRClient(ven_name="openleadr-ven", vtn_url=url, show_fingerprint=False)
        client.add_handler("on_event", lambda event: "optIn")
        client.add_handler("on_update_event", lambda event: "optIn")
        client.add_report(
            lambda: 230.0,
            "device-1",
            measurement="voltage",
            report_duration=timedelta(hours=1),
            sampling_rate=timedelta(seconds=10),
        )
        await client.run()
        await stop.wait()
        await client.stop()

    with Background(openleadr_ven) as ven:
        result = run_suite(SUITE, Target(url, timeout=3, options=QUICK), tmp_path)
    assert ven.errors == []
    assert not_passed(result) == {"OADR-VEN-OPT-001": "skipped", "OADR-VEN-ERR-002": "failed"}, [
        (c.id, c.reason) for c in result.cases
    ]
    assert "said nothing about the schema-invalid" in reason(result, "OADR-VEN-ERR-002")
    assert result.ok


# --- (3) a hand-made VEN: whole over mutual TLS, and broken ------------------------------------------------------


def test_a_correct_ven_over_mutual_tls_passes_every_case(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ca = TestCa(tmp_path_factory.mktemp("pki"), kind="rsa")
    vtn, client = ca.issue("localhost", server=True), ca.issue("hand-ven")
    url = harness_url("https")
    context = ssl.create_default_context(cafile=str(ca.ca_file))
    context.load_cert_chain(str(client.cert), str(client.key))
    target = Target(url, cert=str(vtn.cert), key=str(vtn.key), ca=str(ca.ca_file), timeout=1.5, options=QUICK)
    ven = HandVen(url, tls=context).start()
    try:
        result = run_suite(SUITE, target, tmp_path)
    finally:
        ven.stop()
    assert ven.errors == []
    assert not_passed(result) == {"OADR-VEN-OPT-001": "skipped"}, [(c.id, c.reason) for c in result.cases]


BROKEN = [
    pytest.param(
        "no_created_event",
        {"OADR-VEN-EVT-002", "OADR-VEN-EVT-003"},
        "no answer to a new event",
        ["OADR-VEN-REG-001", "OADR-VEN-EVT-002", "OADR-VEN-EVT-003"],  # every later event step would wait too
        id="never-answers-events",
    ),
    pytest.param(
        "stale_modification",
        {"OADR-VEN-EVT-004", "OADR-VEN-EVT-005"},
        "names modificationNumber 0, the event sent has 1",
        None,
        id="wrong-modification-number",
    ),
    pytest.param(
        "ignore_cancellation",
        {"OADR-VEN-EVT-005"},
        "no answer to the cancellation of that event",
        None,
        id="ignores-cancellation",
    ),
    pytest.param("keep_dropped", {"OADR-VEN-EVT-006"}, "which the VTN dropped", None, id="misses-implied-cancellation"),
    pytest.param(
        "local_time", {"OADR-VEN-GEN-002", "OADR-VEN-GEN-005"}, "createdDateTime '", None, id="local-time-datetimes"
    ),
    pytest.param("no_report", {"OADR-VEN-REP-004"}, "no oadrUpdateReport for reportRequestID", None, id="no-report"),
    pytest.param("fast_polls", {"OADR-VEN-POLL-002"}, "on average over", None, id="polls-too-often"),
    pytest.param(
        "accept_invalid",
        {"OADR-VEN-ERR-001", "OADR-VEN-ERR-002"},  # both recommended: the verdict stays PASS
        "from a schema-invalid message",
        None,
        id="accepts-schema-invalid-events",
    ),
]


@pytest.mark.parametrize(("defect", "failing", "why", "only"), BROKEN)
def test_a_broken_ven_fails_the_named_cases(
    defect: str, failing: set[str], why: str, only: list[str] | None, tmp_path: Path
) -> None:
    url = harness_url()
    ven = HandVen(url, defect).start()
    try:
        result = run_suite(SUITE, Target(url, timeout=1.5, options=QUICK), tmp_path, only=only)
    finally:
        ven.stop()
    assert ven.errors == []
    failed = {c.id for c in result.cases if c.outcome is Outcome.FAILED}
    assert failed == failing, [(c.id, c.reason) for c in result.cases if c.outcome is not Outcome.PASSED]
    first = sorted(failing)[0]
    assert why in reason(result, first), reason(result, first)
    required = {c.id for c in get_suite(SUITE).cases() if c.severity is Severity.REQUIRED}
    assert result.ok is not (failing & required)
    assert why.split("'")[0] in (tmp_path / f"{SUITE}.html").read_text()  # the report says why


def test_the_assigned_ven_id_and_the_expected_name(tmp_path: Path) -> None:
    url = harness_url()
    ven = HandVen(url, name="hand-ven").start()
    options = QUICK | {"ven_id": "VEN-FROM-OPERATOR", "expect_ven_name": "someone-else"}
    try:
        result = run_suite(SUITE, Target(url, timeout=1.5, options=options), tmp_path, only=["OADR-VEN-REG-001"])
    finally:
        ven.stop()
    assert ven.ven_id == "VEN-FROM-OPERATOR"
    assert not_passed(result) == {"OADR-VEN-REG-001": "failed"}
    assert "oadrVenName is 'hand-ven', expected 'someone-else'" in reason(result, "OADR-VEN-REG-001")


# --- (4) no VEN, garbage, no client certificate: every case fails with the reason ----------------------------------


def test_without_a_ven_every_case_fails_with_the_reason(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_suite(SUITE, Target(harness_url(), timeout=1, options={"ven_wait": "1"}), tmp_path)
    assert [c.id for c in result.cases] == ALL_CASES
    assert all(c.outcome is Outcome.FAILED and "no VEN registered" in c.reason for c in result.cases)
    assert "nothing arrived at all" in reason(result, "OADR-VEN-REG-001")
    assert not result.ok and result.exit_code in (0, 1) and (tmp_path / f"{SUITE}.html").exists()
    assert time.monotonic() - started < 10  # one wait, not one per case


def test_garbage_and_strays_fail_every_case_with_what_arrived(tmp_path: Path) -> None:
    url = harness_url()
    stop = threading.Event()

    def send_garbage() -> None:
        while not stop.is_set():
            try:
                httpx.post(f"{url}/EiRegisterParty", content=b"hello, VTN", timeout=1)
                httpx.get(f"{url}/OadrPoll", timeout=1)
                httpx.post(url.replace(PATH, "/wrong/EiEvent"), content=b"<x/>", timeout=1)
                httpx.post(f"{url}/EiEvent", content=b"<" * (5 * 1024 * 1024), timeout=5)
            except httpx.TransportError:
                pass
            stop.wait(0.05)

    sender = threading.Thread(target=send_garbage, daemon=True)
    sender.start()
    try:
        result = run_suite(SUITE, Target(url, timeout=1, options={"ven_wait": "1"}), tmp_path)
    finally:
        stop.set()
        sender.join(10)
    assert all(c.outcome is Outcome.FAILED for c in result.cases)
    registration = reason(result, "OADR-VEN-REG-001")
    assert "unreadable, e.g. not well-formed XML" in registration and "not 2.0b endpoints" in registration
    assert "not well-formed XML" in reason(result, "OADR-VEN-GEN-001")


def test_mutual_tls_keeps_out_a_ven_without_a_client_certificate(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ca = TestCa(tmp_path_factory.mktemp("pki"), kind="rsa")
    vtn = ca.issue("localhost", server=True)
    url = harness_url("https")
    ven = HandVen(url, tls=ssl.create_default_context(cafile=str(ca.ca_file))).start()  # no certificate of its own
    target = Target(url, cert=str(vtn.cert), key=str(vtn.key), ca=str(ca.ca_file), timeout=1, options={"ven_wait": "1"})
    try:
        result = run_suite(SUITE, target, tmp_path, only=["OADR-VEN-REG-001"])
    finally:
        ven.stop()
    assert not_passed(result) == {"OADR-VEN-REG-001": "failed"}
    assert "must present a certificate that CA signed" in reason(result, "OADR-VEN-REG-001")


def test_the_command_line_runs_the_suite(tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(conformance_app, ["list", SUITE])
    assert listed.exit_code == 0 and "OADR-VEN-EVT-006" in listed.output
    args = ["run", SUITE, "--target", harness_url(), "--report-dir", str(tmp_path), "--timeout", "1"]
    ran = runner.invoke(conformance_app, [*args, "--ven-wait", "0.5", "--poll-freq", "2", "--only", "OADR-VEN-REG-001"])
    assert ran.exit_code == 1, ran.output
    assert "no VEN registered" in ran.output and "within 0.5 s" in ran.output
    assert [c["id"] for c in json.loads((tmp_path / f"{SUITE}.json").read_text())["cases"]] == ["OADR-VEN-REG-001"]
    bad = runner.invoke(conformance_app, [*args, "--ven-wait", "0.5", "--poll-freq", "0", "--only", "OADR-VEN-REG-001"])
    assert bad.exit_code == 1 and "whole seconds, at least 1" in bad.output
