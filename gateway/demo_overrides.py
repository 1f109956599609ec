"""The override part of `tgw demo`: Ben's VEN opted out of the evening DR event, and the settlement shows what that
costs him. The DR program is priced by the feeder's market (the override policy below): Ben was expected to shed
3 kW while the event ran, and the program charges 0.50 USD per kWh not shed.

Where his meter covers the hour, the market already settles what he really used (his subscription block at its
price, the rest at spot), so the override adds only the penalty; where no reading has arrived yet, the 3 kW he
kept using are estimated at the spot price until the meter says otherwise.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console
from rich.table import Table

DR_PROGRAM = "valley-summer-dr"
EXPECTED_KW = "3"
PENALTY = "0.50"


def write_policy(workdir: Path, market_id: str) -> Path:
    """The demo's override policy: the DR program settles in the feeder's market, with Ben's enrolment terms."""
    path = workdir / "overrides.yaml"
    path.write_text(
        "programs:\n"
        f"  {DR_PROGRAM}:\n"
        f"    market_id: {market_id}\n"
        f'    response_kw: {{ben: "{EXPECTED_KW}"}}\n'
        f'    penalty_per_kwh: "{PENALTY}"\n'
        "markets: {}\n",
        encoding="utf-8",
    )
    return path


def override_cost(http: httpx.Client, console: Console, market_id: str, zone: str, event_start: datetime) -> None:
    """Clear the event's first hour too (early), then settle both event hours and show Ben's override lines."""
    start, end = event_start, event_start + timedelta(hours=2)
    cleared = http.post(f"/v1/markets/{market_id}/clear", json={"interval_start": start.isoformat(), "early": True})
    if cleared.status_code != 201:
        raise RuntimeError(f"the market run was refused: {cleared.text}")
    settled = http.post(f"/v1/markets/{market_id}/settle", json={"start": start.isoformat(), "end": end.isoformat()})
    if settled.status_code != 200:
        raise RuntimeError(f"settlement failed: {settled.text}")
    bill = settled.json()
    override_lines = [
        line for line in bill["lines"] if line["party_id"] == "ben" and line["kind"] in ("deviation", "penalty")
    ]
    local = ZoneInfo(zone)
    console.print(
        f"\n[bold]What Ben's override costs[/] (program {DR_PROGRAM}: {EXPECTED_KW} kW expected while the event"
        f" runs, {PENALTY} USD/kWh penalty; settled in {market_id})"
    )
    table = Table(title="Ben's settlement lines for the event hours", title_justify="left")
    for column in ("hour", "kind", "why", "kW", "price", "USD"):
        table.add_column(column)
    for line in sorted(override_lines, key=lambda x: (x["interval"]["start"], x["kind"])):
        hour = datetime.fromisoformat(line["interval"]["start"]).astimezone(local)
        if line["kind"] == "penalty":
            why = "override penalty"
        elif _is_override(line):
            why = "override, no reading yet: estimated at spot"
        else:
            why = "metered use beyond his block, at spot"
        table.add_row(f"{hour:%H:%M}", line["kind"], why, line["quantity"], line["price"], line["amount"])
    console.print(table)
    cost = sum(
        (Decimal(line["amount"]) for line in override_lines if line["kind"] == "penalty" or _is_override(line)),
        Decimal(0),
    )
    console.print(
        f"  the override costs Ben [bold]{cost:.2f} USD[/] for the event; the customer decided, and pays the"
        " difference (withdrawing the override before settlement would reverse these lines)"
    )


def _is_override(line: dict[str, Any]) -> bool:
    """An override's lines reference it first; the VTN names an event optOut ``oadr-optout.<ven>.<event>``."""
    return any(str(ref).startswith("oadr-optout.") for ref in line["reference_ids"])
