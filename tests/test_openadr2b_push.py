"""simpleHTTP push: a VEN that registered with oadrHttpPullModel false gets its events POSTed to its transport
address as soon as a control for it is stored, answers with oadrCreatedEvent (its optOut becomes an override), and
a VEN that is down gets the events once it is back. The VEN here is a real HTTP server on loopback that speaks
2.0b with our codec (openleadr's VEN only polls)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from gateway.api import create_app
from gateway.api.server import free_port, serve_in_thread
from gateway.config import Settings
from gateway.ingest import Ingestor
from gateway.model import Envelope, MessageKind, Override
from gateway.protocols.openadr2b import codec
from gateway.protocols.openadr2b.messages import (
    EiResponse,
    EventResponse,
    OadrMessage,
    OptType,
    Payload,
    Registration,
)
from gateway.store import Store

START = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)


def env(object_type: str, /, **payload: Any) -> Envelope:
    return Envelope.model_validate({"payload": {"object_type": object_type, **payload}})


class PushVen:
    """A 2.0b VEN's push endpoint: records what the VTN sends and opts out of every event."""

    def __init__(self) -> None:
        self.received: list[OadrMessage] = []
        self.app = FastAPI()

        @self.app.post("/ven/EiEvent")
        async def event(request: Request) -> Response:
            message = codec.decode(await request.body())
            self.received.append(message)
            answer = OadrMessage(
                payload=Payload.CREATED_EVENT,
                response=EiResponse(request_id=message.request_id),
                ven_id="ven-p",
                event_responses=[
                    EventResponse(e.event_id, e.modification_number, OptType.OPT_OUT) for e in message.events
                ],
            )
            return Response(codec.encode(answer), media_type="application/xml")


def wait_for(condition: Any, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def control(control_id: str) -> dict[str, Any]:
    return {
        "object_type": "control",
        "id": control_id,
        "targets": {"party_ids": ["ven-p"]},
        "kind": "level",
        "signal": "dr_level",
        "unit": "level",
        "periods": [{"span": {"start": START.isoformat(), "duration": "PT1H"}, "value": "2"}],
    }


@pytest.fixture
def gateway(store: Store) -> Iterator[httpx.Client]:
    Ingestor(store).ingest_sync(
        [env("party", id="ven-p", name="Push VEN", roles=["consumer"])], protocol="test", peer="seed"
    )
    settings = Settings(market_tick_seconds=0, openadr_insecure=True, openadr_push_seconds=0.5)
    with serve_in_thread(create_app(settings, store=store)) as base, httpx.Client(base_url=base, timeout=30) as http:
        yield http


def register(http: httpx.Client, address: str) -> None:
    message = OadrMessage(
        payload=Payload.CREATE_PARTY_REGISTRATION,
        registration=Registration(ven_name="ven-p", http_pull_model=False, transport_address=address),
    )
    answer = codec.decode(http.post("/OpenADR2/Simple/2.0b/EiRegisterParty", content=codec.encode(message)).content)
    assert answer.response is not None and answer.response.code == 200


def test_events_are_pushed_and_the_answer_is_taken(gateway: httpx.Client, store: Store) -> None:
    ven = PushVen()
    with serve_in_thread(ven.app) as ven_url:
        register(gateway, ven_url + "/ven")
        assert gateway.post("/v1/controls", json=control("push-1")).status_code == 201
        wait_for(lambda: any(e.event_id == "push-1" for m in ven.received for e in m.events))
        wait_for(lambda: isinstance(store.get(MessageKind.OVERRIDE, "oadr-optout.ven-p.push-1"), Override))
        pushes = len(ven.received)
        time.sleep(1.5)  # several re-check intervals: nothing changed, nothing is pushed again
        assert len(ven.received) == pushes


def test_a_ven_that_was_down_gets_its_events_when_it_is_back(gateway: httpx.Client) -> None:
    port = free_port()
    register(gateway, f"http://127.0.0.1:{port}/ven")
    assert gateway.post("/v1/controls", json=control("push-2")).status_code == 201
    time.sleep(1.0)  # pushes fail: nobody listens
    ven = PushVen()
    with serve_in_thread(ven.app, port=port):
        wait_for(lambda: any(e.event_id == "push-2" for m in ven.received for e in m.events))
