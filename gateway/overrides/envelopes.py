"""Dynamic operating envelopes from the network and the cleared positions: pure, exact computation.

A dynamic operating envelope (DOE) is the most a connection point may import and export over a span. Here it is
computed for one market interval from

* the radial network: each location's parent and the rating of the edge between it and its parent (kW; a kVA
  rating read as kW at power factor 1, as the clearing reads it; no rating = no limit on that edge);
* the cleared net import of every location (the sum of the participants' positions there, positive = bought =
  import);
* the connection points: the locations that get an envelope (service points with resources). Every other
  location keeps its cleared flow: nobody controls it, so its cleared injection is taken as given.

The guarantee (checked by property tests): if every connection point's net import stays within
``[-export_kw, import_kw]`` and every other location stays at its cleared flow, no edge carries more than its
rating, in either direction. Edges whose rating the fixed flows alone already break are reported in
``overloaded`` (no envelope can make those safe) and the points below them get 0 in that direction.

How the headroom is shared (per direction; import is the mirror image of export):

1. The *budget* of edge ``e`` is its rating minus the fixed (non-point) injection below it.
2. Each point starts at its own cleared export (a DOE is the total a point may export, not only the extra). When the
   points' own exports add up to more than a budget (the cleared state relied on one point's import to carry
   another's export, which separate per-point limits cannot promise), the starts below that edge are scaled down
   in proportion, so that the starts alone are safe.
3. From there all points grow together, at the same rate (``Sharing.EQUAL``) or at a rate proportional to their own
   rating (``Sharing.RATING``), and a point stops growing when an edge on its path (its own service edge
   included) has used its budget: progressive filling, i.e. a max-min fair allocation.

Why equal sharing by default: a DOE is a right to use shared capacity, and in a constrained area each connection
gets the same, which is what distribution operators publishing DOEs (CSIP-AUS) do; it needs no rating data (often
missing for service points); and the filling hands what a small connection cannot use (it stops at its own
rating) to the others, so no capacity is left idle that someone could use. Sharing by rating is offered for
operators whose connection agreements are sized that way.

Why not greedier: a point's export limit may not count on another point's import, because each point may move
anywhere inside its own envelope independently of the others. Hence the limits of all points below an edge add
up to at most the edge's budget, and the envelopes are conservative exactly when the cleared state nets points
against each other.

Numbers are exact: inputs are Decimals, the filling runs on Fractions, and each limit is rounded *down* to
``quantum`` (default 0.001 kW = 1 W, the resolution of a 2030.5 power in watts): rounding down keeps every sum
within its budget. A limit is ``None`` when no finite rating sits anywhere on the point's path (unbounded).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from gateway.market.network_clearing import Network

__all__ = ["DEFAULT_QUANTUM", "Limits", "PointLimits", "Sharing", "compute_limits"]

DEFAULT_QUANTUM = Decimal("0.001")
"""kW; limits are rounded down to this (1 W)."""


class Sharing(StrEnum):
    """How the headroom of a constraining edge is shared among the connection points below it."""

    EQUAL = "equal"
    RATING = "rating"


@dataclass(frozen=True, slots=True)
class PointLimits:
    """A connection point's envelope for one interval (kW, >= 0; None = unbounded)."""

    import_kw: Decimal | None
    export_kw: Decimal | None


@dataclass(frozen=True, slots=True)
class Limits:
    """The envelopes of one interval, and the edges whose rating the uncontrolled flows alone already break
    (``overloaded[direction]``: location ids whose edge to the parent is over, ``"import"`` or ``"export"``)."""

    points: dict[str, PointLimits]
    overloaded: dict[str, list[str]] = field(default_factory=dict)


def compute_limits(
    network: Network,
    points: Iterable[str],
    net_import_kw: Mapping[str, Decimal],
    *,
    sharing: Sharing = Sharing.EQUAL,
    quantum: Decimal = DEFAULT_QUANTUM,
) -> Limits:
    """Import and export limits for every connection point in ``points`` (see the module docstring).

    ``network.capacity_kva`` holds the edge ratings in kW; ``net_import_kw`` the cleared net import per location
    (absent = 0). Raises ValueError naming the problem: an unknown location, the root as a connection point, a
    non-finite number, a non-positive quantum, or sharing by rating with a point that has no rating.
    """
    if not (quantum.is_finite() and quantum > 0):
        raise ValueError(f"quantum must be a positive number of kW, got {quantum}")
    tree = _Paths(network)
    chosen = sorted(set(points))
    for point in chosen:
        if point not in network.parent:
            raise ValueError(f"connection point {point!r} is not in the network")
        if network.parent[point] is None:
            raise ValueError(f"connection point {point!r} is the network root, which has no edge to limit it")
    for location, value in net_import_kw.items():
        if location not in network.parent:
            raise ValueError(f"cleared position at {location!r}, which is not in the network")
        if not value.is_finite():
            raise ValueError(f"cleared position at {location!r} is not a finite number: {value}")
    weights = _weights(network, chosen, sharing)
    injection = {loc: -Fraction(value) for loc, value in net_import_kw.items() if value}  # + = export
    export, over_export = _fill(tree, chosen, weights, injection)
    imports, over_import = _fill(tree, chosen, weights, {loc: -v for loc, v in injection.items()})
    limits = {p: PointLimits(_down(imports[p], quantum), _down(export[p], quantum)) for p in chosen}
    overloaded = {k: v for k, v in (("import", over_import), ("export", over_export)) if v}
    return Limits(points=limits, overloaded=overloaded)


def _weights(network: Network, points: list[str], sharing: Sharing) -> dict[str, Fraction]:
    if sharing is Sharing.EQUAL:
        return dict.fromkeys(points, Fraction(1))
    out: dict[str, Fraction] = {}
    for point in points:
        rating = network.capacity_kva.get(point)
        if rating is None or not math.isfinite(float(rating)):
            raise ValueError(f"sharing by rating needs a rating at every connection point; {point!r} has none")
        out[point] = Fraction(rating)
    return out


class _Paths:
    """Per location, the rated edges on its path to the root (its own edge first); per rated edge, its rating."""

    def __init__(self, network: Network) -> None:
        self.rating: dict[str, Fraction] = {}
        for location, rating in network.capacity_kva.items():
            value = float(rating)
            if network.parent[location] is not None and math.isfinite(value):
                self.rating[location] = Fraction(rating)
        self.parent = network.parent
        self._memo: dict[str, tuple[str, ...]] = {}

    def path(self, location: str) -> tuple[str, ...]:
        found = self._memo.get(location)
        if found is not None:
            return found
        chain: list[str] = []
        node: str | None = location
        while node is not None and node not in self._memo:
            chain.append(node)
            node = self.parent[node]
        above: tuple[str, ...] = self._memo[node] if node is not None else ()
        for loc in reversed(chain):
            above = ((loc,) if loc in self.rating else ()) + above
            self._memo[loc] = above
        return self._memo[location]


def _fill(
    tree: _Paths, points: list[str], weights: Mapping[str, Fraction], injection: Mapping[str, Fraction]
) -> tuple[dict[str, Fraction | None], list[str]]:
    """One direction: the most each point may inject (Fractions; None = unbounded) and the edges the fixed
    injections alone overload. Injections are positive in the direction being limited."""
    point_set = set(points)
    below: dict[str, list[str]] = {}  # rated edge -> points under it
    for point in points:
        for edge in tree.path(point):
            below.setdefault(edge, []).append(point)
    budget: dict[str, Fraction] = {edge: tree.rating[edge] for edge in below}
    for location, value in injection.items():
        if location in point_set:
            continue
        for edge in tree.path(location):
            if edge in budget:
                budget[edge] -= value
    overloaded = sorted(edge for edge, b in budget.items() if b < 0)

    # Starts: each point's own cleared injection, scaled down under an edge whose budget the starts overrun.
    own = {p: max(injection.get(p, Fraction(0)), Fraction(0)) for p in points}
    factor: dict[str, Fraction] = {}
    for edge, under in below.items():
        total = sum((own[p] for p in under), Fraction(0))
        room = max(budget[edge], Fraction(0))
        factor[edge] = Fraction(1) if total <= room else room / total
    start = {p: own[p] * min((factor[e] for e in tree.path(p)), default=Fraction(1)) for p in points}

    # Progressive filling: value_p = start_p + level * w_p while p is active; an edge stops the points under it
    # when used_e = fixed_e + level * active_weight_e reaches its budget.
    result: dict[str, Fraction | None] = {p: None for p in points}
    active = {p for p in points if tree.path(p)}
    for p in points:
        if p in active and weights[p] == 0:
            active.discard(p)
            result[p] = start[p]
    used = {edge: sum((start[p] for p in under), Fraction(0)) for edge, under in below.items()}
    weight = {edge: sum((weights[p] for p in under if p in active), Fraction(0)) for edge, under in below.items()}
    version = dict.fromkeys(below, 0)
    heap: list[tuple[Fraction, str, int]] = [
        ((budget[e] - used[e]) / weight[e], e, 0) for e in sorted(below) if weight[e] > 0
    ]
    heapq.heapify(heap)
    level = Fraction(0)
    while heap:
        at, edge, seen = heapq.heappop(heap)
        if seen != version[edge] or weight[edge] == 0:
            continue
        level = max(level, at)
        touched: set[str] = set()
        for p in below[edge]:
            if p not in active:
                continue
            active.discard(p)
            result[p] = start[p] + level * weights[p]
            for e in tree.path(p):
                used[e] += level * weights[p]
                weight[e] -= weights[p]
                touched.add(e)
        for e in sorted(touched):
            version[e] += 1
            if weight[e] > 0:
                heapq.heappush(heap, ((budget[e] - used[e]) / weight[e], e, version[e]))
    return result, overloaded


def _down(value: Fraction | None, quantum: Decimal) -> Decimal | None:
    """``value`` rounded down to a multiple of ``quantum``, written without trailing zeros (10, not 10.000)."""
    if value is None:
        return None
    steps = math.floor(max(value, Fraction(0)) / Fraction(quantum))
    exact = quantum * steps
    return Decimal(format(exact.normalize(), "f")) if exact else Decimal(0)
