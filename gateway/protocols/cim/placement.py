"""Points of use and where they sit: feeder, serving transformer and the path of transformers to the source.

Why its own step: a point of use is what the market settles (a load, a DER connection, a machine, a customer's
UsagePoint, a meter or smart inverter), and CIM places only the network equipment among them. UsagePoints and
end devices have no terminals, so they are placed through the equipment or UsagePoint they are linked to,
with each link read from either side.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from gateway.protocols.cim.der import MACHINE_CLASSES, PEC, machine_kw
from gateway.protocols.cim.numbers import Quantities, name_of
from gateway.protocols.cim.reader import CimModel, CimObject
from gateway.protocols.cim.topology import Topology, Walk
from gateway.protocols.cim.view import Point

CONSUMER_CLASSES = ("EnergyConsumer", "ConformLoad", "NonConformLoad", "StationSupply")
USAGE_POINT = "UsagePoint"
END_DEVICE_CLASSES = ("EndDevice", "Meter")


class PointPlacer:
    """Places every point of use of one model on a walked network (``walk``); ``regulators`` are the
    transformers that cannot be a serving transformer, ``feeder_of`` gives the feeder of a piece of equipment."""

    def __init__(
        self,
        model: CimModel,
        quantities: Quantities,
        topo: Topology,
        walk: Walk,
        regulators: set[str],
        feeder_of: Callable[[str], str | None],
        warnings: list[str],
    ) -> None:
        self.model = model
        self.quantities = quantities
        self.topo = topo
        self.walk = walk
        self.regulators = regulators
        self.feeder_of = feeder_of
        self.warnings = warnings
        self._consumer_phases: dict[str, list[CimObject]] = {}
        for phase in model.of("EnergyConsumerPhase"):
            self._consumer_phases.setdefault(phase.ref("EnergyConsumerPhase.EnergyConsumer") or "", []).append(phase)

    def points(self) -> list[Point]:
        """Equipment first, then UsagePoints (placed at their equipment), then end devices (at their
        UsagePoint); a point left without a feeder is a warning."""
        usage_of = self._usage_point_links()
        points: list[Point] = []
        placed: dict[str, Point] = {}
        for obj in self.model.of(*CONSUMER_CLASSES, PEC, *MACHINE_CLASSES):
            point = self._equipment_point(obj)
            point.usage_point_id = usage_of.get(obj.id)
            points.append(point)
            placed[obj.id] = point
        points += self._usage_points(placed)
        points += self._end_devices(placed)
        for point in points:
            if point.feeder_id is None:
                self.warnings.append(f"{point.cls} '{point.name}' ({point.id}) is not connected to the network")
        return points

    def _equipment_point(self, obj: CimObject) -> Point:
        walk = self.walk
        nodes = [n for n in self.topo.equipment_nodes.get(obj.id, ()) if n in walk.depth]
        node = min(nodes, key=walk.depth.__getitem__) if nodes else None
        path = self._transformer_path(walk.nearest_xf.get(node) if node else None)
        serving = next((x for x in reversed(path) if x not in self.regulators), None)
        if obj.cls == PEC:
            kind, p_kw = "der", self.quantities.kw(obj, "PowerElectronicsConnection.p")
        elif obj.cls in MACHINE_CLASSES:
            kind, p_kw = "generator", machine_kw(self.quantities, obj, "p")
        else:
            kind, p_kw = "load", self._consumer_kw(obj)
        return Point(
            id=obj.id,
            cls=obj.cls,
            name=name_of(obj),
            kind=kind,
            feeder_id=self.feeder_of(obj.id),
            transformer_id=serving,
            p_kw=p_kw,
            node_id=node,
            transformer_path=path,
        )

    def _consumer_kw(self, obj: CimObject) -> Decimal | None:
        """EnergyConsumer.p, else the sum of its phases' p."""
        p = self.quantities.kw(obj, "EnergyConsumer.p")
        if p is not None:
            return p
        total = None
        for phase in self._consumer_phases.get(obj.id, ()):
            value = self.quantities.kw(phase, "EnergyConsumerPhase.p")
            if value is not None:
                total = (total or Decimal(0)) + value
        return total

    def _transformer_path(self, nearest: str | None) -> tuple[str, ...]:
        path: list[str] = []
        while nearest is not None and nearest not in path:
            path.append(nearest)
            nearest = self.walk.upstream_xf.get(nearest)
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

    def _usage_points(self, placed: dict[str, Point]) -> list[Point]:
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
                anchor = self._anchor_equipment(equipment_of[usage_point.id])
            point = Point(usage_point.id, usage_point.cls, name_of(usage_point), "usage_point", None, None)
            if anchor is not None:
                point.feeder_id, point.transformer_id = anchor.feeder_id, anchor.transformer_id
                point.node_id, point.transformer_path = anchor.node_id, anchor.transformer_path
            placed[usage_point.id] = point
            result.append(point)
        return result

    def _anchor_equipment(self, equipment_ids: list[str]) -> Point | None:
        for equipment_id in equipment_ids:
            obj = self.model.get(equipment_id)
            if obj is not None and self.topo.equipment_nodes.get(equipment_id):
                return self._equipment_point(obj)
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
