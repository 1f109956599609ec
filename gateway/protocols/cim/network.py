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

So every step reads both directions of an association and both spellings, converts units in one place
(:class:`~gateway.protocols.cim.numbers.Units`), and never raises on a bad value: a number that does not parse
is a warning naming the object and the property (``cimpy`` crashes there; we must not).

Topology is the normal state: a switch is open when ``Switch.normalOpen`` says so (``Switch.open`` only when
the normal state is not given); present-state differences are noted, not followed.

This module runs the steps in order and assembles the view; the steps live beside it: ``numbers`` (units and
parsing), ``topology`` (graph, islands, the walk from the sources), ``ratings`` (transformers and lines),
``placement`` (points of use), ``der`` (DER units). ``view`` holds the result and ``mapper`` turns it into
canonical locations and resources.
"""

from __future__ import annotations

from decimal import Decimal

from gateway.gcpause import gc_paused
from gateway.protocols.cim.der import MACHINE_CLASSES, der_of
from gateway.protocols.cim.numbers import CGMES, SI, Numbers, Quantities, name_of
from gateway.protocols.cim.placement import PointPlacer
from gateway.protocols.cim.ratings import TransformerRatings, lines_of
from gateway.protocols.cim.reader import CimModel
from gateway.protocols.cim.topology import Containers, Walk, components, is_open, topology_of, walk_from
from gateway.protocols.cim.view import (
    Coverage,
    Feeder,
    NetworkView,
    Substation,
)

__all__ = ["build_network"]

INJECTION_CLASSES = ("ExternalNetworkInjection", "EquivalentInjection")

_MAX_NAMES_IN_NOTE = 10


def build_network(model: CimModel, *, warnings: list[str] | None = None) -> NetworkView:
    """The network view of ``model``. Never raises on bad values: they become warnings (in ``view.warnings``
    and, when given, appended to ``warnings`` too)."""
    own: list[str] = []
    # The build allocates many small acyclic objects next to a large model; on IEEE 9500 the full garbage
    # collections this triggers walk the model's ~300k tracked objects, cost 0-150 ms (measured) and free nothing.
    with gc_paused():
        view = _Builder(model, own).build()
    if warnings is not None:
        warnings.extend(own)
    return view


class _Builder:
    """One pass of :func:`build_network` over one model: the walk, then each step in turn, noting what it found."""

    def __init__(self, model: CimModel, warnings: list[str]) -> None:
        self.model = model
        self.warnings = warnings
        numbers = Numbers(warnings)
        self.units = CGMES if model.headers else SI
        self.quantities = Quantities(model, numbers, self.units)
        self.view = NetworkView(units=self.units.label, warnings=warnings)
        self.containers = Containers(model)
        self.topo = topology_of(model, numbers)
        self.view.topology = self.topo.kind
        self.view.nodes = len(self.topo.node_equipment)
        self._pseudo_names: dict[str, str] = {}

    def build(self) -> NetworkView:
        view, model = self.view, self.model
        view.substations = [Substation(s.id, name_of(s)) for s in model.of("Substation")]
        transformers = TransformerRatings(model, self.quantities)
        blocked = self._open_switches()
        walk = self._walk_from_sources(transformers, blocked)

        def feeder_of(equipment_id: str) -> str | None:
            return self._feeder_of(equipment_id, walk)

        view.transformers = [
            transformers.transformer(xf, feeder_of(xf.id), walk.upstream_xf.get(xf.id))
            for xf in transformers.objects.values()
        ]
        regulators = {t.id for t in view.transformers if t.is_regulator}
        view.lines = lines_of(model, self.quantities, self.topo, feeder_of)
        placer = PointPlacer(model, self.quantities, self.topo, walk, regulators, feeder_of, self.warnings)
        view.points = placer.points()
        view.der = der_of(model, self.quantities, view.points, self.warnings)
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
        blocked = {s.id for s in switches if is_open(s)}
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

    def _sources(self, transformers: TransformerRatings, xf_ids: set[str]) -> tuple[dict[str, list[str]], str]:
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
        # sorted: the walk order (and so ties between equally near transformers) must not depend on hashing
        in_substation = [x for x in sorted(xf_ids) if self.containers.of_equipment(self.model.get(x))[1]]
        found = {x: [node] for x in in_substation if (node := transformers.high_side_node(x, topo))}
        return found, "high-voltage sides of substation transformers"

    def _walk_from_sources(self, transformers: TransformerRatings, blocked: set[str]) -> Walk:
        topo, view = self.topo, self.view
        xf_ids = set(transformers.objects)
        sources, label = self._sources(transformers, xf_ids)
        view.sources = list(sources)
        island = components(topo, blocked)
        roots: dict[int, list[str]] = {}
        for nodes in sources.values():
            for node in nodes:
                roots.setdefault(island[node], []).append(node)
        walk = Walk()
        for number in sorted(roots):
            walk_from(topo, self.containers, roots[number], walk, blocked, xf_ids, self.model)
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

    def _walk_unfed(self, walk: Walk, island: dict[str, int], blocked: set[str], xf_ids: set[str]) -> None:
        """Islands no source feeds (behind open switches, or no source at all) are walked from their first node,
        so their points still get a feeder; their serving transformers are then only indicative."""
        unfed: dict[int, list[str]] = {}
        for node, number in island.items():
            if node not in walk.depth:
                unfed.setdefault(number, []).append(node)
        for nodes in unfed.values():
            walk_from(self.topo, self.containers, nodes[:1], walk, blocked, xf_ids, self.model)
        if unfed:
            count = sum(len(n) for n in unfed.values())
            self.view.notes.append(f"{len(unfed)} island(s) with {count} node(s) are fed by no source")

    def _pseudo_feeders(self, walk: Walk, island: dict[str, int], roots: dict[int, list[str]]) -> None:
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

    def _feeder_of(self, equipment_id: str, walk: Walk) -> str | None:
        """A Feeder container first, else the label of the node it was reached from (or its first node)."""
        feeder, _ = self.containers.of_equipment(self.model.get(equipment_id))
        if feeder is not None:
            return feeder
        node = walk.entered.get(equipment_id)
        if node is None:
            nodes = self.topo.equipment_nodes.get(equipment_id) or [None]
            node = nodes[0]
        return walk.feeder.get(node) if node else None

    # -- feeders and coverage

    def _feeders(self, walk: Walk) -> list[Feeder]:
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

    def _count(self, feeders: dict[str, Feeder], walk: Walk) -> None:
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

    def _heads(self, feeders: dict[str, Feeder], walk: Walk) -> None:
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
