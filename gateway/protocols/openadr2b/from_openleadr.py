"""openleadr's event dicts as the gateway's own OpenADR 2.0b :class:`~gateway.protocols.openadr2b.messages.Event`.

The northbound bridge lets openleadr's OpenADRClient speak to the utility's VTN, so events reach it already parsed,
as openleadr's plain dicts; turning those into ``messages.Event`` lets the one table-driven mapper handle them
exactly as it handles events our own codec decoded. The dict is openleadr's reading of the XML, with its quirks:

- every payload number is a float (or an int): the text is recovered with ``repr``, which is exact for any value a
  VTN writes with up to 15 significant digits (prices and levels always are);
- any text that looks like a number or a boolean became one (an eventID "42" arrives as 42): ids are made text
  again;
- the active period's extras are ``notification``/``ramp_up``/``recovery`` when parsed from the wire, but
  ``notification_period``/``ramp_up_period``/``recovery_period`` on openleadr's own objects: both are read;
- a lowercase ``simple`` signal name (openleadr's server accepts it, the 2.0b schema does not) is read as SIMPLE.

The few places where the bridge must reach into the client's memory of events are here too, so that an openleadr
upgrade has one module to check: ``received_events`` (the events it holds) and ``responded_events`` (its answer to
each, which it re-sends when the VTN lists an event again unchanged).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from openleadr import OpenADRClient
from openleadr import utils as oadr_utils

from gateway.protocols.openadr2b.messages import (
    Event,
    EventSignal,
    EventStatus,
    ItemUnit,
    ResponseRequired,
    SignalInterval,
    Target,
)


class OpenleadrEventError(ValueError):
    """An event dict the gateway cannot read (a field missing or of the wrong kind)."""


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def _decimal(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise OpenleadrEventError(f"{where}: {value!r} is not a number")
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise OpenleadrEventError(f"{where}: {value!r} is not a number") from None
    if not number.is_finite():
        raise OpenleadrEventError(f"{where}: {value!r} is not a finite number")
    return number


def _datetime(value: object, where: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise OpenleadrEventError(f"{where}: {value!r} is not a timezone-aware date-time")
    return value


def _duration(value: object, where: str) -> timedelta:
    if not isinstance(value, timedelta):
        raise OpenleadrEventError(f"{where}: {value!r} is not a duration")
    return value


def _optional_duration(period: Mapping[str, Any], *keys: str) -> timedelta | None:
    for key in keys:
        value = period.get(key)
        if isinstance(value, Mapping):  # {"duration": ...} when openleadr left the nesting in place
            value = value.get("duration")
        if value is not None:
            return _duration(value, f"active period {key}")
    return None


def _start_after(period: Mapping[str, Any]) -> timedelta | None:
    tolerance = period.get("tolerance")
    if not isinstance(tolerance, Mapping):
        return None
    tolerate = tolerance.get("tolerate", tolerance)
    value = tolerate.get("startafter") if isinstance(tolerate, Mapping) else None
    return None if value is None else _duration(value, "active period tolerance startafter")


def _node(value: object, key: str) -> str:
    """Asset and node targets are {"mrid": ...} or {"node": ...} in openleadr's dicts."""
    if isinstance(value, Mapping):
        value = value.get(key)
    return _text(value)


_PLAIN_TARGETS = {
    "ven_id": "ven_ids",
    "group_id": "group_ids",
    "resource_id": "resource_ids",
    "party_id": "party_ids",
    "group_name": "group_names",
}
_NESTED_TARGETS = {
    "end_device_asset": ("end_device_assets", "mrid"),
    "meter_asset": ("meter_assets", "mrid"),
    "pnode": ("pnodes", "node"),
    "p_node": ("pnodes", "node"),
    "aggregated_pnode": ("aggregated_pnodes", "node"),
    "aggregated_p_node": ("aggregated_pnodes", "node"),
    "service_delivery_point": ("service_delivery_points", "node"),
}


def target_from(entries: Sequence[Mapping[str, Any]] | None) -> Target:
    """openleadr's list of one-key target dicts; kinds the gateway does not carry (GML areas) are left out."""
    target = Target()
    for entry in entries or []:
        for key, value in entry.items():
            if value is None:
                continue
            if key in _PLAIN_TARGETS:
                getattr(target, _PLAIN_TARGETS[key]).append(_text(value))
            elif key in _NESTED_TARGETS:
                field, inner = _NESTED_TARGETS[key]
                getattr(target, field).append(_node(value, inner))
    return target


def _unit(measurement: Mapping[str, Any] | None) -> ItemUnit | None:
    if not measurement:
        return None
    attributes = measurement.get("power_attributes") or {}
    return ItemUnit(
        kind=_text(measurement.get("name", "customUnit")),
        description=_text(measurement.get("description") or ""),
        units=_text(measurement.get("unit") or ""),
        si_scale=_text(measurement.get("scale") or "none"),
        hertz=_decimal(attributes["hertz"], "hertz") if attributes.get("hertz") is not None else None,
        voltage=_decimal(attributes["voltage"], "voltage") if attributes.get("voltage") is not None else None,
        ac=attributes.get("ac"),
    )


def _signal(raw: Mapping[str, Any], event_id: str) -> EventSignal:
    where = f"event '{event_id}'"
    name = _text(raw.get("signal_name", ""))
    if name == "simple":
        name = "SIMPLE"
    intervals = []
    for index, interval in enumerate(raw.get("intervals") or []):
        at = f"{where} signal '{raw.get('signal_id')}' interval {index}"
        start = interval.get("dtstart")
        intervals.append(
            SignalInterval(
                uid=int(interval["uid"]) if interval.get("uid") is not None else index,
                duration=_duration(interval.get("duration"), f"{at} duration"),
                value=_decimal(interval.get("signal_payload"), f"{at} payload"),
                start=_datetime(start, f"{at} start") if start is not None else None,
            )
        )
    if not intervals:
        raise OpenleadrEventError(f"{where}: signal '{raw.get('signal_id')}' has no intervals")
    current = raw.get("current_value")
    target = target_from(raw.get("targets"))
    return EventSignal(
        name=name,
        type=_text(raw.get("signal_type", "")),
        id=_text(raw.get("signal_id", "")),
        intervals=intervals,
        current_value=_decimal(current, f"{where} currentValue") if current is not None else None,
        unit=_unit(raw.get("measurement")),
        target=None if target.is_empty() else target,
    )


def event_from_openleadr(raw: Mapping[str, Any]) -> Event:
    """One event as OpenADRClient hands it to ``on_event``/``on_update_event``."""
    try:
        descriptor = raw["event_descriptor"]
        period = raw["active_period"]
        event_id = _text(descriptor["event_id"])
    except (KeyError, TypeError) as exc:
        raise OpenleadrEventError(f"an event without {exc}") from None
    try:
        status = EventStatus(_text(descriptor.get("event_status", "none")))
    except ValueError:
        raise OpenleadrEventError(f"event '{event_id}': unknown status {descriptor.get('event_status')!r}") from None
    test_event = descriptor.get("test_event")
    modified_at = descriptor.get("modification_date_time")
    created = descriptor.get("created_date_time")
    comment = descriptor.get("vtn_comment")
    reason = descriptor.get("modification_reason")
    return Event(
        event_id=event_id,
        modification_number=int(descriptor.get("modification_number") or 0),
        market_context=_text(descriptor.get("market_context", "")),
        created=_datetime(created, f"event '{event_id}' createdDateTime") if created is not None else period["dtstart"],
        status=status,
        start=_datetime(period.get("dtstart"), f"event '{event_id}' dtstart"),
        duration=_duration(period.get("duration"), f"event '{event_id}' duration"),
        signals=[_signal(signal, event_id) for signal in raw.get("event_signals") or []],
        target=target_from(raw.get("targets")),
        modification_at=_datetime(modified_at, "modificationDateTime") if modified_at is not None else None,
        modification_reason=_text(reason) if reason is not None else None,
        priority=int(descriptor["priority"]) if descriptor.get("priority") is not None else None,
        test_event=None if test_event in (None, False) else ("true" if test_event is True else _text(test_event)),
        vtn_comment=_text(comment) if comment is not None else None,
        start_after=_start_after(period),
        notification=_optional_duration(period, "notification", "notification_period"),
        ramp_up=_optional_duration(period, "ramp_up", "ramp_up_period"),
        recovery=_optional_duration(period, "recovery", "recovery_period"),
        response_required=ResponseRequired(_text(raw.get("response_required") or "always")),
    )


def is_test_event(event: Event) -> bool:
    """2.0b: any testEvent value other than "false" marks a test (openleadr reads it the same way)."""
    return event.test_event is not None and event.test_event.strip().lower() != "false"


def restore_forgotten_answers(
    client: OpenADRClient, events: Sequence[Mapping[str, Any]], answer_of: Callable[[str], str]
) -> None:
    """openleadr forgets its answer to an event once the event is cancelled, then fails (and opts out of every event
    in the message) when the VTN lists the cancelled event again unchanged, as VTNs do until it ends. Call this with
    each event list before openleadr reads it: it gives back the answers openleadr would look for and not find."""
    for raw in events:
        raw_id = raw["event_descriptor"]["event_id"]
        known = oadr_utils.find_by(client.received_events, "event_descriptor.event_id", raw_id)
        if not known or raw_id in client.responded_events:
            continue
        if known["event_descriptor"]["modification_number"] == raw["event_descriptor"].get("modification_number"):
            client.responded_events[raw_id] = answer_of(_text(raw_id))


def forget_event(client: OpenADRClient, raw_id: object) -> None:
    """Make the client treat the event as new if the VTN lists it again (after an implied cancellation)."""
    oadr_utils.pop_by(client.received_events, "event_descriptor.event_id", raw_id)
    client.responded_events.pop(raw_id, None)


def remember_answer(client: OpenADRClient, raw_id: object, answer: str) -> None:
    """The answer the client re-sends for an unchanged event: the latest one, also when an oadrCreateOpt gave it."""
    client.responded_events[raw_id] = answer
