"""How a distribution operator's required reduction at a constrained location is shared among the DERs behind it.

Pure functions, no I/O: ``gateway.overrides.dispatch`` finds the candidates in the store (what each was dispatched
to by the market, when it was connected, what its dispatch was worth) and turns the shares into controls. Kept
apart so that the allocation rules can be read, argued about and property-tested on their own.

Three methods, each a rule operators use for curtailing distributed generation or flexible load:

- **first-in last-out** (``filo``): the resource connected most recently is curtailed first, in full, then the one
  before it, and so on. This is how connection agreements in constrained networks are usually written (a later
  connection accepted a curtailment risk that earlier ones did not). Which instant counts as "connected" is the
  caller's decision (see ``dispatch``); here it is an ordinal, larger = later.
- **pro rata** (``pro_rata``): every resource gives the same fraction of its dispatch. Fair when no resource holds
  a firmer right than another.
- **bid order** (``bid_order``): the least valuable dispatch is curtailed first, so the market loses as little
  value as possible: for export the highest offer price first (the dearest energy), for import the lowest bid
  price first (the load that valued it least). Dispatch the market did not price (a resource running without a
  position, counted at its rating) is curtailed before any priced dispatch: curtailing it breaks no trade.

Every method gives each resource at most its dispatch and never a negative share, and the shares add up exactly to
the reduction that can be had: ``min(required, sum of dispatch)``; the rest is the shortfall the operator must find
elsewhere. Arithmetic is exact: Decimal for what is stored, Fraction for proportions; shares are whole watts
(``WATT``) except that one share may carry the sub-watt rest of an input that was finer than a watt, so that the
sum is still exact. Ties are broken by resource id, so the same input always gives the same answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

WATT = Decimal("0.001")
"""The allocation quantum in kW: 2030.5 and OpenADR write power in whole watts."""


class Direction(StrEnum):
    """Which flow at the constrained location is too large."""

    EXPORT = "export"
    """Reverse flow (generation, battery discharge): reduce what the DERs export."""
    IMPORT = "import"
    """Forward flow (load, charging): reduce what the DERs import."""


class Method(StrEnum):
    FILO = "filo"
    PRO_RATA = "pro_rata"
    BID_ORDER = "bid_order"


@dataclass(frozen=True)
class Candidate:
    """A DER behind the constrained location that can give a reduction in the direction asked for.

    ``dispatched_kw`` is what it is expected to deliver in that direction (non-negative); ``connected`` orders
    connections (larger = later); ``price`` is what its dispatch was offered or bid at (currency per kWh), None
    when the market did not price it.
    """

    resource_id: str
    party_id: str
    location_id: str
    dispatched_kw: Decimal
    connected: int = 0
    price: Decimal | None = None


@dataclass(frozen=True)
class Share:
    """One resource's part of a curtailment."""

    candidate: Candidate
    reduction_kw: Decimal

    @property
    def remaining_kw(self) -> Decimal:
        """What the resource may still deliver in the direction: its dispatch less its reduction."""
        return self.candidate.dispatched_kw - self.reduction_kw


@dataclass(frozen=True)
class Allocation:
    """The shares of every candidate, in the order the method curtails them (pro rata: by resource id)."""

    required_kw: Decimal
    available_kw: Decimal
    shares: tuple[Share, ...]

    @property
    def allocated_kw(self) -> Decimal:
        return sum((s.reduction_kw for s in self.shares), Decimal(0))

    @property
    def shortfall_kw(self) -> Decimal:
        """What the DERs behind the location cannot give: the operator must find it elsewhere."""
        return self.required_kw - self.allocated_kw


class AllocationError(ValueError):
    """The allocation's input is inconsistent (a caller's bug, not an operator's mistake)."""


def allocate(
    required_kw: Decimal,
    candidates: Sequence[Candidate],
    method: Method,
    direction: Direction,
    *,
    quantum: Decimal = WATT,
) -> Allocation:
    """Share ``required_kw`` of reduction among ``candidates`` by ``method`` (see the module's description)."""
    if not required_kw.is_finite() or required_kw <= 0:
        raise AllocationError(f"a curtailment needs a positive reduction, not {required_kw}")
    ids = [c.resource_id for c in candidates]
    if len(set(ids)) != len(ids):
        raise AllocationError("a resource may appear only once among the candidates")
    if any(not c.dispatched_kw.is_finite() or c.dispatched_kw < 0 for c in candidates):
        raise AllocationError("dispatch is a non-negative number of kW in the curtailment's direction")
    available = sum((c.dispatched_kw for c in candidates), Decimal(0))
    target = min(required_kw, available)
    if method is Method.PRO_RATA:
        ordered = sorted(candidates, key=lambda c: c.resource_id)
        dispatch = [c.dispatched_kw for c in ordered]
        reductions = apportion(target, dispatch, caps=dispatch, quantum=quantum)
    else:
        ordered = sorted(candidates, key=_filo_key if method is Method.FILO else _bid_key(direction))
        reductions = _in_order(target, [c.dispatched_kw for c in ordered])
    shares = tuple(Share(c, r) for c, r in zip(ordered, reductions, strict=True))
    return Allocation(required_kw=required_kw, available_kw=available, shares=shares)


def _filo_key(candidate: Candidate) -> tuple[int, str]:
    return (-candidate.connected, candidate.resource_id)


def _bid_key(direction: Direction) -> Callable[[Candidate], tuple[bool, Decimal, str]]:
    """Least valuable first: unpriced dispatch, then (export) the dearest offer or (import) the cheapest bid."""

    def key(candidate: Candidate) -> tuple[bool, Decimal, str]:
        if candidate.price is None:
            return (False, Decimal(0), candidate.resource_id)
        price = -candidate.price if direction is Direction.EXPORT else candidate.price
        return (True, price, candidate.resource_id)

    return key


def _in_order(target: Decimal, dispatch: Sequence[Decimal]) -> list[Decimal]:
    """Take each resource's whole dispatch in turn until the target is met (at most one is taken in part)."""
    left = target
    taken: list[Decimal] = []
    for kw in dispatch:
        part = min(left, kw)
        taken.append(part)
        left -= part
    return taken


def apportion(
    total: Decimal, weights: Sequence[Decimal], *, caps: Sequence[Decimal] | None = None, quantum: Decimal = WATT
) -> list[Decimal]:
    """Split ``total`` in proportion to ``weights`` (all zero: equally), exactly: the parts add up to ``total``.

    Each part is its exact proportional share rounded down to the quantum; what rounding left over is handed out a
    quantum at a time to the largest remainders (ties: the earlier position, so callers order by id), never
    beyond a part's cap. The last hand-out may be smaller than a quantum when ``total`` itself is finer than one.
    With ``caps``, ``total`` may not exceed their sum, and proportional shares never exceed their caps when the
    weights are the caps (pro rata), so each part stays within its cap.
    """
    if not weights:
        if total != 0:
            raise AllocationError("nothing to apportion a non-zero total among")
        return []
    if total < 0 or any(w < 0 for w in weights):
        raise AllocationError("apportion takes a non-negative total and non-negative weights")
    if caps is not None and (len(caps) != len(weights) or total > sum(caps, Decimal(0))):
        raise AllocationError("the total exceeds what the caps allow")
    whole = sum(weights, Decimal(0))
    fractions = (
        [Fraction(w) / Fraction(whole) for w in weights] if whole else [Fraction(1, len(weights))] * len(weights)
    )
    step = Fraction(quantum)
    exact = [Fraction(total) * f for f in fractions]
    parts = [quantum * math.floor(e / step) for e in exact]
    if caps is not None:
        parts = [min(p, c) for p, c in zip(parts, caps, strict=True)]
    left = total - sum(parts, Decimal(0))
    by_remainder = sorted(range(len(parts)), key=lambda i: (-(exact[i] - Fraction(parts[i])), i))
    for i in by_remainder * 2:  # one pass suffices when shares are within their caps; the second is a guard
        if left <= 0:
            break
        room = (caps[i] - parts[i]) if caps is not None else left
        give = min(quantum, left, room)
        if give > 0:
            parts[i] += give
            left -= give
    if left != 0:
        raise AllocationError(f"could not apportion {total} within the caps")
    return parts
