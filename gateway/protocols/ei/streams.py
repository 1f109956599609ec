"""What the EI XML and CTS JSON codecs share: WS-Calendar streams and scaled integers.

A stream has one ``dtStart`` and one duration; its intervals carry no start of their own: interval ``uid`` n
starts at dtStart + n x duration (CTS; see ../shared/specs/ei-cts/ERRATA.md). A canonical tender is a strip of
rows with their own starts, possibly with gaps, so a row's uid is its offset from the first row, counted in
market intervals (calendar ones too: a "day" in a DST time zone is 23 or 25 hours). CTS carries prices and
quantities as integers with a power-of-ten scale; the conversions are exact or refuse (see gateway.model.units).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from gateway.model import Resolution
from gateway.model.intervals import interval_end
from gateway.model.units import decimal_to_scaled_integer

__all__ = ["common_scale", "from_scaled", "offsets", "starts", "to_scaled"]

_MAX_STEPS = 100_000


def offsets(row_starts: list[datetime], resolution: Resolution, time_zone: str) -> list[int]:
    """The uid of each row start in a stream starting at the first one (strictly increasing starts)."""
    first = row_starts[0]
    if not resolution.is_calendar:
        seconds = resolution.seconds
        return [int((start - first).total_seconds()) // seconds for start in row_starts]
    out: list[int] = []
    current, n = first, 0
    for start in row_starts:
        while current < start:
            current, n = interval_end(current, resolution, time_zone), n + 1
            if n > _MAX_STEPS:
                raise ValueError("stream too long")
        out.append(n)
    return out


def starts(dt_start: datetime, resolution: Resolution, time_zone: str, uids: list[int]) -> list[datetime]:
    """The start of each interval uid of a stream (uids strictly increasing, >= 0)."""
    if not resolution.is_calendar:
        step = timedelta(seconds=resolution.seconds)
        return [dt_start + uid * step for uid in uids]
    out: list[datetime] = []
    current, n = dt_start, 0
    for uid in uids:
        if uid - n > _MAX_STEPS:
            raise ValueError(f"interval uid {uid} is too far from the stream start")
        while n < uid:
            current, n = interval_end(current, resolution, time_zone), n + 1
        out.append(current)
    return out


def common_scale(values: list[Decimal]) -> int:
    """The largest power-of-ten scale that represents every value as an integer exactly (0.125 and 2 -> -3).

    Trailing zeros are stripped from the digits themselves rather than by ``normalize()``, which rounds to the
    context's 28 significant digits and would lose the tail of a longer value.
    """
    scale = 0
    for value in values:
        if value == 0:
            continue
        _sign, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)  # finite: the model refuses NaN and infinity
        trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
        scale = min(scale, exponent + trailing)
    return scale


def to_scaled(value: Decimal, scale: int) -> int:
    return decimal_to_scaled_integer(value, scale)


def from_scaled(value: int, scale: int) -> Decimal:
    """Exact: the decimal literal ``<value>E<scale>`` is parsed without rounding (10x faster than scaleb)."""
    return Decimal(f"{value}E{scale}")
