"""/metrics in the Prometheus text format, so an integrator's monitoring can scrape a sidecar gateway.

Written by hand: a dozen gauges read from the store and the process do not justify a metrics library.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

router = APIRouter(tags=["health"])


def _line(name: str, value: float | int, help_text: str, kind: str = "gauge", labels: str = "") -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name}{labels} {value}"]


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
async def metrics(request: Request) -> PlainTextResponse:
    store = request.app.state.store
    bus = request.app.state.bus
    mqtt = request.app.state.mqtt
    db_ok = await asyncio.to_thread(store.ping)
    lines = _line("tgw_database_up", int(db_ok), "1 when the database answers")
    if db_ok:
        lines += _line("tgw_log_seq", await asyncio.to_thread(store.last_seq), "position of the newest stored message")
        counts = await asyncio.to_thread(store.counts)
        lines += ["# HELP tgw_objects current canonical objects by kind", "# TYPE tgw_objects gauge"]
        lines += [f'tgw_objects{{kind="{kind}"}} {count}' for kind, count in sorted(counts.items())]
    lines += _line("tgw_bus_published_total", bus.published, "messages published on the in-process bus", "counter")
    vtn = getattr(request.app.state, "oadr_vtn", None)
    if db_ok and vtn is not None:
        vens = await asyncio.to_thread(vtn.directory.records)
        registered = sum(1 for ven in vens if ven.registered)
        lines += _line("tgw_openadr_vens_registered", registered, "OpenADR 2.0b VENs registered with the VTN")
    pusher = getattr(request.app.state, "oadr_pusher", None)
    if pusher is not None:
        lines += _line("tgw_openadr_pushes_total", pusher.pushed, "event lists pushed to push VENs", "counter")
    lines += _line("tgw_mqtt_enabled", int(mqtt is not None), "1 when a broker is configured")
    if mqtt is not None:
        lines += _line("tgw_mqtt_connected", int(mqtt.connected), "1 while connected to the broker")
        lines += _line("tgw_mqtt_published_seq", mqtt.published_seq, "log position acknowledged by the broker")
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
