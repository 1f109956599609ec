"""The operator's override of market dispatch (soft and hard curtailment), allocated among the DERs behind a
constrained location: the allocation's properties (hypothesis), POST /v1/curtailments over real HTTP on SQLite and
a real PostgreSQL, each bad request refused with its reason and nothing stored, the CLI, and what devices see: a
real 2030.5 client over mutual TLS gets an opModExpLimW DERControl, a real openleadr VEN gets an event, and a
customer may override a soft curtailment but not a hard one."""

from __future__ import annotations

import json
import random
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest
from certs import Issued, TestCa
from hypothesis import given, settings
from hypothesis import strategies as st
from openleadr import OpenADRClient
from typer.testing import CliRunner

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.api.tls import server_tls_options
from gateway.cli import app as cli
from gateway.config import Settings
from gateway.ingest import Ingestor
from gateway.model import (
    Clearing,
    ClearingType,
    Control,
    ControlKind,
    ControlStatus,
    Envelope,
    Interval,
    MessageKind,
    Response,
    Source,
    Tender,
    Transaction,
)
from gateway.model.intervals import Resolution
from gateway.model.overrides import ResponseStatus
from gateway.overrides.curtailment import WATT, Candidate, Direction, Method, allocate, apportion
from gateway.protocols.ieee2030_5 import mapper as sep2_mapper
from gateway.protocols.ieee2030_5.client import Sep2Client
from gateway.protocols.ieee2030_5.identity import lfdi_of_certificate
from gateway.protocols.openadr2b.vens import short_fingerprint
from gateway.store import Store

NOW = datetime.now(UTC)
HOUR = NOW.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
MARKET = "m1"
POLICY = f"""
programs:
  grid-soft: {{market_id: {MARKET}, penalty_per_kwh: "0.50", enforcement: soft}}
  grid-hard: {{market_id: {MARKET}, enforcement: hard}}
markets: {{}}
"""

# -- the allocation, pure ---------------------------------------------------------------------------------------

KW = st.decimals(min_value=0, max_value=50, places=4, allow_nan=False, allow_infinity=False)
PRICE = st.one_of(st.none(), st.decimals(min_value=-1, max_value=1, places=2, allow_nan=False))
CANDIDATES = st.lists(st.tuples(KW, st.integers(0, 5), PRICE), min_size=1, max_size=8).map(
    lambda rows: [
        Candidate(f"r{i}", f"p{i % 3}", "sp", kw, connected=seq, price=price) for i, (kw, seq, price) in enumerate(rows)
    ]
)
REQUIRED = st.decimals(min_value=Decimal("0.0001"), max_value=200, places=4, allow_nan=False)


def _order_key(method: Method, direction: Direction) -> Any:
    if method is Method.FILO:
        return lambda c: (-c.connected, c.resource_id)

    def bid(c: Candidate) -> tuple[bool, Decimal, str]:
        if c.price is None:
            return (False, Decimal(0), c.resource_id)
        return (True, -c.price if direction is Direction.EXPORT else c.price, c.resource_id)

    return bid


def _check_common(required: Decimal, candidates: list[Candidate], method: Method, direction: Direction) -> dict:
    result = allocate(required, candidates, method, direction)
    reductions = {s.candidate.resource_id: s.reduction_kw for s in result.shares}
    available = sum((c.dispatched_kw for c in candidates), Decimal(0))
    assert set(reductions) == {c.resource_id for c in candidates}
    assert sum(reductions.values()) == min(required, available)  # exact, no rounding drift
    assert result.shortfall_kw == required - min(required, available)
    for c in candidates:
        assert 0 <= reductions[c.resource_id] <= c.dispatched_kw
    shuffled = list(candidates)
    random.Random(len(candidates)).shuffle(shuffled)
    again = allocate(required, shuffled, method, direction)
    assert {s.candidate.resource_id: s.reduction_kw for s in again.shares} == reductions  # order does not matter
    return reductions


@settings(max_examples=200, deadline=None)
@given(REQUIRED, CANDIDATES, st.sampled_from(list(Direction)), st.sampled_from([Method.FILO, Method.BID_ORDER]))
def test_ordered_methods_curtail_whole_resources_in_their_order(
    required: Decimal, candidates: list[Candidate], direction: Direction, method: Method
) -> None:
    reductions = _check_common(required, candidates, method, direction)
    ordered = sorted(candidates, key=_order_key(method, direction))
    partial = [c for c in ordered if 0 < reductions[c.resource_id] < c.dispatched_kw]
    assert len(partial) <= 1
    for i, earlier in enumerate(ordered):
        for later in ordered[i + 1 :]:
            if reductions[later.resource_id] > 0:  # a later one is touched only when every earlier one is spent
                assert reductions[earlier.resource_id] == earlier.dispatched_kw


@settings(max_examples=200, deadline=None)
@given(REQUIRED, CANDIDATES, st.sampled_from(list(Direction)))
def test_pro_rata_gives_each_its_proportional_share_within_a_watt(
    required: Decimal, candidates: list[Candidate], direction: Direction
) -> None:
    reductions = _check_common(required, candidates, Method.PRO_RATA, direction)
    available = sum((c.dispatched_kw for c in candidates), Decimal(0))
    if available == 0:
        assert set(reductions.values()) == {Decimal(0)}
        return
    target = Fraction(min(required, available))
    for c in candidates:
        exact = target * Fraction(c.dispatched_kw) / Fraction(available)
        assert abs(Fraction(reductions[c.resource_id]) - exact) < Fraction(WATT)


@settings(max_examples=200, deadline=None)
@given(
    st.decimals(min_value=0, max_value=100, places=5, allow_nan=False),
    st.lists(st.decimals(min_value=0, max_value=20, places=3, allow_nan=False), min_size=1, max_size=8),
)
def test_apportion_adds_up_exactly_and_keeps_proportions(total: Decimal, weights: list[Decimal]) -> None:
    parts = apportion(total, weights)
    assert sum(parts) == total
    whole = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        exact = Fraction(total) * (Fraction(weight) / Fraction(whole) if whole else Fraction(1, len(weights)))
        assert part >= 0 and abs(Fraction(part) - exact) < Fraction(WATT)


def test_bid_order_curtails_the_dearest_export_and_the_cheapest_import_first() -> None:
    cheap = Candidate("cheap", "p", "sp", Decimal(5), price=Decimal("0.05"))
    dear = Candidate("dear", "p", "sp", Decimal(5), price=Decimal("0.30"))
    unpriced = Candidate("unpriced", "p", "sp", Decimal(2))
    export = allocate(Decimal(4), [cheap, dear, unpriced], Method.BID_ORDER, Direction.EXPORT)
    assert [(s.candidate.resource_id, s.reduction_kw) for s in export.shares] == [
        ("unpriced", 2),
        ("dear", 2),
        ("cheap", 0),
    ]
    load = allocate(Decimal(4), [cheap, dear, unpriced], Method.BID_ORDER, Direction.IMPORT)
    assert [(s.candidate.resource_id, s.reduction_kw) for s in load.shares] == [
        ("unpriced", 2),
        ("cheap", 2),
        ("dear", 0),
    ]


# -- a network, a market and its trades -------------------------------------------------------------------------


def env(object_type: str, /, **payload: Any) -> Envelope:
    return Envelope.model_validate({"payload": {"object_type": object_type, **payload}})


def seed(store: Store, identities: dict[str, dict[str, str]] | None = None) -> None:
    """Transformer tx feeds sites a, b, c; tx2 feeds d. Connected in this order: cat's PV and load (site c), Ann's PV
    (a), Bob's PV and battery (b), Dan's PV (d, behind tx2). In HOUR Ann sold 4 kW offered at 0.05, Bob 6 kW offered
    at 0.10; Cat holds no position (her PV counts at its 6 kW rating)."""
    identities = identities or {}
    parties = [
        env("party", id=p, name=p.title(), roles=["prosumer"], identities=identities.get(p, {}))
        for p in ("ann", "bob", "cat", "dan")
    ]
    Ingestor(store).ingest_sync(
        [
            env("party", id="op", name="Operator", roles=["dso"]),
            *parties,
            env("location", id="sub", name="Substation", kind="substation"),
            env("location", id="tx", name="Transformer", kind="transformer", parent_id="sub"),
            env("location", id="tx2", name="Transformer 2", kind="transformer", parent_id="sub"),
            env("location", id="tx-empty", name="Empty transformer", kind="transformer", parent_id="sub"),
            env("location", id="tx-loads", name="Loads only", kind="transformer", parent_id="sub"),
            *(env("location", id=f"sp-{s}", name=s, kind="service_point", parent_id="tx") for s in "abc"),
            env("location", id="sp-d", name="d", kind="service_point", parent_id="tx2"),
            env("location", id="sp-l", name="l", kind="service_point", parent_id="tx-loads"),
            env("market", id=MARKET, operator_id="op"),
        ],
        protocol="test",
        peer="seed",
    )
    for resource in (
        {"id": "pv-c", "kind": "pv", "owner_id": "cat", "location_id": "sp-c", "ratings": {"max_kw": "6"}},
        {"id": "load-c", "kind": "load", "owner_id": "cat", "location_id": "sp-c", "ratings": {"max_kw": "3"}},
        {"id": "pv-a", "kind": "pv", "owner_id": "ann", "location_id": "sp-a", "ratings": {"max_kw": "5"}},
        {"id": "pv-b", "kind": "pv", "owner_id": "bob", "location_id": "sp-b", "ratings": {"max_kw": "4"}},
        {
            "id": "bat-b",
            "kind": "battery",
            "owner_id": "bob",
            "location_id": "sp-b",
            "ratings": {"max_discharge_kw": "3", "energy_kwh": "10"},
        },
        {"id": "pv-d", "kind": "pv", "owner_id": "dan", "location_id": "sp-d", "ratings": {"max_kw": "5"}},
        {"id": "load-l", "kind": "load", "owner_id": "dan", "location_id": "sp-l", "ratings": {"max_kw": "5"}},
    ):
        extra = identities.get(resource["id"], {})
        body = {"name": resource["id"], **resource, "identities": extra}
        Ingestor(store).ingest_sync([env("resource", **body)], protocol="test", peer="seed")
    trades: list[Tender | Transaction] = []
    for party, site, kw, price in (("ann", "sp-a", "4", "0.05"), ("bob", "sp-b", "6", "0.10")):
        tender = Tender.model_validate(
            {
                "id": f"t-{party}",
                "market_id": MARKET,
                "party_id": party,
                "side": "sell",
                "location_id": site,
                "rows": [{"start": HOUR.isoformat(), "quantity": kw, "price": price}],
                "status": "filled",
            }
        )
        trade = Transaction.model_validate(
            {
                "id": f"x-{party}",
                "market_id": MARKET,
                "party_id": party,
                "counterparty_id": "op",
                "side": "sell",
                "tender_id": tender.id,
                "location_id": site,
                "interval": {"start": HOUR.isoformat(), "duration": "PT1H"},
                "quantity": kw,
                "price": "0.08",  # the clearing price: the same for all, so bid order reads the tenders' offers
            }
        )
        trades.extend([tender, trade])
    store.append_many(
        [Envelope(payload=t, source=Source(protocol="market", peer=MARKET, native_id=t.id)) for t in trades]
    )


def request(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "location_id": "tx",
        "span": {"start": HOUR.isoformat(), "duration": "PT1H"},
        "direction": "export",
        "reduce_kw": "9",
        "method": "filo",
        "program_id": "grid-soft",
        "enforcement": "soft",
    }
    return {k: v for k, v in {**body, **changes}.items() if v is not None}


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "overrides.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path


@pytest.fixture
def http(store: Store, policy_file: Path) -> Iterator[httpx.Client]:
    seed(store)
    app = create_app(Settings(market_tick_seconds=0, override_mappings=str(policy_file)), store=store)
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


def shares(answer: httpx.Response) -> dict[str, tuple[str, str]]:
    return {s["resource_id"]: (s["dispatched_kw"], s["reduction_kw"]) for s in answer.json()["allocation"]}


def controls(store: Store) -> dict[str, Control]:
    return {c.id: c for c in store.list(MessageKind.CONTROL, limit=None) if isinstance(c, Control)}


# -- the route --------------------------------------------------------------------------------------------------


def test_filo_curtails_the_latest_connections_and_stores_one_limit_each(http: httpx.Client, store: Store) -> None:
    answer = http.post("/v1/curtailments", json=request())
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert {k: (Decimal(d), Decimal(r)) for k, (d, r) in shares(answer).items()} == {
        "bat-b": (Decimal("2.571"), Decimal("2.571")),  # connected last: all of it
        "pv-b": (Decimal("3.429"), Decimal("3.429")),  # Bob's 6 kW split 4:3 by rating, exactly
        "pv-a": (Decimal(4), Decimal(3)),  # the rest
        "pv-c": (Decimal(6), Decimal(0)),  # connected first: untouched
    }
    assert Decimal(body["shortfall_kw"]) == 0
    assert [s["resource_id"] for s in body["skipped"]] == ["load-c"]  # a load cannot reduce export
    assert "pv-d" not in shares(answer)  # behind another transformer
    stored = controls(store)
    by_resource = {c.targets.resource_ids[0]: c for c in stored.values()}
    assert set(by_resource) == {"bat-b", "pv-b", "pv-a"}
    limit = by_resource["pv-a"]
    assert (limit.kind, limit.signal.value, limit.unit.value) == (ControlKind.LIMIT, "export_power", "kW")
    assert limit.periods[0].value == 1 and limit.program_id == "grid-soft" and limit.priority == 0
    assert limit.targets.party_ids == [] and limit.targets.location_ids == []  # that resource only
    assert by_resource["bat-b"].periods[0].value == 0  # soft: a limit of 0, never a disconnection
    assert {s["control_id"] for s in body["allocation"] if s["control_id"]} == set(stored)


def test_bid_order_and_pro_rata_share_differently(http: httpx.Client) -> None:
    bid = http.post("/v1/curtailments", json=request(method="bid_order"))
    assert bid.status_code == 201, bid.text
    assert {k: Decimal(r) for k, (_d, r) in shares(bid).items()} == {
        "pv-c": Decimal(6),  # no position: its dispatch was not priced, curtailed first
        "bat-b": Decimal("2.571"),  # Bob offered at 0.10, dearer than Ann's 0.05
        "pv-b": Decimal("0.429"),
        "pv-a": Decimal(0),
    }
    pro = http.post("/v1/curtailments", json=request(method="pro_rata"))
    assert pro.status_code == 201, pro.text  # the same curtailment, revised
    got = {k: Decimal(r) for k, (_d, r) in shares(pro).items()}
    assert got == {
        "pv-a": Decimal("2.25"),
        "pv-c": Decimal("3.375"),
        "pv-b": Decimal("1.929"),
        "bat-b": Decimal("1.446"),
    }
    assert sum(got.values()) == 9


def test_reposting_is_a_duplicate_and_a_new_amount_revises_and_cancels(http: httpx.Client, store: Store) -> None:
    first = http.post("/v1/curtailments", json=request())
    assert first.status_code == 201
    seq = store.last_seq()
    again = http.post("/v1/curtailments", json=request(), headers={"x-client-id": "another-desk"})
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["curtailment_id"] == first.json()["curtailment_id"]
    assert store.last_seq() == seq  # nothing stored
    smaller = http.post("/v1/curtailments", json=request(reduce_kw="2"))
    assert smaller.status_code == 201, smaller.text
    after = controls(store)
    bat = next(c for c in after.values() if c.targets.resource_ids == ["bat-b"])
    assert bat.revision == 1 and bat.periods[0].value == Decimal("0.571")
    cancelled = {c.targets.resource_ids[0] for c in after.values() if c.status is ControlStatus.CANCELLED}
    assert cancelled == {"pv-b", "pv-a"}
    assert sorted(smaller.json()["cancelled_control_ids"]) == sorted(
        c.id for c in after.values() if c.status is ControlStatus.CANCELLED
    )


def test_a_hard_curtailment_isolates_whom_it_takes_in_full_and_reports_the_shortfall(
    http: httpx.Client, store: Store
) -> None:
    answer = http.post("/v1/curtailments", json=request(reduce_kw="18", program_id="grid-hard", enforcement="hard"))
    assert answer.status_code == 201, answer.text
    assert Decimal(answer.json()["shortfall_kw"]) == 2  # 16 kW behind tx
    kinds = {s["resource_id"]: s["control_kind"] for s in answer.json()["allocation"]}
    assert kinds == {"pv-a": "connect", "pv-b": "connect", "bat-b": "connect", "pv-c": "connect"}
    for control in controls(store).values():
        assert control.kind is ControlKind.CONNECT and control.periods[0].value == 0
    partial = http.post(
        "/v1/curtailments",
        json=request(reduce_kw="3", program_id="grid-hard", enforcement="hard", method="pro_rata", direction="export"),
    )
    assert partial.status_code == 201
    assert {s["control_kind"] for s in partial.json()["allocation"]} == {"limit"}


def test_a_span_across_intervals_follows_the_dispatch_of_each(http: httpx.Client, store: Store) -> None:
    """Hour 1: the trades; hour 2: nobody holds a position, so every PV counts at its rating."""
    answer = http.post(
        "/v1/curtailments", json=request(span={"start": HOUR.isoformat(), "duration": "PT2H"}, reduce_kw="2")
    )
    assert answer.status_code == 201, answer.text
    pieces = answer.json()["pieces"]
    assert [Decimal(p["available_kw"]) for p in pieces] == [Decimal(16), Decimal(18)]  # 5 + 4 + 3 + 6
    bat = next(c for c in controls(store).values() if c.targets.resource_ids == ["bat-b"])
    assert [(p.span.duration, p.value) for p in bat.periods] == [
        (timedelta(hours=1), Decimal("0.571")),
        (timedelta(hours=1), Decimal(1)),
    ]


def test_an_import_curtailment_reaches_loads_and_not_pv(http: httpx.Client, store: Store) -> None:
    answer = http.post("/v1/curtailments", json=request(location_id="sp-c", direction="import", reduce_kw="1"))
    assert answer.status_code == 201, answer.text
    assert {k: (Decimal(d), Decimal(r)) for k, (d, r) in shares(answer).items()} == {"load-c": (3, 1)}
    [control] = controls(store).values()
    assert control.signal.value == "import_power" and control.periods[0].value == 2


@pytest.mark.parametrize(
    ("changes", "status", "reason"),
    [
        ({"location_id": "nowhere"}, 404, "unknown location 'nowhere'"),
        (
            {"span": {"start": (NOW - timedelta(hours=3)).isoformat(), "duration": "PT1H"}},
            422,
            "a curtailment can only change what happens from now on",
        ),
        ({"reduce_kw": "0"}, 422, "greater than 0"),
        ({"reduce_kw": "-2"}, 422, "greater than 0"),
        ({"reduce_kw": "1.0005"}, 422, "at most 3 decimals"),
        ({"enforcement": "hard"}, 409, "program 'grid-soft' is soft in the override policy"),
        ({"program_id": "grid-hard"}, 409, "program 'grid-hard' is hard in the override policy"),
        (
            {"program_id": "unheard-of", "enforcement": "hard"},
            409,
            "program 'unheard-of' is not in the override policy",
        ),
        ({"location_id": "tx-empty"}, 422, "no DER behind location 'tx-empty'"),
        ({"location_id": "tx-loads"}, 422, "load-l: a load cannot reduce export"),
        ({"interval": {"start": HOUR.isoformat(), "duration": "PT1H"}}, 422, "exactly one"),
        ({"span": {"start": HOUR.isoformat(), "duration": "P8D"}}, 422, "at most 7 days"),
        ({"method": "lottery"}, 422, "filo"),
        ({"direction": "sideways"}, 422, "export"),
        ({"span": {"start": HOUR.replace(tzinfo=None).isoformat(), "duration": "PT1H"}}, 422, "timezone"),
    ],
    ids=[
        "unknown-location",
        "ended",
        "zero",
        "negative",
        "sub-watt",
        "hard-in-soft-program",
        "soft-in-hard-program",
        "hard-in-unknown-program",
        "no-der",
        "none-can-export",
        "span-and-interval",
        "too-long",
        "bad-method",
        "bad-direction",
        "naive-time",
    ],
)
def test_bad_requests_are_refused_with_the_reason_and_store_nothing(
    http: httpx.Client, store: Store, changes: dict[str, Any], status: int, reason: str
) -> None:
    seq = store.last_seq()
    answer = http.post("/v1/curtailments", json=request(**changes))
    assert answer.status_code == status, answer.text
    messages = " | ".join(e["msg"] for e in answer.json()["detail"])
    assert reason in messages
    assert store.last_seq() == seq and controls(store) == {}
    assert any(reason in r["reason"] for r in http.get("/v1/rejections").json())  # and recorded


def test_a_market_interval_may_stand_for_the_span(http: httpx.Client) -> None:
    body = request(span=None, interval={"start": HOUR.isoformat(), "duration": "PT1H"})
    answer = http.post("/v1/curtailments", json=body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["span"]["duration"] == "PT1H"


def test_an_unknown_soft_program_is_allowed_with_a_warning(http: httpx.Client) -> None:
    answer = http.post("/v1/curtailments", json=request(program_id="adhoc"))
    assert answer.status_code == 201, answer.text
    assert any("no terms in the override policy" in w for w in answer.json()["warnings"])


def test_customers_may_override_a_soft_curtailment_but_not_a_hard_one(http: httpx.Client) -> None:
    soft = http.post("/v1/curtailments", json=request(reduce_kw="1"))
    hard = http.post(
        "/v1/curtailments",
        json=request(reduce_kw="1", program_id="grid-hard", enforcement="hard", direction="import", location_id="sp-c"),
    )
    assert soft.status_code == 201 and hard.status_code == 201, (soft.text, hard.text)
    [soft_share] = [s for s in soft.json()["allocation"] if s["control_id"]]
    [hard_share] = [s for s in hard.json()["allocation"] if s["control_id"]]

    def opt_out(share: dict[str, Any], override_id: str) -> httpx.Response:
        return http.post(
            "/v1/overrides",
            json={
                "id": override_id,
                "party_id": share["party_id"],
                "subject": {"kind": "control", "id": share["control_id"]},
                "resource_id": share["resource_id"],
                "mode": "opt_out",
                "span": {"start": HOUR.isoformat(), "duration": "PT1H"},
            },
        )

    assert opt_out(soft_share, "o-soft").status_code == 201
    refused = opt_out(hard_share, "o-hard")
    assert refused.status_code == 422
    [problem] = refused.json()["detail"]
    assert problem["type"] == "override_rule" and "cannot be overridden" in problem["msg"]
    assert http.get("/v1/overrides/o-hard").status_code == 404


def test_an_override_of_a_soft_curtailment_is_settled_for_what_the_curtailment_asked(
    http: httpx.Client, store: Store
) -> None:
    """Ann's 5 kW PV was dispatched to export 4 kW and limited to 1 kW; Bob's battery (3 kW, beside his 4 kW PV) had
    2.571 kW of his 6 kW sale and was limited to 0. Both override through REST; the settlement charges what each was
    asked to give up (3 and 2.571 kW), not rating minus limit (4 and 3 kW), at spot plus the program's penalty."""
    answer = http.post("/v1/curtailments", json=request())
    assert answer.status_code == 201, answer.text
    asked = {s["resource_id"]: s for s in answer.json()["allocation"] if s["control_id"]}
    clearing = Clearing(
        market_id=MARKET,
        interval=Interval(start=HOUR, duration=Resolution.HOUR),
        type=ClearingType.MARGINAL_SELLER,
        price=Decimal("0.30"),
        cleared_quantity=Decimal(10),
        gate_closed_at=HOUR - timedelta(minutes=5),
    )
    store.append(Envelope(payload=clearing, source=Source(protocol="market", peer=MARKET, native_id="c-hour")))
    for resource in ("pv-a", "bat-b"):
        share = asked[resource]
        body = {
            "id": f"o-{resource}",
            "party_id": share["party_id"],
            "subject": {"kind": "control", "id": share["control_id"]},
            "resource_id": resource,
            "mode": "opt_out",
            "span": {"start": HOUR.isoformat(), "duration": "PT1H"},
        }
        assert http.post("/v1/overrides", json=body).status_code == 201
    window = {"start": HOUR.isoformat(), "end": (HOUR + timedelta(hours=1)).isoformat()}
    settled = http.post(f"/v1/markets/{MARKET}/settle", json=window)
    assert settled.status_code == 200, settled.text
    charged = {
        (line["party_id"], line["kind"]): (Decimal(line["quantity"]), Decimal(line["price"]))
        for line in settled.json()["lines"]
        if line["kind"] in ("deviation", "penalty") and line["reference_ids"][0].startswith("o-")
    }
    assert charged == {
        ("ann", "deviation"): (Decimal(-3), Decimal("0.30")),  # exported 3 kW past the limit: sold at spot
        ("ann", "penalty"): (Decimal(3), Decimal("0.50")),
        ("bob", "deviation"): (Decimal("-2.571"), Decimal("0.30")),
        ("bob", "penalty"): (Decimal("2.571"), Decimal("0.50")),
    }
    assert settled.json()["unquantified_overrides"] == []


def test_the_openapi_description_documents_the_route(http: httpx.Client) -> None:
    operation = http.get("/openapi.json").json()["paths"]["/v1/curtailments"]["post"]
    assert "constrained location" in operation["summary"]
    assert {"200", "201", "404", "409", "422"} <= set(operation["responses"])


# -- the CLI ----------------------------------------------------------------------------------------------------


def test_the_cli_curtails_prints_the_allocation_and_refuses_with_a_reason(store_url: str, policy_file: Path) -> None:
    store = Store(store_url)
    seed(store)
    store.close()
    runner = CliRunner()
    common = ["--database-url", store_url, "--override-mappings", str(policy_file)]
    args = ["override", "curtail", "tx", "--reduce-kw", "9", "--direction", "export", "--program", "grid-hard"]
    args += ["--start", HOUR.isoformat(), "--duration", "PT1H", "--method", "bid_order", *common]
    answer = runner.invoke(cli, [*args, "--json"])
    assert answer.exit_code == 0, answer.output
    body = json.loads(answer.stdout)
    assert body["enforcement"] == "hard"  # the program's, as the policy says
    assert {s["resource_id"]: s["control_kind"] for s in body["allocation"] if s["control_kind"]} == {
        "pv-c": "connect",
        "bat-b": "connect",
        "pv-b": "limit",
    }
    table = runner.invoke(cli, args)
    assert table.exit_code == 0, table.output
    assert "pv-c" in table.output and "nothing changed" in table.output
    soft = runner.invoke(cli, [*args, "--enforcement", "soft"])
    assert soft.exit_code == 1 and "program 'grid-hard' is hard in the override policy" in soft.output
    bad = runner.invoke(cli, [*args[:-4], "--reduce-kw", "0", *common])
    assert bad.exit_code == 1 and "--reduce-kw" in bad.output


# -- what devices see -------------------------------------------------------------------------------------------

PIN = 111115


def tls_client(ca: TestCa, issued: Issued, base: str) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(ca.ca_file))
    context.load_cert_chain(str(issued.cert), str(issued.key))
    return httpx.Client(base_url=base, verify=context, timeout=30)


def test_a_2030_5_device_sees_its_curtailment_as_an_export_limit(tmp_path: Path, policy_file: Path) -> None:
    (tmp_path / "pki").mkdir()
    ca = TestCa(tmp_path / "pki")
    device = ca.issue("pv-a-inverter")
    store = Store(f"sqlite:///{tmp_path / 'gw.db'}")
    seed(store, {"pv-a": {"lfdi": lfdi_of_certificate(device.der), "ieee2030_5-pin": str(PIN)}})
    settings = Settings(market_tick_seconds=0, override_mappings=str(policy_file))
    server = ca.issue("localhost", server=True)
    operator = ca.issue("operator")
    tls = server_tls_options(str(server.cert), str(server.key), str(ca.ca_file), require_client=True)
    try:
        with serve_in_thread(create_app(settings, store=store), **tls) as base:
            base = base.replace("127.0.0.1", "localhost")
            with tls_client(ca, operator, base) as api:
                answer = api.post("/v1/curtailments", json=request())
                assert answer.status_code == 201, answer.text
            [share] = [s for s in answer.json()["allocation"] if s["resource_id"] == "pv-a"]
            with Sep2Client(base, cert=device.cert, key=device.key, ca=ca.ca_file, pin=PIN) as client:
                client.enrol()
                view = client.discover()
                found = view.control(sep2_mapper.control_mrid(share["control_id"], 0, 32473))
                assert found is not None, [c.mRID for _p, c in view.controls()]
                limit = found.DERControlBase.opModExpLimW
                assert limit is not None and sep2_mapper.kw_of(limit) == Decimal(1)  # 4 kW dispatched less 3
                assert found.interval.start == int(HOUR.timestamp()) and found.interval.duration == 3600
                others = [c for _p, c in view.controls() if c.DERControlBase.opModExpLimW is not None]
                assert others == [found]  # Bob's controls are not Ann's device's
    finally:
        store.close()


def curtail_bob_over_openadr(
    tmp_path: Path, policy_file: Path, answer: str
) -> tuple[Store, list[dict[str, Any]], list[dict[str, Any]]]:
    """Bob's VEN (openleadr, mutual TLS, signed answers) registers and polls; the operator curtails in bid order; the
    VEN polls again and answers every event it receives with ``answer``. Returns the store (the caller closes it),
    the events the VEN received and the allocation the operator was given."""
    import asyncio

    (tmp_path / "pki").mkdir()
    ca = TestCa(tmp_path / "pki", kind="rsa")
    server, ven_cert = ca.issue("vtn", server=True), ca.issue("ven-bob")
    store = Store(f"sqlite:///{tmp_path / 'gw.db'}")
    seed(store, {"bob": {"oadr-fingerprint": short_fingerprint(ven_cert.der)}})
    settings = Settings(
        market_tick_seconds=0,
        override_mappings=str(policy_file),
        openadr_sign_cert=str(server.cert),
        openadr_sign_key=str(server.key),
    )
    tls = server_tls_options(str(server.cert), str(server.key), str(ca.ca_file), require_client=True)
    received: list[dict[str, Any]] = []
    allocation: list[dict[str, Any]] = []

    async def on_event(event: dict[str, Any]) -> str:
        received.append(event)
        return answer

    with serve_in_thread(create_app(settings, store=store), **tls) as base:

        async def scenario() -> None:
            ven = OpenADRClient(
                ven_name="ven-bob",
                vtn_url=base + "/OpenADR2/Simple/2.0b",
                cert=str(ven_cert.cert),
                key=str(ven_cert.key),
                ca_file=str(ca.ca_file),
                vtn_fingerprint=short_fingerprint(server.der),
                show_fingerprint=False,
            )
            ven.add_handler("on_event", on_event)
            try:
                await ven.create_party_registration()
                assert ven.ven_id == "bob"
                await ven.poll()
                with tls_client(ca, ven_cert, base) as api:
                    posted = api.post("/v1/curtailments", json=request(method="bid_order"))
                    assert posted.status_code == 201, posted.text
                    allocation.extend(posted.json()["allocation"])
                await ven._poll()  # the events, answered by the VEN's oadrCreatedEvent before this returns
            finally:
                await ven.stop()

        asyncio.run(scenario())
    return store, received, allocation


def test_an_openadr_ven_receives_its_partys_curtailment(tmp_path: Path, policy_file: Path) -> None:
    store, received, allocation = curtail_bob_over_openadr(tmp_path, policy_file, "optIn")
    store.close()
    ids = {s["control_id"] for s in allocation if s["party_id"] == "bob" and s["control_id"]}
    assert {e["event_descriptor"]["event_id"] for e in received} == ids  # Bob's two, not Cat's
    limits = {}
    for event in received:
        [signal] = event["event_signals"]
        assert signal["signal_name"] == "x-EXPORT_CAPACITY_LIMIT" and signal["signal_type"] == "setpoint"
        [resource] = event["targets_by_type"]["resource_id"]
        limits[resource] = Decimal(str(signal["intervals"][0]["signal_payload"]))
    assert limits == {"bat-b": Decimal(0), "pv-b": Decimal(3)}  # 3.429 kW less 0.429


def test_a_ven_that_does_not_know_the_limit_signal_is_recorded_as_rejecting_it(
    tmp_path: Path, policy_file: Path
) -> None:
    """openleadr's VEN answers 460 (signal not supported) to the x- limit signals, with whatever optType its
    on_event returned. The VTN records a rejected Response per event, with the code and the resource, and stores no
    Override: a VEN that cannot act did not opt out (here its handler even says optOut)."""
    store, _received, allocation = curtail_bob_over_openadr(tmp_path, policy_file, "optOut")
    try:
        bobs = {s["control_id"]: s["resource_id"] for s in allocation if s["party_id"] == "bob" and s["control_id"]}
        assert len(bobs) == 2
        responses = {r.subject.id: r for r in store.list(MessageKind.RESPONSE, limit=None) if isinstance(r, Response)}
        assert set(responses) == set(bobs)
        for control_id, resource_id in bobs.items():
            response = responses[control_id]
            assert response.status is ResponseStatus.REJECTED_NOT_APPLICABLE and response.party_id == "bob"
            assert response.resource_id == resource_id
            assert response.description is not None and "460 (signal not supported)" in response.description
        assert store.list(MessageKind.OVERRIDE, limit=None) == []
    finally:
        store.close()
