"""The southbound VTN: what each 2.0b request from a legacy VEN does, whatever transport carried it.

Registration, events, opts, reports and polls on top of the store. What a VEN sends goes through the gateway's
one ingest path (stored before the answer); what it receives is rendered from canonical Controls and price
Tenders (see ``render``) at the moment it asks. Refusals raise :class:`OadrRefusal` with a 2.0b response code.

What a VEN has been sent is remembered in memory only (per venID: the event versions of the last
oadrDistributeEvent): after a restart the next poll re-sends the events, which a VEN recognises by their
modificationNumber, so nothing is lost and nothing acknowledged is forgotten.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from gateway.ingest import Ingestor, Rejected
from gateway.model import (
    Control,
    MessageKind,
    Override,
    OverrideStatus,
    received,
    utc_now,
)
from gateway.protocols.openadr2b import mapper
from gateway.protocols.openadr2b.messages import (
    EiResponse,
    Event,
    ItemUnit,
    OadrMessage,
    Payload,
    Registration,
    ReportDescription,
    ReportRequest,
    ResponseCode,
)
from gateway.protocols.openadr2b.table import MappingTable, default_table
from gateway.protocols.openadr2b.vens import PROTOCOL, VenDirectory, VenRecord
from gateway.protocols.openadr2b.vtn_events import EventBook
from gateway.store import Store

TELEMETRY_USAGE = "TELEMETRY_USAGE"
_SEQ_TTL = 0.5


class OadrRefusal(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


class Vtn:
    """One VTN over one store; the HTTP layer (``service``) resolves who is calling and hands over the message."""

    def __init__(self, store: Store, ingestor: Ingestor, table: MappingTable | None = None) -> None:
        self.store = store
        self.ingestor = ingestor
        self.table = table or default_table()
        self.directory = VenDirectory(store)
        self.book = EventBook(store, self.table, self.directory)
        self._sent: dict[str, tuple[tuple[str, int, bool], ...]] = {}
        self._events_cache: dict[str, tuple[tuple[int, float], list[Event]]] = {}
        self._quiet: dict[str, list[Event]] = {}
        self._seq = -1
        self._seq_read_at = 0.0
        self._published_seen = -1
        self._pending_requests: dict[str, list[OadrMessage]] = {}

    @property
    def vtn_id(self) -> str:
        return self.table.vtn.vtn_id

    # --- entry point ---------------------------------------------------------------------------------------------

    async def handle(self, message: OadrMessage, party_id: str) -> OadrMessage:
        """Answer one request from the VEN of ``party_id`` (already authenticated by the caller)."""
        ven_id = self.directory.known_ven_id(party_id) or await asyncio.to_thread(self.directory.ven_id_of, party_id)
        if message.payload is Payload.CREATE_PARTY_REGISTRATION:
            return await asyncio.to_thread(self._register, message, party_id, ven_id)
        if message.payload is Payload.QUERY_REGISTRATION:
            return self._query_registration(message, ven_id)
        if message.ven_id is not None and message.ven_id != ven_id:
            raise OadrRefusal(
                ResponseCode.INVALID_ID, f"venID '{message.ven_id}' is not yours; your venID is '{ven_id}'"
            )
        record = self.directory.cached_record(ven_id) or await asyncio.to_thread(self.directory.record, ven_id)
        if record is None or not record.registered:
            raise OadrRefusal(
                ResponseCode.NOT_REGISTERED_OR_AUTHORIZED,
                f"VEN '{ven_id}' is not registered; send oadrCreatePartyRegistration first",
            )
        match message.payload:
            case Payload.CANCEL_PARTY_REGISTRATION:
                return await asyncio.to_thread(self._cancel_registration, message, record)
            case Payload.POLL:
                quiet = self._nothing_new(record)
                if quiet:
                    return _ok(Payload.RESPONSE, message, ven_id)
                return await asyncio.to_thread(self._poll, message, record)
            case Payload.REQUEST_EVENT:
                return await asyncio.to_thread(self._distribute, message.request_id, record, utc_now())
            case Payload.CREATED_EVENT:
                return await self._created_event(message, record)
            case Payload.CREATE_OPT:
                return await self._create_opt(message, record)
            case Payload.CANCEL_OPT:
                return await self._cancel_opt(message, record)
            case Payload.REGISTER_REPORT:
                return await asyncio.to_thread(self._register_report, message, record)
            case Payload.UPDATE_REPORT:
                return await self._update_report(message, record)
            case Payload.CREATED_REPORT | Payload.CANCELED_REPORT | Payload.RESPONSE:
                return _ok(Payload.RESPONSE, message, ven_id)
            case Payload.CANCEL_REPORT:
                return await asyncio.to_thread(self._cancel_report, message, record)
            case Payload.CANCELED_PARTY_REGISTRATION:
                return await asyncio.to_thread(self._registration_cancelled, message, record)
        raise OadrRefusal(ResponseCode.NOT_RECOGNIZED, f"a VTN does not accept {message.payload.value} from a VEN")

    def requires_signature_cached(self, party_id: str) -> bool | None:
        """:meth:`requires_signature` from memory; None when the VEN's record is not in memory."""
        ven_id = self.directory.known_ven_id(party_id)
        record = self.directory.cached_record(ven_id) if ven_id else None
        return None if record is None else bool(record.registered and record.xml_signature)

    def requires_signature(self, party_id: str) -> bool:
        """Whether this VEN registered with oadrXmlSignature true (then every request of its must be signed)."""
        ven_id = self.directory.ven_id_of(party_id)
        record = self.directory.cached_record(ven_id) or self.directory.record(ven_id)
        return bool(record and record.registered and record.xml_signature)

    # --- registration ----------------------------------------------------------------------------------------------

    def _register(self, message: OadrMessage, party_id: str, ven_id: str) -> OadrMessage:
        request = message.registration or Registration()
        record = self.directory.record(ven_id) or VenRecord(ven_id=ven_id, party_id=party_id)
        if request.registration_id and request.registration_id != record.registration_id:
            raise OadrRefusal(
                ResponseCode.INVALID_ID,
                f"registrationID '{request.registration_id}' is not this VEN's current registration",
            )
        if request.ven_id and request.ven_id != ven_id:
            raise OadrRefusal(ResponseCode.INVALID_ID, f"venID '{request.ven_id}' is not yours ('{ven_id}')")
        if request.profile_name != "2.0b":
            raise OadrRefusal(ResponseCode.NOT_ALLOWED, f"profile {request.profile_name} is not offered; use 2.0b")
        if request.transport_name != "simpleHttp":
            raise OadrRefusal(ResponseCode.NOT_ALLOWED, f"transport {request.transport_name} is not offered")
        if not request.http_pull_model and not request.transport_address:
            raise OadrRefusal(ResponseCode.INVALID_DATA, "a push VEN must give its oadrTransportAddress")
        record.registration_id = record.registration_id or str(uuid.uuid4())
        record.ven_name = request.ven_name
        record.transport_address = request.transport_address
        record.http_pull_model = request.http_pull_model
        record.xml_signature = request.xml_signature
        record.report_only = request.report_only
        self.directory.save(record)
        self._forget_sent(ven_id)
        return self._registration_answer(message, record)

    def _registration_answer(
        self, message: OadrMessage, record: VenRecord | None, ven_id: str | None = None
    ) -> OadrMessage:
        return OadrMessage(
            payload=Payload.CREATED_PARTY_REGISTRATION,
            response=EiResponse(request_id=message.request_id),
            ven_id=record.ven_id if record else ven_id,
            vtn_id=self.vtn_id,
            registration=Registration(
                registration_id=record.registration_id if record else None,
                ven_id=record.ven_id if record else ven_id,
                vtn_id=self.vtn_id,
                poll_freq=self.table.vtn.poll_freq,
            ),
        )

    def describe(self, message: OadrMessage) -> OadrMessage:
        """The answer to an anonymous oadrQueryRegistration: the VTN's id, profile, transport and poll frequency,
        no registration (2.0b lets a VEN ask this before it registers; it reveals nothing about any VEN)."""
        return self._registration_answer(message, None)

    def _query_registration(self, message: OadrMessage, ven_id: str) -> OadrMessage:
        record = self.directory.record(ven_id)
        return self._registration_answer(message, record if record and record.registered else None, ven_id)

    def _cancel_registration(self, message: OadrMessage, record: VenRecord) -> OadrMessage:
        if message.registration_id and message.registration_id != record.registration_id:
            raise OadrRefusal(ResponseCode.INVALID_ID, f"registrationID '{message.registration_id}' is not yours")
        cancelled = record.registration_id
        record.registration_id = None
        record.report_requests = {}
        self.directory.save(record)
        self._forget_sent(record.ven_id)
        return OadrMessage(
            payload=Payload.CANCELED_PARTY_REGISTRATION,
            response=EiResponse(request_id=message.request_id),
            registration_id=cancelled,
            ven_id=record.ven_id,
        )

    # --- events ------------------------------------------------------------------------------------------------

    def _distribute(self, request_id: str | None, record: VenRecord, now: datetime) -> OadrMessage:
        events = self.book.events_for(record, now)
        self._set_sent(record.ven_id, events)
        return OadrMessage(
            payload=Payload.DISTRIBUTE_EVENT,
            response=EiResponse(request_id=request_id),
            request_id=request_id or str(uuid.uuid4()),
            vtn_id=self.vtn_id,
            events=events,
        )

    def changed_distribution(self, record: VenRecord) -> OadrMessage | None:
        """For a push VEN: the oadrDistributeEvent it must be sent now, or None when it has the current events.
        Not marked as sent: call :meth:`mark_sent` once the VEN took it."""
        events = self.book.events_for(record, utc_now())
        if _versions(events) == self._sent.get(record.ven_id):
            return None
        return OadrMessage(
            payload=Payload.DISTRIBUTE_EVENT,
            response=EiResponse(),
            request_id=str(uuid.uuid4()),
            vtn_id=self.vtn_id,
            events=events,
        )

    def mark_sent(self, ven_id: str, message: OadrMessage) -> None:
        self._set_sent(ven_id, message.events)

    async def _created_event(self, message: OadrMessage, record: VenRecord) -> OadrMessage:
        at = utc_now()
        objects: list[object] = []
        for answer in message.event_responses:
            control = await asyncio.to_thread(self.store.get, MessageKind.CONTROL, answer.event_id)
            if not isinstance(control, Control):
                if await asyncio.to_thread(self.store.exists, MessageKind.TENDER, answer.event_id):
                    continue  # a price event: opting out of a price means nothing to the market
                raise OadrRefusal(ResponseCode.INVALID_ID, f"there is no event '{answer.event_id}' for you")
            resource = None
            if control.targets.resource_ids:
                own = {r.id for r in await asyncio.to_thread(self.directory.resources_of, record.party_id)}
                named = [r for r in control.targets.resource_ids if r in own]
                resource = named[0] if len(named) == 1 else None
            # An error responseCode (460 for a signal the VEN does not know) is recorded as a rejected Response and
            # makes no Override: a VEN that cannot act did not opt out. Either way the VEN gets 200: it was heard.
            objects.extend(mapper.event_response_to_canonical(answer, record.party_id, control, at, resource))
        await self._ingest(objects, record, message.request_id)
        return _ok(Payload.RESPONSE, message, record.ven_id)

    # --- opt ---------------------------------------------------------------------------------------------------

    async def _create_opt(self, message: OadrMessage, record: VenRecord) -> OadrMessage:
        opt = message.opt
        if opt is None:
            raise OadrRefusal(ResponseCode.INVALID_DATA, "an oadrCreateOpt carries an opt")
        control = None
        if opt.event_id is not None:
            found = await asyncio.to_thread(self.store.get, MessageKind.CONTROL, opt.event_id)
            if not isinstance(found, Control):
                raise OadrRefusal(ResponseCode.INVALID_ID, f"there is no event '{opt.event_id}' for you")
            control = found
        own = {r.id for r in await asyncio.to_thread(self.directory.resources_of, record.party_id)}
        named = list(opt.target.resource_ids) if opt.target and opt.target.resource_ids else sorted(own)
        foreign = [r for r in named if r not in own]
        if foreign:
            raise OadrRefusal(ResponseCode.TARGET_MISMATCH, f"resource(s) {', '.join(foreign)} are not yours")
        overrides = mapper.opt_to_overrides(opt, record.party_id, control=control, resource_ids=named)
        await self._ingest(overrides, record, message.request_id)
        return OadrMessage(
            payload=Payload.CREATED_OPT,
            response=EiResponse(request_id=message.request_id),
            opt_id=opt.opt_id,
            ven_id=record.ven_id,
        )

    async def _cancel_opt(self, message: OadrMessage, record: VenRecord) -> OadrMessage:
        if not message.opt_id:
            raise OadrRefusal(ResponseCode.INVALID_DATA, "an oadrCancelOpt names its optID")
        found = await asyncio.to_thread(self._opt_overrides, message.opt_id)
        if not found:
            raise OadrRefusal(ResponseCode.INVALID_ID, f"there is no opt '{message.opt_id}'")
        if any(o.party_id != record.party_id for o in found):
            raise OadrRefusal(ResponseCode.NOT_ALLOWED, f"opt '{message.opt_id}' is not yours")
        withdrawn = [o.model_copy(update={"status": OverrideStatus.WITHDRAWN}) for o in found]
        await self._ingest(withdrawn, record, message.request_id)
        return OadrMessage(
            payload=Payload.CANCELED_OPT,
            response=EiResponse(request_id=message.request_id),
            opt_id=message.opt_id,
            ven_id=record.ven_id,
        )

    def _opt_overrides(self, opt_id: str) -> list[Override]:
        """The overrides one opt became: one id for a single override, numbered ids for several."""
        single = self.store.get(MessageKind.OVERRIDE, mapper.opt_override_ids(opt_id, 1)[0])
        if isinstance(single, Override):
            return [single]
        found: list[Override] = []
        for override_id in itertools.count():
            numbered = self.store.get(MessageKind.OVERRIDE, f"oadr-opt.{opt_id}.{override_id}")
            if not isinstance(numbered, Override):
                return found
            found.append(numbered)
        return found

    # --- reports -----------------------------------------------------------------------------------------------

    def _register_report(self, message: OadrMessage, record: VenRecord) -> OadrMessage:
        """Keep the VEN's data points; ask for every TELEMETRY_USAGE one at its own minimum period, which is how
        metered deliveries reach the market."""
        requests: list[ReportRequest] = []
        for report in message.reports:
            for description in report.descriptions:
                record.data_points[description.r_id] = _point(description)
            if report.report_name.endswith(TELEMETRY_USAGE) and report.descriptions:
                granularity = min((d.min_period for d in report.descriptions if d.min_period), default=None)
                request_id = f"tgw-{report.report_specifier_id}"
                r_ids = [d.r_id for d in report.descriptions]
                if granularity is not None:
                    requests.append(
                        ReportRequest(
                            report_request_id=request_id,
                            report_specifier_id=report.report_specifier_id,
                            granularity=granularity,
                            report_back_duration=granularity,
                            r_ids=r_ids,
                            reading_types=["Direct Read"] * len(r_ids),
                        )
                    )
                    record.report_requests[request_id] = r_ids
        self.directory.save(record)
        return OadrMessage(
            payload=Payload.REGISTERED_REPORT,
            response=EiResponse(request_id=message.request_id),
            ven_id=record.ven_id,
            report_requests=requests,
        )

    async def _update_report(self, message: OadrMessage, record: VenRecord) -> OadrMessage:
        descriptions = {r_id: _description(r_id, raw) for r_id, raw in record.data_points.items()}
        resources = {r.id: r for r in await asyncio.to_thread(self.directory.resources_of, record.party_id)}

        def location_of(resource_id: str | None) -> str | None:
            if resource_id in resources:
                return resources[resource_id].location_id
            if resource_id is None and len({r.location_id for r in resources.values()}) == 1:
                return next(iter(resources.values())).location_id
            return None

        deliveries = []
        for report in message.reports:
            for description in report.descriptions:
                descriptions[description.r_id] = description
            try:
                deliveries.extend(mapper.report_to_deliveries(report, record.party_id, descriptions, location_of))
            except mapper.MappingError as exc:
                raise OadrRefusal(exc.code, exc.reason) from exc
        await self._ingest(deliveries, record, message.request_id)
        return OadrMessage(
            payload=Payload.UPDATED_REPORT,
            response=EiResponse(request_id=message.request_id),
            ven_id=record.ven_id,
        )

    def _cancel_report(self, message: OadrMessage, record: VenRecord) -> OadrMessage:
        for request_id in message.report_request_ids:
            record.report_requests.pop(request_id, None)
        self.directory.save(record)
        return OadrMessage(
            payload=Payload.CANCELED_REPORT,
            response=EiResponse(request_id=message.request_id),
            ven_id=record.ven_id,
        )

    # --- poll --------------------------------------------------------------------------------------------------

    def _poll(self, message: OadrMessage, record: VenRecord) -> OadrMessage:
        """The next thing the VEN should know: changed events first, then queued requests, else a plain OK."""
        now = utc_now()
        events = self._current_events(record, now)
        if _versions(events) != self._sent.get(record.ven_id):
            events = self.book.events_for(record, now)
            self._set_sent(record.ven_id, events)
            return OadrMessage(
                payload=Payload.DISTRIBUTE_EVENT,
                response=EiResponse(request_id=None),
                request_id=str(uuid.uuid4()),
                vtn_id=self.vtn_id,
                events=events,
            )
        self._quiet[record.ven_id] = events  # what the VEN has, as of this cache entry: the next poll may skip all
        queued = self._pending_requests.get(record.ven_id)
        if queued:
            return queued.pop(0)
        return _ok(Payload.RESPONSE, message, record.ven_id)

    def _data_version(self) -> int:
        """The store's last log sequence, read again when this process published something or at least every
        ``_SEQ_TTL`` seconds (another gateway process may have written)."""
        published = self.ingestor.bus.published if self.ingestor.bus is not None else 0
        if published != self._published_seen or time.monotonic() - self._seq_read_at > _SEQ_TTL:
            self._published_seen = published
            self._seq = self.store.last_seq()
            self._seq_read_at = time.monotonic()
        return self._seq

    def _nothing_new(self, record: VenRecord) -> bool:
        """Whether a poll can be answered "OK, nothing new" without touching the database: the VEN has been sent
        the current events, nothing was written since, and nothing is queued for it. Decided in memory, on the
        event loop (the common poll costs no thread hop and no query)."""
        cached = self._events_cache.get(record.ven_id)
        if cached is None or self._pending_requests.get(record.ven_id):
            return False
        published = self.ingestor.bus.published if self.ingestor.bus is not None else 0
        if published != self._published_seen or time.monotonic() - self._seq_read_at > _SEQ_TTL:
            return False
        (seq, minute_ends), events = cached
        return seq == self._seq and time.time() < minute_ends and self._quiet.get(record.ven_id) is events

    def _current_events(self, record: VenRecord, now: datetime) -> list[Event]:
        """The VEN's events as of the last change to the store within this minute: a poll that finds nothing new
        costs one sequence lookup, not a rendering of every control (statuses are rendered fresh when sent)."""
        minute = now.replace(second=0, microsecond=0)
        key = (self._data_version(), (minute + timedelta(minutes=1)).timestamp())
        cached = self._events_cache.get(record.ven_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        events = self.book.events_for(record, now)
        self._events_cache[record.ven_id] = (key, events)
        return events

    def _set_sent(self, ven_id: str, events: list[Event]) -> None:
        """Remember what the VEN was sent; the fast "nothing new" answer waits until a poll confirms it again."""
        self._sent[ven_id] = _versions(events)
        self._quiet.pop(ven_id, None)

    def _forget_sent(self, ven_id: str) -> None:
        self._sent.pop(ven_id, None)
        self._quiet.pop(ven_id, None)

    def queue(self, ven_id: str, message: OadrMessage) -> None:
        """Have the VEN's next poll carry ``message`` (oadrCreateReport, oadrRequestReregistration...)."""
        self._pending_requests.setdefault(ven_id, []).append(message)

    def request_reregistration(self, ven_id: str) -> None:
        """The operator asks a VEN to register again (after a VTN change of settings): its next poll says so."""
        self._registered_record(ven_id)
        self.queue(ven_id, OadrMessage(payload=Payload.REQUEST_REREGISTRATION, ven_id=ven_id))

    def cancel_registration(self, ven_id: str) -> None:
        """The operator ends a VEN's registration: its next poll carries oadrCancelPartyRegistration, and the
        registration ends when the VEN confirms (oadrCanceledPartyRegistration), so the VEN can still be told."""
        record = self._registered_record(ven_id)
        self.queue(
            ven_id,
            OadrMessage(
                payload=Payload.CANCEL_PARTY_REGISTRATION,
                request_id=str(uuid.uuid4()),
                registration_id=record.registration_id,
                ven_id=ven_id,
            ),
        )

    def _registered_record(self, ven_id: str) -> VenRecord:
        record = self.directory.record(ven_id)
        if record is None or not record.registered:
            raise OadrRefusal(ResponseCode.NOT_REGISTERED_OR_AUTHORIZED, f"VEN '{ven_id}' is not registered")
        return record

    def _registration_cancelled(self, message: OadrMessage, record: VenRecord) -> OadrMessage:
        """The VEN confirms a cancellation the VTN asked for: the registration ends here."""
        if message.response is not None and message.response.code != ResponseCode.OK:
            return _ok(Payload.RESPONSE, message, record.ven_id)  # the VEN refused; it stays registered
        if message.registration_id and message.registration_id != record.registration_id:
            raise OadrRefusal(ResponseCode.INVALID_ID, f"registrationID '{message.registration_id}' is not yours")
        record.registration_id = None
        record.report_requests = {}
        self.directory.save(record)
        self._forget_sent(record.ven_id)
        return _ok(Payload.RESPONSE, message, record.ven_id)

    # --- storing -----------------------------------------------------------------------------------------------

    async def _ingest(self, objects: list, record: VenRecord, request_id: str | None) -> None:  # type: ignore[type-arg]
        if not objects:
            return
        envelopes = received(objects, protocol=PROTOCOL, peer=record.ven_id, correlation_id=request_id)
        try:
            await self.ingestor.ingest(envelopes, protocol=PROTOCOL, peer=record.ven_id)
        except Rejected as exc:
            reason = "; ".join(f"{'.'.join(str(p) for p in problem.loc)}: {problem.msg}" for problem in exc.problems)
            raise OadrRefusal(ResponseCode.INVALID_DATA, reason) from exc


def _versions(events: list[Event]) -> tuple[tuple[str, int, bool], ...]:
    """What identifies the events a VEN was sent: a new, changed, cancelled or dropped event differs."""
    return tuple(
        sorted(
            (e.event_id, e.modification_number, "cancelled" if e.status.value == "cancelled" else "") for e in events
        )
    )


def _ok(payload: Payload, message: OadrMessage, ven_id: str) -> OadrMessage:
    return OadrMessage(payload=payload, response=EiResponse(request_id=message.request_id), ven_id=ven_id)


def _point(description: ReportDescription) -> dict[str, object]:
    """A registered data point as plain JSON: what interpreting its later readings needs."""
    unit = description.unit
    return {
        "report_type": description.report_type,
        "reading_type": description.reading_type,
        "resource_id": description.resource_id,
        "data_source": description.data_source,
        "unit": None
        if unit is None
        else {"kind": unit.kind, "description": unit.description, "units": unit.units, "si_scale": unit.si_scale},
        "min_period_s": description.min_period.total_seconds() if description.min_period else None,
    }


def _description(r_id: str, raw: dict[str, Any]) -> ReportDescription:
    unit = raw.get("unit")
    seconds = raw.get("min_period_s")
    return ReportDescription(
        r_id=r_id,
        report_type=str(raw.get("report_type", "")),
        reading_type=str(raw.get("reading_type", "")),
        resource_id=raw.get("resource_id"),
        data_source=raw.get("data_source"),
        unit=ItemUnit(**unit) if isinstance(unit, dict) else None,
        min_period=timedelta(seconds=seconds) if seconds is not None else None,
    )
