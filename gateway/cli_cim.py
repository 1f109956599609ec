"""`tgw cim summary` and `tgw cim import`: look into a CIM model, and load its network into the store.

`summary --json` prints one JSON object (scripts rely on it, see DESIGN.md): ``classes`` (class -> count),
``feeders``, ``der`` (inventory) and ``warnings``, plus files, objects, rating coverage and dangling
references.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gateway.config import DEFAULT_DATABASE_URL

if TYPE_CHECKING:
    from gateway.protocols.cim.reader import CimModel

cim_app = typer.Typer(
    help="CIM network models: summarise a model, import its network into the store.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)

MAX_WARNINGS_SHOWN = 10


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def load(paths: list[Path], *, quiet: bool) -> CimModel:
    """Read the model with a progress bar on stderr (stdout stays clean for --json)."""
    from gateway.protocols.cim.reader import CimReadError, read_cim

    progress = Progress(
        TextColumn("reading CIM"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet,
    )
    try:
        with progress:
            task = progress.add_task("read", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            return read_cim(paths, progress=advance)
    except CimReadError as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


def summarise(model: CimModel) -> dict[str, Any]:
    """The summary as plain data: what `--json` prints and the tables show."""
    from gateway.protocols.cim.network import build_network
    from gateway.protocols.cim.view import summary_of

    warnings = list(model.warnings)
    view = build_network(model, warnings=warnings)
    network = summary_of(view)
    if model.dangling_count:
        shown = ", ".join(f"{d.file}:{d.line} {d.prop} -> {d.target}" for d in model.dangling[:3])
        warnings.append(f"{model.dangling_count} references to objects no file defines, e.g. {shown}")
    return {
        "files": model.files,
        "objects": len(model.objects),
        "classes": dict(sorted(model.class_counts.items())),
        "feeders": network["feeders"],
        "nodes": network["nodes"],
        "der": network["der"],
        "coverage": network["coverage"],
        "dangling": model.dangling_count,
        "warnings": warnings,
    }


@cim_app.command("summary")
def summary(
    paths: Annotated[list[Path], typer.Argument(help="A file, a folder of a multi-file model, or a zip.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
) -> None:
    """Class counts, feeders, nodes, DER inventory, rating coverage and warnings of a CIM model."""
    model = load(paths, quiet=as_json or not err_console.is_terminal)
    data = summarise(model)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    _print_summary(data)


def _print_summary(data: dict[str, Any]) -> None:
    out = console if console.is_terminal else Console(width=120)
    out.print(f"[bold]{data['objects']:,}[/] objects in {len(data['files'])} file(s); {data['nodes']:,} nodes")
    classes = Table(title="Classes (most common)", title_justify="left")
    classes.add_column("class")
    classes.add_column("count", justify="right")
    for cls, count in sorted(data["classes"].items(), key=lambda item: -item[1])[:15]:
        classes.add_row(cls, f"{count:,}")
    out.print(classes)
    feeders = Table(title="Feeders", title_justify="left")
    for column in ("feeder", "substation", "nodes", "points of use", "transformers"):
        feeders.add_column(column)
    for feeder in data["feeders"]:
        feeders.add_row(
            str(feeder.get("name")),
            str(feeder.get("substation")),
            str(feeder.get("nodes")),
            str(feeder.get("points")),
            str(feeder.get("transformers")),
        )
    out.print(feeders)
    der = Table(title="DER inventory", title_justify="left")
    for column in ("kind", "count", "rated kVA"):
        der.add_column(column)
    for item in data["der"]:
        der.add_row(str(item["kind"]), str(item["count"]), str(item["rated_kva"]))
    out.print(der)
    coverage = data["coverage"]
    out.print("rating coverage: " + ", ".join(f"{k} {v}" for k, v in coverage.items()))
    warnings = data["warnings"]
    if warnings:
        out.print(f"[yellow]{len(warnings)} warning(s)[/]")
        for warning in warnings[:MAX_WARNINGS_SHOWN]:
            out.print(f"  {warning}", highlight=False)
        if len(warnings) > MAX_WARNINGS_SHOWN:
            out.print(f"  ... {len(warnings) - MAX_WARNINGS_SHOWN} more (see --json)")
    else:
        out.print("[green]no warnings[/]")


@cim_app.command("import")
def import_model(
    paths: Annotated[list[Path], typer.Argument(help="A file, a folder of a multi-file model, or a zip.")],
    database_url: Annotated[str, typer.Option(envvar="TGW_DATABASE_URL")] = DEFAULT_DATABASE_URL,
    owner: Annotated[
        str, typer.Option(help="Party id of the network operator that owns the imported assets.")
    ] = "grid-operator",
    prefix: Annotated[str, typer.Option(help="Prefix for the imported location and resource ids.")] = "",
) -> None:
    """Load the model's network (locations with ratings, DER and loads) into the store; re-import is idempotent."""
    from gateway.ingest import Ingestor, Rejected
    from gateway.model import Party, Role
    from gateway.protocols.cim.envelopes import network_envelopes
    from gateway.protocols.cim.mapper import to_canonical
    from gateway.protocols.cim.network import build_network
    from gateway.store import Store, StoreError

    model = load(paths, quiet=not err_console.is_terminal)
    view = build_network(model, warnings=list(model.warnings))
    locations, resources = to_canonical(view, owner_id=owner, prefix=prefix)
    peer = Path(str(paths[0])).name
    operator = Party(id=owner, name=owner, roles=[Role.GRID_OPERATOR, Role.DSO])
    envelopes = network_envelopes([operator, *locations, *resources], peer=peer)
    try:
        store = Store(database_url)
    except StoreError as exc:
        _fail(str(exc))
    try:
        stored = Ingestor(store).ingest_sync(envelopes, protocol="cim", peer=peer)
    except Rejected as exc:
        _fail(f"the model's network was refused: {exc}")
    finally:
        store.close()
    new = sum(1 for s in stored if not s.duplicate)
    console.print(
        f"imported {len(locations)} locations and {len(resources)} resources from {peer}:"
        f" {new} new, {len(stored) - new} unchanged"
    )
