"""The TeMIX part of `tgw demo`: Maple Community Solar trades through the Energy Interoperation service in CTS
JSON, as a TeMIX party's own software would: it tenders its battery-backed evening output into the peak hour,
and after the market run asks for its position (eiRequestPosition -> eiReplyPosition).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from rich.console import Console

from gateway.model import Tender
from gateway.protocols.ei import json_codec
from gateway.protocols.ei.identity import token_hash
from gateway.protocols.ei.messages import EiMessage, Payload, PositionQuery

PARTY = "maple-solar"
TOKEN = "demo-token-maple-solar"  # a demo credential; real parties get theirs from the operator
IDENTITIES = {"ei-token-sha256": token_hash(TOKEN)}


def _post(http: httpx.Client, message: EiMessage) -> EiMessage:
    response = http.post(
        f"/ei/v1/{message.payload.value}",
        content=json_codec.encode(message),
        headers={"content-type": "application/json", "authorization": f"Bearer {TOKEN}"},
    )
    answer = json_codec.decode(response.content)
    if response.status_code != 200:
        description = answer.response.description if answer.response else response.text
        raise RuntimeError(f"EI {message.payload.value} refused ({response.status_code}): {description}")
    return answer


def tender_peak(http: httpx.Client, console: Console, market: dict[str, Any], hour: datetime) -> None:
    """An evening sell tender from the solar array's battery, sent as a CTS JSON eiCreateTender."""
    offer = Tender.model_validate(
        {
            "id": "solar-evening-ei",
            "market_id": market["id"],
            "party_id": PARTY,
            "side": "sell",
            "location_id": "SP-solar",
            "time_zone": market["time_zone"],
            "rows": [{"start": hour, "quantity": "50", "price": "0.30"}],
        }
    )
    request = EiMessage(
        Payload.CREATE_TENDER,
        request_id=str(uuid.uuid4()),
        party_id=PARTY,
        counterparty_id=market["operator_id"],
        tenders=[offer],
    )
    answer = _post(http, request)
    code = answer.response.code if answer.response else "?"
    console.print(
        f"[green]✓[/] TeMIX party {PARTY} tenders 50 kW at 0.30 for the peak hour over /ei/v1 (CTS JSON)"
        f" → {answer.payload.value} {int(code)}"
    )


def report_position(http: httpx.Client, console: Console, market: dict[str, Any], hour: datetime) -> None:
    query = PositionQuery(market_id=market["id"], start=hour, end=hour + timedelta(hours=1))
    answer = _post(http, EiMessage(Payload.REQUEST_POSITION, request_id=str(uuid.uuid4()), party_id=PARTY, query=query))
    trades = http.get("/v1/transactions", params={"party_id": PARTY, "market_id": market["id"]}).json()
    for trade in trades:
        console.print(
            f"  {PARTY}'s transaction: {trade['side']} {trade['quantity']} kW at {trade['price']} USD/kWh"
            f" (tender {trade['tender_id']})"
        )
    for position in answer.positions:
        console.print(
            f"  {PARTY} asks for its position (eiRequestPosition) → eiReplyPosition: {position.quantity} kW at"
            f" {position.location_id}, cost {position.cost} {position.currency}"
        )
