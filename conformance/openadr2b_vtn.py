"""Suite openadr2b-vtn: the DUT is an OpenADR 2.0b VTN, the harness a simpleHTTP pull VEN.

Cases run in file order and share one registration (module-scoped ``ven``); the cancellation case is last
because it ends that registration. Cases about event content need the DUT to have at least one event for the
harness VEN; without one they are skipped with the reason, unless the target option ``expect_events`` is set,
in which case having none is itself a failure. Rule numbers refer to the OpenADR 2.0b profile rules the
Alliance's certification harness checks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from conformance.framework import Exchange, Severity, Target, case
from conformance.openadr2b_harness import (
    HarnessVen,
    current_value_problems,
    duration_problems,
    non_utc_datetimes,
    signal_names,
    simple_problems,
    status_problems,
    uid_problems,
)
from gateway.protocols.openadr2b.messages import (
    Availability,
    Event,
    OadrMessage,
    Opt,
    OptType,
    Payload,
    Service,
)

REFUSALS = range(450, 470)  # the 2.0b error codes


@pytest.fixture(scope="module")
def ven(target: Target, exchanges: list[Exchange]) -> Iterator[HarnessVen]:
    client = HarnessVen(target, exchanges)
    yield client
    client.close()


@pytest.fixture
def events(ven: HarnessVen, target: Target) -> list[Event]:
    """The DUT's events for the harness VEN (asked for with oadrRequestEvent once per run)."""
    if not ven.session.events_raw:
        answer = ven.request_events()
        if answer.message.payload is not Payload.DISTRIBUTE_EVENT:
            pytest.fail(f"oadrRequestEvent was answered with {answer.message.payload.value}", pytrace=False)
    else:
        ven.recall_events_exchange()
    if not ven.session.events:
        message = f"the DUT has no event for VEN '{ven.session.ven_id}'; create one aimed at it to run this case"
        if target.flag("expect_events"):
            pytest.fail(message + " (events were expected)", pytrace=False)
        pytest.skip(message)
    return ven.session.events


def problems_in(problems: list[str]) -> None:
    if problems:
        pytest.fail("; ".join(problems[:10]) + (f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""))


@case(
    "OADR-VTN-REG-001", "Query registration is answered with the VTN's vtnID", "EiRegisterParty: oadrQueryRegistration"
)
def test_query_registration(ven: HarnessVen) -> None:
    answer = ven.query_registration()
    assert answer.message.payload is Payload.CREATED_PARTY_REGISTRATION, (
        f"expected oadrCreatedPartyRegistration, got {answer.message.payload.value} code {answer.code}"
    )
    assert answer.code == 200, f"response code {answer.code}, expected 200"
    registration = answer.message.registration
    assert (registration and registration.vtn_id) or answer.message.vtn_id, "the answer carries no vtnID"


@case("OADR-VTN-REG-002", "Registration returns a registrationID and the VEN's venID", "EiRegisterParty: create")
def test_create_registration(ven: HarnessVen) -> None:
    answer = ven.register()
    assert answer.message.payload is Payload.CREATED_PARTY_REGISTRATION, (
        f"expected oadrCreatedPartyRegistration, got {answer.message.payload.value} code {answer.code}"
    )
    assert answer.code == 200, f"response code {answer.code} ({answer.message.response}), expected 200"
    assert ven.session.registration_id, "oadrCreatedPartyRegistration has no registrationID"
    assert ven.session.ven_id, "oadrCreatedPartyRegistration has no venID"
    assert ven.session.vtn_id, "oadrCreatedPartyRegistration has no vtnID"


@case(
    "OADR-VTN-REG-003",
    "Registration tells the VEN how often to poll",
    "EiRegisterParty: oadrRequestedOadrPollFreq",
    Severity.RECOMMENDED,
)
def test_poll_frequency(ven: HarnessVen) -> None:
    ven.ensure_registered()
    assert ven.session.poll_freq is not None, "no oadrRequestedOadrPollFreq in oadrCreatedPartyRegistration"


@case("OADR-VTN-GEN-001", "Every answer is a schema-valid 2.0b message", "2.0b schema; simpleHTTP answers")
def test_answers_are_schema_valid(ven: HarnessVen) -> None:
    ven.ensure_registered()
    for answer in (ven.query_registration(), ven.poll(), ven.request_events()):
        assert answer.message.payload is not None  # send() has already failed the case on an invalid answer


@case(
    "OADR-VTN-GEN-002",
    "Answers are sent as application/xml",
    "simpleHTTP: Content-Type",
    Severity.RECOMMENDED,
)
def test_content_type(ven: HarnessVen) -> None:
    answer = ven.poll()
    kind = answer.http.headers.get("content-type", "")
    assert kind.split(";")[0].strip() in {"application/xml", "text/xml"}, f"Content-Type '{kind}'"


@case("OADR-VTN-POLL-001", "A registered VEN's poll is answered with code 200", "OadrPoll")
def test_poll_after_registration(ven: HarnessVen) -> None:
    answer = ven.poll()
    assert answer.code in (None, 200) or answer.message.payload is not Payload.RESPONSE, (
        f"poll answered {answer.message.payload.value} with code {answer.code}"
    )
    assert answer.message.payload in {
        Payload.RESPONSE,
        Payload.DISTRIBUTE_EVENT,
        Payload.CREATE_REPORT,
        Payload.REGISTER_REPORT,
        Payload.CANCEL_REPORT,
        Payload.CANCEL_PARTY_REGISTRATION,
        Payload.REQUEST_REREGISTRATION,
        Payload.CREATED_PARTY_REGISTRATION,
    }, f"{answer.message.payload.value} is not something a VTN sends in answer to a poll"


@case("OADR-VTN-POLL-002", "An unregistered venID's poll is refused with a 4xx code", "OadrPoll; codes 452/463")
def test_unregistered_poll_refused(ven: HarnessVen) -> None:
    stranger = f"{ven.ven_name}-unregistered-{uuid.uuid4().hex[:8]}"
    answer = ven.poll(stranger)
    assert answer.code in REFUSALS, (
        f"a poll from unregistered venID '{stranger}' was answered {answer.message.payload.value} code {answer.code};"
        " expected a 4xx code such as 463 or 452"
    )


@case("OADR-VTN-ERR-001", "Schema-invalid XML gets a 4xx oadrResponse, not a crash", "2.0b schema; code 454")
def test_invalid_xml_refused(ven: HarnessVen) -> None:
    body = (
        b'<?xml version="1.0" encoding="utf-8"?>'
        b'<oadrPayload xmlns="http://openadr.org/oadr-2.0b/2012/07"><oadrSignedObject>'
        b"<oadrPoll><notAVenID>x</notAVenID></oadrPoll></oadrSignedObject></oadrPayload>"
    )
    response = ven.post_raw(Service.POLL, body, "schema-invalid oadrPoll")
    assert response.status_code < 500, f"HTTP {response.status_code}: the VTN failed on invalid input"
    answer = ven.read(response, "a schema-invalid oadrPoll")
    assert answer.code in REFUSALS, f"answered {answer.message.payload.value} code {answer.code}, expected 454 (4xx)"


@case("OADR-VTN-EVT-001", "oadrRequestEvent is answered with oadrDistributeEvent", "EiEvent: oadrRequestEvent")
def test_request_event(ven: HarnessVen) -> None:
    answer = ven.request_events()
    assert answer.message.payload is Payload.DISTRIBUTE_EVENT, (
        f"expected oadrDistributeEvent, got {answer.message.payload.value} code {answer.code}"
    )
    assert answer.code == 200, f"response code {answer.code}"
    assert answer.message.vtn_id, "oadrDistributeEvent has no vtnID"


@case("OADR-VTN-EVT-002", "Event datetimes are UTC", "profile rule 1")
def test_rule1_utc(ven: HarnessVen, events: list[Event]) -> None:
    bad = non_utc_datetimes(ven.session.events_raw)
    assert not bad, f"date-times not in UTC ('Z'): {', '.join(bad[:5])}"


@case("OADR-VTN-EVT-003", "Interval uids count up from 0", "profile rule 2")
def test_rule2_uids(events: list[Event]) -> None:
    problems_in([p for e in events for p in uid_problems(e)])


@case("OADR-VTN-EVT-004", "Interval durations add up to the event's duration", "profile rule 8")
def test_rule8_durations(events: list[Event]) -> None:
    problems_in([p for e in events for p in duration_problems(e)])


@case("OADR-VTN-EVT-005", "SIMPLE signals are uppercase with payloads 0..3", "profile rule 9")
def test_rule9_simple(ven: HarnessVen, events: list[Event]) -> None:
    lowercase = [n for n in signal_names(ven.session.events_raw) if n.lower() == "simple" and n != "SIMPLE"]
    assert not lowercase, f"signalName {lowercase[0]!r}: SIMPLE must be uppercase"
    problems_in([p for e in events for p in simple_problems(e)])


@case("OADR-VTN-EVT-006", "currentValue is 0 unless the event is active", "profile rule 14")
def test_rule14_current_value(events: list[Event]) -> None:
    problems_in([p for e in events for p in current_value_problems(e)])


@case("OADR-VTN-EVT-007", "Event status agrees with the event's times", "EiEvent: eventStatus")
def test_status_follows_times(events: list[Event]) -> None:
    problems_in([p for e in events for p in status_problems(e)])


@case("OADR-VTN-EVT-008", "modificationNumber is non-negative", "EiEvent: modificationNumber")
def test_modification_number(events: list[Event]) -> None:
    problems_in([f"event {e.event_id}: {e.modification_number}" for e in events if e.modification_number < 0])


@case("OADR-VTN-OPT-001", "An availability opt is answered with oadrCreatedOpt", "EiOpt: oadrCreateOpt")
def test_create_opt(ven: HarnessVen) -> None:
    session = ven.ensure_registered()
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    opt = Opt(
        opt_id=f"tgw-opt-{uuid.uuid4().hex[:8]}",
        opt_type=OptType.OPT_OUT,
        opt_reason="notParticipating",
        created=datetime.now(UTC).replace(microsecond=0),
        ven_id=session.ven_id,
        availability=[Availability(start=start, duration=timedelta(hours=1))],
    )
    answer = ven.send(Service.OPT, OadrMessage(payload=Payload.CREATE_OPT, request_id="tgw-opt", opt=opt))
    assert answer.message.payload is Payload.CREATED_OPT, (
        f"expected oadrCreatedOpt, got {answer.message.payload.value} code {answer.code} (is EiOpt supported?)"
    )
    assert answer.code == 200, f"response code {answer.code}"
    assert answer.message.opt_id == opt.opt_id, f"optID {answer.message.opt_id!r}, expected {opt.opt_id!r}"


@case(
    "OADR-VTN-REG-004",
    "Cancelling the registration is confirmed, and polling is refused afterwards",
    "EiRegisterParty: oadrCancelPartyRegistration",
)
def test_cancel_registration(ven: HarnessVen) -> None:
    session = ven.ensure_registered()
    ven_id, registration_id = session.ven_id, session.registration_id
    answer = ven.cancel_registration()
    assert answer.message.payload is Payload.CANCELED_PARTY_REGISTRATION, (
        f"expected oadrCanceledPartyRegistration, got {answer.message.payload.value} code {answer.code}"
    )
    assert answer.code == 200, f"response code {answer.code}"
    assert answer.message.registration_id in (None, registration_id), "the wrong registrationID was cancelled"
    after = ven.poll(ven_id)
    assert after.code in REFUSALS, (
        f"a poll after cancelling was answered {after.message.payload.value} code {after.code}; expected 4xx"
    )
