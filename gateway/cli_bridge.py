"""`tgw bridge openadr2b`: register with a utility's OpenADR 2.0b VTN as a VEN for one party, until Ctrl-C.

Every event the utility sends is printed with what it became in the store and what the party answered. Mistakes in
what was asked (an unknown party, a half-given certificate, an unreadable mapping file) exit 2 with one line; a
VTN that cannot be reached or does not register the VEN exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from gateway.config import DEFAULT_DATABASE_URL

if TYPE_CHECKING:
    from gateway.protocols.openadr2b.bridge import Received, VenBridge

bridge_app = typer.Typer(
    help="Northbound bridges: the gateway as a client of a utility's server, for one party.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)


@bridge_app.callback()
def _bridges() -> None:
    """Northbound bridges: the gateway as a client of a utility's server, for one party."""
    # A callback keeps `bridge` a group even with one bridge, so the command stays `tgw bridge openadr2b`.


def _fail(message: str, code: int) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _show(notice: Received) -> None:
    colour = "green" if notice.answer.value == "optIn" else "yellow"
    made = ", ".join(notice.object_ids) or "nothing"
    note = f" [dim]({escape(notice.note)})[/]" if notice.note else ""
    console.print(
        f"event [bold]{escape(notice.event_id)}[/] v{notice.modification_number} {escape(notice.status)}"
        f" -> {escape(made)}; answered [{colour}]{notice.answer.value}[/]{note}",
        highlight=False,
    )


async def _run(bridge: VenBridge) -> None:
    from gateway.protocols.openadr2b.bridge import BridgeError

    console.print(f"registering at {escape(bridge.vtn_url)} as VEN '{escape(bridge.ven_name)}'...", highlight=False)
    try:
        await bridge.start()
    except BridgeError as exc:
        _fail(str(exc), 1)
    console.print(
        f"[bold]registered[/] at {escape(bridge.vtn_url)} as venID {escape(str(bridge.client.ven_id))}"
        f" (VTN {escape(bridge.peer)}) for party {escape(bridge.party_id)}; Ctrl-C to stop",
        highlight=False,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows' event loop
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await bridge.stop()
        console.print("stopped")


@bridge_app.command("openadr2b")
def openadr2b(
    vtn_url: Annotated[str, typer.Option(help="The VTN's base URL, e.g. https://vtn.example.com/OpenADR2/Simple/2.0b")],
    ven_name: Annotated[str, typer.Option(help="The name the VEN registers under (oadrVenName).")],
    party: Annotated[str, typer.Option(help="The canonical party the VEN stands for (it must exist in the store).")],
    cert: Annotated[Path | None, typer.Option(help="The VEN's certificate (PEM): mutual TLS and signatures.")] = None,
    key: Annotated[Path | None, typer.Option(help="The certificate's private key (PEM).")] = None,
    ca_file: Annotated[Path | None, typer.Option(help="CA bundle the VTN's certificate is checked against.")] = None,
    vtn_fingerprint: Annotated[
        str | None, typer.Option(help="The VTN certificate's fingerprint: its signed messages are checked against it.")
    ] = None,
    ven_id: Annotated[str | None, typer.Option(help="A venID the utility assigned beforehand.")] = None,
    database_url: Annotated[
        str, typer.Option(envvar="TGW_DATABASE_URL", help="sqlite:///path.db or postgresql://user:pw@host/db")
    ] = DEFAULT_DATABASE_URL,
    mapping: Annotated[
        Path | None, typer.Option(help="Mapping table (default: the installed mappings/openadr2b.yaml).")
    ] = None,
    poll_seconds: Annotated[
        float | None, typer.Option(min=1, help="Poll this often instead of at the frequency the VTN asks for.")
    ] = None,
    override_check: Annotated[
        float, typer.Option(min=0, help="Seconds between reads of the store for new opt-outs (0: never).")
    ] = 5.0,
    log_level: Annotated[str, typer.Option(envvar="TGW_LOG_LEVEL")] = "warning",
) -> None:
    """Register with a utility's OpenADR 2.0b VTN as a VEN for PARTY: its events become canonical controls or
    price tenders (per the program's mapping), the party's opt-outs are its answers, its deliveries its reports."""
    from gateway.ingest import Ingestor
    from gateway.protocols.openadr2b.bridge import BridgeError, VenBridge
    from gateway.protocols.openadr2b.table import TableError, load_table
    from gateway.store import Store, StoreError

    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        _fail(f"--log-level {log_level}: use debug, info, warning, error or critical", 2)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("openleadr").setLevel(log_level.upper())  # openleadr sets itself to INFO on import
    if (cert is None) != (key is None):
        _fail("give both --cert and --key (or neither)", 2)
    if cert is not None and ca_file is None:
        _fail("--cert needs --ca-file: the VTN's certificate is checked against it", 2)
    for option, path in (("--cert", cert), ("--key", key), ("--ca-file", ca_file), ("--mapping", mapping)):
        if path is not None and not path.is_file():
            _fail(f"{option} {path}: no such file", 2)
    try:
        table = load_table(mapping)
    except TableError as exc:
        _fail(str(exc), 2)
    try:
        store = Store(database_url)
    except StoreError as exc:
        _fail(f"{exc} (check --database-url / TGW_DATABASE_URL)", 1)
    try:
        bridge = VenBridge(
            store,
            Ingestor(store),
            vtn_url=vtn_url,
            ven_name=ven_name,
            party_id=party,
            table=table,
            cert=str(cert) if cert else None,
            key=str(key) if key else None,
            ca_file=str(ca_file) if ca_file else None,
            vtn_fingerprint=vtn_fingerprint,
            ven_id=ven_id,
            poll_seconds=poll_seconds,
            override_check_seconds=override_check or None,
        )
    except BridgeError as exc:
        store.close()
        _fail(str(exc), 2)
    bridge.listeners.append(_show)
    try:
        asyncio.run(_run(bridge))
    finally:
        store.close()
