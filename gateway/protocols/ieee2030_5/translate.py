"""`tgw translate --from ieee2030_5 ...` and `--to ieee2030_5`: 2030.5 XML to and from canonical envelopes.

Decoding takes a DERControl or DERControlList (each control mode becomes a canonical Control aimed at everyone the
file reaches: a broadcast, since a file names no device), a DERControlResponse or Response (a canonical Response
about the control of that mRID), a MirrorMeterReading or MirrorUsagePoint of W or Wh over market intervals
(Deliveries of the mirrored device, party and location named by its LFDI). Encoding writes canonical controls and
operating envelopes as one DERControlList (statuses as the canonical status says; a kW real-power limit cannot be
written without a device's setMaxW and is refused), and responses as DERControlResponses (one, or a ResponseList).
Kinds 2030.5 has no resource for here are refused with a reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from gateway.model import (
    Control,
    ControlStatus,
    ControlTargets,
    Delivery,
    Envelope,
    Interval,
    OperatingEnvelope,
    Response,
    ResponseStatus,
    Source,
    Subject,
    SubjectKind,
    content_version,
)
from gateway.model.intervals import Resolution
from gateway.protocols.ieee2030_5 import codec, mapper
from gateway.protocols.ieee2030_5 import models as m
from gateway.protocols.ieee2030_5.table import default_table
from gateway.translation import TranslationError, Translator, register

PROTOCOL = "ieee2030_5"
_STATUS_CODE = {
    ControlStatus.SCHEDULED: 0,
    ControlStatus.ACTIVE: 1,
    ControlStatus.COMPLETED: 1,
    ControlStatus.CANCELLED: 2,
    ControlStatus.SUPERSEDED: 4,
}
_INTERVALS = {300: Resolution.FIVE_MINUTES, 900: Resolution.FIFTEEN_MINUTES, 3600: Resolution.HOUR}


def decode(data: bytes) -> list[Envelope]:
    try:
        message = codec.decode(data)
    except codec.Sep2DecodeError as exc:
        raise TranslationError(str(exc)) from None
    try:
        objects = _to_canonical(message)
    except (mapper.MappingError, ValueError) as exc:
        raise TranslationError(str(exc).splitlines()[0]) from None
    return [
        Envelope(
            payload=obj,
            source=Source(protocol=PROTOCOL, peer="file", native_id=obj.id, version=content_version(obj)),
        )
        for obj in objects
    ]


def _to_canonical(message: Any) -> list[Any]:
    table = default_table()
    broadcast = ControlTargets(broadcast=True)
    if isinstance(message, m.DERControl):
        return mapper.der_control_to_controls(message, table, targets=broadcast)
    if isinstance(message, m.DERControlList):
        return [
            c
            for item in message.DERControl or []
            for c in mapper.der_control_to_controls(item, table, targets=broadcast)
        ]
    if isinstance(message, m.DERControlResponse | m.Response):
        return [_response(message)]
    if isinstance(message, m.ResponseList):
        return [_response(r) for r in message.Response or []]
    if isinstance(message, m.MirrorMeterReading):
        return _deliveries([message], "file")
    if isinstance(message, m.MirrorUsagePoint):
        return _deliveries(list(message.MirrorMeterReading or []), message.deviceLFDI or "file")
    raise TranslationError(
        f"a {type(message).__name__} has no canonical meaning here (DERControl, DERControlList, Response,"
        " MirrorMeterReading and MirrorUsagePoint do)"
    )


def _response(response: Any) -> Response:
    if response.createdDateTime is None or response.status is None:  # optional in the schema, needed here
        raise TranslationError(f"the Response to {response.subject} has no createdDateTime or no status")
    return Response(
        id=f"{response.subject}-{response.status}-{response.createdDateTime}",
        subject=Subject(kind=SubjectKind.CONTROL, id=response.subject),
        party_id=response.endDeviceLFDI,
        status=ResponseStatus.from_code(response.status),
        at=datetime.fromtimestamp(response.createdDateTime, UTC),
    )


def _deliveries(readings: list[Any], lfdi: str) -> list[Delivery]:
    found: list[Delivery] = []
    for reading in readings:
        reading_type = reading.ReadingType
        uom = getattr(reading_type, "uom", None)
        if uom not in (38, 72):
            raise TranslationError(
                f"MirrorMeterReading {reading.mRID}: only W (38) and Wh (72) readings become deliveries"
            )
        power = getattr(reading_type, "powerOfTenMultiplier", 0) or 0
        sign = -1 if getattr(reading_type, "flowDirection", 1) == 19 else 1
        points = [r for s in reading.MirrorReadingSet or [] for r in s.Reading or []]
        if getattr(reading, "Reading", None) is not None:
            points.append(reading.Reading)
        for point in points:
            period = point.timePeriod
            if period is None or period.duration not in _INTERVALS:
                raise TranslationError(f"reading of {reading.mRID}: needs a timePeriod of 300, 900 or 3600 s")
            value = mapper.unscaled(point.value, power) * sign
            kw = value / 1000 if uom == 38 else value / 1000 / (Decimal(period.duration) / 3600)
            start = datetime.fromtimestamp(period.start, UTC)
            found.append(
                Delivery(
                    id=f"{reading.mRID}-{period.start}",
                    party_id=lfdi,
                    location_id=lfdi,
                    interval=Interval(start=start, duration=_INTERVALS[period.duration]),
                    quantity=kw,
                )
            )
    return found


def encode(envelopes: list[Envelope]) -> bytes:
    payloads = [e.payload for e in envelopes]
    table = default_table()
    pen = table.server.pen
    if all(isinstance(p, Control | OperatingEnvelope) for p in payloads):
        controls: list[m.DERControl] = []
        for payload in payloads:
            try:
                if isinstance(payload, Control):
                    rendered = mapper.control_to_der(payload, table, set_max_w=None, curve_href="/dc")
                    status = _STATUS_CODE.get(payload.status, 0)
                else:
                    rendered = mapper.envelope_to_der(payload, pen)
                    status = 0
            except mapper.MappingError as exc:
                raise TranslationError(str(exc)) from None
            for item in rendered:
                controls.append(
                    m.DERControl(
                        mRID=item.mrid,
                        description=item.description,
                        creationTime=item.creation_time,
                        EventStatus=m.EventStatus(
                            currentStatus=status, dateTime=item.creation_time, potentiallySuperseded=False
                        ),
                        interval=m.DateTimeInterval(duration=item.duration, start=item.start),
                        randomizeDuration=item.randomize_duration or None,
                        randomizeStart=item.randomize_start or None,
                        DERControlBase=m.DERControlBase(**item.base),
                    )
                )
        return codec.encode(m.DERControlList(all=len(controls), results=len(controls), DERControl=controls))
    if all(isinstance(p, Response) for p in payloads):
        responses = [_der_response(p, pen) for p in payloads if isinstance(p, Response)]
        if len(responses) == 1:
            return codec.encode(responses[0])
        return codec.encode(m.ResponseList(all=len(responses), results=len(responses), Response=responses))
    kinds = sorted({type(p).__name__ for p in payloads})
    raise TranslationError(
        f"2030.5 has no message here for {', '.join(kinds)} (controls and operating envelopes become a"
        " DERControlList, responses DERControlResponses)"
    )


def _der_response(response: Response, pen: int) -> m.DERControlResponse:
    subject = response.subject.id
    if len(subject) != 32 or any(c not in "0123456789abcdefABCDEF" for c in subject):
        subject = mapper.control_mrid(subject, 0, pen)
    lfdi = response.party_id or ""
    if len(lfdi) != 40:
        lfdi = mapper.mint_mrid(f"party:{lfdi}", pen) + "00000000"
    return m.DERControlResponse(
        createdDateTime=int(response.at.timestamp()),
        endDeviceLFDI=lfdi.upper(),
        status=response.status.code,
        subject=subject.upper(),
    )


register(
    Translator(
        name=PROTOCOL,
        description="IEEE 2030.5-2018 XML: DERControl(List), DERControlResponse/Response, mirror meter readings",
        decode=decode,
        encode=encode,
    )
)
