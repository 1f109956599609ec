"""The VEN side played against a VTN under test, and the 2.0b profile rules checked on what it sends.

Messages are built and read with the gateway's own 2.0b codec, which validates against the 2.0b XSD both ways:
the harness never sends an invalid request by accident, and an invalid answer is reported as such instead of
being half-read. Every request is logged as an :class:`Exchange` so a failed case shows the bytes it is about.
Transport errors become a failed case with the reason (``pytest.fail``), never an exception out of the run.
"""

from __future__ import annotations

import ssl
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from lxml import etree

from conformance.framework import Exchange, Target, truncate
from gateway.protocols.openadr2b import codec
from gateway.protocols.openadr2b.messages import (
    Event,
    EventStatus,
    OadrDecodeError,
    OadrMessage,
    Payload,
    Registration,
    Service,
)

CONTENT_TYPE = "application/xml"
CLOCK_TOLERANCE = timedelta(seconds=60)  # the DUT's clock and ours may differ; status checks allow this much


@dataclass(slots=True)
class Answer:
    """A decoded answer and its raw bytes (some rules are about the text, e.g. the 'Z' of a UTC time)."""

    message: OadrMessage
    raw: bytes
    http: httpx.Response

    @property
    def code(self) -> int | None:
        return self.message.response.code if self.message.response else None


@dataclass(slots=True)
class VenSession:
    """What the harness VEN knows about its registration with the DUT."""

    ven_id: str | None = None
    registration_id: str | None = None
    vtn_id: str | None = None
    poll_freq: timedelta | None = None
    events: list[Event] = field(default_factory=list)
    events_raw: bytes = b""
    events_exchange: Exchange | None = None  # the request the events came with, shown in every case using them


class HarnessVen:
    """A minimal simpleHTTP pull VEN: registration, poll, event request, opt, cancellation."""

    def __init__(self, target: Target, log: list[Exchange]) -> None:
        self.target = target
        self.base = target.url.rstrip("/")
        self.log = log
        self.ven_name = target.option("ven_name", "tgw-conformance")
        self.session = VenSession()
        self.http = httpx.Client(verify=_verify(target), timeout=target.timeout)

    def close(self) -> None:
        self.http.close()

    # --- transport ---------------------------------------------------------------------------------------------

    def post_raw(self, service: Service | str, body: bytes, note: str | None = None) -> httpx.Response:
        """POST ``body``; a transport error fails the current case with what went wrong and where."""
        url = f"{self.base}/{service}"
        exchange = Exchange("POST", url, truncate(body), note=note)
        self.log.append(exchange)
        try:
            response = self.http.post(url, content=body, headers={"content-type": CONTENT_TYPE})
        except httpx.HTTPError as exc:
            exchange.error = f"{type(exc).__name__}: {exc}"
            pytest.fail(f"could not reach the DUT at {url}: {type(exc).__name__}: {exc}", pytrace=False)
        exchange.status = response.status_code
        exchange.response = truncate(response.content)
        return response

    def send(self, service: Service, message: OadrMessage, note: str | None = None) -> Answer:
        """Send a message and read the answer, which must be HTTP 200 and a schema-valid 2.0b message."""
        response = self.post_raw(service, codec.encode(message), note or message.payload.value)
        return self.read(response, f"{message.payload.value} to {service}")

    def read(self, response: httpx.Response, what: str) -> Answer:
        if response.status_code != 200:
            pytest.fail(
                f"{what}: HTTP {response.status_code}, expected 200 with a 2.0b answer; body: "
                f"{truncate(response.content, 300)}",
                pytrace=False,
            )
        try:
            message = codec.decode(response.content)
        except OadrDecodeError as exc:
            pytest.fail(f"{what}: the answer is not a schema-valid OpenADR 2.0b message: {exc.reason}", pytrace=False)
        return Answer(message, response.content, response)

    # --- the VEN's requests ---------------------------------------------------------------------------------------

    def query_registration(self) -> Answer:
        return self.send(
            Service.REGISTER_PARTY, OadrMessage(payload=Payload.QUERY_REGISTRATION, request_id=_request_id())
        )

    def register(self) -> Answer:
        request = OadrMessage(
            payload=Payload.CREATE_PARTY_REGISTRATION,
            request_id=_request_id(),
            registration=Registration(ven_name=self.ven_name, http_pull_model=True),
        )
        answer = self.send(Service.REGISTER_PARTY, request)
        registration = answer.message.registration
        if answer.message.payload is Payload.CREATED_PARTY_REGISTRATION and answer.code == 200 and registration:
            self.session.ven_id = registration.ven_id or answer.message.ven_id
            self.session.registration_id = registration.registration_id
            self.session.vtn_id = registration.vtn_id or answer.message.vtn_id
            self.session.poll_freq = registration.poll_freq
        return answer

    def ensure_registered(self) -> VenSession:
        """Register once per run; fail the case (not the run) when the DUT will not register us."""
        if self.session.registration_id is None:
            answer = self.register()
            if self.session.registration_id is None or self.session.ven_id is None:
                pytest.fail(
                    f"could not register as VEN '{self.ven_name}': answer {answer.message.payload.value}"
                    f" code {answer.code} {_description(answer)}",
                    pytrace=False,
                )
        return self.session

    def poll(self, ven_id: str | None = None) -> Answer:
        ven_id = ven_id or self.ensure_registered().ven_id
        return self.send(Service.POLL, OadrMessage(payload=Payload.POLL, ven_id=ven_id))

    def request_events(self) -> Answer:
        ven_id = self.ensure_registered().ven_id
        answer = self.send(
            Service.EVENT, OadrMessage(payload=Payload.REQUEST_EVENT, request_id=_request_id(), ven_id=ven_id)
        )
        if answer.message.payload is Payload.DISTRIBUTE_EVENT:
            self.session.events = answer.message.events
            self.session.events_raw = answer.raw
            self.session.events_exchange = self.log[-1]
        return answer

    def recall_events_exchange(self) -> None:
        """Show the exchange the cached events came from in the current case's log (once per case)."""
        exchange = self.session.events_exchange
        if exchange is not None and exchange not in self.log:
            self.log.append(replace(exchange, note="the events this case checks (sent earlier in the run)"))

    def cancel_registration(self) -> Answer:
        session = self.ensure_registered()
        answer = self.send(
            Service.REGISTER_PARTY,
            OadrMessage(
                payload=Payload.CANCEL_PARTY_REGISTRATION,
                request_id=_request_id(),
                registration_id=session.registration_id,
                ven_id=session.ven_id,
            ),
        )
        if answer.message.payload is Payload.CANCELED_PARTY_REGISTRATION and answer.code == 200:
            self.session.registration_id = None
        return answer


def _request_id() -> str:
    return f"tgw-{uuid.uuid4().hex[:12]}"


def _description(answer: Answer) -> str:
    return f"({answer.message.response.description})" if answer.message.response else ""


def _verify(target: Target) -> ssl.SSLContext | bool:
    """TLS settings: the CA to trust and the client certificate, in one context (httpx's ``cert`` is deprecated)."""
    if not target.url.startswith("https"):
        return True
    context = ssl.create_default_context(cafile=target.ca) if target.ca else ssl.create_default_context()
    if target.cert:
        context.load_cert_chain(target.cert, target.key)
    return context


# --- profile rules on received events -----------------------------------------------------------------------------


def non_utc_datetimes(raw: bytes) -> list[str]:
    """Rule 1: every xcal date-time is UTC, written with a trailing 'Z'. Returns the offending values."""
    root = codec.decode_tree(raw).root
    found = []
    for element in root.iter():
        if isinstance(element.tag, str) and etree.QName(element).localname == "date-time":
            text = (element.text or "").strip()
            if not text.endswith("Z"):
                found.append(text)
    return found


def signal_names(raw: bytes) -> list[str]:
    root = codec.decode_tree(raw).root
    return [
        (e.text or "").strip()
        for e in root.iter()
        if isinstance(e.tag, str) and etree.QName(e).localname == "signalName"
    ]


def uid_problems(event: Event) -> list[str]:
    """Rule 2: each signal's interval uids are 0, 1, 2, ... in order."""
    problems = []
    for signal in event.signals:
        uids = [i.uid for i in signal.intervals]
        if uids != list(range(len(uids))):
            problems.append(f"event {event.event_id} signal {signal.name}: uids {uids}")
    return problems


def duration_problems(event: Event) -> list[str]:
    """Rule 8: a signal's interval durations add up to the event's duration (when the event has one)."""
    if not event.duration:
        return []
    problems = []
    for signal in event.signals:
        total = sum((i.duration for i in signal.intervals), timedelta())
        if total != event.duration:
            problems.append(
                f"event {event.event_id} signal {signal.name}: intervals sum {total}, event {event.duration}"
            )
    return problems


def simple_problems(event: Event) -> list[str]:
    """Rule 9: a SIMPLE signal's payloads are levels 0..3."""
    problems = []
    for signal in event.signals:
        if signal.name.upper() == "SIMPLE":
            bad = [str(i.value) for i in signal.intervals if i.value not in {Decimal(n) for n in range(4)}]
            if bad:
                problems.append(f"event {event.event_id}: SIMPLE payloads {', '.join(bad)} outside 0..3")
    return problems


def current_value_problems(event: Event) -> list[str]:
    """Rule 14: currentValue is 0 unless the event is active."""
    if event.status is EventStatus.ACTIVE:
        return []
    return [
        f"event {event.event_id} ({event.status.value}) signal {s.name}: currentValue {s.current_value}"
        for s in event.signals
        if s.current_value is not None and s.current_value != 0
    ]


def status_problems(event: Event, now: datetime | None = None) -> list[str]:
    """The status follows the clock: far/near (or none) before the start, active inside, completed after."""
    now = now or datetime.now(UTC)
    if event.status is EventStatus.CANCELLED:
        return []
    start = event.start
    end = start + event.duration if event.duration else None
    if now < start - CLOCK_TOLERANCE:
        allowed = {EventStatus.FAR, EventStatus.NEAR, EventStatus.NONE}
    elif now > start + CLOCK_TOLERANCE and (end is None or now < end - CLOCK_TOLERANCE):
        allowed = {EventStatus.ACTIVE}
    elif end is not None and now > end + CLOCK_TOLERANCE:
        allowed = {EventStatus.COMPLETED}
    else:
        return []  # within the tolerance of a boundary: either side is right
    if event.status in allowed:
        return []
    expected = "/".join(sorted(s.value for s in allowed))
    return [f"event {event.event_id}: status {event.status.value} at {now:%Y-%m-%dT%H:%M:%SZ}, expected {expected}"]
