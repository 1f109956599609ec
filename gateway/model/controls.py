"""Directives to devices: legacy DR events and DER controls (:class:`Control`) and operating envelopes.

One control model serves OpenADR events (SIMPLE levels, prices, load dispatch) and 2030.5 DERControls
(opModMaxLimW, opModFixedW, opModConnect, curves...): ``kind`` says how the value is meant, ``signal`` says
what it is about, ``unit`` how to read the number. Times are free-form spans, because DR events and DER
controls are not bound to the market's uniform intervals.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from gateway.model.base import CanonicalModel, ExactDecimal, Identifier, UtcDatetime, new_id, utc_now
from gateway.model.intervals import TimeSpan

Randomization = Annotated[timedelta, Field(ge=timedelta(0), le=timedelta(hours=1))]


class ControlKind(StrEnum):
    LEVEL = "level"
    SETPOINT = "setpoint"
    LIMIT = "limit"
    CURVE = "curve"
    CONNECT = "connect"


class ControlSignal(StrEnum):
    """What a control's value is about."""

    DR_LEVEL = "dr_level"
    PRICE = "price"
    REAL_POWER = "real_power"
    REACTIVE_POWER = "reactive_power"
    POWER_FACTOR = "power_factor"
    IMPORT_POWER = "import_power"
    EXPORT_POWER = "export_power"
    STATE_OF_CHARGE = "state_of_charge"
    CONNECT = "connect"
    ENERGIZE = "energize"
    VOLT_VAR = "volt_var"
    VOLT_WATT = "volt_watt"
    FREQ_WATT = "freq_watt"
    OTHER = "other"


class ControlUnit(StrEnum):
    W = "W"
    KW = "kW"
    VAR = "var"
    KVAR = "kvar"
    PERCENT = "percent"
    LEVEL = "level"
    BOOLEAN = "boolean"
    CURRENCY_PER_KWH = "currency_per_kWh"
    POWER_FACTOR = "power_factor"


class ControlStatus(StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"


class CurvePoint(CanonicalModel):
    x: ExactDecimal
    y: ExactDecimal


class ControlPeriod(CanonicalModel):
    """One step of a control: ``value`` for level/setpoint/limit/connect, ``curve`` for curve controls."""

    span: TimeSpan
    value: ExactDecimal | None = None
    curve: list[CurvePoint] | None = Field(default=None, min_length=2)


class ControlTargets(CanonicalModel):
    """Who a control is for; an empty set of targets would be a broadcast, which must be said explicitly."""

    party_ids: list[Identifier] = Field(default_factory=list)
    resource_ids: list[Identifier] = Field(default_factory=list)
    location_ids: list[Identifier] = Field(default_factory=list)
    group_ids: list[Identifier] = Field(default_factory=list)
    broadcast: bool = False

    @model_validator(mode="after")
    def _someone(self) -> Self:
        named = self.party_ids or self.resource_ids or self.location_ids or self.group_ids
        if not named and not self.broadcast:
            raise ValueError("a control needs at least one target, or broadcast: true")
        return self


class Control(CanonicalModel):
    """A directive for a DR program or a DER. Lower ``priority`` wins (0 is highest, as in 2030.5 primacy)."""

    object_type: Literal["control"] = "control"
    id: Identifier = Field(default_factory=new_id)
    program_id: Identifier | None = None
    targets: ControlTargets
    kind: ControlKind
    signal: ControlSignal
    unit: ControlUnit
    periods: list[ControlPeriod] = Field(min_length=1, max_length=10_000)
    priority: int = Field(default=0, ge=0, le=255)
    randomize_start: Randomization = timedelta(0)
    randomize_duration: Randomization = timedelta(0)
    response_required: bool = True
    status: ControlStatus = ControlStatus.SCHEDULED
    revision: int = Field(default=0, ge=0, description="bumped on every change (OpenADR modificationNumber)")
    created_at: UtcDatetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for period in self.periods:
            if self.kind is ControlKind.CURVE:
                if period.curve is None or period.value is not None:
                    raise ValueError("a curve control needs a curve, and no value, in every period")
            elif period.value is None or period.curve is not None:
                raise ValueError(f"a {self.kind.value} control needs a value, and no curve, in every period")
            if self.kind is ControlKind.CONNECT and period.value not in (Decimal(0), Decimal(1)):
                raise ValueError("a connect control's value is 0 (disconnect) or 1 (connect)")
        spans = [p.span for p in self.periods]
        for earlier, later in itertools.pairwise(spans):
            if later.start < earlier.end:
                raise ValueError("control periods must be in time order and must not overlap")
        return self

    @property
    def span(self) -> TimeSpan:
        return TimeSpan(
            start=self.periods[0].span.start, duration=self.periods[-1].span.end - self.periods[0].span.start
        )


class EnvelopePeriod(CanonicalModel):
    """Import and export limits (kW, non-negative) over one span; a missing limit means unconstrained."""

    span: TimeSpan
    import_limit_kw: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)] | None = None
    export_limit_kw: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> Self:
        if self.import_limit_kw is None and self.export_limit_kw is None:
            raise ValueError("an envelope period needs an import limit, an export limit, or both")
        return self


class EnvelopeSource(StrEnum):
    OPERATOR = "operator"
    COMPUTED = "computed"


class OperatingEnvelope(CanonicalModel):
    """Dynamic operating envelope: time-varying import/export limits at one connection point.

    Spans, not uniform intervals, because envelope schemes use their own steps (CSIP-Aus uses 5 and 30 min).
    """

    object_type: Literal["operating_envelope"] = "operating_envelope"
    id: Identifier = Field(default_factory=new_id)
    location_id: Identifier
    resource_id: Identifier | None = None
    periods: list[EnvelopePeriod] = Field(min_length=1, max_length=10_000)
    source: EnvelopeSource = EnvelopeSource.OPERATOR
    created_at: UtcDatetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        spans = [p.span for p in self.periods]
        for earlier, later in itertools.pairwise(spans):
            if later.start < earlier.end:
                raise ValueError("envelope periods must be in time order and must not overlap")
        return self
