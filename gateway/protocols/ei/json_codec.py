"""CTS JSON: Energy Interoperation / CTS messages as JSON, to and from :class:`messages.EiMessage`.

Why not ``json/EIPayloads.json``: the published CTS JSON schema (draft-04) resolves, but under ``ei:eiTender`` it
admits only ``emix:emixBase`` ``{uid, dtStart, duration, intervals, streamPayloadBase}`` with
``additionalProperties: false`` and an empty stream payload, so side, market, currency, expiry, prices and
quantities cannot be written at all (see ../shared/specs/ei-cts/ERRATA.md). This codec therefore follows the
CTS 1.0 *message model* instead: the EI payload names, and prices and quantities as integers with a power-of-ten
scale. Names come from the EI/CTS vocabulary (``requestId``, ``partyId``, ``counterPartyId``, ``tenderId``,
``marketId``, ``side``, ``expirationTime``, ``allOrNone``, ``resourceDesignator``, ``priceScale``,
``quantityScale``, ``dtStart``, ``duration``, ``uid``, ``responseCode``, ``responseDescription``), written in
camelCase throughout.

Public API: :func:`decode` (bytes -> EiMessage, or :class:`EiDecodeError`) and :func:`encode` (EiMessage -> bytes,
UTF-8 JSON, ASCII only).

Message
-------
One JSON object per message::

    {"type": "eiCreateTender",          # the EI payload name, one of messages.Payload
     "requestId": "r-17",               # optional; ties a response to its request
     "partyId": "alice",                # optional; the sender (the service checks it against the caller)
     "counterPartyId": "exchange",      # optional
     ...the payload's members, below...}

Members by payload (R = required, O = optional; a member not listed for the payload is refused)::

    eiRegisterParty      party R                 eiRegisteredParty    response R, party O
    eiCreateTender       tender R                eiCreatedTender      response R, tenderIds O
    eiCreateQuote        tender R                eiCreatedQuote       response R, tenders O
    eiCancelTender       tenderIds R, reason O   eiCanceledTender     response R, tenderIds O, reason O
    eiRequestTender      query O, tenderIds O    eiReplyTender        response R, tenders O
    eiDistributeTender   tenders R
    eiCreateTransaction  transactions R          eiCreatedTransaction response R, transactions O
    eiRequestPosition    query O                 eiReplyPosition      response R, positions O
    eiCreateDelivery     deliveries R            eiCreatedDelivery    response R, deliveries O

A required array holds at least one item; arrays hold at most 10,000. ``reason`` is ``"REQUESTED"`` or
``"SUPERVISORY"``; ``tenderIds`` is an array of ids. Optional members may be absent or ``null``.

    response  {"responseCode": 200, "responseDescription": "OK", "requestId": "r-17"}   (requestId optional;
              responseCode one of 200, 400, 403, 404, 409, 410, 422, 500)
    query     {"marketId": "m1", "start": "2030-01-07T00:00:00Z", "end": "2030-01-08T00:00:00Z"}  (all optional;
              end exclusive and after start)
    party     {"partyId": "alice", "partyName": "Alice", "roles": ["PROSUMER"], "identities": {"k": "v"},
               "createdDateTime": "..."}   (identities and createdDateTime optional)

Tender (``tender`` / each of ``tenders``)::

    {"tenderId": "t-1", "partyId": "alice", "marketId": "m1", "side": "BUY",
     "resourceDesignator": "ENERGY", "location": "sp-1",
     "currency": "USD", "quantityUnit": "kW", "pricePer": "kWh",
     "expirationTime": "2030-01-07T00:00:00Z", "allOrNone": false, "createdDateTime": "2030-01-06T12:00:00Z",
     "priceScale": -4, "quantityScale": 0,
     "stream": {"dtStart": "2030-01-07T00:00:00Z", "duration": "PT1H", "timeZone": "UTC",
                "intervals": [{"uid": 0, "price": 1250, "quantity": 5}, {"uid": 2, "price": 1300, "quantity": 5}]}}

- Interval ``uid`` n starts at ``dtStart`` + n x ``duration`` (calendar durations follow ``timeZone``: a day in
  America/Los_Angeles is 23, 24 or 25 hours); uids strictly increase, gaps are allowed. ``dtStart`` must be on a
  ``duration`` boundary in ``timeZone`` (default ``"UTC"``). Durations: PT4S, PT5M, PT15M, PT1H, P1D, P1M, P1Y.
  A uid is at most 10,000,000 (40,000 for P1D, P1M, P1Y), and the calendar streams of one message span at most
  200,000 intervals in all (calendar intervals are counted one by one).
- ``price`` (per ``pricePer``, in ``currency``) = price x 10^priceScale; ``quantity`` (a rate, in
  ``quantityUnit``, never negative in a tender) = quantity x 10^quantityScale.
- ``partyId`` may be omitted when it is the message's ``partyId``. ``expirationTime`` is optional (no expiry),
  ``allOrNone`` defaults to false, ``createdDateTime`` to the time of decoding. ``status`` (``"OPEN"``,
  ``"PARTIALLY_FILLED"``, ``"FILLED"``, ``"CANCELLED"``, ``"EXPIRED"``, ``"REJECTED"``; default ``"OPEN"``) is
  written only when not OPEN (replies).

Transaction (each of ``transactions``): one interval of one trade::

    {"transactionId": "x-1", "tenderId": "t-1", "marketId": "m1", "partyId": "alice", "counterPartyId": "bob",
     "side": "BUY", "resourceDesignator": "ENERGY", "location": "sp-1", "currency": "USD", "quantityUnit": "kW",
     "pricePer": "kWh", "interval": {"dtStart": "2030-01-07T00:00:00Z", "duration": "PT1H", "timeZone": "UTC"},
     "price": 1250, "priceScale": -4, "quantity": 5, "quantityScale": 0, "executionTime": "...",
     "clearingId": "...", "subscriptionId": "..."}

``tenderId``, ``clearingId``, ``subscriptionId`` and ``executionTime`` are optional; ``partyId`` and
``counterPartyId`` default to the message's.

Position (each of ``positions``): a party's net position for one interval, signed from its point of view::

    {"partyId": "alice", "marketId": "m1", "resourceDesignator": "ENERGY", "location": "sp-1",
     "currency": "USD", "quantityUnit": "kW", "pricePer": "kWh", "interval": {...},
     "quantity": -25, "quantityScale": -1, "cost": -31, "costScale": -2, "asOfTime": "..."}

``quantity`` > 0: net bought (rate); ``cost`` > 0: net paid (money in ``currency``). ``isOption``: true for a
position in options (optional, default false).

Delivery (each of ``deliveries``): metered average rate over one interval, positive = imported::

    {"deliveryId": "d-1", "partyId": "alice", "location": "sp-1", "resourceId": "pv-1", "interval": {...},
     "quantity": -32, "quantityScale": -1, "quantityUnit": "kW", "quality": "MEASURED",
     "measurementTime": "..."}

(``resourceId``, ``quality``: MEASURED / ESTIMATED / SUBSTITUTED, default MEASURED, and ``measurementTime`` are
optional.)

Products. ``resourceDesignator`` ``"ENERGY"`` is canonical energy, real or reactive: the units decide (kW/kWh
real; var, kvar, Mvar with varh, kvarh, Mvarh reactive). ``"POWER"`` is accepted as a synonym of ENERGY on input
(our quantity is always a rate of delivery) and never written. ``"TRANSPORT"`` is canonical transport and needs
``"fromLocation"`` and ``"toLocation"`` (tenders and transactions; ``location`` is where it is traded). An option
on energy is ENERGY with ``"option": {"optionType": "CALL" | "PUT", "strikePrice": n, "premium": n}``, strike and
premium scaled by ``priceScale`` like the prices.

Numbers. Prices, quantities, costs, strikes and premiums are JSON integers; a number with a fraction or exponent
(1.5, 1e3, 2.0) is refused: floats lose digits, CTS is integer + scale. Scales are integers in -18..18, and a
value (integer x 10^scale) must be below 10^30 in magnitude. :func:`encode` picks for each stream / object the
largest scale <= 0 that keeps every digit (``streams.common_scale``), so no digit is ever lost, and refuses
(ValueError) a value it cannot write within these bounds (more than 18 fractional digits, or >= 10^30).

Times are RFC 3339 / ISO 8601 with an offset (``Z`` or ``+hh:mm``; converted to UTC) and at most microsecond
precision; a time without an offset is refused. Ids are 1-200 characters without whitespace or ``/``
(``requestId`` is any text of 1-200 characters). Enumerated values are upper case; units are spelt as SI
(``kW``, ``MWh``, ``kvar``). Members may come in any order; a key twice in one object is refused.

Errors. :func:`decode` raises :class:`EiDecodeError` with a one-line reason that starts with the member's path
(``tender.stream.intervals[3].price: ...``) and the EI response code to answer with: 400 when the document is not
a message of this format (not JSON, over 4 MiB, wrong JSON type, missing or unknown member, duplicate key, a
float where an integer belongs, a bad time, an unknown enumerated value, a scale or value out of range); 422 when
it is well formed but the canonical model refuses it (interval not on its boundary, uids not increasing, negative
tender quantity, expiry after the last interval, unknown currency or time zone, real/reactive unit mismatch, a
malformed id, a party trading with itself...).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from gateway.model import (
    Delivery,
    DeliveryQuality,
    Interval,
    OptionKind,
    OptionProduct,
    Party,
    Position,
    Resolution,
    Role,
    Side,
    Tender,
    TenderStatus,
    Transaction,
    TransportProduct,
)
from gateway.model.intervals import IntervalError, is_aligned, market_zone
from gateway.model.units import EnergyUnit, PowerUnit
from gateway.protocols.ei import streams
from gateway.protocols.ei.messages import (
    CancelReason,
    EiDecodeError,
    EiMessage,
    EiResponse,
    Payload,
    PositionQuery,
    ResponseCode,
)

__all__ = ["MAX_DOCUMENT_BYTES", "MAX_ITEMS", "MAX_SCALE", "MAX_VALUE_DIGITS", "decode", "encode"]

MAX_DOCUMENT_BYTES: Final = 4 * 1024 * 1024
MAX_ITEMS: Final = 10_000  # per array (intervals of a stream, tenders, transactions, ids...)
MAX_SCALE: Final = 18  # scales are -18..18
MAX_VALUE_DIGITS: Final = 30  # |integer x 10^scale| < 10^30
_MAX_TEXT: Final = 200  # ids, names, request ids, time zones
_MAX_DESCRIPTION: Final = 2000
_MAX_UID_FIXED: Final = 10_000_000  # PT1H: ~1,100 years; arithmetic only
_MAX_UID_CALENDAR: Final = 40_000  # walked one interval at a time: keep the worst case to tens of milliseconds
_CALENDAR_BUDGET: Final = 200_000  # calendar intervals walked per message, all streams together (~0.3 s)
_CALENDAR: Final = (Resolution.DAY, Resolution.MONTH, Resolution.YEAR)

# |integer| must be below this for the scale: |i x 10^s| < 10^30 <=> |i| < 10^(30 - s).
_LIMITS: Final = {s: 10 ** (MAX_VALUE_DIGITS - s) for s in range(-MAX_SCALE, MAX_SCALE + 1)}
_ID = re.compile(r"[^\s/]{1,200}")
_FRACTION = re.compile(r"[.,](\d+)")
_ISO_DURATION = re.compile(r"P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?")

# Wire vocabularies (enumerated values are upper case on the wire, as in CTS).
_SIDES = {m.name: m for m in Side}
_STATUSES = {m.name: m for m in TenderStatus}
_QUALITIES = {m.name: m for m in DeliveryQuality}
_ROLES = {m.name: m for m in Role}
_OPTION_KINDS = {m.name: m for m in OptionKind}
_REASONS = {m.value: m for m in CancelReason}
_RESPONSE_CODES = {int(m): m for m in ResponseCode}
_RESOLUTIONS = {m.value: m for m in Resolution}
_POWER_UNITS = {m.value: m for m in PowerUnit}
_ENERGY_UNITS = {m.value: m for m in EnergyUnit}
_DESIGNATORS = ("ENERGY", "POWER", "TRANSPORT")
_PAYLOADS = {m.value: m for m in Payload}


# --------------------------------------------------------------------------------------------------------------
# Errors


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _bad(path: str, problem: str) -> EiDecodeError:
    """400: not a message of this format."""
    return EiDecodeError(_one_line(f"{path or 'message'}: {problem}"), ResponseCode.BAD_REQUEST)


def _refused(path: str, problem: str) -> EiDecodeError:
    """422: well formed, refused by the canonical model."""
    return EiDecodeError(_one_line(f"{path or 'message'}: {problem}"), ResponseCode.UNPROCESSABLE)


def _show(value: object) -> str:
    """A short, one-line rendering of a JSON value for an error message."""
    if isinstance(value, Decimal):
        text = str(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=True)
        except (TypeError, ValueError, RecursionError):
            text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, Decimal):
        return f"the number {_show(value)}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --------------------------------------------------------------------------------------------------------------
# Reading JSON values (all raise EiDecodeError 400 naming the path)


def _members(obj: object, path: str, required: frozenset[str], allowed: frozenset[str]) -> dict[str, Any]:
    """``obj`` as an object holding every ``required`` member and nothing outside ``allowed``."""
    if type(obj) is not dict:
        raise _bad(path, f"must be an object, got {_kind(obj)}")
    keys = obj.keys()
    if not required <= keys:
        missing = sorted(required - keys)
        raise _bad(
            _at(path, missing[0]), "missing" + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else "")
        )
    if not keys <= allowed:
        unknown = sorted(keys - allowed)[0]
        hint = difflib.get_close_matches(unknown, sorted(allowed), n=1)
        advice = f"did you mean '{hint[0]}'?" if hint else f"allowed here: {', '.join(sorted(allowed))}"
        raise _bad(_at(path, _show(unknown).strip('"')), f"unknown member; {advice}")
    for key in required:
        if obj[key] is None:
            raise _bad(_at(path, key), "missing (null)")
    return obj


def _text(value: object, path: str, *, limit: int = _MAX_TEXT) -> str:
    if type(value) is not str:
        raise _bad(path, f"must be a string, got {_kind(value)}")
    if not value or len(value) > limit:
        raise _bad(path, f"must be 1 to {limit} characters long")
    return value


def _id(value: object, path: str) -> str:
    """An id outside canonical objects (those are checked by the model): the canonical id rule, 422 if broken."""
    text = _text(value, path)
    if not _ID.fullmatch(text):
        raise _refused(path, f"{_show(text)} is not an id (1 to 200 characters, no whitespace or '/')")
    return text


def _opt_id(value: object, path: str) -> str | None:
    return None if value is None else _id(value, path)


def _bool(value: object, path: str) -> bool:
    if type(value) is not bool:
        raise _bad(path, f"must be true or false, got {_kind(value)}")
    return value


def _array(value: object, path: str, *, non_empty: bool = False) -> list[Any]:
    if type(value) is not list:
        raise _bad(path, f"must be an array, got {_kind(value)}")
    if non_empty and not value:
        raise _bad(path, "must hold at least one item")
    if len(value) > MAX_ITEMS:
        raise _bad(path, f"holds {len(value)} items; at most {MAX_ITEMS} are accepted")
    return value


_E = TypeVar("_E")


def _enum(value: object, path: str, vocabulary: Mapping[str, _E]) -> _E:
    if type(value) is str:
        found = vocabulary.get(value)
        if found is not None:
            return found
    raise _bad(path, f"must be one of {', '.join(vocabulary)}; got {_show(value)}")


def _time(value: object, path: str) -> datetime:
    """An instant with an offset, as UTC."""
    if type(value) is not str:
        raise _bad(path, f"must be a date-time string such as 2030-01-07T00:00:00Z, got {_kind(value)}")
    try:
        if len(value) > 64:
            raise ValueError
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _bad(path, f"{_show(value)} is not an ISO 8601 date-time (e.g. 2030-01-07T00:00:00Z)") from None
    if "." in value or "," in value:  # fromisoformat silently truncates digits beyond microseconds
        fraction = _FRACTION.search(value)
        if fraction and fraction.group(1)[6:].strip("0"):
            raise _bad(path, f"{_show(value)} is finer than a microsecond")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _bad(path, f"{_show(value)} has no UTC offset; add Z or +hh:mm (a local time is ambiguous)")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise _bad(path, f"{_show(value)} is outside the representable range") from None


def _opt_time(value: object, path: str) -> datetime | None:
    return None if value is None else _time(value, path)


def _scale(value: object, path: str) -> int:
    if type(value) is not int or not -MAX_SCALE <= value <= MAX_SCALE:
        raise _bad(path, f"must be an integer from {-MAX_SCALE} to {MAX_SCALE}, got {_show(value)}")
    return value


def _scaled(value: object, scale: int, path: str, scale_name: str) -> Decimal:
    """integer x 10^scale, exactly (the same Decimal as ``streams.from_scaled``, without its context switch)."""
    if type(value) is not int:
        raise _bad(path, f"must be an integer (with {scale_name}; floats lose digits), got {_kind(value)}")
    if not -_LIMITS[scale] < value < _LIMITS[scale]:
        raise _bad(path, f"{value} x 10^{scale} is too large (at most {MAX_VALUE_DIGITS} digits before the point)")
    return Decimal(f"{value}E{scale}")


def _resolution(value: object, path: str) -> Resolution:
    if type(value) is str:
        found = _RESOLUTIONS.get(value)
        if found is not None:
            return found
        if _ISO_DURATION.fullmatch(value):
            raise _refused(path, f"{_show(value)} is not a market duration (use one of {', '.join(_RESOLUTIONS)})")
    raise _bad(path, f"must be an ISO 8601 duration, one of {', '.join(_RESOLUTIONS)}; got {_show(value)}")


def _zone(value: object, path: str) -> str:
    if value is None:
        return "UTC"
    name = _text(value, path, limit=64)
    if name != "UTC":
        try:
            market_zone(name)
        except IntervalError as exc:
            raise _refused(path, str(exc)) from None
    return name


# --------------------------------------------------------------------------------------------------------------
# Canonical validation, with pydantic's locations turned into wire paths

# Canonical field -> wire member, per object kind (top level), then for nested locations.
_TENDER_NAMES = {
    "id": "tenderId",
    "rows": "stream.intervals",
    "resolution": "stream.duration",
    "time_zone": "stream.timeZone",
}
_TRANSACTION_NAMES = {"id": "transactionId"}
_DELIVERY_NAMES = {"id": "deliveryId"}
_PARTY_NAMES = {"id": "partyId", "name": "partyName"}
_POSITION_NAMES = {"product_type": "resourceDesignator"}
_NAMES = {
    "market_id": "marketId",
    "party_id": "partyId",
    "counterparty_id": "counterPartyId",
    "location_id": "location",
    "tender_id": "tenderId",
    "clearing_id": "clearingId",
    "subscription_id": "subscriptionId",
    "resource_id": "resourceId",
    "quantity_unit": "quantityUnit",
    "price_per": "pricePer",
    "expires_at": "expirationTime",
    "all_or_none": "allOrNone",
    "created_at": "createdDateTime",
    "executed_at": "executionTime",
    "as_of": "asOfTime",
    "measured_at": "measurementTime",
    "start": "dtStart",
    "time_zone": "timeZone",
    "from_location_id": "fromLocation",
    "to_location_id": "toLocation",
    "option_kind": "option.optionType",
    "strike": "option.strikePrice",
    "premium": "option.premium",
    "product": "",  # its members are written at the object's top level
}
_PRODUCT_TAGS = frozenset({"energy", "reactive_energy", "transport", "option"})

_M = TypeVar("_M", bound=BaseModel)


def _wire_path(path: str, loc: tuple[int | str, ...], top: Mapping[str, str]) -> str:
    out = path
    after_product = False
    for depth, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        if after_product and part in _PRODUCT_TAGS:
            after_product = False
            continue
        after_product = part == "product"
        name = top.get(part) if depth == 0 else None
        if name is None:
            name = _NAMES.get(part, part)
        if name:
            out = _at(out, name)
    return out


def _validated(model: type[_M], data: dict[str, Any], path: str, top: Mapping[str, str]) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        first = errors[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise _refused(_wire_path(path, tuple(first["loc"]), top), message) from None


# --------------------------------------------------------------------------------------------------------------
# Decoding objects

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


# --------------------------------------------------------------------------------------------------------------
# Payload table: wire member -> (EiMessage attribute, how it is decoded, how it is encoded, cardinality)

_ONE, _MANY, _VALUE = "one", "many", "value"


class _Member:
    __slots__ = ("attribute", "cardinality", "decode", "encode")

    def __init__(
        self,
        attribute: str,
        cardinality: str,
        decode: Callable[[object, str, _Context], Any],
        encode: Callable[[Any, EiMessage], Any],
    ) -> None:
        self.attribute = attribute
        self.cardinality = cardinality  # one: a single object held in a list attribute; many: an array; value
        self.decode = decode
        self.encode = encode


_COMMON = frozenset({"type", "requestId", "partyId", "counterPartyId"})


def _body(required: Iterable[str], optional: Iterable[str] = ()) -> tuple[frozenset[str], frozenset[str]]:
    required = frozenset(required)
    return required, required | frozenset(optional)


_BODIES: dict[Payload, tuple[frozenset[str], frozenset[str]]] = {
    Payload.REGISTER_PARTY: _body(["party"]),
    Payload.REGISTERED_PARTY: _body(["response"], ["party"]),
    Payload.CREATE_TENDER: _body(["tender"]),
    Payload.CREATED_TENDER: _body(["response"], ["tenderIds"]),
    Payload.CANCEL_TENDER: _body(["tenderIds"], ["reason"]),
    Payload.CANCELED_TENDER: _body(["response"], ["tenderIds", "reason"]),
    Payload.REQUEST_TENDER: _body([], ["query", "tenderIds"]),
    Payload.REPLY_TENDER: _body(["response"], ["tenders"]),
    Payload.DISTRIBUTE_TENDER: _body(["tenders"]),
    Payload.CREATE_QUOTE: _body(["tender"]),
    Payload.CREATED_QUOTE: _body(["response"], ["tenders"]),
    Payload.CREATE_TRANSACTION: _body(["transactions"]),
    Payload.CREATED_TRANSACTION: _body(["response"], ["transactions"]),
    Payload.REQUEST_POSITION: _body([], ["query"]),
    Payload.REPLY_POSITION: _body(["response"], ["positions"]),
    Payload.CREATE_DELIVERY: _body(["deliveries"]),
    Payload.CREATED_DELIVERY: _body(["response"], ["deliveries"]),
}
_ALLOWED = {payload: _COMMON | allowed for payload, (_, allowed) in _BODIES.items()}
_ORDER = (  # the order members are written (and checked) in
    "response",
    "party",
    "tender",
    "tenders",
    "tenderIds",
    "reason",
    "query",
    "transactions",
    "positions",
    "deliveries",
)
_KEYS = {payload: tuple(key for key in _ORDER if key in allowed) for payload, (_, allowed) in _BODIES.items()}
_REQUIRED = {payload: frozenset({"type"}) | required for payload, (required, _) in _BODIES.items()}
assert set(_BODIES) == set(Payload)


def decode(data: bytes | bytearray | memoryview | str) -> EiMessage:
    """Parse one CTS JSON message (see the module docstring) into an :class:`EiMessage`.

    Raises :class:`EiDecodeError` (code 400 or 422, one-line reason naming the member) for anything else.
    """
    if isinstance(data, memoryview):
        data = data.tobytes()
    if not isinstance(data, bytes | bytearray | str):
        raise _bad("", f"must be bytes, got {type(data).__name__}")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise _bad("", f"the message has {len(data)} bytes; at most {MAX_DOCUMENT_BYTES} are accepted")
    try:
        document = json.loads(data, parse_float=Decimal, parse_constant=_no_constant, object_pairs_hook=_object)
    except EiDecodeError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _bad("", f"not JSON: {exc}") from None
    if type(document) is not dict:
        raise _bad("", f"must be a JSON object with a 'type', got {_kind(document)}")
    kind = document.get("type")
    payload = _PAYLOADS.get(kind) if type(kind) is str else None
    if payload is None:
        if "type" not in document:
            raise _bad("type", "missing (the EI payload name, e.g. eiCreateTender)")
        raise _bad("type", f"must be one of {', '.join(_PAYLOADS)}; got {_show(kind)}")
    _members(document, "", _REQUIRED[payload], _ALLOWED[payload])
    request_id = document.get("requestId")
    message = EiMessage(
        payload=payload,
        request_id=None if request_id is None else _text(request_id, "requestId"),
        party_id=_opt_id(document.get("partyId"), "partyId"),
        counterparty_id=_opt_id(document.get("counterPartyId"), "counterPartyId"),
    )
    ctx = _Context(message.party_id, message.counterparty_id)
    required = _BODIES[payload][0]
    for key in _KEYS[payload]:
        value = document.get(key)
        if value is None:
            if key in required:
                raise _bad(key, "missing (null)")
            continue
        member = _MEMBERS[key]
        if member.cardinality == _MANY:
            items = _array(value, key, non_empty=key in required)
            decoded: Any = [member.decode(item, f"{key}[{i}]", ctx) for i, item in enumerate(items)]
        elif member.cardinality == _ONE:
            decoded = [member.decode(value, key, ctx)]
        else:
            decoded = member.decode(value, key, ctx)
            if decoded == [] and key in required:
                raise _bad(key, "must hold at least one item")
        setattr(message, member.attribute, decoded)
    return message


def _no_constant(name: str) -> Any:
    raise _bad("", f"not JSON: {name} is not a JSON number")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _bad("", f"duplicate member {_show(key)} in an object")
            seen.add(key)
    return obj


# --------------------------------------------------------------------------------------------------------------
# Encoding


def _time_text(value: datetime) -> str:
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _scale_of(values: list[Decimal], what: str) -> int:
    """The scale for ``values`` (streams.common_scale, in a context wide enough not to round) within bounds."""
    digits = max((len(v.as_tuple().digits) for v in values), default=1)
    with localcontext(prec=max(28, digits + 2)):
        scale = streams.common_scale(values)
    if scale < -MAX_SCALE:
        raise ValueError(f"{what}: a value has more than {MAX_SCALE} fractional digits and cannot be written")
    return scale


def _integers(values: list[Decimal], scale: int, what: str) -> list[int]:
    limit = _LIMITS[scale]
    out = [streams.to_scaled(v, scale) for v in values]
    if any(not -limit < i < limit for i in out):
        raise ValueError(f"{what}: a value has {MAX_VALUE_DIGITS} or more digits before the point")
    return out


def _encode_product(product: Any, out: dict[str, Any], strike_premium: tuple[int, int] | None) -> None:
    if isinstance(product, TransportProduct):
        out["resourceDesignator"] = "TRANSPORT"
        out["fromLocation"] = product.from_location_id
        out["toLocation"] = product.to_location_id
        return
    out["resourceDesignator"] = "ENERGY"
    if isinstance(product, OptionProduct):
        assert strike_premium is not None
        out["option"] = {
            "optionType": product.option_kind.name,
            "strikePrice": strike_premium[0],
            "premium": strike_premium[1],
        }


def _option_terms(product: Any) -> list[Decimal]:
    return [product.strike, product.premium] if isinstance(product, OptionProduct) else []


def _encode_interval(interval: Interval) -> dict[str, Any]:
    return {"dtStart": _time_text(interval.start), "duration": interval.duration.value, "timeZone": interval.time_zone}


def _encode_tender(tender: Tender, message: EiMessage) -> dict[str, Any]:
    what = f"tender {tender.id}"
    terms = _option_terms(tender.product)
    prices = [row["price"] for row in tender.rows]
    quantities = [row["quantity"] for row in tender.rows]
    price_scale = _scale_of(prices + terms, what)
    quantity_scale = _scale_of(quantities, what)
    price_ints = _integers(prices + terms, price_scale, what)
    quantity_ints = _integers(quantities, quantity_scale, what)
    starts = [row["start"] for row in tender.rows]
    uids = streams.offsets(starts, tender.resolution, tender.time_zone)
    out: dict[str, Any] = {
        "tenderId": tender.id,
        "partyId": tender.party_id,
        "marketId": tender.market_id,
        "side": tender.side.name,
    }
    _encode_product(tender.product, out, (price_ints[-2], price_ints[-1]) if terms else None)
    out |= {
        "location": tender.location_id,
        "currency": tender.currency,
        "quantityUnit": tender.quantity_unit.value,
        "pricePer": tender.price_per.value,
    }
    if tender.expires_at is not None:
        out["expirationTime"] = _time_text(tender.expires_at)
    out |= {
        "allOrNone": tender.all_or_none,
        "createdDateTime": _time_text(tender.created_at),
        "priceScale": price_scale,
        "quantityScale": quantity_scale,
        "stream": {
            "dtStart": _time_text(starts[0]),
            "duration": tender.resolution.value,
            "timeZone": tender.time_zone,
            "intervals": [
                {"uid": uid, "price": price, "quantity": quantity}
                for uid, price, quantity in zip(uids, price_ints, quantity_ints, strict=False)
            ],
        },
    }
    if tender.status is not TenderStatus.OPEN:
        out["status"] = tender.status.name
    return out


def _encode_transaction(transaction: Transaction, message: EiMessage) -> dict[str, Any]:
    what = f"transaction {transaction.id}"
    terms = _option_terms(transaction.product)
    prices = [transaction.price, *terms]
    price_scale = _scale_of(prices, what)
    quantity_scale = _scale_of([transaction.quantity], what)
    price_ints = _integers(prices, price_scale, what)
    out: dict[str, Any] = {"transactionId": transaction.id}
    if transaction.tender_id is not None:
        out["tenderId"] = transaction.tender_id
    out |= {
        "marketId": transaction.market_id,
        "partyId": transaction.party_id,
        "counterPartyId": transaction.counterparty_id,
        "side": transaction.side.name,
    }
    _encode_product(transaction.product, out, (price_ints[1], price_ints[2]) if terms else None)
    out |= {
        "location": transaction.location_id,
        "currency": transaction.currency,
        "quantityUnit": transaction.quantity_unit.value,
        "pricePer": transaction.price_per.value,
        "interval": _encode_interval(transaction.interval),
        "price": price_ints[0],
        "priceScale": price_scale,
        "quantity": _integers([transaction.quantity], quantity_scale, what)[0],
        "quantityScale": quantity_scale,
        "executionTime": _time_text(transaction.executed_at),
    }
    if transaction.clearing_id is not None:
        out["clearingId"] = transaction.clearing_id
    if transaction.subscription_id is not None:
        out["subscriptionId"] = transaction.subscription_id
    return out


def _encode_position(position: Position, message: EiMessage) -> dict[str, Any]:
    what = f"position {position.id}"
    reactive = position.quantity_unit.is_reactive
    if reactive != (position.product_type == "reactive_energy"):
        raise ValueError(f"{what}: a {position.product_type} position in {position.quantity_unit} cannot be written")
    quantity_scale = _scale_of([position.quantity], what)
    cost_scale = _scale_of([position.cost], what)
    out: dict[str, Any] = {
        "partyId": position.party_id,
        "marketId": position.market_id,
        "resourceDesignator": "TRANSPORT" if position.product_type == "transport" else "ENERGY",
    }
    if position.product_type == "option":
        out["isOption"] = True
    out |= {
        "location": position.location_id,
        "currency": position.currency,
        "quantityUnit": position.quantity_unit.value,
        "pricePer": position.price_per.value,
        "interval": _encode_interval(position.interval),
        "quantity": _integers([position.quantity], quantity_scale, what)[0],
        "quantityScale": quantity_scale,
        "cost": _integers([position.cost], cost_scale, what)[0],
        "costScale": cost_scale,
        "asOfTime": _time_text(position.as_of),
    }
    return out


def _encode_delivery(delivery: Delivery, message: EiMessage) -> dict[str, Any]:
    what = f"delivery {delivery.id}"
    scale = _scale_of([delivery.quantity], what)
    out: dict[str, Any] = {"deliveryId": delivery.id, "partyId": delivery.party_id, "location": delivery.location_id}
    if delivery.resource_id is not None:
        out["resourceId"] = delivery.resource_id
    out |= {
        "interval": _encode_interval(delivery.interval),
        "quantity": _integers([delivery.quantity], scale, what)[0],
        "quantityScale": scale,
        "quantityUnit": delivery.quantity_unit.value,
        "quality": delivery.quality.name,
        "measurementTime": _time_text(delivery.measured_at),
    }
    return out


def _encode_party(party: Party, message: EiMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"partyId": party.id, "partyName": party.name, "roles": [role.name for role in party.roles]}
    if party.identities:
        out["identities"] = dict(party.identities)
    out["createdDateTime"] = _time_text(party.created_at)
    return out


def _encode_response(response: EiResponse, message: EiMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"responseCode": int(response.code), "responseDescription": response.description}
    if response.request_id is not None:
        out["requestId"] = response.request_id
    return out


def _encode_query(query: PositionQuery, message: EiMessage) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if query.market_id is not None:
        out["marketId"] = query.market_id
    if query.start is not None:
        out["start"] = _time_text(query.start)
    if query.end is not None:
        out["end"] = _time_text(query.end)
    return out


_MEMBERS: dict[str, _Member] = {
    "party": _Member("party", _VALUE, _party, _encode_party),
    "response": _Member("response", _VALUE, _response, _encode_response),
    "tender": _Member("tenders", _ONE, _tender, _encode_tender),
    "tenders": _Member("tenders", _MANY, _tender, _encode_tender),
    "tenderIds": _Member("tender_ids", _VALUE, _tender_ids, lambda ids, _: list(ids)),
    "reason": _Member("cancel_reason", _VALUE, _reason, lambda reason, _: CancelReason(reason).value),
    "query": _Member("query", _VALUE, _query, _encode_query),
    "transactions": _Member("transactions", _MANY, _transaction, _encode_transaction),
    "positions": _Member("positions", _MANY, _position, _encode_position),
    "deliveries": _Member("deliveries", _MANY, _delivery, _encode_delivery),
}
_BODY_ATTRIBUTES = frozenset(member.attribute for member in _MEMBERS.values())


def encode(message: EiMessage) -> bytes:
    """Write ``message`` as CTS JSON (see the module docstring); :func:`decode` reads it back to an equal message.

    Raises ValueError when the message cannot be written: it carries something its payload does not (a tender on
    an eiCancelTender), lacks what its payload requires, or holds a value outside the format's bounds.
    """
    payload = Payload(message.payload)
    required = _BODIES[payload][0]
    used = {_MEMBERS[key].attribute for key in _KEYS[payload]}
    for attribute in _BODY_ATTRIBUTES - used:
        if getattr(message, attribute) not in (None, []):
            raise ValueError(f"{payload.value} carries no {attribute}")
    out: dict[str, Any] = {"type": payload.value}
    for key, value in (
        ("requestId", message.request_id),
        ("partyId", message.party_id),
        ("counterPartyId", message.counterparty_id),
    ):
        if value is not None:
            out[key] = value
    for key in _KEYS[payload]:
        member = _MEMBERS[key]
        value = getattr(message, member.attribute)
        if value is None or value == []:
            if key in required:
                raise ValueError(f"{payload.value} needs {member.attribute}")
            continue
        if len(value) > MAX_ITEMS if isinstance(value, list) else False:
            raise ValueError(f"{payload.value}: at most {MAX_ITEMS} {key} per message")
        if member.cardinality == _ONE:
            if len(value) != 1:
                raise ValueError(f"{payload.value} carries exactly one tender, not {len(value)}")
            out[key] = member.encode(value[0], message)
        elif member.cardinality == _MANY:
            out[key] = [member.encode(item, message) for item in value]
        else:
            out[key] = member.encode(value, message)
    return json.dumps(out, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")
