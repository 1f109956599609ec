"""The override service over real HTTP (uvicorn on loopback), on SQLite and a real PostgreSQL: the rules that
refuse an override on every edge, withdraw and the audit trail, deterministic resolution, and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import permutations
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.cli import app as cli
from gateway.config import Settings
from gateway.model import Override
from gateway.overrides.resolve import effective_at, key_of
from gateway.store import Store

NOW = datetime.now(UTC).replace(microsecond=0)
SOON = (NOW + timedelta(hours=2)).isoformat()
PAST = (NOW - timedelta(hours=3)).isoformat()


@pytest.fixture
def http(store: Store) -> Iterator[httpx.Client]:
    app = create_app(Settings(), store=store)
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        seed(client)
        yield client


def seed(http: httpx.Client) -> None:
    """Alice owns a battery at site 1, Bob a PV at site 2; one control is aimed at site 1, one at Bob."""
    period = {"span": {"start": SOON, "duration": "PT1H"}, "value": "3"}
    control = {"kind": "limit", "signal": "real_power", "unit": "kW", "periods": [period]}
    for path, body in [
        ("/v1/parties", {"id": "alice", "name": "Alice", "roles": ["prosumer"]}),
        ("/v1/parties", {"id": "bob", "name": "Bob", "roles": ["prosumer"]}),
        ("/v1/locations", {"id": "tx1", "name": "Transformer 1", "kind": "transformer"}),
        ("/v1/locations", {"id": "site1", "name": "Site 1", "kind": "service_point", "parent_id": "tx1"}),
        ("/v1/locations", {"id": "site2", "name": "Site 2", "kind": "service_point"}),
        (
            "/v1/resources",
            {"id": "bat1", "name": "Battery", "kind": "battery", "owner_id": "alice", "location_id": "site1"},
        ),
        ("/v1/resources", {"id": "pv2", "name": "PV", "kind": "pv", "owner_id": "bob", "location_id": "site2"}),
        ("/v1/controls", {"id": "c-site1", "targets": {"location_ids": ["site1"]}, **control}),
        ("/v1/controls", {"id": "c-bob", "targets": {"party_ids": ["bob"]}, **control}),
        ("/v1/controls", {"id": "c-tx1", "targets": {"location_ids": ["tx1"]}, **control}),
    ]:
        answer = http.post(path, json=body)
        assert answer.status_code == 201, (path, answer.text)


def override(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "o1",
        "party_id": "alice",
        "subject": {"kind": "control", "id": "c-site1"},
        "resource_id": "bat1",
        "mode": "opt_out",
        "span": {"start": SOON, "duration": "PT1H"},
    }
    return {**body, **changes}


def refusal(answer: httpx.Response) -> str:
    assert answer.status_code == 422, answer.text
    return " | ".join(e["msg"] for e in answer.json()["detail"])


def test_a_customer_overrides_a_control_aimed_at_its_site(http: httpx.Client) -> None:
    answer = http.post("/v1/overrides", json=override())
    assert answer.status_code == 201, answer.text
    stored = http.get("/v1/overrides/o1").json()
    assert (stored["party_id"], stored["resource_id"], stored["status"]) == ("alice", "bat1", "active")


def test_a_control_aimed_at_a_transformer_reaches_the_sites_below_it(http: httpx.Client) -> None:
    below = override(subject={"kind": "control", "id": "c-tx1"})
    assert http.post("/v1/overrides", json=below).status_code == 201
    bob = override(id="o2", party_id="bob", resource_id="pv2", subject={"kind": "control", "id": "c-tx1"})
    assert "control 'c-tx1' is not aimed at party 'bob'" in refusal(http.post("/v1/overrides", json=bob))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"resource_id": "pv2"}, "resource 'pv2' belongs to 'bob', not to 'alice'"),
        ({"subject": {"kind": "control", "id": "c-bob"}}, "control 'c-bob' is not aimed at party 'alice'"),
        ({"subject": {"kind": "resource", "id": "pv2"}, "resource_id": None}, "resource 'pv2' belongs to 'bob'"),
        ({"span": {"start": PAST, "duration": "PT1H"}}, "an override can only change what happens from now on"),
        ({"subject": {"kind": "control", "id": "c-404"}}, "unknown control 'c-404'"),
    ],
    ids=["someone-elses-resource", "control-not-for-them", "someone-elses-subject", "past", "unknown-control"],
)
def test_overrides_that_are_not_the_partys_or_are_late_are_refused_with_the_reason(
    http: httpx.Client, changes: dict[str, Any], reason: str
) -> None:
    assert reason in refusal(http.post("/v1/overrides", json=override(**changes)))
    assert http.get("/v1/overrides/o1").status_code == 404  # nothing stored
    rejected = http.get("/v1/rejections").json()
    assert any(reason in r["reason"] for r in rejected)  # the refusal is recorded


def test_another_party_cannot_take_over_an_override(http: httpx.Client) -> None:
    assert http.post("/v1/overrides", json=override()).status_code == 201
    taken = override(party_id="bob", resource_id="pv2", subject={"kind": "control", "id": "c-bob"})
    assert "belongs to party 'alice', not 'bob'" in refusal(http.post("/v1/overrides", json=taken))


def test_withdraw_keeps_the_history_and_says_what_changed(http: httpx.Client) -> None:
    assert http.post("/v1/overrides", json=override()).status_code == 201
    partial = override(mode="partial", quantity_kw="1.5")
    assert http.post("/v1/overrides", json=partial, headers={"x-client-id": "alice-app"}).status_code == 201
    assert http.post("/v1/overrides/o1/withdraw").status_code == 201
    assert http.post("/v1/overrides/o1/withdraw").status_code == 409
    assert http.post("/v1/overrides/nope/withdraw").status_code == 404
    history = http.get("/v1/overrides/o1/history").json()
    assert [h["changes"] for h in history] == [
        ["created"],
        ["mode: opt_out -> partial", "quantity_kw: none -> 1.5"],
        ["status: active -> withdrawn"],
    ]
    assert [h["protocol"] for h in history] == ["api", "api", "api"]
    assert history[1]["peer"] == "alice-app"
    assert [h["seq"] for h in history] == sorted(h["seq"] for h in history)
    assert http.get("/v1/overrides/o1").json()["status"] == "withdrawn"
    assert http.get("/v1/overrides/effective", params={"at": SOON}).json() == []


def test_repeating_a_stored_override_after_its_span_is_not_refused(http: httpx.Client, store: Store) -> None:
    """A peer re-sending its earlier answer changes nothing, so it is no 'late' override (only a change is)."""
    from gateway.ingest import Ingestor
    from gateway.model import Envelope

    body = override()
    assert http.post("/v1/overrides", json=body).status_code == 201
    stored = Override.model_validate(http.get("/v1/overrides/o1").json())
    later = Ingestor(store)
    later_check = later.check([Envelope(payload=stored).with_source("api", "x")])
    assert later_check == []
    moved = stored.model_copy(update={"span": stored.span.model_copy(update={"start": NOW - timedelta(hours=3)})})
    assert [p.type for p in later.check([Envelope(payload=moved).with_source("api", "x")])] == ["override_rule"]


def test_racing_overrides_resolve_the_same_whatever_order_they_were_stored_in(http: httpx.Client) -> None:
    """Two overrides of one control and resource: the one made last counts, in whichever order they arrive."""
    early = override(id="o-app", mode="opt_in", created_at=(NOW - timedelta(minutes=2)).isoformat())
    late = override(id="o-ven", mode="opt_out", created_at=(NOW - timedelta(minutes=1)).isoformat())
    for body in (late, early):  # the later one stored first
        assert http.post("/v1/overrides", json=body).status_code == 201
    winners = http.get("/v1/overrides/effective", params={"at": SOON, "party_id": "alice"}).json()
    assert [(w["id"], w["mode"]) for w in winners] == [("o-ven", "opt_out")]


SPANS = st.tuples(st.integers(0, 5), st.integers(1, 4))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(SPANS, st.integers(0, 3), st.sampled_from(["a", "b", "c"]), st.booleans()), max_size=6))
def test_resolution_does_not_depend_on_order(items: list[tuple[tuple[int, int], int, str, bool]]) -> None:
    base = datetime(2030, 1, 1, tzinfo=UTC)
    overrides = [
        Override.model_validate(
            {
                "id": f"{name}{n}",
                "party_id": "alice",
                "subject": {"kind": "control", "id": "c1"},
                "mode": "opt_out" if out else "opt_in",
                "span": {"start": (base + timedelta(hours=start)).isoformat(), "duration": f"PT{hours}H"},
                "created_at": (base - timedelta(minutes=made)).isoformat(),
            }
        )
        for n, ((start, hours), made, name, out) in enumerate(items)
    ]
    for hour in range(10):
        at = base + timedelta(hours=hour)
        outcomes = (
            {tuple(sorted((k, o.id) for k, o in effective_at(order, at).items())) for order in permutations(overrides)}
            if len(overrides) <= 4
            else {tuple(sorted((k, o.id) for k, o in effective_at(overrides, at).items()))}
        )
        assert len(outcomes) == 1
        covering = [o for o in overrides if o.span.start <= at < o.span.end]
        chosen = effective_at(overrides, at)
        if covering:
            best = max(covering, key=lambda o: (o.created_at, o.id))
            assert chosen[key_of(best)] is best
        else:
            assert chosen == {}


def test_the_cli_creates_lists_withdraws_and_audits(store_url: str) -> None:
    store = Store(store_url)
    app = create_app(Settings(), store=store)
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        seed(client)
    store.close()
    runner = CliRunner()
    db = ["--database-url", store_url]
    created = runner.invoke(
        cli,
        [
            "override",
            "create",
            "--party",
            "alice",
            "--subject",
            "c-site1",
            "--resource",
            "bat1",
            "--start",
            SOON,
            "--minutes",
            "60",
            "--id",
            "o-cli",
            "--json",
            *db,
        ],
    )
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["id"] == "o-cli"
    refused = runner.invoke(
        cli,
        ["override", "create", "--party", "alice", "--subject", "c-bob", "--start", SOON, "--minutes", "60", *db],
    )
    assert refused.exit_code == 1
    assert "control 'c-bob' is not aimed at party 'alice'" in refused.output
    listed = runner.invoke(cli, ["override", "list", "--party", "alice", "--json", *db])
    assert [o["id"] for o in json.loads(listed.stdout)] == ["o-cli"]
    assert runner.invoke(cli, ["override", "withdraw", "o-cli", *db]).exit_code == 0
    again = runner.invoke(cli, ["override", "withdraw", "o-cli", *db])
    assert again.exit_code == 1 and "withdrawn already" in again.output
    audit = json.loads(runner.invoke(cli, ["override", "history", "o-cli", "--json", *db]).stdout)
    assert [(a["protocol"], a["status"]) for a in audit] == [("cli", "active"), ("cli", "withdrawn")]
    assert "@" in audit[0]["peer"]  # the operator's user@host
