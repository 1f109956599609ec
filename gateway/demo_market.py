"""The market part of `tgw demo`: the feeder's day-ahead market clears tomorrow's evening peak hour, the 500 kVA
transformer at bus 634 binds and prices separate, then tomorrow's meter readings are settled against positions.

Kept apart from ``gateway.demo`` so that each file tells one part of the story.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console
from rich.table import Table

OPERATOR = {"id": "maple-exchange", "name": "Maple Feeder Exchange", "roles": ["dmo"]}
DEPOT = {
    "id": "SP-depot",
    "name": "GridShare bus depot",
    "kind": "service_point",
    "parent_id": "xf-xfm1",
    "rating_kva": 750,
}


def market(market_id: str, zone: str, feeder: str) -> dict[str, Any]:
    return {
        "id": market_id,
        "name": "Maple feeder day-ahead market",
        "operator_id": OPERATOR["id"],
        "resolution": "PT1H",
        "time_zone": zone,
        "currency": "USD",
        "network_root_id": feeder,
        "gate_closure": "PT1H",
    }


def depot_tender(market_id: str, zone: str, hour: datetime) -> dict[str, Any]:
    """GridShare charges an electric bus fleet behind the 500 kVA transformer: 600 kW at up to 0.45 USD/kWh."""
    return {
        "id": "depot-evening",
        "market_id": market_id,
        "party_id": "gridshare",
        "side": "buy",
        "location_id": DEPOT["id"],
        "time_zone": zone,
        "rows": [{"start": hour.isoformat(), "quantity": "600", "price": "0.45"}],
    }


def subscription(market_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Ben's transactive tariff: a 2 kW block around the clock at a fixed 0.20, deviations at the spot price."""
    return {
        "id": "ben-block",
        "market_id": market_id,
        "party_id": "ben",
        "counterparty_id": "valley-power",
        "location_id": "SP-ben",
        "quantity": "2",
        "price": "0.20",
        "start": start.isoformat(),
        "end": end.isoformat(),
    }


def meter_readings(hour: datetime) -> list[dict[str, Any]]:
    """What the meters will say for the hour (the demo plays tomorrow's readings now). kW, + = import."""
    interval = {"start": hour.isoformat(), "duration": "PT1H"}
    readings = [("gridshare", "SP-depot", "480"), ("ben", "SP-ben", "3.5"), ("ana", "SP-ana", "-5")]
    return [
        {
            "id": f"meter-{location}-{hour:%Y%m%dT%H}",
            "party_id": party,
            "location_id": location,
            "interval": interval,
            "quantity": quantity,
        }
        for party, location, quantity in readings
    ]


def clear_and_settle(
    http: httpx.Client, console: Console, market_id: str, zone: str, hour: datetime, watch: list[str]
) -> None:
    """Clear ``hour`` (early: its gate closes an hour before it, tomorrow), settle it, print what happened."""
    local = hour.astimezone(ZoneInfo(zone))
    response = http.post(f"/v1/markets/{market_id}/clear", json={"interval_start": hour.isoformat(), "early": True})
    if response.status_code != 201:
        raise RuntimeError(f"the market run was refused: {response.text}")
    run = response.json()["runs"][0]
    clearing = run["clearing"]
    console.print(
        f"\n[bold]Market run[/] {market_id}, {local:%Y-%m-%d %H:%M} {zone} (cleared early; under `tgw serve` the"
        " call auction runs by itself when the gate closes)"
    )
    binding = ", ".join(clearing["binding_location_ids"]) or "none"
    console.print(
        f"  {clearing['tender_count']} tenders, {clearing['cleared_quantity']} kW cleared, plain auction"
        f" {clearing['type']}; method [bold]{clearing['method']}[/], binding: [bold]{binding}[/]"
    )
    table = Table(title="Locational prices (USD/kWh) and flows (kW out of the subtree)", title_justify="left")
    for column in ("location", "price", "flow"):
        table.add_column(column)
    for location in watch:
        flow = clearing["flows"].get(location)
        table.add_row(location, clearing["prices"].get(location, clearing["price"]), "" if flow is None else flow)
    console.print(table)

    transactions = http.get("/v1/transactions", params={"clearing_id": clearing["id"], "limit": 1000}).json()
    table = Table(
        title="Transactions (counterparty: the exchange, or the retailer for a subscription)", title_justify="left"
    )
    for column in ("party", "side", "at", "kW", "price", "from"):
        table.add_column(column)
    for t in sorted(transactions, key=lambda t: (t["side"], t["party_id"])):
        source = f"subscription {t['subscription_id']}" if t["subscription_id"] else f"tender {t['tender_id']}"
        table.add_row(t["party_id"], t["side"], t["location_id"], t["quantity"], t["price"], source)
    console.print(table)

    positions = http.get(f"/v1/markets/{market_id}/positions", params={"start": hour.isoformat()}).json()
    table = Table(title="Positions (kW, + = bought) and their cost (USD)", title_justify="left")
    for column in ("party", "at", "kW", "cost"):
        table.add_column(column)
    for p in positions:
        if p["interval"]["start"].startswith(hour.strftime("%Y-%m-%dT%H")) and p["party_id"] != OPERATOR["id"]:
            table.add_row(p["party_id"], p["location_id"], p["quantity"], p["cost"])
    console.print(table)

    for reading in meter_readings(hour):
        if http.post("/v1/deliveries", json=reading).status_code not in (200, 201):
            raise RuntimeError(f"meter reading refused: {reading}")
    settled = http.post(
        f"/v1/markets/{market_id}/settle",
        json={"start": hour.isoformat(), "end": (hour + timedelta(hours=1)).isoformat()},
    )
    if settled.status_code != 200:
        raise RuntimeError(f"settlement failed: {settled.text}")
    bill = settled.json()
    table = Table(
        title="Settlement: forward trades at their price, metered deviations at the spot price", title_justify="left"
    )
    for column in ("party", "kind", "kW", "price", "USD"):
        table.add_column(column)
    for line in bill["lines"]:
        table.add_row(line["party_id"], line["kind"], line["quantity"], line["price"], line["amount"])
    console.print(table)
    totals = ", ".join(f"{party} {Decimal(total):+.2f}" for party, total in sorted(bill["totals"].items()))
    console.print(f"  bills for the hour (USD, + = pays): {totals}")
