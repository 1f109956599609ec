"""What an override settlement needs from the store: the overrides near a window, what they name, and what the
market dispatched the resources they are about.

Kept beside the pure ``gateway.overrides.settlement`` (which only prices) so that the market's billing run asks one
question of the override service, ``override_inputs``, and does not need to know how overrides, controls and
curtailment dispatch are read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from gateway.market.rules import network_path
from gateway.model import Control, Location, MessageKind, Override, Resource, Transaction
from gateway.model.overrides import SubjectKind
from gateway.overrides.curtailment import Direction
from gateway.overrides.dispatch import can_serve, covering, piece_bounds, rating_kw, site_transactions, split_dispatch
from gateway.overrides.policy import OverridePolicy
from gateway.overrides.settlement import Dispatched, OverrideSubjects
from gateway.store import Store

_LONGEST_INTERVAL = timedelta(days=366)
"""An override starting this long after the window cannot touch an interval that starts inside it."""


def override_inputs(
    store: Store, market_id: str, start: datetime, end: datetime, policy: OverridePolicy
) -> tuple[list[Override], OverrideSubjects]:
    """The overrides that may count in the window (any status: resolution needs them all) and what they name."""
    overrides = _overrides_near(store, start, end)
    return overrides, _subjects(store, overrides, market_id, policy)


def _overrides_near(store: Store, start: datetime, end: datetime) -> list[Override]:
    """Every override (any status: resolution needs them all) whose span meets the window's intervals.

    Overrides are few next to tenders and readings, and their spans are not indexed, so they are filtered here.
    """
    found = store.list(MessageKind.OVERRIDE, limit=None)
    return [
        o for o in found if isinstance(o, Override) and o.span.end > start and o.span.start < end + _LONGEST_INTERVAL
    ]


def _subjects(store: Store, overrides: Sequence[Override], market_id: str, policy: OverridePolicy) -> OverrideSubjects:
    """What the overrides name, read once each, and the market dispatch of the resources that overrides of the
    market's controls may be about."""
    transactions: dict[str, Transaction] = {}
    controls: dict[str, Control] = {}
    resources: dict[str, Resource] = {}
    owned: dict[str, list[Resource]] = {}
    for o in overrides:
        found = store.get(MessageKind(o.subject.kind.value), o.subject.id)
        if isinstance(found, Transaction):
            transactions[found.id] = found
        elif isinstance(found, Control):
            controls[found.id] = found
        if o.resource_id is not None and o.resource_id not in resources:
            resource = store.get(MessageKind.RESOURCE, o.resource_id)
            if isinstance(resource, Resource):
                resources[resource.id] = resource
        if o.subject.kind is SubjectKind.CONTROL and o.party_id not in owned:
            listed = store.list(MessageKind.RESOURCE, filters={"owner_id": o.party_id}, limit=None)
            owned[o.party_id] = [r for r in listed if isinstance(r, Resource)]
    paths: dict[str, list[str]] = {}

    def path(location_id: str) -> list[str]:
        if location_id not in paths:
            paths[location_id] = network_path(location_id, lambda i: _location(store, i))
        return paths[location_id]

    reaches = {
        control.id: frozenset(
            r.id for party in owned.values() for r in party if _reached(control, r, path(r.location_id))
        )
        for control in controls.values()
    }
    dispatch = _dispatch(store, market_id, policy, overrides, controls, resources, owned, reaches)
    return OverrideSubjects(
        transactions=transactions,
        controls=controls,
        resources=resources,
        resources_of=owned,
        reaches=reaches,
        dispatch=dispatch,
    )


def _dispatch(
    store: Store,
    market_id: str,
    policy: OverridePolicy,
    overrides: Sequence[Override],
    controls: Mapping[str, Control],
    resources: Mapping[str, Resource],
    owned: Mapping[str, Sequence[Resource]],
    reaches: Mapping[str, frozenset[str]],
) -> dict[str, list[Dispatched]]:
    """What the market dispatched each resource an override of a control settled in ``market_id`` may be about (the
    one it names, else the party's resources the control reaches), while the control ran: the pieces of time in
    which the resource's party held a position at its site in the market, as curtailment reckons it
    (``gateway.overrides.dispatch``: the party's net position there split among its resources there by rating)."""
    known = {r.id: r for party in owned.values() for r in party} | dict(resources)
    windows: dict[str, tuple[datetime, datetime]] = {}
    for o in overrides:
        control = controls.get(o.subject.id) if o.subject.kind is SubjectKind.CONTROL else None
        terms = policy.program(control.program_id) if control is not None else None
        if control is None or terms is None or terms.market_id != market_id:
            continue
        mine = {r.id for r in owned.get(o.party_id, ())}
        about = [o.resource_id] if o.resource_id is not None else sorted(reaches.get(control.id, frozenset()) & mine)
        span = control.span
        for rid in about:
            if rid in known:
                start, end = windows.get(rid, (span.start, span.end))
                windows[rid] = (min(start, span.start), max(end, span.end))
    sites: dict[tuple[str, str], list[Resource]] = {}
    out: dict[str, list[Dispatched]] = {}
    for rid in sorted(windows):
        resource = known[rid]
        start, end = windows[rid]
        trades = site_transactions(store, resource.owner_id, resource.location_id, start, end, market_id)
        if not trades:
            continue
        key = (resource.owner_id, resource.location_id)
        if key not in sites:
            listed = store.list(MessageKind.RESOURCE, filters={"location_id": resource.location_id}, limit=None)
            sites[key] = sorted(
                (r for r in listed if isinstance(r, Resource) and r.owner_id == resource.owner_id), key=lambda r: r.id
            )
        pieces: list[Dispatched] = []
        for a, b in pairwise(piece_bounds(start, end, trades)):
            held = covering(trades, a, b)
            if held:
                kw = {d: _share(resource, sites[key], held, d) for d in Direction}
                pieces.append(Dispatched(a, b, export_kw=kw[Direction.EXPORT], import_kw=kw[Direction.IMPORT]))
        out[rid] = pieces
    return out


def _share(resource: Resource, site: Sequence[Resource], held: Sequence[Transaction], direction: Direction) -> Decimal:
    """The resource's part of its party's position at its site in ``direction`` (0 if it cannot flow that way)."""
    if not can_serve(resource, direction):
        return Decimal(0)
    team = [r for r in site if can_serve(r, direction)]
    parts = split_dispatch(held, [rating_kw(r, direction) for r in team], direction)
    return next((kw for r, kw in zip(team, parts, strict=True) if r.id == resource.id), Decimal(0))


def _reached(control: Control, resource: Resource, path: list[str]) -> bool:
    targets = control.targets
    return (
        targets.broadcast
        or bool(targets.group_ids)
        or resource.owner_id in targets.party_ids
        or resource.id in targets.resource_ids
        or not set(targets.location_ids).isdisjoint(path)
    )


def _location(store: Store, location_id: str) -> Location | None:
    found = store.get(MessageKind.LOCATION, location_id)
    return found if isinstance(found, Location) else None
