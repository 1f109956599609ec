"""The reference clearing service over real HTTP (uvicorn on loopback), on SQLite and on a real PostgreSQL: running a
call auction, reading results and positions, settling metered deliveries, the errors a client gets, and the periodic
call auction (driven by an injected clock, and running by itself inside the app)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from http_helpers import post, served

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.config import Settings
from gateway.ingest import Ingestor
from gateway.market.runs import MarketRunner
from gateway.market.scheduler import CallAuctionScheduler
from gateway.model import Envelope, MessageKind
from gateway.store import Store

D = Decimal
START = datetime(2024, 1, 7, 10, tzinfo=UTC)  # long past: its gate (09:55) has closed
S = "2024-01-07T10:00:00Z"
S_NEXT = "2024-01-07T11:00:00Z"
CID = "m1:2024-01-07T10:00:00+00:00:PT1H"  # clearing id: market, interval start, duration


@pytest.fixture
def http(store: Store) -> Iterator[httpx.Client]:
    with served(store) as client:
        yield client


def seed(http: httpx.Client, *, network: bool = True, **market: Any) -> None:
    """n1 > f1 > t1 (10 kVA) > sp1; f1 > t2 > sp2, sp3; parties op (the operator), a, b, c; market m1."""
    for p in ("op", "a", "b", "c"):
        post(http, "/v1/parties", {"id": p, "name": p, "roles": ["dmo" if p == "op" else "prosumer"]})
    for body in [
        {"id": "n1", "name": "n1", "kind": "pnode"},
        {"id": "f1", "name": "f1", "kind": "feeder", "parent_id": "n1"},
        {"id": "t1", "name": "t1", "kind": "transformer", "parent_id": "f1", "rating_kva": "10"},
        {"id": "t2", "name": "t2", "kind": "transformer", "parent_id": "f1"},
        {"id": "sp1", "name": "sp1", "kind": "service_point", "parent_id": "t1"},
        {"id": "sp2", "name": "sp2", "kind": "service_point", "parent_id": "t2"},
        {"id": "sp3", "name": "sp3", "kind": "service_point", "parent_id": "t2"},
    ]:
        post(http, "/v1/locations", body)
    root = {"network_root_id": "n1"} if network else {}
    post(http, "/v1/markets", {"id": "m1", "operator_id": "op", "gate_closure": "PT5M", **root, **market})


def tender(
    tid: str, party: str, side: str, location: str, quantity: str, price: str, start: str = S, **extra: Any
) -> dict[str, Any]:
    return {
        "id": tid,
        "market_id": "m1",
        "party_id": party,
        "side": side,
        "location_id": location,
        "rows": [{"start": start, "quantity": quantity, "price": price}],
        # A tender counts for an interval only if created before its gate closed; these intervals are past.
        "created_at": (datetime.fromisoformat(start) - timedelta(days=1)).isoformat(),
        **extra,
    }


def binding_book(http: httpx.Client) -> None:
    """A cheap seller behind t1 (10 kVA), a dear one elsewhere, a load of 20 kW: t1's limit binds."""
    post(http, "/v1/tenders", tender("cheap", "a", "sell", "sp1", "30", "0.05"))
    post(http, "/v1/tenders", tender("dear", "b", "sell", "sp2", "30", "0.30"))
    post(http, "/v1/tenders", tender("load", "c", "buy", "sp3", "20", "0.50"))


def clear(http: httpx.Client, market: str = "m1", status: int = 201, **body: Any) -> dict[str, Any]:
    response = http.post(f"/v1/markets/{market}/clear", json=body)
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


def decimals(mapping: dict[str, Any]) -> dict[str, Decimal]:
    return {k: D(str(v)) for k, v in mapping.items()}


def curve(points: list[list[Any]]) -> list[tuple[Decimal, Decimal]]:
    return [(D(str(q)), D(str(p))) for q, p in points]


def trades(found: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    return {(t["party_id"], t["side"]): (D(str(t["quantity"])), D(str(t["price"]))) for t in found}


# -- running an interval, reading what it left ------------------------------------------------------------------


def test_clearing_a_past_interval_over_http_and_reading_its_results(http: httpx.Client) -> None:
    seed(http)
    binding_book(http)

    first = clear(http, interval_start=S)
    [run] = first["runs"]
    clearing = run["clearing"]
    assert run["created"] is True and run["skipped"] == {}
    assert clearing["id"] == CID
    assert clearing["method"] == "network"
    assert clearing["binding_location_ids"] == ["t1"]
    prices = decimals(clearing["prices"])
    assert prices["sp1"] == prices["t1"] == D("0.05")  # behind the binding limit: the cheap seller's price
    assert prices["sp3"] == prices["n1"] == D(clearing["price"]) == D("0.3")
    assert D(clearing["cleared_quantity"]) == D(20)
    assert decimals(clearing["flows"])["t1"] == D(10)
    assert clearing["tender_count"] == 3 and clearing["transaction_count"] == 3
    assert datetime.fromisoformat(clearing["gate_closed_at"]) == START - timedelta(minutes=5)
    assert len(run["transaction_ids"]) == 3

    # The interval clears once: asking again returns the stored result and trades nothing.
    seq = http.get("/health").json()["database"]["log_seq"]
    again = clear(http, status=200, interval_start=S)
    [rerun] = again["runs"]
    assert rerun["created"] is False
    assert rerun["clearing"] == clearing
    assert sorted(rerun["transaction_ids"]) == sorted(run["transaction_ids"])
    assert http.get("/health").json()["database"]["log_seq"] == seq
    # The same instant written with another offset is the same interval.
    same = clear(http, status=200, interval_start="2024-01-07T11:00:00+01:00")
    assert same["runs"][0]["clearing"]["id"] == CID

    transactions = http.get("/v1/transactions", params={"clearing_id": CID}).json()
    assert sorted(t["id"] for t in transactions) == sorted(run["transaction_ids"])
    assert trades(transactions) == {
        ("a", "sell"): (D(10), D("0.05")),
        ("b", "sell"): (D(10), D("0.3")),
        ("c", "buy"): (D(20), D("0.3")),
    }
    assert {t["counterparty_id"] for t in transactions} == {"op"}
    assert {t["market_id"] for t in transactions} == {"m1"}

    # Results: curves left out unless asked for; the one-interval read has them.
    [listed] = http.get("/v1/markets/m1/results").json()
    assert listed["supply_curve"] == [] and listed["demand_curve"] == []
    assert {k: v for k, v in listed.items() if not k.endswith("_curve")} == {
        k: v for k, v in clearing.items() if not k.endswith("_curve")
    }
    [with_curves] = http.get("/v1/markets/m1/results", params={"curves": "true"}).json()
    assert curve(with_curves["supply_curve"]) == [(D(30), D("0.05")), (D(60), D("0.3"))]
    assert curve(with_curves["demand_curve"]) == [(D(20), D("0.5"))]
    assert with_curves == clearing
    one = http.get(f"/v1/markets/m1/results/{S}")
    assert one.status_code == 200 and one.json() == clearing
    assert http.get(f"/v1/markets/m1/results/{quote('2024-01-07T11:00:00+01:00')}").json() == clearing
    missing = http.get(f"/v1/markets/m1/results/{S_NEXT}")
    assert missing.status_code == 404 and "has not cleared 2024-01-07T11:00:00+00:00" in missing.json()["detail"]
    # The window is [start, end).
    assert len(http.get("/v1/markets/m1/results", params={"start": S}).json()) == 1
    assert http.get("/v1/markets/m1/results", params={"start": S_NEXT}).json() == []
    assert http.get("/v1/markets/m1/results", params={"end": S}).json() == []
    assert len(http.get("/v1/markets/m1/results", params={"end": S_NEXT}).json()) == 1

    # Positions: each party's net rate and cost, the operator on the other side of every trade.
    [position] = http.get("/v1/markets/m1/positions", params={"party_id": "c"}).json()
    assert (position["party_id"], position["location_id"], position["product_type"]) == ("c", "sp3", "energy")
    assert (D(position["quantity"]), D(position["cost"])) == (D(20), D(6))  # 20 kW x 1 h x 0.3
    assert position["interval"]["start"].startswith("2024-01-07T10:00:00")
    everyone = http.get("/v1/markets/m1/positions").json()
    assert [(p["party_id"], p["location_id"], D(p["quantity"]), D(p["cost"])) for p in everyone] == [
        ("a", "sp1", D(-10), D("-0.5")),
        ("b", "sp2", D(-10), D(-3)),
        ("c", "sp3", D(20), D(6)),
        ("op", "sp1", D(10), D("0.5")),
        ("op", "sp2", D(10), D(3)),
        ("op", "sp3", D(-20), D(-6)),
    ]
    assert http.get("/v1/markets/m1/positions", params={"start": S_NEXT}).json() == []

    # What the run stored came from the market, not from a client.
    log = http.get("/v1/messages", params={"kind": "clearing"}).json()["items"]
    assert [m["envelope"]["source"]["protocol"] for m in log] == ["market"]


def test_clearing_every_due_interval_when_none_is_named(http: httpx.Client) -> None:
    seed(http, network=False)
    before = datetime.now(UTC)
    first = clear(http)
    after = datetime.now(UTC)
    starts = [datetime.fromisoformat(r["clearing"]["interval"]["start"]) for r in first["runs"]]
    assert all(r["created"] for r in first["runs"])
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    # The last 24 h, up to the interval whose gate has closed most recently.
    assert 24 <= len(starts) <= 26
    assert starts[0] >= before - timedelta(hours=24, minutes=5)
    assert all(s - timedelta(minutes=5) <= after for s in starts)
    assert {r["clearing"]["type"] for r in first["runs"]} == {"NULL"}  # an empty book
    # Asked again, only what has become due since (nothing, unless a gate closed in between) is run.
    second = http.post("/v1/markets/m1/clear", json={})
    again = [datetime.fromisoformat(r["clearing"]["interval"]["start"]) for r in second.json()["runs"]]
    assert not set(again) & set(starts)
    assert second.status_code == (201 if again else 200)


# -- clients cannot write results --------------------------------------------------------------------------------


def test_clearings_are_read_only_for_clients(http: httpx.Client) -> None:
    seed(http)
    binding_book(http)
    clearing = clear(http, interval_start=S)["runs"][0]["clearing"]
    forged = {**clearing, "price": "99"}
    assert http.post("/v1/clearings", json=forged).status_code == 405
    assert http.get(f"/v1/clearings/{quote(CID)}").json() == clearing
    assert [c["id"] for c in http.get("/v1/clearings", params={"market_id": "m1"}).json()] == [CID]
    assert http.get(f"/v1/markets/m1/results/{S}").json()["price"] == clearing["price"]


def test_a_clearing_cannot_be_forged_through_the_message_log(http: httpx.Client) -> None:
    seed(http)
    binding_book(http)
    forged = {
        "object_type": "clearing",
        "market_id": "m1",
        "interval": {"start": S, "duration": "PT1H"},
        "type": "EXACT",
        "price": "99",
        "cleared_quantity": "0",
        "gate_closed_at": "2024-01-07T09:55:00Z",
    }
    response = http.post("/v1/messages", json={"payload": forged})
    assert response.status_code in (403, 405, 422), response.text
    assert clear(http, interval_start=S)["runs"][0]["created"] is True


# -- errors ---------------------------------------------------------------------------------------------------------


def test_run_requests_that_cannot_be_done_say_why(http: httpx.Client) -> None:
    seed(http)
    post(http, "/v1/markets", {"id": "m2", "operator_id": "op"})

    unknown = http.post("/v1/markets/nope/clear", json={"interval_start": S})
    assert unknown.status_code == 404 and unknown.json()["detail"] == "unknown market 'nope'"
    assert http.post("/v1/markets/nope/clear", json={}).status_code == 404
    assert http.get("/v1/markets/nope/results").status_code == 404
    assert http.get(f"/v1/markets/nope/results/{S}").status_code == 404

    misaligned = http.post("/v1/markets/m1/clear", json={"interval_start": "2024-01-07T10:07:00Z"})
    assert misaligned.status_code == 422
    assert "does not start a PT1H interval of market 'm1'" in misaligned.json()["detail"]
    assert http.get("/v1/markets/m1/results/2024-01-07T10:07:00Z").status_code == 422
    assert http.post("/v1/markets/m1/clear", json={"interval_start": "2024-01-07T10:00:00"}).status_code == 422
    assert http.post("/v1/markets/m1/clear", json={"interval_start": "yesterday"}).status_code == 422

    # A future interval: its gate is open, so it only runs when asked for early.
    future = "2099-01-07T10:00:00Z"
    gate_open = http.post("/v1/markets/m2/clear", json={"interval_start": future})
    assert gate_open.status_code == 409
    assert "closes at 2099-01-07T09:55:00+00:00" in gate_open.json()["detail"]
    assert http.get("/v1/markets/m2/results").json() == []
    before = datetime.now(UTC)
    early = clear(http, "m2", interval_start=future, early=True)["runs"][0]
    assert early["created"] is True and early["clearing"]["type"] == "NULL"
    gate_closed_at = datetime.fromisoformat(early["clearing"]["gate_closed_at"])
    assert before - timedelta(seconds=1) <= gate_closed_at <= datetime.now(UTC)  # closed by the run, not at 09:55
    assert http.get(f"/v1/markets/m2/results/{future}").json()["id"] == "m2:2099-01-07T10:00:00+00:00:PT1H"

    # A time without an offset is ambiguous in every query.
    naive = "2024-01-07T00:00:00"
    for path in ("results", "positions", "settlements"):
        response = http.get(f"/v1/markets/m1/{path}", params={"start": naive})
        assert response.status_code == 422, path
        assert "needs a UTC offset" in str(response.json()["detail"])
        assert http.get(f"/v1/markets/m1/{path}", params={"end": naive}).status_code == 422, path
    assert http.get(f"/v1/markets/m1/results/{naive}").status_code == 422
    assert http.get("/v1/markets/m1/results", params={"start": "not-a-time"}).status_code == 422


def test_an_early_run_of_a_later_interval_does_not_close_earlier_ones(http: httpx.Client) -> None:
    seed(http, network=False)
    clear(http, interval_start="2099-01-07T11:00:00Z", early=True)
    response = http.post("/v1/tenders", json=tender("t10", "a", "sell", "sp1", "5", "0.1", "2099-01-07T10:00:00Z"))
    assert response.status_code == 201, response.text


# -- the market's rules on the way in -------------------------------------------------------------------------------


def test_tenders_the_market_refuses_get_field_reasons_and_are_recorded(http: httpx.Client) -> None:
    seed(http)
    post(http, "/v1/locations", {"id": "elsewhere", "name": "x", "kind": "pnode"})

    euro = http.post("/v1/tenders", json=tender("t-eur", "a", "sell", "sp1", "5", "0.1", currency="EUR"))
    assert euro.status_code == 422
    assert euro.json()["detail"] == [
        {"loc": ["body", "currency"], "msg": "market 'm1' trades in USD, the tender is in EUR", "type": "market_rule"}
    ]
    rejection = http.get("/v1/rejections").json()[0]
    assert rejection["protocol"] == "api" and "trades in USD, the tender is in EUR" in rejection["reason"]

    outside = http.post("/v1/tenders", json=tender("t-out", "a", "sell", "elsewhere", "5", "0.1"))
    assert outside.status_code == 422
    [problem] = outside.json()["detail"]
    assert problem["loc"] == ["body", "location_id"] and "not inside market 'm1''s network" in problem["msg"]

    capped = http.post("/v1/tenders", json=tender("t-cap", "a", "sell", "sp1", "5", "10000"))
    assert [p["loc"] for p in capped.json()["detail"]] == [["body", "rows", 0, "price"]]
    operator = http.post("/v1/tenders", json=tender("t-op", "op", "sell", "sp1", "5", "0.1"))
    assert [p["loc"] for p in operator.json()["detail"]] == [["body", "party_id"]]
    assert http.get("/v1/tenders").json() == []

    # Once the interval has cleared, a tender only for it is refused (it could never trade).
    binding_book(http)
    clear(http, interval_start=S)
    late = http.post("/v1/tenders", json=tender("late", "a", "sell", "sp1", "5", "0.1"))
    assert late.status_code == 422
    assert "has been cleared already" in late.json()["detail"][0]["msg"]
    assert "has been cleared already" in http.get("/v1/rejections").json()[0]["reason"]
    assert http.get("/v1/tenders/late").status_code == 404


# -- settlement ------------------------------------------------------------------------------------------------------


def delivery(did: str, party: str, location: str, quantity: str, start: str = S) -> dict[str, Any]:
    return {
        "id": did,
        "party_id": party,
        "location_id": location,
        "interval": {"start": start, "duration": "PT1H"},
        "quantity": quantity,
    }


def lines_of(body: list[dict[str, Any]]) -> list[tuple[str, str, str, Decimal, Decimal, Decimal]]:
    return [
        (ln["party_id"], ln["location_id"], ln["kind"], D(ln["quantity"]), D(ln["price"]), D(ln["amount"]))
        for ln in body
    ]


def test_settling_deliveries_against_positions(http: httpx.Client) -> None:
    seed(http)
    binding_book(http)
    clear(http, interval_start=S)
    post(http, "/v1/deliveries", delivery("d-a", "a", "sp1", "-9"))  # sold 10 kW, exported 9
    post(http, "/v1/deliveries", delivery("d-c", "c", "sp3", "22"))  # bought 20 kW, used 22
    post(http, "/v1/deliveries", delivery("d-c-11", "c", "sp3", "4", S_NEXT))  # an hour the market has not cleared
    window = {"start": S, "end": "2024-01-07T12:00:00Z"}

    response = http.post("/v1/markets/m1/settle", json=window)
    assert response.status_code == 200, response.text
    report = response.json()
    assert lines_of(report["lines"]) == [
        # forward trades at their own price; deviations at the spot price of their location
        ("a", "sp1", "deviation", D(1), D("0.05"), D("0.05")),  # 1 kW not exported, bought back at t1's 0.05
        ("a", "sp1", "transaction", D(-10), D("0.05"), D("-0.5")),
        ("b", "sp2", "transaction", D(-10), D("0.3"), D(-3)),
        ("c", "sp3", "deviation", D(2), D("0.3"), D("0.6")),  # 2 kW x 1 h x 0.3 USD/kWh
        ("c", "sp3", "transaction", D(20), D("0.3"), D(6)),
    ]
    assert decimals(report["totals"]) == {"a": D("-0.45"), "b": D(-3), "c": D("6.6")}
    assert report["stored"] == 5
    deviation_c = next(ln for ln in report["lines"] if ln["party_id"] == "c" and ln["kind"] == "deviation")
    assert deviation_c["reference_ids"] == ["d-c"]
    assert [(m["party_id"], m["location_id"], m["interval"]["start"][:19]) for m in report["missing_deliveries"]] == [
        ("b", "sp2", "2024-01-07T10:00:00")
    ]
    assert [(u["party_id"], u["location_id"], u["interval"]["start"][:19]) for u in report["unpriced"]] == [
        ("c", "sp3", "2024-01-07T11:00:00")
    ]

    # The same data settled again stores nothing new.
    again = http.post("/v1/markets/m1/settle", json=window).json()
    assert again["stored"] == 0
    assert lines_of(again["lines"]) == lines_of(report["lines"]) and again["totals"] == report["totals"]
    assert [ln["id"] for ln in again["lines"]] == [ln["id"] for ln in report["lines"]]

    stored = http.get("/v1/markets/m1/settlements", params={"party_id": "c"}).json()
    assert lines_of(stored) == [
        ("c", "sp3", "deviation", D(2), D("0.3"), D("0.6")),
        ("c", "sp3", "transaction", D(20), D("0.3"), D(6)),
    ]
    assert len(http.get("/v1/markets/m1/settlements").json()) == 5
    assert http.get("/v1/markets/m1/settlements", params={"start": S_NEXT}).json() == []

    # A corrected meter reading changes exactly the line it feeds.
    post(http, "/v1/deliveries", delivery("d-c", "c", "sp3", "23"))
    corrected = http.post("/v1/markets/m1/settle", json=window).json()
    assert corrected["stored"] == 1
    assert decimals(corrected["totals"])["c"] == D("6.9")
    stored = http.get("/v1/markets/m1/settlements", params={"party_id": "c"}).json()
    assert lines_of(stored)[0] == ("c", "sp3", "deviation", D(3), D("0.3"), D("0.9"))
    assert len(http.get("/v1/markets/m1/settlements").json()) == 5


def test_settlement_requests_that_cannot_be_done(http: httpx.Client) -> None:
    seed(http)
    unknown = http.post("/v1/markets/nope/settle", json={"start": S, "end": S_NEXT})
    assert unknown.status_code == 404 and "unknown market 'nope'" in unknown.json()["detail"]
    backwards = http.post("/v1/markets/m1/settle", json={"start": S_NEXT, "end": S})
    assert backwards.status_code == 422 and "must end after it starts" in backwards.json()["detail"]
    assert http.post("/v1/markets/m1/settle", json={"start": S, "end": S}).status_code == 422
    naive = http.post("/v1/markets/m1/settle", json={"start": "2024-01-07T10:00:00", "end": S_NEXT})
    assert naive.status_code == 422 and naive.json()["detail"][0]["loc"] == ["body", "start"]
    empty = http.post("/v1/markets/m1/settle", json={"start": S, "end": S_NEXT}).json()
    assert empty == {
        "lines": [],
        "totals": {},
        "stored": 0,
        "missing_deliveries": [],
        "unpriced": [],
        "unquantified_overrides": [],
    }


def test_an_interval_settles_the_same_whatever_window_holds_it(http: httpx.Client) -> None:
    seed(http)
    binding_book(http)
    clear(http, interval_start=S)
    clear(http, interval_start=S_NEXT)  # c did not trade at 11:00: its position there is zero
    post(http, "/v1/deliveries", delivery("d-c-11", "c", "sp3", "4", S_NEXT))
    wide = http.post("/v1/markets/m1/settle", json={"start": S, "end": "2024-01-07T12:00:00Z"}).json()
    narrow = http.post("/v1/markets/m1/settle", json={"start": S_NEXT, "end": "2024-01-07T12:00:00Z"}).json()
    at_11 = [ln for ln in wide["lines"] if ln["interval"]["start"].startswith("2024-01-07T11:00:00")]
    assert at_11  # the wide window bills the 4 kW at 11:00 at spot

    def unstamped(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in line.items() if k != "settled_at"} for line in lines]

    assert unstamped(narrow["lines"]) == unstamped(at_11)
    assert narrow["stored"] == 0  # the same lines, already stored by the wide run


# -- the periodic call auction -------------------------------------------------------------------------------------


def env(object_type: str, /, **payload: Any) -> Envelope:
    return Envelope.model_validate({"payload": {"object_type": object_type, **payload}})


def test_the_scheduler_clears_each_due_interval_once_within_its_lookback(store: Store) -> None:
    Ingestor(store).ingest_sync(
        [
            *(env("party", id=p, name=p, roles=["dmo" if p == "op" else "prosumer"]) for p in ("op", "a", "c")),
            env("location", id="f1", name="f1", kind="feeder"),
            env("location", id="sp1", name="sp1", kind="service_point", parent_id="f1"),
            env("location", id="sp3", name="sp3", kind="service_point", parent_id="f1"),
            env("market", id="m1", operator_id="op"),
            env("market", id="manual", operator_id="op", auto_clear=False),
            env("market", id="closed", operator_id="op", active=False),
            env("tender", **tender("sa", "a", "sell", "sp1", "5", "0.10")),
            env("tender", **tender("bc", "c", "buy", "sp3", "3", "0.30")),
        ],
        protocol="test",
        peer="test",
    )
    now = [datetime(2024, 1, 7, 12, 56, tzinfo=UTC)]  # 13:00's gate closed a minute ago
    scheduler = CallAuctionScheduler(MarketRunner(store), clock=lambda: now[0], lookback=timedelta(hours=3))

    def cleared(market: str) -> list[datetime]:
        found = store.list(MessageKind.CLEARING, filters={"market_id": market}, limit=None)
        return sorted(c.interval.start for c in found)  # type: ignore[union-attr]

    results = scheduler.run_due()
    hours = [START + timedelta(hours=h) for h in range(4)]  # 10:00 .. 13:00; 09:00 began before the lookback
    assert [r.clearing.interval.start for r in results] == hours
    assert all(r.created for r in results) and scheduler.runs == 4 and scheduler.failures == 0
    assert cleared("m1") == hours
    assert cleared("manual") == [] and cleared("closed") == []
    at_ten = results[0]
    assert at_ten.clearing.gate_closed_at == START - timedelta(minutes=5)
    assert at_ten.clearing.cleared_at == now[0]
    assert D(at_ten.clearing.cleared_quantity) == D(3)
    assert sorted((t.party_id, t.quantity) for t in at_ten.transactions) == [("a", D(3)), ("c", D(3))]
    assert [r.clearing.type.value for r in results[1:]] == ["NULL"] * 3

    seq = store.last_seq()
    assert scheduler.run_due() == []  # nothing new is due: nothing runs twice
    assert store.last_seq() == seq and scheduler.runs == 4

    now[0] += timedelta(minutes=59)  # 13:55: 14:00's gate has just closed
    assert [r.clearing.interval.start for r in scheduler.run_due()] == [START + timedelta(hours=4)]
    assert cleared("m1") == [*hours, START + timedelta(hours=4)]

    # A longer lookback catches up on what the shorter one left behind, once.
    wide = CallAuctionScheduler(MarketRunner(store), clock=lambda: now[0], lookback=timedelta(hours=5))
    assert [r.clearing.interval.start for r in wide.run_due()] == [START - timedelta(hours=1)]
    assert wide.run_due() == []
    assert cleared("manual") == [] and cleared("closed") == []


def test_the_app_clears_a_closed_gate_by_itself(store: Store) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    at = start.isoformat().replace("+00:00", "Z")
    app = create_app(Settings(market_tick_seconds=0.2), store=store)
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        # Tenders go in while the market does not clear by itself; then it is switched on.
        seed(http, network=False, auto_clear=False)
        post(http, "/v1/tenders", tender("sa", "a", "sell", "sp1", "5", "0.10", at))
        post(http, "/v1/tenders", tender("bc", "c", "buy", "sp3", "3", "0.30", at))
        time.sleep(0.5)  # a few ticks: none of them may touch a market that does not clear by itself
        assert http.get("/v1/markets/m1/results").json() == []
        post(http, "/v1/markets", {"id": "m1", "operator_id": "op", "gate_closure": "PT5M", "auto_clear": True})

        deadline = time.monotonic() + 10
        response = http.get(f"/v1/markets/m1/results/{at}")
        while response.status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.1)
            response = http.get(f"/v1/markets/m1/results/{at}")
        assert response.status_code == 200, response.text
        clearing = response.json()
        assert D(clearing["cleared_quantity"]) == D(3) and clearing["transaction_count"] == 2
        assert datetime.fromisoformat(clearing["gate_closed_at"]) == start - timedelta(minutes=5)
        transactions = http.get("/v1/transactions", params={"clearing_id": clearing["id"]}).json()
        assert sorted((t["party_id"], t["side"], D(t["quantity"])) for t in transactions) == [
            ("a", "sell", D(3)),
            ("c", "buy", D(3)),
        ]
        [position] = http.get("/v1/markets/m1/positions", params={"party_id": "c"}).json()
        assert D(position["quantity"]) == D(3)
        # A manual run of the interval finds the scheduler's result.
        rerun = clear(http, status=200, interval_start=at)["runs"][0]
        assert rerun["created"] is False and rerun["clearing"] == clearing
