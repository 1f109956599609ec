"""Market runs against a real store (SQLite and PostgreSQL): books from stored tenders, the call auction,
network-aware clearing when a transformer limit binds, transactions, positions, and the market's ingest rules."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from gateway.ingest import Ingestor, Rejected
from gateway.market.runs import MarketError, MarketRunner, to_decimal
from gateway.model import ClearingMethod, ClearingType, Envelope, MessageKind
from gateway.store import Store

START = datetime(2030, 1, 7, 10, tzinfo=UTC)
AFTER_GATE = START - timedelta(minutes=4)  # the default gate closes 5 minutes before the interval
CREATED = START - timedelta(days=1)  # tenders count for an interval only if created before its gate closed


def env(object_type: str, /, **payload: Any) -> Envelope:
    return Envelope.model_validate({"payload": {"object_type": object_type, **payload}})


def tender(tid: str, party: str, side: str, location: str, quantity: str, price: str, **extra: Any) -> Envelope:
    rows = [{"start": START.isoformat(), "quantity": quantity, "price": price}]
    return env("tender", id=tid, market_id="m1", party_id=party, side=side, location_id=location, rows=rows, **extra)


def ingest(store: Store, *envelopes: Envelope) -> None:
    Ingestor(store).ingest_sync(list(envelopes), protocol="rest", peer="test")


def seed(store: Store, *, network: bool = True, **market: Any) -> None:
    """n1 (pnode) > f1 (feeder) > t1 (transformer, 10 kVA) > sp1; f1 > t2 (no limit) > sp2, sp3."""
    ingest(
        store,
        *(env("party", id=p, name=p, roles=["dmo" if p == "op" else "prosumer"]) for p in ("op", "a", "b", "c")),
        env("location", id="n1", name="n1", kind="pnode"),
        env("location", id="f1", name="f1", kind="feeder", parent_id="n1"),
        env("location", id="t1", name="t1", kind="transformer", parent_id="f1", rating_kva="10"),
        env("location", id="t2", name="t2", kind="transformer", parent_id="f1"),
        env("location", id="sp1", name="sp1", kind="service_point", parent_id="t1"),
        env("location", id="sp2", name="sp2", kind="service_point", parent_id="t2"),
        env("location", id="sp3", name="sp3", kind="service_point", parent_id="t2"),
        env("market", id="m1", operator_id="op", network_root_id="n1" if network else None, **market),
    )


def by_party(result: Any) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    return {(t.party_id, t.side.value): (t.quantity, t.price) for t in result.transactions}


# -- the plain call auction ---------------------------------------------------------------------------------------


def test_uniform_run_trades_at_one_price_against_the_operator(store: Store) -> None:
    seed(store, network=False)
    ingest(
        store,
        tender("sa", "a", "sell", "sp1", "5", "0.10"),
        tender("sb", "b", "sell", "sp2", "5", "0.20"),
        tender("bc", "c", "buy", "sp3", "8", "0.30"),
    )
    result = MarketRunner(store).clear_interval("m1", START, now=AFTER_GATE)

    clearing = result.clearing
    assert result.created
    assert (clearing.type, clearing.price, clearing.cleared_quantity) == (
        ClearingType.MARGINAL_SELLER,
        Decimal("0.2"),
        Decimal("8"),
    )
    assert by_party(result) == {
        ("a", "sell"): (Decimal("5"), Decimal("0.2")),
        ("b", "sell"): (Decimal("3"), Decimal("0.2")),
        ("c", "buy"): (Decimal("8"), Decimal("0.2")),
    }
    assert {t.counterparty_id for t in result.transactions} == {"op"}
    positions = {(p.party_id, p.location_id): (p.quantity, p.cost) for p in result.positions}
    assert positions[("a", "sp1")] == (Decimal("-5"), Decimal("-1"))
    assert positions[("c", "sp3")] == (Decimal("8"), Decimal("1.6"))
    assert positions[("op", "sp3")] == (Decimal("-8"), Decimal("-1.6"))  # the operator is the other side
    # Curves are kept for plotting: cumulative quantity and price per level.
    assert clearing.supply_curve == [(Decimal(5), Decimal("0.1")), (Decimal(10), Decimal("0.2"))]
    assert clearing.demand_curve == [(Decimal(8), Decimal("0.3"))]
    assert store.get(MessageKind.CLEARING, clearing.id) == clearing


def test_a_second_run_of_the_interval_returns_the_stored_result_and_trades_nothing(store: Store) -> None:
    seed(store, network=False)
    ingest(store, tender("sa", "a", "sell", "sp1", "5", "0.10"), tender("bc", "c", "buy", "sp3", "3", "0.30"))
    runner = MarketRunner(store)
    first = runner.clear_interval("m1", START, now=AFTER_GATE)
    before = store.last_seq()
    again = MarketRunner(store).clear_interval("m1", START, now=AFTER_GATE + timedelta(minutes=1))
    assert not again.created
    assert again.clearing == first.clearing
    assert sorted(t.id for t in again.transactions) == sorted(t.id for t in first.transactions)
    assert store.last_seq() == before


def test_concurrent_runs_of_one_interval_trade_once(store: Store) -> None:
    seed(store, network=False)
    ingest(store, tender("sa", "a", "sell", "sp1", "5", "0.10"), tender("bc", "c", "buy", "sp3", "3", "0.30"))
    results: list[Any] = []

    def run() -> None:
        results.append(MarketRunner(store).clear_interval("m1", START, now=AFTER_GATE))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3
    stored = store.list(MessageKind.TRANSACTION, filters={"market_id": "m1"}, limit=None)
    assert len(stored) == 2
    assert {frozenset(t.id for t in r.transactions) for r in results} == {frozenset(t.id for t in stored)}


def test_a_run_that_fails_while_storing_leaves_nothing_and_can_be_retried(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(store, network=False)
    ingest(store, tender("sa", "a", "sell", "sp1", "5", "0.10"), tender("bc", "c", "buy", "sp3", "3", "0.30"))
    runner = MarketRunner(store)
    real = MarketRunner._envelopes
    taken = store.query_messages(limit=1)[0].envelope.message_id

    def clash(self: MarketRunner, market: Any, result: Any) -> list[Envelope]:
        envelopes = real(self, market, result)
        # The last envelope reuses a stored message id: the database refuses the whole append.
        return [*envelopes[:-1], envelopes[-1].model_copy(update={"message_id": taken})]

    monkeypatch.setattr(MarketRunner, "_envelopes", clash)
    with pytest.raises(Exception, match="message"):
        runner.clear_interval("m1", START, now=AFTER_GATE)
    assert store.list(MessageKind.TRANSACTION, limit=None) == []
    assert store.list(MessageKind.CLEARING, limit=None) == []
    monkeypatch.setattr(MarketRunner, "_envelopes", real)
    assert runner.clear_interval("m1", START, now=AFTER_GATE).created


def test_the_gate_must_close_before_a_run_unless_asked_early(store: Store) -> None:
    seed(store, network=False)
    runner = MarketRunner(store)
    with pytest.raises(MarketError, match="closes at 2030-01-07T09:55:00"):
        runner.clear_interval("m1", START, now=START - timedelta(hours=1))
    result = runner.clear_interval("m1", START, now=START - timedelta(hours=1), early=True)
    assert result.clearing.type is ClearingType.NULL
    assert result.clearing.gate_closed_at == START - timedelta(hours=1)


def test_bad_run_requests_say_what_is_wrong(store: Store) -> None:
    seed(store, network=False)
    runner = MarketRunner(store)
    with pytest.raises(MarketError, match="unknown market 'nope'"):
        runner.clear_interval("nope", START)
    with pytest.raises(MarketError, match="does not start a PT1H interval"):
        runner.clear_interval("m1", START + timedelta(minutes=7))


def test_cancelled_and_expired_tenders_stay_out_of_the_book(store: Store) -> None:
    seed(store, network=False)
    ingest(
        store,
        tender("sa", "a", "sell", "sp1", "5", "0.10", status="cancelled"),
        tender("sb", "b", "sell", "sp2", "5", "0.20", expires_at=(START - timedelta(minutes=10)).isoformat()),
        tender("sc", "b", "sell", "sp2", "5", "0.25"),
        tender("bc", "c", "buy", "sp3", "8", "0.30"),
    )
    result = MarketRunner(store).clear_interval("m1", START, now=AFTER_GATE)
    assert result.skipped == {"cancelled": 1, "expired": 1}
    assert by_party(result)[("c", "buy")] == (Decimal("5"), Decimal("0.3"))


def test_subscriptions_become_transactions_and_count_in_positions(store: Store) -> None:
    seed(store, network=False)
    ingest(
        store,
        env(
            "subscription",
            id="sub-c",
            market_id="m1",
            party_id="c",
            counterparty_id="b",
            location_id="sp3",
            quantity="2",
            price="0.15",
            start="2030-01-07T00:00:00Z",
            end="2030-01-08T00:00:00Z",
        ),
        tender("sa", "a", "sell", "sp1", "5", "0.10"),
        tender("bc", "c", "buy", "sp3", "3", "0.30"),
    )
    result = MarketRunner(store).clear_interval("m1", START, now=AFTER_GATE)
    subscribed = [t for t in result.transactions if t.subscription_id == "sub-c"]
    assert [(t.party_id, t.counterparty_id, t.quantity, t.price) for t in subscribed] == [
        ("c", "b", Decimal(2), Decimal("0.15"))
    ]
    position = {(p.party_id, p.location_id): p for p in result.positions}[("c", "sp3")]
    assert position.quantity == Decimal(5)  # 3 cleared + 2 subscribed
    assert position.cost == Decimal("0.6")  # 3 x 0.10 + 2 x 0.15 (a 1 h interval)


# -- the network ----------------------------------------------------------------------------------------------


def test_a_binding_transformer_limit_separates_prices(store: Store) -> None:
    seed(store)
    ingest(
        store,
        tender("cheap", "a", "sell", "sp1", "30", "0.05"),  # behind t1 (10 kVA)
        tender("dear", "b", "sell", "sp2", "30", "0.30"),
        tender("load", "c", "buy", "sp3", "20", "0.50"),
    )
    result = MarketRunner(store).clear_interval("m1", START, now=AFTER_GATE)
    clearing = result.clearing
    assert clearing.method is ClearingMethod.NETWORK
    assert clearing.binding_location_ids == ["t1"]
    assert clearing.prices["sp1"] == clearing.prices["t1"] == Decimal("0.05")
    assert clearing.prices["sp3"] == clearing.prices["n1"] == clearing.price == Decimal("0.3")
    assert clearing.flows["t1"] == Decimal(10)
    assert by_party(result) == {
        ("a", "sell"): (Decimal(10), Decimal("0.05")),
        ("b", "sell"): (Decimal(10), Decimal("0.3")),
        ("c", "buy"): (Decimal(20), Decimal("0.3")),
    }
    # The plain auction's verdict is kept for reference: it would have sold 20 kW from behind t1.
    assert clearing.type is ClearingType.MARGINAL_SELLER


def test_with_no_binding_limit_the_network_market_clears_like_the_plain_auction(store: Store) -> None:
    seed(store)
    ingest(
        store,
        tender("cheap", "a", "sell", "sp1", "30", "0.05"),
        tender("dear", "b", "sell", "sp2", "30", "0.30"),
        tender("load", "c", "buy", "sp3", "8", "0.50"),
    )
    result = MarketRunner(store).clear_interval("m1", START, now=AFTER_GATE)
    assert result.clearing.method is ClearingMethod.UNIFORM
    assert result.clearing.binding_location_ids == []
    assert set(result.clearing.prices.values()) == {Decimal("0.05")}
    assert by_party(result) == {
        ("a", "sell"): (Decimal(8), Decimal("0.05")),
        ("c", "buy"): (Decimal(8), Decimal("0.05")),
    }


def test_transport_bought_relieves_the_limit_and_earns_the_price_difference(store: Store) -> None:
    seed(store)
    ingest(
        store,
        tender("cheap", "a", "sell", "sp1", "30", "0.05"),
        tender("dear", "b", "sell", "sp2", "30", "0.30"),
        tender("load", "c", "buy", "sp3", "20", "0.50"),
        env(
            "tender",
            id="wire",
            market_id="m1",
            party_id="b",
            side="sell",
            location_id="t1",
            product={"type": "transport", "from_location_id": "t1", "to_location_id": "f1"},
            rows=[{"start": START.isoformat(), "quantity": "4", "price": "0.01"}],
        ),
    )
    result = MarketRunner(store).clear_interval("m1", START, now=AFTER_GATE)
    trades = by_party(result)
    assert trades[("a", "sell")][0] == Decimal(14)  # 10 kVA + 4 kW of transport
    wire = next(t for t in result.transactions if t.tender_id == "wire")
    assert wire.quantity == Decimal(4)
    assert wire.price == result.clearing.prices["f1"] - result.clearing.prices["t1"]
    assert wire.price >= Decimal("0.01")


def test_an_all_or_none_tender_the_network_would_split_is_left_out(store: Store) -> None:
    seed(store)
    ingest(
        store,
        tender("cheap", "a", "sell", "sp1", "30", "0.05", all_or_none=True),
        tender("dear", "b", "sell", "sp2", "30", "0.30"),
        tender("load", "c", "buy", "sp3", "20", "0.50"),
    )
    result = MarketRunner(store).clear_interval("m1", START, now=AFTER_GATE)
    assert result.clearing.excluded_tender_ids == ["cheap"]
    assert by_party(result) == {
        ("b", "sell"): (Decimal(20), Decimal("0.3")),
        ("c", "buy"): (Decimal(20), Decimal("0.3")),
    }


# -- the market's rules on the way in -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "where", "reason"),
    [
        ({"currency": "EUR"}, ("currency",), "trades in USD, the tender is in EUR"),
        ({"resolution": "PT15M"}, ("resolution",), "clears PT1H intervals"),
        ({"price": "10000"}, ("rows", 0, "price"), "above the cap"),
        ({"location_id": "elsewhere"}, ("location_id",), "not inside market 'm1''s network"),
        ({"party_id": "op"}, ("party_id",), "operates market 'm1'"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, ("expires_at",), "expired"),
        ({"market_id": "m2"}, ("market_id",), "unknown market 'm2'"),
        (
            {"product": {"type": "option", "option_kind": "call", "strike": "1", "premium": "0"}},
            ("product", "type"),
            "clears energy and transport",
        ),
    ],
)
def test_tenders_the_market_cannot_take_are_refused_with_a_reason(
    store: Store, change: dict[str, Any], where: tuple[Any, ...], reason: str
) -> None:
    seed(store)
    change = dict(change)
    ingest(store, env("location", id="elsewhere", name="x", kind="pnode"))
    payload: dict[str, Any] = {
        "id": "t",
        "market_id": "m1",
        "party_id": "a",
        "side": "sell",
        "location_id": "sp1",
        "rows": [{"start": START.isoformat(), "quantity": "1", "price": change.pop("price", "0.1")}],
    }
    payload.update(change)
    with pytest.raises(Rejected) as caught:
        ingest(store, env("tender", **payload))
    assert [(p.loc[2:], reason in p.msg) for p in caught.value.problems] == [(where, True)]
    assert not store.exists(MessageKind.TENDER, "t")


def test_a_tender_off_the_markets_grid_is_refused(store: Store) -> None:
    seed(store, time_zone="Asia/Kolkata")  # UTC+5:30: the hour starts at :30 past a UTC hour
    with pytest.raises(Rejected, match="not the start of a PT1H interval"):
        ingest(store, tender("t", "a", "sell", "sp1", "1", "0.1"))
    aligned = tender("t", "a", "sell", "sp1", "1", "0.1").payload.model_copy(
        update={"rows": [{"start": START + timedelta(minutes=30), "quantity": Decimal(1), "price": Decimal("0.1")}]}
    )
    ingest(store, Envelope(payload=aligned))
    assert store.exists(MessageKind.TENDER, "t")


def test_to_decimal_gives_short_exact_prices() -> None:
    assert to_decimal(0.1 + 0.5 * (0.12 - 0.1)) == Decimal("0.11")
    assert str(to_decimal(10.0)) == "10"
    assert str(to_decimal(-0.05)) == "-0.05"


def test_a_tender_only_for_cleared_intervals_is_refused(store: Store) -> None:
    seed(store, network=False)
    MarketRunner(store).clear_interval("m1", START, now=AFTER_GATE)
    with pytest.raises(Rejected, match="has been cleared already"):
        ingest(store, tender("late", "a", "sell", "sp1", "1", "0.1"))
    # a strip reaching past the cleared interval is still welcome: its later rows can trade
    later = [{"start": START + timedelta(hours=h), "quantity": Decimal(1), "price": Decimal("0.1")} for h in (0, 1)]
    ingest(
        store,
        Envelope(payload=tender("strip", "a", "sell", "sp1", "1", "0.1").payload.model_copy(update={"rows": later})),
    )
    assert store.exists(MessageKind.TENDER, "strip")
