"""Writers for the parts several 2.0b payloads share: eiResponse, targets, units, events and reports.

Each writer appends children in exactly the order of its XSD sequence (the comment above each names the type),
because the schema is a sequence, not a set: an element out of place fails validation at the peer. Optional
elements are written only when the field is set; a required field that is None raises
:class:`OadrEncodeError` rather than produce a document the peer would refuse.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from lxml.etree import SubElement, _Element

from gateway.protocols.openadr2b import codec_names as n
from gateway.protocols.openadr2b.codec_values import (
    OadrEncodeError,
    write_bool,
    write_datetime,
    write_decimal,
    write_duration,
    write_float,
)
from gateway.protocols.openadr2b.messages import (
    EiResponse,
    Event,
    EventSignal,
    ItemUnit,
    Report,
    ReportDescription,
    ReportInterval,
    ReportRequest,
    SignalInterval,
    Target,
)

_T = TypeVar("_T")


def need(value: _T | None, what: str) -> _T:
    if value is None:
        raise OadrEncodeError(f"{what} is required")
    return value


def leaf(parent: _Element, tag: str, value: str) -> _Element:
    element = SubElement(parent, tag)
    element.text = value
    return element


def date_time(parent: _Element, tag: str, moment: datetime) -> None:
    """An element that wraps xcal:date-time (xcal:dtstart)."""
    leaf(SubElement(parent, tag), n.XCAL_DATE_TIME, write_datetime(moment))


def duration(parent: _Element, tag: str, length: timedelta) -> None:
    """A DurationPropType element: ``tag`` wrapping one xcal:duration value."""
    leaf(SubElement(parent, tag), n.XCAL_DURATION, write_duration(length))


def payload_float(parent: _Element, tag: str, value: Decimal) -> None:
    """``tag`` wrapping ei:payloadFloat/ei:value (currentValue, signalPayload)."""
    leaf(SubElement(SubElement(parent, tag), n.EI_PAYLOAD_FLOAT), n.EI_VALUE, write_float(value))


def properties_period(parent: _Element, tag: str, start: datetime, length: timedelta) -> None:
    """``tag`` wrapping xcal:properties with a dtstart and a duration (available, reportInterval)."""
    properties = SubElement(SubElement(parent, tag), n.XCAL_PROPERTIES)
    date_time(properties, n.XCAL_DTSTART, start)
    duration(properties, n.XCAL_DURATION, length)


# EiResponseType: responseCode, responseDescription?, requestID
def response(parent: _Element, answer: EiResponse | None, request_id: str | None = None) -> None:
    answer = answer or EiResponse()
    element = SubElement(parent, n.EI_RESPONSE)
    response_fields(element, answer.code, answer.description, answer.request_id, request_id)


def response_fields(
    element: _Element, code: int, description: str, request_id: str | None, fallback: str | None = None
) -> None:
    if not 0 <= code <= 999:
        raise OadrEncodeError(f"response code {code} is not three digits")
    leaf(element, n.EI_RESPONSE_CODE, f"{code:03d}")
    if description:
        leaf(element, n.EI_RESPONSE_DESCRIPTION, description)
    chosen = request_id if request_id is not None else fallback
    leaf(element, n.PYLD_REQUEST_ID, chosen or "")


# EiTargetType: aggregatedPnode*, endDeviceAsset*, meterAsset*, pnode*, serviceArea*, serviceDeliveryPoint*,
# serviceLocation*, transportInterface*, groupID*, groupName*, resourceID*, venID*, partyID*
def target(parent: _Element, tag: str, chosen: Target) -> None:
    element = SubElement(parent, tag)
    _wrapped(element, n.POWER_AGGREGATED_PNODE, n.POWER_NODE, chosen.aggregated_pnodes)
    _wrapped(element, n.POWER_END_DEVICE_ASSET, n.POWER_MRID, chosen.end_device_assets)
    _wrapped(element, n.POWER_METER_ASSET, n.POWER_MRID, chosen.meter_assets)
    _wrapped(element, n.POWER_PNODE, n.POWER_NODE, chosen.pnodes)
    _wrapped(element, n.POWER_SERVICE_DELIVERY_POINT, n.POWER_NODE, chosen.service_delivery_points)
    for tag_, values in (
        (n.EI_GROUP_ID, chosen.group_ids),
        (n.EI_GROUP_NAME, chosen.group_names),
        (n.EI_RESOURCE_ID, chosen.resource_ids),
        (n.EI_VEN_ID, chosen.ven_ids),
        (n.EI_PARTY_ID, chosen.party_ids),
    ):
        for value in values:
            leaf(element, tag_, value)


def _wrapped(parent: _Element, tag: str, inner: str, values: Iterable[str]) -> None:
    for value in values:
        leaf(SubElement(parent, tag), inner, value)


# the units: itemDescription, itemUnits, then siScaleCode (pulseCount: pulseFactor), then powerAttributes
# (hertz, voltage, ac) for the power items
def unit(parent: _Element, item: ItemUnit) -> None:
    namespace = n.UNIT_NAMESPACE.get(item.kind)
    if namespace is None:
        raise OadrEncodeError(f"'{item.kind}' is not a 2.0b unit (itemBase) element")
    element = SubElement(parent, "{" + namespace + "}" + item.kind)
    leaf(element, n.UNIT_DESCRIPTION[namespace], item.description)
    leaf(element, n.UNIT_UNITS[namespace], item.units)
    if item.kind == "pulseCount":
        leaf(element, n.OADR_PULSE_FACTOR, write_float(need(item.pulse_factor, "pulseCount's pulse_factor")))
    else:
        leaf(element, n.SCALE_SI_SCALE_CODE, item.si_scale)
    if item.kind in n.POWER_KINDS:
        attributes = SubElement(element, n.POWER_ATTRIBUTES)
        leaf(attributes, n.POWER_HERTZ, write_decimal(need(item.hertz, f"{item.kind}'s hertz")))
        leaf(attributes, n.POWER_VOLTAGE, write_decimal(need(item.voltage, f"{item.kind}'s voltage")))
        leaf(attributes, n.POWER_AC, write_bool(need(item.ac, f"{item.kind}'s ac")))


# --- events -----------------------------------------------------------------------------------------------------


# oadrEvent: eiEvent (eventDescriptor, eiActivePeriod, eiEventSignals, eiTarget), oadrResponseRequired
def event(parent: _Element, item: Event) -> None:
    outer = SubElement(parent, n.OADR_EVENT)
    body = SubElement(outer, n.EI_EVENT)
    # eventDescriptorType: eventID, modificationNumber, modificationDateTime?, modificationReason?, priority?,
    # eiMarketContext, createdDateTime, eventStatus, testEvent?, vtnComment?
    descriptor = SubElement(body, n.EI_EVENT_DESCRIPTOR)
    leaf(descriptor, n.EI_EVENT_ID, item.event_id)
    leaf(descriptor, n.EI_MODIFICATION_NUMBER, str(item.modification_number))
    if item.modification_at is not None:
        leaf(descriptor, n.EI_MODIFICATION_DATE_TIME, write_datetime(item.modification_at))
    if item.modification_reason is not None:
        leaf(descriptor, n.EI_MODIFICATION_REASON, item.modification_reason)
    if item.priority is not None:
        leaf(descriptor, n.EI_PRIORITY, str(item.priority))
    leaf(SubElement(descriptor, n.EI_MARKET_CONTEXT), n.EMIX_MARKET_CONTEXT, item.market_context)
    leaf(descriptor, n.EI_CREATED_DATE_TIME, write_datetime(item.created))
    leaf(descriptor, n.EI_EVENT_STATUS, item.status.value)
    if item.test_event is not None:
        leaf(descriptor, n.EI_TEST_EVENT, item.test_event)
    if item.vtn_comment is not None:
        leaf(descriptor, n.EI_VTN_COMMENT, item.vtn_comment)
    # eiActivePeriod: properties (dtstart, duration, tolerance?, x-eiNotification?, x-eiRampUp?, x-eiRecovery?),
    # components
    period = SubElement(body, n.EI_ACTIVE_PERIOD)
    properties = SubElement(period, n.XCAL_PROPERTIES)
    date_time(properties, n.XCAL_DTSTART, item.start)
    duration(properties, n.XCAL_DURATION, item.duration)
    if item.start_after is not None:
        tolerate = SubElement(SubElement(properties, n.XCAL_TOLERANCE), n.XCAL_TOLERATE)
        leaf(tolerate, n.XCAL_STARTAFTER, write_duration(item.start_after))
    extensions = (
        (n.EI_X_NOTIFICATION, item.notification),
        (n.EI_X_RAMP_UP, item.ramp_up),
        (n.EI_X_RECOVERY, item.recovery),
    )
    for tag, length in extensions:
        if length is not None:
            duration(properties, tag, length)
    SubElement(period, n.XCAL_COMPONENTS)
    # eiEventSignals: eiEventSignal+, eiEventBaseline?
    if not item.signals:
        raise OadrEncodeError(f"event '{item.event_id}' has no signal; 2.0b requires at least one")
    signals = SubElement(body, n.EI_EVENT_SIGNALS)
    for signal in item.signals:
        _signal(signals, signal)
    if item.baseline is not None:
        _baseline(signals, item.baseline)
    target(body, n.EI_TARGET, item.target)
    leaf(outer, n.OADR_RESPONSE_REQUIRED, item.response_required.value)


# eiEventSignalType: intervals, eiTarget?, signalName, signalType, signalID, itemBase?, currentValue?
def _signal(parent: _Element, signal: EventSignal) -> None:
    element = SubElement(parent, n.EI_EVENT_SIGNAL)
    _signal_intervals(element, signal)
    if signal.target is not None:
        target(element, n.EI_TARGET, signal.target)
    leaf(element, n.EI_SIGNAL_NAME, signal.name)
    leaf(element, n.EI_SIGNAL_TYPE, signal.type)
    leaf(element, n.EI_SIGNAL_ID, signal.id)
    if signal.unit is not None:
        unit(element, signal.unit)
    if signal.current_value is not None:
        payload_float(element, n.EI_CURRENT_VALUE, signal.current_value)


# eiEventBaselineType: dtstart, duration, intervals, baselineID, resourceID*, baselineName, itemBase?
def _baseline(parent: _Element, baseline: EventSignal) -> None:
    element = SubElement(parent, n.EI_EVENT_BASELINE)
    date_time(element, n.XCAL_DTSTART, need(baseline.start, "a baseline's start"))
    duration(element, n.XCAL_DURATION, need(baseline.duration, "a baseline's duration"))
    _signal_intervals(element, baseline)
    leaf(element, n.EI_BASELINE_ID, baseline.id)
    chosen = baseline.target or Target()
    if chosen != Target(resource_ids=chosen.resource_ids):
        raise OadrEncodeError("a baseline can only name resourceIDs")
    for resource in chosen.resource_ids:
        leaf(element, n.EI_RESOURCE_ID, resource)
    leaf(element, n.EI_BASELINE_NAME, baseline.name)
    if baseline.unit is not None:
        unit(element, baseline.unit)


# IntervalType: dtstart?, duration?, uid?, streamPayloadBase+ (here one signalPayload)
def _signal_intervals(parent: _Element, signal: EventSignal) -> None:
    if not signal.intervals:
        raise OadrEncodeError(f"signal '{signal.id}' has no interval; 2.0b requires at least one")
    intervals = SubElement(parent, n.STRM_INTERVALS)
    for interval in signal.intervals:
        _signal_interval(intervals, interval)


def _signal_interval(parent: _Element, interval: SignalInterval) -> None:
    element = SubElement(parent, n.EI_INTERVAL)
    if interval.start is not None:
        date_time(element, n.XCAL_DTSTART, interval.start)
    duration(element, n.XCAL_DURATION, interval.duration)
    leaf(SubElement(element, n.XCAL_UID), n.XCAL_TEXT, str(interval.uid))
    payload_float(element, n.EI_SIGNAL_PAYLOAD, interval.value)


# --- reports ----------------------------------------------------------------------------------------------------


# oadrReportType (extends StreamBaseType: dtstart?, duration?, intervals?): eiReportID?, oadrReportDescription*,
# reportRequestID, reportSpecifierID, reportName?, createdDateTime
def report(parent: _Element, item: Report) -> None:
    element = SubElement(parent, n.OADR_REPORT)
    if item.start is not None:
        date_time(element, n.XCAL_DTSTART, item.start)
    if item.duration is not None:
        duration(element, n.XCAL_DURATION, item.duration)
    if item.intervals:
        _report_intervals(SubElement(element, n.STRM_INTERVALS), item.intervals)
    if item.report_id is not None:
        leaf(element, n.EI_REPORT_ID, item.report_id)
    for description in item.descriptions:
        _description(element, description)
    leaf(element, n.EI_REPORT_REQUEST_ID, item.report_request_id)
    leaf(element, n.EI_REPORT_SPECIFIER_ID, item.report_specifier_id)
    if item.report_name:
        leaf(element, n.EI_REPORT_NAME, item.report_name)
    leaf(element, n.EI_CREATED_DATE_TIME, write_datetime(item.created))


def _report_intervals(parent: _Element, rows: list[ReportInterval]) -> None:
    """Consecutive rows with the same start, duration and uid share one ei:interval, as they came in."""
    interval: _Element | None = None
    key: tuple[datetime | None, timedelta | None, int | None] | None = None
    for row in rows:
        if interval is None or (row.start, row.duration, row.uid) != key:
            key = (row.start, row.duration, row.uid)
            interval = SubElement(parent, n.EI_INTERVAL)
            if row.start is not None:
                date_time(interval, n.XCAL_DTSTART, row.start)
            if row.duration is not None:
                duration(interval, n.XCAL_DURATION, row.duration)
            if row.uid is not None:
                leaf(SubElement(interval, n.XCAL_UID), n.XCAL_TEXT, str(row.uid))
        # oadrReportPayloadType: rID, confidence?, accuracy?, payloadBase, oadrDataQuality?
        payload = SubElement(interval, n.OADR_REPORT_PAYLOAD)
        leaf(payload, n.EI_R_ID, row.r_id)
        if row.confidence is not None:
            leaf(payload, n.EI_CONFIDENCE, str(row.confidence))
        if row.accuracy is not None:
            leaf(payload, n.EI_ACCURACY, write_float(row.accuracy))
        leaf(SubElement(payload, n.EI_PAYLOAD_FLOAT), n.EI_VALUE, write_float(row.value))
        if row.data_quality is not None:
            leaf(payload, n.OADR_DATA_QUALITY, row.data_quality)


# oadrReportDescriptionType: rID, reportSubject?, reportDataSource?, reportType, itemBase?, readingType,
# marketContext?, oadrSamplingRate? (oadrMinPeriod, oadrMaxPeriod, oadrOnChange)
def _description(parent: _Element, item: ReportDescription) -> None:
    element = SubElement(parent, n.OADR_REPORT_DESCRIPTION)
    leaf(element, n.EI_R_ID, item.r_id)
    for tag, whole, resource in (
        (n.EI_REPORT_SUBJECT, item.subject, item.resource_id),
        (n.EI_REPORT_DATA_SOURCE, item.source, item.data_source),
    ):
        if whole is not None:
            target(element, tag, whole)
        elif resource is not None:
            target(element, tag, Target(resource_ids=[resource]))
    leaf(element, n.EI_REPORT_TYPE, item.report_type)
    if item.unit is not None:
        unit(element, item.unit)
    leaf(element, n.EI_READING_TYPE, item.reading_type)
    if item.market_context is not None:
        leaf(element, n.EMIX_MARKET_CONTEXT, item.market_context)
    rates = (item.min_period, item.max_period, item.on_change)
    if rates != (None, None, None):
        if None in rates:
            raise OadrEncodeError(f"data point '{item.r_id}': a sampling rate needs min, max period and on-change")
        rate = SubElement(element, n.OADR_SAMPLING_RATE)
        leaf(rate, n.OADR_MIN_PERIOD, write_duration(need(item.min_period, "min_period")))
        leaf(rate, n.OADR_MAX_PERIOD, write_duration(need(item.max_period, "max_period")))
        leaf(rate, n.OADR_ON_CHANGE, write_bool(need(item.on_change, "on_change")))


# oadrReportRequestType: reportRequestID, reportSpecifier (reportSpecifierID, granularity, reportBackDuration,
# reportInterval?, specifierPayload+ (rID, itemBase?, readingType))
def report_request(parent: _Element, item: ReportRequest) -> None:
    element = SubElement(parent, n.OADR_REPORT_REQUEST)
    leaf(element, n.EI_REPORT_REQUEST_ID, item.report_request_id)
    specifier = SubElement(element, n.EI_REPORT_SPECIFIER)
    leaf(specifier, n.EI_REPORT_SPECIFIER_ID, item.report_specifier_id)
    duration(specifier, n.XCAL_GRANULARITY, item.granularity)
    duration(specifier, n.EI_REPORT_BACK_DURATION, item.report_back_duration)
    if item.start is not None:
        properties_period(
            specifier, n.EI_REPORT_INTERVAL, item.start, need(item.duration, "a report interval's length")
        )
    if not item.r_ids:
        raise OadrEncodeError(f"report request '{item.report_request_id}' names no data point (rID)")
    for index, r_id in enumerate(item.r_ids):
        payload = SubElement(specifier, n.EI_SPECIFIER_PAYLOAD)
        leaf(payload, n.EI_R_ID, r_id)
        reading = item.reading_types[index] if index < len(item.reading_types) else "x-notApplicable"
        leaf(payload, n.EI_READING_TYPE, reading)
