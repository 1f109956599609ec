"""Decoding a WS-Calendar stream (``emix:product``, ``emix:emixOption``, ``emix:delivery`` ...): its head, its
stream-level payload and its interval table, into a :class:`_Stream` the object readers map to canonical objects.

The interval table is the hot path of the codec (a day-ahead tender is 24 to 288 intervals), so it has two
readers: :func:`_fast_intervals` reads the common shape in bulk, and :func:`_intervals` reads anything else, one
interval at a time, and says what is wrong. Both must agree (tests/test_ei_xml.py checks that they do).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import islice
from typing import Any

from gateway.model import Resolution
from gateway.model.units import EnergyUnit, PowerUnit
from gateway.protocols.ei import streams
from gateway.protocols.ei.messages import ResponseCode
from gateway.protocols.ei.xml_names import (
    _E,
    _ENERGY_ELEMENTS,
    _ENERGY_OF,
    _FAST_TAGS,
    _KEYS,
    _MAX_NUMBER_CHARS,
    _NODE_INTERFACES,
    _POWER_ELEMENTS,
    _POWER_OF,
    _RESOLUTIONS,
)
from gateway.protocols.ei.xml_read_values import (
    _DECIMALS,
    _FLOATS,
    _UID,
    _UIDS,
    _Bad,
    _children,
    _datetime,
    _decimal,
    _float_decimal,
    _require,
    _show,
    _text,
    _unexpected,
)

_STREAM_KEYS = ("xcal:dtStart", "xcal:duration", "power:temixPower", "strm:intervals", "emix:uid")
_PRODUCT_KEYS = frozenset(
    (
        *_STREAM_KEYS,
        "emix:transactiveState",
        "emix:expirationDate",
        "emix:integralOnly",
        "emix:currency",
        "emix:marketContext",
        "emix:side",
    )
)
_OPTION_KEYS = _PRODUCT_KEYS | {
    "emix:optionHolderSide",
    "emix:optionPremium",
    "emix:optionStrikePrice",
    "emix:optionType",
}
_DELIVERY_KEYS = frozenset((*_STREAM_KEYS, "emix:injection", "gw:extension"))
_EI_DELIVERY_KEYS = _DELIVERY_KEYS | {"ei:eiDeliveryID", "ei:createdDateTime"}


@dataclass(slots=True)
class _Stream:
    parts: dict[str, _E]
    resolution: Resolution
    starts: list[datetime]
    intervals: _E
    uids: list[int] = field(default_factory=list)
    prices: list[Decimal | None] = field(default_factory=list)
    quantities: list[Decimal | None] = field(default_factory=list)
    location: str | None = None
    quantity_unit: PowerUnit | None = None
    price_per: EnergyUnit | None = None
    transport: tuple[str, str] | None = None


def _stream(element: _E, allowed: frozenset[str], time_zone: str) -> _Stream:
    """A WS-Calendar stream: its head, its stream-level payload and its intervals, in one pass each."""
    parts: dict[str, _E] = {}
    keys = _KEYS
    for child in element:
        key = keys[child.tag]
        if key not in allowed:
            raise _unexpected(child, element)
        if key in parts:
            raise _Bad(child, f"<{_show(key)}> appears twice")
        parts[key] = child

    start_el = _require(parts, "xcal:dtStart", element)
    dt_start = _dt_start(start_el)
    duration_el = _require(parts, "xcal:duration", element)
    text = (duration_el.text or "").strip()
    resolution = _RESOLUTIONS.get(text)
    if resolution is None:
        raise _Bad(
            duration_el,
            f"duration {text[:20]!r} is not a market resolution ({', '.join(_RESOLUTIONS)})",
            ResponseCode.UNPROCESSABLE,
        )
    intervals_el = _require(parts, "strm:intervals", element)
    stream = _Stream(parts, resolution, [], intervals_el)
    payload = _require(parts, "power:temixPower", element)
    default_price, default_quantity = _stream_payload(payload, stream)

    if not _fast_intervals(intervals_el, stream):
        _intervals(intervals_el, stream, default_price, default_quantity)
    try:
        stream.starts = streams.starts(dt_start, resolution, time_zone, stream.uids)
    except (ValueError, OverflowError, ArithmeticError) as exc:
        raise _Bad(intervals_el, f"intervals out of range: {exc}", ResponseCode.UNPROCESSABLE) from None
    return stream


def _fast_intervals(intervals_el: _E, stream: _Stream) -> bool:
    """The common interval table, read in bulk: every interval exactly strm:uid + power:temixPower(emix:price/
    emix:value, emix:quantity) in schema order and the document's own namespaces, valid numbers, increasing uids.

    The table is walked as one flat run of descendants, six at a time: a preorder sequence of (tag, number of
    children) determines a tree, so checking both for each element proves the shape without nested loops.
    Each column is then checked by one regex over its joined texts and converted by ``map``. False: something
    is unusual or wrong, and :func:`_intervals` reads the table again, one interval at a time, and says what."""
    tags = _FAST_TAGS.get(intervals_el.tag)
    if tags is None:
        return False
    si_tag, uid_tag, body_tag, price_tag, value_tag, quantity_tag = tags
    uid_texts: list[str | None] = []
    price_texts: list[str | None] = []
    quantity_texts: list[str | None] = []
    run = intervals_el.iterdescendants()
    try:
        for interval, uid, body, price, value, quantity in zip(run, run, run, run, run, run, strict=True):
            if (
                interval.tag != si_tag
                or uid.tag != uid_tag
                or body.tag != body_tag
                or price.tag != price_tag
                or value.tag != value_tag
                or quantity.tag != quantity_tag
                or len(interval) != 2
                or len(uid)
                or len(body) != 2
                or len(price) != 1
                or len(value)
                or len(quantity)
            ):
                return False
            uid_texts.append(uid.text)
            price_texts.append(value.text)
            quantity_texts.append(quantity.text)
    except ValueError:  # zip(strict=True): the run is not a whole number of intervals
        return False
    if not uid_texts or None in uid_texts or None in price_texts or None in quantity_texts:
        return False
    texts: list[str] = [*price_texts, *quantity_texts]  # type: ignore[list-item]
    if (
        max(map(len, texts)) > _MAX_NUMBER_CHARS
        or _UIDS.fullmatch("\x00".join(uid_texts)) is None  # type: ignore[arg-type]
        or _DECIMALS.fullmatch("\x00".join(price_texts)) is None  # type: ignore[arg-type]
        or _FLOATS.fullmatch("\x00".join(quantity_texts)) is None  # type: ignore[arg-type]
    ):
        return False
    uids = list(map(int, uid_texts))  # type: ignore[arg-type]
    if len(uids) > 1 and not all(map(int.__lt__, uids, islice(uids, 1, None))):
        return False
    stream.uids = uids
    stream.prices = list(map(Decimal, price_texts))  # type: ignore[arg-type]
    stream.quantities = list(map(Decimal, quantity_texts))  # type: ignore[arg-type]
    return True


def _intervals(
    intervals_el: _E, stream: _Stream, default_price: Decimal | None, default_quantity: Decimal | None
) -> None:
    """The interval table, one interval at a time, any namespace set and layout; refusals name the element."""
    uids = stream.uids
    prices = stream.prices
    quantities = stream.quantities
    transport = None
    previous = -1
    is_uid = _UID.fullmatch
    for interval in intervals_el:
        uid_el, body, price, quantity, ends = _interval(interval, intervals_el, default_price, default_quantity)
        uid_text = uid_el.text
        if len(uid_el):
            raise _Bad(uid_el, "must hold text, not elements")
        if uid_text is None or is_uid(uid_text) is None:
            raise _Bad(uid_el, f"{(uid_text or '').strip()[:20]!r} is not an interval number (0, 1, 2 ...)")
        uid = int(uid_text)
        if uid <= previous:
            raise _Bad(
                uid_el,
                f"interval {uid} does not come after interval {previous}; intervals must be in order, none twice",
                ResponseCode.UNPROCESSABLE,
            )
        previous = uid
        uids.append(uid)
        prices.append(price)
        quantities.append(quantity)
        if ends is not None or transport is not None:
            if transport is None and len(uids) > 1:
                raise _Bad(body, "only some intervals name transport ends; name them in every interval")
            if ends is None:
                raise _Bad(body, "missing <power:transportInterface> (the other intervals name transport ends)")
            if transport is not None and ends != transport:
                reason = "transport ends differ between intervals (a tender is one product)"
                raise _Bad(body, reason, ResponseCode.UNPROCESSABLE)
            transport = ends
    if not uids:
        raise _Bad(intervals_el, "missing <strm:streamInterval>")
    stream.transport = transport


def _interval(
    interval: _E, intervals_el: _E, price: Decimal | None, quantity: Decimal | None
) -> tuple[_E, _E, Decimal | None, Decimal | None, tuple[str, str] | None]:
    """One strm:streamInterval, any namespace set: (uid element, payload, price, quantity, transport ends)."""
    keys = _KEYS
    if keys[interval.tag] != "strm:streamInterval":
        raise _unexpected(interval, intervals_el)
    uid_el = body = None
    for child in interval:
        key = keys[child.tag]
        if key == "strm:uid" and uid_el is None:
            uid_el = child
        elif key == "power:temixPower" and body is None:
            body = child
        else:
            raise _unexpected(child, interval)
    if uid_el is None:
        raise _Bad(interval, "missing <strm:uid>")
    if body is None:
        raise _Bad(interval, "missing <power:temixPower>")
    ends = None
    for child in body:
        key = keys[child.tag]
        if key == "emix:price":
            value = None
            for v in child:
                if keys[v.tag] != "emix:value" or value is not None:
                    raise _unexpected(v, child)
                value = _decimal(v)
            if value is None:
                raise _Bad(child, "missing <emix:value>")
            price = value
        elif key == "emix:quantity":
            quantity = _float_decimal(child)
        elif key == "power:transportInterface":
            ends = _transport(child)
        else:
            raise _unexpected(child, body)
    return uid_el, body, price, quantity, ends


def _dt_start(element: _E) -> datetime:
    inner = None
    for child in element:
        if inner is not None:
            raise _unexpected(child, element)
        inner = child
    if inner is None or _KEYS[inner.tag] != "xcal:dateTime":
        raise _Bad(
            inner if inner is not None else element,
            "dtStart needs an <xcal:dateTime> (a date or time alone is not an instant)",
        )
    return _datetime(inner)


def _stream_payload(payload: _E, stream: _Stream) -> tuple[Decimal | None, Decimal | None]:
    """The stream-level temixPower: location, units, and price/quantity the intervals inherit."""
    price = quantity = None
    keys = _KEYS
    for child in payload:
        key = keys[child.tag]
        if key in _NODE_INTERFACES:
            if stream.location is not None:
                raise _Bad(child, "a second interface; the stream-level interface is the location")
            inner = _children(child, frozenset({_NODE_INTERFACES[key]}))
            stream.location = _text(_require(inner, _NODE_INTERFACES[key], child))
        elif key in _POWER_ELEMENTS:
            stream.quantity_unit = _unit(child, key, _POWER_OF)
        elif key in _ENERGY_ELEMENTS:
            stream.price_per = _unit(child, key, _ENERGY_OF)
        elif key == "emix:price":
            inner = _children(child, frozenset({"emix:value"}))
            price = _decimal(_require(inner, "emix:value", child))
        elif key == "emix:quantity":
            quantity = _float_decimal(child)
        elif key == "power:transportInterface":
            raise _Bad(
                child,
                "transport ends belong in each interval; the stream-level interface is the tender's location",
                ResponseCode.UNPROCESSABLE,
            )
        elif key in ("power:powerApparent", "power:energyApparent"):
            raise _Bad(child, "apparent power (VA) is not a traded unit here", ResponseCode.UNPROCESSABLE)
        else:
            raise _unexpected(child, payload)
    return price, quantity


def _unit(element: _E, key: str, table: dict[tuple[str, str], Any]) -> Any:
    scale = None
    for child in element:
        k = _KEYS[child.tag]
        if k == "scale:siScaleCode":
            scale = (child.text or "").strip()
        elif k not in ("power:itemDescription", "power:itemUnits", "power:powerAttributes"):
            raise _unexpected(child, element)
    if scale is None:
        raise _Bad(element, "missing <scale:siScaleCode>")
    unit = table.get((key, scale))
    if unit is None:
        raise _Bad(element, f"scale {scale[:10]!r} is not supported here (none, k or M)", ResponseCode.UNPROCESSABLE)
    return unit


def _transport(element: _E) -> tuple[str, str]:
    parts = _children(element, frozenset({"power:pointOfReceipt", "power:pointOfDelivery"}))
    return (
        _text(_require(parts, "power:pointOfReceipt", element)),
        _text(_require(parts, "power:pointOfDelivery", element)),
    )
