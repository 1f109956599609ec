"""Which overrides the gateway refuses, whatever edge they came through.

The ingest path calls :func:`override_findings` for every Override before anything is stored, so an OpenADR
optOut, a 2030.5 Response 4, a REST POST and an MQTT message are refused for the same reasons:

- a party overrides only what is its own: its resources, its transactions and tenders, the controls and
  operating envelopes aimed at it (a control names the party, one of its resources, or a location where it has
  a resource, or is a broadcast). A control aimed at groups is taken on trust: groups are the utility's and the
  gateway does not hold their members;
- an override changes what happens next, not what already happened: one whose span has ended is refused,
  unless it is exactly what is stored already (a peer repeating its earlier answer is not a change);
- an override keeps its party: another party cannot take over or withdraw it;
- a partial override keeps a quantity no larger than what it overrides, when that is known (a transaction);
- a control of a program the operator runs as *hard* (``enforcement: hard`` in ``mappings/overrides.yaml``: it
  curtails or disconnects directly, for the safety of the network) cannot be overridden; a soft one always can,
  and the override is settled.

Unknown subjects, parties and resources are refused earlier, by the reference check every kind gets.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from gateway.market.rules import network_path
from gateway.model import CanonicalObject, Control, Location, MessageKind, OperatingEnvelope, Override, Resource
from gateway.model.market import Tender, Transaction
from gateway.model.overrides import OverrideMode, SubjectKind
from gateway.model.units import PowerUnit, convert_power
from gateway.overrides.policy import OverridePolicy

Finding = tuple[tuple[str | int, ...], str]
"""(field path inside the payload, reason)"""

Getter = Callable[[MessageKind, str], CanonicalObject | None]
ResourcesOf = Callable[[str], list[Resource]]
"""A party's resources (those it owns)."""


def override_findings(
    override: Override, get: Getter, resources_of: ResourcesOf, now: datetime, policy: OverridePolicy | None = None
) -> list[Finding]:
    """Why ``override`` is refused (empty when it is not). ``get`` also answers locations: a control or envelope
    aimed at a transformer reaches the resources at every service point below it."""
    found: list[Finding] = []
    stored = get(MessageKind.OVERRIDE, override.id)
    if isinstance(stored, Override):
        if stored.party_id != override.party_id:
            owner = f"override '{override.id}' belongs to party '{stored.party_id}'"
            found.append((("party_id",), f"{owner}, not '{override.party_id}'"))
        if _same(stored, override):
            return found  # a repeat of what is stored: not a change, so not refused for being late
    if override.span.end <= now:
        found.append(
            (
                ("span",),
                f"the override's span ended at {override.span.end.isoformat()}; an override can only change what"
                " happens from now on",
            )
        )
    if override.resource_id is not None:
        resource = get(MessageKind.RESOURCE, override.resource_id)
        if isinstance(resource, Resource) and resource.owner_id != override.party_id:
            found.append(
                (
                    ("resource_id",),
                    f"resource '{resource.id}' belongs to '{resource.owner_id}', not to '{override.party_id}': a party"
                    " can only override its own resources",
                )
            )
    found.extend(_subject_findings(override, get, _located(resources_of, get)))
    if policy is not None and override.mode is not OverrideMode.OPT_IN and override.subject.kind is SubjectKind.CONTROL:
        control = get(MessageKind.CONTROL, override.subject.id)
        if isinstance(control, Control) and policy.is_hard(control.program_id):
            found.append(
                (
                    ("subject", "id"),
                    f"control '{control.id}' belongs to program '{control.program_id}', which the operator enforces"
                    " directly (hard curtailment for the network's safety): it cannot be overridden",
                )
            )
    return found


def _same(stored: Override, override: Override) -> bool:
    ignored = {"created_at"}
    return stored.model_dump(exclude=ignored) == override.model_dump(exclude=ignored)


def _subject_findings(override: Override, get: Getter, resources_of: Callable[[str], list[_Placed]]) -> list[Finding]:
    party = override.party_id
    subject = get(MessageKind(override.subject.kind.value), override.subject.id)
    where = ("subject", "id")
    match subject:
        case Resource() if subject.owner_id != party:
            return [(where, f"resource '{subject.id}' belongs to '{subject.owner_id}', not to '{party}'")]
        case Transaction() | Tender() if subject.party_id != party:
            kind = override.subject.kind.value
            return [(where, f"{kind} '{subject.id}' is party '{subject.party_id}''s, not '{party}''s")]
        case Transaction() if override.mode is OverrideMode.PARTIAL and override.quantity_kw is not None:
            traded = convert_power(subject.quantity, subject.quantity_unit, PowerUnit.KW)
            if override.quantity_kw > traded:
                return [
                    (
                        ("quantity_kw",),
                        f"a partial override keeps at most the {traded} of transaction '{subject.id}', not"
                        f" {override.quantity_kw}",
                    )
                ]
        case Control() if not aimed_at(subject, party, override.resource_id, resources_of):
            return [(where, f"control '{subject.id}' is not aimed at party '{party}' or its resources")]
        case OperatingEnvelope() if not any(subject.location_id in r.location_id for r in resources_of(party)):
            return [
                (
                    where,
                    f"operating envelope '{subject.id}' is for location '{subject.location_id}', where party"
                    f" '{party}' has no resource",
                )
            ]
    return []


def aimed_at(
    control: Control, party: str, resource_id: str | None, resources_of: Callable[[str], list[_Placed]]
) -> bool:
    """Whether ``control`` reaches ``party`` (and, when given, that resource of it): a resource is reached when it
    is named or sits anywhere below a named location."""
    targets = control.targets
    if targets.broadcast or targets.group_ids:
        return True
    if party in targets.party_ids and resource_id is None:
        return True
    owned = resources_of(party)
    if resource_id is not None:
        owned = [r for r in owned if r.id == resource_id]
        if party in targets.party_ids:
            return bool(owned)
    places = set(targets.location_ids)
    return any(r.id in targets.resource_ids or not places.isdisjoint(r.location_id) for r in owned)


class _Placed(NamedTuple):
    """A resource with the network path of its location (its location and every ancestor up to the root)."""

    id: str
    location_id: list[str]


def _located(resources_of: ResourcesOf, get: Getter) -> Callable[[str], list[_Placed]]:
    def locate(location_id: str) -> Location | None:
        found = get(MessageKind.LOCATION, location_id)
        return found if isinstance(found, Location) else None

    def placed(party: str) -> list[_Placed]:
        return [
            _Placed(r.id, network_path(r.location_id, locate) if r.location_id else []) for r in resources_of(party)
        ]

    return placed
