"""`tgw override list | create | withdraw | history | effective`: customer overrides from a shell.

For an operator acting on a customer's word (a phone call, a support ticket): the same ingest path, rules and
audit trail as every protocol edge, with ``cli`` as the protocol and the operator's user@host as the peer, so the
history shows who typed it. Works on the store directly (``--database-url``), like ``tgw market``; a serving
gateway sees the change from the store (the OpenADR bridge and the 2030.5 index catch up with the log).
"""

from __future__ import annotations

import getpass
import json
import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from gateway.cli_common import DatabaseOption, JsonOption, console, fail, instant
from gateway.config import DEFAULT_DATABASE_URL

override_app = typer.Typer(help="Customer overrides: list, create, withdraw, audit.", no_args_is_help=True)


def _services(database_url: str) -> Any:
    from gateway.ingest import Ingestor
    from gateway.overrides.service import OverrideService
    from gateway.store import Store, StoreError

    try:
        store = Store(database_url)
    except StoreError as exc:
        fail(f"{exc}\n  check --database-url / TGW_DATABASE_URL")
    return OverrideService(store, Ingestor(store))


def _operator() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"[:200]


def _print(overrides: list[Any], as_json: bool, title: str) -> None:
    if as_json:
        print(json.dumps([o.model_dump(mode="json") for o in overrides], indent=2))
        return
    table = Table("id", "party", "subject", "resource", "mode", "kept kW", "from", "to", "status", title=title)
    for o in overrides:
        table.add_row(
            o.id,
            o.party_id,
            f"{o.subject.kind.value} {o.subject.id}",
            o.resource_id or "",
            o.mode.value,
            "" if o.quantity_kw is None else str(o.quantity_kw),
            o.span.start.isoformat(),
            o.span.end.isoformat(),
            o.status.value,
        )
    console.print(table)


@override_app.command("list")
def list_overrides(
    party: Annotated[str | None, typer.Option(help="only this party's")] = None,
    subject: Annotated[str | None, typer.Option(help="only overrides of this control, transaction, ... id")] = None,
    status: Annotated[str | None, typer.Option(help="active or withdrawn")] = None,
    database_url: DatabaseOption = DEFAULT_DATABASE_URL,
    as_json: JsonOption = False,
) -> None:
    """Overrides as stored now (every one, winning or not; see `effective`)."""
    from gateway.model import MessageKind

    service = _services(database_url)
    filters = {k: v for k, v in (("party_id", party), ("subject_id", subject), ("status", status)) if v}
    found = service.store.list(MessageKind.OVERRIDE, filters=filters, limit=None)
    _print(found, as_json, "overrides")


@override_app.command("effective")
def effective(
    at: Annotated[str | None, typer.Option(help="ISO 8601 moment (default now)")] = None,
    party: Annotated[str | None, typer.Option(help="only this party's")] = None,
    subject: Annotated[str | None, typer.Option(help="only overrides of this subject id")] = None,
    database_url: DatabaseOption = DEFAULT_DATABASE_URL,
    as_json: JsonOption = False,
) -> None:
    """The overrides that count at a moment: per party, subject and resource the one made last."""
    moment = instant(at, "--at") if at else datetime.now(UTC)
    service = _services(database_url)
    found = service.effective(moment, party_id=party, subject_id=subject)
    _print(found, as_json, f"effective at {moment:%Y-%m-%d %H:%M}Z")


@override_app.command("create")
def create(
    party: Annotated[str, typer.Option(help="the customer (party id) who overrides")],
    subject: Annotated[str, typer.Option(help="id of the control, transaction, tender, resource or envelope")],
    start: Annotated[str, typer.Option(help="ISO 8601 start of the override")],
    minutes: Annotated[int, typer.Option(min=1, help="how long it lasts")],
    subject_kind: Annotated[str, typer.Option(help="control, transaction, tender, resource, operating_envelope")] = (
        "control"
    ),
    mode: Annotated[str, typer.Option(help="opt_out, opt_in or partial")] = "opt_out",
    resource: Annotated[str | None, typer.Option(help="the party's resource it concerns")] = None,
    keep_kw: Annotated[str | None, typer.Option(help="kW kept in a partial override")] = None,
    reason: Annotated[str, typer.Option(help="OpenADR optReason vocabulary, e.g. override_status")] = "override_status",
    text: Annotated[str | None, typer.Option(help="free text (why)")] = None,
    override_id: Annotated[str | None, typer.Option("--id", help="the override's id (default: a new one)")] = None,
    database_url: DatabaseOption = DEFAULT_DATABASE_URL,
    as_json: JsonOption = False,
) -> None:
    """Record a customer's override (refused with the reason when it is not theirs, is in the past or names an
    unknown subject)."""
    from gateway.ingest import Rejected
    from gateway.model import Envelope, Override

    try:
        quantity = None if keep_kw is None else Decimal(keep_kw)
    except InvalidOperation:
        fail(f"--keep-kw '{keep_kw}' is not a number")
    body: dict[str, Any] = {
        "party_id": party,
        "subject": {"kind": subject_kind, "id": subject},
        "resource_id": resource,
        "mode": mode,
        "reason": reason,
        "reason_text": text,
        "span": {"start": instant(start, "--start").isoformat(), "duration": timedelta(minutes=minutes)},
        "quantity_kw": quantity,
    }
    if override_id:
        body["id"] = override_id
    try:
        override = Override.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        fail(f"not a valid override: {problems}")
    service = _services(database_url)
    try:
        [record] = service.ingestor.ingest_sync([Envelope(payload=override)], protocol="cli", peer=_operator())
    except Rejected as exc:
        fail(f"refused: {exc}")
    if as_json:
        print(json.dumps({"id": override.id, "seq": record.seq, "duplicate": record.duplicate}))
    else:
        console.print(f"override [bold]{override.id}[/] stored (log seq {record.seq})", highlight=False)


@override_app.command("withdraw")
def withdraw(
    override_id: Annotated[str, typer.Argument(help="the override's id")],
    database_url: DatabaseOption = DEFAULT_DATABASE_URL,
    as_json: JsonOption = False,
) -> None:
    """Withdraw an override (a new version; the history keeps the old ones)."""
    from gateway.ingest import Rejected
    from gateway.overrides.service import OverrideError

    service = _services(database_url)
    try:
        record = service.withdraw_sync(override_id, protocol="cli", peer=_operator())
    except OverrideError as exc:
        fail(exc.reason)
    except Rejected as exc:
        fail(f"refused: {exc}")
    if as_json:
        print(json.dumps({"id": override_id, "seq": record.seq}))
    else:
        console.print(f"override [bold]{override_id}[/] withdrawn (log seq {record.seq})", highlight=False)


@override_app.command("history")
def history(
    override_id: Annotated[str, typer.Argument(help="the override's id")],
    database_url: DatabaseOption = DEFAULT_DATABASE_URL,
    as_json: JsonOption = False,
) -> None:
    """The audit trail: every version, when, through which protocol and peer, and what changed."""
    from gateway.overrides.service import OverrideError

    service = _services(database_url)
    try:
        entries = service.history(override_id)
    except OverrideError as exc:
        fail(exc.reason)
    if as_json:
        rows = [
            {
                "seq": e.seq,
                "stored_at": e.stored_at.isoformat(),
                "protocol": e.protocol,
                "peer": e.peer,
                "status": e.status.value,
                "changes": e.changes,
            }
            for e in entries
        ]
        print(json.dumps(rows, indent=2))
        return
    table = Table("seq", "stored at", "protocol", "peer", "status", "changes", title=f"override {override_id}")
    for e in entries:
        table.add_row(str(e.seq), e.stored_at.isoformat(), e.protocol, e.peer, e.status.value, "; ".join(e.changes))
    console.print(table)


@override_app.command("curtail")
def curtail(
    location: Annotated[str, typer.Argument(help="the constrained location (feeder, transformer, service point)")],
    reduce_kw: Annotated[str, typer.Option("--reduce-kw", help="the reduction needed, kW (whole watts)")],
    direction: Annotated[str, typer.Option(help="export (reverse flow, generation) or import (load)")],
    program: Annotated[str, typer.Option(help="the DR program the controls belong to (mappings/overrides.yaml)")],
    start: Annotated[str, typer.Option(help="ISO 8601 start, e.g. 2030-01-07T17:00:00Z")],
    duration: Annotated[str, typer.Option(help="ISO 8601 duration, e.g. PT1H")] = "PT1H",
    method: Annotated[str, typer.Option(help="filo, pro_rata or bid_order")] = "pro_rata",
    enforcement: Annotated[
        str | None, typer.Option(help="soft or hard; must match the program's (default: the program's)")
    ] = None,
    override_mappings: Annotated[
        str | None, typer.Option(envvar="TGW_OVERRIDE_MAPPINGS", help="override policy file (default: the installed)")
    ] = None,
    database_url: DatabaseOption = DEFAULT_DATABASE_URL,
    as_json: JsonOption = False,
) -> None:
    """Curtail the DERs behind a constrained location: share the reduction by first-in last-out, pro rata or bid
    order and store one control per curtailed resource (soft: a limit the customer may override; hard: a limit, or
    disconnection when its whole dispatch goes). Prints the allocation and any shortfall."""
    from gateway.api.routes_curtailments import curtailment_out
    from gateway.ingest import Rejected
    from gateway.model import utc_now
    from gateway.overrides.dispatch import CurtailmentError, CurtailmentRequest, changed_envelopes, plan_curtailment
    from gateway.overrides.policy import PolicyError, load_policy

    try:
        policy = load_policy(override_mappings)
    except PolicyError as exc:
        fail(str(exc))
    if enforcement is None:
        enforcement = "hard" if policy.is_hard(program) else "soft"
    body = {
        "location_id": location,
        "span": {"start": instant(start, "--start").isoformat(), "duration": duration},
        "direction": direction,
        "reduce_kw": reduce_kw,
        "method": method,
        "program_id": program,
        "enforcement": enforcement,
    }
    try:
        request = CurtailmentRequest.model_validate(body)
    except ValidationError as exc:
        names = {"span": "--duration", "reduce_kw": "--reduce-kw", "program_id": "--program", "location_id": "LOCATION"}
        problems = "; ".join(
            f"{names.get(str(e['loc'][0]), '--' + str(e['loc'][0])) if e['loc'] else 'request'}:"
            f" {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        fail(f"not a valid curtailment: {problems}")
    service = _services(database_url)
    try:
        plan = plan_curtailment(service.store, request, policy, utc_now())
        envelopes = changed_envelopes(service.store, plan)
        stored = service.ingestor.ingest_sync(envelopes, protocol="cli", peer=_operator())
    except CurtailmentError as exc:
        fail(exc.reason)
    except Rejected as exc:
        fail(f"refused: {exc}")
    out = curtailment_out(plan, created=any(not m.duplicate for m in stored))
    if as_json:
        print(out.model_dump_json(indent=2))
        return
    _print_curtailment(out)


def _print_curtailment(out: Any) -> None:
    title = (
        f"{out.enforcement.value} curtailment {out.curtailment_id}: {out.required_kw} kW of {out.direction.value} at"
        f" {out.location_id}, {out.method.value}, {out.span.start:%Y-%m-%d %H:%M}Z +{out.span.duration}"
    )
    table = Table("resource", "party", "location", "dispatched kW", "reduction kW", "control", "kind", title=title)
    for share in out.allocation:
        table.add_row(
            share.resource_id,
            share.party_id,
            share.location_id,
            str(share.dispatched_kw),
            str(share.reduction_kw),
            share.control_id or "",
            share.control_kind.value if share.control_kind else "",
        )
    console.print(table)
    if out.shortfall_kw > 0:
        console.print(f"[bold yellow]shortfall:[/] {out.shortfall_kw} kW cannot be curtailed behind {out.location_id}")
    for skipped in out.skipped:
        console.print(f"skipped {skipped.resource_id}: {skipped.reason}", highlight=False)
    for cancelled in out.cancelled_control_ids:
        console.print(f"cancelled {cancelled} (no longer needed)", highlight=False)
    for warning in out.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if not out.created:
        console.print("nothing changed: every control was stored already", highlight=False)
