"""Units and the one place where they are converted.

Protocols disagree on units (OpenADR kW or W with an SI multiplier, 2030.5 W with a power-of-ten
multiplier, EI/CTS integers with a scale, markets in $/MWh). Canonical objects carry their unit explicitly;
conversions happen here and nowhere else so that a scale bug has exactly one home.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from decimal import Context, Decimal, getcontext, localcontext
from enum import StrEnum


class PowerUnit(StrEnum):
    """A rate of delivery: real power (W) or reactive power (var), with an SI prefix."""

    W = "W"
    KW = "kW"
    MW = "MW"
    VAR = "var"
    KVAR = "kvar"
    MVAR = "Mvar"

    @property
    def is_reactive(self) -> bool:
        return self in _REACTIVE_POWER

    @property
    def watts_per_unit(self) -> Decimal:
        return _POWER_SCALE[self]


class EnergyUnit(StrEnum):
    """The energy basis a price is quoted per (currency per kWh, per MWh, ...)."""

    WH = "Wh"
    KWH = "kWh"
    MWH = "MWh"
    VARH = "varh"
    KVARH = "kvarh"
    MVARH = "Mvarh"

    @property
    def is_reactive(self) -> bool:
        return self in _REACTIVE_ENERGY

    @property
    def wh_per_unit(self) -> Decimal:
        return _ENERGY_SCALE[self]


_REACTIVE_POWER = frozenset({PowerUnit.VAR, PowerUnit.KVAR, PowerUnit.MVAR})
_REACTIVE_ENERGY = frozenset({EnergyUnit.VARH, EnergyUnit.KVARH, EnergyUnit.MVARH})
_POWER_SCALE = {
    PowerUnit.W: Decimal(1),
    PowerUnit.KW: Decimal(1000),
    PowerUnit.MW: Decimal(1_000_000),
    PowerUnit.VAR: Decimal(1),
    PowerUnit.KVAR: Decimal(1000),
    PowerUnit.MVAR: Decimal(1_000_000),
}
_ENERGY_SCALE = {
    EnergyUnit.WH: Decimal(1),
    EnergyUnit.KWH: Decimal(1000),
    EnergyUnit.MWH: Decimal(1_000_000),
    EnergyUnit.VARH: Decimal(1),
    EnergyUnit.KVARH: Decimal(1000),
    EnergyUnit.MVARH: Decimal(1_000_000),
}


class UnitMismatch(ValueError):
    """Raised when a conversion would mix real and reactive quantities."""


def _exact(value: Decimal) -> AbstractContextManager[Context]:
    """A decimal context wide enough that scaling ``value`` by a power of ten (up to 10^6 here) rounds nothing.

    The default context keeps 28 digits, so without this a 29-digit quantity would be rounded silently.
    """
    return localcontext(prec=max(getcontext().prec, len(value.as_tuple().digits) + 7))


def convert_power(value: Decimal, from_unit: PowerUnit, to_unit: PowerUnit) -> Decimal:
    """Convert a rate exactly (Decimal arithmetic, no float round trip)."""
    if from_unit.is_reactive != to_unit.is_reactive:
        raise UnitMismatch(f"cannot convert {from_unit} to {to_unit}: real and reactive power differ")
    if from_unit is to_unit:
        return value
    with _exact(value):
        return value * from_unit.watts_per_unit / to_unit.watts_per_unit


def convert_price(value: Decimal, per: EnergyUnit, to_per: EnergyUnit) -> Decimal:
    """Convert a price quoted per one energy unit to a price per another (e.g. $/MWh -> $/kWh)."""
    if per.is_reactive != to_per.is_reactive:
        raise UnitMismatch(f"cannot convert a price per {per} to a price per {to_per}")
    if per is to_per:
        return value
    with _exact(value):
        return value * to_per.wh_per_unit / per.wh_per_unit


def scaled_integer_to_decimal(value: int, scale: int) -> Decimal:
    """Exact value of an integer with a power-of-ten scale (EI/CTS, 2030.5 multipliers): value x 10^scale."""
    exact = Decimal(value)
    with _exact(exact):
        return exact.scaleb(scale)


def decimal_to_scaled_integer(value: Decimal, scale: int) -> int:
    """The integer that, with ``scale``, represents ``value`` exactly; refuses to drop digits."""
    with _exact(value):
        scaled = value.scaleb(-scale)
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        raise ValueError(f"{value} cannot be represented with scale {scale} without losing digits")
    return int(scaled)
