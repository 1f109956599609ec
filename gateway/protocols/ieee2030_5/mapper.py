"""IEEE 2030.5 objects <-> the canonical model: pure functions, driven by mappings/ieee2030_5.yaml.

Outbound, one canonical Control period becomes one DERControl (2030.5 events have a single interval) whose mRID is
minted from the control id, the period and the period's edition, so every poll, every device and every restart
names it the same way and a Response can be traced back. 2030.5 events are immutable once published: when an edit
changes what a device acts on in a period, that is a new event (the next edition, a new mRID) and the old one is
cancelled, never rewritten (the index decides the editions, see ``index.History``). Edition 0, the content first
stored, keeps the plain ``control:<id>#<period>`` mRID. An OperatingEnvelope period becomes a DERControl with the
CSIP-AUS import and export limits, named the same way. Inbound, each control mode of a DERControl is one canonical
Control (the canonical control has one signal), a Response is a canonical Response (and an opt-out, 4 or 8, also an
Override), and mirrored meter readings of average power are Deliveries.

Numbers are exact: a power is written as value x 10^multiplier with the smallest multiplier that keeps it exact
within the 16-bit value (rounded only when nothing exact fits, which the docstring of :func:`active_power` states).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

from gateway.model import (
    Control,
    ControlPeriod,
    ControlTargets,
    CurvePoint,
    OperatingEnvelope,
    Override,
    OverrideMode,
    OverrideReason,
    Response,
    ResponseStatus,
    Subject,
    SubjectKind,
    TimeSpan,
)
from gateway.protocols.ieee2030_5 import models as m
from gateway.protocols.ieee2030_5.table import Encoding, MappingTable, OpModMapping

INT16 = (-32768, 32767)
INT32 = (-(2**31), 2**31 - 1)
OPT_OUT_STATUSES = frozenset({ResponseStatus.OPTED_OUT, ResponseStatus.PARTIAL_OPT_OUT})


class MappingError(ValueError):
    """The object cannot be carried by the other side (the message says what and why)."""


# -- identifiers --------------------------------------------------------------------------------------


def mint_mrid(key: str, pen: int) -> str:
    """A 128-bit mRID: 96 bits of a hash of ``key`` (stable across processes and restarts), then the owner's PEN
    in the low 32 bits as 2030.5 requires."""
    digest = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
    return (digest + f"{pen:08x}").upper()


def timed_mrid(key: str, at: int, pen: int) -> str:
    """An mRID for something a device reports at a time (its Response): 32 bits of ``at`` (seconds,
    modulo 2**32), 64 bits of a hash of ``key``, then the PEN. Still stable for the same key and time, and
    ordered by time, so that the canonical ids made from it (the stored objects' keys) arrive at the end of
    the store's id indexes rather than on a random page each (what a durable commit pays for, per row)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
    return f"{at % 2**32:08x}{digest}{pen:08x}".upper()


def _edition_key(prefix: str, object_id: str, period: int, edition: int) -> str:
    # edition 0 is the key mRIDs always had, so the first content published keeps its mRID across this change
    return f"{prefix}:{object_id}#{period}" if edition == 0 else f"{prefix}:{object_id}#{period}~{edition}"


def control_mrid(control_id: str, period: int, pen: int, edition: int = 0) -> str:
    """The DERControl of one period of a control, in one edition of its content (0: as first stored)."""
    return mint_mrid(_edition_key("control", control_id, period, edition), pen)


def envelope_mrid(envelope_id: str, period: int, pen: int, edition: int = 0) -> str:
    """The DERControl of one period of an operating envelope, in one edition of its limits and span."""
    return mint_mrid(_edition_key("envelope", envelope_id, period, edition), pen)


def program_mrid(program_id: str, pen: int) -> str:
    return mint_mrid(f"program:{program_id}", pen)


def curve_mrid(control_id: str, period: int, pen: int, edition: int = 0) -> str:
    return mint_mrid(_edition_key("curve", control_id, period, edition), pen)


@dataclass(frozen=True, slots=True)
class Edition:
    """Which period of a control or envelope to render as one event, and as which edition of its content.

    ``number`` names the event (0: the content first stored, the plain mRID); ``creation_time`` is its
    creationTime (None: the object's ``created_at``); ``cancelled_at`` when the server cancelled it (epoch s), or
    None. The index keeps these; without them every period is rendered as edition 0."""

    period: int
    number: int = 0
    creation_time: int | None = None
    cancelled_at: int | None = None


def control_fingerprint(control: Control, period: int) -> tuple[Any, ...]:
    """What a device acts on in one period of a control (its DERControl, and which program it is in), with nothing
    the server changes without changing the event (status, revision, created_at) and nothing that only says who
    gets it (targets). Two versions with the same fingerprint for a period show devices the same event."""
    item = control.periods[period]
    curve = tuple((p.x.normalize(), p.y.normalize()) for p in item.curve) if item.curve is not None else None
    return (
        item.span.start,
        item.span.duration,
        item.value.normalize() if item.value is not None else None,
        curve,
        control.kind,
        control.signal,
        control.unit,
        control.program_id,
        control.priority,
        control.randomize_start,
        control.randomize_duration,
        control.response_required,
    )


def envelope_fingerprint(envelope: OperatingEnvelope, period: int) -> tuple[Any, ...]:
    """What a device acts on in one period of an operating envelope: its span and its limits."""
    item = envelope.periods[period]
    return (
        item.span.start,
        item.span.duration,
        item.import_limit_kw.normalize() if item.import_limit_kw is not None else None,
        item.export_limit_kw.normalize() if item.export_limit_kw is not None else None,
    )


# -- numbers ------------------------------------------------------------------------------------------


def scaled(value: Decimal, bounds: tuple[int, int] = INT16, rounding: str = ROUND_HALF_EVEN) -> tuple[int, int]:
    """``value`` as (integer, power of ten) with the integer inside ``bounds``: exact when some power of ten
    allows it (the smallest such power is chosen), else rounded (half-even unless told) at the smallest power
    that fits."""
    if value == 0:
        return 0, 0
    sign, digits, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int)
    integer = int("".join(map(str, digits))) * (-1 if sign else 1)
    power = exponent
    low, high = bounds
    while not low <= integer <= high:  # too many digits: raise the power, rounding the exact value once
        power += 1  # (not the previous rounding again: 4924500.001 must give 4925e3, not 4924e3)
        integer = int(value.scaleb(-power).to_integral_value(rounding))
    while power > 0 and low <= integer * 10 <= high:  # keep multipliers small where that is still exact
        integer *= 10
        power -= 1
    return integer, power


def unscaled(value: int, power: int) -> Decimal:
    return Decimal(value).scaleb(power)


def active_power(kw: Decimal, rounding: str = ROUND_HALF_EVEN) -> m.ActivePower:
    """kW as ActivePower (W x 10^multiplier); exact unless the value needs more than 16 bits of precision."""
    value, power = scaled(kw * 1000, rounding=rounding)
    return m.ActivePower(multiplier=power, value=value)


def kw_of(power: Any) -> Decimal:
    return unscaled(power.value, power.multiplier) / 1000


def hundredths(percent: Decimal, low: int, high: int, what: str) -> int:
    value = int((percent * 100).to_integral_value())
    if not low <= value <= high:
        raise MappingError(f"{what} of {percent}% is outside {low / 100}..{high / 100}%")
    return value


# -- outbound: canonical -> 2030.5 ------------------------------------------------------------------


@dataclass(slots=True)
class RenderedControl:
    """One DERControl for one device, before statuses (the event engine decides those)."""

    mrid: str
    source_id: str  # the canonical control or envelope id
    period: int
    start: int
    duration: int
    base: dict[str, Any]
    description: str
    creation_time: int
    randomize_start: int = 0
    randomize_duration: int = 0
    response_required: bool = True
    cancelled_at: int | None = None
    curves: list[m.DERCurve] = field(default_factory=list)

    @property
    def modes(self) -> frozenset[str]:
        return frozenset(self.base)


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _cancelled(cancelled_at: int | None, creation_time: int) -> int | None:
    """A cancellation is never before the event's creationTime (a sender's clock may put created_at after the
    moment the server stored the cancelling version)."""
    return None if cancelled_at is None else max(cancelled_at, creation_time)


def control_to_der(
    control: Control,
    table: MappingTable,
    *,
    set_max_w: Decimal | None,
    curve_href: str = "",
    cancelled_at: int | None = None,
    editions: Sequence[Edition] | None = None,
) -> list[RenderedControl]:
    """Each period of a canonical control (or the ``editions`` given: which periods, named and timed how) as a
    DERControl's pieces; MappingError if this device cannot get it (a signal with no opmod in the table, a kW
    limit for a device whose setMaxW is unknown). Without ``editions``: every period, edition 0, cancelled at
    ``cancelled_at``."""
    mapping = table.outbound(control.kind, control.signal, control.unit)
    if mapping is None:
        raise MappingError(
            f"no 2030.5 control mode renders a {control.kind.value} {control.signal.value} control in"
            f" {control.unit.value} (mappings/ieee2030_5.yaml)"
        )
    pen = table.server.pen
    created = _epoch(control.created_at)
    if editions is None:
        editions = [Edition(index, 0, created, cancelled_at) for index in range(len(control.periods))]
    rendered: list[RenderedControl] = []
    for edition in editions:
        index = edition.period
        period = control.periods[index]
        creation_time = created if edition.creation_time is None else edition.creation_time
        curves: list[m.DERCurve] = []
        if mapping.encoding is Encoding.CURVE:
            mrid = curve_mrid(control.id, index, pen, edition.number)
            assert period.curve is not None and mapping.curve_type is not None
            curves.append(curve_of(period.curve, mapping.curve_type, mrid, creation_time))
            value: Any = m.DERCurveLink(href=f"{curve_href}/{mrid}")
        else:
            assert period.value is not None
            value = encode_value(mapping, control.unit.value, period.value, set_max_w)
        rendered.append(
            RenderedControl(
                mrid=control_mrid(control.id, index, pen, edition.number),
                source_id=control.id,
                period=index,
                start=_epoch(period.span.start),
                duration=int(period.span.duration.total_seconds()),
                base={mapping.opmod: value},
                description=(control.program_id or control.id)[:32],
                creation_time=creation_time,
                randomize_start=int(control.randomize_start.total_seconds()),
                randomize_duration=int(control.randomize_duration.total_seconds()),
                response_required=control.response_required,
                cancelled_at=_cancelled(edition.cancelled_at, creation_time),
                curves=curves,
            )
        )
    return rendered


def encode_value(mapping: OpModMapping, unit: str, value: Decimal, set_max_w: Decimal | None) -> Any:
    """A canonical value as the opmod's wire type."""
    match mapping.encoding:
        case Encoding.PERCENT:
            if unit == "kW":
                if not set_max_w:
                    raise MappingError(
                        f"{mapping.opmod} is a share of the DER's setMaxW, which this device has not reported"
                        " (DERSettings) and its resource has no max_kw rating"
                    )
                return hundredths(value * 1000 / set_max_w * 100, 0, 10000, mapping.opmod)
            return hundredths(value, 0, 10000, mapping.opmod)
        case Encoding.SIGNED_PERCENT:
            return hundredths(value, -10000, 10000, mapping.opmod)
        case Encoding.ACTIVE_POWER:
            return active_power(value)
        case Encoding.REACTIVE_POWER:
            var, power = scaled(value * 1000)
            return m.ReactivePower(multiplier=power, value=var)
        case Encoding.FIXED_VAR:
            return m.FixedVar(refType=2, value=hundredths(value, -10000, 10000, mapping.opmod))
        case Encoding.POWER_FACTOR:
            if not Decimal(-1) <= value <= Decimal(1) or value == 0:
                raise MappingError(f"a power factor of {value} is outside -1..1 (negative: absorbing)")
            return m.PowerFactorWithExcitation(
                displacement=int((abs(value) * 100).to_integral_value()), excitation=value < 0
            )
        case Encoding.BOOLEAN:
            return value == 1
    raise MappingError(f"{mapping.opmod}: encoding {mapping.encoding} has no value form")


def curve_of(points: list[CurvePoint], curve_type: int, mrid: str, creation_time: int) -> m.DERCurve:
    """Canonical curve points as a DERCurve, x and y each scaled by one multiplier that keeps them exact."""
    x_power = max(scaled(p.x, INT32)[1] for p in points)
    y_power = max(scaled(p.y, INT32)[1] for p in points)
    data = [
        m.CurveData(
            xvalue=int((p.x.scaleb(-x_power)).to_integral_value()),
            yvalue=int((p.y.scaleb(-y_power)).to_integral_value()),
        )
        for p in points
    ]
    return m.DERCurve(
        mRID=mrid,
        description=f"curve type {curve_type}",
        creationTime=creation_time,
        CurveData=data,
        curveType=curve_type,
        xMultiplier=x_power,
        yMultiplier=y_power,
        yRefType=3,
    )


def envelope_to_der(
    envelope: OperatingEnvelope, pen: int, editions: Sequence[Edition] | None = None
) -> list[RenderedControl]:
    """Each envelope period (or the ``editions`` given) as a DERControl with opModImpLimW / opModExpLimW
    (CSIP-AUS)."""
    created = _epoch(envelope.created_at)
    if editions is None:
        editions = [Edition(index, 0, created) for index in range(len(envelope.periods))]
    rendered: list[RenderedControl] = []
    for edition in editions:
        index = edition.period
        period = envelope.periods[index]
        creation_time = created if edition.creation_time is None else edition.creation_time
        base: dict[str, Any] = {}
        # A limit that does not fit 16 bits is rounded down: a device keeping to it must stay within the envelope.
        if period.import_limit_kw is not None:
            base["opModImpLimW"] = active_power(period.import_limit_kw, ROUND_FLOOR)
        if period.export_limit_kw is not None:
            base["opModExpLimW"] = active_power(period.export_limit_kw, ROUND_FLOOR)
        rendered.append(
            RenderedControl(
                mrid=envelope_mrid(envelope.id, index, pen, edition.number),
                source_id=envelope.id,
                period=index,
                start=_epoch(period.span.start),
                duration=int(period.span.duration.total_seconds()),
                base=base,
                description=f"envelope {envelope.location_id}"[:32],
                creation_time=creation_time,
                cancelled_at=_cancelled(edition.cancelled_at, creation_time),
            )
        )
    return rendered


# -- inbound: 2030.5 -> canonical -------------------------------------------------------------------


def der_control_to_controls(
    control: m.DERControl,
    table: MappingTable,
    *,
    targets: ControlTargets,
    program_id: str | None = None,
    primacy: int = 0,
    set_max_w: Decimal | None = None,
    curves: dict[str, m.DERCurve] | None = None,
) -> list[Control]:
    """A DERControl as canonical Controls, one per control mode it sets (ids: ``<mRID>-<opmod>``)."""
    base = control.DERControlBase
    interval = control.interval
    span = TimeSpan(start=datetime.fromtimestamp(interval.start, UTC), duration=timedelta(seconds=interval.duration))
    modes = {name: value for name, value in base.model_dump(exclude_none=True).items() if name.startswith("opMod")}
    if not modes:
        raise MappingError(f"DERControl {control.mRID} sets no control mode")
    controls: list[Control] = []
    status = control.EventStatus.currentStatus if control.EventStatus is not None else 0
    for opmod in modes:
        mapping = table.inbound(opmod)
        if mapping is None:
            raise MappingError(f"DERControl {control.mRID}: control mode {opmod} is not in mappings/ieee2030_5.yaml")
        raw = getattr(base, opmod)
        period = _period_of(mapping, raw, span, set_max_w, curves or {})
        controls.append(
            Control(
                id=f"{control.mRID}-{opmod}",
                program_id=program_id,
                targets=targets,
                kind=mapping.kind,
                signal=mapping.signal,
                unit=mapping.unit,
                periods=[period],
                priority=primacy,
                randomize_start=timedelta(seconds=abs(control.randomizeStart or 0)),
                randomize_duration=timedelta(seconds=abs(control.randomizeDuration or 0)),
                status=_canonical_status(status),
                created_at=datetime.fromtimestamp(control.creationTime, UTC),
            )
        )
    return controls


def _period_of(
    mapping: OpModMapping, raw: Any, span: TimeSpan, set_max_w: Decimal | None, curves: dict[str, m.DERCurve]
) -> ControlPeriod:
    match mapping.encoding:
        case Encoding.PERCENT:
            percent = Decimal(raw) / 100
            if mapping.unit.value == "kW":
                if not set_max_w:
                    raise MappingError(f"{mapping.opmod} in kW needs the DER's setMaxW")
                return ControlPeriod(span=span, value=percent / 100 * set_max_w / 1000)
            return ControlPeriod(span=span, value=percent)
        case Encoding.SIGNED_PERCENT:
            return ControlPeriod(span=span, value=Decimal(raw) / 100)
        case Encoding.ACTIVE_POWER | Encoding.REACTIVE_POWER:
            return ControlPeriod(span=span, value=kw_of(raw))
        case Encoding.FIXED_VAR:
            return ControlPeriod(span=span, value=Decimal(raw.value) / 100)
        case Encoding.POWER_FACTOR:
            pf = Decimal(raw.displacement) / 100
            return ControlPeriod(span=span, value=-pf if raw.excitation else pf)
        case Encoding.BOOLEAN:
            return ControlPeriod(span=span, value=Decimal(1 if raw else 0))
        case Encoding.CURVE:
            href = raw.href
            curve = next((c for key, c in curves.items() if href.endswith(key)), None)
            if curve is None:
                raise MappingError(f"{mapping.opmod} refers to the DERCurve at {href}, which was not given")
            return ControlPeriod(span=span, curve=curve_points(curve))
    raise MappingError(f"{mapping.opmod}: unknown encoding")


def curve_points(curve: m.DERCurve) -> list[CurvePoint]:
    return [
        CurvePoint(x=unscaled(p.xvalue, curve.xMultiplier or 0), y=unscaled(p.yvalue, curve.yMultiplier or 0))
        for p in curve.CurveData
    ]


def _canonical_status(current_status: int) -> Any:
    from gateway.model import ControlStatus

    return {
        0: ControlStatus.SCHEDULED,
        1: ControlStatus.ACTIVE,
        2: ControlStatus.CANCELLED,
        3: ControlStatus.CANCELLED,
        4: ControlStatus.SUPERSEDED,
    }.get(current_status, ControlStatus.SCHEDULED)


@dataclass(frozen=True, slots=True)
class ResponseFacts:
    """What the server knows about a Response's subject when it maps it (from its own mRIDs)."""

    control_id: str
    subject_kind: SubjectKind
    span: TimeSpan


def response_to_canonical(
    response: Any, facts: ResponseFacts, *, party_id: str, resource_id: str, message_id: str
) -> tuple[Response, Override | None]:
    """A device's Response as the canonical Response, plus an Override when it opted out (4) or stopped part way
    (8, "partially completed with opt-out"): the device opted out from the moment it said so to the end of the
    control's period, which is what the market settles as its deviation."""
    status = ResponseStatus.from_code(response.status)
    at = datetime.fromtimestamp(response.createdDateTime, UTC)
    canonical = Response(
        id=f"{message_id}-response",
        subject=Subject(kind=facts.subject_kind, id=facts.control_id),
        party_id=party_id,
        resource_id=resource_id,
        status=status,
        at=at,
    )
    if status not in OPT_OUT_STATUSES:
        return canonical, None
    start = max(facts.span.start, at) if status is ResponseStatus.PARTIAL_OPT_OUT else facts.span.start
    if start >= facts.span.end:
        start = facts.span.start
    override = Override(
        id=f"{message_id}-override",
        party_id=party_id,
        subject=Subject(kind=facts.subject_kind, id=facts.control_id),
        resource_id=resource_id,
        mode=OverrideMode.OPT_OUT,
        reason=OverrideReason.OVERRIDE_STATUS,
        reason_text=f"IEEE 2030.5 Response {response.status}",
        span=TimeSpan(start=start, duration=facts.span.end - start),
    )
    return canonical, override
