"""The demo's legacy VEN: Ben's EV charger speaks only OpenADR 2.0b (openleadr's VEN, unchanged). It registers
with the gateway's VTN and receives, as ordinary OpenADR events, the utility's DR event for his transformer and
the transactive price the market cleared at his site; he opts out of the DR event, which the gateway records as
his override.

The demo runs the VTN without TLS on loopback (`--openadr-insecure`: the VEN names itself); a deployment uses
mutual TLS, where the VEN's certificate fingerprint is its identity.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from gateway.resources import mappings_dir

VEN_PARTY = "ben"
PATH = "/OpenADR2/Simple/2.0b"


def write_mapping(workdir: Path, market_id: str) -> Path:
    """The demo's OpenADR mapping: the installed signals and VTN settings, and one program whose events carry
    the market's cleared prices."""
    base = (mappings_dir() / "openadr2b.yaml").read_text(encoding="utf-8").split("\nprograms:")[0]
    program = (
        "\nprograms:\n"
        "  - program_id: valley-summer-dr\n"
        "    market_context: http://valley-power.example/programs/summer-dr\n"
        "  - program_id: maple-dynamic-price\n"
        "    market_context: http://valley-power.example/programs/dynamic-price\n"
        f"    market_id: {market_id}\n"
        "    clearing_prices: true\n"
    )
    path = workdir / "openadr2b.yaml"
    path.write_text(base + program, encoding="utf-8")
    return path


def legacy_ven(console: Console, base_url: str, http: httpx.Client) -> None:
    from openleadr import OpenADRClient

    logging.getLogger("openleadr").setLevel(logging.ERROR)  # its INFO lines would drown the demo's output
    received: list[dict[str, Any]] = []

    def on_event(event: dict[str, Any]) -> str:
        received.append(event)
        signal = event["event_signals"][0]["signal_name"]
        return "optOut" if signal.upper() == "SIMPLE" else "optIn"  # Ben keeps charging through the DR event

    async def session() -> None:
        ven = OpenADRClient(ven_name=VEN_PARTY, vtn_url=base_url + PATH, show_fingerprint=False)
        ven.add_handler("on_event", on_event)
        try:
            await ven.create_party_registration()
            if not ven.registration_id:
                raise RuntimeError("the VEN could not register with the gateway's VTN")
            await ven._poll()  # openleadr's own poll: receives oadrDistributeEvent, answers oadrCreatedEvent
        finally:
            await ven.stop()

    console.print(
        "\n[bold]A legacy OpenADR 2.0b VEN[/] (openleadr's OpenADRClient, Ben's EV charger) polls the gateway's VTN"
    )
    asyncio.run(session())
    table = Table(title="Events the VEN received (rendered from canonical controls and the cleared market)")
    for column in ("event", "signal", "intervals (start: value)", "status", "answer"):
        table.add_column(column)
    for event in sorted(received, key=lambda e: e["active_period"]["dtstart"]):
        signal = event["event_signals"][0]
        start = event["active_period"]["dtstart"]
        values = ", ".join(f"{interval['signal_payload']:g}" for interval in signal["intervals"])
        unit = " USD/kWh" if signal["signal_name"] == "ELECTRICITY_PRICE" else ""
        answer = "optOut" if signal["signal_name"].upper() == "SIMPLE" else "none asked"
        table.add_row(
            event["event_descriptor"]["event_id"],
            f"{signal['signal_name']}/{signal['signal_type']}",
            f"{start:%H:%M} UTC: {values}{unit}",
            event["event_descriptor"]["event_status"],
            answer,
        )
    console.print(table)
    overrides = http.get("/v1/overrides", params={"limit": 100}).json()
    for override in overrides:
        payload = override.get("payload", override)
        if payload.get("party_id") == VEN_PARTY:
            console.print(
                f"  Ben's optOut became canonical override [bold]{payload['id']}[/] ({payload['mode']},"
                f" {payload['status']}) on control {payload['subject']['id']}: the market settles what he"
                " uses as usual against his position, deviations at the spot price"
            )
