"""`tgw conformance`: list the suites and their cases, and run a suite against a vendor's device or server.

The contract (DESIGN.md): `run SUITE --target T --report-dir DIR` writes JUnit XML, JSON and HTML into DIR and
exits 0 only when every required case passed. Usage errors (an unknown suite or case id) exit 2 with one line
on stderr; a DUT that fails exits 1; the run itself never dies on a misbehaving DUT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from conformance.framework import SUITES, Case, CaseResult, Outcome, Target, get_suite
from conformance.runner import run_suite

conformance_app = typer.Typer(
    help="Conformance suites a vendor runs against their own device or server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

_STYLE = {Outcome.PASSED: "green", Outcome.FAILED: "bold red", Outcome.SKIPPED: "yellow"}


def _usage_error(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


@conformance_app.command("list")
def list_cases(
    suite: Annotated[str | None, typer.Argument(help="A suite name; without it, the suites.")] = None,
) -> None:
    """List the suites, or one suite's cases (id, severity, rule, title)."""
    if suite is None:
        table = Table("Suite", "Cases", "Title")
        for entry in SUITES.values():
            table.add_row(entry.name, str(len(entry.cases())), entry.title)
        console.print(table)
        return
    try:
        cases = get_suite(suite).cases()
    except KeyError as exc:
        raise _usage_error(str(exc.args[0])) from None
    table = Table("ID", "Severity", "Rule", "Title", title=suite)
    for item in cases:
        table.add_row(item.id, item.severity.value, item.rule, item.title)
    console.print(table)


@conformance_app.command("run")
def run(
    suite: Annotated[str, typer.Argument(help="The suite to run (see `tgw conformance list`).")],
    target: Annotated[
        str,
        typer.Option(
            help="Base URL of the DUT (cim-model: a model file, folder or zip), e.g. http://host:8080/OpenADR2/Simple/2.0b."
        ),
    ],
    report_dir: Annotated[Path, typer.Option(help="Folder for <suite>.xml (JUnit), .json and .html.")] = Path(
        "conformance-reports"
    ),
    cert: Annotated[str | None, typer.Option(help="Client certificate (PEM) for mutual TLS.")] = None,
    key: Annotated[str | None, typer.Option(help="Private key (PEM) of --cert.")] = None,
    ca: Annotated[str | None, typer.Option(help="CA bundle (PEM) that signed the DUT's certificate.")] = None,
    only: Annotated[str | None, typer.Option(help="Comma-separated case ids to run (default: all).")] = None,
    ven_name: Annotated[str, typer.Option(help="The harness VEN's name (VTN suites).")] = "tgw-conformance",
    expect_events: Annotated[
        bool, typer.Option(help="The DUT has events for the harness: fail, rather than skip, cases needing one.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer.")] = 10.0,
    pin: Annotated[str | None, typer.Option(help="The PIN provisioned for the device (2030.5 server suite).")] = None,
    alt_cert: Annotated[
        str | None, typer.Option(help="A second client certificate the DUT does not know (2030.5); must be refused.")
    ] = None,
    alt_key: Annotated[str | None, typer.Option(help="Private key (PEM) of --alt-cert.")] = None,
    listen: Annotated[
        str | None, typer.Option(help="HOST:PORT of the harness's HTTPS notification listener (2030.5).")
    ] = None,
    listen_cert: Annotated[str | None, typer.Option(help="The listener's certificate (default: --cert).")] = None,
    listen_key: Annotated[str | None, typer.Option(help="The listener's key (default: --key).")] = None,
    expect_notification: Annotated[
        bool, typer.Option(help="2030.5: the operator changes the device's controls while the harness waits.")
    ] = False,
    device_wait: Annotated[
        float | None, typer.Option(help="ieee2030_5-client: seconds to wait for the device to appear (120).")
    ] = None,
    pace: Annotated[int | None, typer.Option(help="ieee2030_5-client: seconds per scenario unit (10).")] = None,
    poll_rate: Annotated[int | None, typer.Option(help="ieee2030_5-client: the pollRate to serve, s (5).")] = None,
    grace: Annotated[float | None, typer.Option(help="ieee2030_5-client: s a Response may be late (5).")] = None,
    time_offset: Annotated[
        int | None, typer.Option(help="ieee2030_5-client: s the served Time is off the wall clock (-5000).")
    ] = None,
    lfdi: Annotated[str | None, typer.Option(help="ieee2030_5-client: the expected device's LFDI.")] = None,
    token: Annotated[str | None, typer.Option(help="ei-tender: the harness party's bearer token.")] = None,
    party: Annotated[str | None, typer.Option(help="ei-tender: the party the harness plays.")] = None,
    market: Annotated[str | None, typer.Option(help="ei-tender: the market the harness tenders in.")] = None,
    location: Annotated[str | None, typer.Option(help="ei-tender: the location the harness tenders at.")] = None,
    alt_party: Annotated[str | None, typer.Option(help="ei-tender: a second party (--alt-token/--alt-cert).")] = None,
    alt_token: Annotated[str | None, typer.Option(help="ei-tender: the second party's bearer token.")] = None,
    wire_format: Annotated[str, typer.Option("--format", help="ei-tender: xml, json or both.")] = "both",
    ven_wait: Annotated[float | None, typer.Option(help="openadr2b-ven: seconds to wait for the VEN (60).")] = None,
    ven_id: Annotated[str | None, typer.Option(help="openadr2b-ven: the venID to assign the VEN.")] = None,
    expect_ven_name: Annotated[str | None, typer.Option(help="openadr2b-ven: the VEN's expected venName.")] = None,
    poll_freq: Annotated[int | None, typer.Option(help="openadr2b-ven: the poll interval to ask for, s (10).")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", help="NAME=VALUE, a suite's further target option (repeatable).")
    ] = None,
) -> None:
    """Run SUITE against --target with live progress; exit 0 only when every required case passed."""
    if (cert is None) != (key is None):
        raise _usage_error("--cert and --key go together")
    if alt_cert is not None and alt_key is None:
        raise _usage_error("--alt-cert needs --alt-key")
    options = {"ven_name": ven_name, "expect_events": "true" if expect_events else ""}
    extra = {"pin": pin, "alt_cert": alt_cert, "alt_key": alt_key, "listen": listen}
    extra |= {"listen_cert": listen_cert, "listen_key": listen_key}
    options |= {name: value for name, value in extra.items() if value is not None}
    options["expect_notification"] = "true" if expect_notification else ""
    sep2 = {"device_wait": device_wait, "pace": pace, "poll_rate": poll_rate, "grace": grace, "lfdi": lfdi}
    options |= {name: str(value) for name, value in (sep2 | {"time_offset": time_offset}).items() if value is not None}
    tender = {"token": token, "party": party, "market": market, "location": location, "alt_party": alt_party}
    options |= {name: value for name, value in (tender | {"alt_token": alt_token}).items() if value is not None}
    options["format"] = wire_format
    ven = {"ven_wait": ven_wait, "ven_id": ven_id, "expect_ven_name": expect_ven_name, "poll_freq": poll_freq}
    options |= {name: str(value) for name, value in ven.items() if value is not None}
    for item in option or []:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise _usage_error(f"--option {item!r}: expected NAME=VALUE")
        options[name.strip()] = value
    dut = Target(target, cert=cert, key=key, ca=ca, timeout=timeout, options=options)
    ids = [i for i in only.split(",") if i.strip()] if only else None
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task(suite, total=None)

        def collected(cases: list[Case]) -> None:
            progress.update(task, total=len(cases))

        def finished(result: CaseResult) -> None:
            style = _STYLE[result.outcome]
            reason = f": {result.reason}" if result.outcome is not Outcome.PASSED else ""
            progress.console.print(
                f"[{style}]{result.outcome.value:>7}[/] {result.id} ({result.severity.value}) {result.title}{reason}",
                highlight=False,
                soft_wrap=True,
            )
            progress.advance(task)

        try:
            outcome = run_suite(suite, dut, report_dir, ids, on_collected=collected, on_result=finished)
        except KeyError as exc:
            raise _usage_error(str(exc.args[0])) from None
    style = "bold green" if outcome.ok else "bold red"
    console.print(f"[{style}]{outcome.summary()}[/]", highlight=False)
    console.print(f"reports: {', '.join(outcome.reports.values())}", highlight=False, soft_wrap=True)
    raise typer.Exit(0 if outcome.ok else 1)
