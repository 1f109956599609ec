"""IEEE 2030.5 objects <-> the canonical model: pure functions, driven by mappings/ieee2030_5.yaml.

Outbound, one canonical Control period becomes one DERControl (2030.5 events have a single interval) whose mRID is
minted from the control id and the period, so every poll, every device and every restart names it the same way
and a Response can be traced back. An OperatingEnvelope period becomes a DERControl with the CSIP-AUS import and
export limits. Inbound, each control mode of a DERControl is one canonical Control (the canonical control has one
signal), a Response is a canonical Response (and an opt-out, 4 or 8, also an Override), and mirrored meter
readings of average power are Deliveries.

Numbers are exact: a power is written as value x 10^multiplier with the smallest multiplier that keeps it exact
within the 16-bit value (rounded only when nothing exact fits, which the docstring of :func:`active_power` states).
"""

from __future__ import annotations

import hashlib
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


def control_mrid(control_id: str, period: int, pen: int) -> str:
    return mint_mrid(f"control:{control_id}#{period}", pen)


def envelope_mrid(envelope_id: str, period: int, pen: int) -> str:
    return mint_mrid(f"envelope:{envelope_id}#{period}", pen)


def program_mrid(program_id: str, pen: int) -> str:
    return mint_mrid(f"program:{program_id}", pen)


def curve_mrid(control_id: str, period: int, pen: int) -> str:
    return mint_mrid(f"curve:{control_id}#{period}", pen)


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


def control_to_der(
    control: Control,
    table: MappingTable,
    *,
    set_max_w: Decimal | None,
    curve_href: str = "",
    cancelled_at: int | None = None,
) -> list[RenderedControl]:
    """Each period of a canonical control as a DERControl's pieces; MappingError if this device cannot get it
    (a signal with no opmod in the table, a kW limit for a device whose setMaxW is unknown)."""
    mapping = table.outbound(control.kind, control.signal, control.unit)
    if mapping is None:
        raise MappingError(
            f"no 2030.5 control mode renders a {control.kind.value} {control.signal.value} control in"
            f" {control.unit.value} (mappings/ieee2030_5.yaml)"
        )
    pen = table.server.pen
    rendered: list[RenderedControl] = []
    for index, period in enumerate(control.periods):
        curves: list[m.DERCurve] = []
        if mapping.encoding is Encoding.CURVE:
            mrid = curve_mrid(control.id, index, pen)
            assert period.curve is not None and mapping.curve_type is not None
            curves.append(curve_of(period.curve, mapping.curve_type, mrid, _epoch(control.created_at)))
            value: Any = m.DERCurveLink(href=f"{curve_href}/{mrid}")
        else:
            assert period.value is not None
            value = encode_value(mapping, control.unit.value, period.value, set_max_w)
        rendered.append(
            RenderedControl(
                mrid=control_mrid(control.id, index, pen),
                source_id=control.id,
                period=index,
                start=_epoch(period.span.start),
                duration=int(period.span.duration.total_seconds()),
                base={mapping.opmod: value},
                description=(control.program_id or control.id)[:32],
                creation_time=_epoch(control.created_at),
                randomize_start=int(control.randomize_start.total_seconds()),
                randomize_duration=int(control.randomize_duration.total_seconds()),
                response_required=control.response_required,
                cancelled_at=cancelled_at,
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


def envelope_to_der(envelope: OperatingEnvelope, pen: int) -> list[RenderedControl]:
    """Each envelope period as a DERControl with opModImpLimW / opModExpLimW (CSIP-AUS)."""
    rendered: list[RenderedControl] = []
    for index, period in enumerate(envelope.periods):
        base: dict[str, Any] = {}
        # A limit that does not fit 16 bits is rounded down: a device keeping to it must stay within the envelope.
        if period.import_limit_kw is not None:
            base["opModImpLimW"] = active_power(period.import_limit_kw, ROUND_FLOOR)
        if period.export_limit_kw is not None:
            base["opModExpLimW"] = active_power(period.export_limit_kw, ROUND_FLOOR)
        rendered.append(
            RenderedControl(
                mrid=envelope_mrid(envelope.id, index, pen),
                source_id=envelope.id,
                period=index,
                start=_epoch(period.span.start),
                duration=int(period.span.duration.total_seconds()),
                base=base,
                description=f"envelope {envelope.location_id}"[:32],
                creation_time=_epoch(envelope.created_at),
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
