"""Property tests of the uniform nested interval set (gateway/model/intervals.py).

Aligned starts are generated independently of the code under test: a calendar interval starts at a local
midnight built with zoneinfo directly, a fixed one at that midnight plus a whole number of steps.
"""

from __future__ import annotations

import calendar
import itertools
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.model import Interval, IntervalError, Resolution, Tender, floor_to_boundary, roll_up_energy, roll_up_rates
from gateway.model.intervals import check_strip, interval_end, intervals_between, is_aligned

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Adelaide", "Asia/Kolkata"]
DST_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Adelaide"]
YEARS = (1999, 2037)  # every one of these zones has had its present rules since before 1999

HOUR = 3600
DAY = 86400

# Which finer resolutions a split is checked for (year -> 4 s would be 7.9 million children).
SPLITS: dict[Resolution, list[Resolution]] = {
    Resolution.YEAR: [Resolution.MONTH, Resolution.DAY],
    Resolution.MONTH: [Resolution.DAY, Resolution.HOUR],
    Resolution.DAY: [Resolution.HOUR, Resolution.FIFTEEN_MINUTES, Resolution.FIVE_MINUTES],
    Resolution.HOUR: [Resolution.FIFTEEN_MINUTES, Resolution.FIVE_MINUTES, Resolution.FOUR_SECONDS],
    Resolution.FIFTEEN_MINUTES: [Resolution.FIVE_MINUTES, Resolution.FOUR_SECONDS],
    Resolution.FIVE_MINUTES: [Resolution.FOUR_SECONDS],
    Resolution.FOUR_SECONDS: [],
}
STEP = {
    Resolution.FOUR_SECONDS: 4,
    Resolution.FIVE_MINUTES: 300,
    Resolution.FIFTEEN_MINUTES: 900,
    Resolution.HOUR: 3600,
}

SLOW = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def local_midnight(day: date, zone: str) -> datetime:
    """Reference implementation, straight from zoneinfo: the first instant of ``day`` in ``zone``, as UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).astimezone(UTC)


@cache
def transition_days(zone: str) -> tuple[date, ...]:
    """Local days whose length is not 24 h (DST changes), found by brute force over the test years."""
    days = []
    current = date(YEARS[0], 1, 1)
    while current.year <= YEARS[1]:
        following = current + timedelta(days=1)
        if local_midnight(following, zone) - local_midnight(current, zone) != timedelta(days=1):
            days.append(current)
        current = following
    return tuple(days)


def transition_instant(day: date, zone: str) -> datetime | None:
    """The UTC instant on ``day`` at which ``zone`` changes its offset (found in 15-minute steps), if any."""
    midnight = local_midnight(day, zone)
    tz = ZoneInfo(zone)
    before = midnight.astimezone(tz).utcoffset()
    for quarter in range(1, 26 * 4):
        instant = midnight + timedelta(minutes=15 * quarter)
        if instant.astimezone(tz).utcoffset() != before:
            return instant
    return None


@st.composite
def instants_on(draw: st.DrawFn, day: date, zone: str) -> datetime:
    """An instant on or just after ``day``; on a DST day most often within two hours of the change."""
    midnight = local_midnight(day, zone)
    anywhere = st.integers(0, 2 * DAY - 1).map(lambda s: midnight + timedelta(seconds=s))
    change = transition_instant(day, zone)
    if change is None:
        return draw(anywhere)
    near = st.integers(-2 * HOUR, 2 * HOUR - 1).map(lambda s: change + timedelta(seconds=s))
    return draw(st.one_of(near, near, anywhere))


@st.composite
def local_days(draw: st.DrawFn, zone: str) -> date:
    """Any day, with DST transition days and 29 February drawn often."""
    specials = list(transition_days(zone)) if zone in DST_ZONES else []
    specials += [date(year, 2, 29) for year in range(YEARS[0], YEARS[1] + 1) if calendar.isleap(year)]
    any_day = st.dates(min_value=date(YEARS[0], 1, 1), max_value=date(YEARS[1], 12, 31))
    return draw(st.one_of(any_day, st.sampled_from(specials)))


@st.composite
def aligned_intervals(draw: st.DrawFn, resolutions: list[Resolution] | None = None) -> Interval:
    """A validated interval of any resolution, in any of the test zones, starting on its boundary."""
    zone = draw(st.sampled_from(ZONES))
    resolution = draw(st.sampled_from(resolutions or list(Resolution)))
    day = draw(local_days(zone))
    if resolution is Resolution.YEAR:
        start = local_midnight(date(day.year, 1, 1), zone)
    elif resolution is Resolution.MONTH:
        start = local_midnight(day.replace(day=1), zone)
    elif resolution is Resolution.DAY:
        start = local_midnight(day, zone)
    else:
        # midnight + whole steps: every offset in these zones is a multiple of 15 minutes, so this is aligned
        midnight = local_midnight(day, zone)
        into_day = int((draw(instants_on(day, zone)) - midnight).total_seconds())
        start = midnight + timedelta(seconds=into_day - into_day % STEP[resolution])
    return Interval(start=start, duration=resolution, time_zone=zone)


def splittable() -> st.SearchStrategy[tuple[Interval, Resolution]]:
    return aligned_intervals([r for r in Resolution if SPLITS[r]]).flatmap(
        lambda parent: st.tuples(st.just(parent), st.sampled_from(SPLITS[parent.duration]))
    )


# -- nesting ---------------------------------------------------------------------------------------------


@SLOW
@given(splittable())
def test_split_tiles_the_parent_exactly(case: tuple[Interval, Resolution]) -> None:
    parent, child_resolution = case
    children = parent.split(child_resolution)
    assert children[0].start == parent.start
    assert children[-1].end == parent.end
    for earlier, later in itertools.pairwise(children):
        assert earlier.end == later.start, "children must be contiguous, with no gap and no overlap"
    assert sum((c.length for c in children), timedelta()) == parent.length
    for child in children:
        assert child.duration is child_resolution
        # split() builds children without validation: validate each one for real.
        assert Interval.model_validate(child.model_dump()) == child
        assert child.parent(parent.duration) == parent
        assert parent.contains(child)


@SLOW
@given(aligned_intervals([r for r in Resolution if r is not Resolution.YEAR]), st.data())
def test_parent_contains_child_and_is_aligned(child: Interval, data: st.DataObject) -> None:
    coarser = [r for r in Resolution if r.rank > child.duration.rank]
    resolution = data.draw(st.sampled_from(coarser))
    parent = child.parent(resolution)
    Interval.model_validate(parent.model_dump())  # on its own boundary
    assert parent.contains(child)
    if parent.length <= child.length * 5000:  # year -> 4 s would be 7.9 million children
        assert child in parent.split(child.duration)


@SLOW
@given(st.sampled_from(ZONES), st.sampled_from(list(Resolution)), st.data())
def test_floor_to_boundary_holds_the_instant(zone: str, resolution: Resolution, data: st.DataObject) -> None:
    # Instants are drawn around DST changes too, including the repeated hour of a fall-back night.
    day = data.draw(local_days(zone))
    instant = data.draw(instants_on(day, zone)) + timedelta(microseconds=data.draw(st.integers(0, 999_999)))
    start = floor_to_boundary(instant, resolution, zone)
    assert start <= instant < interval_end(start, resolution, zone)
    assert is_aligned(start, resolution, zone)
    Interval(start=start, duration=resolution, time_zone=zone)


@pytest.mark.parametrize(
    ("zone", "utc_instant", "expected_hour_start"),
    [
        # 01:45 EST, the second pass through 01:xx on 3 Nov 2024: the hour is 01:00 EST = 06:00 UTC
        ("America/New_York", datetime(2024, 11, 3, 6, 45, tzinfo=UTC), datetime(2024, 11, 3, 6, tzinfo=UTC)),
        ("America/New_York", datetime(2024, 11, 3, 5, 45, tzinfo=UTC), datetime(2024, 11, 3, 5, tzinfo=UTC)),
        ("Europe/Berlin", datetime(2024, 10, 27, 1, 59, 59, tzinfo=UTC), datetime(2024, 10, 27, 1, tzinfo=UTC)),
        # 02:15 ACST after Adelaide's fall-back at 03:00 ACDT on 7 Apr 2024
        ("Australia/Adelaide", datetime(2024, 4, 6, 16, 45, tzinfo=UTC), datetime(2024, 4, 6, 16, 30, tzinfo=UTC)),
    ],
)
def test_repeated_hour_of_a_fall_back_night(zone: str, utc_instant: datetime, expected_hour_start: datetime) -> None:
    five = Interval(
        start=floor_to_boundary(utc_instant, Resolution.FIVE_MINUTES, zone), duration="PT5M", time_zone=zone
    )
    hour = five.parent(Resolution.HOUR)
    assert hour.start == expected_hour_start
    assert hour.contains(five)


# -- calendar lengths --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("Europe/Berlin", date(2024, 3, 31), 23),
        ("Europe/Berlin", date(2024, 10, 27), 25),
        ("Europe/Berlin", date(2024, 7, 1), 24),
        ("America/New_York", date(2024, 3, 10), 23),
        ("America/New_York", date(2024, 11, 3), 25),
        ("America/New_York", date(2023, 3, 12), 23),
        ("America/New_York", date(2023, 11, 5), 25),
        ("Australia/Adelaide", date(2024, 10, 6), 23),
        ("Australia/Adelaide", date(2024, 4, 7), 25),
        ("Asia/Kolkata", date(2024, 3, 31), 24),
        ("UTC", date(2024, 10, 27), 24),
    ],
)
def test_dst_days_have_23_or_25_hours(zone: str, day: date, hours: int) -> None:
    interval = Interval(start=local_midnight(day, zone), duration=Resolution.DAY, time_zone=zone)
    children = interval.split(Resolution.HOUR)
    assert len(children) == hours
    assert interval.length == timedelta(hours=hours)
    assert len(interval.split(Resolution.FIVE_MINUTES)) == hours * 12
    # the day after starts exactly where this one ends
    assert interval.end == local_midnight(day + timedelta(days=1), zone)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(ZONES), st.integers(*YEARS))
def test_each_year_has_one_short_and_one_long_day_in_dst_zones(zone: str, year: int) -> None:
    start = local_midnight(date(year, 1, 1), zone)
    year_interval = Interval(start=start, duration=Resolution.YEAR, time_zone=zone)
    days = year_interval.split(Resolution.DAY)
    assert len(days) == (366 if calendar.isleap(year) else 365)
    lengths = sorted(int(d.length.total_seconds()) // HOUR for d in days)
    expected_short_long = 1 if zone in DST_ZONES else 0
    assert lengths.count(23) == expected_short_long
    assert lengths.count(25) == expected_short_long
    assert lengths.count(24) == len(days) - 2 * expected_short_long
    assert year_interval.length == timedelta(days=len(days))  # one lost hour, one gained hour


@SLOW
@given(aligned_intervals([Resolution.MONTH]))
def test_months_have_28_to_31_days(month: Interval) -> None:
    local = month.start.astimezone(ZoneInfo(month.time_zone))
    assert (local.day, local.hour, local.minute) == (1, 0, 0)
    days = month.split(Resolution.DAY)
    assert len(days) == calendar.monthrange(local.year, local.month)[1]
    assert 28 <= len(days) <= 31
    hours = month.split(Resolution.HOUR)
    assert len(hours) * HOUR == int(month.length.total_seconds())


@settings(max_examples=40, deadline=None)
@given(aligned_intervals([Resolution.YEAR]))
def test_years_have_twelve_months(year: Interval) -> None:
    months = year.split(Resolution.MONTH)
    assert len(months) == 12
    local_year = year.start.astimezone(ZoneInfo(year.time_zone)).year
    assert [m.start.astimezone(ZoneInfo(year.time_zone)).month for m in months] == list(range(1, 13))
    days = sum(len(m.split(Resolution.DAY)) for m in months)
    assert days == (366 if calendar.isleap(local_year) else 365)


def test_leap_day_is_a_day() -> None:
    day = Interval(start="2024-02-29T00:00:00+01:00", duration=Resolution.DAY, time_zone="Europe/Berlin")
    assert day.end == datetime(2024, 2, 29, 23, tzinfo=UTC)
    assert day.parent(Resolution.MONTH).split(Resolution.DAY)[-1] == day
    with pytest.raises(ValueError):
        Interval(start=datetime(2023, 2, 29, tzinfo=UTC), duration=Resolution.DAY)  # no such day


# -- time zones with half-hour offsets ---------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Australia/Adelaide"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_half_hour_zones_start_hours_at_half_past_utc(zone: str, data: st.DataObject) -> None:
    day = Interval(start=local_midnight(data.draw(local_days(zone)), zone), duration=Resolution.DAY, time_zone=zone)
    hours = day.split(Resolution.HOUR)
    assert {h.start.minute for h in hours} == {30}
    assert all(h.start.second == 0 for h in hours)


def test_kolkata_hour_boundaries() -> None:
    assert Interval(start="2024-05-01T00:30:00Z", duration="PT1H", time_zone="Asia/Kolkata").start.minute == 30
    with pytest.raises(ValidationError, match="not on a PT1H boundary in time zone Asia/Kolkata"):
        Interval(start="2024-05-01T00:00:00Z", duration="PT1H", time_zone="Asia/Kolkata")
    # 15 minutes divide the half-hour offset, so those boundaries are the same as in UTC
    Interval(start="2024-05-01T00:15:00Z", duration="PT15M", time_zone="Asia/Kolkata")
    day = Interval(start="2024-04-30T18:30:00Z", duration="P1D", time_zone="Asia/Kolkata")
    assert day.end == datetime(2024, 5, 1, 18, 30, tzinfo=UTC)


# -- roll-ups ----------------------------------------------------------------------------------------------

RATES = st.decimals(min_value=Decimal("-100000"), max_value=Decimal("100000"), places=6, allow_nan=False)


def exact_energy(values: dict[Interval, Decimal]) -> Fraction:
    return sum((Fraction(v) * int(i.length.total_seconds()) for i, v in values.items()), Fraction(0))


@SLOW
@given(splittable(), RATES, st.data())
def test_roll_up_rates_preserves_energy_exactly(
    case: tuple[Interval, Resolution], mean: Decimal, data: st.DataObject
) -> None:
    """Rates built as mean + deviations that cancel within each group of equal-length children roll up to
    exactly ``mean``: no digit of energy is lost, on 23-, 24- and 25-hour days alike."""
    parent, child_resolution = case
    children = parent.split(child_resolution)
    assume(len(children) <= 3000)
    groups: dict[timedelta, list[Interval]] = {}
    for child in children:
        groups.setdefault(child.length, []).append(child)
    rates: dict[Interval, Decimal] = {}
    for members in groups.values():
        deviations = data.draw(st.lists(RATES, min_size=len(members) - 1, max_size=len(members) - 1))
        deviations.append(-sum(deviations, Decimal(0)))
        for child, deviation in zip(members, deviations, strict=True):
            rates[child] = mean + deviation
    rolled = roll_up_rates(rates, parent.duration)
    assert list(rolled) == [parent]
    assert rolled[parent] == mean
    assert Fraction(rolled[parent]) * int(parent.length.total_seconds()) == exact_energy(rates)


@SLOW
@given(splittable(), st.data())
def test_roll_up_rates_is_the_time_weighted_mean(case: tuple[Interval, Resolution], data: st.DataObject) -> None:
    """For arbitrary rates the exact mean may not terminate (1/12), so it must be the correctly rounded one."""
    parent, child_resolution = case
    children = parent.split(child_resolution)
    assume(len(children) <= 3000)
    rates = {child: data.draw(RATES) for child in children}
    rolled = roll_up_rates(rates, parent.duration)[parent]
    exact = exact_energy(rates) / int(parent.length.total_seconds())
    assert abs(Fraction(rolled) - exact) <= abs(exact) * Fraction(1, 10**27)
    assert min(rates.values()) <= rolled <= max(rates.values())


@SLOW
@given(splittable(), st.data())
def test_roll_up_rates_refuses_a_gap_unless_partial(case: tuple[Interval, Resolution], data: st.DataObject) -> None:
    parent, child_resolution = case
    children = parent.split(child_resolution)
    assume(2 <= len(children) <= 3000)
    missing = data.draw(st.integers(0, len(children) - 1))
    rate = data.draw(RATES)
    rates = {child: rate for i, child in enumerate(children) if i != missing}
    with pytest.raises(IntervalError, match=r"children cover \d+ s of \d+ s"):
        roll_up_rates(rates, parent.duration)
    partial = roll_up_rates(rates, parent.duration, allow_partial=True)
    assert partial == {parent: rate}  # the mean over the children that are there


def test_roll_up_rates_groups_by_parent() -> None:
    hours = Interval(start="2024-03-30T00:00:00Z", duration="P1D", time_zone="UTC").split(Resolution.HOUR)
    hours += Interval(start="2024-03-31T00:00:00Z", duration="P1D", time_zone="UTC").split(Resolution.HOUR)
    rates = {h: Decimal(1 if h.start.day == 30 else 3) for h in hours}
    rolled = roll_up_rates(rates, Resolution.DAY)
    assert sorted((k.start.day, v) for k, v in rolled.items()) == [(30, Decimal(1)), (31, Decimal(3))]


def test_roll_up_rates_weights_by_duration_on_a_short_day() -> None:
    # Berlin's 23-hour day: 22 hours at 1 kW and one at 24 kW is 46 kWh over 23 h, a mean of exactly 2 kW.
    day = Interval(start="2024-03-30T23:00:00Z", duration="P1D", time_zone="Europe/Berlin")
    hours = day.split(Resolution.HOUR)
    rates = {h: Decimal(24) if i == 0 else Decimal(1) for i, h in enumerate(hours)}
    assert roll_up_rates(rates, Resolution.DAY) == {day: Decimal(2)}


@SLOW
@given(splittable(), st.data())
def test_roll_up_energy_sums(case: tuple[Interval, Resolution], data: st.DataObject) -> None:
    parent, child_resolution = case
    children = parent.split(child_resolution)
    assume(len(children) <= 3000)
    energies = {child: data.draw(RATES) for child in children}
    assert roll_up_energy(energies, parent.duration) == {parent: sum(energies.values(), Decimal(0))}


# -- rejection ---------------------------------------------------------------------------------------------


@SLOW
@given(aligned_intervals(), st.data())
def test_misaligned_starts_are_rejected_naming_the_boundary(interval: Interval, data: st.DataObject) -> None:
    length = int(interval.length.total_seconds())
    step = STEP.get(interval.duration, length)
    offset = data.draw(st.integers(1, step - 1).filter(lambda s: s % step))
    with pytest.raises(ValidationError) as info:
        Interval(
            start=interval.start + timedelta(seconds=offset), duration=interval.duration, time_zone=interval.time_zone
        )
    message = str(info.value)
    assert f"not on a {interval.duration.value} boundary" in message
    assert interval.time_zone in message


def test_sub_second_start_is_misaligned() -> None:
    with pytest.raises(ValidationError, match="PT4S boundary"):
        Interval(start=datetime(2024, 1, 1, 0, 0, 4, 1, tzinfo=UTC), duration="PT4S")


@pytest.mark.parametrize("duration", ["PT30M", "PT1M", "P1W", "PT60M", "1h", ""])
def test_unknown_durations_are_rejected(duration: str) -> None:
    with pytest.raises(ValidationError, match="duration"):
        Interval(start="2024-01-01T00:00:00Z", duration=duration)


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        Interval(start=datetime(2024, 1, 1), duration="PT1H")
    with pytest.raises(ValidationError, match="timezone"):
        Interval(start="2024-01-01T00:00:00", duration="PT1H")


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Europe/Berln", "+05:30", "../etc/passwd", ""])
def test_unknown_time_zones_are_rejected(zone: str) -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        Interval(start="2024-01-01T00:00:00Z", duration="PT1H", time_zone=zone)
    with pytest.raises(ValidationError, match="unknown time zone"):
        Tender(
            market_id="m",
            party_id="p",
            side="buy",
            location_id="l",
            time_zone=zone,
            rows=[{"start": "2024-01-01T00:00:00Z", "quantity": "1", "price": "0.1"}],
        )


def test_split_and_parent_refuse_the_wrong_direction() -> None:
    hour = Interval(start="2024-01-01T00:00:00Z", duration="PT1H")
    with pytest.raises(IntervalError, match="not finer"):
        hour.split(Resolution.DAY)
    with pytest.raises(IntervalError, match="not finer"):
        hour.split(Resolution.HOUR)
    with pytest.raises(IntervalError, match="not coarser"):
        hour.parent(Resolution.FIVE_MINUTES)


# -- normalisation ----------------------------------------------------------------------------------------


@SLOW
@given(aligned_intervals(), st.integers(-14 * 4, 14 * 4))
def test_offsets_are_normalised_to_utc(interval: Interval, quarter_hours: int) -> None:
    offset = timezone(timedelta(minutes=15 * quarter_hours))
    same = Interval(start=interval.start.astimezone(offset), duration=interval.duration, time_zone=interval.time_zone)
    assert same.start == interval.start
    assert same.start.utcoffset() == timedelta(0)
    assert same.start.tzinfo is UTC or quarter_hours == 0
    assert same.model_dump_json() == interval.model_dump_json()
    assert same == interval


def test_offset_start_serialises_as_utc() -> None:
    interval = Interval(start="2024-06-01T02:00:00+02:00", duration="PT1H", time_zone="Europe/Berlin")
    assert interval.start == datetime(2024, 6, 1, tzinfo=UTC)
    assert interval.model_dump()["start"].utcoffset() == timedelta(0)
    assert '"start":"2024-06-01T00:00:00Z"' in interval.model_dump_json()


def test_check_strip_orders() -> None:
    # Starts arrive normalised to UTC (UtcDatetime does that); the strip checks alignment and order.
    starts = [datetime(2024, 6, 1, 0, tzinfo=UTC), datetime(2024, 6, 1, 1, tzinfo=UTC)]
    check_strip(starts, Resolution.HOUR, "Europe/Berlin")
    check_strip(starts, Resolution.HOUR, "UTC")
    with pytest.raises(IntervalError, match=r"row 1: .* does not come after the previous row"):
        check_strip([starts[1], starts[0]], Resolution.HOUR, "UTC")
    with pytest.raises(IntervalError, match=r"row 1: .* does not come after"):
        check_strip([starts[1], starts[1]], Resolution.HOUR, "UTC")
    with pytest.raises(IntervalError, match=r"row 0: start .* is not on a PT15M boundary in time zone UTC"):
        check_strip([datetime(2024, 1, 1, 0, 5, tzinfo=UTC)], Resolution.FIFTEEN_MINUTES, "UTC")


@settings(max_examples=60, deadline=None)
@given(aligned_intervals([Resolution.HOUR, Resolution.DAY, Resolution.MONTH]), st.integers(1, 40))
def test_intervals_between_is_contiguous(first: Interval, count: int) -> None:
    end = first.start
    for _ in range(count):
        end = interval_end(end, first.duration, first.time_zone)
    got = list(intervals_between(first.start + timedelta(seconds=1), end, first.duration, first.time_zone))
    assert len(got) == count
    assert got[0] == first
    assert all(a.end == b.start for a, b in itertools.pairwise(got))
