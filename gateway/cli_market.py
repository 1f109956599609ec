"""`tgw market clear | settle | results`: operate the markets in a store from the command line.

The same runner and settlement as the REST API and the periodic call auction, for an operator at a shell or a
cron job: clear an interval (or everything whose gate has closed), settle a window, read results. ``--json``
prints machine-readable output on stdout; progress and errors go to stderr.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from gateway.cli_common import DatabaseOption, JsonOption, console, err_console, fail, instant
from gateway.config import DEFAULT_DATABASE_URL

market_app = typer.Typer(help="Markets in a store: run call auctions, settle, read results.", no_args_is_help=True)


def _open(database_url: str) -> Any:
    from gateway.store import Store, StoreError

    try:
        return Store(database_url)
    except StoreError as exc:
        fail(f"{exc}\n  check --database-url / TGW_DATABASE_URL")


@market_app.command("clear")
def clear_market(
    market_id: Annotated[str, typer.Argument(help="the market's id")],
    interval: Annotated[
        str | None, typer.Option(help="start of the interval to clear (ISO 8601); default: every closed gate")
    ] = None,
    early: Annotated[bool, typer.Option(help="clear before the gate closes")] = False,
    database_url: DatabaseOption = DEFAULT_DATABASE_URL,
    as_json: JsonOption = False,
) -> None:
    """Run the call auction of one interval, or of every interval of the last 24 h whose gate has closed."""
    from gateway.market.runs import MarketError, MarketRunner
    from gateway.model import utc_now

    store = _open(database_url)
    runner = MarketRunner(store)
    try:
        with err_console.status(f"clearing {market_id}"):
            if interval is not None:
                results = [runner.clear_interval(market_id, instant(interval, "--interval"), early=early)]
            else:
                now = utc_now()
                market = runner.market(market_id)
                results = [runner.clear_interval(market_id, i.start, now=now) for i in runner.due(market, now)]
    except MarketError as exc:
        fail(str(exc))
    finally:
        store.close()
    if as_json:
        out = [
            {
                "created": r.created,
                "clearing": r.clearing.model_dump(mode="json"),
                "transaction_ids": [t.id for t in r.transactions],
                "skipped": r.skipped,
            }
            for r in results
        ]
        print(json.dumps(out, indent=2))
        return
    if not results:
        console.print(f"nothing due in {market_id}: no closed gate left uncleared in the last 24 h")
        return
    table = Table(title=f"Market runs of {market_id}", title_justify="left")
    for column in ("interval (UTC)", "new", "type", "method", "price", "kW cleared", "trades", "binding"):
        table.add_column(column)
    for r in results:
        c = r.clearing
        table.add_row(
            c.interval.start.strftime("%Y-%m-%d %H:%M"),
            "yes" if r.created else "no (stored)",
            c.type.value,
            c.method.value,
            str(c.price),
            str(c.cleared_quantity),
            str(len(r.transactions)),
            ", ".join(c.binding_location_ids) or "-",
        )
    console.print(table)


@market_app.command("settle")
def settle_market(
    market_id: Annotated[str, typer.Argument(help="the market's id")],
    start: Annotated[str, typer.Option(help="first interval start (ISO 8601, inclusive)")],
    end: Annotated[str, typer.Option(help="end of the window (ISO 8601, exclusive)")],
    database_url: DatabaseOption = DEFAULT_DATABASE_URL,
    override_mappings: Annotated[
        str | None,
        typer.Option(
            envvar="TGW_OVERRIDE_MAPPINGS", help="override policy file (program markets, penalties); default: installed"
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Settle metered deliveries against positions, and the overrides that count, for the intervals in [start, end)
    and store the lines."""
    from gateway.market.billing import settle_window
    from gateway.market.runs import MarketError
    from gateway.overrides.policy import load_policy

    try:
        policy = load_policy(override_mappings)
    except ValueError as exc:
        fail(str(exc))
    store = _open(database_url)
    try:
        report, stored = settle_window(store, market_id, instant(start, "--start"), instant(end, "--end"), policy)
    except (MarketError, ValueError) as exc:
        fail(str(exc))
    finally:
        store.close()
    new = sum(not m.duplicate for m in stored)
    if as_json:
        print(
            json.dumps(
                {
                    "lines": [line.model_dump(mode="json") for line in report.lines],
                    "totals": {party: str(total) for party, total in report.totals.items()},
                    "stored": new,
                    "missing_deliveries": [
                        {"party_id": p, "location_id": loc, "interval_start": i.start.isoformat()}
                        for p, loc, i in report.missing_deliveries
                    ],
                    "unpriced": [
                        {"party_id": p, "location_id": loc, "interval_start": i.start.isoformat()}
                        for p, loc, i in report.unpriced
                    ],
                    "unquantified_overrides": [
                        {"override_id": o, "reason": reason} for o, reason in report.unquantified
                    ],
                },
                indent=2,
            )
        )
        return
    table = Table(title=f"Settlement of {market_id}", title_justify="left")
    for column in ("party", "location", "interval (UTC)", "kind", "kW", "price", "amount"):
        table.add_column(column)
    for line in report.lines:
        table.add_row(
            line.party_id,
            line.location_id,
            line.interval.start.strftime("%Y-%m-%d %H:%M"),
            line.kind.value,
            str(line.quantity),
            str(line.price),
            str(line.amount),
        )
    console.print(table)
    for party, total in sorted(report.totals.items()):
        console.print(f"  {party}: {total} {report.lines[0].currency if report.lines else ''} (+ = pays)")
    console.print(
        f"{new} new lines stored; {len(report.missing_deliveries)} positions without meter data;"
        f" {len(report.unpriced)} readings or override deviations in uncleared intervals"
    )
    for override_id, reason in report.unquantified:
        err_console.print(f"  override {override_id} is not charged: {reason}", highlight=False)


@market_app.command("results")
def results(
    market_id: Annotated[str, typer.Argument(help="the market's id")],
    database_url: DatabaseOption = DEFAULT_DATABASE_URL,
    as_json: JsonOption = False,
) -> None:
    """Stored clearing results of a market, in time order."""
    from gateway.market.runs import MarketError, MarketRunner

    store = _open(database_url)
    try:
        runner = MarketRunner(store)
        runner.market(market_id)
        found = runner.clearings(market_id)
    except MarketError as exc:
        fail(str(exc))
    finally:
        store.close()
    if as_json:
        print(json.dumps([c.model_dump(mode="json") for c in found], indent=2))
        return
    table = Table(title=f"Clearings of {market_id}", title_justify="left")
    for column in ("interval (UTC)", "type", "method", "price", "kW cleared", "tenders", "binding"):
        table.add_column(column)
    for c in found:
        table.add_row(
            c.interval.start.strftime("%Y-%m-%d %H:%M"),
            c.type.value,
            c.method.value,
            str(c.price),
            str(c.cleared_quantity),
            str(c.tender_count),
            ", ".join(c.binding_location_ids) or "-",
        )
    console.print(table)
