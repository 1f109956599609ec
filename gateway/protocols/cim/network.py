"""The network view of a CIM model: feeders, serving transformers, ratings, points of use and DER.

Why a view of its own: the market needs three things a CIM file only holds implicitly. Where each point of use
sits (substation > feeder > serving transformer), which transport limits stand between it and the source, and
what DER it has. CIM spreads these over terminals, containers, tanks, datasheets and limit sets, and the two
families of files we read spell them differently:

* CIMHub distribution feeders (CIM100): node-breaker topology on ConnectivityNodes, equipment in a Feeder
  container, transformers as PowerTransformerEnds or as TransformerTanks with a TransformerTankInfo datasheet,
  limits hung from Terminals, SI units (W, VA, Wh, V).
* CGMES transmission models (2.4.15, 3.0): bus-branch TopologicalNodes (TP profile), VoltageLevel/Substation
  containers and no Feeder, limits hung from the OperationalLimitSet side, unit multipliers (MW, MVA, kV).

So everything below reads both directions of an association and both spellings, converts units in one place
(:class:`_Units`), and never raises on a bad value: a number that does not parse is a warning naming the
object and the property (``cimpy`` crashes there; we must not).

Topology is the normal state: a switch is open when ``Switch.normalOpen`` says so (``Switch.open`` only when
the normal state is not given); present-state differences are noted, not followed.
"""

from __future__ import annotations

import gc
import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.model import Location, LocationKind, LocationTree, Ratings, Resource, ResourceKind
from gateway.protocols.cim.reader import CimModel, CimObject

CONSUMER_CLASSES = ("EnergyConsumer", "ConformLoad", "NonConformLoad", "StationSupply")
MACHINE_CLASSES = ("SynchronousMachine", "AsynchronousMachine")
PEC = "PowerElectronicsConnection"
UNIT_CLASSES = ("BatteryUnit", "PhotovoltaicUnit", "PowerElectronicsWindUnit", "WindGeneratingUnit")
UNIT_KINDS = {"BatteryUnit": "battery", "PhotovoltaicUnit": "pv", "PowerElectronicsWindUnit": "wind"}
USAGE_POINT = "UsagePoint"
END_DEVICE_CLASSES = ("EndDevice", "Meter")
INJECTION_CLASSES = ("ExternalNetworkInjection", "EquivalentInjection")

# The view's DER kinds, as canonical resource kinds (the view keeps "wind" and "smart_inverter" for people).
RESOURCE_KINDS = {
    "pv": ResourceKind.PV,
    "battery": ResourceKind.BATTERY,
    "wind": ResourceKind.GENERATOR,
    "generator": ResourceKind.GENERATOR,
    "smart_inverter": ResourceKind.OTHER,
    "other": ResourceKind.OTHER,
}

_NAME = "IdentifiedObject.name"
_SQRT3 = Decimal(3).sqrt()
_MILLI = Decimal("0.001")
_THREE_PHASE = frozenset({"a", "b", "c"})
_SAME_VOLTAGE = Decimal("0.01")  # ends within 1% of each other count as the same rated voltage
_MAX_EXPONENT = 30  # |value| beyond 1e30 is garbage for any grid quantity (and would overflow Decimal maths)
_MAX_NAMES_IN_NOTE = 10


# -- the view ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Substation:
    id: str
    name: str


@dataclass(slots=True)
class Feeder:
    """A CIM Feeder, or a pseudo-feeder (``pseudo``) standing for a substation's buses or a fed island."""

    id: str
    name: str
    substation_id: str | None
    nodes: int = 0
    equipment: int = 0
    points: int = 0
    transformers: int = 0
    head_id: str | None = None  # the line or transformer through which the feeder is entered
    rating_kva: Decimal | None = None  # the head's rating
    pseudo: bool = False


@dataclass(slots=True)
class Transformer:
    """A PowerTransformer (its ends or its tanks), or a TransformerTank that belongs to none."""

    id: str
    name: str
    feeder_id: str | None
    rated_kva: Decimal | None
    is_regulator: bool
    rated_kv: tuple[Decimal, ...] = ()  # per end, where known
    tanks: int = 0
    upstream_id: str | None = None  # the nearest transformer (regulators included) towards the source


@dataclass(slots=True)
class Line:
    """An ACLineSegment with its lowest normal current limit, in A and (where the voltage is known) kVA."""

    id: str
    name: str
    feeder_id: str | None
    phases: int
    nominal_kv: Decimal | None
    rated_amps: Decimal | None
    rated_kva: Decimal | None


@dataclass(slots=True)
class Point:
    """A point of use: a load, a DER connection, a machine, a UsagePoint or an EndDevice.

    ``transformer_id`` is the serving transformer (the nearest upstream one that is not a regulator) and
    ``transformer_path`` every transformer from the source down to the nearest one, regulators included.
    ``usage_point_id`` ties equipment and end devices to the UsagePoint that stands for their customer.
    """

    id: str
    cls: str
    name: str
    kind: str  # load | der | generator | usage_point | meter | smart_inverter
    feeder_id: str | None
    transformer_id: str | None
    p_kw: Decimal | None = None
    node_id: str | None = None
    transformer_path: tuple[str, ...] = ()
    usage_point_id: str | None = None


@dataclass(slots=True)
class Der:
    """One DER unit. A hybrid inverter (PV + battery on one PowerElectronicsConnection) gives two entries that
    share the connection's ``rated_kva``."""

    id: str
    name: str
    kind: str  # pv | battery | wind | generator | smart_inverter | other
    cls: str
    point_id: str  # the PowerElectronicsConnection, machine or end device it is connected through
    rated_kva: Decimal | None = None
    max_kw: Decimal | None = None
    min_kw: Decimal | None = None
    energy_kwh: Decimal | None = None
    stored_kwh: Decimal | None = None


@dataclass(slots=True)
class Coverage:
    lines: int = 0
    lines_rated: int = 0
    lines_rated_kva: int = 0
    transformers: int = 0
    transformers_rated: int = 0
    regulators: int = 0
    points: int = 0
    points_on_feeder: int = 0
    points_with_transformer: int = 0
    der: int = 0
    der_rated: int = 0


@dataclass(slots=True)
class NetworkView:
    substations: list[Substation] = field(default_factory=list)
    feeders: list[Feeder] = field(default_factory=list)
    transformers: list[Transformer] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    der: list[Der] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    open_switches: list[str] = field(default_factory=list)
    nodes: int = 0
    topology: str = "ConnectivityNode"  # or "TopologicalNode"
    units: str = ""
    coverage: Coverage = field(default_factory=Coverage)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# -- units and numbers -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Units:
    """Multipliers from the file's units to kW / kVA / kWh / kV (CIMHub: SI; CGMES: M for power, k for volts)."""

    power: Decimal
    voltage: Decimal
    label: str


_SI = _Units(_MILLI, _MILLI, "SI units (W, VA, Wh, V), as CIMHub writes them")
_CGMES = _Units(Decimal(1000), Decimal(1), "CGMES unit multipliers (MW, MVA, MWh, kV)")


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


def name_of(obj: CimObject) -> str:
    return obj.attrs.get(_NAME) or obj.id


def _fragment(value: str | None) -> str:
    """'RegulatingControlModeKind.voltage' -> 'voltage' (enumerations arrive as URI fragments or plain text)."""
    return (value or "").rpartition(".")[2].lower()


# -- topology ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Topology:
    """The undirected graph node <-> equipment that terminals make."""

    kind: str
    equipment_nodes: dict[str, list[str]]
    node_equipment: dict[str, list[str]]
    terminal_node: dict[str, str]
    terminal_equipment: dict[str, str]
    node_container: dict[str, str]


def _topology(model: CimModel, numbers: Numbers) -> _Topology:
    """Terminals on ConnectivityNodes when every terminal has one (node-breaker, CIMHub, CGMES 3 EQ),
    otherwise on TopologicalNodes (bus-branch, CGMES TP), reaching a TN through its CN where needed."""
    terminals = [t for t in model.of("Terminal") if t.refs.get("Terminal.ConductingEquipment")]
    use_cn = all(t.refs.get("Terminal.ConnectivityNode") for t in terminals)
    kind = "ConnectivityNode" if use_cn else "TopologicalNode"
    terminals.sort(key=lambda t: numbers.integer(t, "ACDCTerminal.sequenceNumber") or 0)
    topo = _Topology(kind, {}, {}, {}, {}, {})
    for terminal in terminals:
        equipment = terminal.refs["Terminal.ConductingEquipment"][0]
        node = _terminal_node(model, terminal, use_cn)
        topo.terminal_equipment[terminal.id] = equipment
        nodes = topo.equipment_nodes.setdefault(equipment, [])
        if node is None:
            continue
        topo.terminal_node[terminal.id] = node
        if node not in nodes:
            nodes.append(node)
            topo.node_equipment.setdefault(node, []).append(equipment)
    for node in topo.node_equipment:
        container = _node_container(model, node)
        if container:
            topo.node_container[node] = container
    return topo


def _terminal_node(model: CimModel, terminal: CimObject, use_cn: bool) -> str | None:
    cn = terminal.ref("Terminal.ConnectivityNode")
    if use_cn:
        return cn
    tn = terminal.ref("Terminal.TopologicalNode")
    if tn is None and cn is not None:
        cn_obj = model.get(cn)
        tn = cn_obj.ref("ConnectivityNode.TopologicalNode") if cn_obj else None
    return tn or cn


def _node_container(model: CimModel, node_id: str) -> str | None:
    node = model.get(node_id)
    if node is None:
        return None
    return node.ref("ConnectivityNode.ConnectivityNodeContainer") or node.ref(
        "TopologicalNode.ConnectivityNodeContainer"
    )


def _is_open(switch: CimObject) -> bool:
    normal = switch.attrs.get("Switch.normalOpen")
    state = normal if normal is not None else switch.attrs.get("Switch.open")
    return (state or "").lower() == "true"


def _components(topo: _Topology, blocked: set[str]) -> dict[str, int]:
    """Island number of every node, walking through everything but open switches."""
    island: dict[str, int] = {}
    count = 0
    for start in topo.node_equipment:
        if start in island:
            continue
        island[start] = count
        stack = [start]
        while stack:
            node = stack.pop()
            for equipment in topo.node_equipment[node]:
                if equipment in blocked:
                    continue
                for other in topo.equipment_nodes[equipment]:
                    if other not in island:
                        island[other] = count
                        stack.append(other)
        count += 1
    return island


# -- the walk from the sources -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Walk:
    """What a breadth-first walk from the sources learns: depth, nearest transformer, feeder and substation."""

    depth: dict[str, int] = field(default_factory=dict)
    nearest_xf: dict[str, str | None] = field(default_factory=dict)
    feeder: dict[str, str | None] = field(default_factory=dict)
    substation: dict[str, str | None] = field(default_factory=dict)
    entered: dict[str, str] = field(default_factory=dict)  # equipment -> the node it was reached from
    upstream_xf: dict[str, str | None] = field(default_factory=dict)
    feeder_substation: dict[str, str | None] = field(default_factory=dict)


class _Containers:
    """Resolves an EquipmentContainer to (feeder, substation): Feeder, VoltageLevel, Bay, Substation."""

    def __init__(self, model: CimModel) -> None:
        self.model = model
        self._cache: dict[str, tuple[str | None, str | None]] = {}

    def resolve(self, container_id: str | None) -> tuple[str | None, str | None]:
        if container_id is None:
            return None, None
        cached = self._cache.get(container_id)
        if cached is None:
            cached = self._resolve(container_id, 0)
            self._cache[container_id] = cached
        return cached

    def _resolve(self, container_id: str, depth: int) -> tuple[str | None, str | None]:
        obj = self.model.get(container_id)
        if obj is None or depth > 4:
            return None, None
        if obj.cls == "Feeder":
            return obj.id, obj.ref("Feeder.NormalEnergizingSubstation")
        if obj.cls == "Substation":
            return None, obj.id
        if obj.cls == "VoltageLevel":
            return None, obj.ref("VoltageLevel.Substation")
        if obj.cls == "Bay":
            if obj.ref("Bay.Substation"):
                return None, obj.ref("Bay.Substation")
            return self._resolve(obj.ref("Bay.VoltageLevel") or "", depth + 1)
        return None, None

    def of_equipment(self, obj: CimObject | None) -> tuple[str | None, str | None]:
        return self.resolve(obj.ref("Equipment.EquipmentContainer")) if obj else (None, None)


def _walk(
    topo: _Topology,
    containers: _Containers,
    roots: list[str],
    walk: _Walk,
    blocked: set[str],
    transformers: set[str],
    model: CimModel,
) -> None:
    """Breadth-first from ``roots`` (one island): the nearest transformer changes at each transformer crossed,
    the feeder label at each node or piece of equipment that sits in a Feeder container."""
    queue: deque[str] = deque()
    for root in roots:
        if root not in walk.depth:
            feeder, substation = containers.resolve(topo.node_container.get(root))
            _label(walk, root, 0, None, feeder, substation)
            queue.append(root)
    while queue:
        node = queue.popleft()
        for equipment in topo.node_equipment[node]:
            if equipment in walk.entered or equipment in blocked:
                continue
            walk.entered[equipment] = node
            nearest = walk.nearest_xf[node]
            if equipment in transformers:
                walk.upstream_xf[equipment] = nearest
                nearest = equipment
            eq_feeder, _ = containers.of_equipment(model.get(equipment))
            for other in topo.equipment_nodes[equipment]:
                if other in walk.depth:
                    continue
                feeder, substation = containers.resolve(topo.node_container.get(other))
                if feeder is None and substation is None:
                    feeder, substation = eq_feeder or walk.feeder[node], walk.substation[node]
                if feeder is not None and feeder != walk.feeder[node]:
                    walk.feeder_substation.setdefault(feeder, walk.substation[node])
                _label(walk, other, walk.depth[node] + 1, nearest, feeder, substation)
                queue.append(other)


def _label(walk: _Walk, node: str, depth: int, nearest: str | None, feeder: str | None, substation: str | None) -> None:
    walk.depth[node] = depth
    walk.nearest_xf[node] = nearest
    walk.feeder[node] = feeder
    walk.substation[node] = substation


# -- the builder -------------------------------------------------------------------------------------------


class _Builder:
    """One pass of :func:`build_network` over one model; small steps, each reading both CIM spellings."""

    def __init__(self, model: CimModel, warnings: list[str]) -> None:
        self.model = model
        self.numbers = Numbers(warnings)
        self.warnings = warnings
        self.units = _CGMES if model.headers else _SI
        self.view = NetworkView(units=self.units.label, warnings=warnings)
        self.containers = _Containers(model)
        self.topo = _topology(model, self.numbers)
        self.view.topology = self.topo.kind
        self.view.nodes = len(self.topo.node_equipment)
        self._base_kv: dict[str, Decimal | None] = {}
        self._consumer_phases: dict[str, list[CimObject]] = {}
        for phase in model.of("EnergyConsumerPhase"):
            self._consumer_phases.setdefault(phase.ref("EnergyConsumerPhase.EnergyConsumer") or "", []).append(phase)
        self._pseudo_names: dict[str, str] = {}

    # numbers in the units the view speaks
    def kw(self, obj: CimObject | None, prop: str) -> Decimal | None:
        value = self.numbers.decimal(obj, prop) if obj else None
        return None if value is None else clean(value * self.units.power)

    def kv(self, obj: CimObject | None, prop: str) -> Decimal | None:
        value = self.numbers.decimal(obj, prop) if obj else None
        return None if value is None else clean(value * self.units.voltage)

    def nominal_kv(self, base_voltage_id: str | None) -> Decimal | None:
        if base_voltage_id is None:
            return None
        if base_voltage_id not in self._base_kv:
            self._base_kv[base_voltage_id] = self.kv(self.model.get(base_voltage_id), "BaseVoltage.nominalVoltage")
        return self._base_kv[base_voltage_id]

    def build(self) -> NetworkView:
        view = self.view
        view.substations = [Substation(s.id, name_of(s)) for s in self.model.of("Substation")]
        xf_objects = self._transformer_objects()
        blocked = self._open_switches()
        walk = self._walk_from_sources(set(xf_objects), blocked)
        view.transformers = [self._transformer(xf, walk) for xf in xf_objects.values()]
        regulators = {t.id for t in view.transformers if t.is_regulator}
        view.lines = self._lines(walk)
        view.points = self._points(walk, regulators)
        view.der = self._der()
        view.feeders = self._feeders(walk)
        view.coverage = self._coverage()
        self._note_coverage()
        return view

    # -- sources, switches, walk

    def _open_switches(self) -> set[str]:
        """Any equipment with a Switch state (Breaker, Fuse, LoadBreakSwitch, Disconnector...); only equipment
        with terminals can break anything, so only that is looked at."""
        candidates = (self.model.get(e) for e in self.topo.equipment_nodes)
        switches = [o for o in candidates if o and ("Switch.normalOpen" in o.attrs or "Switch.open" in o.attrs)]
        blocked = {s.id for s in switches if _is_open(s)}
        self.view.open_switches = [s.id for s in switches if s.id in blocked]
        if blocked:
            names = [name_of(s) for s in switches if s.id in blocked]
            more = f" and {len(names) - _MAX_NAMES_IN_NOTE} more" if len(names) > _MAX_NAMES_IN_NOTE else ""
            self.view.notes.append(
                f"{len(blocked)} normally open switch(es) break connectivity: "
                + ", ".join(names[:_MAX_NAMES_IN_NOTE])
                + more
            )
        differ = [
            name_of(s)
            for s in switches
            if "Switch.normalOpen" in s.attrs
            and "Switch.open" in s.attrs
            and s.attrs["Switch.normalOpen"].lower() != s.attrs["Switch.open"].lower()
        ]
        if differ:
            self.view.notes.append(
                f"{len(differ)} switch(es) are not in their normal state (normal state followed): "
                + ", ".join(differ[:_MAX_NAMES_IN_NOTE])
            )
        loose = sum(
            1 for t in self.model.of("Terminal") if t.attrs.get("ACDCTerminal.connected", "").lower() == "false"
        )
        if loose:
            self.view.notes.append(f"{loose} terminal(s) are disconnected in the present state (normal state followed)")
        return blocked

    def _sources(self, xf_ids: set[str]) -> tuple[dict[str, list[str]], str]:
        """Source -> the nodes the walk starts from: EnergySource (CIMHub); else external network injections
        and machines (CGMES, bus-branch); else the high-voltage side of transformers in a Substation."""
        topo = self.topo
        for classes, label in (
            (("EnergySource",), "EnergySource"),
            ((*INJECTION_CLASSES, *MACHINE_CLASSES), "external network injections and machines"),
        ):
            found = {
                o.id: topo.equipment_nodes[o.id] for o in self.model.of(*classes) if topo.equipment_nodes.get(o.id)
            }
            if found:
                return found, label
        in_substation = [x for x in xf_ids if self.containers.of_equipment(self.model.get(x))[1]]
        found = {x: [node] for x in in_substation if (node := self._high_side_node(x))}
        return found, "high-voltage sides of substation transformers"

    def _high_side_node(self, transformer_id: str) -> str | None:
        """The node of the end with the highest rated voltage (else the transformer's first terminal)."""
        best: tuple[Decimal, str] | None = None
        ends = self._ends.get(transformer_id, []) + [
            e for t in self._tanks.get(transformer_id, []) for e in self._tank_ends.get(t.id, ())
        ]
        for end in ends:
            kv = self.kv(end, "PowerTransformerEnd.ratedU") or self._end_base_kv(end)
            node = self.topo.terminal_node.get(end.ref("TransformerEnd.Terminal") or "")
            if kv is not None and node is not None and (best is None or kv > best[0]):
                best = (kv, node)
        if best is not None:
            return best[1]
        nodes = self.topo.equipment_nodes.get(transformer_id)
        return nodes[0] if nodes else None

    def _walk_from_sources(self, xf_ids: set[str], blocked: set[str]) -> _Walk:
        topo, view = self.topo, self.view
        sources, label = self._sources(xf_ids)
        view.sources = list(sources)
        island = _components(topo, blocked)
        roots: dict[int, list[str]] = {}
        for nodes in sources.values():
            for node in nodes:
                roots.setdefault(island[node], []).append(node)
        walk = _Walk()
        for number in sorted(roots):
            _walk(topo, self.containers, roots[number], walk, blocked, xf_ids, self.model)
        view.notes.append(f"topology on {topo.kind}s ({view.nodes} nodes); sources: {len(sources)} {label}")
        if label != "EnergySource":
            view.notes.append(
                "several sources in a meshed network: a point's serving transformer is the nearest one on a"
                " shortest path from any source, indicative only"
            )
        view.notes.append(f"values read in {self.units.label}")
        self._walk_unfed(walk, island, blocked, xf_ids)
        self._pseudo_feeders(walk, island, roots)
        return walk

    def _walk_unfed(self, walk: _Walk, island: dict[str, int], blocked: set[str], xf_ids: set[str]) -> None:
        """Islands no source feeds (behind open switches, or no source at all) are walked from their first node,
        so their points still get a feeder; their serving transformers are then only indicative."""
        unfed: dict[int, list[str]] = {}
        for node, number in island.items():
            if node not in walk.depth:
                unfed.setdefault(number, []).append(node)
        for nodes in unfed.values():
            _walk(self.topo, self.containers, nodes[:1], walk, blocked, xf_ids, self.model)
        if unfed:
            count = sum(len(n) for n in unfed.values())
            self.view.notes.append(f"{len(unfed)} island(s) with {count} node(s) are fed by no source")

    def _pseudo_feeders(self, walk: _Walk, island: dict[str, int], roots: dict[int, list[str]]) -> None:
        """Nodes outside any Feeder: one pseudo-feeder per substation (its buses) or, with no substation either,
        one per island, named after the island's container or source."""
        names: dict[str, str] = {}
        subs = {s.id: s.name for s in self.view.substations}
        for node, feeder in walk.feeder.items():
            if feeder is not None:
                continue
            substation = walk.substation[node]
            if substation is not None:
                key = f"substation:{substation}"
                names.setdefault(key, f"{subs.get(substation, substation)} (substation buses)")
            else:
                key = f"island:{island[node]}"
                names.setdefault(key, self._island_name(island[node], roots, node))
            walk.feeder[node] = key
            walk.feeder_substation.setdefault(key, substation)
        self._pseudo_names = names
        if names:
            has_feeders = bool(self.model.of("Feeder"))
            what = "nodes outside any Feeder" if has_feeders else "no Feeder objects in the model"
            self.view.notes.append(
                f"{what}: {len(names)} pseudo-feeder(s), one per substation (its VoltageLevel/Substation"
                " containers) or per island fed by a source"
            )

    def _island_name(self, number: int, roots: dict[int, list[str]], node: str) -> str:
        container = self.model.get(self.topo.node_container.get(node))
        if container is not None and container.cls != "Line":  # a Line container names a boundary tie, not an island
            return f"{name_of(container)} (island {number + 1})"
        sources = set(self.view.sources)
        for root in roots.get(number, ()):
            for equipment in self.topo.node_equipment.get(root, ()):
                if equipment in sources:
                    obj = self.model.get(equipment)
                    return f"{name_of(obj) if obj else equipment} (island {number + 1})"
        return f"island {number + 1}"

    def _feeder_of(self, equipment_id: str, walk: _Walk) -> str | None:
        """A Feeder container first, else the label of the node it was reached from (or its first node)."""
        feeder, _ = self.containers.of_equipment(self.model.get(equipment_id))
        if feeder is not None:
            return feeder
        node = walk.entered.get(equipment_id)
        if node is None:
            nodes = self.topo.equipment_nodes.get(equipment_id) or [None]
            node = nodes[0]
        return walk.feeder.get(node) if node else None

    # -- transformers

    def _transformer_objects(self) -> dict[str, CimObject]:
        """PowerTransformers, and TransformerTanks that belong to none (then the tank is the transformer)."""
        found = {o.id: o for o in self.model.of("PowerTransformer")}
        for tank in self.model.of("TransformerTank"):
            if tank.ref("TransformerTank.PowerTransformer") not in found:
                found[tank.id] = tank
        self._index_transformer_parts(found)
        self._voltage_tap_changers = self._voltage_regulated(found)
        return found

    def _index_transformer_parts(self, found: dict[str, CimObject]) -> None:
        """Ends, tanks, tank ends and datasheet windings by owner, each association read from both sides."""
        self._ends: dict[str, list[CimObject]] = {}
        self._tanks: dict[str, list[CimObject]] = {}
        for end in self.model.of("PowerTransformerEnd"):
            self._ends.setdefault(end.ref("PowerTransformerEnd.PowerTransformer") or "", []).append(end)
        for tank in self.model.of("TransformerTank"):
            owner = tank.ref("TransformerTank.PowerTransformer")
            self._tanks.setdefault(owner if owner in found else tank.id, []).append(tank)
        self._tank_ends: dict[str, list[CimObject]] = {}
        for end in self.model.of("TransformerTankEnd"):
            self._tank_ends.setdefault(end.ref("TransformerTankEnd.TransformerTank") or "", []).append(end)
        self._end_infos: dict[str, list[CimObject]] = {}
        for info in self.model.of("TransformerEndInfo"):
            for tank_info in info.refs.get("TransformerEndInfo.TransformerTankInfo", ()):
                self._end_infos.setdefault(tank_info, []).append(info)
        for tank_info in self.model.of("TransformerTankInfo"):
            for end_info in tank_info.refs.get("TransformerTankInfo.TransformerEndInfos", ()):
                target = self.model.get(end_info)
                listed = self._end_infos.setdefault(tank_info.id, [])
                if target is not None and target not in listed:
                    listed.append(target)

    def _owner_of_end(self, end: CimObject | None, transformers: dict[str, CimObject]) -> str | None:
        if end is None:
            return None
        owner = end.ref("PowerTransformerEnd.PowerTransformer")
        if owner is None:
            tank = self.model.get(end.ref("TransformerTankEnd.TransformerTank"))
            if tank is None:
                return None
            owner = tank.ref("TransformerTank.PowerTransformer")
            return owner if owner in transformers else tank.id
        return owner

    def _voltage_regulated(self, transformers: dict[str, CimObject]) -> set[str]:
        """Transformers with a ratio tap changer under voltage control (TapChangerControl/RegulatingControl
        mode voltage, or CGMES 2.4 tculControlMode volt)."""
        regulated: set[str] = set()
        for changer in self.model.of("RatioTapChanger"):
            control = self.model.get(changer.ref("TapChanger.TapChangerControl"))
            mode = _fragment(control.attrs.get("RegulatingControl.mode")) if control else ""
            if mode in ("voltage", "volt") or _fragment(changer.attrs.get("RatioTapChanger.tculControlMode")) == "volt":
                owner = self._owner_of_end(self.model.get(changer.ref("RatioTapChanger.TransformerEnd")), transformers)
                if owner:
                    regulated.add(owner)
        return regulated

    def _transformer(self, obj: CimObject, walk: _Walk) -> Transformer:
        ends = self._ends.get(obj.id, [])
        tanks = self._tanks.get(obj.id, [])
        if ends:
            rated = self._max(self.kw(e, "PowerTransformerEnd.ratedS") for e in ends)
            voltages = [self.kv(e, "PowerTransformerEnd.ratedU") or self._end_base_kv(e) for e in ends]
        else:
            rated, voltages = self._tank_ratings(tanks)
        return Transformer(
            id=obj.id,
            name=name_of(obj),
            feeder_id=self._feeder_of(obj.id, walk),
            rated_kva=rated,
            is_regulator=self._is_regulator(obj.id, [v for v in voltages if v]),
            rated_kv=tuple(v for v in voltages if v),
            tanks=len(tanks),
            upstream_id=walk.upstream_xf.get(obj.id),
        )

    def _end_base_kv(self, end: CimObject) -> Decimal | None:
        return self.nominal_kv(end.ref("TransformerEnd.BaseVoltage"))

    def _tank_ratings(self, tanks: list[CimObject]) -> tuple[Decimal | None, list[Decimal | None]]:
        """A bank of tanks is rated at the sum of its tanks (each at its largest winding), and only if every
        tank's datasheet gives ratedS; voltages from the datasheet, else from the tank ends' BaseVoltage."""
        total: Decimal | None = Decimal(0) if tanks else None
        voltages: list[Decimal | None] = []
        for tank in tanks:
            info = tank.ref("TransformerTank.TransformerTankInfo") or tank.ref("PowerSystemResource.AssetDatasheet")
            infos = self._end_infos.get(info or "", [])
            tank_rating = self._max(self.kw(i, "TransformerEndInfo.ratedS") for i in infos)
            total = None if total is None or tank_rating is None else total + tank_rating
            voltages += [self.kv(i, "TransformerEndInfo.ratedU") for i in infos]
        if not any(voltages):
            voltages = [self._end_base_kv(e) for t in tanks for e in self._tank_ends.get(t.id, ())]
        return (clean(total) if total is not None else None), voltages

    def _is_regulator(self, transformer_id: str, voltages: list[Decimal]) -> bool:
        """A regulator has ends at one rated voltage, or a voltage-controlled tap changer and no evidence of
        different end voltages. An on-load tap changer on a 115/12.47 kV transformer does not make it a
        regulator: it still is the transformer that serves the feeder."""
        same = len(voltages) >= 2 and max(voltages) - min(voltages) <= _SAME_VOLTAGE * max(voltages)
        different = len(voltages) >= 2 and not same
        if transformer_id in self._voltage_tap_changers:
            return not different
        return same

    @staticmethod
    def _max(values: Iterable[Decimal | None]) -> Decimal | None:
        known = [v for v in values if v is not None and v > 0]
        return max(known) if known else None

    # -- lines and their limits

    def _lines(self, walk: _Walk) -> list[Line]:
        amps = self._normal_current_limits()
        phases = self._line_phases()
        lines = []
        for obj in self.model.of("ACLineSegment"):
            kv = self._line_kv(obj)
            rated = amps.get(obj.id)
            phase_set = phases.get(obj.id, _THREE_PHASE)
            split = not phase_set & _THREE_PHASE and {"s1", "s2"} <= phase_set
            count = 2 if split else len(phase_set & _THREE_PHASE) or 3
            lines.append(
                Line(
                    id=obj.id,
                    name=name_of(obj),
                    feeder_id=self._feeder_of(obj.id, walk),
                    phases=count,
                    nominal_kv=kv,
                    rated_amps=rated,
                    rated_kva=_line_kva(rated, kv, count, split_phase=split),
                )
            )
        return lines

    def _normal_current_limits(self) -> dict[str, Decimal]:
        """Lowest normal (not emergency) CurrentLimit per equipment, over every way a limit set is tied to it:
        OperationalLimitSet.Terminal / .Equipment (CGMES) and ACDCTerminal.OperationalLimitSet (CIMHub)."""
        set_equipment: dict[str, set[str]] = {}
        terminal_equipment = self.topo.terminal_equipment
        for terminal in self.model.of("Terminal"):
            for set_id in terminal.refs.get("ACDCTerminal.OperationalLimitSet", ()):
                if terminal.id in terminal_equipment:
                    set_equipment.setdefault(set_id, set()).add(terminal_equipment[terminal.id])
        limit_sets = self.model.of("OperationalLimitSet")
        for limit_set in limit_sets:
            targets = set_equipment.setdefault(limit_set.id, set())
            for terminal_id in limit_set.refs.get("OperationalLimitSet.Terminal", ()):
                equipment = terminal_equipment.get(terminal_id)
                if equipment:
                    targets.add(equipment)
            targets.update(limit_set.refs.get("OperationalLimitSet.Equipment", ()))
        set_amps = self._set_normal_amps(limit_sets)
        lowest: dict[str, Decimal] = {}
        for set_id, amps in set_amps.items():
            for equipment in set_equipment.get(set_id, ()):
                if equipment not in lowest or amps < lowest[equipment]:
                    lowest[equipment] = amps
        return lowest

    def _set_normal_amps(self, limit_sets: list[CimObject]) -> dict[str, Decimal]:
        limits: dict[str, list[CimObject]] = {}
        for limit in self.model.of("CurrentLimit"):
            for prop in ("OperationalLimit.OperationalLimitSet", "CurrentLimit.OperationalLimitSet"):
                for set_id in limit.refs.get(prop, ()):
                    limits.setdefault(set_id, []).append(limit)
        for limit_set in limit_sets:
            for limit_id in limit_set.refs.get("OperationalLimitSet.OperationalLimitValue", ()):
                limit = self.model.get(limit_id)
                if limit is not None and limit.cls == "CurrentLimit" and limit not in limits.get(limit_set.id, []):
                    limits.setdefault(limit_set.id, []).append(limit)
        result: dict[str, Decimal] = {}
        for set_id, members in limits.items():
            values = [self._amps(limit) for limit in members if not self._is_emergency(limit)]
            known = [v for v in values if v is not None and v > 0]
            if known:
                result[set_id] = clean(min(known))
        return result

    def _amps(self, limit: CimObject) -> Decimal | None:
        normal = self.numbers.decimal(limit, "CurrentLimit.normalValue")
        return normal if normal is not None else self.numbers.decimal(limit, "CurrentLimit.value")

    def _is_emergency(self, limit: CimObject) -> bool:
        """PATL (permanent) limits are normal; TATL and tripping limits are not. Without a kind, the type's
        isInfiniteDuration or an 'emerg' in its name (CIMHub: NormAmps / EmergencyAmps) decides."""
        kind = self.model.follow(limit, "OperationalLimit.OperationalLimitType")
        if kind is None:
            return "emerg" in name_of(limit).lower()
        limit_kind = _fragment(
            kind.attrs.get("OperationalLimitType.kind") or kind.attrs.get("OperationalLimitType.limitType")
        )
        if limit_kind:
            return limit_kind != "patl"
        if kind.attrs.get("OperationalLimitType.isInfiniteDuration", "").lower() == "false":
            return True
        return "emerg" in name_of(kind).lower() or "emerg" in name_of(limit).lower()

    def _line_phases(self) -> dict[str, frozenset[str]]:
        """Phases per line from ACLineSegmentPhase (a, b, c, n, s1, s2); lines without them are three-phase."""
        seen: dict[str, set[str]] = {}
        for phase in self.model.of("ACLineSegmentPhase"):
            line = phase.ref("ACLineSegmentPhase.ACLineSegment")
            if line:
                seen.setdefault(line, set()).add(_fragment(phase.attrs.get("ACLineSegmentPhase.phase")))
        return {line: frozenset(phases) for line, phases in seen.items()}

    def _line_kv(self, line: CimObject) -> Decimal | None:
        """BaseVoltage of the line, else of its nodes (TopologicalNode) or their VoltageLevel."""
        kv = self.nominal_kv(line.ref("ConductingEquipment.BaseVoltage"))
        if kv is not None:
            return kv
        for node_id in self.topo.equipment_nodes.get(line.id, ()):
            node = self.model.get(node_id)
            kv = self.nominal_kv(node.ref("TopologicalNode.BaseVoltage")) if node else None
            level = self.model.get(self.topo.node_container.get(node_id))
            if kv is None and level is not None:
                kv = self.nominal_kv(level.ref("VoltageLevel.BaseVoltage"))
            if kv is not None:
                return kv
        return None

    # -- points of use and DER

    def _points(self, walk: _Walk, regulators: set[str]) -> list[Point]:
        usage_of = self._usage_point_links()
        points: list[Point] = []
        placed: dict[str, Point] = {}
        for obj in self.model.of(*CONSUMER_CLASSES, PEC, *MACHINE_CLASSES):
            point = self._equipment_point(obj, walk, regulators)
            point.usage_point_id = usage_of.get(obj.id)
            points.append(point)
            placed[obj.id] = point
        points += self._usage_points(walk, regulators, placed)
        points += self._end_devices(placed)
        for point in points:
            if point.feeder_id is None:
                self.warnings.append(f"{point.cls} '{point.name}' ({point.id}) is not connected to the network")
        return points

    def _equipment_point(self, obj: CimObject, walk: _Walk, regulators: set[str]) -> Point:
        nodes = [n for n in self.topo.equipment_nodes.get(obj.id, ()) if n in walk.depth]
        node = min(nodes, key=walk.depth.__getitem__) if nodes else None
        path = self._transformer_path(walk.nearest_xf.get(node) if node else None, walk)
        serving = next((x for x in reversed(path) if x not in regulators), None)
        if obj.cls == PEC:
            kind, p_kw = "der", self.kw(obj, "PowerElectronicsConnection.p")
        elif obj.cls in MACHINE_CLASSES:
            kind, p_kw = "generator", self._machine_value(obj, "p")
        else:
            kind, p_kw = "load", self._consumer_kw(obj)
        return Point(
            id=obj.id,
            cls=obj.cls,
            name=name_of(obj),
            kind=kind,
            feeder_id=self._feeder_of(obj.id, walk),
            transformer_id=serving,
            p_kw=p_kw,
            node_id=node,
            transformer_path=path,
        )

    def _consumer_kw(self, obj: CimObject) -> Decimal | None:
        p = self.kw(obj, "EnergyConsumer.p")
        if p is not None:
            return p
        total = None
        for phase in self._consumer_phases.get(obj.id, ()):
            value = self.kw(phase, "EnergyConsumerPhase.p")
            if value is not None:
                total = (total or Decimal(0)) + value
        return total

    def _transformer_path(self, nearest: str | None, walk: _Walk) -> tuple[str, ...]:
        path: list[str] = []
        while nearest is not None and nearest not in path:
            path.append(nearest)
            nearest = walk.upstream_xf.get(nearest)
        return tuple(reversed(path))

    def _usage_point_links(self) -> dict[str, str]:
        """equipment id -> UsagePoint id, from Equipment.UsagePoints and UsagePoint.Equipments."""
        links: dict[str, str] = {}
        for usage_point in self.model.of(USAGE_POINT):
            for equipment in usage_point.refs.get("UsagePoint.Equipments", ()):
                links.setdefault(equipment, usage_point.id)
        for obj in self.model.of(*CONSUMER_CLASSES, PEC, *MACHINE_CLASSES):
            for prop in ("Equipment.UsagePoints", "Equipment.UsagePoint"):
                for usage_point in obj.refs.get(prop, ()):
                    links.setdefault(obj.id, usage_point)
        return links

    def _usage_points(self, walk: _Walk, regulators: set[str], placed: dict[str, Point]) -> list[Point]:
        """A UsagePoint sits where its first piece of network equipment sits."""
        equipment_of: dict[str, list[str]] = {}
        for usage_point in self.model.of(USAGE_POINT):
            equipment_of[usage_point.id] = list(usage_point.refs.get("UsagePoint.Equipments", ()))
        for point in placed.values():
            if point.usage_point_id in equipment_of and point.id not in equipment_of[point.usage_point_id]:
                equipment_of[point.usage_point_id].append(point.id)
        result = []
        for usage_point in self.model.of(USAGE_POINT):
            anchor = next((placed[e] for e in equipment_of[usage_point.id] if e in placed), None)
            if anchor is None:
                anchor = self._anchor_equipment(equipment_of[usage_point.id], walk, regulators)
            point = Point(usage_point.id, usage_point.cls, name_of(usage_point), "usage_point", None, None)
            if anchor is not None:
                point.feeder_id, point.transformer_id = anchor.feeder_id, anchor.transformer_id
                point.node_id, point.transformer_path = anchor.node_id, anchor.transformer_path
            placed[usage_point.id] = point
            result.append(point)
        return result

    def _anchor_equipment(self, equipment_ids: list[str], walk: _Walk, regulators: set[str]) -> Point | None:
        for equipment_id in equipment_ids:
            obj = self.model.get(equipment_id)
            if obj is not None and self.topo.equipment_nodes.get(equipment_id):
                return self._equipment_point(obj, walk, regulators)
        return None

    def _end_devices(self, placed: dict[str, Point]) -> list[Point]:
        """End devices (meters, smart inverters) sit at their UsagePoint, named from either side of the link."""
        usage_of: dict[str, str] = {}
        for usage_point in self.model.of(USAGE_POINT):
            for device in usage_point.refs.get("UsagePoint.EndDevices", ()):
                usage_of.setdefault(device, usage_point.id)
        result = []
        for device in self.model.of(*END_DEVICE_CLASSES):
            usage_point = device.ref("EndDevice.UsagePoint") or usage_of.get(device.id)
            smart = device.attrs.get("EndDevice.isSmartInverter", "").lower() == "true"
            point = Point(
                device.id,
                device.cls,
                name_of(device),
                "smart_inverter" if smart else "meter",
                None,
                None,
                usage_point_id=usage_point,
            )
            anchor = placed.get(usage_point or "")
            if anchor is not None:
                point.feeder_id, point.transformer_id = anchor.feeder_id, anchor.transformer_id
                point.node_id, point.transformer_path = anchor.node_id, anchor.transformer_path
            result.append(point)
        return result

    def _der(self) -> list[Der]:
        """Units of PowerElectronicsConnections (both directions of the association), machines, and smart
        inverters whose UsagePoint has no DER equipment of its own."""
        units_of: dict[str, list[CimObject]] = {}
        for connection in self.model.of(PEC):
            for unit_id in connection.refs.get("PowerElectronicsConnection.PowerElectronicsUnit", ()):
                unit = self.model.get(unit_id)
                if unit is not None:
                    units_of.setdefault(connection.id, []).append(unit)
        for unit in self.model.of(*UNIT_CLASSES):
            for connection_id in unit.refs.get("PowerElectronicsUnit.PowerElectronicsConnection", ()):
                listed = units_of.setdefault(connection_id, [])
                if unit not in listed:
                    listed.append(unit)
        der = []
        for connection in self.model.of(PEC):
            rated = self.kw(connection, "PowerElectronicsConnection.ratedS")
            for unit in units_of.get(connection.id, ()) or [None]:
                der.append(self._unit(connection, unit, rated))
        der += [self._machine(machine) for machine in self.model.of(*MACHINE_CLASSES)]
        der += self._smart_inverters()
        return self._once(der)

    def _once(self, der: list[Der]) -> list[Der]:
        """A unit listed under two connections is one DER (the first connection), with a warning."""
        seen: dict[str, Der] = {}
        for item in der:
            if item.id in seen:
                self.warnings.append(
                    f"{item.cls} '{item.name}' ({item.id}) belongs to two connections ({seen[item.id].point_id},"
                    f" {item.point_id}); kept on the first"
                )
            else:
                seen[item.id] = item
        return list(seen.values())

    def _unit(self, connection: CimObject, unit: CimObject | None, rated: Decimal | None) -> Der:
        source = unit or connection
        kind = UNIT_KINDS.get(unit.cls, "wind" if "Wind" in unit.cls else "other") if unit else "other"
        return Der(
            id=source.id,
            name=name_of(source),
            kind=kind,
            cls=source.cls,
            point_id=connection.id,
            rated_kva=rated,
            max_kw=self.kw(unit, "PowerElectronicsUnit.maxP"),
            min_kw=self.kw(unit, "PowerElectronicsUnit.minP"),
            energy_kwh=self.kw(unit, "BatteryUnit.ratedE") if unit and unit.cls == "BatteryUnit" else None,
            stored_kwh=self.kw(unit, "BatteryUnit.storedE") if unit and unit.cls == "BatteryUnit" else None,
        )

    def _machine(self, machine: CimObject) -> Der:
        unit = self.model.follow(machine, "RotatingMachine.GeneratingUnit")
        return Der(
            id=machine.id,
            name=name_of(machine),
            kind="generator",
            cls=machine.cls,
            point_id=machine.id,
            rated_kva=self._machine_value(machine, "ratedS"),
            max_kw=self.kw(unit, "GeneratingUnit.maxOperatingP"),
            min_kw=self.kw(unit, "GeneratingUnit.minOperatingP"),
        )

    def _machine_value(self, machine: CimObject, name: str) -> Decimal | None:
        """RotatingMachine.<name>, or the subclass spelling some exporters use (SynchronousMachine.ratedS)."""
        inherited = f"RotatingMachine.{name}"
        return self.kw(machine, inherited if inherited in machine.attrs else f"{machine.cls}.{name}")

    def _smart_inverters(self) -> list[Der]:
        with_der = {p.usage_point_id for p in self.view.points if p.kind in ("der", "generator") and p.usage_point_id}
        return [
            Der(id=p.id, name=p.name, kind="smart_inverter", cls=p.cls, point_id=p.id)
            for p in self.view.points
            if p.kind == "smart_inverter" and p.usage_point_id not in with_der
        ]

    # -- feeders and coverage

    def _feeders(self, walk: _Walk) -> list[Feeder]:
        feeders = {
            f.id: Feeder(f.id, name_of(f), f.ref("Feeder.NormalEnergizingSubstation")) for f in self.model.of("Feeder")
        }
        for key, name in self._pseudo_names.items():
            feeders[key] = Feeder(key, name, walk.feeder_substation.get(key), pseudo=True)
        for feeder_id, substation in walk.feeder_substation.items():
            if feeder_id in feeders and feeders[feeder_id].substation_id is None:
                feeders[feeder_id].substation_id = substation
        known_subs = {s.id for s in self.view.substations}
        for feeder in feeders.values():
            if feeder.substation_id not in known_subs:
                feeder.substation_id = None
        self._count(feeders, walk)
        self._heads(feeders, walk)
        return list(feeders.values())

    def _count(self, feeders: dict[str, Feeder], walk: _Walk) -> None:
        for feeder_id in walk.feeder.values():
            if feeder_id in feeders:
                feeders[feeder_id].nodes += 1
        for equipment in self.topo.equipment_nodes:
            feeder_id = self._feeder_of(equipment, walk)
            if feeder_id in feeders:
                feeders[feeder_id].equipment += 1
        for point in self.view.points:
            if point.feeder_id in feeders:
                feeders[point.feeder_id].points += 1
        for transformer in self.view.transformers:
            if transformer.feeder_id in feeders and not transformer.is_regulator:
                feeders[transformer.feeder_id].transformers += 1

    def _heads(self, feeders: dict[str, Feeder], walk: _Walk) -> None:
        """The head of a (real) feeder: its single shallowest line or transformer; the feeder is rated at it."""
        candidates: dict[str, list[tuple[int, str, Decimal | None]]] = {}
        for item in [*self.view.lines, *self.view.transformers]:
            node = walk.entered.get(item.id)
            if node is None or item.feeder_id not in feeders:
                continue
            rating = item.rated_kva
            candidates.setdefault(item.feeder_id, []).append((walk.depth[node], item.id, rating))
        for feeder_id, items in candidates.items():
            if feeders[feeder_id].pseudo:
                continue  # a substation's buses or an island have no single head
            shallowest = min(depth for depth, _, _ in items)
            heads = [(item_id, rating) for depth, item_id, rating in items if depth == shallowest]
            if len(heads) == 1:
                feeders[feeder_id].head_id, feeders[feeder_id].rating_kva = heads[0]

    def _coverage(self) -> Coverage:
        view = self.view
        return Coverage(
            lines=len(view.lines),
            lines_rated=sum(1 for line in view.lines if line.rated_amps is not None),
            lines_rated_kva=sum(1 for line in view.lines if line.rated_kva is not None),
            transformers=len(view.transformers),
            transformers_rated=sum(1 for t in view.transformers if t.rated_kva is not None),
            regulators=sum(1 for t in view.transformers if t.is_regulator),
            points=len(view.points),
            points_on_feeder=sum(1 for p in view.points if p.feeder_id is not None),
            points_with_transformer=sum(1 for p in view.points if p.transformer_id is not None),
            der=len(view.der),
            der_rated=sum(1 for d in view.der if d.rated_kva is not None),
        )

    def _note_coverage(self) -> None:
        c = self.view.coverage
        self.view.notes.append(
            f"ratings: {c.lines_rated}/{c.lines} lines (CurrentLimit), {c.transformers_rated}/{c.transformers}"
            f" transformers (ratedS; {c.regulators} regulators); points: {c.points_on_feeder}/{c.points} on a feeder,"
            f" {c.points_with_transformer}/{c.points} with a serving transformer"
        )


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
    return clean(kva.quantize(_MILLI))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The build allocates many small acyclic objects next to a large model; on IEEE 9500 the full garbage
    collections this triggers walk the model's ~300k tracked objects, cost 0-150 ms (measured) and free nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_network(model: CimModel, *, warnings: list[str] | None = None) -> NetworkView:
    """The network view of ``model``. Never raises on bad values: they become warnings (in ``view.warnings``
    and, when given, appended to ``warnings`` too)."""
    own: list[str] = []
    with _collector_paused():
        view = _Builder(model, own).build()
    if warnings is not None:
        warnings.extend(own)
    return view


# -- canonical model ---------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[\s/]+")


def _slug(text: str) -> str:
    return _UNSAFE.sub("_", text.strip()) or "_"


def _unique_ids(items: list[tuple[str, str]], prefix: str) -> dict[str, str]:
    """key -> id as ``prefix + name``; names that more than one key would share get ``-<key>`` appended.

    The name is cut so that prefix, name and suffix stay within the 200 characters of an Identifier.
    """
    head = _UNSAFE.sub("_", prefix)

    def base(key: str, name: str) -> str:
        return head + _slug(name)[: max(1, 199 - len(head) - len(_slug(key)))]

    bases = {key: base(key, name) for key, name in items}
    counts = Counter(bases.values())
    ids = {key: value if counts[value] == 1 else f"{value}-{_slug(key)}" for key, value in bases.items()}
    taken = Counter(ids.values())
    return {key: value if taken[value] == 1 else f"{head}{_slug(key)}" for key, value in ids.items()}


@dataclass(slots=True)
class _Placement:
    """Location ids of a view, shared by :func:`to_canonical` and :func:`transport_limits`."""

    locations: list[Location]
    service_point_of: dict[str, str]  # point id -> service point location id


def _place(view: NetworkView, prefix: str) -> _Placement:
    """Regulators get no location (they are in series on a path the tree cannot show); a point whose serving
    transformer sits on another feeder (a substation transformer feeding several feeders) hangs off its feeder."""
    feeders = {f.id: f for f in view.feeders}
    transformers = {t.id: t for t in view.transformers if not t.is_regulator and t.feeder_id in feeders}
    points = {p.id: p for p in view.points}
    own_points = [p for p in view.points if _has_service_point(p, points)]
    items = (
        [(s.id, f"sub-{s.name}") for s in view.substations]
        + [(f.id, f"fdr-{f.name}") for f in feeders.values()]
        + [(t.id, f"xf-{t.name}") for t in transformers.values()]
        + [(p.id, f"sp-{p.name}") for p in own_points]
    )
    ids = _unique_ids(items, prefix)
    locations = [_location(ids[s.id], s.name, LocationKind.SUBSTATION, None, None, s.id) for s in view.substations]
    for feeder in feeders.values():
        parent = ids.get(feeder.substation_id) if feeder.substation_id else None
        ref = None if feeder.pseudo else feeder.id
        locations.append(_location(ids[feeder.id], feeder.name, LocationKind.FEEDER, parent, feeder.rating_kva, ref))
    for t in transformers.values():
        locations.append(_location(ids[t.id], t.name, LocationKind.TRANSFORMER, ids[t.feeder_id], t.rated_kva, t.id))
    service_point_of: dict[str, str] = {}
    for point in own_points:
        serving = transformers.get(point.transformer_id or "")
        parent = ids[serving.id] if serving and serving.feeder_id == point.feeder_id else ids[point.feeder_id]
        locations.append(_location(ids[point.id], point.name, LocationKind.SERVICE_POINT, parent, None, point.id))
        service_point_of[point.id] = ids[point.id]
    for point in view.points:  # unplaced points were warned about by build_network
        if point.id not in service_point_of and point.usage_point_id in service_point_of:
            service_point_of[point.id] = service_point_of[point.usage_point_id]
    return _Placement(locations, service_point_of)


def _has_service_point(point: Point, points: dict[str, Point]) -> bool:
    """One service point per placed point of use, except where a UsagePoint already stands for the customer
    (equipment and end devices then share the UsagePoint's) and end devices, which are never a point of their own."""
    if point.feeder_id is None:
        return False
    up = points.get(point.usage_point_id or "")
    if up is not None and up.feeder_id is not None:
        return False
    return point.kind not in ("meter", "smart_inverter")


def _location(
    location_id: str, name: str, kind: LocationKind, parent: str | None, rating: Decimal | None, ref: str | None
) -> Location:
    return Location(
        id=location_id,
        name=(name or location_id)[:200],
        kind=kind,
        parent_id=parent,
        rating_kva=rating if rating is not None and rating >= 0 else None,
        network_ref=ref,
    )


def to_canonical(view: NetworkView, *, owner_id: str, prefix: str = "") -> tuple[list[Location], list[Resource]]:
    """Locations (substation > feeder > transformer > service point, validated as a LocationTree) and Resources
    (DER and loads, owned by ``owner_id``) for ``view``. Ids are ``prefix`` + a kind tag + the CIM name
    (sub-, fdr-, xf-, sp-; resources: load-, pv-, battery-, ...), with ``-<CIM id>`` where names repeat."""
    placement = _place(view, prefix)
    LocationTree(placement.locations)
    at = placement.service_point_of
    # (CIM id, name, kind, ratings, id tag, point of use)
    items: list[tuple[str, str, ResourceKind, Ratings, str, str]] = [
        (p.id, p.name, ResourceKind.LOAD, Ratings(max_kw=_positive(p.p_kw)), "load", p.id)
        for p in view.points
        if p.kind == "load" and p.id in at
    ]
    items += [
        (d.id, d.name, RESOURCE_KINDS.get(d.kind, ResourceKind.OTHER), _der_ratings(d), d.kind, d.point_id)
        for d in view.der
        if d.point_id in at
    ]
    ids = _unique_ids([(key, f"{tag}-{name}") for key, name, _, _, tag, _ in items], prefix)
    resources = [
        Resource(
            id=ids[key],
            name=(name or key)[:200],
            kind=kind,
            owner_id=owner_id,
            location_id=at[point_id],
            ratings=ratings,
            identities={"cim": key},
        )
        for key, name, kind, ratings, _, point_id in items
    ]
    return placement.locations, resources


def _positive(value: Decimal | None) -> Decimal | None:
    return value if value is not None and value > 0 else None


def _der_ratings(der: Der) -> Ratings:
    battery = der.kind == "battery"
    return Ratings(
        max_kw=_positive(der.max_kw),
        max_kva=_positive(der.rated_kva),
        energy_kwh=_positive(der.energy_kwh) if battery else None,
        max_discharge_kw=_positive(der.max_kw) if battery else None,
        max_charge_kw=_positive(-der.min_kw) if battery and der.min_kw is not None else None,
    )


def transport_limits(view: NetworkView, *, prefix: str = "") -> dict[str, Decimal]:
    """location id (as :func:`to_canonical` names it with the same ``prefix``) -> transport limit in kVA:
    feeders rated at their head, transformers at their ratedS."""
    return {loc.id: loc.rating_kva for loc in _place(view, prefix).locations if loc.rating_kva is not None}


def summary_of(view: NetworkView) -> dict[str, Any]:
    """Plain data for `tgw cim summary`: feeders, node count, DER inventory by kind, rating coverage, notes."""
    substations = {s.id: s.name for s in view.substations}
    feeders = [
        {
            "id": f.id,
            "name": f.name,
            "substation": substations.get(f.substation_id or ""),
            "substation_id": f.substation_id,
            "pseudo": f.pseudo,
            "nodes": f.nodes,
            "equipment": f.equipment,
            "points": f.points,
            "transformers": f.transformers,
            "rating_kva": _plain(f.rating_kva),
        }
        for f in view.feeders
    ]
    inventory: dict[str, dict[str, Any]] = {}
    for der in view.der:
        entry = inventory.setdefault(
            der.kind, {"kind": der.kind, "count": 0, "rated_kva": None, "max_kw": None, "energy_kwh": None}
        )
        entry["count"] += 1
        for key, value in (("rated_kva", der.rated_kva), ("max_kw", der.max_kw), ("energy_kwh", der.energy_kwh)):
            if value is not None:
                entry[key] = (entry[key] or Decimal(0)) + value
    der = [{k: _plain(v) if isinstance(v, Decimal) else v for k, v in e.items()} for e in inventory.values()]
    coverage = asdict(view.coverage)
    return {
        "feeders": feeders,
        "nodes": view.nodes,
        "der": sorted(der, key=lambda e: e["kind"]),
        "coverage": coverage,
        "topology": view.topology,
        "units": view.units,
        "sources": len(view.sources),
        "open_switches": len(view.open_switches),
        "notes": view.notes,
    }


def _plain(value: Decimal | None) -> int | float | None:
    """JSON has no Decimal: whole numbers as int, others as float (a summary, not a settlement)."""
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)
