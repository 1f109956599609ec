"""Whatever a client sends, the API answers 4xx, never 5xx (hypothesis-generated bodies).

In-process ASGI (TestClient) rather than loopback HTTP, only to fit hundreds of requests into a second;
the same app serves real HTTP in test_api.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from gateway.api import create_app
from gateway.config import Settings

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)

VALID_TENDER = {
    "id": "t1",
    "market_id": "m1",
    "party_id": "alice",
    "side": "sell",
    "location_id": "sp1",
    "rows": [{"start": "2030-01-07T00:00:00Z", "quantity": "5", "price": "0.12"}],
}
FIELD_VALUES = st.sampled_from(
    [None, "", "x" * 500, -1, 1e308, "NaN", "Infinity", [], {}, "2030-01-07T00:20:00Z", "P1Y"]
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    db = Path(tmp_path_factory.mktemp("fuzz")) / "fuzz.db"
    with TestClient(create_app(Settings(database_url=f"sqlite:///{db}")), raise_server_exceptions=False) as c:
        c.post("/v1/parties", json={"id": "alice", "name": "A", "roles": ["prosumer"]})
        c.post("/v1/locations", json={"id": "sp1", "name": "S", "kind": "service_point"})
        c.post("/v1/parties", json={"id": "op", "name": "Exchange", "roles": ["dmo"]})
        assert c.post("/v1/markets", json={"id": "m1", "operator_id": "op"}).status_code == 201
        yield c


PATHS = [
    "/v1/parties",
    "/v1/locations",
    "/v1/resources",
    "/v1/tenders",
    "/v1/controls",
    "/v1/messages",
    "/v1/messages/batch",
    "/v1/markets",
    "/v1/subscriptions",
    "/v1/markets/m1/clear",
    "/v1/markets/m1/settle",
    "/v1/markets/nope/clear",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), body=json_values)
def test_random_json_is_refused_cleanly(client: TestClient, path: str, body: Any) -> None:
    response = client.post(path, json=body)
    assert response.status_code < 500, response.text
    if response.status_code == 422:
        assert all("loc" in e and "msg" in e for e in response.json()["detail"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from([*VALID_TENDER, "resolution", "time_zone", "expires_at", "currency", "product"]),
    value=FIELD_VALUES,
)
def test_mutated_tenders_are_refused_or_stored(client: TestClient, field: str, value: Any) -> None:
    body = {**VALID_TENDER, field: value}
    response = client.post("/v1/tenders", json=body)
    assert response.status_code in (200, 201, 422), response.text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    params=st.dictionaries(
        st.sampled_from(["kind", "since", "until", "after_seq", "limit", "protocol"]), st.text(max_size=30)
    )
)
def test_random_queries_never_fail(client: TestClient, params: dict[str, str]) -> None:
    assert client.get("/v1/messages", params=params).status_code < 500


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(["interval_start", "early", "start", "end", "extra"]),
    value=FIELD_VALUES | st.datetimes().map(lambda d: d.isoformat()),
    path=st.sampled_from(["/v1/markets/m1/clear", "/v1/markets/m1/settle"]),
)
def test_mutated_market_operations_never_fail(client: TestClient, field: str, value: Any, path: str) -> None:
    base = {"start": "2024-01-07T00:00:00Z", "end": "2024-01-07T02:00:00Z"} if path.endswith("settle") else {}
    response = client.post(path, json={**base, field: value})
    assert response.status_code < 500, response.text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["results", "positions", "settlements", "results/2024-01-07T00:00:00Z"]),
    params=st.dictionaries(st.sampled_from(["start", "end", "curves", "party_id"]), st.text(max_size=30)),
)
def test_random_market_queries_never_fail(client: TestClient, path: str, params: dict[str, str]) -> None:
    assert client.get(f"/v1/markets/m1/{path}", params=params).status_code < 500
