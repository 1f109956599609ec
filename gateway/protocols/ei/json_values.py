"""The bounds and vocabularies of CTS JSON, its two kinds of refusal, and the readers of single JSON values.

Everything else in the JSON codec is built from these: the limits (:data:`MAX_ITEMS`, :data:`MAX_SCALE`,
:data:`MAX_VALUE_DIGITS` ...) bound both what is read and what is written; :func:`_bad` (400: not a message of this
format) and :func:`_refused` (422: refused by the canonical model) are the only ways a reader says no; and the
value readers (:func:`_members`, :func:`_time`, :func:`_scaled` ...) each check one JSON value and name its path
when they refuse it.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar

from gateway.model import DeliveryQuality, OptionKind, Resolution, Role, Side, TenderStatus
from gateway.model.intervals import IntervalError, market_zone
from gateway.model.units import EnergyUnit, PowerUnit
from gateway.protocols.ei.messages import CancelReason, EiDecodeError, Payload, ResponseCode

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
