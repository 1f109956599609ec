"""OpenADR 2.0b objects <-> canonical objects: pure functions, driven by the mapping table (see ``table``).

Inbound: an event becomes one canonical Control per signal (a Control has one signal, an event may carry a SIMPLE
level and a price side by side); an oadrCreatedEvent's optIn/optOut becomes a Response (and an optOut an
Override: the customer always decides), and an error responseCode a rejected Response (the VEN cannot act on the
event); an oadrCreateOpt becomes Overrides; telemetry in an oadrUpdateReport becomes metered Deliveries.
Outbound: a Control or a price Tender becomes an event for one VEN, with the status, currentValue and targets that
VEN must see.

Numbers stay Decimal end to end; a value the mapping cannot carry exactly is refused, never rounded.
Priorities: OpenADR counts 1 as the highest and 0 as "no priority" (the lowest); canonical 0 is the highest, so
OpenADR n >= 1 is canonical n - 1 and OpenADR 0 is canonical 255, both ways.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import ValidationError

from gateway.model import (
    Control,
    ControlPeriod,
    ControlStatus,
    ControlTargets,
    Delivery,
    DeliveryQuality,
    Interval,
    Override,
    Response,
    utc_now,
)
from gateway.model.intervals import Resolution, TimeSpan, floor_to_boundary
from gateway.model.overrides import OverrideMode, OverrideReason, OverrideStatus, ResponseStatus, Subject, SubjectKind
from gateway.protocols.openadr2b.messages import (
    Availability,
    Event,
    EventResponse,
    EventSignal,
    EventStatus,
    ItemUnit,
    OadrMessage,
    Opt,
    OptType,
    Payload,
    Report,
    ReportDescription,
    ResponseCode,
    ResponseRequired,
    Target,
)
from gateway.protocols.openadr2b.table import MappingTable, SignalMapping, default_table

Canonical = Control | Response | Override | Delivery


class MappingError(ValueError):
    """An OpenADR object the canonical model cannot hold (or the reverse); ``code`` is the 2.0b response code."""

    def __init__(self, reason: str, code: int = ResponseCode.INVALID_DATA) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def canonical_priority(oadr_priority: int | None) -> int:
    if not oadr_priority:
        return 255
    return min(oadr_priority - 1, 254)


def oadr_priority(priority: int) -> int:
    return 0 if priority >= 255 else priority + 1


# --- inbound: events -> controls -------------------------------------------------------------------------------

_STATUS_IN = {
    EventStatus.ACTIVE: ControlStatus.ACTIVE,
    EventStatus.COMPLETED: ControlStatus.COMPLETED,
    EventStatus.CANCELLED: ControlStatus.CANCELLED,
}


def control_id(event_id: str, signal: EventSignal, event: Event) -> str:
    """The id of the Control one signal of an event becomes: the event id when it has one signal (so an answer
    about the event finds its control), else event id + signal id."""
    return event_id if len(event.signals) == 1 else f"{event_id}.{signal.id}"


def _targets(target: Target) -> ControlTargets:
    """VEN ids are party ids (a VEN is the party's OpenADR name); a target of device classes only is everyone's."""
    parties = list(dict.fromkeys([*target.ven_ids, *target.party_ids]))
    resources = list(dict.fromkeys(target.resource_ids))
    groups = list(dict.fromkeys(target.group_ids))
    return ControlTargets(
        party_ids=parties, resource_ids=resources, group_ids=groups, broadcast=not (parties or resources or groups)
    )


def _periods(event: Event, signal: EventSignal, mapping: SignalMapping) -> list[ControlPeriod]:
    periods: list[ControlPeriod] = []
    at = event.start
    total = timedelta(0)
    for interval in sorted(signal.intervals, key=lambda i: i.uid):
        if interval.duration <= timedelta(0):
            raise MappingError(
                f"event '{event.event_id}' signal '{signal.id}' interval {interval.uid} has no duration; open-ended"
                " intervals cannot become a control"
            )
        start = interval.start or at
        if mapping.name == "SIMPLE" and interval.value not in (0, 1, 2, 3):
            raise MappingError(
                f"event '{event.event_id}': a SIMPLE level is 0, 1, 2 or 3, not {interval.value} (2.0b profile rule 9)"
            )
        periods.append(
            ControlPeriod(span=TimeSpan(start=start, duration=interval.duration), value=interval.value * mapping.factor)
        )
        at = start + interval.duration
        total += interval.duration
    if event.duration and total != event.duration:
        raise MappingError(
            f"event '{event.event_id}' signal '{signal.id}': the intervals last {total}, the event {event.duration}"
            " (2.0b profile rule 8: they must add up)"
        )
    return periods


def event_to_controls(event: Event, table: MappingTable | None = None) -> list[Control]:
    """One Control per signal; a signal the table does not know is refused with 460."""
    table = table or default_table()
    program = table.program_by_context(event.market_context)
    controls: list[Control] = []
    for signal in event.signals:
        mapping = table.inbound(signal.name, signal.type)
        if mapping is None:
            raise MappingError(
                f"signal {signal.name}/{signal.type} of event '{event.event_id}' is not in mappings/openadr2b.yaml",
                ResponseCode.SIGNAL_NOT_SUPPORTED,
            )
        narrowed = signal.target is not None and (
            signal.target.ven_ids or signal.target.resource_ids or signal.target.group_ids or signal.target.party_ids
        )
        targets = _targets(signal.target if narrowed and signal.target else event.target)
        try:
            controls.append(
                Control(
                    id=control_id(event.event_id, signal, event),
                    program_id=program.program_id if program else None,
                    targets=targets,
                    kind=mapping.kind,
                    signal=mapping.signal,
                    unit=mapping.unit,
                    periods=_periods(event, signal, mapping),
                    priority=canonical_priority(event.priority),
                    randomize_start=event.start_after or timedelta(0),
                    response_required=event.response_required is ResponseRequired.ALWAYS,
                    status=_STATUS_IN.get(event.status, ControlStatus.SCHEDULED),
                    revision=event.modification_number,
                    created_at=event.created,
                )
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise MappingError(f"event '{event.event_id}': {where}: {first['msg']}") from exc
    return controls


# --- inbound: answers, opts and reports ---------------------------------------------------------------------------

_REASONS = {
    "economic": OverrideReason.ECONOMIC,
    "emergency": OverrideReason.EMERGENCY,
    "mustRun": OverrideReason.MUST_RUN,
    "notParticipating": OverrideReason.NOT_PARTICIPATING,
    "outageRunStatus": OverrideReason.OUTAGE_RUN_STATUS,
    "overrideStatus": OverrideReason.OVERRIDE_STATUS,
    "participating": OverrideReason.PARTICIPATING,
    "x-schedule": OverrideReason.SCHEDULE,
}
_REASONS_OUT = {reason: text for text, reason in _REASONS.items()}
OPT_REASONS = frozenset(_REASONS)
"""The optReason values the 2.0b schema enumerates (anything else must be an x- extension)."""


def response_id(party_id: str, event_id: str, modification_number: int) -> str:
    return f"oadr.{party_id}.{event_id}.{modification_number}"


def event_override_id(party_id: str, control_id: str) -> str:
    return f"oadr-optout.{party_id}.{control_id}"


_CODE_NAMES = {
    ResponseCode.OUT_OF_SEQUENCE: "out of sequence",
    ResponseCode.NOT_ALLOWED: "not allowed",
    ResponseCode.INVALID_ID: "invalid ID",
    ResponseCode.NOT_RECOGNIZED: "not recognized",
    ResponseCode.INVALID_DATA: "invalid data",
    ResponseCode.COMPLIANCE_ERROR: "compliance error",
    ResponseCode.SIGNAL_NOT_SUPPORTED: "signal not supported",
    ResponseCode.REPORT_NOT_SUPPORTED: "report not supported",
    ResponseCode.TARGET_MISMATCH: "target mismatch",
    ResponseCode.NOT_REGISTERED_OR_AUTHORIZED: "not registered or authorized",
    ResponseCode.DEPLOYMENT_ERROR: "deployment error",
}


def refusal_status(code: int) -> ResponseStatus | None:
    """What a VEN's responseCode for one event says, canonically: None for success (2xx: its optType counts).

    The 2.0b profile groups its error codes in two: 46x are *deployment* errors (the event is valid, but this
    deployment cannot act on it: a signal or report it does not support, a target that is not its own), which is
    2030.5's "rejected: not applicable to this device"; 45x are *compliance* errors (the VEN finds the event itself
    wrong: out of sequence, an invalid id or data, not allowed), and any other code, "rejected: invalid"."""
    if 200 <= code < 300:
        return None
    if 460 <= code < 470:
        return ResponseStatus.REJECTED_NOT_APPLICABLE
    return ResponseStatus.REJECTED_INVALID


def event_response_to_canonical(
    answer: EventResponse, party_id: str, control: Control | None, at: datetime, resource_id: str | None = None
) -> list[Response | Override]:
    """An optIn/optOut for one event: a Response, and, when the event's ``control`` is known (its span is the
    override's), an Override that an optOut makes active and a later optIn withdraws. ``resource_id``: the one
    resource of the party the event names, if it names exactly one (the VEN then answered for that resource, and
    the override must compete with that resource's overrides from other edges); otherwise the party as a whole.

    An answer with an error responseCode (openleadr's VEN answers 460 to an ``x-`` signal it does not know) is a
    VEN that cannot act on the event, not a customer's choice: a rejected Response with the code and the VEN's
    description, and no Override whatever its optType (see :func:`refusal_status`)."""
    opted_out = answer.opt_type is OptType.OPT_OUT
    refused = refusal_status(answer.code)
    response = Response(
        id=response_id(party_id, answer.event_id, answer.modification_number),
        subject=Subject(kind=SubjectKind.CONTROL, id=control.id if control else answer.event_id),
        party_id=party_id,
        resource_id=resource_id,
        status=refused or (ResponseStatus.OPTED_OUT if opted_out else ResponseStatus.OPTED_IN),
        at=at,
        description=None if refused is None else _refusal_text(answer),
    )
    if control is None or refused is not None:
        return [response]
    override = Override(
        id=event_override_id(party_id, control.id),
        party_id=party_id,
        subject=Subject(kind=SubjectKind.CONTROL, id=control.id),
        resource_id=resource_id,
        mode=OverrideMode.OPT_OUT,
        # The customer declining an event it was sent is its override of it: the same reason a 2030.5 device's
        # Response 4 and an EiOpt with optReason overrideStatus give, so every edge stores the same record.
        reason=OverrideReason.OVERRIDE_STATUS,
        span=control.span,
        status=OverrideStatus.ACTIVE if opted_out else OverrideStatus.WITHDRAWN,
        created_at=at,
    )
    return [response, override]


def _refusal_text(answer: EventResponse) -> str:
    name = _CODE_NAMES.get(answer.code, "error")
    said = answer.description.strip()
    text = f"OpenADR 2.0b responseCode {answer.code} ({name})" + (f": {said}" if said else "")
    return text[:1000]


def opt_override_ids(opt_id: str, count: int) -> list[str]:
    return [f"oadr-opt.{opt_id}"] if count == 1 else [f"oadr-opt.{opt_id}.{n}" for n in range(count)]


def opt_to_overrides(
    opt: Opt, party_id: str, *, control: Control | None, resource_ids: Sequence[str]
) -> list[Override]:
    """An oadrCreateOpt: about one event (``control``), or availability windows for resources (each resource x
    window becomes an override). ``resource_ids`` are the resources the opt applies to (the target's, or the
    party's own when the target names none)."""
    reason = _REASONS.get(opt.opt_reason, OverrideReason.OTHER)
    text = opt.opt_reason if reason is OverrideReason.OTHER else None
    mode = OverrideMode.OPT_OUT if opt.opt_type is OptType.OPT_OUT else OverrideMode.OPT_IN
    subjects: list[tuple[Subject, str | None, TimeSpan]] = []
    if opt.event_id is not None:
        windows = [_span(window, opt.opt_id) for window in opt.availability]
        if not windows:
            if control is None:
                raise MappingError(f"there is no event '{opt.event_id}' for you", ResponseCode.INVALID_ID)
            windows = [control.span]
        subject = Subject(kind=SubjectKind.CONTROL, id=control.id if control else opt.event_id)
        subjects = [(subject, None, span) for span in windows]
    else:
        if not opt.availability:
            raise MappingError(f"opt '{opt.opt_id}' names neither an event nor an availability schedule")
        if not resource_ids:
            raise MappingError(f"opt '{opt.opt_id}' applies to no resource of yours", ResponseCode.TARGET_MISMATCH)
        for resource_id, window in itertools.product(resource_ids, opt.availability):
            span = _span(window, opt.opt_id)
            subjects.append((Subject(kind=SubjectKind.RESOURCE, id=resource_id), resource_id, span))
    ids = opt_override_ids(opt.opt_id, len(subjects))
    return [
        Override(
            id=override_id,
            party_id=party_id,
            subject=subject,
            resource_id=resource_id,
            mode=mode,
            reason=reason,
            reason_text=text,
            span=span,
            created_at=opt.created,
        )
        for override_id, (subject, resource_id, span) in zip(ids, subjects, strict=True)
    ]


def _span(window: Availability, opt_id: str) -> TimeSpan:
    if window.duration <= timedelta(0):
        raise MappingError(f"opt '{opt_id}': an availability window needs a positive duration")
    return TimeSpan(start=window.start, duration=window.duration)


_SI = {"none": Decimal(1), "k": Decimal(1000), "M": Decimal(1_000_000), "m": Decimal("0.001")}
_RESOLUTIONS = {timedelta(seconds=r.seconds): r for r in Resolution if not r.is_calendar}


def _kilowatts(value: Decimal, unit: ItemUnit | None, duration: timedelta, r_id: str) -> Decimal:
    """A reported value as an average rate in kW: power as is, energy over the interval's duration."""
    if unit is None:
        raise MappingError(f"data point '{r_id}' was registered without a unit (powerReal or energyReal)")
    scale = _SI.get(unit.si_scale)
    if scale is None:
        raise MappingError(f"data point '{r_id}': siScaleCode '{unit.si_scale}' is not supported")
    watts_or_wh = value * scale
    if unit.kind == "powerReal" and unit.units == "W":
        return watts_or_wh / 1000
    if unit.kind == "energyReal" and unit.units == "Wh":
        return watts_or_wh / 1000 / Decimal(duration.total_seconds() / 3600)
    raise MappingError(
        f"data point '{r_id}' is {unit.kind} in {unit.units}; deliveries need powerReal (W) or energyReal (Wh)",
        ResponseCode.REPORT_NOT_SUPPORTED,
    )


def delivery_id(party_id: str, r_id: str, start: datetime) -> str:
    """Stable per data point and interval: a VEN that reports the same interval again replaces its value."""
    return f"oadr.{party_id}.{r_id}.{start.strftime('%Y%m%dT%H%M%SZ')}"


def report_to_deliveries(
    report: Report,
    party_id: str,
    descriptions: dict[str, ReportDescription],
    location_of: Callable[[str | None], str | None],
) -> list[Delivery]:
    """Telemetry usage data as metered Deliveries, one per data point and interval. ``descriptions`` are the VEN's
    registered data points by rID (their units); ``location_of`` finds the location of a resource id (None: the
    party's own site). Intervals must be one of the uniform durations (5 min, 15 min, 1 h) and aligned."""
    deliveries: list[Delivery] = []
    for row in report.intervals:
        description = descriptions.get(row.r_id)
        if description is None:
            raise MappingError(f"report data point '{row.r_id}' was never registered", ResponseCode.INVALID_ID)
        start = row.start or report.start
        duration = row.duration or report.duration
        sample = duration is None  # a reading at an instant (openleadr's incremental reports) stands for its interval
        duration = duration or description.min_period
        if start is None or duration is None:
            raise MappingError(f"report data point '{row.r_id}' has an interval without a start or a duration")
        resolution = _RESOLUTIONS.get(duration)
        if resolution is None:
            raise MappingError(f"report interval {duration} is not a market interval (PT5M, PT15M, PT1H)")
        if sample:
            start = floor_to_boundary(start, resolution)
        resource_id = description.resource_id or description.data_source
        location_id = location_of(resource_id)
        if location_id is None:
            raise MappingError(
                f"data point '{row.r_id}' belongs to resource '{resource_id}', which has no location here",
                ResponseCode.TARGET_MISMATCH,
            )
        try:
            deliveries.append(
                Delivery(
                    id=delivery_id(party_id, row.r_id, start),
                    party_id=party_id,
                    location_id=location_id,
                    resource_id=resource_id,
                    interval=Interval(start=start, duration=resolution),
                    quantity=_kilowatts(row.value, description.unit, duration, row.r_id),
                    quality=DeliveryQuality.ESTIMATED if sample else DeliveryQuality.MEASURED,
                    measured_at=report.created,
                )
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            raise MappingError(f"report data point '{row.r_id}': {first['msg']}") from exc
    return deliveries


# --- whole messages, for `tgw translate` and the benchmark --------------------------------------------------------


def to_canonical(message: OadrMessage, table: MappingTable | None = None) -> list[Canonical]:
    """The canonical objects a message carries, without a store: VEN ids stand for party ids, a report's resource
    for its location, and an opt or answer about an event refers to the event's control by the event id."""
    table = table or default_table()
    match message.payload:
        case Payload.DISTRIBUTE_EVENT:
            return [control for event in message.events for control in event_to_controls(event, table)]
        case Payload.CREATED_EVENT:
            party = _ven(message)
            out: list[Canonical] = []
            for answer in message.event_responses:
                out.extend(event_response_to_canonical(answer, party, None, utc_now()))
            return out
        case Payload.CREATE_OPT:
            assert message.opt is not None
            opt = message.opt
            party = opt.ven_id or _ven(message)
            resources = opt.target.resource_ids if opt.target else []
            if opt.event_id and not opt.availability:
                raise MappingError(
                    f"opt '{opt.opt_id}' is about event '{opt.event_id}' for the event's whole span, which only the"
                    " VTN knows: send it to the VTN (POST /OpenADR2/Simple/2.0b/EiOpt) rather than translating it",
                    ResponseCode.INVALID_ID,
                )
            return list(opt_to_overrides(opt, party, control=None, resource_ids=resources))
        case Payload.UPDATE_REPORT:
            party = _ven(message)
            descriptions: dict[str, ReportDescription] = {}
            for report in message.reports:
                for description in report.descriptions:
                    descriptions[description.r_id] = description
            return [
                delivery
                for report in message.reports
                for delivery in report_to_deliveries(report, party, descriptions, lambda resource: resource or party)
            ]
    raise MappingError(f"{message.payload.value} carries no canonical object", ResponseCode.NOT_RECOGNIZED)


def _ven(message: OadrMessage) -> str:
    if not message.ven_id:
        raise MappingError(f"{message.payload.value} names no venID", ResponseCode.INVALID_ID)
    return message.ven_id


def reason_text(reason: OverrideReason, fallback: str | None = None) -> str:
    """The optReason for a canonical override reason (``x-`` text for the ones OpenADR has no word for)."""
    return _REASONS_OUT.get(reason) or (fallback if fallback and fallback.startswith("x-") else "x-other")
