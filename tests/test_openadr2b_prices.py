"""Transactive prices reach legacy VENs as OpenADR ELECTRICITY_PRICE events, over real HTTP on loopback: a
retailer's tariff tender at the feeder, and the market's cleared price at the VEN's own site (the locational price
when the network bound). Programs come from a mapping file given to the gateway (`--openadr-mappings`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.config import Settings
from gateway.ingest import Ingestor
from gateway.model import Clearing, Envelope, Interval, Resolution, Source
from gateway.model.markets import ClearingType
from gateway.protocols.openadr2b import codec
from gateway.protocols.openadr2b.messages import EventStatus, OadrMessage, Payload, Registration
from gateway.resources import mappings_dir
from gateway.store import Store

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=3)
PATH = "/OpenADR2/Simple/2.0b"
PROGRAMS = """
programs:
  - program_id: dynamic-tariff
    market_context: http://utility.example/programs/dynamic
    market_id: m1
    price_tenders_from: [retailer]
    clearing_prices: true
"""


def env(object_type: str, /, **payload: Any) -> Envelope:
    return Envelope.model_validate({"payload": {"object_type": object_type, **payload}})


@pytest.fixture
def vtn(store: Store, tmp_path: Path) -> Iterator[httpx.Client]:
    Ingestor(store).ingest_sync(
        [
            env("party", id="op", name="Market operator", roles=["dmo"]),
            env("party", id="retailer", name="Retailer", roles=["utility"]),
            env("party", id="ann", name="Ann", roles=["prosumer"]),
            env("location", id="root", name="Substation", kind="substation"),
            env("location", id="xf1", name="Transformer 1", kind="transformer", parent_id="root"),
            env("location", id="sp-a", name="Ann's meter", kind="service_point", parent_id="xf1"),
            env("resource", id="a-hvac", name="HVAC", kind="load", owner_id="ann", location_id="sp-a"),
            env("market", id="m1", operator_id="op"),
            env(
                "tender",
                id="tariff-1",
                market_id="m1",
                party_id="retailer",
                side="sell",
                location_id="root",
                rows=[
                    {"start": HOUR.isoformat(), "quantity": "100", "price": "0.21"},
                    {"start": (HOUR + timedelta(hours=1)).isoformat(), "quantity": "100", "price": "0.34"},
                ],
            ),
        ],
        protocol="test",
        peer="seed",
    )
    interval = Interval(start=HOUR, duration=Resolution.HOUR)
    clearing = Clearing(
        market_id="m1",
        interval=interval,
        type=ClearingType.MARGINAL_SELLER,
        price=Decimal("0.30"),
        cleared_quantity=Decimal(40),
        prices={"root": Decimal("0.30"), "xf1": Decimal("0.45")},
        gate_closed_at=HOUR - timedelta(minutes=5),
    )  # as the market runner stores it: a derived object, never accepted from an edge
    store.append(Envelope(payload=clearing, source=Source(protocol="market", peer="m1", native_id=clearing.id)))
    mapping = tmp_path / "openadr2b.yaml"
    mapping.write_text((mappings_dir() / "openadr2b.yaml").read_text().split("\nprograms:")[0] + PROGRAMS)
    settings = Settings(market_tick_seconds=0, openadr_insecure=True, openadr_mappings=str(mapping))
    with serve_in_thread(create_app(settings, store=store)) as base, httpx.Client(base_url=base, timeout=30) as http:
        yield http


def post(http: httpx.Client, service: str, message: OadrMessage) -> OadrMessage:
    answer = http.post(f"{PATH}/{service}", content=codec.encode(message))
    assert answer.status_code == 200
    return codec.decode(answer.content)


def test_a_legacy_ven_sees_the_tariff_and_its_locational_cleared_price(vtn: httpx.Client) -> None:
    registered = post(
        vtn,
        "EiRegisterParty",
        OadrMessage(payload=Payload.CREATE_PARTY_REGISTRATION, registration=Registration(ven_name="ann")),
    )
    assert registered.response is not None and registered.response.code == 200
    events = {e.event_id: e for e in post(vtn, "OadrPoll", OadrMessage(payload=Payload.POLL, ven_id="ann")).events}
    tariff = events["tariff-1"]
    (signal,) = tariff.signals
    assert (signal.name, signal.type) == ("ELECTRICITY_PRICE", "price")
    assert [i.value for i in signal.intervals] == [Decimal("0.21"), Decimal("0.34")]
    assert signal.unit is not None and (signal.unit.kind, signal.unit.units) == ("currencyPerKWh", "USD")
    assert tariff.market_context == "http://utility.example/programs/dynamic"
    assert tariff.status is EventStatus.FAR and signal.current_value == 0
    cleared = events[f"price.m1.{HOUR.strftime('%Y%m%dT%H%M%SZ')}"]
    assert cleared.signals[0].intervals[0].value == Decimal("0.45")  # behind xf1, where the limit bound
    assert cleared.start == HOUR and cleared.duration == timedelta(hours=1)
    assert sorted(events) == sorted(["tariff-1", cleared.event_id])
