"""The network view's data: what :func:`~gateway.protocols.cim.network.build_network` finds in a CIM model.

Plain dataclasses, apart from the reader (which knows CIM spellings) and the mapper (which knows the canonical
model), so that both sides and the CLI share one vocabulary: substations, feeders, transformers, lines, points
of use and DER, in kW / kVA / kWh / kV whatever units the file was written in. :func:`summary_of` presents a
view as plain data for `tgw cim summary`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any


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
