"""The network's graph: terminals joining equipment to nodes, islands, and the walk from the sources.

Why a graph of our own: CIM states connectivity only through Terminals, on ConnectivityNodes (node-breaker:
CIMHub, CGMES 3 EQ) or TopologicalNodes (bus-branch: CGMES TP), and containment only through
EquipmentContainers (Feeder, or VoltageLevel / Bay / Substation). Where a point of use sits (feeder, serving
transformer) follows from walking that graph breadth-first from the sources, so the walk records, per node,
its depth, the nearest transformer upstream and the feeder and substation it belongs to.

Topology is the normal state: a switch is open when ``Switch.normalOpen`` says so (``Switch.open`` only when
the normal state is not given).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from gateway.protocols.cim.numbers import Numbers
from gateway.protocols.cim.reader import CimModel, CimObject


@dataclass(slots=True)
class Topology:
    """The undirected graph node <-> equipment that terminals make."""

    kind: str
    equipment_nodes: dict[str, list[str]]
    node_equipment: dict[str, list[str]]
    terminal_node: dict[str, str]
    terminal_equipment: dict[str, str]
    node_container: dict[str, str]


def topology_of(model: CimModel, numbers: Numbers) -> Topology:
    """Terminals on ConnectivityNodes when every terminal has one (node-breaker, CIMHub, CGMES 3 EQ),
    otherwise on TopologicalNodes (bus-branch, CGMES TP), reaching a TN through its CN where needed."""
    terminals = [t for t in model.of("Terminal") if t.refs.get("Terminal.ConductingEquipment")]
    use_cn = all(t.refs.get("Terminal.ConnectivityNode") for t in terminals)
    kind = "ConnectivityNode" if use_cn else "TopologicalNode"
    terminals.sort(key=lambda t: numbers.integer(t, "ACDCTerminal.sequenceNumber") or 0)
    topo = Topology(kind, {}, {}, {}, {}, {})
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


def is_open(switch: CimObject) -> bool:
    """Open in the normal state (``Switch.normalOpen``), else in the present one (``Switch.open``)."""
    normal = switch.attrs.get("Switch.normalOpen")
    state = normal if normal is not None else switch.attrs.get("Switch.open")
    return (state or "").lower() == "true"


def components(topo: Topology, blocked: set[str]) -> dict[str, int]:
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
class Walk:
    """What a breadth-first walk from the sources learns: depth, nearest transformer, feeder and substation."""

    depth: dict[str, int] = field(default_factory=dict)
    nearest_xf: dict[str, str | None] = field(default_factory=dict)
    feeder: dict[str, str | None] = field(default_factory=dict)
    substation: dict[str, str | None] = field(default_factory=dict)
    entered: dict[str, str] = field(default_factory=dict)  # equipment -> the node it was reached from
    upstream_xf: dict[str, str | None] = field(default_factory=dict)
    feeder_substation: dict[str, str | None] = field(default_factory=dict)


class Containers:
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


def walk_from(
    topo: Topology,
    containers: Containers,
    roots: list[str],
    walk: Walk,
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


def _label(walk: Walk, node: str, depth: int, nearest: str | None, feeder: str | None, substation: str | None) -> None:
    walk.depth[node] = depth
    walk.nearest_xf[node] = nearest
    walk.feeder[node] = feeder
    walk.substation[node] = substation
