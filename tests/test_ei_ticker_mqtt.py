"""The EI ticker kept retained on a real mosquitto: a TeMIX party that subscribes gets the market's open tenders
for its next intervals as a CTS eiDistributeTender, and the ticker follows new tenders."""

from __future__ import annotations

import queue
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.config import Settings
from gateway.protocols.ei import json_codec
from gateway.protocols.ei.messages import Payload

NEXT = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)


def test_the_ticker_is_retained_per_market_and_follows_new_tenders(mqtt_broker: Any, tmp_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ticker.db'}",
        mqtt_url=f"{mqtt_broker.url}?prefix={prefix}",
        ei_ticker_seconds=0.2,
        market_tick_seconds=0,
    )
    with serve_in_thread(create_app(settings)) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        for path, body in [
            ("/v1/parties", {"id": "op", "name": "Exchange", "roles": ["dmo"]}),
            ("/v1/parties", {"id": "a", "name": "A", "roles": ["producer"]}),
            ("/v1/locations", {"id": "sp1", "name": "sp1", "kind": "service_point"}),
            ("/v1/markets", {"id": "m1", "operator_id": "op"}),
        ]:
            assert http.post(path, json=body).status_code == 201, body

        received: queue.Queue[bytes] = queue.Queue()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"temix-{uuid.uuid4().hex[:6]}")
        client.on_message = lambda _c, _u, message: received.put(message.payload)
        client.connect(mqtt_broker.host, mqtt_broker.port)
        client.subscribe(f"{prefix}/ei/ticker/m1", qos=1)
        client.loop_start()
        try:
            # Nothing open yet: the ticker is an empty retained message (MQTT's "no value"), GET answers 204.
            assert received.get(timeout=10) == b""
            assert http.get("/ei/v1/ticker", params={"market_id": "m1"}).status_code == 204
            tender = {
                "id": "a-1",
                "market_id": "m1",
                "party_id": "a",
                "side": "sell",
                "location_id": "sp1",
                "rows": [{"start": NEXT.isoformat(), "quantity": "5", "price": "0.12"}],
            }
            assert http.post("/v1/tenders", json=tender).status_code == 201
            for _ in range(100):  # each republish is a new message; wait for one that carries the tender
                body = received.get(timeout=10)
                if body:
                    break
            ticker = json_codec.decode(body)
            assert (ticker.payload, ticker.party_id) == (Payload.DISTRIBUTE_TENDER, "op")
            assert [t.id for t in ticker.tenders] == ["a-1"]
        finally:
            client.loop_stop()
            client.disconnect()
