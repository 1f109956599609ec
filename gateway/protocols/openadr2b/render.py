"""Canonical Controls and price Tenders as the OpenADR 2.0b events one VEN sees (the VTN's outbound half of the
mapping; ``mapper`` holds the inbound half and the shared rules).

Each event is personalised: its target is the VEN (and the VEN's own resources the control names), its status is
derived from the times at ``now``, and its currentValue is the active interval's value, 0 unless active (2.0b
profile rule 14). Intervals are back to back with uids from 0 and add up to the event's duration (rules 2, 8).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from gateway.model import (
    Clearing,
    Control,
    ControlKind,
    ControlSignal,
    ControlStatus,
    EnergyUnit,
    Tender,
    convert_price,
)
from gateway.protocols.openadr2b.mapper import MappingError, oadr_priority
from gateway.protocols.openadr2b.messages import (
    Event,
    EventSignal,
    EventStatus,
    ItemUnit,
    ResponseCode,
    ResponseRequired,
    SignalInterval,
    Target,
)
from gateway.protocols.openadr2b.table import MappingTable, SignalMapping, default_table


def event_status(
    start: datetime, end: datetime, now: datetime, *, near_window: timedelta, ramp_up: timedelta | None = None
) -> EventStatus:
    """far/near/active/completed from the times: near within the ramp-up (or the table's near window) before the
    start, active from the start to the end."""
    if now >= end:
        return EventStatus.COMPLETED
    if now >= start:
        return EventStatus.ACTIVE
    if now >= start - (ramp_up if ramp_up is not None else near_window):
        return EventStatus.NEAR
    return EventStatus.FAR


def _contiguous(control: Control, mapping: SignalMapping) -> list[tuple[timedelta, Decimal]]:
    """The control's periods as back-to-back (duration, value) intervals; a gap is filled with level 0 for a level
    signal (normal operation) and refused for any other (there is no neutral price or setpoint)."""
    steps: list[tuple[timedelta, Decimal]] = []
    for earlier, later in itertools.pairwise([None, *control.periods]):
        assert later is not None and later.value is not None
        if earlier is not None and later.span.start > earlier.span.end:
            if control.kind is not ControlKind.LEVEL or control.signal is not ControlSignal.DR_LEVEL:
                raise MappingError(
                    f"control '{control.id}' has gaps between its periods; an OpenADR {mapping.name} event cannot"
                )
            steps.append((later.span.start - earlier.span.end, Decimal(0)))
        steps.append((later.span.duration, later.value / mapping.factor))
    return steps


def control_to_event(
    control: Control,
    *,
    ven_id: str,
    now: datetime,
    table: MappingTable | None = None,
    resource_ids: Sequence[str] = (),
    currency: str | None = None,
) -> Event:
    """The event one VEN sees for a control: its targets are that VEN (and its own resources the control names)."""
    table = table or default_table()
    if control.kind is ControlKind.CURVE:
        raise MappingError(f"control '{control.id}' is a curve; OpenADR 2.0b has no curve signal")
    mapping = table.outbound(control.kind, control.signal, control.unit)
    if mapping is None:
        raise MappingError(
            f"no OpenADR signal renders a {control.kind.value} {control.signal.value} control in {control.unit.value}"
            " (see mappings/openadr2b.yaml)",
            ResponseCode.SIGNAL_NOT_SUPPORTED,
        )
    if mapping.name == "SIMPLE" and any(p.value not in (0, 1, 2, 3) for p in control.periods):
        raise MappingError(f"control '{control.id}' has levels outside SIMPLE's 0..3")
    steps = _contiguous(control, mapping)
    start = control.periods[0].span.start
    end = control.periods[-1].span.end
    program = table.program(control.program_id)
    status = (
        EventStatus.CANCELLED
        if control.status in (ControlStatus.CANCELLED, ControlStatus.SUPERSEDED)
        else event_status(start, end, now, near_window=table.vtn.near_window)
    )
    return _event(
        event_id=control.id,
        modification_number=control.revision,
        created=control.created_at,
        market_context=program.market_context if program else table.vtn.market_context,
        status=status,
        start=start,
        steps=steps,
        mapping=mapping,
        now=now,
        unit=_unit(mapping, currency or table.vtn.currency, table),
        target=Target(ven_ids=[ven_id], resource_ids=list(resource_ids)),
        priority=oadr_priority(control.priority),
        start_after=control.randomize_start or None,
        response_required=ResponseRequired.ALWAYS if control.response_required else ResponseRequired.NEVER,
    )


def _price_signal(table: MappingTable) -> SignalMapping:
    """The signal prices travel in (ELECTRICITY_PRICE/price, currency per kWh)."""
    mapping = table.inbound("ELECTRICITY_PRICE", "price")
    if mapping is None:
        raise MappingError(
            "mappings/openadr2b.yaml has no ELECTRICITY_PRICE/price signal", ResponseCode.SIGNAL_NOT_SUPPORTED
        )
    return mapping


def clearing_to_event(
    clearing: Clearing,
    *,
    location_path: Sequence[str],
    ven_id: str,
    now: datetime,
    table: MappingTable | None = None,
    market_context: str | None = None,
) -> Event:
    """A market interval's cleared price as an ELECTRICITY_PRICE event, at the VEN's own location: the price of
    the nearest priced location on its path to the root (``location_path``, nearest first), else the uniform
    price. This is how a legacy VEN sees a transactive (locational) price."""
    table = table or default_table()
    mapping = _price_signal(table)
    price = next((clearing.prices[loc] for loc in location_path if loc in clearing.prices), clearing.price)
    start, end = clearing.interval.start, clearing.interval.end
    return _event(
        event_id=clearing_event_id(clearing),
        modification_number=0,
        created=clearing.cleared_at,
        market_context=market_context or table.vtn.market_context,
        status=event_status(start, end, now, near_window=table.vtn.near_window),
        start=start,
        steps=[(end - start, convert_price(price, clearing.price_per, EnergyUnit.KWH))],
        mapping=mapping,
        now=now,
        unit=_unit(mapping, clearing.currency, table),
        target=Target(ven_ids=[ven_id]),
        priority=0,
        start_after=None,
        response_required=ResponseRequired.NEVER,
    )


def clearing_event_id(clearing: Clearing) -> str:
    """Event ids travel as OpenADR ids; a clearing's id holds ':' and '+', so the event gets a plain one."""
    return f"price.{clearing.market_id}.{clearing.interval.start.strftime('%Y%m%dT%H%M%SZ')}"


def tender_to_event(
    tender: Tender,
    *,
    ven_id: str,
    now: datetime,
    modification_number: int,
    table: MappingTable | None = None,
    market_context: str | None = None,
) -> Event:
    """A price tender (a tariff, the operator's cleared price) as an ELECTRICITY_PRICE event in currency/kWh."""
    table = table or default_table()
    mapping = _price_signal(table)
    intervals = tender.intervals
    steps = [
        (interval.end - interval.start, convert_price(row["price"], tender.price_per, EnergyUnit.KWH))
        for interval, row in zip(intervals, tender.rows, strict=True)
    ]
    start, end = intervals[0].start, intervals[-1].end
    if any(later.start != earlier.end for earlier, later in itertools.pairwise(intervals)):
        raise MappingError(f"tender '{tender.id}' has gaps between its rows; an OpenADR price event cannot")
    status = (
        EventStatus.CANCELLED
        if tender.status.value in ("cancelled", "expired")
        else event_status(start, end, now, near_window=table.vtn.near_window)
    )
    return _event(
        event_id=tender.id,
        modification_number=modification_number,
        created=tender.created_at,
        market_context=market_context or table.vtn.market_context,
        status=status,
        start=start,
        steps=steps,
        mapping=mapping,
        now=now,
        unit=_unit(mapping, tender.currency, table),
        target=Target(ven_ids=[ven_id]),
        priority=0,
        start_after=None,
        response_required=ResponseRequired.NEVER,
    )


def _unit(mapping: SignalMapping, currency: str, table: MappingTable) -> ItemUnit | None:
    if mapping.item == "currencyPerKWh":
        return ItemUnit(kind="currencyPerKWh", description="currencyPerKWh", units=currency, si_scale="none")
    if mapping.item == "powerReal":
        return ItemUnit(
            kind="powerReal",
            description="RealPower",
            units="W",
            si_scale="k",
            hertz=table.vtn.grid_hertz,
            voltage=table.vtn.grid_voltage,
            ac=True,
        )
    return None


def _event(
    *,
    event_id: str,
    modification_number: int,
    created: datetime,
    market_context: str,
    status: EventStatus,
    start: datetime,
    steps: list[tuple[timedelta, Decimal]],
    mapping: SignalMapping,
    now: datetime,
    unit: ItemUnit | None,
    target: Target,
    priority: int,
    start_after: timedelta | None,
    response_required: ResponseRequired,
) -> Event:
    intervals: list[SignalInterval] = []
    current = Decimal(0)  # 2.0b profile rule 14: currentValue is 0 unless the event is active
    at = start
    for uid, (duration, value) in enumerate(steps):
        intervals.append(SignalInterval(uid=uid, duration=duration, value=value))
        if status is EventStatus.ACTIVE and at <= now < at + duration:
            current = value
        at += duration
    signal = EventSignal(
        name=mapping.name, type=mapping.type, id="0", intervals=intervals, current_value=current, unit=unit
    )
    return Event(
        event_id=event_id,
        modification_number=modification_number,
        market_context=market_context,
        created=created,
        status=status,
        start=start,
        duration=at - start,
        signals=[signal],
        target=target,
        priority=priority,
        test_event="false",
        start_after=start_after,
        response_required=response_required,
    )
