"""Welfare-maximising clearing of one interval on a radial network with transport limits (an LP solved by HiGHS).

A uniform-price double auction (see ``DOMAIN.md``, "Clearing") ignores the wires: cheap supply behind a 50 kVA
transformer would be sold to load on the other side of it even when the transformer cannot carry it. Here the
transport limits of the location tree (substation > feeder > transformer > service point) are constraints of the
clearing, and the prices that come out are locational (one per location), so that every award is in the money at
the price of its own location.

LP, one interval, ``n`` bids and ``m`` transport tenders::

    variables   x_i in [0, q_i]   (kW awarded to bid i)      t_k in [0, q_k]   (kW of transport bought from tender k)
    maximise    sum_buys p_i x_i - sum_sells p_i x_i - sum_k p_k t_k            (linprog minimises the negation)
    balance     sum_sells x_i - sum_buys x_i = 0                                   (one equality row: the root)
    per edge e  flow_e = sum_{i below e} s_i x_i,  s_i = +1 sell / -1 buy           (net injection of the subtree)
                 flow_e - sum_{k up e} t_k <= cap_e        ("up" row: export out of the subtree)
                -flow_e - sum_{k down e} t_k <= cap_e      ("down" row: import into the subtree)

Edge ``e`` is the one between a location and its parent, so a location's capacity limits what flows in or out of
the subtree below it. The edge rows are sums over the bids of the subtree, built as a sparse bid -> ancestor-edge
incidence (``scipy.sparse``), never densely. Rows that cannot bind are left out before the solve (an "up" row whose
subtree sells, or whose outside buys, cannot reach the limit; likewise "down"); this is exact and keeps the matrix
small on feeders where most transformers have headroom.

Prices and signs. scipy's HiGHS marginals are the sensitivities of the *minimised* objective (= -welfare) to the
right-hand sides: ``mu = res.eqlin.marginals[0]`` and ``nu = res.ineqlin.marginals`` (``nu <= 0`` for a ``<=`` row
of a minimisation, ``0`` when slack). The price at location L is the cost of serving one more kW of fixed demand
at L. Extra demand ``d`` at L changes the balance rhs by ``+d`` and, for every constrained edge e on the path from
L to the root, the "up" rhs by ``+d`` (the subtree may export ``d`` more: the load eats it) and the "down" rhs by
``-d``. Hence::

    price_L = mu + sum_{e on path(L)} (nu_up_e - nu_down_e)

With no binding limit every price equals ``mu``, the uniform clearing price. A binding "up" row (export limit, cheap
supply trapped behind a transformer) makes ``nu_up < 0``: prices inside are lower. A binding "down" row (import
limit, a load pocket) makes ``nu_down < 0``: prices inside are higher. The reduced cost of a buy at L is
``price_L - p_i`` and of a sell is ``p_i - price_L``, so by LP optimality an awarded buy pays no more than its bid
and an awarded sell receives no less than its offer.

Operating envelopes (``Network.import_limit`` / ``export_limit``) are one-way limits on the same edges: the "up" row
of an edge with an export envelope has the right-hand side ``min(cap_e, export_e)``, the "down" row
``min(cap_e, import_e)``, so they price exactly like a transformer limit (a binding export envelope at a seller's
connection point lowers the price there and, when that seller was needed, raises it everywhere else). Only when a
transport tender could add to that edge and direction does the envelope get a row of its own, which transport does
not relax. A network without envelopes builds the same rows as before they existed.

Transport tenders (TeMIX "transport" product) are directional: a tender from a child location to its parent adds
to the export ("up") limit of the child's edge, one from a parent to its child adds to the import ("down") limit.
The LP buys one when its price is below the congestion it relieves.

Active set. Most of 1e5 bids are deep in or deep out of the money at their location's price, and making each one an
LP column is what costs. So the LP is first solved with only the bids near a guess of their location's price as
columns (the share ``_WINDOW_SHARE`` nearest; the guess is the uniform price, moved inside a subtree whose limit the
subtree's own bids would overrun at that price); every other bid is fixed at the bound the guess puts it at (``q``
when in the money, else 0), its injection moved into the right-hand sides (balance and edge rows). A fixing that
breaks a limit whatever the columns do frees the bids below that limit first. Then the fixing is verified with the
prices of the reduced solution: a bid fixed at ``q`` must have a reduced cost <= 0 there (buy: ``p_i >= price_L``;
sell: ``p_i <= price_L``), one fixed at 0 a reduced cost >= 0 (within ``_REDUCED_COST_TOL``). When that holds, the
reduced solution with the fixed bids and the reduced LP's duals satisfies the KKT conditions of the full LP (primal
feasible, every column dual feasible, complementary slackness), so it *is* an optimum of the full LP, with the same
welfare; when the full LP's optimum is unique the awards are the same, and so are the prices when its duals are
unique. (With ties, e.g. two sells at exactly the marginal price, any split between them is optimal and the full
LP and the reduced one may pick different ones: same welfare, same optimality conditions.) Bids that fail the check
become columns, with those near the new prices, and the LP is solved again; after ``_MAX_ROUNDS`` rounds (a fixing
that leaves no feasible point, or a reduced LP HiGHS fails on, counts as a round and widens the window) the full LP
is solved. On IEEE 9500 with 1e5 bids one round of ~11,000 columns suffices.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

__all__ = [
    "DEFAULT_PRICE_CAP",
    "DEFAULT_PRICE_FLOOR",
    "Bids",
    "Network",
    "NetworkClearingResult",
    "TransportTender",
    "clear_network",
    "overloaded",
]

DEFAULT_PRICE_CAP = 9999.0  # GridLAB-D's default cap; unresponsive load bids at the cap
DEFAULT_PRICE_FLOOR = -9999.0
# HiGHS interior point (with its default crossover to a vertex, so the duals are those of a basis) and no presolve.
# Measured on IEEE 9500 with 1e5 bids, one core: dual simplex 1.8 s with presolve / 1.4 s without; IPM 0.8 s with
# presolve / 0.56 s without. HiGHS presolve is pathological on the one-row LP a network without limits gives
# (20 s against 0.25 s), and this LP has nothing for it to remove that the row pruning below does not already.
_METHOD = "highs-ipm"
_OPTIONS = {"presolve": False}
# A flow within this much (kW, scaled up with the limit) of its limit counts as binding.
_BINDING_TOL = 1e-6
# Active set: start with this share of the bids (at least _WINDOW_MIN) as LP columns, widen at most _MAX_ROUNDS
# times, then solve the full LP. A fixed bid counts as wrongly fixed when its reduced cost is off by more than
# _REDUCED_COST_TOL.
_WINDOW_SHARE = 0.1
_WINDOW_MIN = 200
_MAX_ROUNDS = 6
_REDUCED_COST_TOL = 1e-9


@dataclass(frozen=True, slots=True)
class Network:
    """A radial location tree. ``parent`` maps every location to its parent (``None`` for the one root);
    ``capacity_kva`` limits the flow on the edge between a location and its parent, both ways. A location
    without a capacity (or with ``inf``) is unlimited; a capacity given for the root is ignored (it has no edge).

    ``import_limit`` and ``export_limit`` bound the same edge one way each, on top of the capacity: the net import
    into (export out of) the location's subtree, which for a connection point is its own net injection. They are
    operating envelopes, not wires: transport tenders add to the capacity, never to an envelope (an edge with
    both gets two rows, see :func:`clear_network`). Absent = no envelope.

    Checked on construction so that a bad tree fails with a reason instead of an LP that means something else.
    """

    parent: Mapping[str, str | None]
    capacity_kva: Mapping[str, float | Decimal] = field(default_factory=dict)
    import_limit: Mapping[str, float | Decimal] = field(default_factory=dict)
    export_limit: Mapping[str, float | Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_tree(self.parent)
        for what, limits in (
            ("capacity", self.capacity_kva),
            ("import limit", self.import_limit),
            ("export limit", self.export_limit),
        ):
            _check_limits(self.parent, what, limits)

    @property
    def root(self) -> str:
        return next(loc for loc, par in self.parent.items() if par is None)


def _check_limits(parent: Mapping[str, str | None], what: str, limits: Mapping[str, float | Decimal]) -> None:
    for loc, cap in limits.items():
        if loc not in parent:
            raise ValueError(f"{what} given for unknown location {loc!r}")
        value = float(cap)
        if math.isnan(value) or value < 0:
            raise ValueError(f"{what} of {loc!r} must be >= 0 (got {cap!r})")


def _check_tree(parent: Mapping[str, str | None]) -> None:
    """One root, every parent known, no cycle: the LP's subtree sums are only flows on a tree."""
    if not parent:
        raise ValueError("network has no locations")
    roots = [loc for loc, par in parent.items() if par is None]
    if len(roots) != 1:
        raise ValueError(f"network must have exactly one root (location without parent), found {len(roots)}")
    for loc, par in parent.items():
        if par is not None and par not in parent:
            raise ValueError(f"location {loc!r} has unknown parent {par!r}")
    # Walk up from every location; memoise the ones known to reach the root.
    reaches_root: set[str] = {roots[0]}
    for start in parent:
        path: list[str] = []
        on_path: set[str] = set()
        node: str | None = start
        while node is not None and node not in reaches_root:
            if node in on_path:
                raise ValueError(f"cycle in the location tree through {node!r}")
            path.append(node)
            on_path.add(node)
            node = parent[node]
        reaches_root.update(path)


@dataclass(frozen=True, slots=True)
class Bids:
    """Column arrays of one interval's bids, so that 1e5 bids do not become 1e5 Python objects.

    ``side`` holds ``"buy"`` or ``"sell"``; ``quantity_kw`` is a constant rate over the interval; ``price`` is
    per kWh (any currency, as long as it is one).
    """

    ids: Sequence[str]
    side: Sequence[str]
    location: Sequence[str]
    quantity_kw: Sequence[float]
    price: Sequence[float]

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, str, float, float]]) -> Bids:
        """``(id, side, location, quantity_kw, price)`` rows, as a tender list reads."""
        cols = list(zip(*rows, strict=True)) or [(), (), (), (), ()]
        return cls(
            ids=list(cols[0]),
            side=list(cols[1]),
            location=list(cols[2]),
            quantity_kw=np.asarray(cols[3], dtype=float),
            price=np.asarray(cols[4], dtype=float),
        )

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class TransportTender:
    """An offer of ``quantity_kw`` extra capacity from ``from_location`` to an adjacent ``to_location``."""

    id: str
    from_location: str
    to_location: str
    quantity_kw: float
    price: float


@dataclass(frozen=True, slots=True)
class NetworkClearingResult:
    """Outcome of one interval.

    ``prices``: locational price per location; ``awards``: kW per bid id and per transport tender id;
    ``flows``: kW on the edge of every non-root location to its parent (positive = out of the subtree, export);
    ``binding``: locations whose edge flow sits at its limit (capacity plus transport bought); ``welfare``: buy
    value minus sell cost minus transport cost, per hour of the interval; ``status``: ``"optimal"`` or ``"empty"``
    (no bids: no prices).
    """

    prices: dict[str, float]
    awards: dict[str, float]
    flows: dict[str, float]
    binding: list[str]
    welfare: float
    status: str


def clear_network(
    network: Network,
    bids: Bids,
    transport: Sequence[TransportTender] = (),
    *,
    price_cap: float = DEFAULT_PRICE_CAP,
    price_floor: float = DEFAULT_PRICE_FLOOR,
) -> NetworkClearingResult:
    """Clear ``bids`` on ``network`` (see the module docstring for the LP and the price signs).

    Raises ValueError on bad input (unknown location, bad side, negative or non-finite quantity, price outside
    ``[price_floor, price_cap]``, duplicate id, transport between non-adjacent locations) and RuntimeError if
    HiGHS does not report an optimum (it always should: awarding nothing is feasible and awards are bounded).
    """
    tree = _Tree(network)
    n = len(bids)
    loc_idx, is_buy, qty, price = _check_bids(bids, tree, price_cap, price_floor)
    tenders = _check_transport(transport, tree, set(bids.ids), price_cap, price_floor)
    if n == 0:
        flows = {tree.names[i]: 0.0 for i in range(tree.size) if tree.parent[i] >= 0}
        return NetworkClearingResult({}, {t.id: 0.0 for t in transport}, flows, [], 0.0, "empty")

    sign = np.where(is_buy, -1.0, 1.0)
    # Totals per subtree for pruning rows that cannot bind.
    sells_below = tree.subtree_sum(np.bincount(loc_idx, weights=np.where(is_buy, 0.0, qty), minlength=tree.size))
    buys_below = tree.subtree_sum(np.bincount(loc_idx, weights=np.where(is_buy, qty, 0.0), minlength=tree.size))
    total_sells, total_buys = sells_below[tree.root], buys_below[tree.root]

    cap = tree.capacity
    max_up = np.minimum(sells_below, total_buys - buys_below)  # most the subtree can export
    max_down = np.minimum(buys_below, total_sells - sells_below)  # most it can import
    has_edge = tree.parent >= 0
    # Wire rows hold the capacity, tightened by an envelope where no transport tender can add to that edge and
    # direction; an edge with both an envelope and a tender gets a separate envelope row, which transport does not
    # relieve (rare: transport is bought between network nodes, envelopes sit at connection points).
    t_up = np.zeros(tree.size, dtype=bool)
    t_down = np.zeros(tree.size, dtype=bool)
    for edge, up, _ in tenders:
        (t_up if up else t_down)[edge] = True
    wire_up = np.where(t_up, cap, tree.cap_up) if tree.enveloped else cap
    wire_down = np.where(t_down, cap, tree.cap_down) if tree.enveloped else cap
    # A row that cannot bind without transport cannot bind with it either (tenders only add capacity).
    up_rows = np.flatnonzero(has_edge & np.isfinite(wire_up) & (max_up > wire_up))
    down_rows = np.flatnonzero(has_edge & np.isfinite(wire_down) & (max_down > wire_down))
    groups = [(up_rows, 1.0), (down_rows, -1.0)]  # up rows: +flow <= limit; down rows: -flow <= limit
    bounds = [wire_up[up_rows], wire_down[down_rows]]
    if tree.enveloped:
        env_up = np.flatnonzero(has_edge & t_up & (max_up > tree.export_env))
        env_down = np.flatnonzero(has_edge & t_down & (max_down > tree.import_env))
        groups += [(env_up, 1.0), (env_down, -1.0)]
        bounds += [tree.export_env[env_up], tree.import_env[env_down]]
    row_loc = np.concatenate([rows for rows, _ in groups]).astype(np.int64)
    row_sign = np.concatenate([np.full(len(rows), s) for rows, s in groups])

    # Bid -> ancestor-edge incidence, restricted to the rows kept: B[i, r] = s_i if bid i is below edge r.
    m_up, m_down = len(up_rows), len(down_rows)
    anc = tree.ancestors  # CSR: location -> every location on its path to the root, itself included
    col_of_up = np.full(tree.size, -1)
    col_of_up[up_rows] = np.arange(m_up)
    col_of_down = np.full(tree.size, -1)
    col_of_down[down_rows] = m_up + np.arange(m_down)
    blocks = []
    for rows, direction in groups:
        sub = anc[:, rows]  # location -> constrained ancestors (kept rows only; rows are sorted)
        sub.eliminate_zeros()
        per_bid = sub[loc_idx].tocsr()  # n x rows
        per_bid.data = per_bid.data * np.repeat(sign * direction, np.diff(per_bid.indptr))
        blocks.append(per_bid)
    a_x = sp.hstack(blocks, format="csc").T  # rows x n
    n_t = len(tenders)
    t_rows: list[int] = []
    t_cols: list[int] = []
    for k, (edge, up, _) in enumerate(tenders):
        row = col_of_up[edge] if up else col_of_down[edge]
        if row >= 0:
            t_rows.append(int(row))
            t_cols.append(k)
    a_t = sp.csc_matrix((-np.ones(len(t_rows)), (t_rows, t_cols)), shape=(len(row_loc), n_t))
    b_ub = np.concatenate(bounds)
    t_price = np.array([t.price for _, _, t in tenders], dtype=float)
    t_qty = np.array([t.quantity_kw for _, _, t in tenders], dtype=float)
    c_x = np.where(is_buy, -price, price)
    solve = _ReducedLP(a_x.tocsc(), a_t, b_ub, sign, c_x, qty, t_price, t_qty, row_loc, row_sign, anc)

    # Active set (see "Active set" in the module docstring): solve with only the bids near their location's price
    # as columns, the rest fixed at the bound that price puts them at; verify the fixing with the reduced costs at
    # the prices that come out; free the bids it got wrong and those near the new prices; else the full LP.
    constrained = np.zeros(tree.size, dtype=bool)
    constrained[row_loc] = True
    own = _price_estimate(tree, constrained, loc_idx, is_buy, qty, price)  # price guess at each bid's location
    free, delta = _initial_window(own, price)
    for _ in range(_MAX_ROUNDS):
        fixed_x = np.where(np.where(is_buy, price > own, price < own), qty, 0.0)
        out = solve(free, fixed_x)
        if out is None:  # the fixed injections alone break a limit or the balance: widen
            delta *= 2.0
            free |= np.abs(price - own) <= delta
            continue
        x, t_bought, node_price = out
        own = node_price[loc_idx]
        wrong = ~free & np.where(
            is_buy,
            np.where(x > 0.0, price < own - _REDUCED_COST_TOL, price > own + _REDUCED_COST_TOL),
            np.where(x > 0.0, price > own + _REDUCED_COST_TOL, price < own - _REDUCED_COST_TOL),
        )
        if not wrong.any():
            break
        free |= wrong | (np.abs(price - own) <= delta)
    else:
        out = solve(np.ones(n, dtype=bool), np.zeros(n))
        if out is None:
            raise RuntimeError("HiGHS did not clear the interval")
        x, t_bought, node_price = out

    flow = tree.subtree_sum(np.bincount(loc_idx, weights=sign * x, minlength=tree.size))
    up_bought = np.zeros(tree.size)
    down_bought = np.zeros(tree.size)
    for (edge, up, _), amount in zip(tenders, t_bought, strict=True):
        (up_bought if up else down_bought)[edge] += amount
    lim_up, lim_down = cap + up_bought, cap + down_bought
    if tree.enveloped:  # transport adds to the wire, never to the envelope
        lim_up, lim_down = np.minimum(lim_up, tree.export_env), np.minimum(lim_down, tree.import_env)
    tol_up, tol_down = _tolerance(tree.cap_up), _tolerance(tree.cap_down)
    at_limit = has_edge & ((flow >= lim_up - tol_up) | (-flow >= lim_down - tol_down))  # inf limits never reach
    awards = dict(zip(bids.ids, x.tolist(), strict=True))
    awards.update(zip((t.id for _, _, t in tenders), t_bought.tolist(), strict=True))
    names = tree.names
    return NetworkClearingResult(
        prices=dict(zip(names, node_price.tolist(), strict=True)),
        awards=awards,
        flows={names[i]: float(flow[i]) for i in np.flatnonzero(has_edge)},
        binding=[names[i] for i in np.flatnonzero(at_limit)],
        welfare=float(-(c_x @ x) - t_price @ t_bought),
        status="optimal",
    )


def overloaded(network: Network, injection: Mapping[str, float], *, tolerance: float = _BINDING_TOL) -> list[str]:
    """Locations whose edge to the parent would carry more than its limit with these net injections (kW out).

    The market asks this of the plain auction's result first: with no limit overrun, that result is the network
    optimum too, and the plain auction is the one that knows the clearing types and all-or-none tenders.
    """
    tree = _Tree(network)
    values = np.zeros(tree.size)
    for location, value in injection.items():
        values[tree.index[location]] += value
    flow = tree.subtree_sum(values)
    up = tree.cap_up + _tolerance(tree.cap_up, tolerance)
    down = tree.cap_down + _tolerance(tree.cap_down, tolerance)
    over = (tree.parent >= 0) & ((flow > up) | (-flow > down))
    return sorted(tree.names[i] for i in np.flatnonzero(over))


def _tolerance(limit: np.ndarray, tolerance: float = _BINDING_TOL) -> np.ndarray:
    """How close (kW) a flow may come to ``limit`` and count as at it: relative for big limits, absolute below 1."""
    return tolerance * np.maximum(1.0, np.where(np.isfinite(limit), limit, 0.0))


class _ReducedLP:
    """The LP with only the bids of a ``free`` mask as columns; the others are fixed at ``fixed_x`` (0 or ``q``)
    and their injections moved to the right-hand sides. Returns (awards of all bids, transport bought, price per
    location), or None when the fixing leaves no feasible point."""

    def __init__(
        self,
        a_x: sp.csc_matrix,
        a_t: sp.csc_matrix,
        b_ub: np.ndarray,
        sign: np.ndarray,
        c_x: np.ndarray,
        qty: np.ndarray,
        t_price: np.ndarray,
        t_qty: np.ndarray,
        row_loc: np.ndarray,
        row_sign: np.ndarray,
        anc: sp.csr_matrix,
    ) -> None:
        self.a_x, self.a_t, self.b_ub, self.sign, self.c_x, self.qty = a_x, a_t, b_ub, sign, c_x, qty
        self.t_price, self.t_qty, self.row_loc, self.row_sign, self.anc = t_price, t_qty, row_loc, row_sign, anc
        self.a_x_rows = a_x.tocsr()
        self.a_x_neg = self.a_x_rows.minimum(0.0)  # the most a row's columns can take off its flow, per kW

    def __call__(self, free: np.ndarray, fixed_x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``free`` is updated in place: bids below a limit that the fixed injections break whatever the columns do
        become columns."""
        rows = self.a_x.shape[0]
        while rows:
            x = np.where(free, 0.0, fixed_x)
            over = np.flatnonzero(self.a_x @ x + self.a_x_neg @ np.where(free, self.qty, 0.0) > self.b_ub)
            if not len(over):
                break
            free[self.a_x_rows[over].indices] = True
        x = np.where(free, 0.0, fixed_x)
        cols = np.flatnonzero(free)
        if len(cols) < len(x):  # fixed sells minus fixed buys must be taken up by the columns (and transport cannot)
            imbalance = self.sign @ x
            q_free, s_free = self.qty[cols], self.sign[cols]
            if not -(q_free @ (s_free > 0)) <= imbalance <= q_free @ (s_free < 0):
                return None
        a_ub = sp.hstack([self.a_x[:, cols], self.a_t], format="csc")
        b_ub = self.b_ub - self.a_x @ x if rows else self.b_ub
        c = np.concatenate([self.c_x[cols], self.t_price])
        a_eq = sp.csr_matrix(np.concatenate([self.sign[cols], np.zeros(len(self.t_price))])[None, :])
        bounds = np.column_stack([np.zeros(len(c)), np.concatenate([self.qty[cols], self.t_qty])])
        res = linprog(
            c,
            A_ub=a_ub if rows else None,
            b_ub=b_ub if rows else None,
            A_eq=a_eq,
            b_eq=np.array([-(self.sign @ x)]),
            bounds=bounds,
            method=_METHOD,
            options=_OPTIONS,
        )
        if res.status != 0 and len(cols) < len(x):  # infeasible (only possible with bids fixed), or a HiGHS failure
            return None
        if res.status != 0:
            raise RuntimeError(f"HiGHS did not clear the interval: {res.message}")
        n_free = len(cols)
        x[cols] = np.clip(res.x[:n_free], 0.0, self.qty[cols])
        t_bought = np.clip(res.x[n_free:], 0.0, self.t_qty)
        mu = float(res.eqlin.marginals[0])
        nu = res.ineqlin.marginals if rows else np.zeros(0)
        # nu_up - nu_down of each location's own edge (wire and envelope rows alike)
        congestion = np.bincount(self.row_loc, weights=self.row_sign * nu, minlength=self.anc.shape[0])
        return x, t_bought, mu + self.anc @ congestion


def _uniform_price(is_buy: np.ndarray, qty: np.ndarray, price: np.ndarray) -> float:
    """Where supply (sells at or below) first covers demand (buys at or above): a sort walk, no limits."""
    order = np.argsort(price, kind="stable")
    q_buy = np.where(is_buy, qty, 0.0)[order]
    q_sell = np.where(is_buy, 0.0, qty)[order]
    excess = np.cumsum(q_sell) - (q_buy.sum() - np.cumsum(q_buy) + q_buy)
    return float(price[order][min(int(np.searchsorted(excess, 0.0)), len(price) - 1)])


def _price_estimate(
    tree: _Tree, constrained: np.ndarray, loc_idx: np.ndarray, is_buy: np.ndarray, qty: np.ndarray, price: np.ndarray
) -> np.ndarray:
    """A guess of each bid's location price: the uniform price ``p0``, except below a limit, where the bids of the
    subtree under their deepest limit are cleared against ``p0`` with the net export clipped to that limit. Only a
    starting point for the active set: exactness comes from the reduced-cost check, not from this guess."""
    p0 = _uniform_price(is_buy, qty, price)
    own = np.full(len(price), p0)
    anc = tree.ancestors
    # Parents come before children in the tree's order, so the deepest limited ancestor has the largest index.
    marked = np.where(constrained[anc.indices], anc.indices, -1)
    deepest = np.maximum.reduceat(marked, anc.indptr[:-1])
    group = deepest[loc_idx]
    sel = np.flatnonzero(group >= 0)
    if not len(sel):
        return own
    order = sel[np.lexsort((price[sel], group[sel]))]
    g, p, q, buy = group[order], price[order], qty[order], is_buy[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    size = np.diff(np.r_[starts, len(g)])

    def cum_in_group(v: np.ndarray) -> np.ndarray:
        c = np.cumsum(v)
        return c - np.repeat(c[starts] - v[starts], size)

    q_buy, q_sell = np.where(buy, q, 0.0), np.where(buy, 0.0, q)
    buy_total = np.repeat(cum_in_group(q_buy)[np.r_[starts[1:], len(g)] - 1], size)
    net = cum_in_group(q_sell) - (buy_total - cum_in_group(q_buy) + q_buy)  # net export at each bid's price
    at_p0 = np.add.reduceat(np.where(p <= p0, q_sell, 0.0) - np.where(p >= p0, q_buy, 0.0), starts)
    cap_up, cap_down = tree.cap_up[g[starts]], tree.cap_down[g[starts]]
    target = np.repeat(np.clip(at_p0, -cap_down, cap_up), size)
    est = np.full(len(starts), p0)
    over, under = at_p0 > cap_up, at_p0 < -cap_down
    low = np.minimum.reduceat(np.where(net >= target, p, np.inf), starts)  # export capped: price falls to here
    high = np.maximum.reduceat(np.where(net <= target, p, -np.inf), starts)  # import capped: price rises to here
    est[over] = low[over]
    est[under] = high[under]
    est[~np.isfinite(est)] = p0
    own[order] = np.repeat(est, size)
    return own


def _initial_window(own: np.ndarray, price: np.ndarray) -> tuple[np.ndarray, float]:
    """The bids nearest their location's guessed price, and the half-width of that window."""
    n = len(price)
    count = min(n, max(_WINDOW_MIN, int(_WINDOW_SHARE * n)))
    width = np.abs(price - own)
    delta = float(np.partition(width, count - 1)[count - 1])
    return width <= delta, max(delta, 1e-9)


class _Tree:
    """The network as index arrays: parent index (-1 for the root), capacity (inf = none), depth levels, and the
    location -> ancestors incidence (sparse, each row the path to the root) from which the LP rows are cut."""

    def __init__(self, network: Network) -> None:
        # Parents before children, so that depth and ancestor paths are built in one pass.
        names = _topological(network.parent)
        self.names = names
        self.index = {name: i for i, name in enumerate(names)}
        self.size = len(names)
        self.parent = np.array([self.index[p] if (p := network.parent[nm]) is not None else -1 for nm in names])
        self.root = int(np.flatnonzero(self.parent < 0)[0])
        self.capacity = self._per_location(network.capacity_kva)
        # Envelopes: one-way limits of the same edges. Without any, the limits both ways are the capacity itself
        # (the same array: nothing is computed for a network without envelopes).
        self.enveloped = bool(network.import_limit or network.export_limit)
        self.import_env = self._per_location(network.import_limit)
        self.export_env = self._per_location(network.export_limit)
        self.cap_up = np.minimum(self.capacity, self.export_env) if self.enveloped else self.capacity
        self.cap_down = np.minimum(self.capacity, self.import_env) if self.enveloped else self.capacity
        depth = np.zeros(self.size, dtype=np.int64)
        paths: list[list[int]] = []
        for i in range(self.size):
            p = self.parent[i]
            depth[i] = 0 if p < 0 else depth[p] + 1
            paths.append([i] if p < 0 else [*paths[p], i])
        self.levels = [np.flatnonzero(depth == d) for d in range(int(depth.max()) + 1)]
        indptr = np.concatenate([[0], np.cumsum([len(pth) for pth in paths])])
        indices = np.fromiter((j for pth in paths for j in pth), dtype=np.int64, count=int(indptr[-1]))
        self.ancestors = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(self.size, self.size))

    def _per_location(self, limits: Mapping[str, float | Decimal]) -> np.ndarray:
        out = np.full(self.size, np.inf)
        for loc, value in limits.items():
            out[self.index[loc]] = float(value)
        return out

    def subtree_sum(self, values: np.ndarray) -> np.ndarray:
        """Per location, the sum of ``values`` over its subtree (deepest level first)."""
        total = values.astype(float)
        for level in reversed(self.levels[1:]):
            np.add.at(total, self.parent[level], total[level])
        return total


def _topological(parent: Mapping[str, str | None]) -> list[str]:
    children: dict[str, list[str]] = {loc: [] for loc in parent}
    root = ""
    for loc, par in parent.items():
        if par is None:
            root = loc
        else:
            children[par].append(loc)
    order = [root]
    for loc in order:  # grows while iterating: breadth-first
        order.extend(children[loc])
    return order


def _check_bids(
    bids: Bids, tree: _Tree, price_cap: float, price_floor: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arrays (location index, is_buy, quantity, price) of valid bids; ValueError naming the first bad one."""
    n = len(bids.ids)
    for name, col in (("side", bids.side), ("location", bids.location), ("quantity_kw", bids.quantity_kw)):
        if len(col) != n:
            raise ValueError(f"bids: {name} has {len(col)} entries for {n} ids")
    if len(bids.price) != n:
        raise ValueError(f"bids: price has {len(bids.price)} entries for {n} ids")
    if len(set(bids.ids)) != n:
        raise ValueError("bids: duplicate bid ids")
    if not price_floor <= price_cap:
        raise ValueError(f"price floor {price_floor} above price cap {price_cap}")
    side = np.asarray(bids.side, dtype=str)
    is_buy = side == "buy"
    bad = np.flatnonzero(~is_buy & (side != "sell"))
    if len(bad):
        raise ValueError(f"bid {bids.ids[bad[0]]!r}: side must be 'buy' or 'sell', got {side[bad[0]]!r}")
    qty = np.asarray(bids.quantity_kw, dtype=float)
    price = np.asarray(bids.price, dtype=float)
    bad = np.flatnonzero(~np.isfinite(qty) | (qty < 0))
    if len(bad):
        raise ValueError(f"bid {bids.ids[bad[0]]!r}: quantity must be finite and >= 0, got {qty[bad[0]]}")
    bad = np.flatnonzero(~(price >= price_floor) | ~(price <= price_cap))
    if len(bad):
        raise ValueError(f"bid {bids.ids[bad[0]]!r}: price {price[bad[0]]} outside [{price_floor}, {price_cap}]")
    # Map location names to indices through the distinct names only (1e5 bids sit on ~1e3 locations).
    names, inverse = np.unique(np.asarray(bids.location, dtype=str), return_inverse=True)
    index = tree.index
    unknown = [nm for nm in names.tolist() if nm not in index]
    if unknown:
        raise ValueError(f"bids at unknown location(s): {', '.join(map(repr, unknown[:5]))}")
    loc_idx = np.array([index[nm] for nm in names.tolist()], dtype=np.int64)[inverse.reshape(-1)]
    return loc_idx, is_buy, qty, price


def _check_transport(
    transport: Sequence[TransportTender], tree: _Tree, bid_ids: set[str], price_cap: float, price_floor: float
) -> list[tuple[int, bool, TransportTender]]:
    """(edge = child location index, up?, tender) per tender; ValueError when it is not on one edge."""
    out: list[tuple[int, bool, TransportTender]] = []
    seen: set[str] = set(bid_ids)
    for t in transport:
        if t.id in seen:
            raise ValueError(f"transport tender {t.id!r}: id already used")
        seen.add(t.id)
        for loc in (t.from_location, t.to_location):
            if loc not in tree.index:
                raise ValueError(f"transport tender {t.id!r}: unknown location {loc!r}")
        a, b = tree.index[t.from_location], tree.index[t.to_location]
        if tree.parent[a] == b:
            out.append((a, True, t))  # child -> parent: export out of a's subtree
        elif tree.parent[b] == a:
            out.append((b, False, t))  # parent -> child: import into b's subtree
        else:
            raise ValueError(f"transport tender {t.id!r}: {t.from_location!r} and {t.to_location!r} are not adjacent")
        if not (math.isfinite(t.quantity_kw) and t.quantity_kw >= 0):
            raise ValueError(f"transport tender {t.id!r}: quantity must be finite and >= 0")
        if not price_floor <= t.price <= price_cap:
            raise ValueError(f"transport tender {t.id!r}: price {t.price} outside [{price_floor}, {price_cap}]")
    return out
