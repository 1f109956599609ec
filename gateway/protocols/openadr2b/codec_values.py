"""Text <-> value for the XSD simple types 2.0b uses: xcal date-times, xcal durations, xs:float/xs:decimal,
xs:unsignedInt and xs:boolean.

The schema has already checked the lexical form when these run on input, so the readers are fast paths that only
turn text into values and refuse what the schema lets through but the gateway cannot hold exactly (durations in
months, non-finite numbers). Every refusal is an :class:`OadrDecodeError` with code 454.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from gateway.protocols.openadr2b.messages import OadrDecodeError


class OadrEncodeError(ValueError):
    """A message the 2.0b schema cannot express (a missing required field, a sub-second duration, a naive time):
    a bug in whoever built the message, so it is raised rather than written as an invalid document."""


_DAY = timedelta(days=1)


def read_datetime(text: str | None) -> datetime:
    """An xcal:date-time as an aware UTC datetime.

    The 2.0b profile says date-times are UTC (rule 1), and the xcal pattern allows a missing zone designator, so
    a time without 'Z' is read as UTC rather than refused. Offsets are converted. Fractional seconds beyond
    microseconds are truncated (datetime's resolution). 24:00:00, which xs:dateTime allows, is the next midnight.
    """
    value = (text or "").strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = _end_of_day(value)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise OadrDecodeError(f"'{value}' is outside the range of date-times") from None


def _end_of_day(value: str) -> datetime:
    date, _, clock = value.partition("T")
    if clock.startswith("24:00:00") and not clock[8:].strip(".0Z"):
        try:
            return datetime.fromisoformat(date + "T00:00:00Z") + _DAY
        except (ValueError, OverflowError):
            pass
    raise OadrDecodeError(f"'{value}' is not a date-time")


def write_datetime(moment: datetime) -> str:
    """UTC with 'Z' (profile rule 1); microseconds only when there are some, so whole seconds stay short."""
    if moment.tzinfo is None:
        raise OadrEncodeError(f"{moment!r} has no time zone; times inside the gateway are aware UTC")
    moment = moment.astimezone(UTC)
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
        f"{moment.second:02d}"
    )
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


# The xcal DurationValueType pattern, in the same order: (+|-)?P(nY)?(nM)?(nD)?T?(nH)?(nM)?(nS)? | nW. The first
# M is months (an M before any day or time part), the second minutes, as the pattern's own left-to-right reading.
_DURATION = re.compile(
    r"([+-])?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?|(\d+)W",
)


def read_duration(text: str | None) -> timedelta:
    """An xcal duration as a timedelta (see ``_duration``)."""
    return _duration(text or "")


@functools.lru_cache(maxsize=1024)
def _duration(text: str) -> timedelta:
    """An xcal duration as a timedelta, remembered: a handful of texts (PT15M, PT1H...) make up nearly all the
    durations a gateway sees, and a cache hit costs a tenth of the parse.

    xs:duration years and months are calendar lengths (28 to 31 days, 365 or 366), which a timedelta cannot hold
    and an interval must not guess, so a non-zero year or month count is refused. Weeks are accepted both as the
    schema's bare 'nW' and ISO's 'PnW'.
    """
    value = text.strip()
    match = _DURATION.fullmatch(value)
    if match is None:
        raise OadrDecodeError(f"'{value}' is not a duration")
    sign, years, months, weeks, days, hours, minutes, seconds, bare_weeks = match.groups()
    if (years and int(years)) or (months and int(months)):
        raise OadrDecodeError(
            f"duration '{value}' counts years or months, which have no fixed length; use weeks, days, hours,"
            " minutes or seconds (PT5M is five minutes, P5M five months)"
        )
    try:
        length = timedelta(
            weeks=int(weeks or bare_weeks or 0),
            days=int(days or 0),
            hours=int(hours or 0),
            minutes=int(minutes or 0),
            seconds=int(seconds or 0),
        )
    except (OverflowError, ValueError):  # ValueError: more digits than int() reads
        raise OadrDecodeError(f"duration '{value}' is too long") from None
    return -length if sign == "-" else length


def write_duration(length: timedelta) -> str:
    """Days, hours, minutes and seconds, zero parts left out (PT30M, P1DT2H); the xcal pattern has no fractions of
    a second, so a sub-second duration cannot be written."""
    if length.microseconds:
        raise OadrEncodeError(f"duration {length} has a fraction of a second, which xcal durations cannot carry")
    sign = "-" if length < timedelta(0) else ""
    seconds = abs(int(length.total_seconds()))
    if not seconds:
        return "PT0S"
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3_600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{sign}P{days}D" if days else f"{sign}P"
    if hours or minutes or seconds:
        text += "T"
        if hours:
            text += f"{hours}H"
        if minutes:
            text += f"{minutes}M"
        if seconds:
            text += f"{seconds}S"
    return text


def read_decimal(text: str | None) -> Decimal:
    """xs:float or xs:decimal text as an exact Decimal (0.1234 stays 0.1234). INF and NaN are valid xs:float but
    no price or quantity, and NaN would make equal messages compare unequal, so they are refused."""
    try:
        number = Decimal(text or "")
    except InvalidOperation:
        raise OadrDecodeError(f"'{(text or '').strip()}' is not a number") from None
    if not number.is_finite():
        raise OadrDecodeError(f"'{(text or '').strip()}' is not a finite number")
    return number


def write_float(number: Decimal) -> str:
    """For xs:float: Decimal's own text, which keeps trailing zeros (1.20) and uses an exponent only for very large
    or small values, both valid xs:float."""
    if not number.is_finite():
        raise OadrEncodeError(f"{number} is not a finite number")
    return str(number)


def write_decimal(number: Decimal) -> str:
    """For xs:decimal, which has no exponent form."""
    if not number.is_finite():
        raise OadrEncodeError(f"{number} is not a finite number")
    return format(number, "f")


def read_int(text: str | None) -> int:
    try:
        return int(text or "")
    except ValueError:
        raise OadrDecodeError(f"'{(text or '').strip()}' is not a whole number") from None


def read_bool(text: str | None) -> bool:
    value = (text or "").strip()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise OadrDecodeError(f"'{value}' is not a boolean")


def write_bool(flag: bool) -> str:
    return "true" if flag else "false"
