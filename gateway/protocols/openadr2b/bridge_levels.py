"""What the northbound bridge makes of a utility's event: pure functions, no I/O (the bridge does the I/O).

An event from a utility's VTN is addressed to the gateway's VEN, which stands for one canonical party. Its names
are the utility's (its venID for us, its group ids) and mean nothing in the canonical store, so the event is first
*localised*: it targets the party, plus those of the party's resources it names, and its id gets a prefix naming
the party and the utility, because event ids are only unique per VTN and a canonical id is global.

Then each SIMPLE signal becomes what the program's ``simple_levels.mode`` says (mappings/openadr2b.yaml):

- ``control``: the dr_level Control the mapper made, unchanged;
- ``curtailment``: a ``limit`` on ``import_power`` in kW of ``site_import_kw - curtailment_kw[level]`` (not below
  0). A curtailment is a reduction of what the site may draw, so it is expressed as the import limit that results,
  which is what a device or an operating envelope can act on; a setpoint would force consumption up to the value;
- ``price_adder``: a sell Tender of the utility at ``base_price + adder[level]`` per kWh for ``tender_quantity_kw``,
  one row per market interval. An event off the market's grid (a start that is not an interval boundary, or an
  interval that is not a whole number of market intervals) is refused rather than rounded: a price for a part of an
  interval would be a different price for the whole interval.

Signals other than SIMPLE keep the mapper's Control whatever the mode.

The party's answer is decided here too (``answer_for``): optOut when it has an active opt-out override of what
the event became, or of one of the event's resources over a time that overlaps the event; else optIn.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import TypeVar

from pydantic import ValidationError

from gateway.model import (
    Control,
    ControlKind,
    ControlPeriod,
    ControlSignal,
    ControlStatus,
    ControlUnit,
    EnergyUnit,
    Market,
    PowerUnit,
    Tender,
    TenderRow,
    TenderStatus,
)
from gateway.model.intervals import TimeSpan, interval_end, is_aligned
from gateway.model.market import Side
from gateway.model.overrides import Override, OverrideMode, OverrideStatus, SubjectKind
from gateway.protocols.openadr2b.mapper import OPT_REASONS, MappingError, reason_text
from gateway.protocols.openadr2b.messages import Event, OptType, Target
from gateway.protocols.openadr2b.table import LevelMode, Program, SimpleLevels

SIMPLE = "SIMPLE"
_K = TypeVar("_K")
_UNSAFE = re.compile(r"[\s/]+")
BridgeObject = Control | Tender


def id_prefix(party_id: str, vtn_id: str) -> str:
    """``<party>.<vtn>.``: the VTN id with anything an id may not hold (whitespace, '/') replaced."""
    return f"{party_id}.{_UNSAFE.sub('-', vtn_id)}."


def unlisted(made: Sequence[tuple[_K, str]], prefix: str, listed: Collection[str]) -> list[tuple[_K, str]]:
    """Of objects made (before a restart) from this VTN's events, those whose event the VTN no longer lists: an
    object's id is the prefix and the event id, and a signal id after a dot when the event had several signals."""
    ids = {prefix + event_id for event_id in listed}
    return [(kind, i) for kind, i in made if i not in ids and not any(i.startswith(e + ".") for e in ids)]


def event_resources(event: Event, own: Collection[str]) -> frozenset[str]:
    """The party's resources an event is about: those it names, or all of them when it names none of them."""
    named = [r for r in event.target.resource_ids if r in own]
    return frozenset(named or own)


def localise(event: Event, *, prefix: str, party_id: str, own_resources: Collection[str]) -> Event:
    """The event as the party's: prefixed id, targets = the party and the resources of its own the event names.

    Signal targets are dropped too: in 2.0b they are device classes (endDeviceAsset), which the canonical model
    has no field for, and left in place they would make the mapper read the signal as a broadcast."""
    named = [r for r in event.target.resource_ids if r in own_resources]
    return dataclasses.replace(
        event,
        event_id=prefix + event.event_id,
        target=Target(party_ids=[party_id], resource_ids=named),
        signals=[dataclasses.replace(signal, target=None) for signal in event.signals],
    )


def apply_levels(
    event: Event, controls: Sequence[Control], program: Program | None, market: Market | None
) -> list[BridgeObject]:
    """The canonical objects of a (localised) event, given the mapper's controls (one per signal, in order)."""
    levels = program.simple_levels if program is not None else SimpleLevels()
    out: list[BridgeObject] = []
    for signal, control in zip(event.signals, controls, strict=True):
        if signal.name != SIMPLE or levels.mode is LevelMode.CONTROL:
            out.append(control)
        elif levels.mode is LevelMode.CURTAILMENT:
            out.append(curtailment_control(control, levels))
        else:
            assert program is not None  # price_adder is a program's mode
            if market is None:
                raise MappingError(f"program '{program.program_id}': market '{program.market_id}' is not in the store")
            out.append(price_tender(control, program, market))
    return out


def _level(value: Decimal | None) -> int:
    assert value is not None  # a level control has a value in every period
    return int(value)


def curtailment_control(control: Control, levels: SimpleLevels) -> Control:
    assert levels.site_import_kw is not None  # the table requires it in this mode
    periods = [
        ControlPeriod(
            span=period.span,
            value=max(Decimal(0), levels.site_import_kw - levels.curtailment_kw.get(_level(period.value), Decimal(0))),
        )
        for period in control.periods
    ]
    fields = dict(control)
    fields.update(kind=ControlKind.LIMIT, signal=ControlSignal.IMPORT_POWER, unit=ControlUnit.KW, periods=periods)
    return Control(**fields)


def price_tender(control: Control, program: Program, market: Market) -> Tender:
    levels = program.simple_levels
    assert levels.tender_quantity_kw is not None and program.utility_party_id and program.location_id
    rows: list[TenderRow] = []
    for period in control.periods:
        price = levels.base_price + levels.adder.get(_level(period.value), Decimal(0))
        at, end = period.span.start, period.span.end
        while at < end:
            if not is_aligned(at, market.resolution, market.time_zone):
                raise MappingError(
                    f"event '{control.id}': {at.isoformat()} is not the start of a {market.resolution.value} interval"
                    f" of market '{market.id}' ({market.time_zone}); a price event must follow the market's grid"
                )
            step = interval_end(at, market.resolution, market.time_zone)
            if step > end:
                raise MappingError(
                    f"event '{control.id}': the interval ending {end.isoformat()} is not a whole number of"
                    f" {market.resolution.value} intervals of market '{market.id}'"
                )
            rows.append(TenderRow(start=at, quantity=levels.tender_quantity_kw, price=price))
            at = step
    try:
        return Tender(
            id=control.id,
            market_id=market.id,
            party_id=program.utility_party_id,
            side=Side.SELL,
            location_id=program.location_id,
            resolution=market.resolution,
            time_zone=market.time_zone,
            currency=market.currency,
            quantity_unit=PowerUnit.KW,
            price_per=EnergyUnit.KWH,
            rows=rows,
            status=TenderStatus.CANCELLED if control.status is ControlStatus.CANCELLED else TenderStatus.OPEN,
            created_at=control.created_at,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise MappingError(f"event '{control.id}': price tender: {first['msg']}") from exc


def cancelled(obj: BridgeObject) -> BridgeObject | None:
    """The cancelled version of an object the bridge made, or None when there is nothing left to cancel."""
    if isinstance(obj, Control):
        if obj.status in (ControlStatus.CANCELLED, ControlStatus.COMPLETED, ControlStatus.SUPERSEDED):
            return None
        return obj.model_copy(update={"status": ControlStatus.CANCELLED})
    if obj.status not in (TenderStatus.OPEN, TenderStatus.PARTIALLY_FILLED):
        return None
    return obj.model_copy(update={"status": TenderStatus.CANCELLED})


def answer_for(
    made: Collection[str], resources: Collection[str], span: TimeSpan, overrides: Sequence[Override]
) -> tuple[OptType, Override | None]:
    """The party's answer to an event that became the objects ``made``, about ``resources`` over ``span``; with the
    override that decided an optOut."""
    for override in overrides:
        if override.status is not OverrideStatus.ACTIVE or override.mode is not OverrideMode.OPT_OUT:
            continue
        subject = override.subject
        if subject.kind in (SubjectKind.CONTROL, SubjectKind.TENDER) and subject.id in made:
            return OptType.OPT_OUT, override
        if subject.kind is SubjectKind.RESOURCE and subject.id in resources and override.span.overlaps(span):
            return OptType.OPT_OUT, override
    return OptType.OPT_IN, None


def opt_reason(answer: OptType, override: Override | None) -> str:
    """The optReason of an oadrCreateOpt: the override's reason for an optOut, participating for an optIn."""
    if answer is OptType.OPT_IN or override is None:
        return "participating"
    text = reason_text(override.reason, override.reason_text)
    # openleadr refuses any optReason outside the schema's list (x-other among them): the rest go as overrideStatus
    return text if text in OPT_REASONS else "overrideStatus"
