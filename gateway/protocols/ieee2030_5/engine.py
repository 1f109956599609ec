"""The IEEE 2030.5 DER event engine: pure logic, no I/O, no XML.

Given the DERControls of every program that applies to one device and a moment ``now``, :func:`evaluate` says
what each control's EventStatus is, which controls the device is executing, which control governs each control
mode (``opModMaxLimW``, ``opModConnect``, ...) and so for which modes the DefaultDERControl applies. The server
uses it to render DERControlList / ActiveDERControlList and when a control is created or cancelled; the client
conformance suite uses it, with :func:`responses_due`, as the oracle of what a compliant device must do.

It is a pure function of (controls, now, lfdi): the server re-evaluates per request and the suite can replay any
instant, so nothing here remembers earlier calls. Everything that "happened" (a supersession, a cancellation) is
derived from the controls' own times, and an event that lies after ``now`` has not happened yet.

Sources, and how the open points are read
-----------------------------------------
[S] IEEE 2030.5-2018 schema annotations of ``EventStatus`` (sep.xsd, reproduced in the standard's Annex B):
    currentStatus 0 Scheduled "SHALL never be indicated" once the start time has passed; 1 Active "when the
    event reaches its earliest Effective Start Time"; 2 Cancelled with dateTime "the time the cancellation
    occurred"; 3 Cancelled with Randomization: the client cancels "using the larger of |randomizeStart| and
    |randomizeDuration| as the end randomization"; 4 Superseded: "events that may have been replaced by new
    events from the same program that target the exact same set of ... DERControl controls ... and overlap for
    a given period of time. Servers SHALL mark an event as Superseded at the earliest Effective Start Time of
    the overlapping event"; potentiallySuperseded: "overlap this event in time and also overlap in some, but not
    all, ... DERControl controls"; potentiallySupersededTime: "the time that the potentiallySuperseded flag was
    set"; dateTime "MUST be set to the time at which the status change occurred".
[R] IEEE 2030.5-2018 §10.2.3 "Event rules and guidelines" (§10.2.2.3 in the 2023 edition): at equal primacy
    the creationTime decides (newer wins); a client adjusts an overlapped event to end at the Effective Start
    Time of the overlapping one; differing DERControl modes from differing programs that cannot run together
    execute the higher primacy (lower number).
[E] EPRI's open 2030.5 client (epri-dev/IEEE-2030.5-Client, schedule.c): precedence is primacy then newer
    creationTime, across all the device's programs; an active event is superseded when the superseding event
    *becomes active* and is not resumed afterwards; a scheduled event pushed out by a superseding one rejoins
    the schedule if that one goes away; an event first seen after its end is answered "received" then 254.

1. Precedence: (primacy, -creation_time, mrid) ascending, i.e. lower primacy wins, then the newer creation
   time [R]; a tie on both is broken by the smaller mRID (string order) so that the result never depends on the
   order of the input. ``ScheduledControl.precedence`` is that key.
2. Superseding (status 4). Control Y supersedes X when Y has precedence over X, their effective windows
   overlap (half-open [start, end), so back-to-back controls do not overlap), and Y sets EVERY mode X sets
   (Y's modes are a superset of X's; "the exact same set" of [S], widened to a superset because a control
   that also sets other modes replaces X just as fully). It takes effect at
   ``T = max(Y's effective start, Y.creation_time, X.creation_time)``: the earliest Effective Start Time of
   the overlapping event [S], but never before the server knew of both. The status dateTime is T and the
   reason names Y. Hence an active X keeps running until Y starts (the "end at the Effective Start Time of the
   overlapping event" of [R]) and a scheduled X that Y starts before is superseded before it ever runs.
   Nothing happens if by T X has already ended, Y has ended, or either has been cancelled or superseded.
   Several partial overlaps whose union covers X do not supersede it (each leaves X the rest of its window);
   X is then only potentially superseded, and ``governing`` still gives each mode to its rightful owner.
3. Partial overlap: when a live (not cancelled or superseded as of now) Y with precedence over X overlaps it in
   time and in some but not all of X's modes, X stays scheduled/active with ``potentially_superseded`` True [S]
   and ``potentially_superseded_time`` = when the overlap became known, max(Y.creation_time,
   X.creation_time) (the earliest over such Y). The modes Y takes are decided in ``governing``. Once X is
   cancelled or superseded its EventStatus is final: the flag stays as it was at that moment.
4. One-way: a supersession that has taken effect is permanent. The device terminated X and answered 7 [S][E];
   2030.5 has no status that revives a superseded event and events are never edited except for status. So a
   later cancellation of Y does not restore X. Before T nothing has happened, so cancelling Y before T (or
   before it starts) leaves X alone: a cancelled control never supersedes anything from its cancellation on,
   which is the "rejoins the schedule" of [E]. The first terminal fact wins: a superseded control that is then
   cancelled stays 4; a tie between cancellation and supersession goes to the cancellation (an explicit act).
   That tie is how the server publishes an edit (``index.advance``): the old event is cancelled at T, the moment
   the edit was stored, and the new event is created at T, so the old one always ends cancelled (2, answered 6),
   never superseded (4) by its own replacement, and, cancelled from T on, never supersedes the replacement either
   (an edit may move a control to a higher-primacy program).
5. Scope: by default superseding crosses programs, because the engine evaluates one device and precedence
   crosses programs [R][E]. ``evaluate(..., cross_program=False)`` restricts status 4 and the potentially
   superseded flag to controls of the same program, the literal reading of [S] for the status a server
   publishes in one program's DERControlList; ``governing`` still arbitrates across programs by precedence.
6. Statuses. Before its effective start: 0 (dateTime = creation_time). From its effective start (or its
   creation, if created later): 1 (dateTime = that moment). Cancelled: 2, or 3 when ``cancel_randomized``
   (dateTime = cancelled_at). Superseded: 4. After its effective end a control is *expired*: it is listed in
   ``Evaluation.expired`` and the view keeps its last status, 1 (or 0/2/3/4); EventStatus has no "completed"
   value, an ended event simply stops being active and the server keeps it listed for its scheduled period [S].
7. Active and governing: ``active`` holds the controls the device executes now: status 1 and inside their
   effective window, in precedence order. ``governing[mode]`` is the first of them (highest precedence) that
   sets the mode, so independent modes coexist and a lower-precedence control keeps the modes nobody above it
   sets; when a higher-precedence partial overlap ends, the lower one takes the mode back [R].
8. Randomisation: with ``lfdi`` the effective window is :func:`randomized_window` (the device's deterministic
   draw in [0, randomize] or [randomize, 0]); without, the nominal window. [S] has a server switch a shared
   event to Active at the *earliest* Effective Start Time over all devices; this engine evaluates one device,
   so without an lfdi it uses the nominal start as asked (differs only for a negative randomizeStart). A
   randomized duration never shrinks a window below one second. For status 3 the device keeps the control
   for its end randomization; that delay is :func:`cancel_delay`, the engine itself ends the control at
   ``cancelled_at`` for every device (the moment the status changed).
9. DefaultDERControl: :meth:`Evaluation.default_modes` returns the default's modes that no active control
   governs (per mode, as CSIP practice); ``per_mode=False`` gives the literal "if no active DERControl is found"
   reading (all or nothing).
10. Responses (:func:`responses_due`): 1 received at creation; 2 started when the control becomes active for
    the device; 3 completed at its effective end if it ran to the end; 6 cancelled / 7 superseded when that
    ends it before its end (including before it started); a control created after its own effective end is
    answered 1 then 254 (received after expiry) [E]. 13/14 (aborted by another server's/program's event) are
    not used: a supersession is always reported as 7.

Controls created after ``now`` are not known yet: they are left out of the evaluation and listed in
``Evaluation.pending``. ``Evaluation.next_change`` is the next moment at which the evaluation can change
(a start, an end, a cancellation or a creation), so a caller may cache it until then.

Cost: O(n log n + p) for n controls and p pairs of controls that overlap in time (two sorts, one sweep);
p is O(n) when, as 2030.5 asks ("Servers SHOULD make minimum use of Overlapping Events"), overlaps are rare,
and O(n^2) only when every control overlaps every other. See the benchmark in tests/test_ieee2030_5_engine.py.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache
from operator import attrgetter

__all__ = [
    "NON_MODE_ELEMENTS",
    "RANDOMIZE_LIMIT",
    "Evaluation",
    "EventStatusCode",
    "EventStatusView",
    "ResponseStatus",
    "ScheduledControl",
    "cancel_delay",
    "evaluate",
    "randomized_window",
    "responses_due",
]


class EventStatusCode(IntEnum):
    """EventStatus.currentStatus values (2030.5-2018). There is no "completed": an ended event is just over."""

    SCHEDULED = 0
    ACTIVE = 1
    CANCELLED = 2
    CANCELLED_WITH_RANDOMIZATION = 3
    SUPERSEDED = 4


class ResponseStatus(IntEnum):
    """The Response.status codes this engine says a device owes (a subset of 2030.5's list)."""

    RECEIVED = 1
    STARTED = 2
    COMPLETED = 3
    CANCELLED = 6
    SUPERSEDED = 7
    REJECTED_EXPIRED = 254  # "rejected: the event was received after it had expired"


RANDOMIZE_LIMIT = 3600
"""randomizeStart / randomizeDuration are limited to -3600..3600 seconds by 2030.5."""

NON_MODE_ELEMENTS = frozenset({"rampTms"})
"""DERControlBase elements that are parameters, not control modes: dropped from ``modes`` so that a control that
only carries a ramp time never takes (or loses) a mode because of it."""

_NEVER = 1 << 62  # "has not happened by now"; an int so that every comparison stays int-to-int
_MRID = re.compile(r"[0-9A-Fa-f]{1,32}")
_PERSON = b"tgw-2030.5-rand"  # blake2b personalisation: these draws never collide with another use of the hash

_SCHEDULED = EventStatusCode.SCHEDULED
_ACTIVE = EventStatusCode.ACTIVE
_CANCELLED = EventStatusCode.CANCELLED
_CANCELLED_RANDOM = EventStatusCode.CANCELLED_WITH_RANDOMIZATION
_SUPERSEDED = EventStatusCode.SUPERSEDED


def _check_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")


@dataclass(frozen=True, slots=True)
class ScheduledControl:
    """One DERControl as the engine sees it: its identity, its program's primacy, its window and its modes.

    Frozen so that an evaluation can never be changed behind the engine's back, and hashable so callers may key
    caches by it. ``end`` and ``precedence`` are derived once here, not on every evaluation (the server evaluates
    per request).
    """

    mrid: str
    """The control's mRID: up to 32 hex digits (128 bits)."""
    program_mrid: str
    """The DERProgram it belongs to (used by ``cross_program=False`` and reported nowhere else)."""
    primacy: int
    """The program's primacy, 0..255; lower wins."""
    creation_time: int
    """creationTime, epoch seconds; decides precedence at equal primacy (newer wins)."""
    start: int
    """interval.start, epoch seconds."""
    duration: int
    """interval.duration, seconds, > 0."""
    modes: frozenset[str]
    """The DERControlBase elements the control sets, e.g. {"opModMaxLimW", "opModConnect"} (any iterable of
    names is accepted and frozen; ``rampTms`` is dropped, see NON_MODE_ELEMENTS)."""
    cancelled_at: int | None = None
    """When the server cancelled it (epoch seconds), or None. A time after ``now`` has not happened yet."""
    cancel_randomized: bool = False
    """Cancelled with randomization (status 3) rather than plainly (status 2)."""
    randomize_start: int = 0
    """randomizeStart, -3600..3600 s: each device starts within [0, r] (or [r, 0]) of ``start``."""
    randomize_duration: int = 0
    """randomizeDuration, -3600..3600 s: each device's duration varies within [0, r] (or [r, 0])."""
    end: int = field(init=False, repr=False, compare=False)
    """start + duration: the nominal end (exclusive)."""
    precedence: tuple[int, int, str] = field(init=False, repr=False, compare=False)
    """(primacy, -creation_time, mrid): the smaller key wins."""

    def __post_init__(self) -> None:
        if not isinstance(self.mrid, str) or _MRID.fullmatch(self.mrid) is None:
            raise ValueError(f"mrid must be 1 to 32 hex digits, got {self.mrid!r}")
        for name in ("primacy", "creation_time", "start", "duration", "randomize_start", "randomize_duration"):
            _check_int(name, getattr(self, name))
        if not 0 <= self.primacy <= 255:
            raise ValueError(f"primacy must be 0..255, got {self.primacy}")
        if self.duration <= 0:
            raise ValueError(f"duration must be > 0 seconds, got {self.duration}")
        for name in ("randomize_start", "randomize_duration"):
            value = getattr(self, name)
            if not -RANDOMIZE_LIMIT <= value <= RANDOMIZE_LIMIT:
                raise ValueError(f"{name} must be within -{RANDOMIZE_LIMIT}..{RANDOMIZE_LIMIT}, got {value}")
        if self.cancelled_at is not None:
            _check_int("cancelled_at", self.cancelled_at)
            if self.cancelled_at < self.creation_time:
                raise ValueError(f"cancelled_at {self.cancelled_at} is before creation_time {self.creation_time}")
        elif self.cancel_randomized:
            raise ValueError("cancel_randomized needs cancelled_at")
        if isinstance(self.modes, str):
            raise TypeError("modes must be a collection of element names, not one string")
        modes = frozenset(self.modes)
        if not all(isinstance(mode, str) for mode in modes):
            raise TypeError(f"modes must be element names, got {sorted(map(repr, modes))}")
        object.__setattr__(self, "modes", modes - NON_MODE_ELEMENTS)
        object.__setattr__(self, "end", self.start + self.duration)
        object.__setattr__(self, "precedence", (self.primacy, -self.creation_time, self.mrid))


@dataclass(frozen=True, slots=True)
class EventStatusView:
    """What the EventStatus of one control says at the evaluated moment (the server renders it as is)."""

    current_status: int
    """An EventStatusCode: 0 scheduled, 1 active, 2 cancelled, 3 cancelled with randomization, 4 superseded."""
    date_time: int
    """When that status took effect (epoch seconds); never after the evaluated moment."""
    potentially_superseded: bool = False
    """A live control with precedence overlaps this one in time and in some, not all, of its modes."""
    potentially_superseded_time: int | None = None
    """When that partial overlap became known (None when not potentially superseded)."""
    reason: str | None = None
    """A human-readable explanation, e.g. "superseded by <mrid>"."""
    superseded_by: str | None = None
    """The mRID of the control that superseded this one (status 4), for callers that need it as data."""


# (creation_time, effective start, effective end, terminal time or _NEVER, terminal response code or 0)
_Timeline = tuple[int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The engine's verdict for one device at one moment. Frozen: it may be cached and shared between threads."""

    now: int
    """The evaluated moment (epoch seconds)."""
    status: dict[str, EventStatusView]
    """mRID -> EventStatus view, for every control known at ``now``."""
    active: list[str]
    """The controls the device executes now (status 1, inside their effective window), highest precedence
    first. A superseded, cancelled, scheduled or expired control is never here."""
    governing: dict[str, str]
    """Control mode -> the mRID of the active control that governs it now (the highest precedence one that
    sets it). A mode absent here is governed by no control: see :meth:`default_modes`."""
    expired: frozenset[str]
    """Controls whose effective window has ended, whatever their status; the server keeps listing them (2030.5
    asks it to keep events for their scheduled period) but they are never active again."""
    pending: frozenset[str] = frozenset()
    """Controls whose creation_time is after ``now``: not known yet, so not evaluated."""
    next_change: int | None = None
    """The earliest moment after ``now`` at which this evaluation can change for the same controls (a start,
    an end, a cancellation or a creation); None if nothing is left to happen."""
    lfdi: str | None = None
    """The device whose randomisation was applied, or None for nominal windows."""
    timelines: dict[str, _Timeline] = field(default_factory=dict, repr=False, compare=False)
    """Internal: per control, the times :meth:`responses` derives the owed responses from."""

    def default_modes(self, default_control_modes: Iterable[str], *, per_mode: bool = True) -> frozenset[str]:
        """The DefaultDERControl modes that apply now.

        ``per_mode`` (the default): each mode the DefaultDERControl sets applies unless an active control governs
        that mode. ``per_mode=False``: the literal 2030.5 reading, the whole DefaultDERControl applies only when
        no DERControl at all is active.
        """
        modes = frozenset(default_control_modes) - NON_MODE_ELEMENTS
        if per_mode:
            return frozenset(mode for mode in modes if mode not in self.governing)
        return frozenset() if self.active else modes

    def responses(self, mrid: str) -> list[tuple[ResponseStatus, int]]:
        """The responses a compliant device owes for one control by ``now``, as (status, due since) in order;
        empty for a control this evaluation does not know."""
        timeline = self.timelines.get(mrid)
        return [] if timeline is None else _responses(timeline, self.now)


@lru_cache(maxsize=1 << 16)
def _draws(lfdi: str, mrid: str, randomize_start: int, randomize_duration: int) -> tuple[int, int, int]:
    """The device's (start offset, duration offset, cancel delay) for one control; cached since every poll of
    every device asks again."""
    key = f"{lfdi.strip().lower()}:{mrid.lower()}".encode()
    digest = hashlib.blake2b(key, digest_size=24, person=_PERSON).digest()
    return (
        _pick(int.from_bytes(digest[0:8], "big"), randomize_start),
        _pick(int.from_bytes(digest[8:16], "big"), randomize_duration),
        _pick(int.from_bytes(digest[16:24], "big"), max(abs(randomize_start), abs(randomize_duration))),
    )


def _pick(draw: int, bound: int) -> int:
    """A value in [0, bound] (or [bound, 0] for a negative bound) from a 64-bit draw; the modulo bias is below
    2**-51 for |bound| <= 3600."""
    if bound == 0:
        return 0
    value = draw % (abs(bound) + 1)
    return value if bound > 0 else -value


def randomized_window(control: ScheduledControl, lfdi: str) -> tuple[int, int]:
    """The device's effective window [start, end) of ``control``: the nominal one shifted by the device's draw in
    [0, randomizeStart] and lengthened by its draw in [0, randomizeDuration] (signs as given), never shorter than
    one second.

    Deterministic on purpose: the draw is a blake2b hash of (lfdi, mRID), case-insensitive, so every poll, every
    notification, every server process and every restart give the device the same effective window, and the
    conformance suite can predict it. A fresh random draw per request would make a device's control start and
    stop at different moments depending on which response it happened to read. Different devices still spread
    over the whole randomisation range, which is the point of randomising.
    """
    start_offset, duration_offset, _ = _draws(lfdi, control.mrid, control.randomize_start, control.randomize_duration)
    start = control.start + start_offset
    return start, start + max(1, control.duration + duration_offset)


def cancel_delay(control: ScheduledControl, lfdi: str) -> int:
    """The device's deterministic end randomization for a control cancelled with randomization (status 3): it may
    keep executing the control up to this many seconds after ``cancelled_at``; a draw in [0, max(|randomizeStart|,
    |randomizeDuration|)] from the same (lfdi, mRID) hash as :func:`randomized_window`."""
    return _draws(lfdi, control.mrid, control.randomize_start, control.randomize_duration)[2]


_BY_PRECEDENCE = attrgetter("precedence")

# Views are immutable, so the plain ones (no flag, no reason: nearly all of them) are shared between evaluations:
# the server evaluates the same controls on every poll and gets the same (status, since) pairs back. Bounded by
# dropping the lot when full; building a frozen view costs more than the rest of the evaluation of a control.
_PLAIN_VIEWS: dict[tuple[int, int], EventStatusView] = {}
_PLAIN_VIEWS_LIMIT = 1 << 16


def _plain_view(status: EventStatusCode, since: int) -> EventStatusView:
    view = _PLAIN_VIEWS.get((status, since))
    if view is None:
        if len(_PLAIN_VIEWS) >= _PLAIN_VIEWS_LIMIT:
            _PLAIN_VIEWS.clear()
        view = _PLAIN_VIEWS[status, since] = EventStatusView(status, since)
    return view


def evaluate(
    controls: Sequence[ScheduledControl],
    now: int,
    *,
    lfdi: str | None = None,
    cross_program: bool = True,
) -> Evaluation:
    """Evaluate the controls of one device's programs at ``now`` (see the module docstring for every rule).

    ``lfdi`` applies that device's randomisation; without it the nominal windows are used. ``cross_program=False``
    limits superseding to controls of the same program (the status a server publishes per program).
    Raises ValueError when two controls share an mRID.
    """
    _check_int("now", now)
    known: list[ScheduledControl] = []
    pending: list[str] = []
    seen: set[str] = set()
    for control in controls:
        mrid = control.mrid
        if mrid in seen:
            raise ValueError(f"two controls have the mRID {mrid}")
        seen.add(mrid)
        if control.creation_time <= now:
            known.append(control)
        else:
            pending.append(mrid)
    known.sort(key=_BY_PRECEDENCE)  # rank r = position in precedence order; smaller rank wins
    count = len(known)

    if lfdi is None:
        starts = [control.start for control in known]
        ends = [control.end for control in known]
    else:
        starts = []
        ends = []
        for control in known:
            start_offset, duration_offset, _ = _draws(
                lfdi, control.mrid, control.randomize_start, control.randomize_duration
            )
            start = control.start + start_offset
            starts.append(start)
            ends.append(start + max(1, control.duration + duration_offset))
    modes = [control.modes for control in known]

    # Sweep in order of effective start: every control still open when another starts overlaps it in time.
    # Keep the pairs that also share a mode, under the lower-precedence (larger) rank.
    rivals: dict[int, list[int]] = {}
    open_ranks: list[int] = []
    for rank in sorted(range(count), key=starts.__getitem__):
        if open_ranks:
            start = starts[rank]
            open_ranks = [other for other in open_ranks if ends[other] > start]
            for other in open_ranks:
                if modes[rank].isdisjoint(modes[other]):
                    continue
                if not cross_program and known[rank].program_mrid != known[other].program_mrid:
                    continue
                if other < rank:
                    rivals.setdefault(rank, []).append(other)
                else:
                    rivals.setdefault(other, []).append(rank)
        open_ranks.append(rank)

    # In precedence order, so that whoever could supersede a control has its own fate settled already.
    # death[r]: when r stopped counting (cancelled or superseded), if that happened by now; else _NEVER.
    death = [_NEVER] * count
    superseded_by: dict[int, int] = {}
    flagged_at: dict[int, int] = {}
    for rank in range(count):
        control = known[rank]
        cancelled_at = control.cancelled_at
        dead = cancelled_at if cancelled_at is not None and cancelled_at <= now else _NEVER
        others = rivals.get(rank)
        if others:
            own_modes = modes[rank]
            created = control.creation_time
            own_end = ends[rank]
            best = _NEVER
            best_by = -1
            partial: list[int] = []
            for other in others:
                if modes[other] >= own_modes:
                    # Takes effect at the rival's effective start, but never before both were known.
                    rival = known[other]
                    at = max(starts[other], rival.creation_time, created)
                    if (
                        at <= now
                        and at < death[other]
                        and at < ends[other]
                        and at < own_end
                        and (at < best or (at == best and other < best_by))
                    ):
                        best = at
                        best_by = other
                else:
                    partial.append(other)
            if best < dead:  # a tie goes to the cancellation
                dead = best
                superseded_by[rank] = best_by
            if partial:
                # The flag as of now, or as of the control's end if it was cancelled or superseded: a dead
                # control's EventStatus is final, flag included.
                moment = now if dead == _NEVER else dead
                flag = _NEVER
                for other in partial:
                    if death[other] > moment:
                        at = max(known[other].creation_time, created)
                        if at <= moment and at < flag:
                            flag = at
                if flag != _NEVER:
                    flagged_at[rank] = flag
        death[rank] = dead

    status: dict[str, EventStatusView] = {}
    active: list[str] = []
    governing: dict[str, str] = {}
    expired: list[str] = []
    timelines: dict[str, _Timeline] = {}
    next_change = _NEVER
    for rank in range(count):
        control = known[rank]
        mrid = control.mrid
        start = starts[rank]
        end = ends[rank]
        dead = death[rank]
        flag = flagged_at.get(rank)
        flagged = flag is not None
        code = 0
        if dead != _NEVER:
            winner = superseded_by.get(rank)
            if winner is not None:
                code = 7
                by = known[winner].mrid
                view = EventStatusView(_SUPERSEDED, dead, flagged, flag, f"superseded by {by}", by)
            else:
                code = 6
                cancelled = _CANCELLED_RANDOM if control.cancel_randomized else _CANCELLED
                view = EventStatusView(cancelled, dead, True, flag) if flagged else _plain_view(cancelled, dead)
        elif now >= start:
            created = control.creation_time
            since = start if start > created else created
            view = EventStatusView(_ACTIVE, since, True, flag) if flagged else _plain_view(_ACTIVE, since)
            if now < end:
                active.append(mrid)
                for mode in modes[rank]:
                    if mode not in governing:
                        governing[mode] = mrid
        else:
            created = control.creation_time
            view = EventStatusView(_SCHEDULED, created, True, flag) if flagged else _plain_view(_SCHEDULED, created)
        status[mrid] = view
        if now >= end:
            expired.append(mrid)
        timelines[mrid] = (control.creation_time, start, end, dead, code)
        if start > now and start < next_change:
            next_change = start
        if end > now and end < next_change:
            next_change = end
        cancelled_at = control.cancelled_at
        if cancelled_at is not None and cancelled_at > now and cancelled_at < next_change:
            next_change = cancelled_at
    if pending:
        for control in controls:
            if control.creation_time > now and control.creation_time < next_change:
                next_change = control.creation_time

    return Evaluation(
        now=now,
        status=status,
        active=active,
        governing=governing,
        expired=frozenset(expired),
        pending=frozenset(pending),
        next_change=None if next_change == _NEVER else next_change,
        lfdi=lfdi,
        timelines=timelines,
    )


_RECEIVED = ResponseStatus.RECEIVED
_STARTED = ResponseStatus.STARTED
_COMPLETED = ResponseStatus.COMPLETED
_EXPIRED = ResponseStatus.REJECTED_EXPIRED
_ENDING = {6: ResponseStatus.CANCELLED, 7: ResponseStatus.SUPERSEDED}


def _responses(timeline: _Timeline, now: int) -> list[tuple[ResponseStatus, int]]:
    """The cumulative responses owed by ``now`` for one control's timeline, as (status, due since)."""
    created, start, end, dead, code = timeline
    owed = [(_RECEIVED, created)]
    if end <= created:  # it was over before the device could have heard of it
        owed.append((_EXPIRED, created))
        return owed
    began = start if start > created else created
    if began < min(end, dead) and began <= now:
        owed.append((_STARTED, began))
        if dead >= end and end <= now:
            owed.append((_COMPLETED, end))
    if code and dead < end:
        owed.append((_ENDING[code], dead))
    return owed


def responses_due(previous: Evaluation | None, current: Evaluation) -> list[tuple[str, int]]:
    """The Response.status codes a compliant device must have sent between ``previous`` and ``current`` (all of
    them owed by ``current`` when ``previous`` is None), as (mRID, status) in the order they fell due (then by
    mRID). Cumulative, so it is independent of how often the caller samples: the responses owed at ``current``
    minus those already owed at ``previous``.

    Raises ValueError when ``previous`` is later than ``current`` or was evaluated for another device.
    """
    if previous is not None:
        if previous.now > current.now:
            raise ValueError(f"previous evaluation ({previous.now}) is later than the current one ({current.now})")
        if previous.lfdi != current.lfdi:
            raise ValueError("the two evaluations are for different devices (lfdi differs)")
    due: list[tuple[int, str, int, ResponseStatus]] = []
    for mrid, timeline in current.timelines.items():
        before = {status for status, _ in previous.responses(mrid)} if previous is not None else set()
        for order, (status, since) in enumerate(_responses(timeline, current.now)):
            if status not in before:
                due.append((since, mrid, order, status))
    due.sort()
    return [(mrid, status) for _, mrid, _, status in due]
