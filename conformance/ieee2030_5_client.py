"""Suite ieee2030_5-client: the DUT is an IEEE 2030.5 (CSIP) DER client (an inverter or gateway), the harness plays the
utility server.

``--target https://HOST:PORT`` is where the harness listens (mutual TLS: ``--cert``/``--key`` are the harness
server's certificate and key, ``--ca`` the CA that issued the device's client certificate); the vendor points the
device at ``https://HOST:PORT/dcap`` (or at the target's own path, if it has one). The harness
(:mod:`conformance.ieee2030_5_server_harness`) serves a scripted 2030.5 server and, once the device's first request
arrives, runs the script (:mod:`conformance.ieee2030_5_client_script`): five DERControls over 16 units of ``--pace``
seconds (a plain one, one superseded by a control of a higher-primacy program, one cancelled while active, one with
randomizeStart), then the allowance for lateness. Options: ``device_wait`` (``--device-wait``, seconds to wait for
the device, default 120), ``pace`` (``--pace``, default 10), ``poll_rate`` (``--poll-rate``, the pollRate served,
default 5), ``grace`` (``--grace``, seconds a Response may be late on top of one pollRate, default 5),
``time_offset`` (``--time-offset``, how far the harness's 2030.5 clock is from the wall clock, default -5000),
``lfdi`` (``--lfdi``, the expected device; others are refused) and ``pin`` (``--pin``, the Registration PIN served).

Every case shares the one run (a module-scoped fixture) and judges what the device did by then: cases run in file
order and each first waits for the moment of the script it needs, so a run's cases finish as the script unfolds.
Which Responses are owed, and when, comes from the gateway's event engine (``responses_due``); a Response is on time
when it arrives at the harness within [due - 1 s, due + pollRate + grace].
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pytest

from conformance.framework import Exchange, Severity, Target, case
from conformance.ieee2030_5_client_script import Script, ScriptedControl
from conformance.ieee2030_5_server_harness import (
    EARLY,
    MEDIA_TYPE,
    STATUS_NAMES,
    HarnessConfig,
    HarnessServer,
    Observation,
    Posted,
)
from gateway.protocols.ieee2030_5.suites import SEP2_SUITE

EVIDENCE = 25  # exchanges attached to a case at most: enough to see the pattern, few enough to read
SUPERSEDED = {7, 14}  # 7 superseded; 14 "aborted by another program's event" names the same fact across programs


@dataclass(slots=True)
class Run:
    """The harness with its device and script, as every case sees it."""

    harness: HarnessServer
    config: HarnessConfig
    script: Script
    lfdi: str
    sfdi: int
    log: list[Exchange]

    def at(self, moment: float) -> Run:
        """Wait until the harness clock reaches ``moment`` (a case's judging moment)."""
        self.harness.wait_until(moment)
        return self

    def units(self, count: float) -> float:
        return self.script.t0 + count * self.script.unit

    def evidence(self, observations: Iterable[Observation], note: str | None = None) -> None:
        room = EVIDENCE - len(self.log)
        for seen in list(observations)[: max(room, 0)]:
            self.log.append(seen.exchange(self.script.t0, note))

    def responses(self) -> list[Posted]:
        """Every POST that reads as a 2030.5 Response, whatever the harness answered to it: the timing cases
        judge what the device said and when, the media type, LFDI and replyTo cases judge how it said it."""
        return [p for p in self.harness.posts() if p.response is not None]

    def first(self, control: ScriptedControl, statuses: set[int]) -> Posted | None:
        return next(
            (
                p
                for p in self.responses()
                if p.response is not None
                and p.response.subject.upper() == control.mrid
                and p.response.status in statuses
            ),
            None,
        )

    def owed(self, control: ScriptedControl) -> dict[int, int]:
        """The engine's Response statuses owed for one control, with their due moments."""
        return dict(self.script.owed(self.lfdi)[control.key])


@pytest.fixture(scope="module")
def run(target: Target, exchanges: list[Exchange]) -> Iterator[Run]:
    """Start the harness, wait for the device, and share the run; every case fails with the reason when the
    options are unusable, the harness cannot listen, or no device comes."""
    try:
        config = HarnessConfig.from_target(target)
    except ValueError as exc:
        pytest.fail(str(exc), pytrace=False)
    harness = HarnessServer(config)
    try:
        harness.start()
    except OSError as exc:  # ssl.SSLError (a bad certificate or key) is an OSError
        pytest.fail(f"the harness could not listen on {config.host}:{config.port}: {exc}", pytrace=False)
    try:
        device = harness.wait_for_device(config.device_wait)
        if device is None or harness.script is None:
            refused = "; ".join(f"{reason} (x{count})" for reason, count in harness.refusals.items())
            pytest.fail(
                f"no device connected within {config.device_wait:g} s: point the device at {config.url} with a client"
                f" certificate issued by --ca{f' (LFDI {config.lfdi})' if config.lfdi else ''}"
                + (f"; meanwhile {refused}" if refused else ""),
                pytrace=False,
            )
        yield Run(harness, config, harness.script, device.lfdi, device.sfdi, exchanges)
    finally:
        harness.close()


def _fail(problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 8} more)" if len(problems) > 8 else ""
        pytest.fail("; ".join(problems[:8]) + more, pytrace=False)


def _named(status: int) -> str:
    return f"Response {status} ({STATUS_NAMES.get(status, 'status ' + str(status))})"


def _timing(
    run: Run, control: ScriptedControl, statuses: set[int], due: float, latest: float, earliest: float | None = None
) -> str | None:
    """Whether a Response with one of ``statuses`` for ``control`` arrived within [earliest, latest]; ``earliest``
    is ``due`` less the whole-second slack (:data:`EARLY`) unless a case allows more."""
    found = run.first(control, statuses)
    what = " or ".join(_named(s) for s in sorted(statuses))
    rel = run.script.rel
    if found is None:
        return f"{control.name}: no {what}; it was due at {rel(due)}"
    at = found.observation.at
    run.evidence([found.observation], f"{control.key}: {what}")
    start = due if earliest is None else earliest
    if at < start - EARLY:
        return f"{control.name}: {what} arrived at {rel(at)}, {start - at:.1f} s before it was due ({rel(start)})"
    if at > latest:
        return (
            f"{control.name}: {what} arrived at {rel(at)}, {at - due:.1f} s after it was due ({rel(due)}); at most"
            f" {latest - due:.1f} s allowed (pollRate {run.config.poll_rate} s, grace {run.config.grace:g} s)"
        )
    return None


# --- the device and its discovery walk --------------------------------------------------------------------------


@case(
    "SEP-CLI-CONN-001",
    "The device connects over mutual TLS with a certificate issued by --ca (with --lfdi: the expected one)",
    "2030.5 Security: TLS with a device certificate, LFDI/SFDI; CSIP COMM",
)
def test_device_connects(run: Run) -> None:
    run.evidence(run.harness.snapshot()[:1], f"the device: LFDI {run.lfdi}, SFDI {run.sfdi}")


@case(
    "SEP-CLI-CONN-002",
    "The device's TLS 1.2 handshake negotiates TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 when the server offers it first",
    "2030.5 Security: TLS 1.2 with the cipher suite TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8; CSIP COMM",
)
def test_device_offers_the_2030_5_suite(run: Run) -> None:
    if not run.harness.ecdsa:
        pytest.skip(
            f"the harness certificate ({run.config.cert}) has no EC key, so the 2030.5 suite cannot be offered;"
            " give --cert a P-256 certificate to run this case"
        )
    with run.harness.lock:
        seen = dict(run.harness.handshakes)
    shown = ", ".join(f"{version} {suite} (x{count})" for (version, suite), count in sorted(seen.items()))
    assert seen, "no TLS handshake from the device completed"
    other = {key: count for key, count in seen.items() if key != ("TLSv1.2", SEP2_SUITE)}
    assert not other, (
        f"the device's connections negotiated {shown}; a device that offers {SEP2_SUITE} gets it here, so it does"
        " not offer the suite 2030.5 requires"
    )


@case(
    "SEP-CLI-DISC-001",
    "Discovery starts with a GET of DeviceCapability at /dcap",
    "2030.5 DeviceCapability (function set discovery); CSIP CORE",
)
def test_starts_at_dcap(run: Run) -> None:
    seen = run.harness.snapshot()
    run.evidence(seen[:3])
    assert seen, "the device made no request"
    first = seen[0]
    assert (first.method, first.path) == ("GET", run.config.dcap_path), (
        f"the device's first request was {first.method} {first.path}, not GET {run.config.dcap_path}"
    )


@case(
    "SEP-CLI-DISC-002",
    "The device walks to its programs: EndDeviceList, FunctionSetAssignmentsList, DERProgramList, each DERControlList",
    "2030.5 EndDevice, FunctionSetAssignments, DERProgram; CSIP CORE (DER program discovery)",
)
def test_discovery_walk(run: Run) -> None:
    run.at(run.script.t0 + run.config.late)
    harness, sfdi = run.harness, run.sfdi
    wanted = {
        harness.href("edev"): "the EndDeviceList",
        harness.href(f"edev/{sfdi}/fsa"): "its FunctionSetAssignmentsList",
        harness.href("derp"): "the DERProgramList",
    }
    for program in run.script.programs:
        wanted[harness.href(f"derp/{program.key}/derc")] = f"the DERControlList of {program.description}"
    gets = [o for o in harness.snapshot() if o.method == "GET" and o.status == 200]
    read = {o.path for o in gets}
    run.evidence([o for o in gets if o.path in wanted][:12])
    missing = [f"{what} ({path})" for path, what in wanted.items() if path not in read]
    assert not missing, f"by {run.script.rel(run.script.t0 + run.config.late)} the device had not read " + ", ".join(
        missing
    )


@case(
    "SEP-CLI-TIME-001",
    "The device reads the server's Time through the TimeLink",
    "2030.5 Time function set; CSIP CORE (time synchronisation)",
)
def test_reads_time(run: Run) -> None:
    run.at(run.script.t0 + run.config.late)
    href = run.harness.href("tm")
    reads = [o for o in run.harness.snapshot() if o.method == "GET" and o.path == href]
    run.evidence(reads[:3])
    assert reads, f"the device never read Time ({href}); the harness's clock is {run.config.time_offset:+d} s off"


# --- Responses to controls --------------------------------------------------------------------------------------


@case(
    "SEP-CLI-RSP-001",
    "Response 1 (received) for every control that asks for it, within one pollRate of its creation",
    "2030.5 Response function set: responseRequired bit 0, replyTo; CSIP CORE (responses)",
)
def test_received(run: Run) -> None:
    script = run.script
    run.at(script.control("Y").created + run.config.late)
    problems = []
    for control in script.controls:
        due = run.owed(control).get(1)
        if due is None:
            continue
        problem = _timing(run, control, {1}, due, due + run.config.late)
        if problem:
            problems.append(problem)
    _fail(problems)


@case(
    "SEP-CLI-RSP-002",
    "Response 2 (started) when each control starts (C1, X, Y, Z), not before",
    "2030.5 Response.status 2; event start; CSIP CORE (responses)",
)
def test_started(run: Run) -> None:
    script = run.script
    run.at(script.control("Z").start + run.config.late)
    problems = []
    for key in ("C1", "X", "Y", "Z"):
        control = script.control(key)
        due = run.owed(control).get(2)
        if due is None:  # the script makes every one of them start: the engine would be wrong
            problems.append(f"{control.name}: the oracle owes no Response 2 (harness fault)")
            continue
        problem = _timing(run, control, {2}, due, due + run.config.late)
        if problem:
            problems.append(problem)
    _fail(problems)


@case(
    "SEP-CLI-RSP-003",
    "Response 3 (completed) when a control that ran to its end ends (C1, Y)",
    "2030.5 Response.status 3; event completion; CSIP CORE (responses)",
)
def test_completed(run: Run) -> None:
    script = run.script
    run.at(script.control("Y").end + run.config.late)
    problems = []
    for key in ("C1", "Y"):
        control = script.control(key)
        due = run.owed(control).get(3)
        if due is None:
            problems.append(f"{control.name}: the oracle owes no Response 3 (harness fault)")
            continue
        problem = _timing(run, control, {3}, due, due + run.config.late)
        if problem:
            problems.append(problem)
    _fail(problems)


@case(
    "SEP-CLI-SUP-001",
    "A control superseded by an overlapping control of a higher-primacy program is answered 7, never 3; the new"
    " one 1 and 2",
    "2030.5 event rules (precedence by primacy), EventStatus 4, Response.status 7; CSIP CORE (superseding)",
)
def test_superseded(run: Run) -> None:
    script = run.script
    old, new = script.control("X"), script.control("Y")
    run.at(old.end + run.config.late)
    problems = []
    due = run.owed(old).get(7)
    if due is None:
        problems.append(f"{old.name}: the oracle owes no Response 7 (harness fault)")
    else:
        # due when Y starts; a device may already say so once it knows of Y (Y's creation)
        problem = _timing(run, old, SUPERSEDED, due, due + run.config.late, earliest=new.created)
        if problem:
            problems.append(problem)
    completed = run.first(old, {3})
    if completed is not None:
        run.evidence([completed.observation], f"{old.key}: Response 3")
        problems.append(
            f"{old.name}: answered 3 (completed) at {script.rel(completed.observation.at)}, but {new.key} superseded it"
            f" at {script.rel(new.start)}"
        )
    for status in (1, 2):
        if run.first(new, {status}) is None:
            problems.append(f"{new.name}: no {_named(status)} for the superseding control")
    _fail(problems)


@case(
    "SEP-CLI-CAN-001",
    "A control cancelled while active is answered 6 (cancelled) within one pollRate, never 3",
    "2030.5 EventStatus 2 (cancelled), Response.status 6; CSIP CORE (event cancellation)",
)
def test_cancelled(run: Run) -> None:
    script = run.script
    control = script.control("Z")
    run.at(control.end + run.config.late)
    problems = []
    due = run.owed(control).get(6)
    if due is None or control.cancelled_at is None:
        problems.append(f"{control.name}: the oracle owes no Response 6 (harness fault)")
    else:
        problem = _timing(run, control, {6}, control.cancelled_at, due + run.config.late)
        if problem:
            problems.append(problem)
    completed = run.first(control, {3})
    if completed is not None:
        run.evidence([completed.observation], f"{control.key}: Response 3")
        problems.append(
            f"{control.name}: answered 3 (completed) at {script.rel(completed.observation.at)}, but it was cancelled"
            f" at {script.rel(control.cancelled_at or 0)}"
        )
    _fail(problems)


@case(
    "SEP-CLI-DEF-001",
    "The device reads its program's DefaultDERControl (applying it is not observable and not checked)",
    "2030.5 DefaultDERControl (applies when no DERControl is active); CSIP CORE",
    Severity.RECOMMENDED,
)
def test_reads_default_control(run: Run) -> None:
    script = run.script
    run.at(script.gap[1])
    href = run.harness.href(f"derp/{script.main.key}/dderc")
    reads = [o for o in run.harness.snapshot() if o.method == "GET" and o.path == href]
    run.evidence(reads[:3])
    assert reads, (
        f"the device never read the DefaultDERControl of the {script.main.description} ({href}), so it cannot know"
        f" what to do between controls (from {script.rel(script.gap[0])} to {script.rel(script.gap[1])} nothing is"
        " active)"
    )


@case(
    "SEP-CLI-RND-001",
    "With randomizeStart, Response 2 falls within [start, start + randomizeStart] and 3 within the shifted end",
    "2030.5 RandomizableEvent: randomizeStart; CSIP CORE (randomisation)",
    Severity.RECOMMENDED,
)
def test_randomised_start(run: Run) -> None:
    script = run.script
    control = script.control("R")
    run.at(script.end + run.config.late)
    spread = control.randomize_start
    problems = [
        problem
        for problem in (
            _timing(run, control, {2}, control.start, control.start + spread + run.config.late),
            _timing(run, control, {3}, control.end, control.end + spread + run.config.late),
        )
        if problem
    ]
    started, completed = run.first(control, {2}), run.first(control, {3})
    if started and completed and not problems:
        ran = completed.observation.at - started.observation.at
        if abs(ran - control.duration) > run.config.late:
            problems.append(
                f"{control.name}: ran {ran:.1f} s from its Response 2 to its 3, the duration is {control.duration} s"
                " (randomizeStart shifts a control, it does not stretch it)"
            )
    _fail(problems)


# --- polling ----------------------------------------------------------------------------------------------------


@case(
    "SEP-CLI-POLL-001",
    "The device polls its DERControlList at the pollRate the server gives (median interval within 0.5x..1.5x + 1 s)",
    "2030.5 pollRate (DERProgramList); CSIP CORE (polling)",
)
def test_poll_rate(run: Run) -> None:
    script = run.script
    run.at(script.over)
    href = run.harness.href(f"derp/{script.main.key}/derc")
    polls = [o for o in run.harness.snapshot() if o.method == "GET" and o.path == href and (o.param("s") or "0") == "0"]
    run.evidence(polls[:10])
    rate = run.config.poll_rate
    assert len(polls) >= 3, (
        f"the device read the DERControlList {href} {len(polls)} time(s) in"
        f" {script.over - script.t0:.0f} s; with pollRate {rate} s it should have polled about"
        f" {(script.over - script.t0) / rate:.0f} times"
    )
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(polls)]
    median = statistics.median(gaps)
    low, high = 0.5 * rate, 1.5 * rate + 1
    assert low <= median <= high, (
        f"the median interval between reads of {href} is {median:.2f} s over {len(polls)} polls; pollRate is"
        f" {rate} s (allowed {low:g}..{high:g} s)"
    )


# --- how the device posts ---------------------------------------------------------------------------------------


def _all_posts(run: Run) -> list[Posted]:
    run.at(run.script.over)
    posts = run.harness.posts()
    if not posts:
        pytest.fail("the device posted nothing: every control of the script asked for Responses", pytrace=False)
    return posts


@case(
    "SEP-CLI-MED-001",
    "Every POST is Content-Type application/sep+xml",
    "2030.5 HTTP: media type application/sep+xml; CSIP CORE (HTTP)",
)
def test_media_type(run: Run) -> None:
    wrong = [
        p.observation for p in _all_posts(run) if p.observation.content_type.split(";")[0].strip().lower() != MEDIA_TYPE
    ]
    run.evidence(wrong[:5])
    _fail(
        [
            f"POST {o.path} at {run.script.rel(o.at)}: Content-Type '{o.content_type or 'missing'}', expected"
            f" {MEDIA_TYPE}"
            for o in wrong
        ]
    )


@case(
    "SEP-CLI-MED-002",
    "Every POST body is well-formed, schema-valid 2030.5 XML: a Response (DERControlResponse)",
    "2030.5 schema (sep.xsd) and Response; CSIP CORE (HTTP)",
)
def test_well_formed(run: Run) -> None:
    bad = [p for p in _all_posts(run) if p.response is None]
    run.evidence([p.observation for p in bad[:5]])
    _fail([f"POST {p.observation.path} at {run.script.rel(p.observation.at)}: {p.problem}" for p in bad])


@case(
    "SEP-CLI-RSP-004",
    "Every Response's endDeviceLFDI is the LFDI of the device's certificate",
    "2030.5 Security: LFDI from the certificate; Response.endDeviceLFDI; CSIP CORE",
)
def test_response_lfdi(run: Run) -> None:
    responses = [p for p in _all_posts(run) if p.response is not None]
    wrong = [p for p in responses if p.response is not None and p.response.endDeviceLFDI.upper() != run.lfdi]
    run.evidence([p.observation for p in wrong[:5]])
    if not responses:
        pytest.fail("no POST of the device reads as a Response (see SEP-CLI-MED-002)", pytrace=False)
    _fail(
        [
            f"POST at {run.script.rel(p.observation.at)}: endDeviceLFDI {p.response.endDeviceLFDI}, the certificate's"
            f" LFDI is {run.lfdi}"
            for p in wrong
            if p.response is not None
        ]
    )


@case(
    "SEP-CLI-RSP-005",
    "Every Response names a control it was given (subject = its mRID) and goes to that control's replyTo",
    "2030.5 Response: subject, replyTo; CSIP CORE (responses)",
)
def test_reply_to(run: Run) -> None:
    problems = []
    offenders = []
    for posted in _all_posts(run):
        response, seen = posted.response, posted.observation
        if response is None:
            continue
        control = run.script.by_mrid(response.subject)
        if control is None:
            problems.append(f"POST at {run.script.rel(seen.at)}: subject {response.subject} is no control's mRID")
            offenders.append(seen)
            continue
        reply_to = run.harness.href(f"rsps/{control.program.key}/rsp")
        if seen.path != reply_to:
            problems.append(
                f"the Response {response.status} to {control.key} went to {seen.path}, its replyTo is {reply_to}"
            )
            offenders.append(seen)
    run.evidence(offenders[:5])
    _fail(problems)


@case(
    "SEP-CLI-DISC-003",
    "The device requests only paths the server handed it (links, hrefs, replyTo, Location): it guesses none",
    "2030.5 REST: resources are found by following links; CSIP CORE (discovery)",
)
def test_no_guessed_paths(run: Run) -> None:
    run.at(run.script.over)
    guessed: dict[tuple[str, str], list[Observation]] = {}
    for seen in run.harness.snapshot():
        if not seen.linked:
            guessed.setdefault((seen.method, seen.path), []).append(seen)
    run.evidence(first for found in guessed.values() for first in found[:1])
    _fail(
        [
            f"{method} {path} (HTTP {found[0].status}, first at {run.script.rel(found[0].at)}, x{len(found)}) had not"
            " been linked when it was requested"
            for (method, path), found in guessed.items()
        ]
    )


@case(
    "SEP-CLI-TIME-002",
    "Responses' createdDateTime follow the server's clock (the harness's runs --time-offset from the wall clock)",
    "2030.5 Time function set; Response.createdDateTime; CSIP CORE (time synchronisation)",
    Severity.RECOMMENDED,
)
def test_created_in_server_time(run: Run) -> None:
    stamped = [
        (p.observation, p.response.createdDateTime)
        for p in _all_posts(run)
        if p.response is not None and p.response.createdDateTime is not None
    ]
    if not stamped:
        pytest.skip("no Response carries createdDateTime (it is optional): nothing to compare with the server clock")
    wrong = []
    for seen, created in stamped:
        # created when the device noticed what it reports: at most one poll and the grace before it arrived
        if not seen.at - run.config.late - EARLY <= created <= seen.at + EARLY:
            wrong.append(
                f"a Response posted at {run.script.rel(seen.at)} says createdDateTime {created}"
                f" ({created - seen.at:+.0f} s from the server clock)"
            )
    run.evidence([seen for seen, _created in stamped[:3]])
    if wrong:
        hint = (
            f"; the harness clock runs {run.config.time_offset:+d} s from the wall clock: is the device using its own?"
        )
        pytest.fail("; ".join(wrong[:5]) + hint, pytrace=False)


@case(
    "SEP-CLI-RSP-006",
    "No Response beyond those owed: none repeated after the server took it, none for an outcome that did not happen",
    "2030.5 Response function set; event rules; CSIP CORE (responses)",
    Severity.RECOMMENDED,
)
def test_nothing_unexpected(run: Run) -> None:
    posts = _all_posts(run)
    taken = [p for p in posts if p.response is not None and p.observation.status == 201]
    counts: dict[tuple[str, int], list[Observation]] = {}
    for posted in taken:
        assert posted.response is not None
        counts.setdefault((posted.response.subject.upper(), posted.response.status or 0), []).append(posted.observation)
    problems = []
    for (subject, status), seen in counts.items():
        control = run.script.by_mrid(subject)
        if control is None:
            continue  # SEP-CLI-RSP-005 reports it
        owed = set(run.owed(control))
        if 7 in owed:
            owed |= SUPERSEDED
        if status not in owed:
            problems.append(
                f"{control.key}: {_named(status)} at {run.script.rel(seen[0].at)} was not owed"
                f" (owed: {', '.join(str(s) for s in sorted(run.owed(control))) or 'none'})"
            )
            run.evidence(seen[:2])
        elif len(seen) > 1:
            problems.append(f"{control.key}: {_named(status)} was posted and taken {len(seen)} times")
            run.evidence(seen[:2])
    _fail(problems)
