"""The REST API over real HTTP (uvicorn on loopback), on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.config import Settings
from gateway.model import MessageKind
from gateway.store import Store

HOUR0 = "2030-01-07T00:00:00Z"


@pytest.fixture
def http(store: Store) -> Iterator[httpx.Client]:
    app = create_app(Settings(max_body_bytes=256 * 1024), store=store)
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


def party(pid: str = "alice", **extra: Any) -> dict[str, Any]:
    return {"id": pid, "name": pid.title(), "roles": ["prosumer"], **extra}


def tender(tid: str = "t1", **extra: Any) -> dict[str, Any]:
    body = {
        "id": tid,
        "market_id": "m1",
        "party_id": "alice",
        "side": "sell",
        "location_id": "sp1",
        "rows": [
            {"start": HOUR0, "quantity": "5", "price": "0.12"},
            {"start": "2030-01-07T01:00:00Z", "quantity": "5", "price": "0.13"},
        ],
    }
    return {**body, **extra}


def seed(http: httpx.Client) -> None:
    for path, body in [
        ("/v1/parties", party()),
        ("/v1/locations", {"id": "fdr", "name": "Feeder", "kind": "feeder"}),
        ("/v1/locations", {"id": "sp1", "name": "SP 1", "kind": "service_point", "parent_id": "fdr"}),
        ("/v1/parties", party("operator", roles=["dmo"])),
        ("/v1/markets", {"id": "m1", "operator_id": "operator"}),
        ("/v1/markets", {"id": "m0", "operator_id": "operator"}),
    ]:
        assert http.post(path, json=body).status_code == 201, body


def errors(response: httpx.Response) -> dict[str, str]:
    return {".".join(map(str, e["loc"])): e["msg"] for e in response.json()["detail"]}


def test_health_reports_database_and_no_broker(http: httpx.Client, store: Store) -> None:
    body = http.get("/health").json()
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True, "backend": store.engine.dialect.name, "log_seq": 0}
    assert body["mqtt"]["enabled"] is False


def test_create_is_idempotent_and_a_change_is_a_new_version(http: httpx.Client) -> None:
    first = http.post("/v1/parties", json=party())
    again = http.post("/v1/parties", json=party())
    changed = http.post("/v1/parties", json=party(name="Alice B."))
    assert (first.status_code, again.status_code, changed.status_code) == (201, 200, 201)
    assert again.json()["duplicate"] is True and again.json()["seq"] == first.json()["seq"]
    assert changed.json()["seq"] > first.json()["seq"]
    assert http.get("/v1/parties/alice").json()["name"] == "Alice B."
    log = http.get("/v1/messages", params={"kind": "party"}).json()["items"]
    assert [m["seq"] for m in log] == [first.json()["seq"], changed.json()["seq"]]


def test_references_are_checked_and_refusals_change_nothing(http: httpx.Client) -> None:
    seed(http)
    before = http.get("/health").json()["database"]["log_seq"]
    response = http.post("/v1/tenders", json=tender(party_id="mallory", location_id="nowhere"))
    assert response.status_code == 422
    assert errors(response) == {
        "body.party_id": "unknown party 'mallory'",
        "body.location_id": "unknown location 'nowhere'",
    }
    assert http.get("/health").json()["database"]["log_seq"] == before
    assert http.get("/v1/tenders").json() == []
    rejection = http.get("/v1/rejections").json()[0]
    assert rejection["protocol"] == "api" and "mallory" in rejection["reason"]


def test_field_level_reasons_for_invalid_tenders(http: httpx.Client) -> None:
    seed(http)
    misaligned = tender(rows=[{"start": "2030-01-07T00:20:00Z", "quantity": "5", "price": "0.1"}])
    assert "not on a PT1H boundary" in errors(http.post("/v1/tenders", json=misaligned))["body.rows"]
    negative = tender(rows=[{"start": HOUR0, "quantity": "-1", "price": "0.1"}])
    assert "body.rows.0.quantity" in errors(http.post("/v1/tenders", json=negative))
    assert "body.currency" in errors(http.post("/v1/tenders", json=tender(currency="XYZ")))
    assert "body.colour" in errors(http.post("/v1/tenders", json=tender(colour="red")))
    naive = tender(rows=[{"start": "2030-01-07T00:00:00", "quantity": "5", "price": "0.1"}])
    assert "body.rows.0.start" in errors(http.post("/v1/tenders", json=naive))


def test_location_levels_are_enforced(http: httpx.Client) -> None:
    seed(http)
    upside_down = {"id": "x1", "name": "X", "kind": "transformer", "parent_id": "sp1"}
    response = http.post("/v1/locations", json=upside_down)
    assert response.status_code == 422
    assert "cannot sit under a service_point" in errors(response)["body.parent_id"]


def test_state_filters_and_paging(http: httpx.Client) -> None:
    seed(http)
    http.post("/v1/parties", json=party("bob"))
    for i, owner in enumerate(["alice", "bob", "alice"]):
        assert http.post("/v1/tenders", json=tender(f"t{i}", party_id=owner, market_id=f"m{i % 2}")).status_code == 201
    assert [t["id"] for t in http.get("/v1/tenders", params={"party_id": "alice"}).json()] == ["t0", "t2"]
    assert [t["id"] for t in http.get("/v1/tenders", params={"market_id": "m1"}).json()] == ["t1"]
    assert [t["id"] for t in http.get("/v1/tenders", params={"limit": 1, "offset": 1}).json()] == ["t1"]
    assert http.get("/v1/tenders", params={"limit": 0}).status_code == 422


def test_cancel_is_a_new_version_and_only_once(http: httpx.Client) -> None:
    seed(http)
    http.post("/v1/tenders", json=tender())
    cancelled = http.post("/v1/tenders/t1/cancel")
    assert cancelled.status_code == 200
    assert http.get("/v1/tenders/t1").json()["status"] == "cancelled"
    assert http.post("/v1/tenders/t1/cancel").status_code == 409
    assert http.post("/v1/tenders/unknown/cancel").status_code == 404
    control = {
        "id": "c1",
        "targets": {"party_ids": ["alice"]},
        "kind": "limit",
        "signal": "export_power",
        "unit": "kW",
        "periods": [{"span": {"start": HOUR0, "duration": "PT1H"}, "value": 3}],
    }
    assert http.post("/v1/controls", json=control).status_code == 201
    http.post("/v1/controls/c1/cancel")
    assert http.get("/v1/controls/c1").json()["revision"] == 1
    versions = http.get("/v1/messages", params={"entity_id": "c1"}).json()["items"]
    assert [v["envelope"]["payload"]["status"] for v in versions] == ["scheduled", "cancelled"]


def test_messages_endpoint_envelopes_batches_and_queries(http: httpx.Client) -> None:
    single = http.post(
        "/v1/messages", json={"payload": {"object_type": "party", **party("carol")}, "correlation_id": "c-1"}
    )
    assert single.status_code == 201
    source = single.json()["envelope"]["source"]
    assert source["protocol"] == "api" and source["native_id"] == "carol"
    explicit = {
        "source": {"protocol": "openadr2b", "peer": "ven-7", "native_id": "evt-1", "version": "3"},
        "payload": {"object_type": "party", **party("dave")},
    }
    assert http.post("/v1/messages", json=explicit).status_code == 201
    assert http.post("/v1/messages", json=explicit).json()["duplicate"] is True
    mismatch = http.post("/v1/messages", json={"kind": "tender", "payload": {"object_type": "party", **party("x")}})
    assert mismatch.status_code == 422

    batch = [{"payload": {"object_type": "party", **party(f"p{i}")}} for i in range(3)]
    bad_batch = [
        *batch,
        {
            "payload": {
                "object_type": "resource",
                "id": "r",
                "name": "R",
                "kind": "pv",
                "owner_id": "zz",
                "location_id": "zz",
            }
        },
    ]
    refused = http.post("/v1/messages/batch", json=bad_batch)
    assert refused.status_code == 422
    assert errors(refused)["body.3.payload.owner_id"] == "unknown party 'zz'"
    assert http.get("/v1/parties/p0").status_code == 404  # the whole batch was refused
    assert [r.status_code for r in [http.post("/v1/messages/batch", json=batch)]] == [201]

    by_protocol = http.get("/v1/messages", params={"protocol": "openadr2b"}).json()["items"]
    assert [m["envelope"]["payload"]["id"] for m in by_protocol] == ["dave"]
    assert (
        http.get("/v1/messages", params={"correlation_id": "c-1"}).json()["items"][0]["message_id"]
        == single.json()["message_id"]
    )
    page1 = http.get("/v1/messages", params={"limit": 2}).json()
    page2 = http.get("/v1/messages", params={"limit": 2, "after_seq": page1["next_after_seq"]}).json()
    assert [m["seq"] for m in page1["items"]] < [m["seq"] for m in page2["items"]]
    assert http.get("/v1/messages", params={"since": "2030-01-01T00:00:00"}).status_code == 422
    assert http.get("/v1/messages", params={"since": "2000-01-01T00:00:00Z"}).json()["items"]
    assert http.get("/v1/messages", params={"until": "2000-01-01T00:00:00Z"}).json()["items"] == []
    assert http.get(f"/v1/messages/{single.json()['message_id']}").json()["envelope"]["correlation_id"] == "c-1"
    assert http.get("/v1/messages/nope").status_code == 404


def test_reused_message_id_is_a_conflict(http: httpx.Client) -> None:
    first = {"message_id": "m-1", "payload": {"object_type": "party", **party("erin")}}
    other = {"message_id": "m-1", "payload": {"object_type": "party", **party("frank")}}
    assert http.post("/v1/messages", json=first).status_code == 201
    response = http.post("/v1/messages", json=other)
    assert response.status_code == 409
    assert "message_id" in response.json()["detail"][0]["msg"]
    assert http.get("/v1/parties/frank").status_code == 404


def test_malformed_oversized_and_unknown(http: httpx.Client) -> None:
    broken = http.post("/v1/parties", content=b'{"id": ', headers={"content-type": "application/json"})
    assert broken.status_code == 422
    huge = http.post("/v1/parties", content=b"x" * (300 * 1024), headers={"content-type": "application/json"})
    assert huge.status_code == 413
    assert http.get("/v1/parties/nobody").status_code == 404
    assert http.get("/v1/nothing-here").status_code == 404
    assert http.post("/v1/parties", json=[1, 2]).status_code == 422


def test_openapi_documents_every_kind(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    for path in ("parties", "locations", "resources", "tenders", "controls", "operating-envelopes", "overrides"):
        assert f"/v1/{path}" in spec["paths"] and f"/v1/{path}/{{entity_id}}" in spec["paths"]
    tender_filters = {p["name"] for p in spec["paths"]["/v1/tenders"]["get"]["parameters"]}
    assert {"market_id", "party_id", "status", "limit", "offset"} <= tender_filters
    assert "swagger" in http.get("/docs").text.lower()


def test_acknowledged_messages_survive_a_restart(store_url: str) -> None:
    with serve_in_thread(create_app(Settings(database_url=store_url))) as url:
        assert httpx.post(f"{url}/v1/parties", json=party()).status_code == 201
    # A new process on the same database: everything acknowledged is there, and a resend is a duplicate.
    with serve_in_thread(create_app(Settings(database_url=store_url))) as url:
        assert httpx.get(f"{url}/v1/parties/alice").json()["name"] == "Alice"
        assert httpx.post(f"{url}/v1/parties", json=party()).json()["duplicate"] is True
    assert Store(store_url).counts()[MessageKind.PARTY.value] == 1


def test_example_batch_is_accepted_whole(http: httpx.Client) -> None:
    batch = json.loads((Path(__file__).resolve().parents[1] / "examples" / "maple-feeder.batch.json").read_text())
    response = http.post("/v1/messages/batch", json=batch)
    assert response.status_code == 201, response.text
    assert [m["kind"] for m in response.json()].count("location") == 6
    assert http.get("/v1/tenders/vp-tariff-example").json()["time_zone"] == "America/Los_Angeles"


def test_metrics_are_prometheus_text(http: httpx.Client) -> None:
    seed(http)
    text = http.get("/metrics").text
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert samples["tgw_database_up"] == "1"
    assert samples['tgw_objects{kind="location"}'] == "2"
    assert int(samples["tgw_log_seq"]) == 6 and int(samples["tgw_bus_published_total"]) == 6
    assert samples["tgw_openadr_vens_registered"] == "0" and samples["tgw_openadr_pushes_total"] == "0"
