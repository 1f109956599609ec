"""The 2.0b rules the openadr2b-ven suite checks on what a VEN sent, as plain functions returning the problems.

Kept apart from the cases so each rule reads in one place and can be tested without a VEN. Each function takes
:class:`~conformance.openadr2b_vtn_harness.Received` records (the VEN's message, already decoded by the codec)
and returns one line per problem, naming the message by its number in the run so the report's exchange log can be
searched for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from lxml import etree

from conformance.openadr2b_ven_scenario import StepState
from conformance.openadr2b_vtn_harness import Received
from gateway.protocols.openadr2b.mapper import OPT_REASONS
from gateway.protocols.openadr2b.messages import SERVICE_OF, OadrMessage, Payload, ResponseCode

REFUSALS = range(450, 470)  # the 2.0b error codes
CLOCK_TOLERANCE = timedelta(minutes=5)
_DATE_TIMES = frozenset({"date-time", "createdDateTime"})
_XML_TYPES = frozenset({"application/xml", "text/xml"})


def registration_problems(record: Received, expect_name: str | None) -> list[str]:
    """oadrCreatePartyRegistration of a 2.0b simpleHTTP pull VEN, with a name."""
    message = record.message
    if message is None or message.registration is None:
        return [f"#{record.seq} could not be read: {record.problem}"]
    registration, problems = message.registration, []
    if registration.profile_name != "2.0b":
        problems.append(f"oadrProfileName is {registration.profile_name!r}, not 2.0b")
    if registration.transport_name != "simpleHttp":
        problems.append(f"oadrTransportName is {registration.transport_name!r}, not simpleHttp")
    if not _has_child(record, "oadrHttpPullModel"):
        problems.append("no oadrHttpPullModel: a simpleHttp VEN says whether it pulls")
    elif not registration.http_pull_model:
        problems.append("oadrHttpPullModel is false: this suite tests pull VENs (the harness cannot push)")
    if not registration.ven_name:
        problems.append("no oadrVenName")
    elif expect_name and registration.ven_name != expect_name:
        problems.append(f"oadrVenName is {registration.ven_name!r}, expected {expect_name!r}")
    if not message.request_id:
        problems.append("an empty requestID")
    return problems


def _has_child(record: Received, localname: str) -> bool:
    return any(isinstance(e.tag, str) and etree.QName(e).localname == localname for e in record.root.iter())


def event_answer_problems(answer: Received, state: StepState, event_id: str, modification: int) -> list[str]:
    """The oadrCreatedEvent answering ``state``: 200, and an optIn/optOut with code 200 for the event version."""
    message = answer.message
    assert message is not None and message.payload is Payload.CREATED_EVENT
    problems = []
    if message.response is None or message.response.code != ResponseCode.OK:
        code = message.response.code if message.response else None
        problems.append(f"#{answer.seq}: the oadrCreatedEvent's eiResponse code is {code}, not 200")
    found = [r for r in message.event_responses if r.event_id == event_id]
    if not found:
        named = ", ".join(f"{r.event_id}/{r.modification_number}" for r in message.event_responses) or "none"
        return [*problems, f"#{answer.seq}: no eventResponse for event {event_id} (it names {named})"]
    versions = sorted({r.modification_number for r in found})
    if modification not in versions:
        problems.append(
            f"#{answer.seq}: the eventResponse for {event_id} names modificationNumber"
            f" {', '.join(map(str, versions))}, the event sent has {modification}"
        )
    for response in found:
        if response.code != ResponseCode.OK:
            problems.append(f"#{answer.seq}: the eventResponse for {event_id} has code {response.code}, not 200")
    return problems


def request_id_problems(answer: Received, state: StepState) -> list[str]:
    """The oadrCreatedEvent names the oadrDistributeEvent it answers: each eventResponse's requestID is that
    message's requestID. The eiResponse's requestID may be the same or empty: in pull mode the oadrCreatedEvent is
    a request of the VEN's, not an answer, and the 2.0b samples (and openleadr) write it empty."""
    message = answer.message
    assert message is not None
    sent = state.request_ids
    problems = []
    echoed = message.response.request_id if message.response else None
    if echoed and echoed not in sent:
        problems.append(f"#{answer.seq}: eiResponse requestID {echoed!r}; the oadrDistributeEvent's is {_one(sent)}")
    for response in message.event_responses:
        if response.event_id in state.event_ids and response.request_id not in sent:
            problems.append(
                f"#{answer.seq}: eventResponse for {response.event_id}: requestID {response.request_id!r},"
                f" the oadrDistributeEvent's is {_one(sent)}"
            )
    return problems


def _one(values: set[str]) -> str:
    return " or ".join(repr(v) for v in sorted(values)) or "(none sent)"


def echo_problems(answer: Received, request_id: str, what: str) -> list[str]:
    """An answer (oadrRegisteredReport, oadrCreatedReport) with code 200 that echoes ``request_id``."""
    message = answer.message
    if message is None:
        return [f"#{answer.seq}: the answer to {what} could not be read: {answer.problem}"]
    problems = []
    response = message.response
    if response is None or response.code != ResponseCode.OK:
        problems.append(f"#{answer.seq}: {message.payload.value} code {response.code if response else None}, not 200")
    if response is None or response.request_id != request_id:
        echoed = response.request_id if response else None
        problems.append(f"#{answer.seq}: requestID {echoed!r}, the {what}'s is {request_id!r}")
    return problems


def metadata_problems(records: Iterable[Received]) -> list[str]:
    """oadrRegisterReport: METADATA reports, each with a reportSpecifierID and distinct, non-empty rIDs."""
    problems = []
    for record in records:
        message = record.message
        assert message is not None
        for report in message.reports:
            where = f"#{record.seq} report {report.report_specifier_id or '(no reportSpecifierID)'}"
            if not report.report_name.startswith("METADATA_"):
                problems.append(f"{where}: reportName {report.report_name!r} is not a METADATA_ report")
            if not report.report_specifier_id:
                problems.append(f"{where}: no reportSpecifierID")
            r_ids = [d.r_id for d in report.descriptions]
            if any(not r for r in r_ids) or len(set(r_ids)) != len(r_ids):
                problems.append(f"{where}: rIDs {r_ids} are not distinct and non-empty")
    return problems


def update_report_problems(record: Received, request_id: str, r_ids: list[str]) -> list[str]:
    """oadrUpdateReport for request ``request_id``: that reportRequestID, only the asked-for rIDs, some data."""
    message = record.message
    assert message is not None
    ours = [r for r in message.reports if r.report_request_id == request_id]
    if not ours:
        named = ", ".join(r.report_request_id for r in message.reports) or "none"
        return [f"#{record.seq}: no report with reportRequestID {request_id} (it has {named})"]
    problems = []
    for report in ours:
        if report.report_name.startswith("METADATA_"):
            problems.append(f"#{record.seq}: a data report named {report.report_name} (METADATA_ is for registering)")
        extra = sorted({i.r_id for i in report.intervals} - set(r_ids))
        if extra:
            problems.append(f"#{record.seq}: data for rID(s) {', '.join(extra)}, which were not asked for")
        if not report.intervals:
            problems.append(f"#{record.seq}: the report carries no interval of data")
    return problems


def opt_problems(record: Received, ven_id: str, versions_sent: dict[str, set[int]]) -> list[str]:
    """oadrCreateOpt: a known reason, this VEN's venID, and either an event the VEN was sent or availability."""
    message = record.message
    assert message is not None and message.opt is not None
    opt, where, problems = message.opt, f"#{record.seq} opt {message.opt.opt_id}", []
    if opt.opt_reason not in OPT_REASONS and not opt.opt_reason.startswith("x-"):
        problems.append(f"{where}: optReason {opt.opt_reason!r} is not a 2.0b reason")
    if opt.ven_id != ven_id:
        problems.append(f"{where}: venID {opt.ven_id!r}, the VEN's is {ven_id!r}")
    if opt.event_id is None and not opt.availability:
        problems.append(f"{where}: neither a qualifiedEventID nor a vavailability schedule")
    if opt.event_id is not None:
        sent = versions_sent.get(opt.event_id)
        if sent is None:
            problems.append(f"{where}: event {opt.event_id} was never sent to this VEN")
        elif opt.modification_number not in sent:
            problems.append(
                f"{where}: event {opt.event_id} modificationNumber {opt.modification_number} was never sent"
                f" (sent: {', '.join(map(str, sorted(sent)))})"
            )
    problems.extend(
        f"{where}: an availability window of {w.duration}" for w in opt.availability if w.duration <= timedelta(0)
    )
    return problems


def refusal_of(message: OadrMessage | None) -> int | None:
    """The 2.0b error code an oadrCreatedEvent or oadrResponse carries, if it is one."""
    if message is None or message.response is None:
        return None
    codes = [message.response.code, *(r.code for r in message.event_responses)]
    return next((c for c in codes if c in REFUSALS), None)


def accepted_events(message: OadrMessage | None) -> list[str]:
    """Events an oadrCreatedEvent accepted (a 200 eventResponse under a 200 eiResponse)."""
    if message is None or message.payload is not Payload.CREATED_EVENT:
        return []
    if message.response is not None and message.response.code != ResponseCode.OK:
        return []
    return [r.event_id for r in message.event_responses if r.code == ResponseCode.OK]


def utc_problems(records: Iterable[Received]) -> list[str]:
    """Profile rule 1: every date-time the VEN writes is UTC with a trailing 'Z'."""
    problems = []
    for record in records:
        if record.root is None:
            continue
        for element in record.root.iter():
            if isinstance(element.tag, str) and etree.QName(element).localname in _DATE_TIMES:
                text = (element.text or "").strip()
                if text and not text.endswith("Z"):
                    problems.append(f"#{record.seq} {record.name}: {etree.QName(element).localname} {text!r}")
    return problems


def clock_problems(records: Iterable[Received]) -> list[str]:
    """createdDateTime is when the VEN made the message: far from the harness clock means a wrong clock or local
    time written as UTC."""
    problems = []
    for record in records:
        message = record.message
        if message is None:
            continue
        stamps = [r.created for r in message.reports] + ([message.opt.created] if message.opt else [])
        for stamp in stamps:
            drift = stamp - record.wall
            if abs(drift) > CLOCK_TOLERANCE:
                problems.append(
                    f"#{record.seq} {record.name}: createdDateTime {stamp:%Y-%m-%dT%H:%M:%SZ} is"
                    f" {drift.total_seconds():+.0f} s from the harness clock"
                )
    return problems


def endpoint_problems(records: Iterable[Received]) -> list[str]:
    """simpleHTTP: each payload goes to its service's endpoint (oadrResponse may go to any)."""
    problems = []
    for record in records:
        if record.payload is None or record.payload is Payload.RESPONSE:
            continue
        expected = SERVICE_OF[record.payload].value
        if record.service != expected:
            problems.append(f"#{record.seq} {record.name} was posted to {record.service or record.url}, not {expected}")
    return problems


def content_type_problems(records: Iterable[Received]) -> list[str]:
    return [
        f"#{r.seq} {r.name}: Content-Type {r.content_type!r}"
        for r in records
        if r.content_type.split(";")[0].strip().lower() not in _XML_TYPES
    ]


def ven_id_problems(records: Iterable[Received]) -> list[str]:
    """After registration, every venID the VEN writes is the one the VTN assigned it."""
    problems = []
    for record in records:
        message, assigned = record.message, record.ven_id_then
        if message is None or assigned is None or message.ven_id is None:
            continue
        if message.ven_id != assigned:
            problems.append(f"#{record.seq} {record.name}: venID {message.ven_id!r}, assigned {assigned!r}")
    return problems
