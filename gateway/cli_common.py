"""What the store-facing subcommands (`tgw market`, `tgw override`) share: the database and --json options, and
errors a person can act on (one red line on stderr, exit 1) instead of a traceback."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, NoReturn

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

DatabaseOption = Annotated[
    str, typer.Option(envvar="TGW_DATABASE_URL", help="sqlite:///path.db or postgresql://user:pw@host/db")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON on stdout")]


def fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def instant(text: str, name: str) -> datetime:
    """An ISO 8601 time with an offset, as UTC; anything else fails naming the option and an example."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{name} '{text}' is not an ISO 8601 time, e.g. 2030-01-07T10:00:00Z")
    if value.tzinfo is None:
        fail(f"{name} '{text}' needs a UTC offset, e.g. 2030-01-07T10:00:00Z")
    return value.astimezone(UTC)
