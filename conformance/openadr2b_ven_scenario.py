"""The script the harness VTN plays to a VEN under test, one step at a time, paced by what the VEN does.

A pull VEN only hears from its VTN when it asks (oadrPoll, oadrRequestEvent), so the harness cannot push a step
at a chosen moment; instead each step is *queued* and goes out with the VEN's next request, and the step after it
is queued the moment the VEN has answered. A VEN that answers at once therefore walks the whole script in a few of
its own polls, with no sleeps in the harness; a VEN that does not answer holds a step only until its deadline:
``deliver_wait`` seconds to ask for it (it must poll), then ``answer_wait`` seconds to answer it. Deadlines are
enforced by whoever looks next (an arriving message, or a case waiting for a step), so a silent VEN cannot stall
the run and the cases need no timers of their own.

The steps, in order: a new event (E1), its modification, its cancellation, a second event (E2), an event list
that leaves E2 out (and carries E3, so the VEN has something to answer), the VTN's own oadrRegisterReport, an
oadrCreateReport for a data point the VEN offered (skipped when it offered none), and last a schema-invalid
oadrDistributeEvent (last, because a VEN's reaction to bad input may leave it in any state).

Everything here is called with the harness's lock held; nothing here does I/O.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from lxml import etree

from gateway.protocols.openadr2b import codec
from gateway.protocols.openadr2b.messages import (
    EiResponse,
    Event,
    EventSignal,
    EventStatus,
    OadrMessage,
    Payload,
    Report,
    ReportDescription,
    ReportRequest,
    ResponseRequired,
    SignalInterval,
    Target,
)

VTN_ID = "TGW-HARNESS"  # uppercase: some VENs (openleadr) refuse a lowercase vtnID, which is not under test here
MARKET_CONTEXT = "http://tgw-harness.example.com/programs/conformance"
HALF_HOUR = timedelta(minutes=30)


class Step(StrEnum):
    NEW_EVENT = "a new event"
    MODIFIED_EVENT = "a modification of that event"
    CANCELLED_EVENT = "the cancellation of that event"
    SECOND_EVENT = "a second event"
    IMPLIED_CANCELLATION = "an event list that leaves the second event out"
    VTN_REPORTS = "the VTN's oadrRegisterReport"
    REPORT_REQUEST = "an oadrCreateReport"
    MALFORMED = "a schema-invalid oadrDistributeEvent"


EVENT_STEPS = (
    Step.NEW_EVENT,
    Step.MODIFIED_EVENT,
    Step.CANCELLED_EVENT,
    Step.SECOND_EVENT,
    Step.IMPLIED_CANCELLATION,
)


class StepOutcome(StrEnum):
    PENDING = ""
    ANSWERED = "answered"
    NO_ANSWER = "no answer"
    NOT_DELIVERED = "not delivered"
    NOT_APPLICABLE = "not applicable"


@dataclass(slots=True)
class Delivery:
    """One time a step went out: in the answer to the VEN's request ``seq``, as a message with ``request_id``."""

    seq: int
    request_id: str
    at: float


@dataclass(slots=True)
class Seen:
    """What the scenario needs to know about one message from the VEN (the harness keeps the rest)."""

    seq: int
    service: str
    message: OadrMessage | None


@dataclass(slots=True)
class StepState:
    step: Step
    events: list[Event] = field(default_factory=list)  # the event list of an event step
    activated: float | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    finished: float | None = None
    outcome: StepOutcome = StepOutcome.PENDING
    answer_seq: int | None = None
    polls_after: int = 0
    note: str = ""
    report_request: ReportRequest | None = None

    @property
    def request_ids(self) -> set[str]:
        return {d.request_id for d in self.deliveries}

    @property
    def event_ids(self) -> set[str]:
        return {e.event_id for e in self.events}


@dataclass(frozen=True, slots=True)
class Timing:
    poll_freq: timedelta
    answer_wait: float

    @property
    def deliver_wait(self) -> float:
        """How long a queued step may wait for the VEN to ask for it: two poll periods and the answer time."""
        return 2 * self.poll_freq.total_seconds() + self.answer_wait


class Scenario:
    """The steps and their progress; ``ven_id`` is set when the VEN registers, which starts the first step."""

    def __init__(self, timing: Timing) -> None:
        self.timing = timing
        self.token = uuid.uuid4().hex[:6].upper()
        self.steps: dict[Step, StepState] = {step: StepState(step) for step in Step}
        self.order = list(Step)
        self.index = -1
        self.ven_id: str | None = None
        self.offers: list[Report] = []
        self.event_list: list[Event] = []
        self.versions_sent: dict[str, set[int]] = {}
        self.last_heard: float | None = None
        self._base = datetime.now(UTC).replace(second=0, microsecond=0)
        self._target = Target()

    # --- progress ------------------------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self.index >= 0

    @property
    def current(self) -> StepState | None:
        return self.steps[self.order[self.index]] if 0 <= self.index < len(self.order) else None

    def start(self, ven_id: str, now: float) -> None:
        self.ven_id = ven_id
        if self.started:
            return
        self._build_events(ven_id, datetime.now(UTC))
        self._activate(0, now)

    def _activate(self, index: int, now: float) -> None:
        self.index = index
        state = self.current
        if state is None:
            return
        state.activated = now
        if state.step in EVENT_STEPS:
            self.event_list = state.events
        elif state.step is Step.REPORT_REQUEST:
            state.report_request = self._report_request()
            if state.report_request is None:
                self._finish(state, StepOutcome.NOT_APPLICABLE, now, "the VEN offered no report data point")

    def _finish(self, state: StepState, outcome: StepOutcome, now: float, note: str = "") -> None:
        state.finished, state.outcome = now, outcome
        state.note = state.note or note
        if state is self.current:
            self._activate(self.index + 1, now)

    def expire(self, now: float) -> None:
        """Close every step whose deadline has passed, and every step at all once the VEN has gone silent."""
        state = self.current
        while state is not None and state.finished is None:
            silent = self.last_heard is not None and now - self.last_heard > self.timing.deliver_wait
            if silent:
                quiet = now - (self.last_heard or now)
                outcome = StepOutcome.NO_ANSWER if state.deliveries else StepOutcome.NOT_DELIVERED
                self._finish(state, outcome, now, f"the VEN has sent nothing for {quiet:.0f} s")
            elif now >= self._deadline(state):
                if state.deliveries:
                    waited = self._answer_wait(state)
                    self._finish(state, StepOutcome.NO_ANSWER, now, f"no answer within {waited:.1f} s")
                else:
                    self._finish(
                        state,
                        StepOutcome.NOT_DELIVERED,
                        now,
                        f"the VEN did not poll for it within {self.timing.deliver_wait:.1f} s",
                    )
            else:
                return
            state = self.current

    def next_deadline(self, now: float) -> float | None:
        state = self.current
        if state is None or state.finished is not None:
            return None
        return self._deadline(state)

    def _deadline(self, state: StepState) -> float:
        if state.deliveries:
            return state.deliveries[-1].at + self._answer_wait(state)
        return (state.activated or 0.0) + self.timing.deliver_wait

    def _answer_wait(self, state: StepState) -> float:
        """A malformed message may get no answer at all: then the step waits for two more polls."""
        extra = 2 * self.timing.poll_freq.total_seconds() if state.step is Step.MALFORMED else 0.0
        return self.timing.answer_wait + extra

    # --- what goes out ---------------------------------------------------------------------------------------------

    def on_poll(self, seq: int, now: float) -> OadrMessage | bytes | None:
        """What the VEN's poll ``seq`` is answered with: the current step when it has not gone out yet, else None
        (nothing new: an oadrResponse)."""
        state = self.current
        if state is None or state.finished is not None or state.deliveries:
            return None
        request_id = f"TGW-{self.token}-{uuid.uuid4().hex[:8]}"
        outgoing: OadrMessage | bytes
        if state.step in EVENT_STEPS:
            outgoing = self.distribute(request_id, None)
        elif state.step is Step.VTN_REPORTS:
            outgoing = vtn_register_report(request_id, self.ven_id)
        elif state.step is Step.REPORT_REQUEST:
            assert state.report_request is not None
            outgoing = OadrMessage(
                payload=Payload.CREATE_REPORT,
                request_id=request_id,
                ven_id=self.ven_id,
                report_requests=[state.report_request],
            )
        else:
            outgoing = malformed_distribute(request_id, self._event("4", 0, 2, self.event_start(4)))
        state.deliveries.append(Delivery(seq, request_id, now))
        return outgoing

    def on_request_event(self, seq: int, ven_request_id: str | None, now: float) -> OadrMessage:
        """oadrRequestEvent is always answered with the current event list; during an event step that is the step
        going out (again)."""
        request_id = f"TGW-{self.token}-{uuid.uuid4().hex[:8]}"
        state = self.current
        if state is not None and state.step in EVENT_STEPS and state.finished is None:
            state.deliveries.append(Delivery(seq, request_id, now))
        return self.distribute(request_id, ven_request_id)

    def distribute(self, request_id: str, answering: str | None) -> OadrMessage:
        for event in self.event_list:
            self.versions_sent.setdefault(event.event_id, set()).add(event.modification_number)
        return OadrMessage(
            payload=Payload.DISTRIBUTE_EVENT,
            response=EiResponse(request_id=answering),
            request_id=request_id,
            vtn_id=VTN_ID,
            events=list(self.event_list),
        )

    # --- what comes in -------------------------------------------------------------------------------------------

    def observe(self, seen: Seen, now: float) -> None:
        """Finish the current step when ``seen`` is the VEN's answer to it."""
        self.last_heard = now
        state = self.current
        if state is None or state.finished is not None or not state.deliveries:
            return
        if seen.seq <= state.deliveries[0].seq:
            return  # the request that carried the step, or an earlier one
        message = seen.message
        payload = message.payload if message is not None else None
        if state.step in EVENT_STEPS:
            if message is not None and payload is Payload.CREATED_EVENT and self._answers(message, state):
                self._answered(state, seen, now)
        elif state.step is Step.VTN_REPORTS:
            if payload is Payload.REGISTERED_REPORT or (payload is Payload.RESPONSE and seen.service == "EiReport"):
                self._answered(state, seen, now)
        elif state.step is Step.REPORT_REQUEST:
            if payload is Payload.CREATED_REPORT or (payload is Payload.RESPONSE and seen.service == "EiReport"):
                self._answered(state, seen, now)
        elif message is None or payload in (Payload.CREATED_EVENT, Payload.RESPONSE):
            self._answered(state, seen, now)
        elif payload is Payload.POLL:
            state.polls_after += 1
            if state.polls_after >= 2:
                self._finish(state, StepOutcome.NO_ANSWER, now, "the VEN polled on without answering")

    @staticmethod
    def _answers(message: OadrMessage, state: StepState) -> bool:
        """An oadrCreatedEvent answers an event step when it names one of the step's events, or is an error
        answer naming none (a VEN refusing the whole list)."""
        named = {r.event_id for r in message.event_responses}
        return bool(named & state.event_ids) or not named

    def _answered(self, state: StepState, seen: Seen, now: float) -> None:
        state.answer_seq = seen.seq
        self._finish(state, StepOutcome.ANSWERED, now)

    # --- the script's content ------------------------------------------------------------------------------------

    def event_id(self, number: str) -> str:
        return f"TGW-{self.token}-E{number}"

    def event_start(self, day: int) -> datetime:
        return self._base + timedelta(days=day)

    def _build_events(self, ven_id: str, now: datetime) -> None:
        """Events a day or more ahead (status far, currentValue 0), unique to this run so a VEN that remembers
        events from an earlier run cannot mistake them."""
        self._base = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        self._target = Target(ven_ids=[ven_id])
        first = self._event("1", 0, 1, self.event_start(1))
        modified = self._event("1", 1, 2, self.event_start(1))
        cancelled = self._event("1", 2, 2, self.event_start(1), EventStatus.CANCELLED)
        second = self._event("2", 0, 1, self.event_start(2))
        third = self._event("3", 0, 3, self.event_start(3))
        self.steps[Step.NEW_EVENT].events = [first]
        self.steps[Step.MODIFIED_EVENT].events = [modified]
        self.steps[Step.CANCELLED_EVENT].events = [cancelled]
        self.steps[Step.SECOND_EVENT].events = [second]
        self.steps[Step.IMPLIED_CANCELLATION].events = [third]

    def _event(
        self, number: str, modification: int, level: int, start: datetime, status: EventStatus = EventStatus.FAR
    ) -> Event:
        """A SIMPLE event of two half-hour intervals, ``level`` then ``level`` - 1 (at least 0)."""
        signal = EventSignal(
            name="SIMPLE",
            type="level",
            id="S0",
            intervals=[
                SignalInterval(uid=0, duration=HALF_HOUR, value=Decimal(level)),
                SignalInterval(uid=1, duration=HALF_HOUR, value=Decimal(max(level - 1, 0))),
            ],
            current_value=Decimal(0),
        )
        created = self._base - timedelta(minutes=1)
        return Event(
            event_id=self.event_id(number),
            modification_number=modification,
            market_context=MARKET_CONTEXT,
            created=created,
            status=status,
            start=start,
            duration=2 * HALF_HOUR,
            signals=[signal],
            target=self._target,
            modification_reason="changed by the conformance harness" if modification else None,
            response_required=ResponseRequired.ALWAYS,
        )

    def _report_request(self) -> ReportRequest | None:
        """A one-off request (granularity and reportBackDuration PT0S: one report of the current values) for the
        first data point of the first report the VEN offered."""
        for report in self.offers:
            for description in report.descriptions:
                return ReportRequest(
                    report_request_id=f"TGW-{self.token}-RR1",
                    report_specifier_id=report.report_specifier_id,
                    granularity=timedelta(0),
                    report_back_duration=timedelta(0),
                    r_ids=[description.r_id],
                    reading_types=[description.reading_type or "Direct Read"],
                )
        return None


def vtn_register_report(request_id: str, ven_id: str | None) -> OadrMessage:
    """The VTN's own report registration: one METADATA_TELEMETRY_STATUS data point (the VEN need not ask for it)."""
    description = ReportDescription(
        r_id="tgw-harness-status", report_type="x-resourceStatus", reading_type="x-notApplicable"
    )
    report = Report(
        report_specifier_id="tgw-harness-metadata",
        report_name="METADATA_TELEMETRY_STATUS",
        created=datetime.now(UTC).replace(microsecond=0),
        duration=timedelta(hours=1),
        descriptions=[description],
    )
    return OadrMessage(payload=Payload.REGISTER_REPORT, request_id=request_id, ven_id=ven_id, reports=[report])


def malformed_distribute(request_id: str, event: Event) -> bytes:
    """A well-formed oadrDistributeEvent with its requestID (so a VEN can say which message it refuses) whose event
    lacks the required eventStatus: schema-invalid, so no VEN may act on it."""
    root = codec.encode_tree(
        OadrMessage(payload=Payload.DISTRIBUTE_EVENT, request_id=request_id, vtn_id=VTN_ID, events=[event])
    )
    for element in list(root.iter()):
        if isinstance(element.tag, str) and etree.QName(element).localname == "eventStatus":
            parent = element.getparent()
            assert parent is not None
            parent.remove(element)
    return codec.to_bytes(root)
