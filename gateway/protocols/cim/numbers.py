"""Units and tolerant number parsing for CIM values.

Why in one place: the reader keeps every value as text, and the two families of files write quantities in
different units (CIMHub: SI, W / VA / Wh / V; CGMES: unit multipliers, MW / MVA / MWh / kV). Converting here,
once, keeps every other step in the kW / kVA / kWh / kV the view speaks. A value that does not parse never
raises (``cimpy`` crashes there; we must not): it becomes a warning naming the object and the property.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from gateway.protocols.cim.reader import CimModel, CimObject

MILLI = Decimal("0.001")

_NAME = "IdentifiedObject.name"
_MAX_EXPONENT = 30  # |value| beyond 1e30 is garbage for any grid quantity (and would overflow Decimal maths)


@dataclass(frozen=True, slots=True)
class Units:
    """Multipliers from the file's units to kW / kVA / kWh / kV (CIMHub: SI; CGMES: M for power, k for volts)."""

    power: Decimal
    voltage: Decimal
    label: str


SI = Units(MILLI, MILLI, "SI units (W, VA, Wh, V), as CIMHub writes them")
CGMES = Units(Decimal(1000), Decimal(1), "CGMES unit multipliers (MW, MVA, MWh, kV)")


def clean(value: Decimal) -> Decimal:
    """A Decimal without exponent notation or trailing zeros (5E+3 -> 5000, 2.500 -> 2.5), for people and JSON."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


class Numbers:
    """Tolerant reading of CIM text values: bad ones become warnings naming the object and property."""

    def __init__(self, warnings: list[str]) -> None:
        self.warnings = warnings

    def decimal(self, obj: CimObject, prop: str) -> Decimal | None:
        text = obj.attrs.get(prop)
        if text is None or text == "":
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            return self._bad(obj, prop, text, "is not a number")
        if not value.is_finite() or (value and abs(value.adjusted()) > _MAX_EXPONENT):
            return self._bad(obj, prop, text, "is not a usable number")
        return value

    def integer(self, obj: CimObject, prop: str) -> int | None:
        """An integer field; "3.0" is read as 3 (files written from floats do that), "3.5" is a warning."""
        value = self.decimal(obj, prop)
        if value is None:
            return None
        if value != value.to_integral_value():
            self._bad(obj, prop, obj.attrs[prop], "is not a whole number")
            return None
        return int(value)

    def _bad(self, obj: CimObject, prop: str, text: str, why: str) -> None:
        self.warnings.append(f"{obj.cls} '{name_of(obj)}' ({obj.id}): {prop} = '{text[:40]}' {why}; ignored")
        return None


class Quantities:
    """Power and voltage values in the units the view speaks, whatever units the file wrote them in.

    One instance per build: base voltages are cached, so a bad BaseVoltage is warned about once, not once per
    piece of equipment that uses it.
    """

    def __init__(self, model: CimModel, numbers: Numbers, units: Units) -> None:
        self.model = model
        self.numbers = numbers
        self.units = units
        self._base_kv: dict[str, Decimal | None] = {}

    def kw(self, obj: CimObject | None, prop: str) -> Decimal | None:
        """A power (or energy) in kW / kVA / kWh."""
        value = self.numbers.decimal(obj, prop) if obj else None
        return None if value is None else clean(value * self.units.power)

    def kv(self, obj: CimObject | None, prop: str) -> Decimal | None:
        """A voltage in kV."""
        value = self.numbers.decimal(obj, prop) if obj else None
        return None if value is None else clean(value * self.units.voltage)

    def nominal_kv(self, base_voltage_id: str | None) -> Decimal | None:
        """The nominal voltage of a BaseVoltage, in kV."""
        if base_voltage_id is None:
            return None
        if base_voltage_id not in self._base_kv:
            self._base_kv[base_voltage_id] = self.kv(self.model.get(base_voltage_id), "BaseVoltage.nominalVoltage")
        return self._base_kv[base_voltage_id]


def name_of(obj: CimObject) -> str:
    """The object's name for people: IdentifiedObject.name, else its id."""
    return obj.attrs.get(_NAME) or obj.id


def fragment(value: str | None) -> str:
    """'RegulatingControlModeKind.voltage' -> 'voltage' (enumerations arrive as URI fragments or plain text)."""
    return (value or "").rpartition(".")[2].lower()
