"""Suite ieee2030_5-server: the DUT is an IEEE 2030.5 (CSIP) utility server, the harness a DER client.

The harness presents the vendor's client certificate (``--cert``/``--key``; the device must be provisioned on
the DUT for that certificate) and starts at DeviceCapability: ``--target`` is its URL, or just
``https://host:port`` for the CSIP default ``/dcap``. From there it follows links only. Every answer must be
``application/sep+xml`` and schema-valid (read with the gateway's codec); a case fails with the reason otherwise.

Cases about controls need the DUT to hold DERControls for the device; without any they are skipped with the
reason, unless the target option ``expect_events`` is set (``--expect-events``), in which case having none is a
failure - and so is having no cancelled or superseded control for S2030-SRV-DERC-003. Other options:
``pin`` (``--pin``: the PIN the operator provisioned, checked against the Registration), ``alt_cert``/``alt_key``
(``--alt-cert``/``--alt-key``: a second certificate the DUT does not know, which must be refused),
``listen`` (``--listen HOST:PORT``: where the harness's HTTPS notification listener binds; by default the address
the harness reaches the DUT from, any free port), ``listen_cert``/``listen_key`` (its certificate; by default the
device's), ``expect_notification`` (``--expect-notification``: the operator will change the device's controls
while S2030-SRV-SUB-002 waits, ``notify_wait`` seconds, default 60) and ``clock_tolerance`` (seconds, default 60).

Rules name the IEEE 2030.5-2018 resource or clause and, where one applies, the CSIP conformance group.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from conformance.framework import Exchange, Severity, Target, case, truncate
from conformance.ieee2030_5_harness import (
    CLIENT_WRITTEN_LINKS,
    CLOCK_TOLERANCE,
    CRAWL_LIMIT,
    MEDIA_TYPE,
    HarnessDevice,
    ListRead,
    NotificationListener,
    ProgramControls,
    Received,
    control_problems,
    is_loopback,
    links_of,
    local_address_towards,
    media_type_problem,
    order_problems,
    problems_in,
    sfdi_check_digit_ok,
    sfdi_of_lfdi,
    stranger_lfdi,
    surely_in_force,
    time_problems,
    window,
)
from gateway.protocols.ieee2030_5 import codec
from gateway.protocols.ieee2030_5 import models as m
from gateway.protocols.ieee2030_5.suites import SEP2_SUITE, sep2_only_client

TERMINAL = {2: "cancelled", 3: "cancelled with randomization", 4: "superseded"}


@pytest.fixture(scope="module")
def dut(target: Target, exchanges: list[Exchange]) -> Iterator[HarnessDevice]:
    device = HarnessDevice(target, exchanges)
    yield device
    device.close()


def tolerance(target: Target) -> int:
    return int(target.option("clock_tolerance", str(CLOCK_TOLERANCE)) or CLOCK_TOLERANCE)


@pytest.fixture
def programs(dut: HarnessDevice, target: Target) -> list[ProgramControls]:
    """The device's programs with their DERControlLists; skipped (or failed, with expect_events) when the DUT has
    no DERControl for the device."""
    found = dut.program_controls()
    if not any(p.controls for p in found):
        message = (
            f"the DUT has no DERControl for this device (sFDI {dut.sfdi}) in {len(found)} program(s);"
            " create one aimed at it to run this case"
        )
        if target.flag("expect_events"):
            pytest.fail(message + " (controls were expected)", pytrace=False)
        pytest.skip(message)
    return found


# --- discovery ---------------------------------------------------------------------------------------------------


@case(
    "S2030-SRV-DCAP-001",
    "DeviceCapability at the target is a schema-valid application/sep+xml answer",
    "2030.5 DeviceCapability (function set discovery); CSIP CORE",
)
def test_device_capability(dut: HarnessDevice) -> None:
    dut.dcap()  # read() checks status, media type, schema and href


@case(
    "S2030-SRV-DCAP-002",
    "DeviceCapability links Time and the EndDeviceList",
    "2030.5 DeviceCapability: TimeLink, EndDeviceListLink; CSIP CORE",
)
def test_device_capability_links(dut: HarnessDevice) -> None:
    dcap = dut.dcap()
    missing = [name for name in ("TimeLink", "EndDeviceListLink") if getattr(dcap, name) is None]
    assert not missing, f"DeviceCapability has no {' and no '.join(missing)}"


@case(
    "S2030-SRV-GEN-001",
    "Every resource linked from DeviceCapability answers 200, application/sep+xml, schema-valid, with its href",
    "2030.5 HTTP/REST rules: links, media type, schema; CSIP CORE",
)
def test_every_linked_resource(dut: HarnessDevice) -> None:
    queue: list[tuple[str, str]] = [("DeviceCapability", dut.dcap_url)]
    seen: set[str] = set()
    problems: list[str] = []
    while queue and len(seen) < CRAWL_LIMIT:
        name, href = queue.pop(0)
        url = dut.url_of(href)
        if url in seen:
            continue
        seen.add(url)
        response = dut.request("GET", href, note=f"{name} (link walk)")
        if response.status_code == 404 and name in CLIENT_WRITTEN_LINKS:
            continue  # the client writes it; absent until then
        if response.status_code != 200:
            problems.append(f"{name} {url}: HTTP {response.status_code}")
            continue
        kind = media_type_problem(response)
        if kind:
            problems.append(f"{name} {url}: {kind}")
            continue
        try:
            model = codec.decode(response.content)
        except codec.Sep2DecodeError as exc:
            problems.append(f"{name} {url}: not schema-valid: {exc}")
            continue
        if isinstance(model, m.Resource) and not model.href:
            problems.append(f"{name} {url}: no href")
        queue.extend(links_of(model))
    problems_in(problems)


# --- time --------------------------------------------------------------------------------------------------------


def read_time(dut: HarnessDevice) -> tuple[m.Time, float]:
    link = dut.dcap().TimeLink
    if link is None:
        pytest.fail("DeviceCapability has no TimeLink", pytrace=False)
    before = time.time()
    answer = dut.get(link.href, "Time", m.Time)
    return answer.model, (before + time.time()) / 2


@case(
    "S2030-SRV-TIME-001",
    "Time's currentTime agrees with the harness clock",
    "2030.5 Time function set: currentTime; CSIP CORE (time synchronisation)",
)
def test_current_time(dut: HarnessDevice, target: Target) -> None:
    tm, now = read_time(dut)
    allowed = tolerance(target)
    drift = tm.currentTime - now
    assert abs(drift) <= allowed, (
        f"currentTime {tm.currentTime} is {drift:+.0f} s from the harness clock ({now:.0f});"
        f" at most {allowed} s allowed"
    )


@case(
    "S2030-SRV-TIME-002",
    "Time's zone, daylight-saving and quality fields are present and consistent",
    "2030.5 Time: tzOffset, dstOffset, dstStartTime, dstEndTime, localTime, quality",
)
def test_time_fields(dut: HarnessDevice, target: Target) -> None:
    tm, now = read_time(dut)
    problems_in(time_problems(tm, now, tolerance(target)))


# --- the device's EndDevice ----------------------------------------------------------------------------------------


@case(
    "S2030-SRV-EDEV-001",
    "The EndDeviceList holds this device's EndDevice, with the certificate's lFDI and sFDI",
    "2030.5 Security: LFDI/SFDI from the certificate; EndDevice; CSIP CORE",
)
def test_own_end_device(dut: HarnessDevice) -> None:
    device = dut.own_end_device()
    lfdi, sfdi = dut.lfdi, dut.sfdi
    assert device.sFDI == sfdi, f"EndDevice {device.href}: sFDI {device.sFDI}, the certificate's is {sfdi}"
    assert sfdi_check_digit_ok(device.sFDI), f"sFDI {device.sFDI}: the check digit is wrong"
    assert device.lFDI is not None, f"EndDevice {device.href} carries no lFDI"
    assert device.lFDI.upper() == lfdi, f"EndDevice {device.href}: lFDI {device.lFDI}, the certificate's is {lfdi}"
    again = dut.get(device.href or "", "EndDevice", m.EndDevice).model
    assert (again.sFDI, (again.lFDI or "").upper()) == (sfdi, lfdi), (
        f"the EndDevice at its own href {device.href} names sFDI {again.sFDI} lFDI {again.lFDI}"
    )


@case(
    "S2030-SRV-EDEV-002",
    "A device sees only its own EndDevice in the EndDeviceList",
    "2030.5 Security: access control by client identity; CSIP CORE",
)
def test_only_own_end_device(dut: HarnessDevice) -> None:
    listing = dut.end_devices()
    lfdi, sfdi = dut.lfdi, dut.sfdi
    others = [d for d in listing.items if d.sFDI != sfdi or (d.lFDI or lfdi).upper() != lfdi]
    assert not others, "the EndDeviceList shows other devices: " + ", ".join(
        f"sFDI {d.sFDI} lFDI {d.lFDI}" for d in others[:5]
    )
    assert listing.all == len(listing.items) == 1, (
        f"the EndDeviceList says all={listing.all} and holds {len(listing.items)} EndDevice(s); this device has one"
    )


@case(
    "S2030-SRV-REG-001",
    "The EndDevice links a Registration with a PIN",
    "2030.5 Registration (EndDevice RegistrationLink); CSIP CORE",
)
def test_registration(dut: HarnessDevice) -> None:
    registration(dut)


def registration(dut: HarnessDevice) -> m.Registration:
    device = dut.own_end_device()
    if device.RegistrationLink is None:
        pytest.fail(f"the EndDevice {device.href} has no RegistrationLink", pytrace=False)
    return dut.get(device.RegistrationLink.href, "Registration", m.Registration).model


@case(
    "S2030-SRV-REG-002",
    "The Registration's pIN is the PIN the operator provisioned (--pin)",
    "2030.5 Registration: pIN (the device checks it against its own)",
)
def test_registration_pin(dut: HarnessDevice, target: Target) -> None:
    found = registration(dut)
    expected = target.option("pin").strip()
    if not expected:
        pytest.skip("no --pin given: the provisioned PIN is unknown to the harness")
    assert expected.isdigit(), f"--pin {expected!r} is not a number"
    assert found.pIN == int(expected), f"Registration pIN {found.pIN:06d}, the operator provisioned {int(expected):06d}"


# --- programs ----------------------------------------------------------------------------------------------------


@case(
    "S2030-SRV-FSA-001",
    "The device's FunctionSetAssignments link a DERProgramList",
    "2030.5 FunctionSetAssignments; CSIP CORE (DER program discovery)",
)
def test_function_set_assignments(dut: HarnessDevice) -> None:
    assignments = dut.function_set_assignments()
    assert assignments, "the FunctionSetAssignmentsList is empty"
    assert any(a.DERProgramListLink for a in assignments), "no FunctionSetAssignments links a DERProgramList"


@case(
    "S2030-SRV-DERP-001",
    "DERProgramList is ordered by primacy (lowest first)",
    "2030.5 list ordering: DERProgram by primacy; CSIP CORE",
)
def test_programs_by_primacy(dut: HarnessDevice) -> None:
    problems = []
    for listing in dut.program_lists():
        primacies = [p.primacy for p in listing.items]
        if primacies != sorted(primacies):
            problems.append(f"{listing.href}: primacy in the order {primacies}")
    problems_in(problems)


@case(
    "S2030-SRV-DERP-002",
    "Every DERProgram links its DERControlList, and every link of a program (and each control's href) resolves",
    "2030.5 DERProgram: DERControlListLink, ActiveDERControlListLink, DefaultDERControlLink, DERCurveListLink",
)
def test_program_links(dut: HarnessDevice) -> None:
    problems = []
    programs = dut.programs()
    assert programs, "the device has no DERProgram"
    for program in programs:
        name = f"program {program.mRID} ({program.href})"
        if program.DERControlListLink is None:
            problems.append(f"{name} has no DERControlListLink")
        for link, kind in (
            (program.ActiveDERControlListLink, m.DERControlList),
            (program.DefaultDERControlLink, m.DefaultDERControl),
            (program.DERCurveListLink, m.DERCurveList),
        ):
            if link is not None:
                dut.get(link.href, f"{kind.__name__} of {name}", kind)
        if program.DERControlListLink is None:
            continue
        listing = dut.get_list(
            program.DERControlListLink.href, f"DERControlList of {name}", m.DERControlList, "DERControl"
        )
        for control in listing.items:
            if not control.href:
                problems.append(f"DERControl {control.mRID} of {name} has no href")
                continue
            again = dut.get(control.href, f"DERControl {control.mRID}", m.DERControl).model
            if again.mRID != control.mRID:
                problems.append(f"{control.href} is DERControl {again.mRID}, the list said {control.mRID}")
    problems_in(problems)


# --- paging ------------------------------------------------------------------------------------------------------


def _key(item: object) -> str:
    return str(getattr(item, "mRID", None) or getattr(item, "href", None) or item)


@case(
    "S2030-SRV-PAGE-001",
    "Lists honour s (start) and l (limit): results <= l, all >= results, s past the end gives results 0",
    "2030.5 List paging (query s, l; attributes all, results); CSIP CORE",
)
def test_paging(dut: HarnessDevice) -> None:
    candidates: list[tuple[ListRead, str, type[m.Sep2Model]]] = []
    for program in dut.program_controls():
        candidates.append((program.listing, "DERControl", m.DERControlList))
    for listing in dut.program_lists():
        candidates.append((listing, "DERProgram", m.DERProgramList))
    assert candidates, "no DERProgramList to page"
    full, items, kind = max(candidates, key=lambda c: c[0].all)  # the longest list says most about paging
    name, total = kind.__name__, full.all
    problems = []

    def page(start: int, limit: int) -> tuple[Any, list[object]]:
        answer = dut.get(full.href, f"{name} s={start} l={limit}", kind, params={"s": start, "l": limit})
        found = list(getattr(answer.model, items) or [])
        model = answer.model
        if len(found) != model.results:
            problems.append(f"s={start} l={limit}: results={model.results} but {len(found)} {items}")
        if model.results > limit:
            problems.append(f"s={start} l={limit}: results={model.results} exceeds l")
        if model.all < model.results:
            problems.append(f"s={start} l={limit}: all={model.all} < results={model.results}")
        if model.all != total:
            problems.append(f"s={start} l={limit}: all={model.all}, the whole list said all={total}")
        return model, found

    _, first = page(0, 1)
    if total and [_key(x) for x in first] != [_key(full.items[0])]:
        problems.append(f"s=0 l=1 gave {[_key(x) for x in first]}, the list starts with {_key(full.items[0])}")
    if total >= 2:
        _, second = page(1, 1)
        if [_key(x) for x in second] != [_key(full.items[1])]:
            problems.append(f"s=1 l=1 gave {[_key(x) for x in second]}, the second item is {_key(full.items[1])}")
    beyond, rest = page(total + 5, 5)
    if beyond.results != 0 or rest:
        problems.append(f"s={total + 5} (past all={total}) gave results={beyond.results}, expected 0")
    problems_in([f"{name} {full.href}: {p}" for p in problems])


@case(
    "S2030-SRV-PAGE-002",
    "Every list the device reaches honours s and l (l=1 gives at most one item, s past the end none)",
    "2030.5 List paging (query s, l; attributes all, results)",
    Severity.RECOMMENDED,
)
def test_paging_everywhere(dut: HarnessDevice) -> None:
    device = dut.own_end_device()
    lists: list[tuple[str, str]] = []
    dcap = dut.dcap()
    if dcap.EndDeviceListLink is not None:
        lists.append(("EndDeviceList", dcap.EndDeviceListLink.href))
    for name in type(device).model_fields:
        link = getattr(device, name)
        if isinstance(link, m.ListLink):
            lists.append((name.removesuffix("Link"), link.href))
    for program in dut.programs():
        for name in ("DERControlListLink", "ActiveDERControlListLink", "DERCurveListLink"):
            link = getattr(program, name)
            if link is not None:
                lists.append((f"{name.removesuffix('Link')} of {program.mRID}", link.href))
    problems = []
    for name, href in lists:
        first = dut.get(href, f"{name} s=0 l=1", params={"s": 0, "l": 1}).model
        if not isinstance(first, m.List | m.SubscribableList):
            problems.append(f"{name} {href} is a {type(first).__name__}, not a list")
            continue
        if first.results > 1:
            problems.append(f"{name} {href}: s=0 l=1 gave results={first.results}")
        past = first.all + 5
        beyond = dut.get(href, f"{name} s={past} l=5", params={"s": past, "l": 5}).model
        if beyond.results != 0:
            problems.append(f"{name} {href}: s={past} (past all={first.all}) gave results={beyond.results}")
    problems_in(problems)


# --- controls ----------------------------------------------------------------------------------------------------


@case(
    "S2030-SRV-DERC-001",
    "DERControls are well formed: 128-bit mRID, EventStatus 0..4, positive duration, randomization within an hour,"
    " replyTo when a response is required, at least one control mode",
    "2030.5 DERControl, EventStatus, RandomizableEvent, RespondableResource; CSIP CORE/BASIC",
)
def test_control_shape(programs: list[ProgramControls]) -> None:
    problems = []
    for program in programs:
        problems.extend(p for c in program.controls for p in control_problems(c))
        mrids = [c.mRID.upper() for c in program.controls]
        duplicates = sorted({x for x in mrids if mrids.count(x) > 1})
        if duplicates:
            problems.append(f"program {program.program.mRID} lists mRID(s) {', '.join(duplicates)} more than once")
    problems_in(problems)


@case(
    "S2030-SRV-DERC-002",
    "DERControlList is ordered by start, then newest creationTime, then mRID descending",
    "2030.5 list ordering of events (interval.start, creationTime, mRID)",
    Severity.RECOMMENDED,
)
def test_control_order(programs: list[ProgramControls]) -> None:
    problems_in([f"{p.listing.href}: {x}" for p in programs for x in order_problems(p.controls)])


@case(
    "S2030-SRV-DERC-003",
    "A cancelled or superseded DERControl stays listed, with its status",
    "2030.5 event rules: events are cancelled (2, 3) or superseded (4), never removed; CSIP CORE (superseding)",
)
def test_terminal_controls_listed(dut: HarnessDevice, target: Target, programs: list[ProgramControls]) -> None:
    ended = [(p, c) for p in programs for c in p.controls if c.EventStatus.currentStatus in TERMINAL]
    if not ended:
        count = sum(len(p.controls) for p in programs)
        message = (
            f"none of the DUT's {count} DERControl(s) for this device is cancelled or superseded;"
            " cancel or supersede one to run this case"
        )
        if target.flag("expect_events"):
            pytest.fail(message + " (controls were expected)", pytrace=False)
        pytest.skip(message)
    problems = []
    for _program, control in ended:
        again = dut.get(control.href or "", f"DERControl {control.mRID}", m.DERControl).model
        if again.EventStatus.currentStatus != control.EventStatus.currentStatus:
            problems.append(
                f"{control.href}: status {again.EventStatus.currentStatus}, the list said"
                f" {control.EventStatus.currentStatus}"
            )
    problems_in(problems)


@case(
    "S2030-SRV-ACT-001",
    "ActiveDERControlList holds only controls whose status is active (1) and whose interval covers now",
    "2030.5 DERProgram ActiveDERControlList; EventStatus",
)
def test_active_list(dut: HarnessDevice, target: Target, programs: list[ProgramControls]) -> None:
    allowed = tolerance(target)
    problems = []
    for program in programs:
        link = program.program.ActiveDERControlListLink
        if link is None:
            problems.append(f"program {program.program.mRID} has no ActiveDERControlListLink")
            continue
        active = dut.get_list(
            link.href, f"ActiveDERControlList of {program.program.mRID}", m.DERControlList, "DERControl"
        )
        now = int(time.time())
        listed = {c.mRID.upper() for c in program.controls}
        for control in active.items:
            start, end = window(control, allowed)
            status = control.EventStatus.currentStatus
            if status != 1:
                problems.append(f"{control.mRID} is in {link.href} with status {status} ({_status(status)})")
            if not start <= now < end:
                problems.append(
                    f"{control.mRID} is in {link.href} but its interval {control.interval.start}"
                    f"+{control.interval.duration} s does not cover now ({now})"
                )
            if control.mRID.upper() not in listed:
                problems.append(f"{control.mRID} is in {link.href} but not in the program's DERControlList")
    problems_in(problems)


@case(
    "S2030-SRV-ACT-002",
    "Every control that is active now is in its program's ActiveDERControlList",
    "2030.5 DERProgram ActiveDERControlList",
    Severity.RECOMMENDED,
)
def test_active_controls_listed(dut: HarnessDevice, target: Target, programs: list[ProgramControls]) -> None:
    allowed = tolerance(target)
    problems = []
    for program in programs:
        link = program.program.ActiveDERControlListLink
        if link is None:
            continue
        now = int(time.time())
        due = [c for c in program.controls if c.EventStatus.currentStatus == 1 and surely_in_force(c, now, allowed)]
        if not due:
            continue
        active = dut.get_list(
            link.href, f"ActiveDERControlList of {program.program.mRID}", m.DERControlList, "DERControl"
        )
        shown = {c.mRID.upper() for c in active.items}
        problems.extend(
            f"{c.mRID} is active and in force now but not in {link.href}" for c in due if c.mRID.upper() not in shown
        )
    problems_in(problems)


def _status(code: int) -> str:
    return {0: "scheduled", 1: "active", **TERMINAL}.get(code, "unknown")


# --- responses ---------------------------------------------------------------------------------------------------


@case(
    "S2030-SRV-RSP-001",
    "A DERControlResponse 'received' (status 1) posted to a control's replyTo is accepted: 201 (or 204)",
    "2030.5 Response function set: replyTo, Response.status 1; CSIP CORE (responses)",
)
def test_response_accepted(dut: HarnessDevice, programs: list[ProgramControls]) -> None:
    candidates = [c for p in programs for c in p.controls if c.replyTo]
    if not candidates:
        pytest.skip("no DERControl of this device has a replyTo")
    wanted = [c for c in candidates if int(c.responseRequired or "00", 16)] or candidates
    control = wanted[0]
    response = m.DERControlResponse(
        createdDateTime=int(time.time()), endDeviceLFDI=dut.lfdi, status=1, subject=control.mRID
    )
    answer = dut.post(control.replyTo or "", response, f"DERControlResponse 'received' to {control.mRID}")
    assert answer.status_code in (201, 204), (
        f"POST to replyTo {control.replyTo}: HTTP {answer.status_code}, expected 201 (or 204); body:"
        f" {truncate(answer.content, 300)}"
    )


# --- security ----------------------------------------------------------------------------------------------------


@case(
    "S2030-SRV-SEC-001",
    "A path under another device's EndDevice is refused (403 or 404)",
    "2030.5 Security: a client reaches only its own resources; CSIP CORE",
)
def test_other_device_path(dut: HarnessDevice) -> None:
    device = dut.own_end_device()
    own = str(device.sFDI)
    href = device.href or ""
    other = sfdi_of_lfdi(stranger_lfdi())
    if own not in href:
        pytest.skip(f"the EndDevice href {href} does not name the sFDI; the harness cannot derive another device's")
    foreign = [href.replace(own, str(other))]
    for link in (device.FunctionSetAssignmentsListLink, device.RegistrationLink, device.DERListLink):
        if link is not None and own in link.href:
            foreign.append(link.href.replace(own, str(other)))
    problems = []
    for path in foreign:
        answer = dut.request("GET", path, note=f"another device's resource (sFDI {other})")
        if answer.status_code not in (403, 404):
            problems.append(f"GET {path}: HTTP {answer.status_code}, expected 403 or 404")
    problems_in(problems)


def _end_device_list_href(dut: HarnessDevice) -> str:
    link = dut.dcap().EndDeviceListLink
    if link is None:
        pytest.fail("DeviceCapability has no EndDeviceListLink", pytrace=False)
    return link.href


@case(
    "S2030-SRV-SEC-002",
    "A malformed XML POST is answered 400 with an Error body",
    "2030.5 HTTP error handling: 400 Bad Request with Error (reasonCode)",
)
def test_malformed_xml(dut: HarnessDevice) -> None:
    href = _end_device_list_href(dut)
    body = f'<EndDevice xmlns="{codec.NS}"><sFDI>{dut.sfdi}</sFDI><changedTime>0</changedTime>'.encode()
    answer = dut.request("POST", href, body=body, content_type=MEDIA_TYPE, note="malformed XML (unclosed EndDevice)")
    assert answer.status_code == 400, f"HTTP {answer.status_code} to malformed XML, expected 400"
    kind = media_type_problem(answer)
    assert kind is None, f"the 400's body: {kind}"
    try:
        found = codec.decode(answer.content)
    except codec.Sep2DecodeError as exc:
        pytest.fail(f"the 400's body is not a 2030.5 Error: {exc}", pytrace=False)
    assert isinstance(found, m.Error), f"the 400's body is a {type(found).__name__}, expected an Error"


@case(
    "S2030-SRV-SEC-003",
    "A POST with a Content-Type other than application/sep+xml is refused with 400 (or 415)",
    "2030.5 HTTP: media type application/sep+xml",
    Severity.RECOMMENDED,
)
def test_wrong_content_type(dut: HarnessDevice) -> None:
    href = _end_device_list_href(dut)
    device = m.EndDevice(lFDI=dut.lfdi, sFDI=dut.sfdi, changedTime=int(time.time()))
    answer = dut.request(
        "POST", href, body=codec.encode(device), content_type="text/plain", note="this device's EndDevice as text/plain"
    )
    assert answer.status_code in (400, 415), f"HTTP {answer.status_code} to a text/plain body, expected 400 or 415"


@case(
    "S2030-SRV-SEC-004",
    "An EndDevice whose lFDI is not the client certificate's is refused (4xx)",
    "2030.5 Security: LFDI bound to the certificate; CSIP CORE",
)
def test_foreign_lfdi_refused(dut: HarnessDevice) -> None:
    href = _end_device_list_href(dut)
    lfdi = stranger_lfdi()
    device = m.EndDevice(lFDI=lfdi, sFDI=sfdi_of_lfdi(lfdi), changedTime=int(time.time()))
    answer = dut.post(href, device, f"an EndDevice with another lFDI ({lfdi})")
    assert 400 <= answer.status_code < 500, (
        f"HTTP {answer.status_code} to an EndDevice with lFDI {lfdi} (not the certificate's), expected 4xx"
    )


@case(
    "S2030-SRV-SEC-005",
    "A client certificate the DUT does not know is refused with 403 (--alt-cert)",
    "2030.5 Security: unknown clients; CSIP COMM/CORE",
)
def test_unknown_certificate(dut: HarnessDevice, target: Target, exchanges: list[Exchange]) -> None:
    end_devices = _end_device_list_href(dut)
    cert, key = target.option("alt_cert"), target.option("alt_key")
    if not cert:
        pytest.skip("no --alt-cert given: a second certificate, unknown to the DUT, is needed")
    stranger = HarnessDevice(target, exchanges, cert=cert, key=key or None, label="the unknown certificate")
    problems = []
    try:
        for href, what in ((dut.dcap_url, "DeviceCapability"), (end_devices, "EndDeviceList")):
            url = stranger.url_of(href)
            exchange = Exchange("GET", url, "", note=f"{what} with the unknown certificate")
            exchanges.append(exchange)
            try:
                answer = stranger.http.get(url, headers={"Accept": MEDIA_TYPE})
            except httpx.TransportError as exc:  # refused during the TLS handshake: refused as well
                exchange.error = f"{type(exc).__name__}: {exc}"
                exchange.note = f"{exchange.note}; refused at the TLS layer"
                continue
            exchange.status, exchange.response = answer.status_code, truncate(answer.content)
            if what == "EndDeviceList" and answer.status_code != 403:
                problems.append(f"GET {url} with an unknown certificate: HTTP {answer.status_code}, expected 403")
            elif what == "DeviceCapability" and answer.status_code not in (200, 403):
                problems.append(f"GET {url} with an unknown certificate: HTTP {answer.status_code}")
    finally:
        stranger.close()
    problems_in(problems)


@case(
    "S2030-SRV-SEC-006",
    "The DUT completes a TLS 1.2 handshake that offers only TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
    "2030.5 Security: TLS 1.2 with the cipher suite TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8; CSIP COMM",
)
def test_strict_suite(dut: HarnessDevice, target: Target, exchanges: list[Exchange]) -> None:
    parts = urlsplit(dut.dcap_url)
    if parts.scheme != "https" or not parts.hostname:
        pytest.skip(f"the target is not an https URL ({dut.dcap_url}): there is no TLS handshake to judge")
    host, port = parts.hostname, parts.port or 443
    exchange = Exchange("TLS", f"{host}:{port}", f"ClientHello offering TLS 1.2 and {SEP2_SUITE} only")
    exchanges.append(exchange)
    context = sep2_only_client(target.ca, target.cert, target.key)
    try:
        plain = socket.create_connection((host, port), timeout=target.timeout)
    except OSError as exc:
        exchange.error = f"{type(exc).__name__}: {exc}"
        pytest.fail(f"could not reach the DUT at {host}:{port}: {type(exc).__name__}: {exc}", pytrace=False)
    try:
        with plain, context.wrap_socket(plain, server_hostname=host) as tls:
            version, suite = tls.version(), (tls.cipher() or ("?",))[0]
    except (ssl.SSLError, OSError) as exc:
        exchange.error = f"{type(exc).__name__}: {exc}"
        pytest.fail(
            f"the TLS handshake offering only TLS 1.2 and {SEP2_SUITE} failed ({exc}): devices whose stack offers"
            " just the suite 2030.5 requires cannot connect (the server needs an ECDSA P-256 certificate and the"
            " suite enabled)",
            pytrace=False,
        )
    exchange.response = f"negotiated {version} {suite}"
    assert (version, suite) == ("TLSv1.2", SEP2_SUITE), f"negotiated {version} {suite}"


# --- subscriptions -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class SubscriptionState:
    listener: NotificationListener | None = None
    resource: str | None = None
    location: str | None = None
    token: str = ""


@pytest.fixture(scope="module")
def subscription_state(dut: HarnessDevice) -> Iterator[SubscriptionState]:
    state = SubscriptionState(token=uuid.uuid4().hex[:12])
    yield state
    if state.location:
        with contextlib.suppress(httpx.HTTPError):
            dut.http.delete(dut.url_of(state.location))
    if state.listener is not None:
        state.listener.close()


def start_listener(dut: HarnessDevice, target: Target, state: SubscriptionState) -> NotificationListener:
    if state.listener is not None:
        return state.listener
    host, _, port = target.option("listen").rpartition(":") if target.option("listen") else ("", "", "0")
    host = host.strip("[]")  # an IPv6 address written as [::1]:8443
    advertise = host if host not in ("", "0.0.0.0", "::") else local_address_towards(dut.dcap_url)
    dut_host = httpx.URL(dut.dcap_url).host
    if is_loopback(advertise) and not is_loopback(dut_host):
        pytest.skip(
            f"the notification listener would be at {advertise}, which the DUT at {dut_host} cannot reach;"
            " give --listen HOST:PORT with an address it can"
        )
    cert = target.option("listen_cert") or target.cert
    key = target.option("listen_key") or target.key
    if not cert or not key:
        pytest.skip("the notification listener needs a certificate: --listen-cert/--listen-key (or --cert/--key)")
    try:
        state.listener = NotificationListener(host or advertise, int(port or 0), cert, key, advertise)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        pytest.skip(f"the notification listener could not start on {host or advertise}:{port or 0}: {exc}")
    return state.listener


def subscribed_list(programs: list[ProgramControls]) -> ProgramControls | None:
    """The DERControlList to subscribe to: the first program (by primacy) with controls, else the first."""
    with_link = [p for p in programs if p.program.DERControlListLink is not None]
    return next((p for p in with_link if p.controls), with_link[0] if with_link else None)


@case(
    "S2030-SRV-SUB-001",
    "A Subscription to a DERControlList is created: 201 with a Location",
    "2030.5 Subscription/Notification function set; CSIP CORE (subscriptions)",
    Severity.RECOMMENDED,
)
def test_subscribe(dut: HarnessDevice, target: Target, subscription_state: SubscriptionState) -> None:
    device = dut.own_end_device()
    chosen = subscribed_list(dut.program_controls())
    if chosen is None or chosen.program.DERControlListLink is None:
        pytest.skip("the device has no program with a DERControlList to subscribe to")
    if device.SubscriptionListLink is None:
        pytest.fail(f"the EndDevice {device.href} has no SubscriptionListLink", pytrace=False)
    listener = start_listener(dut, target, subscription_state)
    resource = chosen.program.DERControlListLink.href
    subscription = m.Subscription(
        subscribedResource=resource,
        encoding=0,
        level="-S1",
        limit=10,
        notificationURI=listener.url(subscription_state.token),
    )
    answer = dut.post(device.SubscriptionListLink.href, subscription, f"Subscription to {resource}")
    assert answer.status_code == 201, (
        f"POST Subscription: HTTP {answer.status_code}, expected 201; body: {truncate(answer.content, 300)}"
    )
    location = answer.headers.get("location")
    assert location, "the 201 has no Location header"
    subscription_state.resource, subscription_state.location = resource, location
    created = dut.get(location, "the new Subscription", m.Subscription).model
    assert created.subscribedResource == resource, (
        f"{location} subscribes to {created.subscribedResource}, the harness asked for {resource}"
    )


@case(
    "S2030-SRV-SUB-002",
    "A Notification arrives at the listener when the DUT's controls for the device change",
    "2030.5 Notification: POSTed to notificationURI on a change; CSIP CORE (subscriptions)",
    Severity.RECOMMENDED,
)
def test_notification(dut: HarnessDevice, target: Target, subscription_state: SubscriptionState) -> None:
    dut.dcap()
    if not target.flag("expect_notification"):
        pytest.skip("--expect-notification not given: the operator must change the device's controls while it waits")
    if subscription_state.listener is None or subscription_state.resource is None:
        pytest.fail("no subscription: S2030-SRV-SUB-001 did not create one", pytrace=False)
    listener, resource = subscription_state.listener, subscription_state.resource
    wait = float(target.option("notify_wait", "60") or 60)
    token = subscription_state.token

    def ours(item: Received) -> bool:
        return item.path.endswith(token)

    # No polling meanwhile: a server must notify on its own, not only when the subscriber happens to call.
    found = listener.wait(ours, wait)
    if found is None:
        pytest.fail(
            f"no Notification arrived at {listener.url(token)} within {wait:.0f} s of subscribing to {resource}"
            " (the harness made no request meanwhile)",
            pytrace=False,
        )
    exchange = Exchange("POST", listener.url(token), truncate(found.body), status=201)
    exchange.note = f"Notification received from the DUT; Content-Type: {found.content_type}"
    dut.log.append(exchange)
    assert found.content_type.split(";")[0].strip().lower() == MEDIA_TYPE, (
        f"the Notification's Content-Type is '{found.content_type}', expected {MEDIA_TYPE}"
    )
    try:
        notification = codec.decode(found.body, m.Notification)
    except codec.Sep2DecodeError as exc:
        pytest.fail(f"the Notification is not schema-valid: {exc}", pytrace=False)
    assert notification.subscribedResource == resource, (
        f"the Notification is about {notification.subscribedResource}, the subscription is to {resource}"
    )
