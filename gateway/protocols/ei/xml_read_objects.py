"""Decoding the objects a payload carries (``ei:eiTender``/``ei:eiQuote``, ``ei:eiTransaction``,
``emix:delivery``/``ei:eiDelivery``, ``gw:position``, the party registration info) and the ``gw:extension`` that
completes them, into canonical objects.

Each reader gathers what the elements say into a dict and lets the canonical model validate it; a refusal by the
model becomes a 422 that points at the element (the interval, for a row). Streams are read by
:mod:`~gateway.protocols.ei.xml_read_streams`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gateway.model import Delivery, Party, Position, Tender, Transaction
from gateway.protocols.ei.messages import ResponseCode
from gateway.protocols.ei.xml_names import _E, _EXT_KEYS, _KEYS, _SIDES, _TRANSACTIVE_STATES
from gateway.protocols.ei.xml_read_streams import (
    _DELIVERY_KEYS,
    _EI_DELIVERY_KEYS,
    _OPTION_KEYS,
    _PRODUCT_KEYS,
    _Stream,
    _stream,
)
from gateway.protocols.ei.xml_read_values import (
    _Bad,
    _bool,
    _children,
    _datetime,
    _decimal,
    _raw_text,
    _require,
    _show,
    _text,
    _unexpected,
    _validate,
)


def _ext_field(out: dict[str, Any], key: str, child: _E) -> None:
    name = key[3:]
    if name == "tenderID":
        out.setdefault("tenderID", []).append(_text(child))
        return
    if name in out:
        raise _Bad(child, f"<{_show(key)}> appears twice")
    if name in ("start", "end", "createdDateTime", "measuredDateTime", "executedDateTime"):
        out[name] = _datetime(child)
    elif name == "clearingID":  # free text, not an id: exactly as written
        out[name] = _raw_text(child)
    else:
        out[name] = _text(child)
    out["@" + name] = child


def _extension(element: _E) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys = _KEYS
    for child in element:
        key = keys[child.tag]
        if key in _EXT_KEYS:
            _ext_field(out, key, child)
        elif key == "ei:eiTransaction":
            out.setdefault("transactions", []).append(child)
        else:
            raise _unexpected(child, element)
    return out


def _product_tail(stream: _Stream, element: _E, data: dict[str, Any]) -> None:
    """The emix:product / emix:emixOption fields after the stream: state, expiry, market, side, currency ..."""
    parts = stream.parts
    state = parts.get("emix:transactiveState")
    if state is None:
        raise _Bad(element, "missing <emix:transactiveState>")
    if (state.text or "").strip() not in _TRANSACTIVE_STATES:
        raise _Bad(state, f"{(state.text or '').strip()[:30]!r} is not a transactive state")
    data["market_id"] = _text(_require(parts, "emix:marketContext", element))
    side_el = _require(parts, "emix:side", element)
    side = (side_el.text or "").strip()
    if side not in _SIDES:
        raise _Bad(side_el, f"{side[:20]!r} is not a side (buy or sell)")
    data["side"] = side
    currency = parts.get("emix:currency")
    if currency is not None:
        data["currency"] = _text(currency)
    if stream.quantity_unit is not None:
        data["quantity_unit"] = stream.quantity_unit
    if stream.price_per is not None:
        data["price_per"] = stream.price_per
    if stream.location is None:
        raise _Bad(parts["power:temixPower"], "missing the location (<power:serviceDeliveryPoint>/<power:node>)")
    data["location_id"] = stream.location
    if "emix:optionHolderSide" in stream.parts or "emix:optionType" in stream.parts:
        data["product"] = _option(stream, element)
    elif stream.transport is not None:
        data["product"] = {
            "type": "transport",
            "from_location_id": stream.transport[0],
            "to_location_id": stream.transport[1],
        }
    elif (stream.quantity_unit is not None and stream.quantity_unit.is_reactive) or (
        stream.price_per is not None and stream.price_per.is_reactive
    ):
        data["product"] = {"type": "reactive_energy"}
    else:
        data["product"] = {"type": "energy"}


def _option(stream: _Stream, element: _E) -> dict[str, Any]:
    parts = stream.parts
    kind_el = parts.get("emix:optionType")
    kind = (kind_el.text or "").strip() if kind_el is not None else ""
    holder_el = _require(parts, "emix:optionHolderSide", element)
    holder = (holder_el.text or "").strip()
    if holder not in _SIDES:
        raise _Bad(holder_el, f"{holder[:20]!r} is not a side (buy or sell)")
    if kind not in ("call", "put"):
        kind = "call" if holder == "buy" else "put"
    elif (kind == "call") != (holder == "buy"):
        raise _Bad(holder_el, f"a {kind} option's holder side is {'buy' if kind == 'call' else 'sell'}")
    values = []
    for key in ("emix:optionStrikePrice", "emix:optionPremium"):
        price_el = _require(parts, key, element)
        inner = _children(price_el, frozenset({"emix:value"}))
        values.append(_decimal(_require(inner, "emix:value", price_el)))
    return {"type": "option", "option_kind": kind, "strike": values[0], "premium": values[1]}


def _object_parts(element: _E, id_key: str, extra: frozenset[str] = frozenset()) -> tuple[dict[str, Any], _E]:
    """ids, the one product and the gw:extension of an eiTender / eiQuote / eiTransaction."""
    out: dict[str, Any] = {}
    product = None
    keys = _KEYS
    for child in element:
        key = keys[child.tag]
        if key == id_key or key in extra:
            if key in out:
                raise _Bad(child, f"<{_show(key)}> appears twice")
            out[key] = _text(child)
        elif key in ("emix:product", "emix:emixOption"):
            if product is not None:
                raise _Bad(child, "more than one product; this gateway maps one product per tender")
            product = child
        elif key == "gw:extension":
            out["ext"] = _extension(child)
        else:
            raise _unexpected(child, element)
    if id_key not in out:
        raise _Bad(element, f"missing <{id_key}>")
    if product is None:
        raise _Bad(element, "missing <emix:product>")
    return out, product


def _tender(element: _E, message_party: str | None, quote: bool) -> Tender:
    ids, product = _object_parts(element, "ei:quoteID" if quote else "ei:tenderID")
    ext = ids.get("ext", {})
    time_zone = ext.get("timeZone", "UTC")
    option = _KEYS[product.tag] == "emix:emixOption"
    stream = _stream(product, _OPTION_KEYS if option else _PRODUCT_KEYS, time_zone)
    party = ext.get("partyID") or message_party
    if party is None:
        raise _Bad(element, "names no party (add gw:extension/gw:partyID; the payload has no party)")
    prices, quantities = stream.prices, stream.quantities
    if None in prices or None in quantities:
        index = next(i for i, (p, q) in enumerate(zip(prices, quantities, strict=True)) if p is None or q is None)
        missing = "emix:price" if prices[index] is None else "emix:quantity"
        raise _Bad(stream.intervals[index], f"missing <{missing}> (in the interval or the stream)")
    rows = [
        {"start": start, "quantity": quantity, "price": price}
        for start, quantity, price in zip(stream.starts, quantities, prices, strict=True)
    ]
    data: dict[str, Any] = {
        "id": ids["ei:quoteID" if quote else "ei:tenderID"],
        "party_id": party,
        "resolution": stream.resolution,
        "time_zone": time_zone,
        "rows": rows,
    }
    _product_tail(stream, product, data)
    parts = stream.parts
    expires = parts.get("emix:expirationDate")
    if expires is not None:
        data["expires_at"] = _datetime(expires)
    integral = parts.get("emix:integralOnly")
    if integral is not None:
        data["all_or_none"] = _bool(integral)
    if "status" in ext:
        data["status"] = ext["status"]
    if "createdDateTime" in ext:
        data["created_at"] = ext["createdDateTime"]
    what = f"{'quote' if quote else 'tender'} {data['id']!r}"
    return _validate(Tender, data, element, what, stream.intervals)


def _one_interval(stream: _Stream, time_zone: str) -> tuple[dict[str, Any], Decimal | None, Decimal | None]:
    if len(stream.starts) != 1:
        raise _Bad(
            stream.parts["strm:intervals"],
            f"has {len(stream.starts)} intervals; this object covers exactly one",
            ResponseCode.UNPROCESSABLE,
        )
    interval = {"start": stream.starts[0], "duration": stream.resolution, "time_zone": time_zone}
    return interval, stream.quantities[0], stream.prices[0]


def _transaction(element: _E, message_party: str | None, message_counterparty: str | None) -> Transaction:
    ids, product = _object_parts(element, "ei:transactionID", frozenset({"ei:tenderID"}))
    ext = ids.get("ext", {})
    time_zone = ext.get("timeZone", "UTC")
    option = _KEYS[product.tag] == "emix:emixOption"
    stream = _stream(product, _OPTION_KEYS if option else _PRODUCT_KEYS, time_zone)
    interval, quantity, price = _one_interval(stream, time_zone)
    if price is None or quantity is None:
        raise _Bad(stream.intervals[0], f"missing <emix:{'price' if price is None else 'quantity'}>")
    party = ext.get("partyID") or message_party
    counterparty = ext.get("counterPartyID") or message_counterparty
    if party is None or counterparty is None:
        raise _Bad(element, f"names no {'party' if party is None else 'counterparty'} (the payload names none either)")
    data: dict[str, Any] = {
        "id": ids["ei:transactionID"],
        "party_id": party,
        "counterparty_id": counterparty,
        "interval": interval,
        "quantity": quantity,
        "price": price,
    }
    for key, name in (("ei:tenderID", "tender_id"),):
        if key in ids:
            data[name] = ids[key]
    for key, name in (("clearingID", "clearing_id"), ("subscriptionID", "subscription_id")):
        if key in ext:
            data[name] = ext[key]
    if "executedDateTime" in ext:
        data["executed_at"] = ext["executedDateTime"]
    _product_tail(stream, product, data)
    return _validate(Transaction, data, element, f"transaction {data['id']!r}", stream.intervals)


def _delivery(element: _E, message_party: str | None) -> Delivery:
    ei = _KEYS[element.tag] == "ei:eiDelivery"
    ext: dict[str, Any] = {}
    for child in element:  # first: the time zone decides where calendar intervals start
        if _KEYS[child.tag] == "gw:extension":
            ext = _extension(child)
    time_zone = ext.get("timeZone", "UTC")
    stream = _stream(element, _EI_DELIVERY_KEYS if ei else _DELIVERY_KEYS, time_zone)
    interval, quantity, _price = _one_interval(stream, time_zone)
    if quantity is None:
        raise _Bad(stream.intervals[0], "missing <emix:quantity>")
    parts = stream.parts
    injection = _bool(_require(parts, "emix:injection", element))
    if ei:
        delivery_id = _text(_require(parts, "ei:eiDeliveryID", element))
        measured = _datetime(_require(parts, "ei:createdDateTime", element))
    else:
        delivery_id = _text(_require(parts, "emix:uid", element))
        measured = ext.get("measuredDateTime")
    if stream.location is None:
        raise _Bad(parts["power:temixPower"], "missing the location (<power:serviceDeliveryPoint>/<power:node>)")
    party = ext.get("partyID") or message_party
    if party is None:
        raise _Bad(element, "names no party (the payload names none either)")
    data: dict[str, Any] = {
        "id": delivery_id,
        "party_id": party,
        "location_id": stream.location,
        "interval": interval,
        "quantity": -quantity if injection else quantity,
    }
    if stream.quantity_unit is not None:
        data["quantity_unit"] = stream.quantity_unit
    if measured is not None:
        data["measured_at"] = measured
    for key, name in (("resourceID", "resource_id"), ("quality", "quality")):
        if key in ext:
            data[name] = ext[key]
    return _validate(Delivery, data, element, f"delivery {delivery_id!r}")


_POSITION_FIELDS = {
    "gw:partyID": ("party_id", _text),
    "gw:marketContext": ("market_id", _text),
    "gw:locationID": ("location_id", _text),
    "gw:productType": ("product_type", _text),
    "gw:dtStart": ("start", _datetime),
    "gw:duration": ("duration", _text),
    "gw:timeZone": ("time_zone", _text),
    "gw:quantity": ("quantity", _decimal),
    "gw:cost": ("cost", _decimal),
    "gw:currency": ("currency", _text),
    "gw:quantityUnit": ("quantity_unit", _text),
    "gw:pricePer": ("price_per", _text),
    "gw:asOf": ("as_of", _datetime),
}
_POSITION_REQUIRED = (
    "gw:partyID",
    "gw:marketContext",
    "gw:locationID",
    "gw:dtStart",
    "gw:duration",
    "gw:quantity",
    "gw:cost",
)


def _position(element: _E) -> Position:
    parts = _children(element, frozenset(_POSITION_FIELDS))
    for key in _POSITION_REQUIRED:
        _require(parts, key, element)
    data: dict[str, Any] = {}
    for key, child in parts.items():
        name, read = _POSITION_FIELDS[key]
        data[name] = read(child)
    interval = {
        "start": data.pop("start"),
        "duration": data.pop("duration"),
        "time_zone": data.pop("time_zone", "UTC"),
    }
    data["interval"] = interval
    return _validate(Position, data, element, "position")


def _party(element: _E, registree: str | None) -> Party:
    parts = _children(
        element,
        frozenset({"gw:partyID", "gw:name", "gw:createdDateTime"}),
        frozenset({"gw:role", "gw:identity"}),
    )
    party_el = parts.get("gw:partyID")
    data: dict[str, Any] = {
        "id": _text(party_el) if party_el is not None else registree,
        "name": _raw_text(_require(parts, "gw:name", element)),
        "roles": [_text(r) for r in parts.get("gw:role", ())],
    }
    identities = {}
    for identity in parts.get("gw:identity", ()):
        inner = _children(identity, frozenset({"gw:kind", "gw:value"}))
        kind = _text(_require(inner, "gw:kind", identity))
        if kind in identities:
            raise _Bad(identity, f"identity {kind!r} appears twice")
        identities[kind] = _raw_text(_require(inner, "gw:value", identity))
    data["identities"] = identities
    if "gw:createdDateTime" in parts:
        data["created_at"] = _datetime(parts["gw:createdDateTime"])
    return _validate(Party, data, element, f"party {data['id']!r}")
