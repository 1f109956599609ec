"""A small OpenADR 2.0b pull VEN made with the gateway's codec, with switchable defects, for proving that the
openadr2b-ven conformance suite catches what it claims to.

Without defects it does everything the suite checks: registers, registers a report, asks for events, answers every
event version, refuses a schema-invalid message with 454, and delivers a requested report. It polls at the VTN's
requested frequency, and again at once after an answer that carried a message (so the harness's script moves at
the VEN's pace). Each defect is one realistic mistake:

- ``no_created_event``: never answers oadrDistributeEvent;
- ``stale_modification``: answers an event with the first modificationNumber it saw of it;
- ``ignore_cancellation``: does not answer an event whose status is cancelled;
- ``keep_dropped``: keeps answering events a later oadrDistributeEvent left out (misses implied cancellation);
- ``local_time``: writes its date-times as local wall-clock time (UTC+2) without a zone designator;
- ``no_report``: acknowledges an oadrCreateReport but never sends the oadrUpdateReport;
- ``fast_polls``: polls five times as often as the VTN asked;
- ``accept_invalid``: reads messages without the schema and opts in to the events of one that fails it.
"""

from __future__ import annotations

import re
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from lxml import etree

from gateway.protocols.openadr2b import codec
from gateway.protocols.openadr2b.messages import (
    SERVICE_OF,
    EiResponse,
    Event,
    EventResponse,
    EventStatus,
    ItemUnit,
    OadrDecodeError,
    OadrMessage,
    OptType,
    Payload,
    Registration,
    Report,
    ReportDescription,
    ReportInterval,
    ReportRequest,
    ResponseCode,
    ResponseRequired,
)

DEFECTS = frozenset(
    {
        "no_created_event",
        "stale_modification",
        "ignore_cancellation",
        "keep_dropped",
        "local_time",
        "no_report",
        "fast_polls",
        "accept_invalid",
    }
)
_UTC_TEXT = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z")
LOCAL = timedelta(hours=2)


class HandVen:
    """Runs in a thread from ``start()`` to ``stop()`` against the VTN at ``url``."""

    def __init__(self, url: str, *defects: str, name: str = "hand-ven", tls: ssl.SSLContext | None = None) -> None:
        unknown = set(defects) - DEFECTS
        assert not unknown, unknown
        self.url = url.rstrip("/")
        self.defects = frozenset(defects)
        self.name = name
        self.ven_id = ""
        self.poll_seconds = 1.0
        self.first_versions: dict[str, int] = {}
        self.known: dict[str, Event] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"hand-ven-{name}", daemon=True)
        self.http = httpx.Client(timeout=5, verify=tls or True)

    def start(self) -> HandVen:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.http.close()

    # --- transport -------------------------------------------------------------------------------------------------

    def send(self, message: OadrMessage) -> OadrMessage | bytes:
        """Post ``message`` to its service; the decoded answer, or the raw bytes when they do not decode."""
        body = codec.encode(message)
        if "local_time" in self.defects:
            body = _UTC_TEXT.sub(_local, body)
        response = self.http.post(
            f"{self.url}/{SERVICE_OF[message.payload].value}", content=body, headers={"content-type": "application/xml"}
        )
        try:
            return codec.decode(response.content)
        except OadrDecodeError:
            return response.content

    def _connect(self) -> OadrMessage | bytes:
        """Query the VTN, retrying until it listens (the harness starts after this VEN)."""
        deadline = time.monotonic() + 30
        while True:
            try:
                return self.send(OadrMessage(payload=Payload.QUERY_REGISTRATION, request_id="hand-q"))
            except httpx.TransportError:
                if time.monotonic() > deadline or self._stop.wait(0.05):
                    raise

    # --- the VEN ---------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._connect()
            self._register()
            self.send(self._report_registration())
            self._handle(
                self.send(OadrMessage(payload=Payload.REQUEST_EVENT, request_id="hand-re", ven_id=self.ven_id))
            )
            while not self._stop.is_set():
                answer = self.send(OadrMessage(payload=Payload.POLL, ven_id=self.ven_id))
                busy = self._handle(answer)
                if not busy:
                    self._stop.wait(self.poll_seconds)
        except httpx.TransportError:
            return  # the VTN went away: the run is over (or never began: the test sees that in the results)
        except Exception as exc:  # reported to the test, which fails on it
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def _register(self) -> None:
        registration = Registration(ven_name=self.name, http_pull_model=True)
        answer = self.send(
            OadrMessage(payload=Payload.CREATE_PARTY_REGISTRATION, request_id="hand-reg", registration=registration)
        )
        assert isinstance(answer, OadrMessage) and answer.registration is not None, answer
        self.ven_id = answer.registration.ven_id or ""
        if answer.registration.poll_freq:
            self.poll_seconds = answer.registration.poll_freq.total_seconds()
        if "fast_polls" in self.defects:
            self.poll_seconds /= 5

    def _report_registration(self) -> OadrMessage:
        description = ReportDescription(
            r_id="hand-meter",
            report_type="usage",
            reading_type="Direct Read",
            resource_id="hand-load",
            unit=ItemUnit(
                kind="powerReal", description="RealPower", units="W", hertz=Decimal(60), voltage=Decimal(120), ac=True
            ),
            min_period=timedelta(seconds=10),
            max_period=timedelta(hours=1),
            on_change=False,
        )
        report = Report(
            report_specifier_id="hand-telemetry",
            report_name="METADATA_TELEMETRY_USAGE",
            created=datetime.now(UTC).replace(microsecond=0),
            duration=timedelta(hours=1),
            descriptions=[description],
        )
        return OadrMessage(payload=Payload.REGISTER_REPORT, request_id="hand-rr", ven_id=self.ven_id, reports=[report])

    def _handle(self, answer: OadrMessage | bytes) -> bool:
        """Act on what the VTN sent; True when it carried something (then poll again at once)."""
        if isinstance(answer, bytes):
            self._refuse(answer)
            return True
        match answer.payload:
            case Payload.DISTRIBUTE_EVENT:
                self._events(answer)
            case Payload.REGISTER_REPORT:
                self.send(
                    OadrMessage(
                        payload=Payload.REGISTERED_REPORT,
                        response=EiResponse(request_id=answer.request_id),
                        ven_id=self.ven_id,
                    )
                )
            case Payload.CREATE_REPORT:
                self._create_report(answer)
            case Payload.REQUEST_REREGISTRATION:
                self._register()
            case _:
                return False
        return True

    def _events(self, message: OadrMessage) -> None:
        listed = {event.event_id: event for event in message.events}
        if "keep_dropped" in self.defects:
            self.known = {k: e for k, e in {**self.known, **listed}.items() if e.status is not EventStatus.CANCELLED}
            answering = list(listed.values()) + [e for k, e in self.known.items() if k not in listed]
        else:
            answering = list(listed.values())
        responses = []
        for event in answering:
            first = self.first_versions.setdefault(event.event_id, event.modification_number)
            if event.response_required is ResponseRequired.NEVER:
                continue
            if "ignore_cancellation" in self.defects and event.status is EventStatus.CANCELLED:
                continue
            version = first if "stale_modification" in self.defects else event.modification_number
            responses.append(EventResponse(event.event_id, version, OptType.OPT_IN, request_id=message.request_id))
        if not responses or "no_created_event" in self.defects:
            return
        self.send(
            OadrMessage(
                payload=Payload.CREATED_EVENT,
                response=EiResponse(request_id=message.request_id),
                event_responses=responses,
                ven_id=self.ven_id,
            )
        )

    def _refuse(self, raw: bytes) -> None:
        """A message that does not decode: 454 in an oadrCreatedEvent naming its requestID (or, with
        ``accept_invalid``, an optIn to every eventID in it)."""
        texts: dict[str, list[str]] = {}
        try:
            root = etree.fromstring(raw, etree.XMLParser(resolve_entities=False, no_network=True))
            for element in root.iter():
                if isinstance(element.tag, str):
                    texts.setdefault(etree.QName(element).localname, []).append((element.text or "").strip())
        except etree.LxmlError:
            pass
        request_id = (texts.get("requestID") or [None])[0]
        if "accept_invalid" in self.defects and texts.get("eventID"):
            versions = zip(texts["eventID"], texts.get("modificationNumber", []), strict=False)
            accepted = [EventResponse(e, int(m), OptType.OPT_IN, request_id=request_id) for e, m in versions]
            self.send(
                OadrMessage(
                    payload=Payload.CREATED_EVENT,
                    response=EiResponse(request_id=request_id),
                    event_responses=accepted,
                    ven_id=self.ven_id,
                )
            )
            return
        self.send(
            OadrMessage(
                payload=Payload.CREATED_EVENT,
                response=EiResponse(
                    code=ResponseCode.INVALID_DATA, description="schema-invalid", request_id=request_id
                ),
                ven_id=self.ven_id,
            )
        )

    def _create_report(self, message: OadrMessage) -> None:
        ids = [r.report_request_id for r in message.report_requests]
        self.send(
            OadrMessage(
                payload=Payload.CREATED_REPORT,
                response=EiResponse(request_id=message.request_id),
                report_request_ids=ids,
                ven_id=self.ven_id,
            )
        )
        if "no_report" not in self.defects:
            for request in message.report_requests:
                self.send(self._update(request))

    def _update(self, request: ReportRequest) -> OadrMessage:
        now = datetime.now(UTC).replace(microsecond=0)
        report = Report(
            report_specifier_id=request.report_specifier_id,
            report_name="TELEMETRY_USAGE",
            created=now,
            report_request_id=request.report_request_id,
            report_id=f"hand-{request.report_request_id}",
            start=now,
            duration=timedelta(0),
            intervals=[
                ReportInterval(start=now, duration=timedelta(0), r_id=r_id, value=Decimal(1500))
                for r_id in request.r_ids
            ],
        )
        return OadrMessage(payload=Payload.UPDATE_REPORT, request_id="hand-up", ven_id=self.ven_id, reports=[report])


def _local(match: re.Match[bytes]) -> bytes:
    moment = datetime.fromisoformat(match.group(1).decode()) + LOCAL
    return moment.strftime("%Y-%m-%dT%H:%M:%S").encode()
