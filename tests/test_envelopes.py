"""Dynamic operating envelopes: the exact computation (properties on random trees), envelopes as constraints of the
network clearing and of market runs, the REST route and CLI on SQLite and PostgreSQL, and a real 2030.5 device
that sees a computed envelope as DERControls with the CSIP-AUS limits."""

from __future__ import annotations

import json
import random
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from certs import TestCa
from http_helpers import post, served
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.api.tls import server_tls_options
from gateway.cli import app as cli
from gateway.config import Settings
from gateway.ingest import Ingestor
from gateway.market.grid import envelope_id, plan_envelopes
from gateway.market.network_clearing import Bids, Network, TransportTender, clear_network, overloaded
from gateway.market.runs import MarketRunner
from gateway.model import Envelope
from gateway.overrides.envelopes import Limits, Sharing, compute_limits
from gateway.protocols.ieee2030_5 import mapper
from gateway.protocols.ieee2030_5.client import Sep2Client
from gateway.protocols.ieee2030_5.identity import lfdi_of_certificate
from gateway.protocols.ieee2030_5.table import default_table
from gateway.store import Store

D = Decimal
Q = D("0.001")  # the default quantum: limits are rounded down to 1 W

# -- the computation: properties ----------------------------------------------------------------------------------


def descendants(parent: dict[str, str | None]) -> dict[str, set[str]]:
    """Each location's subtree (itself included), by walking up from every location."""
    out: dict[str, set[str]] = {loc: set() for loc in parent}
    for loc in parent:
        node: str | None = loc
        while node is not None:
            out[node].add(loc)
            node = parent[node]
    return out


@st.composite
def grids(draw: st.DrawFn, *, rated_points: bool = False) -> tuple[Network, list[str], dict[str, Decimal]]:
    """A random radial tree (2..12 locations), ratings (some missing), connection points and cleared net imports."""
    n = draw(st.integers(2, 12))
    parent: dict[str, str | None] = {"L0": None}
    for i in range(1, n):
        parent[f"L{i}"] = f"L{draw(st.integers(0, i - 1))}"
    others = [loc for loc in parent if loc != "L0"]
    points = sorted(draw(st.sets(st.sampled_from(others), min_size=1)))
    rating = st.decimals(min_value=0, max_value=40, places=1, allow_nan=False, allow_infinity=False)
    ratings: dict[str, Decimal] = {}
    for loc in others:
        value = draw(rating if (rated_points and loc in points) else st.none() | rating)
        if value is not None:
            ratings[loc] = value
    position = st.decimals(min_value=-30, max_value=30, places=3, allow_nan=False, allow_infinity=False)
    net = {loc: draw(position) for loc in parent}
    return Network(parent=parent, capacity_kva=ratings), points, net  # type: ignore[arg-type]


def fixed_injection(network: Network, points: list[str], net: dict[str, Decimal]) -> dict[str, Decimal]:
    """Per location, the export (+) of the locations without envelopes in its subtree, at their cleared flows."""
    below = descendants(dict(network.parent))
    return {e: sum((-net.get(x, D(0)) for x in below[e] if x not in points), D(0)) for e in network.parent}


def check_safe(network: Network, points: list[str], net: dict[str, Decimal], limits: Limits) -> None:
    """Every edge whose rating the uncontrolled flows alone respect is respected in the worst case of the envelopes
    (all points at their export limit, or all at their import limit), so by any mix inside them."""
    below = descendants(dict(network.parent))
    fixed = fixed_injection(network, points, net)
    for edge, rating in network.capacity_kva.items():
        under = [p for p in points if p in below[edge]]
        if not under:
            continue
        for direction, sign in (("export", 1), ("import", -1)):
            alone = sign * fixed[edge]
            if alone > rating:
                assert edge in limits.overloaded.get(direction, []), (edge, direction)
                continue
            assert edge not in limits.overloaded.get(direction, [])
            worst = sum(
                (getattr(limits.points[p], f"{direction}_kw") for p in under), D(0)
            )  # rated edge above: never None
            assert worst + alone <= rating, (edge, direction, worst, alone, rating)


@given(grids(), st.sampled_from([Sharing.EQUAL]))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_points_inside_their_envelopes_never_overload_an_edge(
    grid: tuple[Network, list[str], dict[str, Decimal]], sharing: Sharing
) -> None:
    network, points, net = grid
    limits = compute_limits(network, points, net, sharing=sharing)
    assert set(limits.points) == set(points)
    for found in limits.points.values():
        for value in (found.import_kw, found.export_kw):
            assert value is None or (value >= 0 and value % Q == 0)
    check_safe(network, points, net, limits)
    # And literally: random operating points inside the envelopes, the others at their cleared flows.
    rng = random.Random(len(points))
    below = descendants(dict(network.parent))
    for _ in range(20):
        inject = {loc: -net[loc] for loc in network.parent}
        for p in points:
            low = -(limits.points[p].import_kw if limits.points[p].import_kw is not None else D(100))
            high = limits.points[p].export_kw if limits.points[p].export_kw is not None else D(100)
            inject[p] = low + (high - low) * D(rng.randint(0, 1000)) / 1000
        for edge, rating in network.capacity_kva.items():
            fixed_alone = fixed_injection(network, points, net)[edge]
            flow = sum((inject[x] for x in below[edge]), D(0))
            if any(p in below[edge] for p in points) and abs(fixed_alone) <= rating:
                assert abs(flow) <= rating, (edge, flow, rating)


@given(grids(rated_points=True))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_sharing_by_rating_is_safe_too(grid: tuple[Network, list[str], dict[str, Decimal]]) -> None:
    network, points, net = grid
    check_safe(network, points, net, compute_limits(network, points, net, sharing=Sharing.RATING))


@given(grids())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_headroom_is_left_idle(grid: tuple[Network, list[str], dict[str, Decimal]]) -> None:
    """Progressive filling: a bounded point stopped because some edge on its path is full (up to the rounding of
    the points below it) or is overloaded by the flows without envelopes."""
    network, points, net = grid
    limits = compute_limits(network, points, net)
    below = descendants(dict(network.parent))
    fixed = fixed_injection(network, points, net)
    for p in points:
        path = [e for e in network.capacity_kva if p in below[e]]
        for direction, sign in (("export", 1), ("import", -1)):
            if getattr(limits.points[p], f"{direction}_kw") is None:
                assert not path
                continue
            full = False
            for e in path:
                under = [x for x in points if x in below[e]]
                used = sum((getattr(limits.points[x], f"{direction}_kw") for x in under), D(0)) + sign * fixed[e]
                if used >= network.capacity_kva[e] - len(under) * Q or e in limits.overloaded.get(direction, []):
                    full = True
            assert full, (p, direction)


@given(
    st.lists(st.decimals(min_value=0, max_value=50, places=2), min_size=1, max_size=8),
    st.lists(st.decimals(min_value=-1, max_value=1, places=3), min_size=8, max_size=8),
)
@settings(max_examples=100, deadline=None)
def test_a_point_with_no_constraint_above_it_gets_its_own_service_rating(
    ratings: list[Decimal], shares: list[Decimal]
) -> None:
    parent: dict[str, str | None] = {"sub": None, "feeder": "sub"} | {f"sp{i}": "feeder" for i in range(len(ratings))}
    capacity = {f"sp{i}": r for i, r in enumerate(ratings)}
    net = {f"sp{i}": r * s for i, (r, s) in enumerate(zip(ratings, shares, strict=False))}  # within the rating
    limits = compute_limits(Network(parent=parent, capacity_kva=capacity), list(capacity), net)  # type: ignore[arg-type]
    for point, rating in capacity.items():
        assert limits.points[point].import_kw == limits.points[point].export_kw == rating
    assert not limits.overloaded


@given(grids())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_points_own_cleared_position_is_inside_its_envelope_when_the_grid_allows_it(
    grid: tuple[Network, list[str], dict[str, Decimal]],
) -> None:
    """When every point's own cleared flow fits every edge without counting on another point's opposite flow,
    each envelope contains the point's own position (a DOE is the total, not the extra)."""
    network, points, net = grid
    below = descendants(dict(network.parent))
    fixed = fixed_injection(network, points, net)
    for edge, rating in network.capacity_kva.items():
        under = [p for p in points if p in below[edge]]
        if sum((max(-net[p], D(0)) for p in under), D(0)) + fixed[edge] > rating:
            return
        if sum((max(net[p], D(0)) for p in under), D(0)) - fixed[edge] > rating:
            return
    limits = compute_limits(network, points, net)
    for p in points:
        if limits.points[p].export_kw is not None:
            assert limits.points[p].export_kw >= max(-net[p], D(0))
            assert limits.points[p].import_kw >= max(net[p], D(0))  # type: ignore[operator]


def test_a_worked_example_shares_a_transformer_equally_and_hands_on_what_a_small_point_cannot_use() -> None:
    """t1 (10 kW) > sp1 (unrated, exports 10 cleared), sp1b (rated 4); t2 (unrated) > sp2 (rated 25, exports 10)."""
    parent: dict[str, str | None] = {"n1": None, "t1": "n1", "t2": "n1", "sp1": "t1", "sp1b": "t1", "sp2": "t2"}
    network = Network(parent=parent, capacity_kva={"t1": D(10), "sp1b": D(4), "sp2": D(25)})
    limits = compute_limits(network, ["sp1", "sp1b", "sp2"], {"sp1": D(-10), "sp2": D(-10), "n1": D(20)})
    assert limits.points["sp1"].export_kw == 10 and limits.points["sp1b"].export_kw == 0  # sp1's cleared 10 fills t1
    assert limits.points["sp1b"].import_kw == 4 and limits.points["sp1"].import_kw == 6  # sp1b stops at 4; sp1 gets 6
    assert limits.points["sp2"].import_kw == limits.points["sp2"].export_kw == 25
    thirds = compute_limits(network, ["sp1", "sp1b"], {})
    assert thirds.points["sp1"].export_kw == 6 and thirds.points["sp1b"].export_kw == 4
    shared = compute_limits(Network(parent=parent, capacity_kva={"t1": D(10)}), ["sp1", "sp1b", "sp2"], {})
    assert shared.points["sp1"].export_kw == shared.points["sp1b"].export_kw == 5
    assert shared.points["sp2"].export_kw is None  # nothing rated above it: unbounded


def test_limits_are_rounded_down_to_whole_watts() -> None:
    parent: dict[str, str | None] = {"n": None, "t": "n", "a": "t", "b": "t", "c": "t"}
    limits = compute_limits(Network(parent=parent, capacity_kva={"t": D(10)}), ["a", "b", "c"], {})
    assert {p.export_kw for p in limits.points.values()} == {D("3.333")}


def test_netting_points_are_scaled_so_that_each_may_move_alone() -> None:
    """The cleared state lets sp2's import carry sp1's export through t (10): separate envelopes cannot count on
    that, so the cleared exports are scaled into what t carries."""
    parent: dict[str, str | None] = {"n": None, "t": "n", "sp1": "t", "sp2": "t", "sp3": "t"}
    network = Network(parent=parent, capacity_kva={"t": D(10)})
    limits = compute_limits(network, ["sp1", "sp3"], {"sp1": D(-12), "sp3": D(-3), "sp2": D(5)})
    # t's export budget: 10 + the 5 sp2 (no envelope) imports = 15 = the points' own 12 + 3: no scaling needed
    assert (limits.points["sp1"].export_kw, limits.points["sp3"].export_kw) == (12, 3)
    tight = compute_limits(network, ["sp1", "sp2", "sp3"], {"sp1": D(-12), "sp3": D(-3), "sp2": D(5)})
    assert (tight.points["sp1"].export_kw, tight.points["sp3"].export_kw, tight.points["sp2"].export_kw) == (8, 2, 0)


@pytest.mark.parametrize(
    ("points", "net", "sharing", "reason"),
    [
        (["nowhere"], {}, Sharing.EQUAL, "'nowhere' is not in the network"),
        (["n"], {}, Sharing.EQUAL, "is the network root"),
        (["a"], {"elsewhere": D(1)}, Sharing.EQUAL, "position at 'elsewhere'"),
        (["a"], {"a": D("NaN")}, Sharing.EQUAL, "not a finite number"),
        (["a"], {}, Sharing.RATING, "'a' has none"),
    ],
)
def test_bad_input_names_the_problem(points: list[str], net: dict[str, Decimal], sharing: Sharing, reason: str) -> None:
    network = Network(parent={"n": None, "a": "n"}, capacity_kva={})
    with pytest.raises(ValueError, match=reason):
        compute_limits(network, points, net, sharing=sharing)


# -- envelopes as constraints of the clearing ---------------------------------------------------------------------

PARENTS: dict[str, str | None] = {"sub": None, "fdr": "sub", "spA": "fdr", "spB": "fdr", "spL": "fdr"}
BOOK = [("cheap", "sell", "spA", 30.0, 0.05), ("dear", "sell", "spB", 30.0, 0.30), ("load", "buy", "spL", 20.0, 0.50)]


def test_an_export_envelope_bounds_a_sellers_point_and_prices_like_a_limit() -> None:
    free = clear_network(Network(parent=PARENTS), Bids.from_rows(BOOK))
    assert free.awards["cheap"] == pytest.approx(20) and free.prices["sub"] == pytest.approx(0.05)
    bound = clear_network(Network(parent=PARENTS, export_limit={"spA": 8}), Bids.from_rows(BOOK))
    assert bound.awards["cheap"] == pytest.approx(8) and bound.awards["dear"] == pytest.approx(12)
    assert bound.prices["sub"] == pytest.approx(0.30) and bound.prices["spA"] == pytest.approx(0.05)
    assert bound.binding == ["spA"]
    assert overloaded(Network(parent=PARENTS, export_limit={"spA": 8}), {"spA": 9.0, "spL": -9.0}) == ["spA"]
    assert overloaded(Network(parent=PARENTS, import_limit={"spA": 8}), {"spA": 9.0, "spL": -9.0}) == []


def test_an_import_envelope_bounds_a_buyers_point_and_raises_its_price() -> None:
    rows = [*BOOK, ("load2", "buy", "spL", 10.0, 0.40)]
    bound = clear_network(Network(parent=PARENTS, import_limit={"spL": 12}), Bids.from_rows(rows))
    assert bound.awards["load"] + bound.awards["load2"] == pytest.approx(12)
    assert bound.prices["spL"] == pytest.approx(0.50) and bound.prices["sub"] == pytest.approx(0.05)


def test_transport_relieves_a_wire_but_never_an_envelope() -> None:
    parents: dict[str, str | None] = {"sub": None, "xf": "sub", "spA": "xf", "spL": "sub"}
    rows = [("cheap", "sell", "spA", 30.0, 0.05), ("dear", "sell", "spL", 30.0, 0.30), ("load", "buy", "spL", 20, 0.5)]
    transport = [TransportTender("t", "spA", "xf", 50.0, 0.01)]
    network = Network(parent=parents, capacity_kva={"spA": 5}, export_limit={"spA": 9})
    result = clear_network(network, Bids.from_rows(rows), transport)
    assert result.awards["cheap"] == pytest.approx(9)  # transport lifts the 5 kW wire, the 9 kW envelope stays
    assert result.awards["t"] == pytest.approx(4)
    assert "spA" in result.binding


def test_bad_envelope_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="export limit given for unknown location 'x'"):
        Network(parent=PARENTS, export_limit={"x": 1})
    with pytest.raises(ValueError, match="import limit of 'spA' must be >= 0"):
        Network(parent=PARENTS, import_limit={"spA": -1})


# -- market runs with stored envelopes (SQLite and PostgreSQL) ---------------------------------------------------

START = datetime(2030, 1, 7, 10, tzinfo=UTC)
AFTER_GATE = START - timedelta(minutes=4)


def env(object_type: str, /, **payload: Any) -> Envelope:
    return Envelope.model_validate({"payload": {"object_type": object_type, **payload}})


def ingest(store: Store, *envelopes: Envelope) -> None:
    Ingestor(store).ingest_sync(list(envelopes), protocol="rest", peer="test")


def seed_run(store: Store, *markets: str) -> None:
    """n1 > f1 > sp1 (seller a), sp2 (seller b), sp3 (load c); markets with the network; the book of BOOK."""
    ingest(
        store,
        *(env("party", id=p, name=p, roles=["dmo" if p == "op" else "prosumer"]) for p in ("op", "a", "b", "c")),
        env("location", id="n1", name="n1", kind="pnode"),
        env("location", id="f1", name="f1", kind="feeder", parent_id="n1"),
        *(env("location", id=s, name=s, kind="service_point", parent_id="f1") for s in ("sp1", "sp2", "sp3")),
        env("resource", id="pv1", name="pv1", kind="pv", owner_id="a", location_id="sp1"),
        *(env("market", id=m, operator_id="op", network_root_id="n1") for m in markets),
    )
    for market in markets:
        for tid, party, side, loc, q, p in (
            ("cheap", "a", "sell", "sp1", "30", "0.05"),
            ("dear", "b", "sell", "sp2", "30", "0.30"),
            ("load", "c", "buy", "sp3", "20", "0.50"),
        ):
            rows = [{"start": START.isoformat(), "quantity": q, "price": p}]
            ingest(
                store,
                env(
                    "tender",
                    id=f"{market}-{tid}",
                    market_id=market,
                    party_id=party,
                    side=side,
                    location_id=loc,
                    rows=rows,
                ),
            )


def operator_envelope(eid: str, location: str, resource: str | None = None, **limits: str) -> Envelope:
    period = {"span": {"start": (START - timedelta(minutes=30)).isoformat(), "duration": "PT2H"}, **limits}
    return env("operating_envelope", id=eid, location_id=location, resource_id=resource, periods=[period])


def sold(result: Any, party: str) -> Decimal:
    return sum((t.quantity for t in result.transactions if t.party_id == party), D(0))


def test_an_operator_envelope_at_a_sellers_point_clears_less_export_there_at_a_higher_price(store: Store) -> None:
    seed_run(store, "m1", "m2")
    free = MarketRunner(store).clear_interval("m1", START, now=AFTER_GATE)
    assert (sold(free, "a"), free.clearing.price) == (D(20), D("0.05"))

    ingest(store, operator_envelope("doe-a", "sp1", export_limit_kw="8", import_limit_kw="5"))
    bound = MarketRunner(store).clear_interval("m2", START, now=AFTER_GATE)
    assert (sold(bound, "a"), sold(bound, "b")) == (D(8), D(12))
    assert bound.clearing.price == D("0.3") and bound.clearing.prices["sp1"] == D("0.05")
    assert bound.clearing.binding_location_ids == ["sp1"]


def test_a_resource_envelope_bounds_its_whole_location_and_the_tightest_period_wins(store: Store) -> None:
    seed_run(store, "m1")
    ingest(
        store,
        operator_envelope("doe-site", "sp1", export_limit_kw="15"),
        operator_envelope("doe-pv", "sp1", "pv1", export_limit_kw="6"),
    )
    result = MarketRunner(store).clear_interval("m1", START, now=AFTER_GATE)
    assert sold(result, "a") == D(6)


def test_computed_envelopes_bound_other_markets_not_the_clearing_they_came_from(store: Store) -> None:
    """sp1 (seller a) and sp4 (a battery, no tender) share t1 (25 kVA). m1 clears first: sp1 exports 20. The
    envelopes computed from m1 give sp1 its 20 plus half of t1's 5 kW left; m1's interval stays as cleared (it clears
    once), m2, clearing the same interval later over the same network with more load, is bound by them."""
    seed_run(store, "m1", "m2")
    ingest(
        store,
        env("location", id="t1", name="t1", kind="transformer", parent_id="f1", rating_kva="25"),
        env("location", id="sp1", name="sp1", kind="service_point", parent_id="t1"),
        env("location", id="sp4", name="sp4", kind="service_point", parent_id="t1"),
        env("resource", id="bat4", name="bat4", kind="battery", owner_id="a", location_id="sp4", ratings={}),
        env(
            "tender",
            id="m2-load2",
            market_id="m2",
            party_id="c",
            side="buy",
            location_id="sp3",
            rows=[{"start": START.isoformat(), "quantity": "10", "price": "0.45"}],
        ),
    )
    runner = MarketRunner(store)
    first = runner.clear_interval("m1", START, now=AFTER_GATE)
    assert sold(first, "a") == D(20)

    plan = plan_envelopes(store, runner.market("m1"), START)
    found = {e.location_id: (e.periods[0].import_limit_kw, e.periods[0].export_limit_kw) for e in plan.envelopes}
    assert found == {"sp1": (D("12.5"), D("22.5")), "sp4": (D("12.5"), D("2.5"))}
    assert plan.envelopes[0].id == envelope_id("m1", "sp1", START, START + timedelta(hours=1))
    Ingestor(store).ingest_sync([Envelope(payload=e) for e in plan.envelopes], protocol="doe", peer="m1")

    again = runner.clear_interval("m1", START, now=AFTER_GATE)
    assert not again.created and again.clearing == first.clearing
    later = runner.clear_interval("m2", START, now=AFTER_GATE)  # t1 alone would let sp1 sell 25 of the 30 kW
    assert (sold(later, "a"), sold(later, "b")) == (D("22.5"), D("7.5"))
    assert later.clearing.binding_location_ids == ["sp1"] and later.clearing.price == D("0.3")


# -- over real HTTP (SQLite and PostgreSQL) ------------------------------------------------------------------------

S = "2024-01-07T10:00:00Z"
S_END = "2024-01-07T12:00:00Z"
HTTP_START = datetime(2024, 1, 7, 10, tzinfo=UTC)


@pytest.fixture
def http(store: Store) -> Iterator[httpx.Client]:
    with served(store) as client:
        yield client


def seed_http(http: httpx.Client) -> None:
    """n1 > f1 > t1 (10 kVA) > sp1 (seller a, resource), sp1b (rated 4, resource); f1 > t2 > sp2 (rated 25, seller
    b, resource), sp3 (load c, no resource); market m1 with the network, m0 without; two hours of tenders."""
    for p in ("op", "a", "b", "c"):
        post(http, "/v1/parties", {"id": p, "name": p, "roles": ["dmo" if p == "op" else "prosumer"]})
    for body in [
        {"id": "n1", "name": "n1", "kind": "pnode"},
        {"id": "f1", "name": "f1", "kind": "feeder", "parent_id": "n1"},
        {"id": "t1", "name": "t1", "kind": "transformer", "parent_id": "f1", "rating_kva": "10"},
        {"id": "t2", "name": "t2", "kind": "transformer", "parent_id": "f1"},
        {"id": "sp1", "name": "sp1", "kind": "service_point", "parent_id": "t1"},
        {"id": "sp1b", "name": "sp1b", "kind": "service_point", "parent_id": "t1", "rating_kva": "4"},
        {"id": "sp2", "name": "sp2", "kind": "service_point", "parent_id": "t2", "rating_kva": "25"},
        {"id": "sp3", "name": "sp3", "kind": "service_point", "parent_id": "t2"},
    ]:
        post(http, "/v1/locations", body)
    for rid, owner, site in (("pv1", "a", "sp1"), ("bat1b", "a", "sp1b"), ("pv2", "b", "sp2")):
        post(http, "/v1/resources", {"id": rid, "name": rid, "kind": "pv", "owner_id": owner, "location_id": site})
    post(http, "/v1/markets", {"id": "m1", "operator_id": "op", "network_root_id": "n1", "gate_closure": "PT5M"})
    post(http, "/v1/markets", {"id": "m0", "operator_id": "op", "gate_closure": "PT5M"})
    for tid, party, side, loc, q, p in (
        ("cheap", "a", "sell", "sp1", "30", "0.05"),
        ("dear", "b", "sell", "sp2", "30", "0.30"),
        ("load", "c", "buy", "sp3", "20", "0.50"),
    ):
        rows = [{"start": s, "quantity": q, "price": p} for s in (S, "2024-01-07T11:00:00Z")]
        body = {"id": tid, "market_id": "m1", "party_id": party, "side": side, "location_id": loc, "rows": rows}
        post(http, "/v1/tenders", body | {"created_at": "2024-01-06T00:00:00Z"})


def envelope_count(http: httpx.Client) -> int:
    return len(http.get("/v1/operating-envelopes", params={"limit": 1000}).json())


def test_envelopes_are_computed_stored_and_listed_over_http(http: httpx.Client) -> None:
    seed_http(http)
    for start in (S, "2024-01-07T11:00:00Z"):
        post(http, "/v1/markets/m1/clear", {"interval_start": start})

    out = post(http, "/v1/markets/m1/envelopes", {"start": S, "end": S_END}).json()
    assert out["stored"] == 3 and out["points"] == ["sp1", "sp1b", "sp2"]
    assert out["overloaded"] == {} and out["unbounded"] == []
    found = {e["location_id"]: e for e in out["envelopes"]}
    assert {e["source"] for e in found.values()} == {"computed"}
    limits = {
        loc: [(D(p["import_limit_kw"]), D(p["export_limit_kw"])) for p in e["periods"]] for loc, e in found.items()
    }
    # t1 (10) carries sp1's cleared 10 kW of export: sp1 keeps it, sp1b gets no export; importing, sp1b stops at its
    # own 4 and sp1 gets the other 6. sp2 has nothing rated above it but its own 25.
    assert limits == {
        "sp1": [(D(6), D(10))] * 2,
        "sp1b": [(D(4), D(0))] * 2,
        "sp2": [(D(25), D(25))] * 2,
    }
    assert [p["span"]["start"] for p in found["sp1"]["periods"]] == ["2024-01-07T10:00:00Z", "2024-01-07T11:00:00Z"]

    # The same inputs again: the same ids, nothing new stored.
    again = post(http, "/v1/markets/m1/envelopes", {"start": S, "end": S_END}, status=200).json()
    assert again["stored"] == 0 and again["envelopes"] == out["envelopes"]  # as stored, created_at included
    listed = http.get("/v1/markets/m1/envelopes", params={"start": S, "end": S_END}).json()
    assert sorted(e["id"] for e in listed) == sorted(e["id"] for e in out["envelopes"])
    assert http.get("/v1/markets/m1/envelopes", params={"source": "operator"}).json() == []
    assert http.get("/v1/markets/m1/envelopes", params={"start": "2024-01-07T12:00:00Z"}).json() == []

    # One interval alone is another window: its own envelope ids. Sharing by rating needs sp1's rating.
    single = post(http, "/v1/markets/m1/envelopes", {"start": S}).json()
    assert single["stored"] == 3 and not {e["id"] for e in single["envelopes"]} & {e["id"] for e in listed}
    by_rating = http.post("/v1/markets/m1/envelopes", json={"start": S, "sharing": "rating"})
    assert by_rating.status_code == 422 and "'sp1' has none" in by_rating.json()["detail"]


def test_bad_envelope_requests_get_a_reason_and_store_nothing(http: httpx.Client) -> None:
    seed_http(http)
    before = envelope_count(http)

    def refused(market: str, body: dict[str, Any], status: int, reason: str) -> None:
        response = http.post(f"/v1/markets/{market}/envelopes", json=body)
        assert response.status_code == status, response.text
        assert reason in json.dumps(response.json()["detail"]), response.text

    refused("nope", {"start": S}, 404, "unknown market 'nope'")
    refused("m0", {"start": S}, 422, "has no network")
    refused("m1", {"start": S}, 409, "has not cleared 2024-01-07T10:00:00+00:00")
    post(http, "/v1/markets/m1/clear", {"interval_start": S})
    refused("m1", {"start": S, "end": S_END}, 409, "has not cleared 2024-01-07T11:00:00+00:00")
    refused("m1", {"start": "2024-01-07T10:30:00Z"}, 422, "does not start a PT1H interval")
    refused("m1", {"start": S, "end": "2024-01-07T10:30:00Z"}, 422, "does not end a PT1H interval")
    refused("m1", {"start": S, "end": S}, 422, "end must be after start")
    refused("m1", {"start": "2024-01-07T10:00:00"}, 422, "timezone")
    refused("m1", {"start": S, "sharing": "biggest"}, 422, "sharing")
    assert http.get("/v1/markets/nope/envelopes").status_code == 404
    assert envelope_count(http) == before == 0


def test_the_cli_computes_the_same_envelopes(store_url: str) -> None:
    store = Store(store_url)
    try:
        seed_run(store, "m1")
        ingest(store, env("location", id="f1", name="f1", kind="feeder", parent_id="n1", rating_kva="25"))
        MarketRunner(store).clear_interval("m1", START, now=AFTER_GATE)
    finally:
        store.close()
    runner = CliRunner()
    args = ["envelope", "compute", "m1", "--start", START.isoformat(), "--database-url", store_url, "--json"]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout)
    assert out["stored"] == 1 and out["envelopes"][0]["periods"][0]["export_limit_kw"] == "45"
    assert json.loads(runner.invoke(cli, args).stdout)["stored"] == 0
    bad = runner.invoke(
        cli, ["envelope", "compute", "m1", "--start", "2030-01-07T11:00:00Z", "--database-url", store_url]
    )
    assert bad.exit_code == 1 and "has not cleared" in bad.stderr


# -- a real 2030.5 device at a connection point (mutual TLS) ------------------------------------------------------


def test_a_2030_5_device_sees_its_computed_envelope_as_csip_aus_limits(tmp_path: Path) -> None:
    """root > t1 (5 kVA) > site (a device's service point; its owner sells 3 kW) and root > home (a load buying it).
    The envelope computed from that clearing reaches the device over mutual TLS as opModExpLimW/opModImpLimW."""
    ca = TestCa(tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'gw.db'}")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'gw.db'}", market_tick_seconds=0)
    server, operator, device = ca.issue("localhost", server=True), ca.issue("operator"), ca.issue("device")
    tls = server_tls_options(str(server.cert), str(server.key), str(ca.ca_file), require_client=True)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    try:
        with serve_in_thread(create_app(settings, store=store), **tls) as base:  # type: ignore[arg-type]
            base = base.replace("127.0.0.1", "localhost")
            context = ssl.create_default_context(cafile=str(ca.ca_file))
            context.load_cert_chain(str(operator.cert), str(operator.key))
            with httpx.Client(base_url=base, verify=context, timeout=30) as api:  # the operator
                for path, body in (
                    ("/v1/parties", {"id": "op", "name": "Operator", "roles": ["dmo"]}),
                    ("/v1/parties", {"id": "ann", "name": "Ann", "roles": ["prosumer"]}),
                    ("/v1/parties", {"id": "bob", "name": "Bob", "roles": ["consumer"]}),
                    ("/v1/locations", {"id": "root", "name": "Substation", "kind": "substation"}),
                    (
                        "/v1/locations",
                        {"id": "t1", "name": "T1", "kind": "transformer", "parent_id": "root", "rating_kva": "5"},
                    ),
                    ("/v1/locations", {"id": "site", "name": "Ann", "kind": "service_point", "parent_id": "t1"}),
                    ("/v1/locations", {"id": "home", "name": "Bob", "kind": "service_point", "parent_id": "root"}),
                    (
                        "/v1/resources",
                        {
                            "id": "inv",
                            "name": "Ann's inverter",
                            "kind": "pv",
                            "owner_id": "ann",
                            "location_id": "site",
                            "ratings": {"max_kw": "10"},
                            "identities": {"lfdi": lfdi_of_certificate(device.der)},
                        },
                    ),
                    ("/v1/markets", {"id": "m", "operator_id": "op", "network_root_id": "root"}),
                ):
                    answer = api.post(path, json=body)
                    assert answer.status_code == 201, (path, answer.text)
                for tid, party, side, site, price in (
                    ("s", "ann", "sell", "site", "0.1"),
                    ("b", "bob", "buy", "home", "0.5"),
                ):
                    rows = [{"start": hour.isoformat(), "quantity": "3", "price": price}]
                    body = {"id": tid, "market_id": "m", "party_id": party, "side": side, "location_id": site}
                    answer = api.post("/v1/tenders", json=body | {"rows": rows})
                    assert answer.status_code == 201, answer.text
                run = api.post("/v1/markets/m/clear", json={"interval_start": hour.isoformat(), "early": True})
                assert run.status_code == 201, run.text
                computed = api.post("/v1/markets/m/envelopes", json={"start": hour.isoformat()})
                assert computed.status_code == 201, computed.text
                [doe] = computed.json()["envelopes"]
                assert (doe["location_id"], doe["periods"][0]["export_limit_kw"]) == ("site", "5")

            with Sep2Client(base, cert=device.cert, key=device.key, ca=ca.ca_file) as client:
                view = client.discover()
                found = [c for p, c in view.controls() if p.description == "Dynamic operating envelopes"]
                [control] = found
                base_control = control.DERControlBase
                assert base_control.opModExpLimW is not None and base_control.opModImpLimW is not None
                assert mapper.kw_of(base_control.opModExpLimW) == 5 and mapper.kw_of(base_control.opModImpLimW) == 5
                assert control.interval.start == int(hour.timestamp()) and control.interval.duration == 3600
                assert control.mRID == mapper.envelope_mrid(doe["id"], 0, default_table().server.pen)
    finally:
        store.close()
