"""Ex-post settlement (gateway.market.settlement): worked examples by hand, meter selection and interval
shapes, what is left unsettled, and properties (totals, splitting, units, ids) checked with hypothesis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.market.settlement import MONEY, SettlementReport, amount, settle
from gateway.model.intervals import Interval, Resolution
from gateway.model.market import Delivery, SettlementKind, Side, Transaction
from gateway.model.markets import Clearing, ClearingType, Market
from gateway.model.products import ReactiveEnergyProduct
from gateway.model.units import EnergyUnit, PowerUnit

T0 = datetime(2030, 1, 7, tzinfo=UTC)
D = Decimal


def market(**overrides) -> Market:
    return Market(**{"id": "m1", "operator_id": "op", **overrides})


def hour(n: int = 0) -> Interval:
    return Interval(start=T0 + timedelta(hours=n), duration=Resolution.HOUR)


def five_min(n: int) -> Interval:
    return Interval(start=T0 + timedelta(minutes=5 * n), duration=Resolution.FIVE_MINUTES)


def clearing(interval: Interval, price: str | Decimal, market_id: str = "m1", **extra) -> Clearing:
    return Clearing(
        market_id=market_id,
        interval=interval,
        type=ClearingType.MARGINAL_SELLER,
        price=D(price),
        cleared_quantity=D(0),
        gate_closed_at=interval.start - timedelta(minutes=5),
        **extra,
    )


def tx(
    quantity: str | Decimal,
    price: str | Decimal,
    interval: Interval | None = None,
    side: Side = Side.BUY,
    party: str = "alice",
    location: str = "home",
    **extra,
) -> Transaction:
    return Transaction(
        **{
            "market_id": "m1",
            "party_id": party,
            "counterparty_id": "op",
            "side": side,
            "location_id": location,
            "interval": interval or hour(),
            "quantity": D(quantity),
            "price": D(price),
            **extra,
        }
    )


def delivery(
    quantity: str | Decimal,
    interval: Interval | None = None,
    party: str = "alice",
    location: str = "home",
    **extra,
) -> Delivery:
    return Delivery(party_id=party, location_id=location, interval=interval or hour(), quantity=D(quantity), **extra)


def deviations(report: SettlementReport) -> list:
    return [line for line in report.lines if line.kind is SettlementKind.DEVIATION]


# ------------------------------------------------------------------------------------------------------------
# Worked examples


def test_subscription_plus_deviation_at_spot():
    """2 kW subscribed at 0.10, 3 kW metered for the hour, spot 0.30: 0.20 forward + 1 kWh x 0.30 at spot."""
    sub = tx("2", "0.10", subscription_id="sub1")
    meter = delivery("3")
    report = settle(market(), [clearing(hour(), "0.30")], [sub], [meter])

    assert [line.kind for line in report.lines] == [SettlementKind.DEVIATION, SettlementKind.SUBSCRIPTION]
    dev, forward = report.lines
    assert (forward.quantity, forward.price, forward.amount) == (D(2), D("0.10"), D("0.2"))
    assert forward.reference_ids == [sub.id]
    assert (dev.quantity, dev.price, dev.amount) == (D(1), D("0.30"), D("0.3"))
    assert dev.reference_ids == [meter.id]
    assert report.totals == {"alice": D("0.5")}
    assert report.missing_deliveries == [] and report.unpriced == []


def test_exporting_more_than_sold_is_paid_at_spot():
    """Sold 1 kW at 0.20 (paid 0.20), exported 4 kW: the 3 kW extra is sold at spot 0.25 (paid 0.75)."""
    sale = tx("1", "0.20", side=Side.SELL)
    report = settle(market(), [clearing(hour(), "0.25")], [sale], [delivery("-4")])

    dev, forward = report.lines
    assert forward.kind is SettlementKind.TRANSACTION
    assert (forward.quantity, forward.amount) == (D(-1), D("-0.2"))
    assert (dev.quantity, dev.amount) == (D(-3), D("-0.75"))
    assert report.totals["alice"] == D("-0.95")


def test_using_less_than_bought_sells_the_rest_back_at_spot():
    report = settle(market(), [clearing(hour(), "0.05")], [tx("2", "0.10")], [delivery("0.5")])
    dev = deviations(report)[0]
    assert (dev.quantity, dev.amount) == (D("-1.5"), D("-0.075"))
    assert report.totals["alice"] == D("0.125")


def test_delivery_equal_to_position_settles_a_zero_deviation():
    forward = [tx("2", "0.10"), tx("0.5", "0.12", side=Side.SELL)]
    report = settle(market(), [clearing(hour(), "0.30")], forward, [delivery("1.5")])

    (dev,) = deviations(report)
    assert (dev.quantity, dev.amount, dev.price) == (D(0), D(0), D("0.30"))
    assert report.totals["alice"] == D("0.2") - D("0.06")


def test_no_position_buys_everything_at_spot_and_nodal_price_applies():
    priced = clearing(hour(), "0.30", prices={"home": D("0.40")})
    report = settle(market(), [priced], [], [delivery("2")])
    (dev,) = report.lines
    assert (dev.quantity, dev.price, dev.amount) == (D(2), D("0.40"), D("0.8"))


def test_five_minute_amounts_are_rounded_half_even_to_a_micro_unit():
    """1 kW for 5 minutes at 0.1 is 0.008333..., which no decimal holds."""
    m = market(resolution=Resolution.FIVE_MINUTES)
    report = settle(m, [clearing(five_min(0), "0.1")], [tx("1", "0.1", five_min(0))], [])
    assert report.lines[0].amount == D("0.008333")
    assert amount(D("0.006"), 300, D(1), m) == D("0.0005")  # exact: no rounding
    assert amount(D("0.000006"), 300, D(1), m) == D("0")  # 0.0000005 -> even
    assert amount(D("0.000018"), 300, D(1), m) == D("0.000002")  # 0.0000015 -> even


def test_price_per_mwh_with_rates_in_kw():
    """A kW market quoting per MWh: 3 kW for an hour at 100/MWh is 0.3."""
    m = market(price_per=EnergyUnit.MWH)
    report = settle(m, [clearing(hour(), "100", price_per=EnergyUnit.MWH)], [], [delivery("3")])
    assert report.lines[0].amount == D("0.3")
    assert report.lines[0].price_per is EnergyUnit.MWH


def test_prices_and_quantities_are_converted_to_the_market_units():
    m = market(quantity_unit=PowerUnit.MW, price_per=EnergyUnit.MWH)
    trade = tx("2000", "0.10")  # kW at per kWh
    report = settle(m, [clearing(hour(), "0.30")], [trade], [delivery("3000000", quantity_unit=PowerUnit.W)])
    dev, forward = report.lines
    assert (forward.quantity, forward.price, forward.amount) == (D(2), D(100), D(200))
    assert (dev.quantity, dev.price, dev.amount) == (D(1), D(300), D(300))
    assert forward.quantity_unit is PowerUnit.MW


# ------------------------------------------------------------------------------------------------------------
# What counts


def test_other_markets_and_non_energy_products_are_ignored():
    other = tx("5", "1", market_id="m2")
    reactive = tx("5", "1", product=ReactiveEnergyProduct(), quantity_unit=PowerUnit.KVAR, price_per=EnergyUnit.KVARH)
    counted = tx("1", "0.1")
    report = settle(market(), [clearing(hour(), "0.3")], [other, reactive, counted], [delivery("1")])
    assert [line.reference_ids for line in report.lines if line.kind is SettlementKind.TRANSACTION] == [[counted.id]]
    assert deviations(report)[0].quantity == 0


def test_reactive_deliveries_are_ignored():
    reactive = delivery("7", quantity_unit=PowerUnit.KVAR)
    report = settle(market(), [clearing(hour(), "0.3")], [], [reactive, delivery("1")])
    assert deviations(report)[0].quantity == 1


def test_a_currency_mismatch_raises():
    with pytest.raises(ValueError, match=r"EUR.*USD.*never mixed"):
        settle(market(), [clearing(hour(), "0.3")], [tx("1", "0.1", currency="EUR")], [])
    with pytest.raises(ValueError, match=r"clearing .* EUR"):
        settle(market(), [clearing(hour(), "0.3", currency="EUR")], [], [])


def test_a_transaction_in_another_market_may_be_in_another_currency():
    settle(market(), [], [tx("1", "0.1", currency="EUR", market_id="m2")], [])


def test_duplicates_raise():
    trade = tx("1", "0.1")
    with pytest.raises(ValueError, match="given twice"):
        settle(market(), [], [trade, trade], [])
    meter = delivery("1")
    with pytest.raises(ValueError, match="given twice"):
        settle(market(), [], [], [meter, meter])
    with pytest.raises(ValueError, match="overlap"):
        settle(market(), [], [], [delivery("1"), delivery("1", five_min(3))])
    with pytest.raises(ValueError, match="disagree"):
        settle(market(), [clearing(hour(), "0.3"), clearing(hour(), "0.4")], [], [])


def test_off_grid_intervals_raise():
    kolkata_hour = Interval(start=T0 + timedelta(minutes=30), duration=Resolution.HOUR, time_zone="Asia/Kolkata")
    with pytest.raises(ValueError, match="grid"):
        settle(market(), [], [], [delivery("1", kolkata_hour)])


# ------------------------------------------------------------------------------------------------------------
# Meters and interval shapes


def test_site_meter_is_preferred_over_resource_meters():
    site = delivery("3")
    resources = [delivery("1", resource_id="ev"), delivery("1.5", resource_id="hvac")]
    clear = [clearing(hour(), "0.3")]

    report = settle(market(), clear, [], [*resources, site])
    (dev,) = report.lines
    assert (dev.quantity, dev.reference_ids) == (D(3), [site.id])

    report = settle(market(), clear, [], resources)
    (dev,) = report.lines
    assert dev.quantity == D("2.5")
    assert dev.reference_ids == sorted(d.id for d in resources)


def test_site_meter_choice_is_per_market_interval():
    site = delivery("3", hour(0))
    resource = delivery("1", hour(1), resource_id="ev")
    also = delivery("9", hour(0), resource_id="ev")
    report = settle(market(), [clearing(hour(0), "0.3"), clearing(hour(1), "0.3")], [], [site, resource, also])
    assert [(line.interval.start, line.quantity) for line in report.lines] == [
        (hour(0).start, D(3)),
        (hour(1).start, D(1)),
    ]


def test_finer_deliveries_are_settled_against_the_hour_position():
    readings = [delivery(str(n), five_min(n)) for n in range(12)]
    report = settle(market(), [clearing(hour(), "0.12")], [tx("5", "0.1")], readings)
    devs = deviations(report)
    assert [line.quantity for line in devs] == [D(n - 5) for n in range(12)]
    assert [line.interval for line in devs] == [five_min(n) for n in range(12)]
    assert all(line.price == D("0.12") for line in devs)
    # (0 + ... + 11)/12 - 5 = 0.5 kW average over the hour at 0.12
    assert sum(line.amount for line in devs) == D("0.06")
    assert report.missing_deliveries == []


def test_coarser_delivery_is_split_into_market_intervals():
    m = market(resolution=Resolution.FIFTEEN_MINUTES)
    quarters = hour().split(Resolution.FIFTEEN_MINUTES)
    clear = [clearing(q, str(n + 1)) for n, q in enumerate(quarters)]
    trades = [tx("1", "0.1", quarters[0]), tx("2", "0.1", quarters[3])]
    report = settle(m, clear, trades, [delivery("2")])
    devs = deviations(report)
    assert [line.interval for line in devs] == quarters
    assert [line.quantity for line in devs] == [D(1), D(2), D(2), D(0)]
    assert [line.amount for line in devs] == [D("0.25"), D("1.0"), D("1.5"), D(0)]


def test_a_coarse_site_meter_beats_fine_resource_meters():
    site = delivery("2")
    resources = [delivery("1", five_min(n), resource_id="ev") for n in range(12)]
    report = settle(market(), [clearing(hour(), "0.3")], [], [*resources, site])
    assert [(line.interval, line.quantity) for line in report.lines] == [(hour(), D(2))]


def test_mixed_resolutions_of_resource_meters_are_cut_to_the_finest():
    hourly = delivery("1", resource_id="hvac")
    fine = [delivery("2", five_min(n), resource_id="ev") for n in range(12)]
    report = settle(market(), [clearing(hour(), "0.3")], [tx("1", "0.1")], [hourly, *fine])
    devs = deviations(report)
    assert [line.interval for line in devs] == [five_min(n) for n in range(12)]
    assert all(line.quantity == 2 for line in devs)  # 1 + 2 metered - 1 bought
    assert [line.reference_ids for line in devs] == [sorted([hourly.id, f.id]) for f in fine]


def test_a_trade_finer_than_the_meter_cuts_the_deviation_to_its_resolution():
    """Nothing is averaged: a 5-minute trade in an hourly market makes twelve constant pieces of the hour."""
    report = settle(market(), [clearing(hour(), "0.3")], [tx("1", "0.1", five_min(0))], [delivery("1")])
    devs = deviations(report)
    assert [line.quantity for line in devs] == [D(0)] + [D(1)] * 11
    assert sum(line.amount for line in devs) == D("0.275")


def test_unpriced_and_missing_are_listed_not_settled():
    clear = [clearing(hour(0), "0.3")]
    trades = [tx("1", "0.1", hour(0)), tx("1", "0.1", hour(1)), tx("1", "0.1", hour(2), party="bob")]
    meters = [delivery("1", hour(1)), delivery("2", hour(3), location="shed")]
    report = settle(market(), clear, trades, meters)

    assert report.missing_deliveries == [("alice", "home", hour(0)), ("bob", "home", hour(2))]
    assert report.unpriced == [("alice", "home", hour(1)), ("alice", "shed", hour(3))]
    assert deviations(report) == []
    assert len(report.lines) == 3  # the forward trades are settled at their own price all the same


def test_partly_metered_position_settles_the_metered_part_and_is_listed():
    readings = [delivery("1", five_min(n)) for n in range(11)]  # the last 5 minutes are missing
    report = settle(market(), [clearing(hour(), "0.3")], [tx("1", "0.1")], readings)
    assert len(deviations(report)) == 11
    assert report.missing_deliveries == [("alice", "home", hour())]


def test_lines_are_ordered_by_party_location_interval_kind_id():
    trades = [tx("1", "0.1", hour(1), party="bob"), tx("1", "0.1", hour(0), party="bob"), tx("1", "0.1", hour(0))]
    meters = [delivery("1", hour(0), party="bob"), delivery("1", hour(0))]
    report = settle(market(), [clearing(hour(0), "0.3")], trades, meters)
    keys = [(line.party_id, line.location_id, line.interval.start, line.kind.value, line.id) for line in report.lines]
    assert keys == sorted(keys)
    assert [line.party_id for line in report.lines] == ["alice", "alice", "bob", "bob", "bob"]


def test_settled_at_is_left_unset_so_the_content_version_is_stable():
    from gateway.model.envelope import content_version

    args = (market(), [clearing(hour(), "0.3")], [tx("1", "0.1")], [delivery("2")])
    first, second = settle(*args), settle(*args)
    assert "settled_at" not in first.lines[0].model_fields_set
    assert [content_version(line) for line in first.lines] == [content_version(line) for line in second.lines]


# ------------------------------------------------------------------------------------------------------------
# Properties

rates = st.decimals(min_value=-50, max_value=50, places=3, allow_nan=False, allow_infinity=False)
quantities = st.decimals(min_value=0, max_value=50, places=3, allow_nan=False, allow_infinity=False)
prices = st.decimals(min_value=-1, max_value=2, places=4, allow_nan=False, allow_infinity=False)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Clearing], list[Transaction], list[Delivery]]:
    """A few hours, two parties at two locations, forward trades, hourly or five-minute meters."""
    hours = draw(st.integers(min_value=1, max_value=3))
    clearings = [clearing(hour(h), draw(prices)) for h in range(hours)]
    parties = [("alice", "home"), ("bob", "barn")]
    transactions: list[Transaction] = []
    deliveries: list[Delivery] = []
    for party, location in parties:
        for h in range(hours):
            for _ in range(draw(st.integers(min_value=0, max_value=3))):
                transactions.append(
                    tx(
                        draw(quantities),
                        draw(prices),
                        hour(h),
                        side=draw(st.sampled_from(Side)),
                        party=party,
                        location=location,
                        subscription_id=draw(st.sampled_from([None, "sub"])),
                    )
                )
            if draw(st.booleans()):
                deliveries.append(delivery(draw(rates), hour(h), party=party, location=location))
            else:
                start = T0 + timedelta(hours=h)
                deliveries += [
                    delivery(
                        draw(rates),
                        Interval(start=start + timedelta(minutes=5 * n), duration=Resolution.FIVE_MINUTES),
                        party=party,
                        location=location,
                    )
                    for n in range(12)
                ]
    return clearings, transactions, deliveries


def _hours(interval: Interval) -> Decimal:
    return D(int(interval.length.total_seconds())) / D(3600)


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_totals_are_forward_cost_plus_deviations_at_spot(scenario):
    clearings, transactions, deliveries = scenario
    report = settle(market(), clearings, transactions, deliveries)
    spot = {c.interval.start: c.price for c in clearings}
    for party in {t.party_id for t in transactions} | {d.party_id for d in deliveries}:
        mine = [t for t in transactions if t.party_id == party]
        expected = sum((t.signed_quantity * _hours(t.interval) * t.price for t in mine), D(0))
        for d in (d for d in deliveries if d.party_id == party):
            start = (
                d.interval.parent(Resolution.HOUR).start if d.interval.duration != Resolution.HOUR else d.interval.start
            )
            position = sum((t.signed_quantity for t in mine if t.interval.start == start), D(0))
            expected += (d.quantity - position) * _hours(d.interval) * spot[start]
        n_lines = sum(1 for line in report.lines if line.party_id == party)
        assert abs(report.totals.get(party, D(0)) - expected) <= n_lines * MONEY
        assert report.totals.get(party, D(0)) == sum(
            (line.amount for line in report.lines if line.party_id == party), D(0)
        )
    assert report.missing_deliveries == [] and report.unpriced == []


@settings(max_examples=60, deadline=None)
@given(rate=rates, position=quantities, spot=prices)
def test_splitting_an_hour_into_twelve_five_minute_readings_keeps_the_deviation(rate, position, spot):
    args = (market(), [clearing(hour(), spot)], [tx(position, "0.1")])
    whole = settle(*args, [delivery(rate)])
    split = settle(*args, [delivery(rate, five_min(n)) for n in range(12)])
    whole_dev = sum((line.amount for line in deviations(whole)), D(0))
    split_dev = sum((line.amount for line in deviations(split)), D(0))
    assert len(deviations(split)) == 12
    assert abs(whole_dev - split_dev) <= 13 * MONEY


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_mw_and_mwh_give_the_same_amounts(scenario):
    clearings, transactions, deliveries = scenario
    in_kw = settle(market(), clearings, transactions, deliveries)

    k = D(1000)
    mw_clearings = [c.model_copy(update={"price": c.price * k, "price_per": EnergyUnit.MWH}) for c in clearings]
    mw_transactions = [
        t.model_copy(
            update={
                "quantity": t.quantity / k,
                "price": t.price * k,
                "quantity_unit": PowerUnit.MW,
                "price_per": EnergyUnit.MWH,
            }
        )
        for t in transactions
    ]
    mw_deliveries = [
        d.model_copy(update={"quantity": d.quantity / k, "quantity_unit": PowerUnit.MW}) for d in deliveries
    ]
    mw_market = market(quantity_unit=PowerUnit.MW, price_per=EnergyUnit.MWH)
    in_mw = settle(mw_market, mw_clearings, mw_transactions, mw_deliveries)

    assert [line.amount for line in in_mw.lines] == [line.amount for line in in_kw.lines]
    assert [line.id for line in in_mw.lines] == [line.id for line in in_kw.lines]
    assert in_mw.totals == in_kw.totals
    assert [line.quantity * k for line in in_mw.lines] == [line.quantity for line in in_kw.lines]


@settings(max_examples=40, deadline=None)
@given(scenarios())
def test_line_ids_are_deterministic_and_unique(scenario):
    clearings, transactions, deliveries = scenario
    first = settle(market(), clearings, transactions, deliveries)
    again = settle(market(), list(reversed(clearings)), list(reversed(transactions)), list(reversed(deliveries)))
    ids = [line.id for line in first.lines]
    assert ids == [line.id for line in again.lines]
    assert len(set(ids)) == len(ids)
    assert [line.amount for line in first.lines] == [line.amount for line in again.lines]


def test_a_counterparty_that_is_not_the_operator_is_billed_the_mirror_of_its_trades() -> None:
    """A retailer selling a subscription is paid for it; a seller whose tender was accepted bilaterally is paid and
    its metered output settles against the sale. The operator's side of a cleared trade is the pool's: no line."""
    market = Market(id="m", operator_id="pool")
    hour = Interval(start=datetime(2030, 1, 7, 10, tzinfo=UTC), duration=Resolution.HOUR)
    clearing = Clearing(
        market_id="m",
        interval=hour,
        type=ClearingType.MARGINAL_SELLER,
        price=Decimal("0.30"),
        cleared_quantity=Decimal(1),
        gate_closed_at=hour.start,
    )

    def trade(tid: str, party: str, counterparty: str, quantity: str, price: str, **extra: object) -> Transaction:
        return Transaction(
            id=tid,
            market_id="m",
            party_id=party,
            counterparty_id=counterparty,
            side=Side.BUY,
            location_id="sp",
            interval=hour,
            quantity=Decimal(quantity),
            price=Decimal(price),
            **extra,  # type: ignore[arg-type]
        )

    trades = [
        trade("sub", "cust", "retailer", "2", "0.10", subscription_id="block"),
        trade("bilateral", "cust", "neighbour", "1", "0.20"),
        trade("pooled", "cust", "pool", "1", "0.30"),
    ]
    meters = [
        Delivery(id="m-cust", party_id="cust", location_id="sp", interval=hour, quantity=Decimal(5)),
        Delivery(id="m-neighbour", party_id="neighbour", location_id="sp", interval=hour, quantity=Decimal("-1.5")),
    ]
    report = settle(market, [clearing], trades, meters)
    by = {(line.party_id, line.kind.value, tuple(line.reference_ids)): line.amount for line in report.lines}
    assert by[("retailer", "subscription", ("sub",))] == Decimal("-0.2")  # paid 2 kW x 0.10
    assert by[("neighbour", "transaction", ("bilateral",))] == Decimal("-0.2")
    assert not any(line.party_id == "pool" for line in report.lines)
    # The neighbour sold 1 kW and exported 1.5: 0.5 kW more, paid at spot.
    assert by[("neighbour", "deviation", ("m-neighbour",))] == Decimal("-0.15")
    # The customer holds 2 + 1 + 1 = 4 kW and used 5: 1 kW at spot.
    assert by[("cust", "deviation", ("m-cust",))] == Decimal("0.3")
    # The retailer has no meter at the customer's site and is not asked for one.
    assert report.missing_deliveries == []
