"""Transport ratings: what transformers and lines are rated at, read from every place CIM puts them.

Why its own module: ratings are the transport limits the market respects, and CIM spreads them widely.
A transformer is rated through its PowerTransformerEnds, or through TransformerTanks whose datasheet
(TransformerTankInfo > TransformerEndInfo) holds the windings; a line through CurrentLimits hung from
Terminals (CIMHub) or from the OperationalLimitSet side (CGMES). Each association is read from both sides,
and a value that does not parse leaves the item unrated (with a warning), never guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

from gateway.protocols.cim.numbers import MILLI, Numbers, Quantities, clean, fragment, name_of
from gateway.protocols.cim.reader import CimModel, CimObject
from gateway.protocols.cim.topology import Topology
from gateway.protocols.cim.view import Line, Transformer

_SQRT3 = Decimal(3).sqrt()
_THREE_PHASE = frozenset({"a", "b", "c"})
_SAME_VOLTAGE = Decimal("0.01")  # ends within 1% of each other count as the same rated voltage


# -- transformers ------------------------------------------------------------------------------------------


class TransformerRatings:
    """The transformers of a model (PowerTransformers, and TransformerTanks that belong to none) with their
    parts indexed by owner, so that each can be rated and told apart from a voltage regulator."""

    def __init__(self, model: CimModel, quantities: Quantities) -> None:
        self.model = model
        self.quantities = quantities
        self.objects = _transformer_objects(model)
        self._ends: dict[str, list[CimObject]] = {}
        self._tanks: dict[str, list[CimObject]] = {}
        self._tank_ends: dict[str, list[CimObject]] = {}
        self._end_infos: dict[str, list[CimObject]] = {}
        self._index_parts()
        self._voltage_regulated = self._voltage_regulated_ids()

    def _index_parts(self) -> None:
        """Ends, tanks, tank ends and datasheet windings by owner, each association read from both sides."""
        model, found = self.model, self.objects
        for end in model.of("PowerTransformerEnd"):
            self._ends.setdefault(end.ref("PowerTransformerEnd.PowerTransformer") or "", []).append(end)
        for tank in model.of("TransformerTank"):
            owner = tank.ref("TransformerTank.PowerTransformer")
            self._tanks.setdefault(owner if owner in found else tank.id, []).append(tank)
        for end in model.of("TransformerTankEnd"):
            self._tank_ends.setdefault(end.ref("TransformerTankEnd.TransformerTank") or "", []).append(end)
        for info in model.of("TransformerEndInfo"):
            for tank_info in info.refs.get("TransformerEndInfo.TransformerTankInfo", ()):
                self._end_infos.setdefault(tank_info, []).append(info)
        for tank_info in model.of("TransformerTankInfo"):
            for end_info in tank_info.refs.get("TransformerTankInfo.TransformerEndInfos", ()):
                target = model.get(end_info)
                listed = self._end_infos.setdefault(tank_info.id, [])
                if target is not None and target not in listed:
                    listed.append(target)

    def _owner_of_end(self, end: CimObject | None) -> str | None:
        if end is None:
            return None
        owner = end.ref("PowerTransformerEnd.PowerTransformer")
        if owner is None:
            tank = self.model.get(end.ref("TransformerTankEnd.TransformerTank"))
            if tank is None:
                return None
            owner = tank.ref("TransformerTank.PowerTransformer")
            return owner if owner in self.objects else tank.id
        return owner

    def _voltage_regulated_ids(self) -> set[str]:
        """Transformers with a ratio tap changer under voltage control (TapChangerControl/RegulatingControl
        mode voltage, or CGMES 2.4 tculControlMode volt)."""
        regulated: set[str] = set()
        for changer in self.model.of("RatioTapChanger"):
            control = self.model.get(changer.ref("TapChanger.TapChangerControl"))
            mode = fragment(control.attrs.get("RegulatingControl.mode")) if control else ""
            if mode in ("voltage", "volt") or fragment(changer.attrs.get("RatioTapChanger.tculControlMode")) == "volt":
                owner = self._owner_of_end(self.model.get(changer.ref("RatioTapChanger.TransformerEnd")))
                if owner:
                    regulated.add(owner)
        return regulated

    def high_side_node(self, transformer_id: str, topo: Topology) -> str | None:
        """The node of the end with the highest rated voltage (else the transformer's first terminal): where a
        substation transformer is fed when the model names no source."""
        best: tuple[Decimal, str] | None = None
        ends = self._ends.get(transformer_id, []) + [
            e for t in self._tanks.get(transformer_id, []) for e in self._tank_ends.get(t.id, ())
        ]
        for end in ends:
            kv = self.quantities.kv(end, "PowerTransformerEnd.ratedU") or self._end_base_kv(end)
            node = topo.terminal_node.get(end.ref("TransformerEnd.Terminal") or "")
            if kv is not None and node is not None and (best is None or kv > best[0]):
                best = (kv, node)
        if best is not None:
            return best[1]
        nodes = topo.equipment_nodes.get(transformer_id)
        return nodes[0] if nodes else None

    def transformer(self, obj: CimObject, feeder_id: str | None, upstream_id: str | None) -> Transformer:
        """The view of one transformer: rated at its ends' ratedS, else at the sum of its tanks."""
        ends = self._ends.get(obj.id, [])
        tanks = self._tanks.get(obj.id, [])
        if ends:
            rated = _max_positive(self.quantities.kw(e, "PowerTransformerEnd.ratedS") for e in ends)
            voltages = [self.quantities.kv(e, "PowerTransformerEnd.ratedU") or self._end_base_kv(e) for e in ends]
        else:
            rated, voltages = self._tank_ratings(tanks)
        return Transformer(
            id=obj.id,
            name=name_of(obj),
            feeder_id=feeder_id,
            rated_kva=rated,
            is_regulator=self._is_regulator(obj.id, [v for v in voltages if v]),
            rated_kv=tuple(v for v in voltages if v),
            tanks=len(tanks),
            upstream_id=upstream_id,
        )

    def _end_base_kv(self, end: CimObject) -> Decimal | None:
        return self.quantities.nominal_kv(end.ref("TransformerEnd.BaseVoltage"))

    def _tank_ratings(self, tanks: list[CimObject]) -> tuple[Decimal | None, list[Decimal | None]]:
        """A bank of tanks is rated at the sum of its tanks (each at its largest winding), and only if every
        tank's datasheet gives ratedS; voltages from the datasheet, else from the tank ends' BaseVoltage."""
        total: Decimal | None = Decimal(0) if tanks else None
        voltages: list[Decimal | None] = []
        for tank in tanks:
            info = tank.ref("TransformerTank.TransformerTankInfo") or tank.ref("PowerSystemResource.AssetDatasheet")
            infos = self._end_infos.get(info or "", [])
            tank_rating = _max_positive(self.quantities.kw(i, "TransformerEndInfo.ratedS") for i in infos)
            total = None if total is None or tank_rating is None else total + tank_rating
            voltages += [self.quantities.kv(i, "TransformerEndInfo.ratedU") for i in infos]
        if not any(voltages):
            voltages = [self._end_base_kv(e) for t in tanks for e in self._tank_ends.get(t.id, ())]
        return (clean(total) if total is not None else None), voltages

    def _is_regulator(self, transformer_id: str, voltages: list[Decimal]) -> bool:
        """A regulator has ends at one rated voltage, or a voltage-controlled tap changer and no evidence of
        different end voltages. An on-load tap changer on a 115/12.47 kV transformer does not make it a
        regulator: it still is the transformer that serves the feeder."""
        same = len(voltages) >= 2 and max(voltages) - min(voltages) <= _SAME_VOLTAGE * max(voltages)
        different = len(voltages) >= 2 and not same
        if transformer_id in self._voltage_regulated:
            return not different
        return same


def _transformer_objects(model: CimModel) -> dict[str, CimObject]:
    """PowerTransformers, and TransformerTanks that belong to none (then the tank is the transformer)."""
    found = {o.id: o for o in model.of("PowerTransformer")}
    for tank in model.of("TransformerTank"):
        if tank.ref("TransformerTank.PowerTransformer") not in found:
            found[tank.id] = tank
    return found


def _max_positive(values: Iterable[Decimal | None]) -> Decimal | None:
    known = [v for v in values if v is not None and v > 0]
    return max(known) if known else None


# -- lines and their limits --------------------------------------------------------------------------------


def lines_of(
    model: CimModel, quantities: Quantities, topo: Topology, feeder_of: Callable[[str], str | None]
) -> list[Line]:
    """Every ACLineSegment with its lowest normal current limit, and that limit in kVA where the voltage is known."""
    amps = _normal_current_limits(model, quantities.numbers, topo.terminal_equipment)
    phases = _line_phases(model)
    lines = []
    for obj in model.of("ACLineSegment"):
        kv = _line_kv(model, quantities, topo, obj)
        rated = amps.get(obj.id)
        phase_set = phases.get(obj.id, _THREE_PHASE)
        split = not phase_set & _THREE_PHASE and {"s1", "s2"} <= phase_set
        count = 2 if split else len(phase_set & _THREE_PHASE) or 3
        lines.append(
            Line(
                id=obj.id,
                name=name_of(obj),
                feeder_id=feeder_of(obj.id),
                phases=count,
                nominal_kv=kv,
                rated_amps=rated,
                rated_kva=_line_kva(rated, kv, count, split_phase=split),
            )
        )
    return lines


def _normal_current_limits(model: CimModel, numbers: Numbers, terminal_equipment: dict[str, str]) -> dict[str, Decimal]:
    """Lowest normal (not emergency) CurrentLimit per equipment, over every way a limit set is tied to it:
    OperationalLimitSet.Terminal / .Equipment (CGMES) and ACDCTerminal.OperationalLimitSet (CIMHub)."""
    set_equipment: dict[str, set[str]] = {}
    for terminal in model.of("Terminal"):
        for set_id in terminal.refs.get("ACDCTerminal.OperationalLimitSet", ()):
            if terminal.id in terminal_equipment:
                set_equipment.setdefault(set_id, set()).add(terminal_equipment[terminal.id])
    limit_sets = model.of("OperationalLimitSet")
    for limit_set in limit_sets:
        targets = set_equipment.setdefault(limit_set.id, set())
        for terminal_id in limit_set.refs.get("OperationalLimitSet.Terminal", ()):
            equipment = terminal_equipment.get(terminal_id)
            if equipment:
                targets.add(equipment)
        targets.update(limit_set.refs.get("OperationalLimitSet.Equipment", ()))
    set_amps = _set_normal_amps(model, numbers, limit_sets)
    lowest: dict[str, Decimal] = {}
    for set_id, amps in set_amps.items():
        for equipment in set_equipment.get(set_id, ()):
            if equipment not in lowest or amps < lowest[equipment]:
                lowest[equipment] = amps
    return lowest


def _set_normal_amps(model: CimModel, numbers: Numbers, limit_sets: list[CimObject]) -> dict[str, Decimal]:
    """Lowest normal current limit of each limit set, its limits found from either side of the association."""
    limits: dict[str, list[CimObject]] = {}
    for limit in model.of("CurrentLimit"):
        for prop in ("OperationalLimit.OperationalLimitSet", "CurrentLimit.OperationalLimitSet"):
            for set_id in limit.refs.get(prop, ()):
                limits.setdefault(set_id, []).append(limit)
    for limit_set in limit_sets:
        for limit_id in limit_set.refs.get("OperationalLimitSet.OperationalLimitValue", ()):
            limit = model.get(limit_id)
            if limit is not None and limit.cls == "CurrentLimit" and limit not in limits.get(limit_set.id, []):
                limits.setdefault(limit_set.id, []).append(limit)
    result: dict[str, Decimal] = {}
    for set_id, members in limits.items():
        values = [_amps(numbers, limit) for limit in members if not _is_emergency(model, limit)]
        known = [v for v in values if v is not None and v > 0]
        if known:
            result[set_id] = clean(min(known))
    return result


def _amps(numbers: Numbers, limit: CimObject) -> Decimal | None:
    normal = numbers.decimal(limit, "CurrentLimit.normalValue")
    return normal if normal is not None else numbers.decimal(limit, "CurrentLimit.value")


def _is_emergency(model: CimModel, limit: CimObject) -> bool:
    """PATL (permanent) limits are normal; TATL and tripping limits are not. Without a kind, the type's
    isInfiniteDuration or an 'emerg' in its name (CIMHub: NormAmps / EmergencyAmps) decides."""
    kind = model.follow(limit, "OperationalLimit.OperationalLimitType")
    if kind is None:
        return "emerg" in name_of(limit).lower()
    limit_kind = fragment(
        kind.attrs.get("OperationalLimitType.kind") or kind.attrs.get("OperationalLimitType.limitType")
    )
    if limit_kind:
        return limit_kind != "patl"
    if kind.attrs.get("OperationalLimitType.isInfiniteDuration", "").lower() == "false":
        return True
    return "emerg" in name_of(kind).lower() or "emerg" in name_of(limit).lower()


def _line_phases(model: CimModel) -> dict[str, frozenset[str]]:
    """Phases per line from ACLineSegmentPhase (a, b, c, n, s1, s2); lines without them are three-phase."""
    seen: dict[str, set[str]] = {}
    for phase in model.of("ACLineSegmentPhase"):
        line = phase.ref("ACLineSegmentPhase.ACLineSegment")
        if line:
            seen.setdefault(line, set()).add(fragment(phase.attrs.get("ACLineSegmentPhase.phase")))
    return {line: frozenset(phases) for line, phases in seen.items()}


def _line_kv(model: CimModel, quantities: Quantities, topo: Topology, line: CimObject) -> Decimal | None:
    """BaseVoltage of the line, else of its nodes (TopologicalNode) or their VoltageLevel."""
    kv = quantities.nominal_kv(line.ref("ConductingEquipment.BaseVoltage"))
    if kv is not None:
        return kv
    for node_id in topo.equipment_nodes.get(line.id, ()):
        node = model.get(node_id)
        kv = quantities.nominal_kv(node.ref("TopologicalNode.BaseVoltage")) if node else None
        level = model.get(topo.node_container.get(node_id))
        if kv is None and level is not None:
            kv = quantities.nominal_kv(level.ref("VoltageLevel.BaseVoltage"))
        if kv is not None:
            return kv
    return None


def _line_kva(amps: Decimal | None, kv: Decimal | None, phases: int, *, split_phase: bool = False) -> Decimal | None:
    """kVA = sqrt(3) * kV(line-line) * A for three phases; n * kV/sqrt(3) * A for 1 or 2 phases of a three-phase
    system (a lateral carries less than its ampacity times the line-line voltage); kV * A across a split-phase
    (s1-s2) secondary, whose base voltage is the 240 V across both legs."""
    if amps is None or kv is None:
        return None
    if split_phase:
        kva = kv * amps
    elif phases in (1, 2):
        kva = phases * kv * amps / _SQRT3
    else:
        kva = _SQRT3 * kv * amps
    return clean(kva.quantize(MILLI))
