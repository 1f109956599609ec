"""`tgw envelope compute`: compute and store the operating envelopes of a market's connection points.

The same computation as POST /v1/markets/{id}/envelopes, for an operator at a shell or a cron job after each
clearing. Envelopes go through the ingestor like every other write (one batch, all or nothing); a running gateway
picks them up from the message log and shows them to the 2030.5 devices at those points. ``--json`` prints
machine-readable output on stdout; errors are one line on stderr with exit 1.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from gateway.cli_common import DatabaseOption, JsonOption, console, err_console, fail, instant
from gateway.config import DEFAULT_DATABASE_URL
from gateway.overrides.envelopes import Sharing

envelope_app = typer.Typer(help="Dynamic operating envelopes of a market's network.", no_args_is_help=True)


def _open(database_url: str) -> Any:
    from gateway.store import Store, StoreError

    try:
        return Store(database_url)
    except StoreError as exc:
        fail(f"{exc}\n  check --database-url / TGW_DATABASE_URL")


@envelope_app.command("compute")
def compute(
    market_id: Annotated[str, typer.Argument(help="the market's id")],
    start: Annotated[str, typer.Option(help="start of the (first) cleared interval (ISO 8601 with offset)")],
    end: Annotated[str | None, typer.Option(help="end of the last interval (ISO 8601); default: one interval")] = None,
    sharing: Annotated[Sharing, typer.Option(help="how a constrained edge's headroom is shared")] = Sharing.EQUAL,
    database_url: DatabaseOption = DEFAULT_DATABASE_URL,
    as_json: JsonOption = False,
) -> None:
    """Compute the envelopes of every connection point from the network and the cleared positions, and store them."""
    from gateway.ingest import Ingestor, Rejected
    from gateway.market.grid import ENVELOPE_PROTOCOL, EnvelopeError, plan_envelopes
    from gateway.market.runs import MarketError, MarketRunner
    from gateway.model import Envelope

    first = instant(start, "--start")
    last = instant(end, "--end") if end is not None else None
    store = _open(database_url)
    try:
        market = MarketRunner(store).market(market_id)
        plan = plan_envelopes(store, market, first, last, sharing)
        stored = Ingestor(store).ingest_sync(
            [Envelope(payload=e) for e in plan.envelopes], protocol=ENVELOPE_PROTOCOL, peer=market.id
        )
    except (EnvelopeError, MarketError, Rejected) as exc:
        fail(str(exc))
    finally:
        store.close()
    new = sum(not m.duplicate for m in stored)
    if as_json:
        out = {
            "envelopes": [m.envelope.payload.model_dump(mode="json") for m in stored],
            "stored": new,
            "points": plan.points,
            "overloaded": plan.overloaded,
            "unbounded": plan.unbounded,
        }
        print(json.dumps(out, indent=2))
        return
    table = Table(title=f"Operating envelopes of {market_id}", title_justify="left")
    for column in ("connection point", "interval (UTC)", "import kW", "export kW"):
        table.add_column(column)
    for envelope in plan.envelopes:
        for period in envelope.periods:
            table.add_row(
                envelope.location_id,
                period.span.start.strftime("%Y-%m-%d %H:%M"),
                "-" if period.import_limit_kw is None else str(period.import_limit_kw),
                "-" if period.export_limit_kw is None else str(period.export_limit_kw),
            )
    console.print(table)
    console.print(f"{new} stored as new, {len(plan.envelopes) - new} unchanged")
    for at, directions in plan.overloaded.items():
        for direction, edges in directions.items():
            err_console.print(f"warning: {at}: {direction} over the rating of {', '.join(edges)} without any envelope")
    if plan.unbounded:
        err_console.print(f"note: no rated edge above {', '.join(plan.unbounded)}: no envelope there")
