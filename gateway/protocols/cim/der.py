"""The DER inventory: units behind PowerElectronicsConnections, rotating machines and smart inverters.

Why its own step: the market offers flexibility per unit, not per connection. A hybrid inverter (PV and a
battery on one PowerElectronicsConnection) is two units sharing the connection's rating, files tie units to
connections from either side, and a smart inverter end device stands for DER only where its UsagePoint has
no DER equipment of its own.
"""

from __future__ import annotations

from decimal import Decimal

from gateway.protocols.cim.numbers import Quantities, name_of
from gateway.protocols.cim.reader import CimModel, CimObject
from gateway.protocols.cim.view import Der, Point

PEC = "PowerElectronicsConnection"
MACHINE_CLASSES = ("SynchronousMachine", "AsynchronousMachine")
UNIT_CLASSES = ("BatteryUnit", "PhotovoltaicUnit", "PowerElectronicsWindUnit", "WindGeneratingUnit")
UNIT_KINDS = {"BatteryUnit": "battery", "PhotovoltaicUnit": "pv", "PowerElectronicsWindUnit": "wind"}


def der_of(model: CimModel, quantities: Quantities, points: list[Point], warnings: list[str]) -> list[Der]:
    """Units of PowerElectronicsConnections (both directions of the association), machines, and smart
    inverters whose UsagePoint has no DER equipment of its own (``points`` are the view's placed points)."""
    units_of: dict[str, list[CimObject]] = {}
    for connection in model.of(PEC):
        for unit_id in connection.refs.get("PowerElectronicsConnection.PowerElectronicsUnit", ()):
            unit = model.get(unit_id)
            if unit is not None:
                units_of.setdefault(connection.id, []).append(unit)
    for unit in model.of(*UNIT_CLASSES):
        for connection_id in unit.refs.get("PowerElectronicsUnit.PowerElectronicsConnection", ()):
            listed = units_of.setdefault(connection_id, [])
            if unit not in listed:
                listed.append(unit)
    der = []
    for connection in model.of(PEC):
        rated = quantities.kw(connection, "PowerElectronicsConnection.ratedS")
        for unit in units_of.get(connection.id, ()) or [None]:
            der.append(_unit(quantities, connection, unit, rated))
    der += [_machine(model, quantities, machine) for machine in model.of(*MACHINE_CLASSES)]
    der += _smart_inverters(points)
    return _once(der, warnings)


def _once(der: list[Der], warnings: list[str]) -> list[Der]:
    """A unit listed under two connections is one DER (the first connection), with a warning."""
    seen: dict[str, Der] = {}
    for item in der:
        if item.id in seen:
            warnings.append(
                f"{item.cls} '{item.name}' ({item.id}) belongs to two connections ({seen[item.id].point_id},"
                f" {item.point_id}); kept on the first"
            )
        else:
            seen[item.id] = item
    return list(seen.values())


def _unit(quantities: Quantities, connection: CimObject, unit: CimObject | None, rated: Decimal | None) -> Der:
    source = unit or connection
    kind = UNIT_KINDS.get(unit.cls, "wind" if "Wind" in unit.cls else "other") if unit else "other"
    battery = unit is not None and unit.cls == "BatteryUnit"
    return Der(
        id=source.id,
        name=name_of(source),
        kind=kind,
        cls=source.cls,
        point_id=connection.id,
        rated_kva=rated,
        max_kw=quantities.kw(unit, "PowerElectronicsUnit.maxP"),
        min_kw=quantities.kw(unit, "PowerElectronicsUnit.minP"),
        energy_kwh=quantities.kw(unit, "BatteryUnit.ratedE") if battery else None,
        stored_kwh=quantities.kw(unit, "BatteryUnit.storedE") if battery else None,
    )


def _machine(model: CimModel, quantities: Quantities, machine: CimObject) -> Der:
    unit = model.follow(machine, "RotatingMachine.GeneratingUnit")
    return Der(
        id=machine.id,
        name=name_of(machine),
        kind="generator",
        cls=machine.cls,
        point_id=machine.id,
        rated_kva=machine_kw(quantities, machine, "ratedS"),
        max_kw=quantities.kw(unit, "GeneratingUnit.maxOperatingP"),
        min_kw=quantities.kw(unit, "GeneratingUnit.minOperatingP"),
    )


def machine_kw(quantities: Quantities, machine: CimObject, name: str) -> Decimal | None:
    """RotatingMachine.<name>, or the subclass spelling some exporters use (SynchronousMachine.ratedS)."""
    inherited = f"RotatingMachine.{name}"
    return quantities.kw(machine, inherited if inherited in machine.attrs else f"{machine.cls}.{name}")


def _smart_inverters(points: list[Point]) -> list[Der]:
    with_der = {p.usage_point_id for p in points if p.kind in ("der", "generator") and p.usage_point_id}
    return [
        Der(id=p.id, name=p.name, kind="smart_inverter", cls=p.cls, point_id=p.id)
        for p in points
        if p.kind == "smart_inverter" and p.usage_point_id not in with_der
    ]
