"""One customer override, entered through each edge, is the same canonical record and costs the same.

Ben's EV charger is dispatched by a DR program (a kW setpoint for the next hour but one, priced by market m-edge,
with an expected response of 3 kW and a 0.50/kWh penalty). Ben opts out through:

- the REST API (POST /v1/overrides);
- MQTT (tgw/v1/in/override on a real mosquitto);
- OpenADR 2.0b: openleadr's own VEN polls the gateway's VTN, receives the event and answers optOut;
- IEEE 2030.5: a device with its own certificate, over mutual TLS, discovers the DERControl and posts Response 4.

Each edge runs against a fresh gateway with the same seed; the override each stores is compared field by field
(ids are the edge's own, so they differ) and each is settled by the same settlement run. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from certs import TestCa
from paho.mqtt.enums import CallbackAPIVersion

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.api.tls import server_tls_options
from gateway.config import Settings
from gateway.ingest import Ingestor
from gateway.market.billing import settle_window
from gateway.model import Clearing, Envelope, Interval, MessageKind, Override, Resolution, Source
from gateway.model.markets import ClearingType
from gateway.overrides.policy import load_policy
from gateway.protocols.ieee2030_5 import mapper
from gateway.protocols.ieee2030_5 import models as m
from gateway.protocols.ieee2030_5.client import Sep2Client
from gateway.protocols.ieee2030_5.identity import lfdi_of_certificate
from gateway.store import Store

MARKET = "m-edge"
PROGRAM = "ev-dispatch"
CONTROL = "ev-evening"
PEN = 32473
PIN = 111115
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
POLICY = f"""
programs:
  {PROGRAM}:
    market_id: {MARKET}
    response_kw: {{ben: "3"}}
    penalty_per_kwh: "0.50"
markets: {{}}
"""
WAIT = 20.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("pki"))


def env(object_type: str, /, **payload: Any) -> Envelope:
    return Envelope.model_validate({"payload": {"object_type": object_type, **payload}})


def seeded(folder: Path, lfdi: str) -> tuple[Store, Settings]:
    """The same world for every edge: Ben, his EV charger (known to 2030.5 by its LFDI), the market and its cleared
    price for the hour, and the program's setpoint for his charger in that hour."""
    policy = folder / "overrides.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    url = f"sqlite:///{folder / 'gw.db'}"
    store = Store(url)
    Ingestor(store, policy=load_policy(policy)).ingest_sync(
        [
            env("party", id="op", name="Exchange", roles=["dmo"]),
            env("party", id="ben", name="Ben", roles=["consumer"]),
            env("location", id="xf", name="Transformer", kind="transformer"),
            env("location", id="SP-ben", name="14 Maple St", kind="service_point", parent_id="xf"),
            env(
                "resource",
                id="ben-ev",
                name="Ben's EV charger",
                kind="ev_charger",
                owner_id="ben",
                location_id="SP-ben",
                ratings={"max_kw": "11"},
                identities={"lfdi": lfdi, "ieee2030_5-pin": str(PIN)},
            ),
            env("market", id=MARKET, operator_id="op"),
            env(
                "control",
                id=CONTROL,
                program_id=PROGRAM,
                targets={"resource_ids": ["ben-ev"]},
                kind="setpoint",
                signal="real_power",
                unit="kW",
                periods=[{"span": {"start": HOUR.isoformat(), "duration": "PT1H"}, "value": "4"}],
            ),
        ],
        protocol="test",
        peer="seed",
    )
    clearing = Clearing(
        market_id=MARKET,
        interval=Interval(start=HOUR, duration=Resolution.HOUR),
        type=ClearingType.MARGINAL_SELLER,
        price=Decimal("0.30"),
        cleared_quantity=Decimal(10),
        gate_closed_at=HOUR - timedelta(minutes=5),
    )  # as the market runner stores it
    store.append(Envelope(payload=clearing, source=Source(protocol="market", peer=MARKET, native_id="c1")))
    settings = Settings(database_url=url, market_tick_seconds=0, override_mappings=str(policy))
    return store, settings


def eventually(found: Callable[[], Override | None], what: str) -> Override:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if (value := found()) is not None:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def only_override(store: Store) -> Override | None:
    found = [o for o in store.list(MessageKind.OVERRIDE, limit=None) if isinstance(o, Override)]
    assert len(found) <= 1, found
    return found[0] if found else None


def opt_out(override_id: str, **extra: Any) -> dict[str, Any]:
    """Ben opts out of the program's control for its whole hour (the canonical body REST and MQTT carry)."""
    return {
        "id": override_id,
        "party_id": "ben",
        "subject": {"kind": "control", "id": CONTROL},
        "mode": "opt_out",
        "span": {"start": HOUR.isoformat(), "duration": "PT1H"},
        **extra,
    }


def ven(base: str) -> Any:
    """openleadr's VEN, unchanged, naming itself Ben (the VTN runs without TLS on loopback, as in the demo)."""
    from openleadr import OpenADRClient

    logging.getLogger("openleadr").setLevel(logging.ERROR)
    return OpenADRClient(ven_name="ben", vtn_url=base + "/OpenADR2/Simple/2.0b", show_fingerprint=False)


# -- the edges -----------------------------------------------------------------------------------------------


def via_rest(store: Store, settings: Settings, _pki: TestCa, _issued: Any, _broker: Any) -> None:
    body = opt_out("app-optout-1", resource_id="ben-ev")
    with serve_in_thread(create_app(settings, store=store)) as base, httpx.Client(base_url=base, timeout=30) as http:
        answer = http.post("/v1/overrides", json=body)
        assert answer.status_code == 201, answer.text


def via_mqtt(store: Store, settings: Settings, _pki: TestCa, _issued: Any, broker: Any) -> None:
    prefix = f"t{time.monotonic_ns()}"
    settings = Settings(**{**settings.__dict__, "mqtt_url": f"{broker.url}?client_id=gw-{prefix}&prefix={prefix}"})
    body = opt_out("hems-optout-1", resource_id="ben-ev", object_type="override")
    with serve_in_thread(create_app(settings, store=store)):
        sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"hems-{prefix}")
        sender.connect(broker.host, broker.port)
        sender.loop_start()
        try:
            sender.publish(f"{prefix}/in/override", json.dumps(body), qos=1).wait_for_publish(WAIT)
            eventually(lambda: only_override(store), "the MQTT override to be stored")
        finally:
            sender.disconnect()
            sender.loop_stop()


def via_openadr(store: Store, settings: Settings, _pki: TestCa, _issued: Any, _broker: Any) -> None:
    settings = Settings(**{**settings.__dict__, "openadr_insecure": True})
    events: list[str] = []

    async def on_event(event: dict[str, Any]) -> str:
        events.append(event["event_descriptor"]["event_id"])
        return "optOut"

    async def session(base: str) -> None:
        client = ven(base)
        client.add_handler("on_event", on_event)
        try:
            await client.create_party_registration()
            assert client.registration_id
            await client._poll()  # oadrDistributeEvent in, oadrCreatedEvent (optOut) out
        finally:
            await client.stop()

    with serve_in_thread(create_app(settings, store=store)) as base:
        asyncio.run(session(base))
        assert events == [CONTROL]
        eventually(lambda: only_override(store), "the VEN's optOut to be stored")


def via_ieee2030_5(store: Store, settings: Settings, pki: TestCa, issued: Any, _broker: Any) -> None:
    server = pki.issue("localhost", server=True)
    tls = server_tls_options(str(server.cert), str(server.key), str(pki.ca_file), require_client=True)
    with serve_in_thread(create_app(settings, store=store), **tls) as base:
        base = base.replace("127.0.0.1", "localhost")
        with Sep2Client(base, cert=issued.cert, key=issued.key, ca=pki.ca_file, pin=PIN) as device:
            view = device.discover()
            found = view.control(mapper.control_mrid(CONTROL, 0, PEN))
            assert found is not None, "the device does not see the program's control"
            assert found.DERControlBase.opModTargetW is not None  # the kW setpoint, as 2030.5 carries it
            device.respond(found, 4)  # opted out
    eventually(lambda: only_override(store), "the device's Response 4 to become an override")


EDGES = {"rest": via_rest, "mqtt": via_mqtt, "openadr2b": via_openadr, "ieee2030_5": via_ieee2030_5}


def outcome(edge: str, folder: Path, pki: TestCa, broker: Any) -> tuple[dict[str, Any], list[tuple[Any, ...]], Any]:
    issued = pki.issue(f"ben-ev-{edge}")
    store, settings = seeded(folder, lfdi_of_certificate(issued.der))
    try:
        EDGES[edge](store, settings, pki, issued, broker)
        override = only_override(store)
        assert override is not None
        report, _stored = settle_window(
            store, MARKET, HOUR, HOUR + timedelta(hours=1), load_policy(settings.override_mappings)
        )
        record = override.model_dump(mode="json", exclude={"id", "created_at", "reason_text"})
        lines = sorted(
            (line.kind.value, line.party_id, line.location_id, line.interval.start, line.quantity, line.amount)
            for line in report.lines
        )
        audit = store.list(MessageKind.OVERRIDE, limit=None)
        return record, lines, (audit, report.totals)
    finally:
        store.close()


@pytest.fixture(scope="module")
def by_rest(pki: TestCa, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    record, lines, _ = outcome("rest", tmp_path_factory.mktemp("rest"), pki, None)
    return record, lines


def test_the_rest_override_is_settled_at_spot_plus_the_penalty(by_rest: tuple[dict[str, Any], list[Any]]) -> None:
    record, lines = by_rest
    assert record["party_id"] == "ben" and record["subject"] == {"kind": "control", "id": CONTROL}
    assert record["mode"] == "opt_out" and record["status"] == "active" and record["reason"] == "override_status"
    # 3 kW expected, not given, for the hour, unmetered: bought at the spot 0.30, plus 3 kWh x 0.50 penalty
    assert lines == [
        ("deviation", "ben", "SP-ben", HOUR, Decimal(3), Decimal("0.9")),
        ("penalty", "ben", "SP-ben", HOUR, Decimal(3), Decimal("1.5")),
    ]


@pytest.mark.parametrize("edge", ["mqtt", "openadr2b", "ieee2030_5"])
def test_every_edge_stores_the_same_override_and_the_same_settlement(
    edge: str,
    by_rest: tuple[dict[str, Any], list[Any]],
    pki: TestCa,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    broker = request.getfixturevalue("mqtt_broker") if edge == "mqtt" else None
    record, lines, _ = outcome(edge, tmp_path, pki, broker)
    assert record == by_rest[0]
    assert lines == by_rest[1]


@pytest.fixture
def http_world(tmp_path: Path, pki: TestCa) -> Iterator[tuple[httpx.Client, Store]]:
    store, settings = seeded(tmp_path, lfdi_of_certificate(pki.issue("unused").der))
    with serve_in_thread(create_app(settings, store=store)) as base, httpx.Client(base_url=base, timeout=30) as http:
        yield http, store
    store.close()


def test_withdrawing_an_override_after_settlement_reverses_its_lines(http_world: tuple[httpx.Client, Store]) -> None:
    http, store = http_world
    body = opt_out("o-1")
    assert http.post("/v1/overrides", json=body).status_code == 201
    window = {"start": HOUR.isoformat(), "end": (HOUR + timedelta(hours=1)).isoformat()}
    first = http.post(f"/v1/markets/{MARKET}/settle", json=window).json()
    assert Decimal(first["totals"]["ben"]) == Decimal("2.4") and first["stored"] == 2
    assert http.post(f"/v1/markets/{MARKET}/settle", json=window).json()["stored"] == 0  # idempotent

    assert http.post("/v1/overrides/o-1/withdraw").status_code == 201
    second = http.post(f"/v1/markets/{MARKET}/settle", json=window).json()
    assert second["stored"] == 2 and Decimal(second["totals"]["ben"]) == 0
    stored = http.get(f"/v1/markets/{MARKET}/settlements", params={"party_id": "ben"}).json()
    assert sorted(Decimal(line["amount"]) for line in stored) == [0, 0]  # new versions, nothing deleted
    for line in stored:
        versions = store.query_messages(kind=MessageKind.SETTLEMENT_LINE, entity_id=line["id"])
        amounts = [m.envelope.payload.amount for m in versions]  # type: ignore[union-attr]
        assert amounts in ([Decimal("0.9"), 0], [Decimal("1.5"), 0])  # the log keeps the charge and its reversal


def test_a_meter_reading_that_arrives_later_replaces_the_estimate(http_world: tuple[httpx.Client, Store]) -> None:
    http, _store = http_world
    bought = {
        "id": "ben-block",
        "market_id": MARKET,
        "party_id": "ben",
        "counterparty_id": "op",
        "side": "buy",
        "location_id": "SP-ben",
        "interval": {"start": HOUR.isoformat(), "duration": "PT1H"},
        "quantity": "2",
        "price": "0.20",
    }
    assert http.post("/v1/transactions", json=bought).status_code == 201, "Ben trades: the market settles his meter"
    body = opt_out("o-2")
    assert http.post("/v1/overrides", json=body).status_code == 201
    window = {"start": HOUR.isoformat(), "end": (HOUR + timedelta(hours=1)).isoformat()}
    settled = http.post(f"/v1/markets/{MARKET}/settle", json=window).json()
    before = sorted((line["kind"], Decimal(line["amount"])) for line in settled["lines"])
    assert before == [("deviation", Decimal("0.9")), ("penalty", Decimal("1.5")), ("transaction", Decimal("0.4"))]
    reading = {
        "id": "meter-ben-1",
        "party_id": "ben",
        "location_id": "SP-ben",
        "interval": {"start": HOUR.isoformat(), "duration": "PT1H"},
        "quantity": "7",
    }
    assert http.post("/v1/deliveries", json=reading).status_code == 201
    after = http.post(f"/v1/markets/{MARKET}/settle", json=window).json()
    kinds = sorted((line["kind"], Decimal(line["amount"])) for line in after["lines"])
    # the metered deviation (7 - 2 kW at 0.30) replaces the estimate, which is zeroed; the penalty stays
    assert kinds == [
        ("deviation", Decimal(0)),
        ("deviation", Decimal("1.5")),
        ("penalty", Decimal("1.5")),
        ("transaction", Decimal("0.4")),
    ]
    assert Decimal(after["totals"]["ben"]) == Decimal("3.4")


# -- every edge shows an override, whichever edge it came through ----------------------------------------------

APP_OPT_OUT = opt_out("app-optout-2")


def test_the_2030_5_device_is_shown_an_opt_out_made_in_the_customers_app(pki: TestCa, tmp_path: Path) -> None:
    issued = pki.issue("ben-ev-shown")
    store, settings = seeded(tmp_path, lfdi_of_certificate(issued.der))
    server, operator = pki.issue("localhost", server=True), pki.issue("operator")
    tls = server_tls_options(str(server.cert), str(server.key), str(pki.ca_file), require_client=True)
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    context.load_cert_chain(str(operator.cert), str(operator.key))
    try:
        with serve_in_thread(create_app(settings, store=store), **tls) as base:
            base = base.replace("127.0.0.1", "localhost")
            with Sep2Client(base, cert=issued.cert, key=issued.key, ca=pki.ca_file, pin=PIN) as device:
                view = device.discover()
                mrid = mapper.control_mrid(CONTROL, 0, PEN).upper()

                def shown() -> list[tuple[int | None, str]]:
                    _, sets = device.get_all(f"{view.end_device.href}/rsps", m.ResponseSetList, "ResponseSet")
                    return [
                        (r.status, r.subject)
                        for s in sets
                        for r in device.get_all(s.ResponseListLink.href, m.ResponseList, "Response")[1]
                    ]

                assert shown() == []
                with httpx.Client(base_url=base, verify=context, timeout=30) as app:
                    assert app.post("/v1/overrides", json=APP_OPT_OUT).status_code == 201
                    assert shown() == [(4, mrid)]  # opted out, for the DERControl the device holds
                    assert app.post(f"/v1/overrides/{APP_OPT_OUT['id']}/withdraw").status_code == 201
                    assert shown() == []  # withdrawn: no longer in force
    finally:
        store.close()


def test_the_vtn_shows_a_vens_party_an_opt_out_made_elsewhere(pki: TestCa, tmp_path: Path) -> None:
    store, settings = seeded(tmp_path, lfdi_of_certificate(pki.issue("unused-2").der))
    settings = Settings(**{**settings.__dict__, "openadr_insecure": True})

    async def register(base: str) -> None:
        client = ven(base)
        try:
            await client.create_party_registration()
            assert client.registration_id
        finally:
            await client.stop()

    try:
        with serve_in_thread(create_app(settings, store=store)) as base, httpx.Client(base_url=base) as http:
            asyncio.run(register(base))
            (ben,) = http.get("/v1/openadr2b/vens").json()
            assert ben["party_id"] == "ben" and ben["overrides"] == []
            assert http.post("/v1/overrides", json=APP_OPT_OUT).status_code == 201
            (ben,) = http.get("/v1/openadr2b/vens").json()
            assert [(o["override_id"], o["subject_id"], o["mode"]) for o in ben["overrides"]] == [
                (APP_OPT_OUT["id"], CONTROL, "opt_out")
            ]
    finally:
        store.close()
