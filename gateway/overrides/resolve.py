"""Which override counts when several speak of the same thing.

A customer may answer the same control through two edges at once (the VEN opts out while the app opts in), or
correct itself with a new override instead of withdrawing the old one. Every such override is stored (the audit
trail keeps them all); which one *counts* is decided here, the same way everywhere, so the VTN, the 2030.5
server and the settlement never disagree:

- only active overrides speak (a withdrawn one is a retraction of itself, not a statement);
- overrides of the same party, subject and resource whose spans cover the same moment compete, and the one made
  last (``created_at``) wins; equal times are broken by the larger id, so the outcome does not depend on
  which one the store happened to write first;
- two versions of one override (same id) never compete: the store keeps the newest log entry as its state.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from gateway.model import Override
from gateway.model.overrides import OverrideMode, OverrideStatus, SubjectKind


class OverrideKey(NamedTuple):
    party_id: str
    subject_kind: SubjectKind
    subject_id: str
    resource_id: str | None


def key_of(override: Override) -> OverrideKey:
    return OverrideKey(override.party_id, override.subject.kind, override.subject.id, override.resource_id)


def precedence(override: Override) -> tuple[datetime, str]:
    """Later wins; ties go to the larger id."""
    return (override.created_at, override.id)


def effective_at(overrides: Iterable[Override], at: datetime) -> dict[OverrideKey, Override]:
    """The override that counts at ``at`` for each (party, subject, resource) that has one."""
    winners: dict[OverrideKey, Override] = {}
    for override in overrides:
        if override.status is not OverrideStatus.ACTIVE or not (override.span.start <= at < override.span.end):
            continue
        key = key_of(override)
        current = winners.get(key)
        if current is None or precedence(override) > precedence(current):
            winners[key] = override
    return winners


def opted_out(overrides: Iterable[Override], at: datetime) -> list[Override]:
    """The winning overrides at ``at`` that take the party (wholly or partly) out: opt-ins that won are left out."""
    return [o for o in effective_at(overrides, at).values() if o.mode is not OverrideMode.OPT_IN]


def change_points(overrides: Iterable[Override]) -> list[datetime]:
    """Every moment an override starts or ends: between two of them, who wins cannot change."""
    return sorted({t for o in overrides for t in (o.span.start, o.span.end)})


def standing(overrides: Iterable[Override], now: datetime) -> list[Override]:
    """The overrides that take their party (partly) out at some moment from ``now`` on: what an edge shows its
    peer as in force, whichever edge the override came through. In id order."""
    overrides = list(overrides)
    moments = [now, *(t for t in change_points(overrides) if t > now)]
    found: dict[str, Override] = {}
    for moment in moments:
        for override in opted_out(overrides, moment):
            found[override.id] = override
    return [found[key] for key in sorted(found)]
