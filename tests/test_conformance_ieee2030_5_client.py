"""The ieee2030_5-client conformance suite against the gateway's own 2030.5 client run as a device over real mutual
TLS on loopback (every case must pass), against deliberately broken devices (named cases must fail), and with no
device at all (every case fails with the reason; the run completes).

A suite run lives through a scripted timeline (16 units of --pace seconds, here 2 s), so the broken devices are
not run one after another: each gets its own `tgw conformance run` in a subprocess, all started when the module
starts, with its device in a thread of this process, while the reference device's run proceeds in-process. By the
time the reference run is judged the broken runs are done; their JSON reports are read.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from conformance.framework import Outcome, Target, get_suite
from conformance.ieee2030_5_device import ReferenceDevice
from conformance.ieee2030_5_harness import stranger_lfdi
from conformance.runner import run_suite
from gateway.cli_conformance import conformance_app
from gateway.pki import CertificateAuthority, Issued
from gateway.protocols.ieee2030_5 import codec
from gateway.protocols.ieee2030_5 import models as m
from gateway.protocols.ieee2030_5.client import (
    ControlTracker,
    DeviceView,
    ProgramState,
    SentResponse,
    Sep2Client,
    Sep2ClientError,
)
from gateway.protocols.ieee2030_5.identity import lfdi_of_certificate

from cli_helpers import TGW

SUITE = "ieee2030_5-client"
PACE = {"pace": "2", "poll_rate": "1", "device_wait": "30"}


def free_port() -> int:
    """A free port below the ephemeral range. The harness binds its port only once its run has started, and
    meanwhile the devices retrying their connections take ephemeral local ports: one of them can be the port
    ``gateway.api.server.free_port`` handed out."""
    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low = int(ranges.read_text().split()[0]) if ranges.exists() else 32768
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


# --- deliberately broken devices ------------------------------------------------------------------------------------


class NeverStarts(Sep2Client):
    """Never tells the server a control started."""

    def respond(self, control: m.DERControl, status: int, *, at: int | None = None) -> str | None:
        return None if status == 2 else super().respond(control, status, at=at)


class WrongLfdi(Sep2Client):
    """Signs its Responses with an LFDI that is not its certificate's."""

    def respond(self, control: m.DERControl, status: int, *, at: int | None = None) -> str | None:
        response = m.DERControlResponse(
            createdDateTime=self.now() if at is None else at,
            endDeviceLFDI=stranger_lfdi(),
            status=status,
            subject=control.mRID,
        )
        return self.post(control.replyTo or "", response, expect=(201, 403))


class TextXml(Sep2Client):
    """Posts its Responses as text/xml."""

    def respond(self, control: m.DERControl, status: int, *, at: int | None = None) -> str | None:
        body = codec.encode(
            m.DERControlResponse(
                createdDateTime=self.now() if at is None else at,
                endDeviceLFDI=self.lfdi,
                status=status,
                subject=control.mRID,
            )
        )
        answer = self.http.post(self.url(control.replyTo or ""), content=body, headers={"Content-Type": "text/xml"})
        return answer.headers.get("location")


class GuessesPaths(Sep2Client):
    """Builds its EndDevice's path from the list's and its SFDI (as many servers lay them out) before reading the
    list: the guess even works here, but the path had not been handed out."""

    def discover(self, *, tariffs: bool = True) -> DeviceView:
        capability = self.get(self.dcap_href, m.DeviceCapability)
        if capability.EndDeviceListLink is not None:
            with contextlib.suppress(Sep2ClientError):
                self.get(f"{capability.EndDeviceListLink.href}/{self.sfdi}", m.EndDevice)
        return super().discover(tariffs=tariffs)


class IgnoresCancellation(Sep2Client):
    """Reads a cancelled control (EventStatus 2) as if it were still active."""

    def poll(self) -> list[ProgramState]:
        programs = super().poll()
        for state in programs:
            state.controls = [_uncancelled(c) for c in state.controls]
        return programs


def _uncancelled(control: m.DERControl) -> m.DERControl:
    if control.EventStatus.currentStatus not in (2, 3):
        return control
    status = control.EventStatus.model_copy(update={"currentStatus": 1})
    return control.model_copy(update={"EventStatus": status})


class LocalClock(Sep2Client):
    """Reads Time but schedules by its own clock."""

    def now(self) -> int:
        return int(time.time())


class WithoutTheSuite(Sep2Client):
    """Offers Python's default TLS suites only, not the one 2030.5 requires."""

    def __init__(self, base_url: str, cert: str | Path, key: str | Path, ca: str | Path, **kwargs: Any) -> None:
        super().__init__(base_url, cert, key, ca, **kwargs)
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(cert), str(key))
        timeout = self.http.timeout
        self.http.close()
        self.http = httpx.Client(verify=context, timeout=timeout)


class IgnoresSupersession(ControlTracker):
    """Weighs each program's controls on their own, so a higher-primacy program's control never supersedes."""

    def update(self, programs: Sequence[ProgramState] | None = None, now: int | None = None) -> list[SentResponse]:
        every = list(programs) if programs is not None else self.client.poll()
        posted: list[SentResponse] = []
        for program in every:
            posted += super().update([program], now)
        self.programs = every
        return posted


@dataclass(frozen=True)
class Variant:
    name: str
    failing: str  # the case that must fail
    reason: str  # a piece of its reason
    passing: str  # a case that must still pass: the failure is specific
    client: type[Sep2Client] = Sep2Client
    tracker: type[ControlTracker] = ControlTracker
    poll_rate: float | None = None


VARIANTS = [
    Variant("never_started", "SEP-CLI-RSP-002", "no Response 2 (started)", "SEP-CLI-RSP-001", client=NeverStarts),
    Variant("wrong_lfdi", "SEP-CLI-RSP-004", "endDeviceLFDI", "SEP-CLI-MED-001", client=WrongLfdi),
    Variant("text_xml", "SEP-CLI-MED-001", "Content-Type 'text/xml'", "SEP-CLI-RSP-004", client=TextXml),
    Variant("guesses_paths", "SEP-CLI-DISC-003", "had not been linked", "SEP-CLI-DISC-001", client=GuessesPaths),
    Variant(
        "ignores_supersession",
        "SEP-CLI-SUP-001",
        "answered 3 (completed)",
        "SEP-CLI-CAN-001",
        tracker=IgnoresSupersession,
    ),
    Variant("ignores_cancellation", "SEP-CLI-CAN-001", "no Response 6", "SEP-CLI-SUP-001", client=IgnoresCancellation),
    Variant("polls_too_fast", "SEP-CLI-POLL-001", "median interval", "SEP-CLI-RSP-002", poll_rate=0.2),
    Variant("local_clock", "SEP-CLI-TIME-002", "is the device using its own?", "SEP-CLI-TIME-001", client=LocalClock),
    Variant("without_the_suite", "SEP-CLI-CONN-002", "does not offer", "SEP-CLI-CONN-001", client=WithoutTheSuite),
]


# --- fixtures -------------------------------------------------------------------------------------------------------


@dataclass
class Pki:
    ca: CertificateAuthority
    server: Issued
    device: Issued
    stranger: Issued

    def target(self, url: str, **options: str) -> Target:
        return Target(
            url, cert=str(self.server.cert), key=str(self.server.key), ca=str(self.ca.ca_file), options=options
        )

    def device_at(self, url: str, issued: Issued | None = None, **kwargs: Any) -> ReferenceDevice:
        chosen = issued or self.device
        return ReferenceDevice(url, chosen.cert, chosen.key, self.ca.ca_file, **kwargs)


@dataclass
class BrokenRun:
    variant: Variant
    process: subprocess.Popen[bytes]
    device: ReferenceDevice
    reports: Path
    output: Path
    result: dict[str, Any] = field(default_factory=dict)

    def finish(self) -> dict[str, Any]:
        if not self.result:
            self.process.wait(timeout=120)
            self.device.stop()
            self.result = json.loads((self.reports / f"{SUITE}.json").read_text())
        return self.result


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = CertificateAuthority(tmp_path_factory.mktemp("sep2-client-pki"))
    return Pki(ca, ca.issue("localhost", server=True), ca.issue("inverter"), ca.issue("stranger"))


@pytest.fixture(scope="module")
def broken_runs(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, BrokenRun]]:
    """Every broken device's run, started at once in the background (see the module docstring)."""
    runs: dict[str, BrokenRun] = {}
    for variant in VARIANTS:
        folder = tmp_path_factory.mktemp(f"sep2-client-{variant.name}")
        url = f"https://127.0.0.1:{free_port()}"
        args = [TGW, "conformance", "run", SUITE, "--target", url, "--report-dir", str(folder / "reports")]
        args += ["--cert", str(pki.server.cert), "--key", str(pki.server.key), "--ca", str(pki.ca.ca_file)]
        args += [part for name, value in PACE.items() for part in (f"--{name.replace('_', '-')}", value)]
        output = folder / "output.txt"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                args, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"}
            )
        device = pki.device_at(
            url, client_type=variant.client, tracker_type=variant.tracker, poll_rate=variant.poll_rate
        ).start()
        runs[variant.name] = BrokenRun(variant, process, device, folder / "reports", output)
    yield runs
    for run in runs.values():
        run.device.stop()
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()


# --- the proof ------------------------------------------------------------------------------------------------------


def test_the_reference_device_passes_every_case(pki: Pki, broken_runs: dict[str, BrokenRun], tmp_path: Path) -> None:
    del broken_runs  # requested so the broken runs proceed in the background meanwhile
    url = f"https://127.0.0.1:{free_port()}"
    device = pki.device_at(url).start()
    seen: list[str] = []
    started = time.monotonic()
    try:
        result = run_suite(SUITE, pki.target(url, **PACE), tmp_path, on_result=lambda r: seen.append(r.id))
    finally:
        device.stop()
    assert {c.id: c.reason for c in result.cases if c.outcome is not Outcome.PASSED} == {}
    assert result.ok
    assert seen == [c.id for c in get_suite(SUITE).cases()]
    assert time.monotonic() - started < 60
    assert device.tracker is not None
    assert all("ConnectError" in e for e in device.errors), device.errors  # only while the harness was starting
    sent = {(s.mrid, s.status) for s in device.tracker.sent}
    assert {status for _mrid, status in sent} == {1, 2, 3, 6, 7}
    data = json.loads((tmp_path / f"{SUITE}.json").read_text())
    assert data["ok"] and {c["id"] for c in data["cases"]} == set(seen)
    cases = {c.id: c for c in result.cases}
    assert any("Response 7" in (e.note or "") for e in cases["SEP-CLI-SUP-001"].exchanges)
    assert lfdi_of_certificate(pki.device.der) in (cases["SEP-CLI-CONN-001"].exchanges[0].note or "")


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_a_broken_device_fails_the_named_case(broken_runs: dict[str, BrokenRun], variant: Variant) -> None:
    run = broken_runs[variant.name]
    data = run.finish()
    cases = {c["id"]: c for c in data["cases"]}
    failed = cases[variant.failing]
    assert failed["outcome"] == "failed", (variant.failing, failed["outcome"], run.output.read_text()[-3000:])
    assert variant.reason in failed["reason"], failed["reason"]
    assert cases[variant.passing]["outcome"] == "passed", (variant.passing, cases[variant.passing]["reason"])
    assert not data["ok"] and run.process.returncode == 1
    assert "Traceback" not in run.output.read_text()


def test_no_device_fails_every_case_with_the_reason(pki: Pki, tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{free_port()}"
    result = run_suite(SUITE, pki.target(url, device_wait="1"), tmp_path)
    assert len(result.cases) == len(get_suite(SUITE).cases())
    assert all(c.outcome is Outcome.FAILED for c in result.cases)
    assert {c.id: c.reason for c in result.cases if "no device connected within 1 s" not in c.reason} == {}
    assert f"{url}/dcap" in result.cases[0].reason
    assert not result.ok and (tmp_path / f"{SUITE}.html").exists()


def test_another_certificate_than_lfdi_is_refused_and_said_so(pki: Pki, tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{free_port()}"
    expected = lfdi_of_certificate(pki.device.der)
    stranger = pki.device_at(url, pki.stranger).start()
    try:
        result = run_suite(SUITE, pki.target(url, device_wait="3", lfdi=expected), tmp_path, only=["SEP-CLI-CONN-001"])
    finally:
        stranger.stop()
    reason = result.cases[0].reason
    assert result.cases[0].outcome is Outcome.FAILED
    assert lfdi_of_certificate(pki.stranger.der) in reason and f"not the --lfdi {expected}" in reason, reason


@pytest.mark.parametrize(
    ("url", "options", "reason"),
    [
        ("http://127.0.0.1:{port}", {}, "--target must be https://HOST:PORT"),
        ("https://127.0.0.1:{port}", {"pace": "2", "poll_rate": "3"}, "--poll-rate 3: between 1 s and the pace"),
        ("https://127.0.0.1:{port}", {"lfdi": "ABC"}, "is not an LFDI"),
    ],
)
def test_unusable_options_fail_every_case_with_the_reason(
    pki: Pki, tmp_path: Path, url: str, options: dict[str, str], reason: str
) -> None:
    result = run_suite(SUITE, pki.target(url.format(port=free_port()), **options), tmp_path)
    assert all(c.outcome is Outcome.FAILED and reason in c.reason for c in result.cases), result.cases[0].reason


def test_the_cli_lists_the_suite() -> None:
    listing = CliRunner().invoke(conformance_app, ["list", SUITE])
    assert listing.exit_code == 0 and "SEP-CLI-SUP-001" in listing.output and "recommended" in listing.output
