"""Network-aware clearing (gateway.market.network_clearing): against a uniform-price reference when no limit binds,
price separation and flows at the limit when one does, and the LP's optimality conditions on random small trees."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.market import network_clearing as nc
from gateway.market.network_clearing import Bids, Network, TransportTender, clear_network

TOL = 1e-6

# sub > fdr > {xfA > spA, xfB > spB}
PARENTS: dict[str, str | None] = {"sub": None, "fdr": "sub", "xfA": "fdr", "xfB": "fdr", "spA": "xfA", "spB": "xfB"}


def uniform_reference(rows: list[tuple[str, str, str, float, float]]) -> tuple[float, float]:
    """(cleared kW, welfare) of the unconstrained uniform-price optimum: buys descending, sells ascending, match
    while the buy price covers the sell price (DOMAIN.md, "Clearing")."""
    buys = sorted(([p, q] for _, s, _, q, p in rows if s == "buy"), key=lambda b: -b[0])
    sells = sorted(([p, q] for _, s, _, q, p in rows if s == "sell"), key=lambda b: b[0])
    i = j = 0
    volume = welfare = 0.0
    while i < len(buys) and j < len(sells) and buys[i][0] >= sells[j][0]:
        q = min(buys[i][1], sells[j][1])
        volume += q
        welfare += q * (buys[i][0] - sells[j][0])
        buys[i][1] -= q
        sells[j][1] -= q
        if buys[i][1] <= 0:
            i += 1
        if sells[j][1] <= 0:
            j += 1
    return volume, welfare


def cleared_volume(rows: list[tuple[str, str, str, float, float]], awards: dict[str, float]) -> float:
    return sum(awards[bid_id] for bid_id, side, *_ in rows if side == "buy")


def check_optimality(network: Network, rows, result, transport=()) -> None:
    """Limits respected, awards within [0, q], and no bid on the wrong side of its own location's price."""
    caps = {loc: float(c) for loc, c in network.capacity_kva.items()}
    bought = {}
    for t in transport:
        bought[(t.from_location, t.to_location)] = (
            bought.get((t.from_location, t.to_location), 0.0) + result.awards[t.id]
        )
    for loc, flow in result.flows.items():
        cap = caps.get(loc, math.inf)
        parent = network.parent[loc]
        assert flow <= cap + bought.get((loc, parent), 0.0) + TOL, (loc, flow, cap)
        assert -flow <= cap + bought.get((parent, loc), 0.0) + TOL, (loc, flow, cap)
    net = 0.0
    for bid_id, side, loc, q, p in rows:
        x = result.awards[bid_id]
        assert 0.0 <= x <= q
        lmp = result.prices[loc]
        if side == "buy":
            net -= x
            if x > TOL:
                assert p >= lmp - TOL, (bid_id, p, lmp, x)
            if x < q - TOL:  # left (partly) out: not in the money at its location
                assert p <= lmp + TOL, (bid_id, p, lmp, x)
        else:
            net += x
            if x > TOL:
                assert p <= lmp + TOL, (bid_id, p, lmp, x)
            if x < q - TOL:
                assert p >= lmp - TOL, (bid_id, p, lmp, x)
    assert abs(net) <= TOL
    welfare = sum((p if s == "buy" else -p) * result.awards[i] for i, s, _, _, p in rows)
    welfare -= sum(t.price * result.awards[t.id] for t in transport)
    assert result.welfare == pytest.approx(welfare, abs=1e-6)


# -- no binding limit: the uniform-price optimum ---------------------------------------------------------------


def test_huge_capacities_give_the_uniform_optimum_and_one_price():
    rows = [
        ("b1", "buy", "spA", 40.0, 0.30),
        ("b2", "buy", "spB", 30.0, 0.22),
        ("b3", "buy", "spB", 25.0, 0.12),
        ("s1", "sell", "spA", 50.0, 0.08),
        ("s2", "sell", "spB", 30.0, 0.18),
        ("s3", "sell", "spA", 30.0, 0.25),
    ]
    network = Network(PARENTS, dict.fromkeys(["fdr", "xfA", "xfB", "spA", "spB"], 1e9))
    result = clear_network(network, Bids.from_rows(rows))
    volume, welfare = uniform_reference(rows)
    assert result.status == "optimal"
    assert cleared_volume(rows, result.awards) == pytest.approx(volume)
    assert result.welfare == pytest.approx(welfare)
    assert len(set(round(p, 9) for p in result.prices.values())) == 1
    assert 0.18 <= result.prices["sub"] <= 0.22  # between the marginal sell and the marginal buy
    assert result.binding == []
    check_optimality(network, rows, result)


@st.composite
def unconstrained_cases(draw):
    n = draw(st.integers(2, 10))
    # Distinct prices: the cleared quantity is then unique (no zero-surplus match to take or leave).
    prices = draw(st.lists(st.integers(1, 500), min_size=n, max_size=n, unique=True))
    rows = [
        (
            f"b{i}",
            draw(st.sampled_from(["buy", "sell"])),
            draw(st.sampled_from(list(PARENTS))),
            float(draw(st.integers(0, 100))),
            prices[i] / 100,
        )
        for i in range(n)
    ]
    return rows


@settings(max_examples=150, deadline=None)
@given(unconstrained_cases())
def test_no_binding_limit_matches_the_uniform_reference(rows):
    network = Network(PARENTS, {"fdr": 1e7, "xfA": 1e7, "xfB": 1e7})
    result = clear_network(network, Bids.from_rows(rows))
    volume, welfare = uniform_reference(rows)
    assert cleared_volume(rows, result.awards) == pytest.approx(volume, abs=1e-6)
    assert result.welfare == pytest.approx(welfare, abs=1e-6)
    prices = list(result.prices.values())
    assert max(prices) - min(prices) <= 1e-9
    check_optimality(network, rows, result)


# -- a binding transformer -----------------------------------------------------------------------------------


def test_export_limit_traps_cheap_supply_and_lowers_the_price_inside():
    rows = [
        ("pv", "sell", "spA", 100.0, 0.05),  # cheap supply behind a 50 kVA transformer
        ("grid", "sell", "spB", 200.0, 0.20),
        ("load", "buy", "spB", 120.0, 0.30),
        ("local", "buy", "spA", 10.0, 0.25),
    ]
    network = Network(PARENTS, {"fdr": 1000, "xfA": 50, "xfB": 1000})
    result = clear_network(network, Bids.from_rows(rows))
    assert result.flows["xfA"] == pytest.approx(50.0)
    assert result.binding == ["xfA"]
    assert result.awards["pv"] == pytest.approx(60.0)  # 50 exported + 10 used locally
    assert result.awards["grid"] == pytest.approx(70.0)
    assert result.prices["spA"] == pytest.approx(0.05)
    assert result.prices["xfA"] == pytest.approx(0.05)
    assert result.prices["spB"] == pytest.approx(0.20)
    assert result.prices["sub"] == pytest.approx(0.20)
    assert result.prices["spA"] < result.prices["spB"]
    volume, welfare = uniform_reference(rows)
    assert result.welfare < welfare  # the limit costs welfare...
    assert cleared_volume(rows, result.awards) == pytest.approx(volume)  # ...here by swapping supply, not volume
    check_optimality(network, rows, result)


def test_import_limit_raises_the_price_of_a_load_pocket():
    rows = [
        ("cheap", "sell", "spB", 300.0, 0.05),
        ("pocket", "buy", "spA", 120.0, 0.90),
        ("other", "buy", "spB", 10.0, 0.25),
        ("peaker", "sell", "spA", 20.0, 0.50),
    ]
    network = Network(PARENTS, {"xfA": 50})
    result = clear_network(network, Bids.from_rows(rows))
    assert result.flows["xfA"] == pytest.approx(-50.0)  # importing at the limit
    assert result.binding == ["xfA"]
    assert result.awards["peaker"] == pytest.approx(20.0)
    assert result.awards["pocket"] == pytest.approx(70.0)
    assert result.prices["spA"] == pytest.approx(0.90)
    assert result.prices["spB"] == pytest.approx(0.05)
    check_optimality(network, rows, result)


def test_a_limit_on_the_feeder_separates_everything_below_it_from_the_substation():
    parents = {**PARENTS, "sp0": "sub"}  # a service point straight on the substation, outside the feeder
    rows = [
        ("s", "sell", "spA", 100.0, 0.10),
        ("s2", "sell", "spB", 100.0, 0.12),
        ("b", "buy", "sp0", 150.0, 0.40),
        ("s0", "sell", "sp0", 150.0, 0.35),
    ]
    network = Network(parents, {"fdr": 80})
    result = clear_network(network, Bids.from_rows(rows))
    assert result.flows["fdr"] == pytest.approx(80.0)
    assert (
        result.prices["spA"] == result.prices["spB"] == result.prices["fdr"] == pytest.approx(0.10)
    )  # "s" is marginal
    assert result.prices["sp0"] == pytest.approx(0.35)
    assert result.awards["s2"] == 0.0
    check_optimality(network, rows, result)


# -- random small trees --------------------------------------------------------------------------------------


@st.composite
def random_cases(draw):
    n_loc = draw(st.integers(1, 6))
    names = [f"L{i}" for i in range(n_loc)]
    parents: dict[str, str | None] = {"L0": None}
    for i in range(1, n_loc):
        parents[names[i]] = names[draw(st.integers(0, i - 1))]
    caps = {}
    for name in names[1:]:
        cap = draw(st.one_of(st.none(), st.integers(0, 60)))
        if cap is not None:
            caps[name] = float(cap)
    n_bids = draw(st.integers(0, 10))
    price = st.one_of(st.integers(-20, 120).map(float), st.floats(-20, 120, allow_nan=False))
    rows = [
        (
            f"b{i}",
            draw(st.sampled_from(["buy", "sell"])),
            draw(st.sampled_from(names)),
            float(draw(st.integers(0, 50))),
            draw(price),
        )
        for i in range(n_bids)
    ]
    transport = []
    if n_loc > 1 and draw(st.booleans()):
        child = draw(st.sampled_from(names[1:]))
        up = draw(st.booleans())
        ends = (child, parents[child]) if up else (parents[child], child)
        transport.append(TransportTender("t0", *ends, float(draw(st.integers(0, 30))), draw(st.floats(0, 50))))
    return Network(parents, caps), rows, transport


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_cases())
def test_random_trees_never_exceed_a_limit_and_price_every_award_in_the_money(case):
    network, rows, transport = case
    result = clear_network(network, Bids.from_rows(rows), transport)
    if not rows:
        assert result.status == "empty"
        return
    assert result.status == "optimal"
    check_optimality(network, rows, result, transport)
    _, unconstrained = uniform_reference(rows)
    assert result.welfare <= unconstrained + 1e-6  # limits can only cost welfare (transport included)
    for loc in result.binding:
        cap = float(network.capacity_kva[loc])
        assert abs(result.flows[loc]) >= cap - 1e-6 or transport


# -- transport tenders ---------------------------------------------------------------------------------------

TRAPPED = [
    ("pv", "sell", "spA", 100.0, 0.05),
    ("grid", "sell", "spB", 200.0, 0.20),
    ("load", "buy", "spB", 120.0, 0.30),
]


def test_transport_that_relieves_a_binding_limit_is_bought_when_worth_it():
    network = Network(PARENTS, {"xfA": 50})
    before = clear_network(network, Bids.from_rows(TRAPPED))
    tender = TransportTender("tx", "xfA", "fdr", 30.0, 0.01)  # congestion is worth 0.15/kWh; this costs 0.01
    result = clear_network(network, Bids.from_rows(TRAPPED), [tender])
    assert result.awards["tx"] == pytest.approx(30.0)
    assert result.flows["xfA"] == pytest.approx(80.0)
    assert result.awards["pv"] == pytest.approx(80.0)
    assert result.welfare == pytest.approx(before.welfare + 30 * (0.15 - 0.01))
    check_optimality(network, TRAPPED, result, [tender])


def test_transport_dearer_than_the_congestion_or_in_the_wrong_direction_is_not_bought():
    network = Network(PARENTS, {"xfA": 50})
    for tender in (
        TransportTender("tx", "xfA", "fdr", 30.0, 0.16),  # dearer than the 0.15 price difference
        TransportTender("tx", "fdr", "xfA", 30.0, 0.01),  # import capacity: the pocket exports
    ):
        result = clear_network(network, Bids.from_rows(TRAPPED), [tender])
        assert result.awards["tx"] == pytest.approx(0.0)
        assert result.flows["xfA"] == pytest.approx(50.0)
        assert result.prices["spA"] == pytest.approx(0.05)


def test_transport_on_an_unlimited_edge_is_worthless():
    result = clear_network(
        Network(PARENTS, {"xfA": 50}), Bids.from_rows(TRAPPED), [TransportTender("tx", "spB", "xfB", 30.0, 0.01)]
    )
    assert result.awards["tx"] == 0.0


# -- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parents", "caps", "reason"),
    [
        ({"a": None, "b": "a", "c": "d", "d": "c"}, {}, "cycle"),
        ({"a": "b", "b": "a"}, {}, "exactly one root"),
        ({"a": None, "b": None}, {}, "exactly one root"),
        ({"a": None, "b": "x"}, {}, "unknown parent"),
        ({"a": None, "b": "a"}, {"b": -1.0}, "must be >= 0"),
        ({"a": None, "b": "a"}, {"b": math.nan}, "must be >= 0"),
        ({"a": None, "b": "a"}, {"z": 5.0}, "unknown location"),
        ({}, {}, "no locations"),
    ],
)
def test_bad_networks_are_refused_with_a_reason(parents, caps, reason):
    with pytest.raises(ValueError, match=reason):
        Network(parents, caps)


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ([("b1", "buy", "nowhere", 1.0, 1.0)], "unknown location"),
        ([("b1", "bid", "spA", 1.0, 1.0)], "side must be"),
        ([("b1", "buy", "spA", -1.0, 1.0)], "quantity"),
        ([("b1", "buy", "spA", math.inf, 1.0)], "quantity"),
        ([("b1", "buy", "spA", 1.0, 10_000.0)], "outside"),
        ([("b1", "buy", "spA", 1.0, math.nan)], "outside"),
        ([("b1", "buy", "spA", 1.0, 1.0), ("b1", "sell", "spB", 1.0, 1.0)], "duplicate"),
    ],
)
def test_bad_bids_are_refused_with_a_reason(rows, reason):
    with pytest.raises(ValueError, match=reason):
        clear_network(Network(PARENTS), Bids.from_rows(rows))


def test_price_floor_is_checked_too():
    with pytest.raises(ValueError, match="outside"):
        clear_network(Network(PARENTS), Bids.from_rows([("s", "sell", "spA", 1.0, -5.0)]), price_floor=0.0)


@pytest.mark.parametrize(
    ("tender", "reason"),
    [
        (TransportTender("t", "spA", "fdr", 10.0, 0.1), "not adjacent"),
        (TransportTender("t", "spA", "mars", 10.0, 0.1), "unknown location"),
        (TransportTender("t", "spA", "xfA", -1.0, 0.1), "quantity"),
        (TransportTender("pv", "spA", "xfA", 1.0, 0.1), "already used"),
    ],
)
def test_bad_transport_is_refused_with_a_reason(tender, reason):
    with pytest.raises(ValueError, match=reason):
        clear_network(Network(PARENTS, {"xfA": 50}), Bids.from_rows(TRAPPED), [tender])


def test_capacities_may_be_decimals_as_the_cim_mapper_gives_them():
    from decimal import Decimal

    result = clear_network(Network(PARENTS, {"xfA": Decimal("50")}), Bids.from_rows(TRAPPED))
    assert result.flows["xfA"] == pytest.approx(50.0)


# -- active set: the windowed solve against the full LP --------------------------------------------------------


@st.composite
def many_bid_cases(draw):
    """Random trees with many bids, distinct prices (so that the awards are unique) and transport now and then."""
    network, _, transport = draw(random_cases())
    names = list(network.parent)
    n_bids = draw(st.integers(1, 60))
    prices = draw(st.lists(st.integers(-2000, 12000), min_size=n_bids, max_size=n_bids, unique=True))
    rows = [
        (
            f"b{i}",
            draw(st.sampled_from(["buy", "sell"])),
            draw(st.sampled_from(names)),
            draw(st.integers(0, 200)) / 4,
            prices[i] / 100,
        )
        for i in range(n_bids)
    ]
    # Transport at half-cent prices: never exactly a difference of two bid prices, so buying it is never a tie.
    transport = [dataclasses.replace(t, price=(2 * draw(st.integers(0, 2500)) + 1) / 200) for t in transport]
    share = draw(st.sampled_from([0.0, 0.05, 0.3]))
    return network, rows, transport, share


def solve_with(network, rows, transport, **settings_):
    saved = {name: getattr(nc, name) for name in settings_}
    try:
        for name, value in settings_.items():
            setattr(nc, name, value)
        return clear_network(network, Bids.from_rows(rows), transport)
    finally:
        for name, value in saved.items():
            setattr(nc, name, value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(many_bid_cases())
def test_the_active_set_gives_the_full_lp_optimum(case):
    network, rows, transport, share = case
    windowed = solve_with(network, rows, transport, _WINDOW_SHARE=share, _WINDOW_MIN=1)
    full = solve_with(network, rows, transport, _MAX_ROUNDS=0)  # straight to the LP with every bid a column
    check_optimality(network, rows, windowed, transport)
    assert windowed.welfare == pytest.approx(full.welfare, abs=1e-6)
    for key, award in full.awards.items():
        assert windowed.awards[key] == pytest.approx(award, abs=1e-6), key
    # Prices: where no bid is marginal at a location (say only a zero-quantity one) its price is anywhere in an
    # interval and the two solves may pick different points of it; both must still price every award in the money.
    check_optimality(network, rows, full, transport)
