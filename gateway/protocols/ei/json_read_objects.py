"""Decoding the objects a CTS JSON message carries (tender, transaction, position, delivery, party, response,
query, tender ids, cancel reason) into canonical objects.

Each reader checks the object's members and JSON types, turns integer + scale into exact decimals and interval
uids into starts, then lets the canonical model validate the result (:mod:`~gateway.protocols.ei.json_validate`).
The tender's interval loop is the codec's hot path and is written for speed: the common case costs a few type
checks, anything odd takes the detailed path that says what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from gateway.model import Delivery, Party, Position, Tender, Transaction
from gateway.model.intervals import is_aligned
from gateway.model.units import EnergyUnit, PowerUnit
from gateway.protocols.ei import streams
from gateway.protocols.ei.json_validate import (
    _DELIVERY_NAMES,
    _PARTY_NAMES,
    _POSITION_NAMES,
    _TENDER_NAMES,
    _TRANSACTION_NAMES,
    _validated,
)
from gateway.protocols.ei.json_values import (
    _CALENDAR,
    _CALENDAR_BUDGET,
    _DESIGNATORS,
    _ENERGY_UNITS,
    _LIMITS,
    _MAX_DESCRIPTION,
    _MAX_UID_CALENDAR,
    _MAX_UID_FIXED,
    _OPTION_KINDS,
    _POWER_UNITS,
    _QUALITIES,
    _REASONS,
    _RESPONSE_CODES,
    _ROLES,
    _SIDES,
    _STATUSES,
    _array,
    _at,
    _bad,
    _bool,
    _enum,
    _id,
    _kind,
    _members,
    _opt_id,
    _opt_time,
    _refused,
    _resolution,
    _scale,
    _scaled,
    _show,
    _text,
    _time,
    _zone,
)
from gateway.protocols.ei.messages import CancelReason, EiResponse, PositionQuery

_PRODUCT_MEMBERS = frozenset({"resourceDesignator", "fromLocation", "toLocation", "option"})
_PRICED_MEMBERS = frozenset({"currency", "quantityUnit", "pricePer"})
_INTERVAL_REQUIRED = frozenset({"dtStart", "duration"})
_INTERVAL_ALLOWED = _INTERVAL_REQUIRED | {"timeZone"}
_OPTION_MEMBERS = frozenset({"optionType", "strikePrice", "premium"})


class _Context:
    """What nested objects inherit from the message (its party and counterparty), and the message's budget of
    calendar intervals: those are walked one by one, so without a budget per message a 4 MiB eiDistributeTender of
    one-interval day tenders at uid 40,000 would cost minutes of CPU."""

    __slots__ = ("calendar_budget", "counterparty_id", "party_id")

    def __init__(self, party_id: str | None, counterparty_id: str | None) -> None:
        self.party_id = party_id
        self.counterparty_id = counterparty_id
        self.calendar_budget = _CALENDAR_BUDGET


def _inherited(obj: dict[str, Any], key: str, path: str, default: str | None) -> Any:
    value = obj.get(key)
    if value is None:
        if default is None:
            raise _bad(_at(path, key), f"missing (and the message has no {key})")
        return default
    return value


def _units(obj: dict[str, Any], path: str) -> tuple[PowerUnit, EnergyUnit]:
    return (
        _enum(obj["quantityUnit"], _at(path, "quantityUnit"), _POWER_UNITS),
        _enum(obj["pricePer"], _at(path, "pricePer"), _ENERGY_UNITS),
    )


def _designator(obj: dict[str, Any], path: str) -> str:
    designator = obj["resourceDesignator"]
    if designator not in _DESIGNATORS:
        raise _bad(
            _at(path, "resourceDesignator"), f"must be one of {', '.join(_DESIGNATORS)}; got {_show(designator)}"
        )
    return "TRANSPORT" if designator == "TRANSPORT" else "ENERGY"


def _product(obj: dict[str, Any], path: str, quantity_unit: PowerUnit, price_scale: int) -> dict[str, Any]:
    """The canonical product of a tender or transaction (as a dict for model validation)."""
    designator = _designator(obj, path)
    if designator == "TRANSPORT":
        if "option" in obj:
            raise _bad(_at(path, "option"), "only with resourceDesignator ENERGY")
        for key in ("fromLocation", "toLocation"):
            if obj.get(key) is None:
                raise _bad(_at(path, key), "missing (needed with resourceDesignator TRANSPORT)")
        return {
            "type": "transport",
            "from_location_id": _text(obj["fromLocation"], _at(path, "fromLocation")),
            "to_location_id": _text(obj["toLocation"], _at(path, "toLocation")),
        }
    for key in ("fromLocation", "toLocation"):
        if key in obj:
            raise _bad(_at(path, key), "only with resourceDesignator TRANSPORT")
    option = obj.get("option")
    if option is not None:
        where = _at(path, "option")
        _members(option, where, _OPTION_MEMBERS, _OPTION_MEMBERS)
        return {
            "type": "option",
            "option_kind": _enum(option["optionType"], _at(where, "optionType"), _OPTION_KINDS),
            "strike": _scaled(option["strikePrice"], price_scale, _at(where, "strikePrice"), "priceScale"),
            "premium": _scaled(option["premium"], price_scale, _at(where, "premium"), "priceScale"),
        }
    return {"type": "reactive_energy" if quantity_unit.is_reactive else "energy"}


def _interval(value: object, path: str) -> dict[str, Any]:
    obj = _members(value, path, _INTERVAL_REQUIRED, _INTERVAL_ALLOWED)
    time_zone = obj.get("timeZone")
    return {
        "start": _time(obj["dtStart"], _at(path, "dtStart")),
        "duration": _resolution(obj["duration"], _at(path, "duration")),
        "time_zone": "UTC" if time_zone is None else _text(time_zone, _at(path, "timeZone"), limit=64),
    }


_TENDER_REQUIRED = frozenset(
    {"tenderId", "marketId", "side", "resourceDesignator", "location", "priceScale", "quantityScale", "stream"}
    | _PRICED_MEMBERS
)
_TENDER_ALLOWED = (
    _TENDER_REQUIRED
    | _PRODUCT_MEMBERS
    | {
        "partyId",
        "expirationTime",
        "allOrNone",
        "status",
        "createdDateTime",
    }
)
_STREAM_REQUIRED = frozenset({"dtStart", "duration", "intervals"})
_STREAM_ALLOWED = _STREAM_REQUIRED | {"timeZone"}
_STREAM_INTERVAL = frozenset({"uid", "price", "quantity"})


def _tender(value: object, path: str, ctx: _Context) -> Tender:
    obj = _members(value, path, _TENDER_REQUIRED, _TENDER_ALLOWED)
    price_scale = _scale(obj["priceScale"], _at(path, "priceScale"))
    quantity_scale = _scale(obj["quantityScale"], _at(path, "quantityScale"))
    quantity_unit, price_per = _units(obj, path)
    product = _product(obj, path, quantity_unit, price_scale)

    where = _at(path, "stream")
    stream = _members(obj["stream"], where, _STREAM_REQUIRED, _STREAM_ALLOWED)
    dt_start = _time(stream["dtStart"], _at(where, "dtStart"))
    resolution = _resolution(stream["duration"], _at(where, "duration"))
    time_zone = _zone(stream.get("timeZone"), _at(where, "timeZone"))
    if not is_aligned(dt_start, resolution, time_zone):
        raise _refused(
            _at(where, "dtStart"),
            f"{dt_start.isoformat()} is not on a {resolution.value} boundary in time zone {time_zone}",
        )
    intervals = _array(stream["intervals"], _at(where, "intervals"))

    uids: list[int] = []
    prices: list[Decimal] = []
    quantities: list[Decimal] = []
    price_limit, quantity_limit = _LIMITS[price_scale], _LIMITS[quantity_scale]
    price_exp, quantity_exp = f"E{price_scale}", f"E{quantity_scale}"
    max_uid = _MAX_UID_CALENDAR if resolution.is_calendar else _MAX_UID_FIXED
    previous = -1
    for index, item in enumerate(intervals):
        # The hot loop: the common case costs a few type checks; anything odd takes the detailed path.
        if type(item) is not dict or item.keys() != _STREAM_INTERVAL:
            _members(item, f"{where}.intervals[{index}]", _STREAM_INTERVAL, _STREAM_INTERVAL)
        uid, price, quantity = item["uid"], item["price"], item["quantity"]
        if (
            type(uid) is not int
            or type(price) is not int
            or type(quantity) is not int
            or not previous < uid <= max_uid
            or not -price_limit < price < price_limit
            or not -quantity_limit < quantity < quantity_limit
        ):
            here = f"{where}.intervals[{index}]"
            if type(uid) is not int or not 0 <= uid <= max_uid:
                raise _bad(_at(here, "uid"), f"must be an integer from 0 to {max_uid}, got {_show(uid)}")
            if uid <= previous:
                raise _refused(
                    _at(here, "uid"),
                    f"{uid} does not come after the previous uid {previous}; intervals must be in time order,"
                    " each once",
                )
            _scaled(price, price_scale, _at(here, "price"), "priceScale")
            _scaled(quantity, quantity_scale, _at(here, "quantity"), "quantityScale")
        previous = uid
        uids.append(uid)
        prices.append(Decimal(f"{price}{price_exp}"))
        quantities.append(Decimal(f"{quantity}{quantity_exp}"))

    if resolution.is_calendar and uids:
        ctx.calendar_budget -= uids[-1]
        if ctx.calendar_budget < 0:
            raise _bad(
                _at(where, "intervals"),
                f"the message's calendar streams ({', '.join(m.value for m in _CALENDAR)}) span more than"
                f" {_CALENDAR_BUDGET} intervals in all",
            )
    try:
        row_starts = streams.starts(dt_start, resolution, time_zone, uids)
    except (ValueError, OverflowError) as exc:
        message = str(exc) if isinstance(exc, ValueError) else "an interval lies beyond the year 9999"
        raise _refused(_at(where, "intervals"), message) from None

    expiry = obj.get("expirationTime")
    all_or_none = obj.get("allOrNone")
    status = obj.get("status")
    created = obj.get("createdDateTime")
    data: dict[str, Any] = {
        "id": obj["tenderId"],
        "market_id": obj["marketId"],
        "party_id": _inherited(obj, "partyId", path, ctx.party_id),
        "side": _enum(obj["side"], _at(path, "side"), _SIDES),
        "product": product,
        "location_id": obj["location"],
        "resolution": resolution,
        "time_zone": time_zone,
        "rows": [
            {"start": start, "quantity": quantity, "price": price}
            for start, quantity, price in zip(row_starts, quantities, prices, strict=True)
        ],
        "expires_at": None if expiry is None else _time(expiry, _at(path, "expirationTime")),
        "all_or_none": False if all_or_none is None else _bool(all_or_none, _at(path, "allOrNone")),
        "currency": obj["currency"],
        "quantity_unit": quantity_unit,
        "price_per": price_per,
    }
    if status is not None:
        data["status"] = _enum(status, _at(path, "status"), _STATUSES)
    if created is not None:
        data["created_at"] = _time(created, _at(path, "createdDateTime"))
    _check_strings(obj, path, ("tenderId", "marketId", "location", "currency"))
    _check_strings(data, path, ("party_id",), wire={"party_id": "partyId"})
    return _validated(Tender, data, path, _TENDER_NAMES)


def _check_strings(
    obj: Mapping[str, Any], path: str, keys: Iterable[str], *, wire: Mapping[str, str] | None = None
) -> None:
    """JSON type checks for string members the canonical model validates further (cheap: no copies)."""
    for key in keys:
        value = obj.get(key)
        if value is not None and type(value) is not str:
            raise _bad(_at(path, (wire or {}).get(key, key)), f"must be a string, got {_kind(value)}")


_TRANSACTION_REQUIRED = frozenset(
    {
        "transactionId",
        "marketId",
        "side",
        "resourceDesignator",
        "location",
        "interval",
        "price",
        "priceScale",
        "quantity",
        "quantityScale",
    }
    | _PRICED_MEMBERS
)
_TRANSACTION_ALLOWED = (
    _TRANSACTION_REQUIRED
    | _PRODUCT_MEMBERS
    | {
        "partyId",
        "counterPartyId",
        "tenderId",
        "clearingId",
        "subscriptionId",
        "executionTime",
    }
)


def _transaction(value: object, path: str, ctx: _Context) -> Transaction:
    obj = _members(value, path, _TRANSACTION_REQUIRED, _TRANSACTION_ALLOWED)
    price_scale = _scale(obj["priceScale"], _at(path, "priceScale"))
    quantity_scale = _scale(obj["quantityScale"], _at(path, "quantityScale"))
    quantity_unit, price_per = _units(obj, path)
    data: dict[str, Any] = {
        "id": obj["transactionId"],
        "market_id": obj["marketId"],
        "party_id": _inherited(obj, "partyId", path, ctx.party_id),
        "counterparty_id": _inherited(obj, "counterPartyId", path, ctx.counterparty_id),
        "side": _enum(obj["side"], _at(path, "side"), _SIDES),
        "tender_id": obj.get("tenderId"),
        "clearing_id": obj.get("clearingId"),
        "subscription_id": obj.get("subscriptionId"),
        "product": _product(obj, path, quantity_unit, price_scale),
        "location_id": obj["location"],
        "interval": _interval(obj["interval"], _at(path, "interval")),
        "quantity": _scaled(obj["quantity"], quantity_scale, _at(path, "quantity"), "quantityScale"),
        "price": _scaled(obj["price"], price_scale, _at(path, "price"), "priceScale"),
        "currency": obj["currency"],
        "quantity_unit": quantity_unit,
        "price_per": price_per,
    }
    executed = obj.get("executionTime")
    if executed is not None:
        data["executed_at"] = _time(executed, _at(path, "executionTime"))
    _check_strings(
        obj,
        path,
        ("transactionId", "marketId", "location", "currency", "tenderId", "clearingId", "subscriptionId"),
    )
    _check_strings(
        data, path, ("party_id", "counterparty_id"), wire={"party_id": "partyId", "counterparty_id": "counterPartyId"}
    )
    return _validated(Transaction, data, path, _TRANSACTION_NAMES)


_POSITION_REQUIRED = frozenset(
    {"marketId", "resourceDesignator", "location", "interval", "quantity", "quantityScale", "cost", "costScale"}
    | _PRICED_MEMBERS
)
_POSITION_ALLOWED = _POSITION_REQUIRED | {"partyId", "isOption", "asOfTime"}


def _position(value: object, path: str, ctx: _Context) -> Position:
    obj = _members(value, path, _POSITION_REQUIRED, _POSITION_ALLOWED)
    quantity_unit, price_per = _units(obj, path)
    designator = _designator(obj, path)
    is_option = obj.get("isOption")
    is_option = False if is_option is None else _bool(is_option, _at(path, "isOption"))
    if designator == "TRANSPORT":
        if is_option:
            raise _bad(_at(path, "isOption"), "only with resourceDesignator ENERGY")
        product_type = "transport"
    elif is_option:
        product_type = "option"
    else:
        product_type = "reactive_energy" if quantity_unit.is_reactive else "energy"
    if product_type != "reactive_energy" and quantity_unit.is_reactive:
        raise _refused(_at(path, "quantityUnit"), f"a {product_type} position needs a real power unit (W, kW, MW)")
    quantity_scale = _scale(obj["quantityScale"], _at(path, "quantityScale"))
    cost_scale = _scale(obj["costScale"], _at(path, "costScale"))
    data: dict[str, Any] = {
        "party_id": _inherited(obj, "partyId", path, ctx.party_id),
        "market_id": obj["marketId"],
        "location_id": obj["location"],
        "product_type": product_type,
        "interval": _interval(obj["interval"], _at(path, "interval")),
        "quantity": _scaled(obj["quantity"], quantity_scale, _at(path, "quantity"), "quantityScale"),
        "cost": _scaled(obj["cost"], cost_scale, _at(path, "cost"), "costScale"),
        "currency": obj["currency"],
        "quantity_unit": quantity_unit,
        "price_per": price_per,
    }
    as_of = obj.get("asOfTime")
    if as_of is not None:
        data["as_of"] = _time(as_of, _at(path, "asOfTime"))
    _check_strings(obj, path, ("marketId", "location", "currency"))
    _check_strings(data, path, ("party_id",), wire={"party_id": "partyId"})
    return _validated(Position, data, path, _POSITION_NAMES)


_DELIVERY_REQUIRED = frozenset({"deliveryId", "location", "interval", "quantity", "quantityScale", "quantityUnit"})
_DELIVERY_ALLOWED = _DELIVERY_REQUIRED | {"partyId", "resourceId", "quality", "measurementTime"}


def _delivery(value: object, path: str, ctx: _Context) -> Delivery:
    obj = _members(value, path, _DELIVERY_REQUIRED, _DELIVERY_ALLOWED)
    quantity_scale = _scale(obj["quantityScale"], _at(path, "quantityScale"))
    data: dict[str, Any] = {
        "id": obj["deliveryId"],
        "party_id": _inherited(obj, "partyId", path, ctx.party_id),
        "location_id": obj["location"],
        "resource_id": obj.get("resourceId"),
        "interval": _interval(obj["interval"], _at(path, "interval")),
        "quantity": _scaled(obj["quantity"], quantity_scale, _at(path, "quantity"), "quantityScale"),
        "quantity_unit": _enum(obj["quantityUnit"], _at(path, "quantityUnit"), _POWER_UNITS),
    }
    quality = obj.get("quality")
    if quality is not None:
        data["quality"] = _enum(quality, _at(path, "quality"), _QUALITIES)
    measured = obj.get("measurementTime")
    if measured is not None:
        data["measured_at"] = _time(measured, _at(path, "measurementTime"))
    _check_strings(obj, path, ("deliveryId", "location", "resourceId"))
    _check_strings(data, path, ("party_id",), wire={"party_id": "partyId"})
    return _validated(Delivery, data, path, _DELIVERY_NAMES)


_PARTY_REQUIRED = frozenset({"partyId", "partyName", "roles"})
_PARTY_ALLOWED = _PARTY_REQUIRED | {"identities", "createdDateTime"}


def _party(value: object, path: str, ctx: _Context) -> Party:
    obj = _members(value, path, _PARTY_REQUIRED, _PARTY_ALLOWED)
    roles_path = _at(path, "roles")
    roles = [_enum(role, f"{roles_path}[{i}]", _ROLES) for i, role in enumerate(_array(obj["roles"], roles_path))]
    data: dict[str, Any] = {"id": obj["partyId"], "name": obj["partyName"], "roles": roles}
    identities = obj.get("identities")
    if identities is not None:
        where = _at(path, "identities")
        if type(identities) is not dict:
            raise _bad(where, f"must be an object of strings, got {_kind(identities)}")
        if len(identities) > 100:
            raise _bad(where, "holds more than 100 identities")
        for key, text in identities.items():
            _text(text, _at(where, key), limit=_MAX_DESCRIPTION)
        data["identities"] = identities
    created = obj.get("createdDateTime")
    if created is not None:
        data["created_at"] = _time(created, _at(path, "createdDateTime"))
    _check_strings(obj, path, ("partyId", "partyName"))
    return _validated(Party, data, path, _PARTY_NAMES)


_RESPONSE_REQUIRED = frozenset({"responseCode", "responseDescription"})
_RESPONSE_ALLOWED = _RESPONSE_REQUIRED | {"requestId"}


def _response(value: object, path: str, ctx: _Context) -> EiResponse:
    obj = _members(value, path, _RESPONSE_REQUIRED, _RESPONSE_ALLOWED)
    code = obj["responseCode"]
    found = _RESPONSE_CODES.get(code) if type(code) is int else None
    if found is None:
        raise _bad(
            _at(path, "responseCode"), f"must be one of {', '.join(map(str, _RESPONSE_CODES))}; got {_show(code)}"
        )
    description = obj["responseDescription"]
    if type(description) is not str or len(description) > _MAX_DESCRIPTION:
        raise _bad(_at(path, "responseDescription"), f"must be a string of at most {_MAX_DESCRIPTION} characters")
    request_id = obj.get("requestId")
    return EiResponse(
        code=found,
        description=description,
        request_id=None if request_id is None else _text(request_id, _at(path, "requestId")),
    )


_QUERY_KEYS = frozenset({"marketId", "start", "end"})


def _query(value: object, path: str, ctx: _Context) -> PositionQuery:
    obj = _members(value, path, frozenset(), _QUERY_KEYS)
    start = _opt_time(obj.get("start"), _at(path, "start"))
    end = _opt_time(obj.get("end"), _at(path, "end"))
    if start is not None and end is not None and end <= start:
        raise _refused(_at(path, "end"), f"{end.isoformat()} is not after start {start.isoformat()}")
    return PositionQuery(market_id=_opt_id(obj.get("marketId"), _at(path, "marketId")), start=start, end=end)


def _tender_ids(value: object, path: str, ctx: _Context) -> list[str]:
    return [_id(item, f"{path}[{i}]") for i, item in enumerate(_array(value, path))]


def _reason(value: object, path: str, ctx: _Context) -> CancelReason:
    return _enum(value, path, _REASONS)
