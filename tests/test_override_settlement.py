"""What an override costs (gateway.overrides.settlement): worked examples by hand for transactions and controls,
metered and not, penalties, resolution over time, the 5-minute grid, and properties checked with hypothesis."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.market.settlement import MONEY
from gateway.model import Control, Override, Resource
from gateway.model.intervals import Interval, Resolution, TimeSpan
from gateway.model.market import Delivery, SettlementKind, Side, Transaction
from gateway.model.markets import Clearing, ClearingType, Market
from gateway.model.overrides import OverrideMode, OverrideStatus, Subject, SubjectKind
from gateway.overrides.policy import OverridePolicy
from gateway.overrides.settlement import Dispatched, OverrideSettlement, OverrideSubjects, settle_overrides

T0 = datetime(2030, 1, 7, 17, tzinfo=UTC)
D = Decimal
MARKET = Market(id="m1", operator_id="op")
WINDOW = (T0 - timedelta(days=1), T0 + timedelta(days=1))


def hour(n: int = 0) -> Interval:
    return Interval(start=T0 + timedelta(hours=n), duration=Resolution.HOUR)


def clearing(n: int, price: str) -> Clearing:
    return Clearing(
        market_id="m1",
        interval=hour(n),
        type=ClearingType.MARGINAL_SELLER,
        price=D(price),
        cleared_quantity=D(0),
        gate_closed_at=hour(n).start - timedelta(minutes=5),
    )


def tx(quantity: str, price: str, side: Side = Side.BUY, n: int = 0) -> Transaction:
    return Transaction(
        id=f"t-{side.value}-{n}",
        market_id="m1",
        party_id="ben",
        counterparty_id="op",
        side=side,
        location_id="SP-ben",
        interval=hour(n),
        quantity=D(quantity),
        price=D(price),
    )


EV = Resource(id="ben-ev", name="EV", kind="ev_charger", owner_id="ben", location_id="SP-ben", ratings={"max_kw": 11})
PV = Resource(id="ben-pv", name="PV", kind="pv", owner_id="ben", location_id="SP-ben", ratings={"max_kw": "7.6"})


def dr_event(hours: int = 2, **extra) -> Control:
    return Control(
        **{
            "id": "dr-1",
            "program_id": "summer-dr",
            "targets": {"location_ids": ["xf-1"]},
            "kind": "level",
            "signal": "dr_level",
            "unit": "level",
            "periods": [
                {"span": {"start": (T0 + timedelta(hours=i)).isoformat(), "duration": "PT1H"}, "value": i + 1}
                for i in range(hours)
            ],
            **extra,
        }
    )


def override(subject: Subject, start: datetime = T0, minutes: int = 120, **extra) -> Override:
    return Override(
        **{
            "id": "o1",
            "party_id": "ben",
            "subject": subject,
            "mode": OverrideMode.OPT_OUT,
            "span": TimeSpan(start=start, duration=timedelta(minutes=minutes)),
            "created_at": T0 - timedelta(hours=3),
            **extra,
        }
    )


def policy(**programs) -> OverridePolicy:
    return OverridePolicy.model_validate({"programs": programs, "markets": {}})


DR_POLICY = policy(**{"summer-dr": {"market_id": "m1", "response_kw": {"ben": "3"}, "penalty_per_kwh": "0.50"}})


def run(
    overrides: list[Override],
    *,
    transactions: list[Transaction] = (),  # type: ignore[assignment]
    controls: list[Control] = (),  # type: ignore[assignment]
    deliveries: list[Delivery] = (),  # type: ignore[assignment]
    clearings: list[Clearing] | None = None,
    terms: OverridePolicy = DR_POLICY,
    resources: list[Resource] = [EV],  # noqa: B006 - read only
    dispatch: dict[str, list[Dispatched]] | None = None,
) -> OverrideSettlement:
    subjects = OverrideSubjects(
        transactions={t.id: t for t in transactions},
        controls={c.id: c for c in controls},
        resources={r.id: r for r in resources},
        resources_of={"ben": resources},
        reaches={c.id: frozenset(r.id for r in resources) for c in controls},
        dispatch=dispatch or {},
    )
    if clearings is None:
        clearings = [clearing(0, "0.30"), clearing(1, "0.40")]
    return settle_overrides(MARKET, clearings, overrides, subjects, deliveries, terms, WINDOW)


def lines_of(result: OverrideSettlement, kind: SettlementKind) -> list[tuple[datetime, str, Decimal, Decimal, Decimal]]:
    return sorted(
        (line.interval.start, line.interval.duration.value, line.quantity, line.price, line.amount)
        for line in result.lines
        if line.kind is kind
    )


# ------------------------------------------------------------------------------------------------------------
# Transactions


def test_a_buyer_who_opts_out_of_an_unmetered_transaction_sells_it_back_at_spot() -> None:
    bought = tx("4", "0.20")
    result = run([override(Subject(kind=SubjectKind.TRANSACTION, id=bought.id), minutes=60)], transactions=[bought])
    # 4 kW for 1 h not taken: -4 kW at the spot 0.30 -> paid 1.20 (the forward line, 0.80, is the market's)
    assert lines_of(result, SettlementKind.DEVIATION) == [(T0, "PT1H", D(-4), D("0.30"), D("-1.2"))]
    assert lines_of(result, SettlementKind.PENALTY) == []  # the market has no penalty


def test_a_seller_who_keeps_part_buys_back_the_rest_and_pays_the_market_penalty() -> None:
    sold = tx("5", "0.28", side=Side.SELL)
    terms = OverridePolicy.model_validate({"markets": {"m1": {"penalty_per_kwh": "0.10"}}})
    partial = override(
        Subject(kind=SubjectKind.TRANSACTION, id=sold.id), minutes=60, mode=OverrideMode.PARTIAL, quantity_kw=D(2)
    )
    result = run([partial], transactions=[sold], terms=terms)
    assert lines_of(result, SettlementKind.DEVIATION) == [(T0, "PT1H", D(3), D("0.30"), D("0.9"))]
    assert lines_of(result, SettlementKind.PENALTY) == [(T0, "PT1H", D(3), D("0.10"), D("0.3"))]


def test_a_metered_transaction_gets_no_second_deviation_but_still_the_penalty() -> None:
    bought = tx("4", "0.20")
    terms = OverridePolicy.model_validate({"markets": {"m1": {"penalty_per_kwh": "0.10"}}})
    meter = Delivery(party_id="ben", location_id="SP-ben", interval=hour(), quantity=D("0.5"))
    result = run(
        [override(Subject(kind=SubjectKind.TRANSACTION, id=bought.id), minutes=60)],
        transactions=[bought],
        deliveries=[meter],
        terms=terms,
    )
    assert lines_of(result, SettlementKind.DEVIATION) == []  # the market's meter deviation says what happened
    assert lines_of(result, SettlementKind.PENALTY) == [(T0, "PT1H", D(4), D("0.10"), D("0.4"))]


def test_only_the_unmetered_quarters_are_estimated_when_readings_are_finer() -> None:
    bought = tx("4", "0.20")
    quarters = [
        Delivery(
            party_id="ben",
            location_id="SP-ben",
            interval=Interval(start=T0 + timedelta(minutes=15 * i), duration=Resolution.FIFTEEN_MINUTES),
            quantity=D(1),
        )
        for i in (0, 2)
    ]
    result = run(
        [override(Subject(kind=SubjectKind.TRANSACTION, id=bought.id), minutes=60)],
        transactions=[bought],
        deliveries=quarters,
    )
    starts = [start for start, *_ in lines_of(result, SettlementKind.DEVIATION)]
    assert starts == [T0 + timedelta(minutes=15), T0 + timedelta(minutes=45)]


# ------------------------------------------------------------------------------------------------------------
# Controls


def test_opting_out_of_a_dr_event_costs_the_expected_reduction_at_spot_plus_the_penalty() -> None:
    result = run([override(Subject(kind=SubjectKind.CONTROL, id="dr-1"))], controls=[dr_event()])
    assert lines_of(result, SettlementKind.DEVIATION) == [
        (T0, "PT1H", D(3), D("0.30"), D("0.9")),
        (T0 + timedelta(hours=1), "PT1H", D(3), D("0.40"), D("1.2")),
    ]
    assert [amount for *_, amount in lines_of(result, SettlementKind.PENALTY)] == [D("1.5"), D("1.5")]
    assert {line.location_id for line in result.lines} == {"SP-ben"}
    assert all(line.reference_ids == ["o1", "dr-1"] for line in result.lines)


def test_a_late_override_is_rounded_to_five_minutes_and_cut_into_aligned_pieces() -> None:
    late = override(Subject(kind=SubjectKind.CONTROL, id="dr-1"), start=T0 + timedelta(minutes=8), minutes=52)
    result = run([late], controls=[dr_event(hours=1)])
    pieces = [(start - T0, duration) for start, duration, *_ in lines_of(result, SettlementKind.DEVIATION)]
    assert pieces == [
        (timedelta(minutes=10), "PT5M"),
        (timedelta(minutes=15), "PT15M"),
        (timedelta(minutes=30), "PT15M"),
        (timedelta(minutes=45), "PT15M"),
    ]
    total = sum(amount for *_, amount in lines_of(result, SettlementKind.DEVIATION))
    assert total == D(3) * D("0.30") * D(50) / D(60)  # 3 kW for 50 minutes at 0.30


def test_a_kw_limit_on_a_rated_resource_counts_its_rating_minus_the_limit() -> None:
    cap = Control(
        id="cap-1",
        program_id="export-caps",
        targets={"resource_ids": ["ben-pv"]},
        kind="limit",
        signal="export_power",
        unit="kW",
        periods=[{"span": {"start": T0.isoformat(), "duration": "PT1H"}, "value": 5}],
    )
    terms = policy(**{"export-caps": {"market_id": "m1"}})
    result = run(
        [override(Subject(kind=SubjectKind.CONTROL, id="cap-1"), minutes=60, resource_id="ben-pv")],
        controls=[cap],
        terms=terms,
        resources=[PV],
    )
    # exporting 2.6 kW more than the cap allowed: sold at spot
    assert lines_of(result, SettlementKind.DEVIATION) == [(T0, "PT1H", D("-2.6"), D("0.30"), D("-0.78"))]


def test_a_control_whose_quantity_nobody_can_say_is_listed_not_charged() -> None:
    terms = policy(**{"summer-dr": {"market_id": "m1"}})  # no response_kw, and a level control
    result = run([override(Subject(kind=SubjectKind.CONTROL, id="dr-1"))], controls=[dr_event()], terms=terms)
    assert result.lines == []
    assert [u.override_id for u in result.unquantified] == ["o1"]
    assert "response_kw" in result.unquantified[0].reason


def test_a_program_without_a_market_is_not_settled_here() -> None:
    result = run(
        [override(Subject(kind=SubjectKind.CONTROL, id="dr-1"))], controls=[dr_event()], terms=OverridePolicy()
    )
    assert result.lines == [] and result.unquantified == []


def test_an_uncleared_hour_is_reported_unpriced_and_its_penalty_still_charged() -> None:
    result = run(
        [override(Subject(kind=SubjectKind.CONTROL, id="dr-1"))], controls=[dr_event()], clearings=[clearing(1, "0.40")]
    )
    assert [start for start, *_ in lines_of(result, SettlementKind.DEVIATION)] == [T0 + timedelta(hours=1)]
    assert [(p, loc, i.start) for p, loc, i in result.unpriced] == [("ben", "SP-ben", T0)]
    assert len(lines_of(result, SettlementKind.PENALTY)) == 2


# ------------------------------------------------------------------------------------------------------------
# Which override counts


def test_a_later_opt_in_ends_the_charge_and_a_withdrawn_override_costs_nothing() -> None:
    out = override(Subject(kind=SubjectKind.CONTROL, id="dr-1"))
    back_in = override(
        Subject(kind=SubjectKind.CONTROL, id="dr-1"),
        id="o2",
        mode=OverrideMode.OPT_IN,
        start=T0 + timedelta(hours=1),
        minutes=60,
        created_at=T0 - timedelta(hours=2),
    )
    result = run([out, back_in], controls=[dr_event()])
    assert [start for start, *_ in lines_of(result, SettlementKind.DEVIATION)] == [T0]
    withdrawn = out.model_copy(update={"status": OverrideStatus.WITHDRAWN})
    assert run([withdrawn], controls=[dr_event()]).lines == []


@settings(max_examples=60, deadline=None)
@given(
    spans=st.lists(
        st.tuples(st.integers(0, 119), st.integers(1, 120), st.sampled_from(list(OverrideMode))), min_size=1, max_size=5
    ),
    seed=st.integers(0, 1000),
)
def test_the_outcome_does_not_depend_on_the_order_overrides_arrive_in(
    spans: list[tuple[int, int, OverrideMode]], seed: int
) -> None:
    overrides = [
        override(
            Subject(kind=SubjectKind.CONTROL, id="dr-1"),
            id=f"o{i}",
            start=T0 + timedelta(minutes=start),
            minutes=length,
            mode=mode,
            quantity_kw=D(1) if mode is OverrideMode.PARTIAL else None,
            created_at=T0 - timedelta(hours=3) + timedelta(minutes=i % 2),  # ties broken by id
        )
        for i, (start, length, mode) in enumerate(spans)
    ]
    shuffled = overrides[:]
    random.Random(seed).shuffle(shuffled)
    first, second = run(overrides, controls=[dr_event()]), run(shuffled, controls=[dr_event()])
    assert sorted(line.id for line in first.lines) == sorted(line.id for line in second.lines)
    assert sorted(line.amount for line in first.lines) == sorted(line.amount for line in second.lines)


@settings(max_examples=100, deadline=None)
@given(start=st.integers(0, 7199), length=st.integers(1, 7200))
def test_pieces_tile_the_rounded_span_on_the_grid(start: int, length: int) -> None:
    """Whatever the span (to the second), the lines are aligned, disjoint, inside the event, and add up to the span
    rounded to five minutes at each end; money adds up to rate x time x price within one rounding per line."""
    span = TimeSpan(start=T0 + timedelta(seconds=start), duration=timedelta(seconds=length))
    o = override(Subject(kind=SubjectKind.CONTROL, id="dr-1")).model_copy(update={"span": span})
    result = run([o], controls=[dr_event()])
    lines = sorted(
        (line for line in result.lines if line.kind is SettlementKind.DEVIATION), key=lambda x: x.interval.start
    )

    def rounded(seconds: int) -> int:
        return min(7200, (seconds + 150) // 300 * 300)

    expected = max(0, rounded(min(start + length, 7200)) - rounded(start))
    assert sum(int(line.interval.length.total_seconds()) for line in lines) == expected
    for before, after in pairwise(lines):
        assert before.interval.end <= after.interval.start
    for line in lines:
        assert line.interval.start >= T0 and line.interval.end <= T0 + timedelta(hours=2)
        assert (line.interval.start - T0).total_seconds() % line.interval.length.total_seconds() == 0
    exact = sum(
        D(3)
        * D(int(line.interval.length.total_seconds()))
        / 3600
        * (D("0.30") if line.interval.start < T0 + timedelta(hours=1) else D("0.40"))
        for line in lines
    )
    assert abs(sum(line.amount for line in lines) - exact) <= MONEY * len(lines)


@pytest.mark.parametrize("resource", [EV, PV])
def test_a_real_power_limit_curbs_what_the_resource_does(resource: Resource) -> None:
    """On a load a real-power limit holds consumption down (overriding it buys more); on PV it holds output down
    (overriding it sells more)."""
    cap = Control(
        id="cap-1",
        program_id="caps",
        targets={"resource_ids": [resource.id]},
        kind="limit",
        signal="real_power",
        unit="W",
        periods=[{"span": {"start": T0.isoformat(), "duration": "PT1H"}, "value": 2000}],
    )
    result = run(
        [override(Subject(kind=SubjectKind.CONTROL, id="cap-1"), minutes=60, resource_id=resource.id)],
        controls=[cap],
        terms=policy(caps={"market_id": "m1"}),
        resources=[resource],
    )
    (line,) = result.lines
    rating = resource.ratings.max_kw
    assert rating is not None
    assert line.quantity == (rating - 2 if resource.kind.value == "ev_charger" else 2 - rating)


# ------------------------------------------------------------------------------------------------------------
# Limits on market-dispatched resources (utility curtailment): what the control asked for, not rating - limit

BATTERY = Resource(
    id="ben-bat",
    name="Battery",
    kind="battery",
    owner_id="ben",
    location_id="SP-ben",
    ratings={"max_discharge_kw": "5", "max_charge_kw": "5"},
)
CURTAIL = policy(**{"feeder-relief": {"market_id": "m1", "penalty_per_kwh": "0.50"}})


def curtailment(resource: Resource, values: list[int | str], kind: str = "limit", **extra: object) -> Control:
    """A control as ``gateway.overrides.dispatch`` builds it: one resource, one period per market interval."""
    connect = kind == "connect"
    return Control(
        **{
            "id": f"curtail-3f2a9c1d0b7e-{resource.id}",
            "program_id": "feeder-relief",
            "targets": {"resource_ids": [resource.id]},
            "kind": kind,
            "signal": "connect" if connect else "export_power",
            "unit": "boolean" if connect else "kW",
            "periods": [
                {"span": {"start": hour(n).start.isoformat(), "duration": "PT1H"}, "value": v}
                for n, v in enumerate(values)
            ],
            "priority": 0,
            **extra,
        }
    )


def opt_out_of(control: Control, resource: Resource, minutes: int = 60, **extra: object) -> Override:
    return override(Subject(kind=SubjectKind.CONTROL, id=control.id), minutes=minutes, resource_id=resource.id, **extra)


def test_overriding_a_curtailment_of_a_dispatched_der_costs_its_dispatch_minus_the_limit() -> None:
    """Ben's 7.6 kW PV was dispatched to export 4 kW; the curtailment limited it to 1 kW (3 kW asked). Overriding
    it exports 3 kW more than allowed, not 7.6 - 1 = 6.6."""
    cap = curtailment(PV, [1])
    result = run(
        [opt_out_of(cap, PV)],
        controls=[cap],
        terms=CURTAIL,
        resources=[PV],
        dispatch={"ben-pv": [Dispatched(T0, T0 + timedelta(hours=1), export_kw=D(4))]},
    )
    assert lines_of(result, SettlementKind.DEVIATION) == [(T0, "PT1H", D(-3), D("0.30"), D("-0.9"))]
    assert lines_of(result, SettlementKind.PENALTY) == [(T0, "PT1H", D(3), D("0.50"), D("1.5"))]


def test_the_reduction_follows_the_dispatch_of_each_interval_and_the_rating_where_there_is_none() -> None:
    """Hour 0: dispatched 4 kW, limit 1 (3 asked). Hour 1: Ben holds no position, so the PV counts at its 7.6 kW
    rating, limit 2 (5.6 asked). A partial override keeping 1 kW leaves 2 and 4.6 undone."""
    cap = curtailment(PV, [1, 2])
    dispatch = {"ben-pv": [Dispatched(T0, T0 + timedelta(hours=1), export_kw=D(4))]}
    whole = run([opt_out_of(cap, PV, minutes=120)], controls=[cap], terms=CURTAIL, resources=[PV], dispatch=dispatch)
    assert [(start, q) for start, _d, q, *_ in lines_of(whole, SettlementKind.DEVIATION)] == [
        (T0, D(-3)),
        (T0 + timedelta(hours=1), D("-5.6")),
    ]
    partial = opt_out_of(cap, PV, minutes=120, mode=OverrideMode.PARTIAL, quantity_kw=D(1))
    kept = run([partial], controls=[cap], terms=CURTAIL, resources=[PV], dispatch=dispatch)
    assert [q for _s, _d, q, *_ in lines_of(kept, SettlementKind.DEVIATION)] == [D(-2), D("-4.6")]


def test_dispatch_that_changes_inside_one_period_cuts_the_charge() -> None:
    """A limit of 0 for two hours (one period) on a PV dispatched 4 kW then 2 kW: 4 then 2 undone."""
    cap = curtailment(PV, [0])
    cap = cap.model_copy(
        update={
            "periods": [cap.periods[0].model_copy(update={"span": TimeSpan(start=T0, duration=timedelta(hours=2))})]
        }
    )
    dispatch = {
        "ben-pv": [
            Dispatched(T0, T0 + timedelta(hours=1), export_kw=D(4)),
            Dispatched(T0 + timedelta(hours=1), T0 + timedelta(hours=2), export_kw=D(2)),
        ]
    }
    result = run([opt_out_of(cap, PV, minutes=120)], controls=[cap], terms=CURTAIL, resources=[PV], dispatch=dispatch)
    assert [(start, q) for start, _d, q, *_ in lines_of(result, SettlementKind.DEVIATION)] == [
        (T0, D(-4)),
        (T0 + timedelta(hours=1), D(-2)),
    ]


def test_a_der_the_market_dispatched_the_other_way_was_asked_for_nothing() -> None:
    """Ben's party bought at the site in that hour: his PV's export dispatch is 0, so an export limit asked nothing."""
    cap = curtailment(PV, [1])
    dispatch = {"ben-pv": [Dispatched(T0, T0 + timedelta(hours=1), import_kw=D(3))]}
    result = run([opt_out_of(cap, PV)], controls=[cap], terms=CURTAIL, resources=[PV], dispatch=dispatch)
    assert result.lines == [] and result.unquantified == []


@pytest.mark.parametrize(
    ("resource", "dispatched", "quantity"),
    [
        (PV, Dispatched(T0, T0 + timedelta(hours=1), export_kw=D("4.5")), D("-4.5")),  # exports all it was dispatched
        (BATTERY, Dispatched(T0, T0 + timedelta(hours=1), import_kw=D(2)), D(2)),  # charges as it was dispatched
        (PV, None, D("-7.6")),  # no position: its rating
    ],
    ids=["dispatched-export", "dispatched-import", "rated"],
)
def test_overriding_a_disconnection_leaves_undone_the_whole_dispatch(
    resource: Resource, dispatched: Dispatched | None, quantity: Decimal
) -> None:
    isolate = curtailment(resource, [0], kind="connect")
    result = run(
        [opt_out_of(isolate, resource)],
        controls=[isolate],
        terms=CURTAIL,
        resources=[resource],
        dispatch={resource.id: [dispatched]} if dispatched else None,
    )
    assert [q for _s, _d, q, *_ in lines_of(result, SettlementKind.DEVIATION)] == [quantity]


def test_a_disconnected_battery_without_a_position_or_a_connect_that_connects_is_unquantified() -> None:
    """With no dispatch a battery might have charged or discharged: nobody can say which rating it gave up."""
    isolate = curtailment(BATTERY, [0], kind="connect")
    result = run([opt_out_of(isolate, BATTERY)], controls=[isolate], terms=CURTAIL, resources=[BATTERY])
    assert result.lines == [] and [u.override_id for u in result.unquantified] == ["o1"]
    reconnect = curtailment(PV, [1], kind="connect")
    result = run([opt_out_of(reconnect, PV)], controls=[reconnect], terms=CURTAIL, resources=[PV])
    assert result.lines == [] and [u.override_id for u in result.unquantified] == ["o1"]


def test_response_kw_still_wins_over_the_dispatch() -> None:
    """The program's terms name what it expects of the party: that is what an override of it leaves undone."""
    cap = curtailment(PV, [1])
    terms = policy(**{"feeder-relief": {"market_id": "m1", "response_kw": {"ben": "2"}}})
    dispatch = {"ben-pv": [Dispatched(T0, T0 + timedelta(hours=1), export_kw=D(4))]}
    result = run([opt_out_of(cap, PV)], controls=[cap], terms=terms, resources=[PV], dispatch=dispatch)
    assert [q for _s, _d, q, *_ in lines_of(result, SettlementKind.DEVIATION)] == [D(-2)]
