"""`tgw translate --from openadr2b ...` and `--to openadr2b`: 2.0b XML to and from canonical envelopes.

Decoding takes any 2.0b message, in its oadrPayload envelope or bare, and yields what it carries: an
oadrDistributeEvent's controls, an oadrCreatedEvent's responses, an oadrCreateOpt's overrides, an
oadrUpdateReport's deliveries. Without a store the mapping cannot look anything up, so VEN ids stand for party ids,
and an opt or answer about an event names the event's control by the event id.

Encoding groups canonical objects into the message that carries them: controls -> oadrDistributeEvent (each
rendered for the VEN it targets, status as of now), responses -> oadrCreatedEvent, one override ->
oadrCreateOpt, deliveries -> oadrUpdateReport. Kinds OpenADR has no message for are refused with a reason.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from gateway.model import Control, Delivery, Envelope, Override, Response, Source, content_version, utc_now
from gateway.model.overrides import OverrideMode, ResponseStatus, SubjectKind
from gateway.protocols.openadr2b import codec, mapper, render
from gateway.protocols.openadr2b.messages import (
    Availability,
    EiResponse,
    EventResponse,
    ItemUnit,
    OadrDecodeError,
    OadrMessage,
    Opt,
    OptType,
    Payload,
    Report,
    ReportDescription,
    ReportInterval,
    Target,
)
from gateway.translation import TranslationError, Translator, register

PROTOCOL = "openadr2b"


def decode(data: bytes) -> list[Envelope]:
    try:
        message = codec.decode(data)
        objects = mapper.to_canonical(message)
    except OadrDecodeError as exc:
        raise TranslationError(f"{exc.code}: {exc.reason}") from None
    except mapper.MappingError as exc:
        raise TranslationError(f"{exc.code}: {exc.reason}") from None
    peer = message.ven_id or message.vtn_id or "file"
    return [
        Envelope(
            payload=obj,
            source=Source(protocol=PROTOCOL, peer=peer, native_id=obj.id, version=content_version(obj)),
            correlation_id=message.request_id,
        )
        for obj in objects
    ]


def to_message(envelopes: list[Envelope]) -> OadrMessage:
    payloads = [e.payload for e in envelopes]
    kinds = {type(p) for p in payloads}
    if len(kinds) != 1:
        raise TranslationError("OpenADR carries one kind of object per message; split the input by kind")
    first = payloads[0]
    try:
        if isinstance(first, Control):
            return _events(payloads)  # type: ignore[arg-type]
        if isinstance(first, Response):
            return _created_event(payloads)  # type: ignore[arg-type]
        if isinstance(first, Override):
            if len(payloads) != 1:
                raise TranslationError("an oadrCreateOpt carries one override; translate them one at a time")
            return _create_opt(first)
        if isinstance(first, Delivery):
            return _update_report(payloads)  # type: ignore[arg-type]
    except mapper.MappingError as exc:
        raise TranslationError(f"{exc.code}: {exc.reason}") from None
    raise TranslationError(f"OpenADR 2.0b has no message for a {first.object_type}")


def _events(controls: list[Control]) -> OadrMessage:
    now = utc_now()
    events = [
        render.control_to_event(
            control,
            ven_id=control.targets.party_ids[0] if control.targets.party_ids else "ALL",
            now=now,
            resource_ids=control.targets.resource_ids,
        )
        for control in controls
    ]
    return OadrMessage(
        payload=Payload.DISTRIBUTE_EVENT,
        response=EiResponse(),
        request_id=str(uuid.uuid4()),
        vtn_id=mapper.default_table().vtn.vtn_id,
        events=events,
    )


_OPT_OUT = {ResponseStatus.OPTED_OUT, ResponseStatus.PARTIAL_OPT_OUT}
_REFUSED = {
    # The inverse of mapper.refusal_status: the code a VEN sends when it cannot act on the event (46x, deployment)
    # or finds it wrong (45x, compliance); the optType of a refusal says nothing, so it is optIn as the profile's
    # examples send it.
    ResponseStatus.REJECTED_NOT_APPLICABLE: (460, "signal not supported"),
    ResponseStatus.REJECTED_INVALID: (454, "invalid data"),
}


def _created_event(responses: list[Response]) -> OadrMessage:
    ven = responses[0].party_id
    if ven is None or any(r.party_id != ven for r in responses):
        raise TranslationError("an oadrCreatedEvent answers for one VEN: every response needs the same party_id")
    answers = []
    for r in responses:
        code, text = _REFUSED.get(r.status, (200, "OK"))
        answers.append(
            EventResponse(
                event_id=r.subject.id,
                modification_number=0,
                opt_type=OptType.OPT_OUT if r.status in _OPT_OUT else OptType.OPT_IN,
                code=code,
                description=r.description or text if code != 200 else "OK",
            )
        )
    return OadrMessage(payload=Payload.CREATED_EVENT, response=EiResponse(), ven_id=ven, event_responses=answers)


def _create_opt(override: Override) -> OadrMessage:
    about_event = override.subject.kind is SubjectKind.CONTROL
    opt = Opt(
        opt_id=override.id,
        opt_type=OptType.OPT_IN if override.mode is OverrideMode.OPT_IN else OptType.OPT_OUT,
        opt_reason=mapper.reason_text(override.reason, override.reason_text),
        created=override.created_at,
        ven_id=override.party_id,
        availability=[Availability(override.span.start, override.span.duration)],
        event_id=override.subject.id if about_event else None,
        modification_number=0 if about_event else None,
        target=Target(resource_ids=[override.resource_id])
        if override.resource_id
        else Target(ven_ids=[override.party_id]),
    )
    return OadrMessage(payload=Payload.CREATE_OPT, request_id=str(uuid.uuid4()), ven_id=override.party_id, opt=opt)


def _update_report(deliveries: list[Delivery]) -> OadrMessage:
    ven = deliveries[0].party_id
    if any(d.party_id != ven for d in deliveries):
        raise TranslationError("an oadrUpdateReport reports for one VEN: every delivery needs the same party_id")
    power = ItemUnit(kind="powerReal", description="RealPower", units="W", si_scale="k")
    points: dict[str, ReportDescription] = {}
    rows: list[ReportInterval] = []
    for delivery in deliveries:
        r_id = delivery.resource_id or delivery.location_id
        points.setdefault(
            r_id,
            ReportDescription(
                r_id=r_id,
                report_type="usage",
                reading_type="Direct Read",
                resource_id=r_id,
                unit=power,
                min_period=timedelta(seconds=delivery.interval.length.total_seconds()),
            ),
        )
        rows.append(
            ReportInterval(
                start=delivery.interval.start, duration=delivery.interval.length, r_id=r_id, value=delivery.quantity
            )
        )
    report = Report(
        report_specifier_id="tgw-telemetry",
        report_name="TELEMETRY_USAGE",
        created=utc_now(),
        report_id=str(uuid.uuid4()),
        report_request_id="0",
        start=min(row.start for row in rows if row.start),
        duration=max(r.start + r.duration for r in rows if r.start and r.duration)
        - min(r.start for r in rows if r.start),
        descriptions=list(points.values()),
        intervals=rows,
    )
    return OadrMessage(payload=Payload.UPDATE_REPORT, request_id=str(uuid.uuid4()), ven_id=ven, reports=[report])


def encode(envelopes: list[Envelope]) -> bytes:
    return codec.encode(to_message(envelopes))


register(
    Translator(
        name=PROTOCOL,
        description="OpenADR 2.0b XML (events, opts, reports)",
        decode=decode,
        encode=encode,
    )
)
