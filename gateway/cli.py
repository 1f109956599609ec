"""`tgw`: the command line of the Transactive Gateway.

Errors a person can act on are printed as one line on stderr with a non-zero exit, never a traceback;
scripts rely on the contracts in DESIGN.md (translate prints to stdout, exits non-zero on bad input).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from gateway import __version__
from gateway.config import DEFAULT_DATABASE_URL, Settings

app = typer.Typer(
    name="tgw",
    help="Transactive Gateway: OpenADR, IEEE 2030.5, EI/TeMIX and CIM through one canonical transactive model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def _register_subcommands() -> None:
    from gateway.cli_cim import cim_app

    app.add_typer(cim_app, name="cim")
    from gateway.cli_market import market_app

    app.add_typer(market_app, name="market")
    from gateway.cli_envelope import envelope_app

    app.add_typer(envelope_app, name="envelope")
    from gateway.cli_override import override_app

    app.add_typer(override_app, name="override")
    from gateway.cli_bridge import bridge_app

    app.add_typer(bridge_app, name="bridge")
    from gateway.cli_conformance import conformance_app

    app.add_typer(conformance_app, name="conformance")


_register_subcommands()


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="TGW_HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="TGW_PORT", min=1, max=65535, help="TCP port.")] = 8080,
    database_url: Annotated[
        str, typer.Option(envvar="TGW_DATABASE_URL", help="sqlite:///path.db or postgresql://user:pw@host/db")
    ] = DEFAULT_DATABASE_URL,
    mqtt_url: Annotated[
        str | None, typer.Option(envvar="TGW_MQTT_URL", help="mqtt://host:1883 (none: run without a broker)")
    ] = None,
    log_level: Annotated[str, typer.Option(envvar="TGW_LOG_LEVEL")] = "info",
    ei_cert_header: Annotated[
        str | None,
        typer.Option(
            envvar="TGW_EI_CERT_HEADER",
            help="Header where a trusted TLS proxy puts the client certificate's SHA-256 (EI identity).",
        ),
    ] = None,
    market_tick: Annotated[
        float,
        typer.Option(
            envvar="TGW_MARKET_TICK", min=0, help="Seconds between call-auction checks for closed gates (0: off)."
        ),
    ] = 15.0,
    tls_cert: Annotated[
        str | None, typer.Option(envvar="TGW_TLS_CERT", help="Serve HTTPS with this certificate (PEM).")
    ] = None,
    tls_key: Annotated[
        str | None, typer.Option(envvar="TGW_TLS_KEY", help="The certificate's private key (PEM).")
    ] = None,
    tls_client_ca: Annotated[
        str | None,
        typer.Option(
            envvar="TGW_TLS_CLIENT_CA",
            help="CA bundle that signs client certificates: clients must present one (mutual TLS, VEN identity).",
        ),
    ] = None,
    openadr_cert_header: Annotated[
        str | None,
        typer.Option(
            envvar="TGW_OPENADR_CERT_HEADER",
            help="Header where a trusted TLS proxy puts the client certificate's SHA-256 (OpenADR VEN identity).",
        ),
    ] = None,
    openadr_insecure: Annotated[
        bool,
        typer.Option(
            envvar="TGW_OPENADR_INSECURE",
            help="Let OpenADR VENs name themselves without a client certificate (demos on loopback only).",
        ),
    ] = False,
    openadr_mappings: Annotated[
        str | None,
        typer.Option(
            envvar="TGW_OPENADR_MAPPINGS",
            help="OpenADR 2.0b mapping file (signals, programs, VTN settings); default: the installed one.",
        ),
    ] = None,
    openadr_peer_ca: Annotated[
        str | None,
        typer.Option(
            envvar="TGW_OPENADR_PEER_CA",
            help="CA bundle trusted for push VENs' HTTPS endpoints (the VTN presents its --tls-cert to them).",
        ),
    ] = None,
    openadr_require_signatures: Annotated[
        bool,
        typer.Option(
            envvar="TGW_OPENADR_REQUIRE_SIGNATURES",
            help="Refuse unsigned OpenADR requests (XML signature with ReplayProtect) from every VEN.",
        ),
    ] = False,
    ieee2030_5_mappings: Annotated[
        str | None,
        typer.Option(
            "--ieee2030-5-mappings",
            envvar="TGW_IEEE2030_5_MAPPINGS",
            help="IEEE 2030.5 mapping file (control modes, server settings, programs, tariffs); default: installed.",
        ),
    ] = None,
    override_mappings: Annotated[
        str | None,
        typer.Option(
            "--override-mappings",
            envvar="TGW_OVERRIDE_MAPPINGS",
            help="Override policy file (program markets, expected responses, penalties, hard programs);"
            " default: installed.",
        ),
    ] = None,
    ieee2030_5_cert_header: Annotated[
        str | None,
        typer.Option(
            "--ieee2030-5-cert-header",
            envvar="TGW_IEEE2030_5_CERT_HEADER",
            help="Header where a trusted TLS proxy forwards the device certificate (escaped PEM or SHA-256).",
        ),
    ] = None,
    ieee2030_5_notify_ca: Annotated[
        str | None,
        typer.Option(
            "--ieee2030-5-notify-ca",
            envvar="TGW_IEEE2030_5_NOTIFY_CA",
            help="CA bundle trusted for devices' HTTPS notification listeners (the server presents --tls-cert).",
        ),
    ] = None,
) -> None:
    """Run the gateway: REST API (docs at /docs), canonical store, the periodic call auction of every
    auto-clearing market, and the MQTT bridge when a broker is given."""
    import uvicorn

    from gateway.api import create_app
    from gateway.store import Store, StoreError, redact

    settings = Settings(
        host=host,
        port=port,
        database_url=database_url,
        mqtt_url=mqtt_url or None,
        market_tick_seconds=market_tick,
        ei_cert_header=ei_cert_header or None,
        openadr_cert_header=openadr_cert_header or None,
        openadr_insecure=openadr_insecure,
        openadr_mappings=openadr_mappings,
        openadr_peer_ca=openadr_peer_ca,
        openadr_sign_cert=tls_cert,
        openadr_sign_key=tls_key,
        openadr_require_signatures=openadr_require_signatures,
        ieee2030_5_mappings=ieee2030_5_mappings,
        override_mappings=override_mappings,
        ieee2030_5_cert_header=ieee2030_5_cert_header or None,
        ieee2030_5_notify_ca=ieee2030_5_notify_ca,
    )
    if bool(tls_cert) != bool(tls_key):
        fail("give both --tls-cert and --tls-key (or neither)")
    if tls_client_ca and not tls_cert:
        fail("--tls-client-ca needs --tls-cert and --tls-key: client certificates are only asked for over HTTPS")
    ecdsa = True
    if tls_cert:
        from gateway.protocols.ieee2030_5.suites import is_ecdsa_certificate

        try:
            ecdsa = is_ecdsa_certificate(tls_cert)
        except (OSError, ValueError) as exc:
            fail(f"cannot read the certificate in --tls-cert {tls_cert}: {exc}")
    broker = "none (no broker configured)"
    if settings.mqtt_url:
        from gateway.protocols.mqtt import parse_mqtt_url

        try:
            broker = parse_mqtt_url(settings.mqtt_url).redacted_url
        except ValueError as exc:
            fail(str(exc))
    if openadr_mappings:
        from pathlib import Path

        from gateway.protocols.openadr2b.table import TableError, load_table

        try:
            load_table(Path(openadr_mappings))  # a broken mapping file fails here, with the entry at fault
        except TableError as exc:
            fail(str(exc))
    if ieee2030_5_mappings:
        from pathlib import Path

        from gateway.protocols.ieee2030_5.table import TableError as Sep2TableError
        from gateway.protocols.ieee2030_5.table import load_table as load_sep2_table

        try:
            load_sep2_table(Path(ieee2030_5_mappings))
        except Sep2TableError as exc:
            fail(str(exc))
    if override_mappings:
        from gateway.overrides.policy import PolicyError, load_policy

        try:
            load_policy(override_mappings)
        except PolicyError as exc:
            fail(str(exc))
    try:
        store = Store(settings.database_url)  # open and migrate up front: a bad URL fails here, readably
    except StoreError as exc:
        fail(f"{exc}\n  check --database-url / TGW_DATABASE_URL")
    console.print(f"[bold]Transactive Gateway {__version__}[/]")
    scheme = "https" if tls_cert else "http"
    console.print(f"  API      {scheme}://{host}:{port}  (docs: {scheme}://{host}:{port}/docs)")
    console.print(f"  OpenADR  VTN at {scheme}://{host}:{port}/OpenADR2/Simple/2.0b")
    console.print(
        f"  2030.5   DER server at {scheme}://{host}:{port}/dcap"
        + ("" if tls_client_ca or ieee2030_5_cert_header else " (devices need --tls-client-ca: mutual TLS)")
    )
    console.print(f"  database {redact(settings.database_url)}")
    console.print(f"  MQTT     {broker}")
    console.print(
        "  markets  " + (f"call auctions checked every {market_tick:g} s" if market_tick else "no periodic runs")
    )
    tls: dict[str, object] = {}
    if tls_cert and tls_key:
        from gateway.api.tls import server_tls_options

        tls = server_tls_options(tls_cert, tls_key, tls_client_ca, require_client=True)
        if not ecdsa:
            console.print(
                "  [yellow]note[/]     --tls-cert has no EC key: 2030.5 devices that offer only the suite the standard"
                " requires (TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8) cannot connect; use a P-256 certificate for them"
            )
    config = uvicorn.Config(
        create_app(settings, store=store),
        host=host,
        port=port,
        log_level=log_level,
        **tls,  # type: ignore[arg-type]
    )
    try:
        uvicorn.Server(config).run()
    finally:
        store.close()


@app.command()
def demo(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Keep the demo database here (default: a temporary folder).")
    ] = None,
) -> None:
    """Run the guided scenario: a small feeder, its parties and DER, tenders and controls through the API."""
    from gateway.demo import run_demo

    # Piped or captured output (CI logs, `| less`) would get rich's 80-column default and truncated tables.
    run_demo(console if console.is_terminal else Console(width=120), directory)


@app.command()
def schema(
    out: Annotated[
        Path | None, typer.Option(help="Folder to write to (default: this installation's schemas/canonical).")
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Only report stale files; exit 1 if any.")] = False,
) -> None:
    """Generate the JSON Schema of the canonical model."""
    from gateway import schema as schema_module
    from gateway.resources import schemas_dir

    target = out or schemas_dir() / "canonical"
    if check:
        stale = schema_module.stale(target)
        if stale:
            fail(f"schemas in {target} are stale: {', '.join(stale)}; run `tgw schema` to regenerate")
        console.print(f"schemas in {target} are up to date")
        return
    written = schema_module.write(target)
    console.print(f"wrote {len(written)} schemas to {target}")


@app.command()
def translate(
    file: Annotated[str, typer.Argument(help="Input file, or - for standard input.")],
    source: Annotated[str, typer.Option("--from", help="Protocol of the input.")],
    target: Annotated[str, typer.Option("--to", help="Protocol to translate into.")],
) -> None:
    """Translate one message (or a list) between protocols; prints the result to stdout."""
    from gateway.translation import TranslationError
    from gateway.translation import translate as run

    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    try:
        sys.stdout.buffer.write(run(data, source, target))
    except TranslationError as exc:
        fail(f"{file}: {exc}")


@app.command()
def clear(
    book_file: Annotated[str, typer.Argument(help="A plain book (JSON), or - for standard input.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Clear one interval from a plain book: uniform-price double auction (GridLAB-D clearing types)."""
    import json

    from gateway.market.auction import Book
    from gateway.market.auction import clear as clear_book

    try:
        raw = sys.stdin.buffer.read() if book_file == "-" else Path(book_file).read_bytes()
    except OSError as exc:
        fail(f"cannot read {book_file}: {exc.strerror}")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        fail(f"{book_file}: not JSON: {exc}")
    try:
        book = Book.from_dict(data)
    except (ValueError, TypeError) as exc:
        fail(f"{book_file}: {exc}")
    result = clear_book(book)
    summary = {
        "clearing_price": result.clearing_price,
        "cleared_quantity": result.cleared_quantity,
        "type": str(result.type),
        "awards": result.awards(book),
    }
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    console.print(
        f"{summary['type']}: {summary['cleared_quantity']:g} cleared at {summary['clearing_price']:g}"
        f" ({len(summary['awards'])} awards)"
    )
    for bid_id, quantity in summary["awards"].items():
        console.print(f"  {bid_id:<24} {quantity:g}", highlight=False)


@app.command()
def migrate(
    database_url: Annotated[str, typer.Option(envvar="TGW_DATABASE_URL")] = DEFAULT_DATABASE_URL,
) -> None:
    """Create or upgrade the database schema (serve does this too; run it alone before rolling out many gateways)."""
    from gateway.store import Store, StoreError, redact

    try:
        Store(database_url).close()
    except StoreError as exc:
        fail(str(exc))
    console.print(f"database {redact(database_url)} is at the newest schema")


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
