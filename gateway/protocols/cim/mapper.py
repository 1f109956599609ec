"""The network view in the canonical model: a location tree, resources and transport limits.

Why apart from the builder: the view says what the CIM model holds, in CIM's terms; this module decides how
that becomes canonical objects (which items are locations, how ids are named, what a DER's ratings are), so
the two can change on their own. Ids are stable across imports of the same model: ``prefix`` + a kind tag +
the CIM name, with the CIM id appended only where names repeat.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from gateway.model import Location, LocationKind, LocationTree, Ratings, Resource, ResourceKind
from gateway.protocols.cim.view import Der, NetworkView, Point

# The view's DER kinds, as canonical resource kinds (the view keeps "wind" and "smart_inverter" for people).
RESOURCE_KINDS = {
    "pv": ResourceKind.PV,
    "battery": ResourceKind.BATTERY,
    "wind": ResourceKind.GENERATOR,
    "generator": ResourceKind.GENERATOR,
    "smart_inverter": ResourceKind.OTHER,
    "other": ResourceKind.OTHER,
}

_UNSAFE = re.compile(r"[\s/]+")


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


def transport_limits(view: NetworkView, *, prefix: str = "") -> dict[str, Decimal]:
    """location id (as :func:`to_canonical` names it with the same ``prefix``) -> transport limit in kVA:
    feeders rated at their head, transformers at their ratedS."""
    return {loc.id: loc.rating_kva for loc in _place(view, prefix).locations if loc.rating_kva is not None}


# -- locations ---------------------------------------------------------------------------------------------


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


# -- ids and ratings ---------------------------------------------------------------------------------------


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
