"""Uniform nested intervals (TeMIX) and free-form time spans.

Transactive products are priced per interval, and intervals from different parties must line up: a
5-minute tender has to roll up into the hour it belongs to, an hour into its day. So market intervals come
from one nested set of durations and each starts on its own boundary. Fixed durations (4 s .. 1 h) are
aligned on the market's wall clock; calendar durations (day, month, year) are defined in the market's time
zone, which is why a DST day is 23 or 25 hours long and still holds exactly its hours.

Legacy DR events and DER controls use arbitrary durations, so they use :class:`TimeSpan` instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from gateway.model.base import CanonicalModel, UtcDatetime


class Resolution(StrEnum):
    """The uniform nested set of interval durations, as ISO 8601 durations."""

    FOUR_SECONDS = "PT4S"
    FIVE_MINUTES = "PT5M"
    FIFTEEN_MINUTES = "PT15M"
    HOUR = "PT1H"
    DAY = "P1D"
    MONTH = "P1M"
    YEAR = "P1Y"

    @property
    def is_calendar(self) -> bool:
        """Day, month and year follow the market's calendar, so their length varies."""
        return self in _CALENDAR

    @property
    def seconds(self) -> int:
        """Length in seconds for fixed resolutions; calendar resolutions have no fixed length."""
        try:
            return _FIXED_SECONDS[self]
        except KeyError:
            raise ValueError(f"{self.value} is a calendar duration with no fixed length") from None

    @property
    def rank(self) -> int:
        return _ORDER.index(self)


_ORDER = list(Resolution)
_CALENDAR = frozenset({Resolution.DAY, Resolution.MONTH, Resolution.YEAR})
_FIXED_SECONDS = {
    Resolution.FOUR_SECONDS: 4,
    Resolution.FIVE_MINUTES: 300,
    Resolution.FIFTEEN_MINUTES: 900,
    Resolution.HOUR: 3600,
}


class IntervalError(ValueError):
    """A misaligned, unknown or inconsistent interval."""


@lru_cache(maxsize=256)
def market_zone(name: str) -> ZoneInfo:
    """The IANA time zone a market's calendar intervals are defined in (cached: zone loads cost ~50 us)."""
    try:
        if len(name) > 64:  # IANA names are short; a long one would reach the file system as a path
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise IntervalError(f"unknown time zone '{name}' (use an IANA name such as Europe/Berlin)") from None


def _check_zone(name: str) -> str:
    if name != "UTC":
        market_zone(name)
    return name


TimeZoneName = Annotated[str, AfterValidator(_check_zone)]


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``zone``, as UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def _add_months(day: date, months: int) -> date:
    month_index = day.year * 12 + (day.month - 1) + months
    return date(month_index // 12, month_index % 12 + 1, 1)


class Interval(CanonicalModel):
    """A uniform interval: a UTC start on its boundary and a duration from the nested set.

    ``time_zone`` is the market's time zone; it decides where days, months and years begin and, for
    fixed durations, which wall clock the boundary is checked on (an hour in Kolkata starts at :30 UTC).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: UtcDatetime
    duration: Resolution
    time_zone: str = "UTC"

    @model_validator(mode="after")
    def _starts_on_boundary(self) -> Self:
        # One validator does the zone check and alignment: each Python-level call costs as much as
        # the rest of the interval's parsing.
        if self.time_zone != "UTC":
            market_zone(self.time_zone)
        if not is_aligned(self.start, self.duration, self.time_zone):
            raise IntervalError(
                f"interval start {self.start.isoformat()} is not on a {self.duration.value} boundary"
                f" in time zone {self.time_zone}"
            )
        return self

    @property
    def end(self) -> datetime:
        return interval_end(self.start, self.duration, self.time_zone)

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def contains(self, other: Interval) -> bool:
        return self.start <= other.start and other.end <= self.end

    def split(self, child: Resolution) -> list[Interval]:
        """The finer intervals that exactly tile this one (e.g. 23, 24 or 25 hours of a day)."""
        child = Resolution(child)
        if child.rank >= self.duration.rank:
            raise IntervalError(f"cannot split {self.duration.value} into {child.value}: it is not finer")
        end = self.end
        starts: list[datetime] = []
        if child.is_calendar:
            zone = market_zone(self.time_zone)
            local = self.start.astimezone(zone).date()
            while (start := _local_midnight(local, zone)) < end:
                starts.append(start)
                local = local + timedelta(days=1) if child is Resolution.DAY else _add_months(local, 1)
        else:
            step = timedelta(seconds=child.seconds)
            current = self.start
            while current < end:
                starts.append(current)
                current += step
        return [Interval.model_construct(start=s, duration=child, time_zone=self.time_zone) for s in starts]

    def parent(self, resolution: Resolution) -> Interval:
        """The coarser interval of ``resolution`` that contains this one."""
        resolution = Resolution(resolution)
        if resolution.rank <= self.duration.rank:
            raise IntervalError(f"{resolution.value} is not coarser than {self.duration.value}")
        return Interval.model_construct(
            start=floor_to_boundary(self.start, resolution, self.time_zone),
            duration=resolution,
            time_zone=self.time_zone,
        )


def is_aligned(start: datetime, duration: Resolution, time_zone: str = "UTC") -> bool:
    """Whether ``start`` is a boundary of ``duration`` on the market's wall clock.

    This runs for every row of every tender, so fixed durations take a shortcut: each one divides an
    hour, and every UTC offset in use is a whole number of 15 minutes, so the minute and second of the
    local wall clock decide alignment without building any datetime.
    """
    if start.microsecond:
        return False
    seconds = _FIXED_SECONDS.get(duration)
    if seconds is not None:
        local = start if time_zone == "UTC" else start.astimezone(market_zone(time_zone))
        return (local.minute * 60 + local.second) % seconds == 0
    return floor_to_boundary(start, duration, time_zone) == start


def check_strip(starts: list[datetime], resolution: Resolution, time_zone: str) -> None:
    """Check a strip of UTC interval starts: each on its boundary, strictly increasing (so none overlap).

    This is the hot path of tender validation: the common case (UTC market, fixed resolution, all well
    formed) is one lean loop; only a failure, or a calendar or non-UTC market, takes the detailed loop.
    """
    zone = None if time_zone == "UTC" else market_zone(time_zone)
    seconds = _FIXED_SECONDS.get(resolution)
    if zone is None and seconds is not None and _plain_utc_strip(starts, seconds):
        return
    previous: datetime | None = None
    for index, start in enumerate(starts):
        if not is_aligned(start, resolution, time_zone):
            raise IntervalError(
                f"row {index}: start {start.isoformat()} is not on a {resolution.value} boundary in time zone"
                f" {time_zone}"
            )
        if previous is not None and start <= previous:
            raise IntervalError(
                f"row {index}: start {start.isoformat()} does not come after the previous row; rows must be"
                " in time order with no interval twice"
            )
        previous = start


def _plain_utc_strip(starts: list[datetime], seconds: int) -> bool:
    """The common case, as lean as Python allows: aligned on a fixed duration in UTC, increasing.

    False means "look closer" (an error to explain), which the caller's detailed loop does. Alignment on
    minute and second is enough because every fixed duration divides an hour (see :func:`is_aligned`).
    Starts are UTC already (:data:`UtcDatetime`), so no offset is looked at.
    """
    previous = None
    for start in starts:
        if start.microsecond or (start.minute * 60 + start.second) % seconds:
            return False
        if previous is not None and start <= previous:
            return False
        previous = start
    return True


def floor_to_boundary(instant: datetime, resolution: Resolution, time_zone: str = "UTC") -> datetime:
    """The start of the ``resolution`` interval holding ``instant`` on the market's calendar, as UTC."""
    instant = instant.astimezone(UTC)
    if not resolution.is_calendar:
        seconds = resolution.seconds
        if time_zone == "UTC":
            epoch = int(instant.timestamp())
            return datetime.fromtimestamp(epoch - epoch % seconds, UTC)
        local = instant.astimezone(market_zone(time_zone))
        into = (local.minute * 60 + local.second) % seconds
        # Step back on the UTC instant, not on the wall clock: wall-clock arithmetic drops ``fold``, so in
        # the repeated hour of a DST fall-back it would land in the first pass of that hour (an hour early).
        return instant.replace(microsecond=0) - timedelta(seconds=into)
    zone = market_zone(time_zone)
    local_day = instant.astimezone(zone).date()
    if resolution is Resolution.MONTH:
        local_day = local_day.replace(day=1)
    elif resolution is Resolution.YEAR:
        local_day = local_day.replace(month=1, day=1)
    return _local_midnight(local_day, zone)


def interval_end(start: datetime, duration: Resolution, time_zone: str = "UTC") -> datetime:
    if not duration.is_calendar:
        return start + timedelta(seconds=duration.seconds)
    zone = market_zone(time_zone)
    local_day = start.astimezone(zone).date()
    if duration is Resolution.DAY:
        return _local_midnight(local_day + timedelta(days=1), zone)
    months = 1 if duration is Resolution.MONTH else 12
    return _local_midnight(_add_months(local_day, months), zone)


def roll_up_rates(
    values: Mapping[Interval, Decimal], resolution: Resolution, *, allow_partial: bool = False
) -> dict[Interval, Decimal]:
    """Roll rates (kW over each child interval) up to ``resolution`` as the time-weighted mean.

    Rates, not energies, are the canonical quantity, so a parent's rate is the duration-weighted mean of
    its children (exact, in Decimal). A parent with missing children is an error unless ``allow_partial``
    (then the mean covers only the children present).
    """
    groups: dict[Interval, list[tuple[Interval, Decimal]]] = defaultdict(list)
    for child, value in values.items():
        groups[child.parent(resolution)].append((child, value))
    result: dict[Interval, Decimal] = {}
    for parent, children in groups.items():
        covered = sum(int(c.length.total_seconds()) for c, _ in children)
        total = int(parent.length.total_seconds())
        if covered != total and not allow_partial:
            raise IntervalError(
                f"cannot roll up into {parent.start.isoformat()}/{resolution.value}: children cover"
                f" {covered} s of {total} s"
            )
        weighted = sum((v * int(c.length.total_seconds()) for c, v in children), Decimal(0))
        result[parent] = weighted / covered
    return result


def roll_up_energy(values: Mapping[Interval, Decimal], resolution: Resolution) -> dict[Interval, Decimal]:
    """Roll energies (kWh per child interval) up by summation; metered energy adds, it does not average."""
    result: dict[Interval, Decimal] = defaultdict(Decimal)
    for child, value in values.items():
        result[child.parent(resolution)] += value
    return dict(result)


def intervals_between(
    start: datetime, end: datetime, resolution: Resolution, time_zone: str = "UTC"
) -> Iterable[Interval]:
    """Successive intervals of ``resolution`` from the boundary at or before ``start`` until ``end``."""
    current = floor_to_boundary(start, resolution, time_zone)
    while current < end:
        yield Interval.model_construct(start=current, duration=resolution, time_zone=time_zone)
        current = interval_end(current, resolution, time_zone)


PositiveDuration = Annotated[timedelta, Field(gt=timedelta(0))]


class TimeSpan(CanonicalModel):
    """A free-form span (start + positive duration) for DR events and DER controls, which are not uniform."""

    start: UtcDatetime
    duration: PositiveDuration

    @property
    def end(self) -> datetime:
        return self.start + self.duration

    def overlaps(self, other: TimeSpan) -> bool:
        return self.start < other.end and other.start < self.end
