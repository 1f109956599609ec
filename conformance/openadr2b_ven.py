"""Suite openadr2b-ven: the DUT is an OpenADR 2.0b VEN, the harness a simpleHTTP VTN it polls (pull model).

``--target`` is the URL the harness VTN serves at (``https://HOST:PORT/OpenADR2/Simple/2.0b`` with ``--cert``/
``--key``, and ``--ca`` to require the VEN's client certificate; ``http`` for a test bench); the vendor points the
VEN at it and starts it. Options: ``ven_wait`` (``--ven-wait``, seconds to wait for the VEN to register, default
60), ``poll_freq`` (``--poll-freq``, the oadrRequestedOadrPollFreq the harness asks for, whole seconds, default 10),
``ven_id`` (``--ven-id``, the venID to assign; by default the one the VEN proposes, else a new one),
``expect_ven_name`` (``--expect-ven-name``), ``opt_wait`` (``--option opt_wait=N``, how long OADR-VEN-OPT-001
waits for an oadrCreateOpt, for a vendor who opts out on the device during the run), ``listen`` (``--listen
HOST:PORT``, where to bind when that differs from the URL). ``--timeout`` is how long the VEN has to answer each
message once it has it. See docs/conformance-openadr2b-ven.md for the script and the cases.

The harness plays a fixed script (see :mod:`conformance.openadr2b_ven_scenario`) paced by the VEN's own polls and
answers; the cases wait for the step they judge and read what the VEN sent, so they run in file order without
sleeping, and any subset (``--only``) still plays the script up to the step it needs. A VEN that never registers
fails every case with the reason; one that sends garbage fails with what the codec said about it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from conformance.framework import Exchange, Severity, Target, case
from conformance.openadr2b_ven_checks import (
    accepted_events,
    clock_problems,
    content_type_problems,
    echo_problems,
    endpoint_problems,
    event_answer_problems,
    metadata_problems,
    opt_problems,
    refusal_of,
    registration_problems,
    request_id_problems,
    update_report_problems,
    utc_problems,
    ven_id_problems,
)
from conformance.openadr2b_ven_scenario import Step, StepOutcome, StepState
from conformance.openadr2b_vtn_harness import (
    HarnessError,
    HarnessServer,
    HarnessSettings,
    HarnessVtn,
    Received,
    Registered,
)
from gateway.protocols.openadr2b.messages import Payload


class Harness:
    """The running harness VTN for this module, or the reason it could not start."""

    def __init__(self, target: Target) -> None:
        self.vtn: HarnessVtn | None = None
        self.server: HarnessServer | None = None
        self.error: str | None = None
        try:
            self.vtn = HarnessVtn(HarnessSettings.from_target(target))
            self.server = HarnessServer(self.vtn)
            self.server.start()
        except HarnessError as exc:
            self.error = str(exc)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture(scope="module")
def harness(target: Target) -> Iterator[Harness]:
    running = Harness(target)
    yield running
    running.close()


@pytest.fixture
def vtn(harness: Harness) -> HarnessVtn:
    if harness.vtn is None or harness.error:
        pytest.fail(harness.error or "the harness VTN did not start", pytrace=False)
    return harness.vtn


@pytest.fixture
def ven(vtn: HarnessVtn) -> Registered:
    """The VEN's registration; every case needs one, and fails with the reason when there is none."""
    registered = vtn.wait_registered()
    if registered is None:
        pytest.fail(vtn.no_ven_reason(), pytrace=False)
    return registered


def show(log: list[Exchange], records: list[Received | None], note: str | None = None) -> None:
    for record in records:
        if record is not None:
            log.append(record.exchange(note))


def problems_in(problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        pytest.fail("; ".join(problems[:10]) + more, pytrace=False)


def step_answer(vtn: HarnessVtn, step: Step, log: list[Exchange]) -> tuple[StepState, Received]:
    """Wait for ``step``; show what went out and what came back; fail unless the VEN answered it."""
    state = vtn.wait_step(step)
    delivered = [vtn.by_seq(d.seq) for d in state.deliveries]
    show(log, delivered, f"this carried {step.value}")
    answer = vtn.by_seq(state.answer_seq)
    show(log, [answer], f"the VEN's answer to {step.value}")
    if state.outcome is StepOutcome.NOT_DELIVERED:
        pytest.fail(f"{step.value} was queued but never went out: {state.note}", pytrace=False)
    if answer is None:
        why = state.note or ("the scenario has not reached this step" if state.activated is None else "")
        pytest.fail(f"no answer to {step.value}: {why}", pytrace=False)
    return state, answer


# --- registration ----------------------------------------------------------------------------------------------------


@case(
    "OADR-VEN-REG-001",
    "The VEN registers: oadrCreatePartyRegistration for profile 2.0b, transport simpleHttp, pull, with its name",
    "EiRegisterParty: oadrCreatePartyRegistration",
)
def test_registration(vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    ven = vtn.wait_registered()
    if ven is None:
        show(exchanges, vtn.messages()[:10])  # what did arrive, if anything: garbage, strays, a stranger's polls
        pytest.fail(vtn.no_ven_reason(), pytrace=False)
    queried = [r for r in vtn.messages(Payload.QUERY_REGISTRATION) if r.seq < ven.request.seq]
    show(exchanges, [*queried, ven.request])
    problems_in(registration_problems(ven.request, vtn.settings.expect_ven_name))


@case(
    "OADR-VEN-REG-002",
    "A query of the VTN before registering (oadrQueryRegistration), when sent, is well-formed",
    "EiRegisterParty: oadrQueryRegistration (optional in the profile)",
    Severity.RECOMMENDED,
)
def test_query_registration(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    queries = vtn.messages(Payload.QUERY_REGISTRATION)
    show(exchanges, queries)
    if not queries:
        pytest.skip("the VEN registered without querying the VTN first (the profile makes the query optional)")
    assert all(q.message and q.message.request_id for q in queries), "an oadrQueryRegistration has no requestID"


@case(
    "OADR-VEN-EVT-001",
    "After registering, the VEN asks for the current events (oadrRequestEvent)",
    "EiEvent: oadrRequestEvent",
    Severity.RECOMMENDED,
)
def test_request_event(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    found = vtn.wait_for(
        lambda r: r.payload is Payload.REQUEST_EVENT and r.seq > ven.request.seq, vtn.settings.timing.answer_wait
    )
    assert found is not None, (
        f"no oadrRequestEvent within {vtn.settings.timing.answer_wait:g} s of registering; a pull VEN that only"
        " polls learns of existing events late"
    )
    show(exchanges, [found])
    assert found.message is not None and found.message.ven_id == ven.ven_id, (
        f"the oadrRequestEvent names venID {found.message and found.message.ven_id!r}, the assigned is {ven.ven_id!r}"
    )


@case(
    "OADR-VEN-REP-001",
    "After registering, the VEN registers its reports (oadrRegisterReport with METADATA reports)",
    "EiReport: oadrRegisterReport (2.0b registration sequence)",
)
def test_register_report(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    found = vtn.wait_for(
        lambda r: r.payload is Payload.REGISTER_REPORT and r.seq > ven.request.seq, vtn.settings.timing.answer_wait
    )
    assert found is not None, f"no oadrRegisterReport within {vtn.settings.timing.answer_wait:g} s of registering"
    registrations = vtn.messages(Payload.REGISTER_REPORT)
    show(exchanges, registrations)
    problems_in(metadata_problems(registrations))


@case("OADR-VEN-POLL-001", "The registered VEN polls (oadrPoll with its venID)", "OadrPoll (simpleHTTP pull)")
def test_polls(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    wait = vtn.scenario.timing.deliver_wait
    found = vtn.wait_for(lambda r: r.payload is Payload.POLL and r.seq > ven.request.seq, wait)
    assert found is not None, f"no oadrPoll within {wait:g} s of registering"
    show(exchanges, [found])


# --- events ----------------------------------------------------------------------------------------------------------


@case(
    "OADR-VEN-EVT-002",
    "A new event is answered with oadrCreatedEvent: optIn or optOut for its eventID and modificationNumber, code 200",
    "EiEvent: oadrCreatedEvent (responseRequired always)",
)
def test_new_event(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    state, answer = step_answer(vtn, Step.NEW_EVENT, exchanges)
    problems_in(event_answer_problems(answer, state, vtn.scenario.event_id("1"), 0))


@case(
    "OADR-VEN-EVT-003",
    "oadrCreatedEvent names the oadrDistributeEvent it answers: each eventResponse carries its requestID",
    "EiEvent: oadrCreatedEvent eventResponse/requestID (eiResponse/requestID: the same, or empty in pull mode)",
)
def test_created_event_request_id(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    problems = []
    for step in (Step.NEW_EVENT, Step.MODIFIED_EVENT):
        state, answer = step_answer(vtn, step, exchanges)
        problems += request_id_problems(answer, state)
    problems_in(problems)


@case(
    "OADR-VEN-EVT-004",
    "A modified event (modificationNumber + 1) is answered again, for the new modificationNumber",
    "EiEvent: modificationNumber",
)
def test_modified_event(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    state, answer = step_answer(vtn, Step.MODIFIED_EVENT, exchanges)
    problems_in(event_answer_problems(answer, state, vtn.scenario.event_id("1"), 1))


@case(
    "OADR-VEN-EVT-005",
    "An explicit cancellation (eventStatus cancelled, modificationNumber + 1) is acknowledged with oadrCreatedEvent",
    "EiEvent: eventStatus cancelled",
)
def test_cancelled_event(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    state, answer = step_answer(vtn, Step.CANCELLED_EVENT, exchanges)
    problems_in(event_answer_problems(answer, state, vtn.scenario.event_id("1"), 2))


@case(
    "OADR-VEN-EVT-006",
    "An event left out of the next oadrDistributeEvent is treated as cancelled: not answered, nor opted, again",
    "EiEvent: implied cancellation (oadrDistributeEvent carries all of the VEN's events)",
)
def test_implied_cancellation(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    first, first_answer = step_answer(vtn, Step.SECOND_EVENT, exchanges)
    problems_in(event_answer_problems(first_answer, first, vtn.scenario.event_id("2"), 0))
    state, answer = step_answer(vtn, Step.IMPLIED_CANCELLATION, exchanges)
    dropped, kept = vtn.scenario.event_id("2"), vtn.scenario.event_id("3")
    problems = event_answer_problems(answer, state, kept, 0)
    later = [r for r in vtn.messages(Payload.CREATED_EVENT, Payload.CREATE_OPT) if r.seq >= answer.seq]
    for record in later:
        assert record.message is not None
        named = {e.event_id for e in record.message.event_responses}
        if record.message.opt is not None and record.message.opt.event_id:
            named.add(record.message.opt.event_id)
        if dropped in named:
            problems.append(f"#{record.seq} {record.name} still answers event {dropped}, which the VTN dropped")
    problems_in(problems)


# --- reports ---------------------------------------------------------------------------------------------------------


@case(
    "OADR-VEN-REP-002",
    "The VTN's oadrRegisterReport is answered with oadrRegisteredReport (code 200, its requestID)",
    "EiReport: oadrRegisteredReport",
)
def test_registered_report(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    state, answer = step_answer(vtn, Step.VTN_REPORTS, exchanges)
    assert answer.payload is Payload.REGISTERED_REPORT, f"answered with {answer.name}, not oadrRegisteredReport"
    problems_in(echo_problems(answer, state.deliveries[0].request_id, "VTN's oadrRegisterReport"))


def report_request_state(vtn: HarnessVtn, log: list[Exchange]) -> tuple[StepState, Received]:
    state = vtn.wait_step(Step.REPORT_REQUEST)
    if state.outcome is StepOutcome.NOT_APPLICABLE:
        pytest.skip(f"not applicable: {state.note}")
    return step_answer(vtn, Step.REPORT_REQUEST, log)


@case(
    "OADR-VEN-REP-003",
    "An oadrCreateReport for an offered data point is answered with oadrCreatedReport listing it as pending",
    "EiReport: oadrCreateReport / oadrCreatedReport",
)
def test_created_report(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    state, answer = report_request_state(vtn, exchanges)
    assert answer.payload is Payload.CREATED_REPORT, f"answered with {answer.name}, not oadrCreatedReport"
    assert state.report_request is not None and answer.message is not None
    problems = echo_problems(answer, state.deliveries[0].request_id, "oadrCreateReport")
    wanted = state.report_request.report_request_id
    if wanted not in answer.message.report_request_ids:
        pending = ", ".join(answer.message.report_request_ids) or "none"
        problems.append(f"#{answer.seq}: oadrPendingReports lists {pending}, not {wanted}")
    problems_in(problems)


@case(
    "OADR-VEN-REP-004",
    "The requested report arrives as oadrUpdateReport with the reportRequestID and the requested rID",
    "EiReport: oadrUpdateReport",
)
def test_update_report(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    state, _ = report_request_state(vtn, [])
    request = state.report_request
    assert request is not None
    since = state.deliveries[0].seq

    def ours(record: Received) -> bool:
        message = record.message
        return (
            record.seq > since
            and message is not None
            and message.payload is Payload.UPDATE_REPORT
            and any(r.report_request_id == request.report_request_id for r in message.reports)
        )

    found = vtn.wait_for(ours, vtn.settings.timing.answer_wait)
    show(exchanges, [vtn.by_seq(since)], "this carried the oadrCreateReport")
    if found is None:
        updates = vtn.messages(Payload.UPDATE_REPORT)
        show(exchanges, updates)
        pytest.fail(
            f"no oadrUpdateReport for reportRequestID {request.report_request_id} within"
            f" {vtn.settings.timing.answer_wait:g} s ({len(updates)} other oadrUpdateReport(s))",
            pytrace=False,
        )
    show(exchanges, [found])
    problems_in(update_report_problems(found, request.report_request_id, request.r_ids))


# --- opt -------------------------------------------------------------------------------------------------------------


@case(
    "OADR-VEN-OPT-001",
    "An oadrCreateOpt, when the VEN sends one, is well-formed: a 2.0b reason, its venID, a known event or a schedule",
    "EiOpt: oadrCreateOpt (required for full-function certification)",
    Severity.RECOMMENDED,
)
def test_create_opt(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    if vtn.settings.opt_wait:
        vtn.wait_for(lambda r: r.payload is Payload.CREATE_OPT, vtn.settings.opt_wait)
    opts = vtn.messages(Payload.CREATE_OPT)
    show(exchanges, opts)
    if not opts:
        pytest.skip(
            "the VEN sent no oadrCreateOpt (opt out on the device during the run, with --option opt_wait=SECONDS)"
        )
    problems = []
    for record in opts:
        problems += opt_problems(record, ven.ven_id, vtn.scenario.versions_sent)
    problems_in(problems)


# --- bad input -------------------------------------------------------------------------------------------------------


def malformed(vtn: HarnessVtn, log: list[Exchange]) -> tuple[StepState, list[Received]]:
    """The step that sent a schema-invalid oadrDistributeEvent, and what the VEN sent after it until the step
    closed."""
    state = vtn.wait_step(Step.MALFORMED)
    if not state.deliveries:
        pytest.fail(f"the schema-invalid message never went out: {state.note}", pytrace=False)
    since = state.deliveries[0].seq
    after = [r for r in vtn.messages() if r.seq > since and (state.finished is None or r.at <= state.finished)]
    show(log, [vtn.by_seq(since)], "this carried a schema-invalid oadrDistributeEvent (no eventStatus)")
    show(log, after)
    return state, after


@case(
    "OADR-VEN-ERR-001",
    "A schema-invalid oadrDistributeEvent is not acted upon, and the VEN keeps polling",
    "2.0b schema; EiEvent",
    Severity.RECOMMENDED,
)
def test_malformed_not_accepted(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    state, after = malformed(vtn, exchanges)
    bad_event = vtn.scenario.event_id("4")
    accepted = [r for r in after if bad_event in accepted_events(r.message)]
    assert not accepted, f"#{accepted[0].seq}: the VEN accepted event {bad_event} from a schema-invalid message"
    wait = vtn.scenario.timing.deliver_wait
    since = state.deliveries[0].seq
    polled = vtn.wait_for(lambda r: r.payload is Payload.POLL and r.seq > since, wait)
    assert polled is not None, f"the VEN stopped polling after the schema-invalid message (none within {wait:g} s)"


@case(
    "OADR-VEN-ERR-002",
    "A schema-invalid oadrDistributeEvent is refused with a 2.0b error code (4xx oadrCreatedEvent or oadrResponse)",
    "2.0b response codes 450-469 (454 invalid data)",
    Severity.RECOMMENDED,
)
def test_malformed_refused(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    state, after = malformed(vtn, exchanges)
    refusals = [(r, refusal_of(r.message)) for r in after if refusal_of(r.message) is not None]
    assert refusals, (
        "the VEN said nothing about the schema-invalid oadrDistributeEvent (it should answer oadrCreatedEvent"
        " with eiResponse code 454, or another 4xx)"
    )
    record, _code = refusals[0]
    assert record.message is not None and record.message.response is not None
    echoed = record.message.response.request_id
    sent = state.deliveries[0].request_id
    assert echoed in (sent, None, ""), (
        f"#{record.seq}: the refusal names requestID {echoed!r}, the message's is {sent!r}"
    )


# --- polling, identity and the rules every message follows ---------------------------------------------------------


def polls(vtn: HarnessVtn, since: int) -> list[Received]:
    """The polls since ``since``, waiting until at least three were answered with nothing (two idle gaps)."""

    def enough(record: Received) -> bool:
        idle = [r for r in vtn.received if r.payload is Payload.POLL and r.seq > since and r.answered == "oadrResponse"]
        return len(idle) >= 3

    vtn.wait_for(enough, vtn.scenario.timing.deliver_wait + 2 * vtn.settings.timing.poll_freq.total_seconds())
    return [r for r in vtn.messages(Payload.POLL) if r.seq > since]


@case(
    "OADR-VEN-POLL-002",
    "The VEN polls no more often than oadrRequestedOadrPollFreq",
    "OadrPoll: oadrRequestedOadrPollFreq (the VEN polls at most once per that duration)",
)
def test_poll_not_too_often(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    found = polls(vtn, ven.request.seq)
    freq = vtn.settings.timing.poll_freq.total_seconds()
    # A poll right after one that carried a message is not counted: the harness queues its next message only
    # once the VEN has answered, and fetching it at once is how a VEN drains its queue.
    gaps = [(b.at - a.at, b) for a, b in itertools.pairwise(found) if a.answered == "oadrResponse"]
    if not gaps:
        pytest.fail("not enough idle polls to measure the interval", pytrace=False)
    # Judged on the mean, which one late request (a busy VEN or network) cannot shrink, and on single intervals
    # only when they are less than half the period: that is polling too often, not jitter.
    mean = sum(gap for gap, _ in gaps) / len(gaps)
    short = [(gap, record) for gap, record in gaps if gap < 0.5 * freq - 0.1]
    show(exchanges, [record for _, record in short[:5]])
    assert mean >= 0.9 * freq, (
        f"the VEN polled every {mean:.2f} s on average over {len(gaps)} idle intervals; it asked for {freq:g} s"
    )
    assert not short, (
        f"{len(short)} of {len(gaps)} idle poll intervals were under half the requested {freq:g} s,"
        f" e.g. {short[0][0]:.2f} s before #{short[0][1].seq}"
    )


@case(
    "OADR-VEN-POLL-003",
    "The VEN keeps polling at about oadrRequestedOadrPollFreq (no gap longer than twice it)",
    "OadrPoll: oadrRequestedOadrPollFreq",
    Severity.RECOMMENDED,
)
def test_poll_regularly(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    found = polls(vtn, ven.request.seq)
    freq = vtn.settings.timing.poll_freq.total_seconds()
    if len(found) < 2:
        pytest.fail(f"only {len(found)} poll(s) since registering", pytrace=False)
    gap, record = max((b.at - a.at, b) for a, b in itertools.pairwise(found))
    show(exchanges, [record])
    assert gap <= 2 * freq + 2, (
        f"{gap:.1f} s without a poll before #{record.seq}; the requested frequency is {freq:g} s"
    )


@case(
    "OADR-VEN-REG-003",
    "After registering, every venID the VEN sends is the one the VTN assigned",
    "EiRegisterParty: venID (oadrCreatedPartyRegistration)",
)
def test_assigned_ven_id(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    problems = ven_id_problems(vtn.messages())
    show(exchanges, [r for r in vtn.messages() if r.message is not None and r.message.ven_id and r.ven_id_then][:3])
    problems_in(problems)


@case(
    "OADR-VEN-GEN-001",
    "Every message the VEN sent is schema-valid OpenADR 2.0b",
    "2.0b schema (oadr_20b.xsd), read with the gateway's strict codec",
)
def test_schema_valid(vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    records = vtn.messages() if vtn.wait_registered() else vtn.messages()[:10]
    if not records:
        pytest.fail(vtn.no_ven_reason(), pytrace=False)
    show(exchanges, records)  # the whole run's log, once
    invalid = [f"#{r.seq} to {r.service or r.url}: {r.problem}" for r in records if r.problem and not r.schema_valid]
    problems_in(invalid)


@case("OADR-VEN-GEN-002", "Every date-time the VEN sends is UTC ('Z')", "2.0b profile rule 1")
def test_utc(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    problems = utc_problems(vtn.messages())
    show(exchanges, [r for r in vtn.messages() if any(p.startswith(f"#{r.seq} ") for p in problems)][:5])
    problems_in(problems)


@case(
    "OADR-VEN-GEN-003",
    "Every message is posted to its service's endpoint",
    "simpleHTTP: /EiRegisterParty, /EiEvent, /EiReport, /EiOpt, /OadrPoll",
)
def test_endpoints(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    problems_in(endpoint_problems(vtn.messages()))


@case(
    "OADR-VEN-GEN-004",
    "Messages are sent as application/xml",
    "simpleHTTP: Content-Type",
    Severity.RECOMMENDED,
)
def test_content_type(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    problems_in(content_type_problems(vtn.messages()))


@case(
    "OADR-VEN-GEN-005",
    "createdDateTime agrees with the harness clock (within 5 minutes)",
    "ei:createdDateTime; 2.0b profile rule 1 (local time written as UTC shows here)",
    Severity.RECOMMENDED,
)
def test_created_clock(ven: Registered, vtn: HarnessVtn, exchanges: list[Exchange]) -> None:
    problems_in(clock_problems(vtn.messages()))
