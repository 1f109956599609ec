"""Readers for the parts several 2.0b payloads share: texts, times, targets, units, eiResponse, events and reports.

Every function takes an element the schema has already checked, so each walks its children once, in document
order, comparing tags against the precomputed Clark names: no XPath, no second look at an element, and no check
the XSD already made. What remains to refuse is what is valid 2.0b but has no place in the message objects:
those raise :class:`OadrDecodeError` with the response code that says why (453 not recognised, 460 signal not
supported, 461 report not supported).

Comments may sit between any two elements; their ``tag`` is not a string, so they match no name and are skipped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from lxml.etree import _Element

from gateway.protocols.openadr2b import codec_names as n
from gateway.protocols.openadr2b.codec_values import read_bool, read_datetime, read_decimal, read_duration, read_int
from gateway.protocols.openadr2b.messages import (
    EiResponse,
    Event,
    EventSignal,
    EventStatus,
    ItemUnit,
    OadrDecodeError,
    Report,
    ReportDescription,
    ReportInterval,
    ReportRequest,
    ResponseCode,
    ResponseRequired,
    SignalInterval,
    Target,
)

# --- texts and simple values ------------------------------------------------------------------------------------


def text(element: _Element) -> str:
    """xs:string content exactly as sent (an empty element is the empty string)."""
    return element.text or ""


def token(element: _Element) -> str:
    """xs:token content: whitespace collapsed, as the schema compared it (enumerations, names, codes)."""
    return " ".join((element.text or "").split())


def first(element: _Element) -> _Element:
    """The first child element. Indexing is four times faster than iterating, and only a comment in front (rare)
    sends it to the loop."""
    try:
        child = element[0]
    except IndexError:
        raise OadrDecodeError(f"{element.tag} is empty") from None
    if isinstance(child.tag, str):
        return child
    for child in element:
        if isinstance(child.tag, str):
            return child
    raise OadrDecodeError(f"{element.tag} is empty")


def inner_datetime(element: _Element) -> datetime:
    """xcal:dtstart (or anything else that wraps one xcal:date-time)."""
    return read_datetime(first(element).text)


def inner_duration(element: _Element) -> timedelta:
    """A DurationPropType: an element that wraps one xcal:duration value."""
    return read_duration(first(element).text)


def payload_float(element: _Element) -> Decimal:
    """The number inside ei:payloadFloat/ei:value, from whichever holder (currentValue, signalPayload...) wraps it;
    the holder's only other content can be oadrPayloadResourceStatus, which is a report's, not a number."""
    payload = first(element)
    if payload.tag != n.EI_PAYLOAD_FLOAT:
        raise OadrDecodeError(
            f"{payload.tag} is not supported where a number is expected", ResponseCode.SIGNAL_NOT_SUPPORTED
        )
    return read_decimal(first(payload).text)


def properties_period(element: _Element) -> tuple[datetime, timedelta]:
    """dtstart and duration of the xcal:properties inside ``element`` (available, reportInterval)."""
    start: datetime | None = None
    length: timedelta | None = None
    for child in first(element):
        tag = child.tag
        if tag == n.XCAL_DTSTART:
            start = inner_datetime(child)
        elif tag == n.XCAL_DURATION:
            length = inner_duration(child)
    if start is None or length is None:
        raise OadrDecodeError(f"{element.tag} needs a dtstart and a duration")
    return start, length


# --- eiResponse, targets, units ---------------------------------------------------------------------------------


def response(element: _Element) -> EiResponse:
    """An absent responseDescription is read as the empty string, which is also what makes one absent on write."""
    code, description, request_id = ResponseCode.OK, "", ""
    for child in element:
        tag = child.tag
        if tag == n.EI_RESPONSE_CODE:
            code = read_int(child.text)
        elif tag == n.EI_RESPONSE_DESCRIPTION:
            description = text(child)
        elif tag == n.PYLD_REQUEST_ID:
            request_id = text(child)
    return EiResponse(code=code, description=description, request_id=request_id)


_TARGET_TEXTS = {
    n.EI_VEN_ID: "ven_ids",
    n.EI_GROUP_ID: "group_ids",
    n.EI_RESOURCE_ID: "resource_ids",
    n.EI_PARTY_ID: "party_ids",
    n.EI_GROUP_NAME: "group_names",
}
_TARGET_WRAPPED = {
    n.POWER_END_DEVICE_ASSET: "end_device_assets",
    n.POWER_METER_ASSET: "meter_assets",
    n.POWER_PNODE: "pnodes",
    n.POWER_AGGREGATED_PNODE: "aggregated_pnodes",
    n.POWER_SERVICE_DELIVERY_POINT: "service_delivery_points",
}
_TARGET_UNSUPPORTED = frozenset({n.EMIX_SERVICE_AREA, n.POWER_SERVICE_LOCATION, n.POWER_TRANSPORT_INTERFACE})


def target(element: _Element) -> Target:
    found = Target()
    for child in element:
        tag = child.tag
        name = _TARGET_TEXTS.get(tag)
        if name is not None:
            getattr(found, name).append(text(child))
            continue
        name = _TARGET_WRAPPED.get(tag)
        if name is not None:
            getattr(found, name).append(text(first(child)))
        elif tag in _TARGET_UNSUPPORTED:
            raise OadrDecodeError(
                f"targets by {tag} (GML areas, transport interfaces) are not supported", ResponseCode.NOT_RECOGNIZED
            )
    return found


def unit(element: _Element) -> ItemUnit:
    kind = n.UNIT_KIND_OF_TAG.get(element.tag)
    if kind is None:
        raise OadrDecodeError(f"the unit {element.tag} is not supported", ResponseCode.NOT_RECOGNIZED)
    found = ItemUnit(kind=kind, description="", units="")
    for child in element:
        tag = child.tag
        if tag in n.UNIT_DESCRIPTION_TAGS:
            found.description = token(child)
        elif tag in n.UNIT_UNITS_TAGS:
            found.units = token(child)
        elif tag == n.SCALE_SI_SCALE_CODE:
            found.si_scale = token(child)
        elif tag == n.OADR_PULSE_FACTOR:
            found.pulse_factor = read_decimal(child.text)
        elif tag == n.POWER_ATTRIBUTES:
            for attribute in child:
                name = attribute.tag
                if name == n.POWER_HERTZ:
                    found.hertz = read_decimal(attribute.text)
                elif name == n.POWER_VOLTAGE:
                    found.voltage = read_decimal(attribute.text)
                elif name == n.POWER_AC:
                    found.ac = read_bool(attribute.text)
    return found


def _is_unit(tag: object) -> bool:
    return tag in n.UNIT_KIND_OF_TAG or tag == n.OADR_GB_DATA_DESCRIPTION


# --- events -----------------------------------------------------------------------------------------------------


def event(element: _Element) -> Event:
    """One oadr:oadrEvent (ei:eiEvent + oadrResponseRequired)."""
    required = ResponseRequired.ALWAYS
    body: _Element | None = None
    for child in element:
        if child.tag == n.EI_EVENT:
            body = child
        elif child.tag == n.OADR_RESPONSE_REQUIRED:
            required = ResponseRequired(token(child))
    if body is None:
        raise OadrDecodeError("oadrEvent without an eiEvent")
    found: dict[str, object] = {"response_required": required}
    for part in body:
        tag = part.tag
        if tag == n.EI_EVENT_DESCRIPTOR:
            _descriptor(part, found)
        elif tag == n.EI_ACTIVE_PERIOD:
            _active_period(first(part), found)
        elif tag == n.EI_EVENT_SIGNALS:
            signals: list[EventSignal] = []
            for signal in part:
                if signal.tag == n.EI_EVENT_SIGNAL:
                    signals.append(_signal(signal))
                elif signal.tag == n.EI_EVENT_BASELINE:
                    found["baseline"] = _baseline(signal)
            found["signals"] = signals
        elif tag == n.EI_TARGET:
            found["target"] = target(part)
    return Event(**found)  # type: ignore[arg-type]  # every required key is schema-guaranteed


def _descriptor(element: _Element, found: dict[str, object]) -> None:
    for child in element:
        tag = child.tag
        if tag == n.EI_EVENT_ID:
            found["event_id"] = text(child)
        elif tag == n.EI_MODIFICATION_NUMBER:
            found["modification_number"] = read_int(child.text)
        elif tag == n.EI_MODIFICATION_DATE_TIME:
            found["modification_at"] = read_datetime(child.text)
        elif tag == n.EI_MODIFICATION_REASON:
            found["modification_reason"] = text(child)
        elif tag == n.EI_PRIORITY:
            found["priority"] = read_int(child.text)
        elif tag == n.EI_MARKET_CONTEXT:
            found["market_context"] = token(first(child))
        elif tag == n.EI_CREATED_DATE_TIME:
            found["created"] = read_datetime(child.text)
        elif tag == n.EI_EVENT_STATUS:
            found["status"] = EventStatus(token(child))
        elif tag == n.EI_TEST_EVENT:
            found["test_event"] = text(child)
        elif tag == n.EI_VTN_COMMENT:
            found["vtn_comment"] = text(child)


def _active_period(properties: _Element, found: dict[str, object]) -> None:
    for child in properties:
        tag = child.tag
        if tag == n.XCAL_DTSTART:
            found["start"] = inner_datetime(child)
        elif tag == n.XCAL_DURATION:
            found["duration"] = inner_duration(child)
        elif tag == n.XCAL_TOLERANCE:
            for after in first(child):
                if after.tag == n.XCAL_STARTAFTER:
                    found["start_after"] = read_duration(after.text)
        elif tag == n.EI_X_NOTIFICATION:
            found["notification"] = inner_duration(child)
        elif tag == n.EI_X_RAMP_UP:
            found["ramp_up"] = inner_duration(child)
        elif tag == n.EI_X_RECOVERY:
            found["recovery"] = inner_duration(child)


def _signal(element: _Element) -> EventSignal:
    signal = EventSignal(name="", type="", id="", intervals=[])
    for child in element:
        tag = child.tag
        if tag == n.STRM_INTERVALS:
            signal.intervals = _signal_intervals(child)
        elif tag == n.EI_TARGET:
            signal.target = target(child)
        elif tag == n.EI_SIGNAL_NAME:
            signal.name = token(child)
        elif tag == n.EI_SIGNAL_TYPE:
            signal.type = token(child)
        elif tag == n.EI_SIGNAL_ID:
            signal.id = text(child)
        elif tag == n.EI_CURRENT_VALUE:
            signal.current_value = payload_float(child)
        elif _is_unit(tag):
            signal.unit = unit(child)
    return signal


def _baseline(element: _Element) -> EventSignal:
    baseline = EventSignal(name="", type="", id="", intervals=[])
    resources: list[str] = []
    for child in element:
        tag = child.tag
        if tag == n.XCAL_DTSTART:
            baseline.start = inner_datetime(child)
        elif tag == n.XCAL_DURATION:
            baseline.duration = inner_duration(child)
        elif tag == n.STRM_INTERVALS:
            baseline.intervals = _signal_intervals(child)
        elif tag == n.EI_BASELINE_ID:
            baseline.id = text(child)
        elif tag == n.EI_RESOURCE_ID:
            resources.append(text(child))
        elif tag == n.EI_BASELINE_NAME:
            baseline.name = text(child)
        elif _is_unit(tag):
            baseline.unit = unit(child)
    if resources:
        baseline.target = Target(resource_ids=resources)
    return baseline


def _signal_intervals(element: _Element) -> list[SignalInterval]:
    """A signal interval needs its uid and duration (the 2.0b profile's rules 2 and 8 are about them) and exactly
    one number: an interval the gateway would have to guess at is refused instead."""
    intervals: list[SignalInterval] = []
    for interval in element:
        if interval.tag != n.EI_INTERVAL:
            continue
        start: datetime | None = None
        length: timedelta | None = None
        uid: int | None = None
        values: list[Decimal] = []
        for child in interval:
            tag = child.tag
            if tag == n.XCAL_DTSTART:
                start = inner_datetime(child)
            elif tag == n.XCAL_DURATION:
                length = inner_duration(child)
            elif tag == n.XCAL_UID:
                uid = read_int(first(child).text)
            elif tag == n.EI_SIGNAL_PAYLOAD:
                values.append(payload_float(child))
            elif isinstance(tag, str):
                raise OadrDecodeError(f"{tag} in an event signal interval", ResponseCode.SIGNAL_NOT_SUPPORTED)
        position = len(intervals)
        if uid is None or length is None:
            raise OadrDecodeError(f"signal interval {position} needs a uid and a duration")
        if len(values) != 1:
            raise OadrDecodeError(f"signal interval {uid} has {len(values)} payloads; the 2.0b profile allows one")
        intervals.append(SignalInterval(uid=uid, duration=length, value=values[0], start=start))
    return intervals


# --- reports ----------------------------------------------------------------------------------------------------


def report(element: _Element) -> Report:
    """One oadr:oadrReport. An absent reportName is the empty string (and an empty one is not written)."""
    found = Report(report_specifier_id="", report_name="", created=datetime.min)
    for child in element:
        tag = child.tag
        if tag == n.XCAL_DTSTART:
            found.start = inner_datetime(child)
        elif tag == n.XCAL_DURATION:
            found.duration = inner_duration(child)
        elif tag == n.STRM_INTERVALS:
            found.intervals = _report_intervals(child)
        elif tag == n.EI_REPORT_ID:
            found.report_id = text(child)
        elif tag == n.OADR_REPORT_DESCRIPTION:
            found.descriptions.append(_description(child))
        elif tag == n.EI_REPORT_REQUEST_ID:
            found.report_request_id = text(child)
        elif tag == n.EI_REPORT_SPECIFIER_ID:
            found.report_specifier_id = text(child)
        elif tag == n.EI_REPORT_NAME:
            found.report_name = token(child)
        elif tag == n.EI_CREATED_DATE_TIME:
            found.created = read_datetime(child.text)
    return found


def _report_intervals(element: _Element) -> list[ReportInterval]:
    """One ReportInterval per oadrReportPayload: an interval reporting two data points becomes two rows with the
    same start, duration and uid (the writer groups them back into one interval)."""
    rows: list[ReportInterval] = []
    for interval in element:
        if interval.tag != n.EI_INTERVAL:
            continue
        start: datetime | None = None
        length: timedelta | None = None
        uid: int | None = None
        for child in interval:
            tag = child.tag
            if tag == n.XCAL_DTSTART:
                start = inner_datetime(child)
            elif tag == n.XCAL_DURATION:
                length = inner_duration(child)
            elif tag == n.XCAL_UID:
                uid = read_int(first(child).text)
            elif tag == n.OADR_REPORT_PAYLOAD:
                rows.append(_report_payload(child, start, length, uid))
            elif isinstance(tag, str):
                raise OadrDecodeError(f"{tag} in a report interval", ResponseCode.REPORT_NOT_SUPPORTED)
    return rows


def _report_payload(
    element: _Element, start: datetime | None, length: timedelta | None, uid: int | None
) -> ReportInterval:
    row = ReportInterval(start=start, duration=length, r_id="", value=Decimal(0), uid=uid)
    for child in element:
        tag = child.tag
        if tag == n.EI_R_ID:
            row.r_id = text(child)
        elif tag == n.EI_CONFIDENCE:
            row.confidence = read_int(child.text)
        elif tag == n.EI_ACCURACY:
            row.accuracy = read_decimal(child.text)
        elif tag == n.EI_PAYLOAD_FLOAT:
            row.value = read_decimal(first(child).text)
        elif tag == n.OADR_DATA_QUALITY:
            row.data_quality = token(child)
        elif isinstance(tag, str):  # oadrPayloadResourceStatus: TELEMETRY_STATUS data
            raise OadrDecodeError(
                f"report payload {tag} (resource status) is not supported", ResponseCode.REPORT_NOT_SUPPORTED
            )
    return row


def _description(element: _Element) -> ReportDescription:
    found = ReportDescription(r_id="", report_type="", reading_type="")
    for child in element:
        tag = child.tag
        if tag == n.EI_R_ID:
            found.r_id = text(child)
        elif tag == n.EI_REPORT_SUBJECT:
            found.resource_id, found.subject = _one_resource(target(child))
        elif tag == n.EI_REPORT_DATA_SOURCE:
            found.data_source, found.source = _one_resource(target(child))
        elif tag == n.EI_REPORT_TYPE:
            found.report_type = token(child)
        elif tag == n.EI_READING_TYPE:
            found.reading_type = token(child)
        elif tag == n.EMIX_MARKET_CONTEXT:
            found.market_context = token(child)
        elif tag == n.OADR_SAMPLING_RATE:
            for rate in child:
                if rate.tag == n.OADR_MIN_PERIOD:
                    found.min_period = read_duration(rate.text)
                elif rate.tag == n.OADR_MAX_PERIOD:
                    found.max_period = read_duration(rate.text)
                elif rate.tag == n.OADR_ON_CHANGE:
                    found.on_change = read_bool(rate.text)
        elif _is_unit(tag):
            found.unit = unit(child)
    return found


def _one_resource(found: Target) -> tuple[str | None, Target | None]:
    if len(found.resource_ids) == 1 and found == Target(resource_ids=found.resource_ids):
        return found.resource_ids[0], None
    return None, found


def report_request(element: _Element) -> ReportRequest:
    """One oadrReportRequest. A specifierPayload's optional itemBase is not kept (ReportRequest has no place for
    it; the units of a data point are in its registered description)."""
    nothing = timedelta(0)
    found = ReportRequest(
        report_request_id="", report_specifier_id="", granularity=nothing, report_back_duration=nothing, r_ids=[]
    )
    for child in element:
        if child.tag == n.EI_REPORT_REQUEST_ID:
            found.report_request_id = text(child)
        elif child.tag == n.EI_REPORT_SPECIFIER:
            for part in child:
                tag = part.tag
                if tag == n.EI_REPORT_SPECIFIER_ID:
                    found.report_specifier_id = text(part)
                elif tag == n.XCAL_GRANULARITY:
                    found.granularity = inner_duration(part)
                elif tag == n.EI_REPORT_BACK_DURATION:
                    found.report_back_duration = inner_duration(part)
                elif tag == n.EI_REPORT_INTERVAL:
                    found.start, found.duration = properties_period(part)
                elif tag == n.EI_SPECIFIER_PAYLOAD:
                    for item in part:
                        if item.tag == n.EI_R_ID:
                            found.r_ids.append(text(item))
                        elif item.tag == n.EI_READING_TYPE:
                            found.reading_types.append(token(item))
    return found
