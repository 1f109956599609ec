"""The fields of the 2030.5 Time resource for a configured IANA zone: offsets and this year's daylight-saving dates.

Devices schedule by the server's clock (CORE: a device must sync to Time), and local-time displays and tariffs
need the zone: tzOffset is the standard offset, dstOffset what daylight saving adds, dstStartTime/dstEndTime the
UTC instants it begins and ends in the current year (both the start of the year, with dstOffset 0, in a zone
without daylight saving). zoneinfo knows the rules; finding the transitions is a search over the year.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

# Time.quality: 3 = the clock follows an authoritative external source (NTP); the gateway runs on a host whose
# clock is NTP-disciplined, which is what an operator of a utility server arranges.
QUALITY_NTP = 3


@dataclass(frozen=True, slots=True)
class TimeFields:
    current_time: int
    tz_offset: int
    dst_offset: int
    dst_start: int
    dst_end: int
    local_time: int
    quality: int = QUALITY_NTP


def time_fields(now: int, zone: str) -> TimeFields:
    tz = ZoneInfo(zone)
    moment = datetime.fromtimestamp(now, UTC)
    start, end, dst_offset, standard = _year_rules(zone, moment.year)
    in_dst = moment.astimezone(tz).utcoffset() != timedelta(seconds=standard)
    local = now + standard + (dst_offset if in_dst else 0)
    return TimeFields(now, standard, dst_offset, start, end, local)


@functools.lru_cache(maxsize=64)
def _year_rules(zone: str, year: int) -> tuple[int, int, int, int]:
    """(dst start, dst end, dst offset, standard offset) in seconds for ``year``, from zoneinfo's transitions."""
    tz = ZoneInfo(zone)

    def offset(moment: datetime) -> timedelta:
        return moment.astimezone(tz).utcoffset() or timedelta(0)

    begin = datetime(year, 1, 1, tzinfo=UTC)
    finish = datetime(year + 1, 1, 1, tzinfo=UTC)
    offsets: list[tuple[datetime, timedelta]] = []
    moment = begin
    previous = offset(moment)
    while moment < finish:  # hourly steps find every transition (they happen on the hour or half hour)
        step = moment + timedelta(hours=1)
        current = offset(step)
        if current != previous:
            low, high = moment, step
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if offset(middle) == previous:
                    low = middle
                else:
                    high = middle
            offsets.append((high, current - previous))
            previous = current
        moment = step
    january = offset(begin)
    july = offset(datetime(year, 7, 1, tzinfo=UTC))
    standard = min(january, july)
    forward = [when for when, delta in offsets if delta > timedelta(0)]
    back = [when for when, delta in offsets if delta < timedelta(0)]
    if not forward or not back:
        year_start = int(begin.timestamp())
        return year_start, year_start, 0, int(standard.total_seconds())
    return (
        int(forward[0].timestamp()),
        int(back[0].timestamp()),
        int((max(january, july) - standard).total_seconds()),
        int(standard.total_seconds()),
    )
