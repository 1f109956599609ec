"""The IEEE 2030.5 event engine: CSIP-style precedence scenarios, randomisation, responses, and properties checked
against a slow reference and against the engine itself replayed second by second.

Micro-benchmark (not a timed test; numbers vary by machine): ``.venv/bin/python tests/test_ieee2030_5_engine.py``
evaluates 100 controls (a day of 5-minute envelopes plus overlapping controls of a higher-primacy program) with
and without a device's randomisation, and the worst case where all 100 overlap in time and mode.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.protocols.ieee2030_5.engine import (
    EventStatusCode,
    ResponseStatus,
    ScheduledControl,
    cancel_delay,
    evaluate,
    randomized_window,
    responses_due,
)

T0 = 1_700_000_000
LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
MAX_W = "opModMaxLimW"
CONNECT = "opModConnect"
EXPORT = "opModExpLimW"
FIXED_W = "opModFixedW"


def ctl(
    number: int,
    *,
    start: int = 100,
    duration: int = 100,
    modes: frozenset[str] | set[str] = frozenset({MAX_W}),
    primacy: int = 1,
    created: int = 0,
    program: str = "",
    **more: object,
) -> ScheduledControl:
    """A control with mRID ``number`` (as 32 hex digits), times relative to T0."""
    cancelled = more.pop("cancelled_at", None)
    return ScheduledControl(
        mrid=f"{number:032X}",
        program_mrid=program or f"PROGRAM{primacy}",
        primacy=primacy,
        creation_time=T0 + created,
        start=T0 + start,
        duration=duration,
        modes=frozenset(modes),
        cancelled_at=None if cancelled is None else T0 + cancelled,
        **more,
    )


def at(controls: list[ScheduledControl], offset: int, **kw: object):
    return evaluate(controls, T0 + offset, **kw)


# -- one control through its life ----------------------------------------------------------------------------------


def test_single_control_scheduled_active_expired():
    c = ctl(1, start=100, duration=60, created=0)
    before = at([c], 10)
    assert before.status[c.mrid].current_status == EventStatusCode.SCHEDULED
    assert before.status[c.mrid].date_time == T0  # scheduled since it was created
    assert before.active == [] and before.governing == {} and before.expired == set()
    assert before.next_change == T0 + 100

    during = at([c], 100)
    assert during.status[c.mrid].current_status == EventStatusCode.ACTIVE
    assert during.status[c.mrid].date_time == T0 + 100
    assert during.active == [c.mrid] and during.governing == {MAX_W: c.mrid}
    assert during.next_change == T0 + 160

    after = at([c], 160)  # the window is half-open: at start + duration it is over
    assert after.status[c.mrid].current_status == EventStatusCode.ACTIVE  # no "completed" in EventStatus
    assert after.expired == {c.mrid} and after.active == [] and after.governing == {}
    assert after.next_change is None


def test_a_control_created_after_its_start_is_active_at_once_never_scheduled():
    c = ctl(1, start=100, duration=600, created=250)
    view = at([c], 250).status[c.mrid]
    assert view.current_status == EventStatusCode.ACTIVE and view.date_time == T0 + 250


def test_a_control_not_created_yet_is_pending():
    c = ctl(1, created=50)
    early = at([c], 10)
    assert early.status == {} and early.pending == {c.mrid} and early.next_change == T0 + 50
    assert at([c], 50).status[c.mrid].current_status == EventStatusCode.SCHEDULED


# -- precedence ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("low_created, high_created", [(0, 10), (10, 0)], ids=["high-newer", "high-older"])
def test_lower_primacy_wins_whatever_the_creation_order(low_created, high_created):
    loser = ctl(1, primacy=2, start=100, duration=100, created=low_created)
    winner = ctl(2, primacy=1, start=150, duration=100, created=high_created)
    controls = [loser, winner]

    running = at(controls, 120)  # only the loser has started: it runs
    assert running.governing == {MAX_W: loser.mrid}
    assert running.status[loser.mrid].current_status == EventStatusCode.ACTIVE

    taken = at(controls, 150)  # superseded when the winner starts (its earliest Effective Start Time)
    view = taken.status[loser.mrid]
    assert view.current_status == EventStatusCode.SUPERSEDED and view.date_time == T0 + 150
    assert view.superseded_by == winner.mrid and view.reason == f"superseded by {winner.mrid}"
    assert taken.active == [winner.mrid] and taken.governing == {MAX_W: winner.mrid}

    # the loser's window runs to 200, the winner's to 250; after both the loser is still superseded, not resumed
    assert at(controls, 190).governing == {MAX_W: winner.mrid}
    later = at(controls, 260)
    assert later.status[loser.mrid].current_status == EventStatusCode.SUPERSEDED
    assert later.governing == {}


def test_a_scheduled_control_overlapped_by_an_earlier_winner_never_runs():
    loser = ctl(1, primacy=2, start=150, duration=100)
    winner = ctl(2, primacy=1, start=100, duration=100)
    ev = at([loser, winner], 100)
    assert ev.status[loser.mrid].current_status == EventStatusCode.SUPERSEDED
    assert ev.status[loser.mrid].date_time == T0 + 100
    # after the winner ends (200) the loser's window still has 50 s, but a superseded control stays dead
    assert at([loser, winner], 210).active == []


def test_at_equal_primacy_the_newer_control_wins():
    older = ctl(1, created=0)
    newer = ctl(2, created=10)
    ev = at([newer, older], 100)
    assert ev.status[older.mrid].current_status == EventStatusCode.SUPERSEDED
    assert ev.status[newer.mrid].current_status == EventStatusCode.ACTIVE
    assert ev.governing == {MAX_W: newer.mrid}


def test_equal_primacy_and_creation_time_falls_to_the_smaller_mrid():
    a = ctl(0xA, created=5)
    b = ctl(0xB, created=5)
    ev = at([b, a], 100)
    assert ev.governing == {MAX_W: a.mrid}
    assert ev.status[b.mrid].superseded_by == a.mrid


def test_supersession_waits_for_both_controls_to_be_known():
    running = ctl(1, primacy=2, start=100, duration=300, created=0)
    late = ctl(2, primacy=1, start=50, duration=300, created=200)  # starts "in the past" when created at 200
    assert at([running, late], 199).governing == {MAX_W: running.mrid}  # the late one is not known yet
    view = at([running, late], 200).status[running.mrid]
    assert view.current_status == EventStatusCode.SUPERSEDED and view.date_time == T0 + 200


def test_when_two_controls_take_over_at_once_the_best_is_named():
    loser = ctl(1, primacy=3, start=100, duration=200)
    second = ctl(2, primacy=2, start=150, duration=50, modes={MAX_W, EXPORT})  # neither supersedes the other
    first = ctl(3, primacy=1, start=150, duration=50, modes={MAX_W, CONNECT})
    for order in ([loser, second, first], [first, loser, second], [second, first, loser]):
        assert at(order, 160).status[loser.mrid].superseded_by == first.mrid


def test_a_control_created_after_its_end_is_never_superseded():
    late = ctl(1, primacy=2, start=10, duration=5, created=20)  # over at 15, heard of at 20
    winner = ctl(2, primacy=1, start=0, duration=100)
    ev = at([late, winner], 30)
    assert ev.status[late.mrid].current_status == EventStatusCode.ACTIVE and late.mrid in ev.expired
    assert [due for due in responses_due(None, ev) if due[0] == late.mrid] == [(late.mrid, 1), (late.mrid, 254)]


def test_independent_modes_coexist():
    limit = ctl(1, primacy=2, modes={MAX_W})
    connect = ctl(2, primacy=1, modes={CONNECT})
    ev = at([limit, connect], 150)
    assert ev.governing == {MAX_W: limit.mrid, CONNECT: connect.mrid}
    assert ev.active == [connect.mrid, limit.mrid]  # precedence order
    assert not ev.status[limit.mrid].potentially_superseded


def test_partial_mode_overlap_marks_potentially_superseded_and_splits_the_modes():
    broad = ctl(1, primacy=2, modes={MAX_W, CONNECT}, start=100, duration=200, created=0)
    narrow = ctl(2, primacy=1, modes={MAX_W}, start=150, duration=50, created=30)
    controls = [broad, narrow]

    ev = at(controls, 160)
    view = ev.status[broad.mrid]
    assert view.current_status == EventStatusCode.ACTIVE
    assert view.potentially_superseded and view.potentially_superseded_time == T0 + 30
    assert ev.governing == {MAX_W: narrow.mrid, CONNECT: broad.mrid}
    assert not ev.status[narrow.mrid].potentially_superseded  # the winner loses nothing

    # flagged from the moment the overlap is known, even before either starts
    assert at(controls, 30).status[broad.mrid].potentially_superseded
    assert not at(controls, 29).status[broad.mrid].potentially_superseded

    # when the narrow one ends the broad one takes its mode back
    assert at(controls, 200).governing == {MAX_W: broad.mrid, CONNECT: broad.mrid}


def test_a_superset_of_modes_supersedes():
    broad = ctl(1, primacy=2, modes={MAX_W, CONNECT})
    wider = ctl(2, primacy=1, modes={MAX_W, CONNECT, FIXED_W})
    ev = at([broad, wider], 100)
    assert ev.status[broad.mrid].current_status == EventStatusCode.SUPERSEDED


def test_several_partial_overlaps_covering_every_mode_do_not_supersede():
    broad = ctl(1, primacy=2, modes={MAX_W, CONNECT})
    one = ctl(2, primacy=1, modes={MAX_W})
    other = ctl(3, primacy=1, modes={CONNECT})
    ev = at([broad, one, other], 150)
    assert ev.status[broad.mrid].current_status == EventStatusCode.ACTIVE
    assert ev.status[broad.mrid].potentially_superseded
    assert ev.governing == {MAX_W: one.mrid, CONNECT: other.mrid}
    assert broad.mrid in ev.active and broad.mrid not in ev.governing.values()


def test_controls_that_do_not_overlap_in_time_do_not_supersede():
    first = ctl(1, primacy=2, start=100, duration=100)
    second = ctl(2, primacy=1, start=200, duration=100)  # back to back: [100, 200) then [200, 300)
    assert at([first, second], 150).governing == {MAX_W: first.mrid}
    ev = at([first, second], 200)
    assert ev.governing == {MAX_W: second.mrid}
    assert ev.status[first.mrid].current_status == EventStatusCode.ACTIVE and first.mrid in ev.expired
    broad = ctl(3, primacy=2, start=100, duration=100, modes={MAX_W, CONNECT})
    narrow = ctl(4, primacy=1, start=200, duration=100, modes={MAX_W})
    assert not at([broad, narrow], 150).status[broad.mrid].potentially_superseded  # touching is not overlapping


def test_across_programs_only_when_asked():
    low = ctl(1, primacy=2, start=100, duration=200)
    high = ctl(2, primacy=1, start=150, duration=50)
    ev = at([low, high], 160, cross_program=False)
    assert ev.status[low.mrid].current_status == EventStatusCode.ACTIVE  # other program: not marked superseded
    assert ev.governing == {MAX_W: high.mrid}  # but the device still obeys the higher primacy
    assert at([low, high], 200, cross_program=False).governing == {MAX_W: low.mrid}  # and then resumes
    same = replace(high, program_mrid=low.program_mrid)
    assert at([low, same], 160, cross_program=False).status[low.mrid].current_status == EventStatusCode.SUPERSEDED


# -- cancellation ----------------------------------------------------------------------------------------------------


def test_cancel_gives_status_2_at_the_cancellation_time():
    c = ctl(1, start=100, duration=100, cancelled_at=150)
    assert at([c], 149).governing == {MAX_W: c.mrid}  # a cancellation after now has not happened yet
    ev = at([c], 150)
    view = ev.status[c.mrid]
    assert view.current_status == EventStatusCode.CANCELLED and view.date_time == T0 + 150
    assert ev.active == [] and ev.governing == {}


def test_cancel_with_randomization_gives_status_3():
    c = ctl(1, cancelled_at=50, cancel_randomized=True, randomize_start=120)
    view = at([c], 60).status[c.mrid]
    assert view.current_status == EventStatusCode.CANCELLED_WITH_RANDOMIZATION and view.date_time == T0 + 50
    assert 0 <= cancel_delay(c, LFDI) <= 120


def test_a_control_cancelled_before_it_takes_effect_supersedes_nothing():
    loser = ctl(1, primacy=2, start=100, duration=200)
    winner = ctl(2, primacy=1, start=150, duration=50, cancelled_at=140)
    ev = at([loser, winner], 160)
    assert ev.status[loser.mrid].current_status == EventStatusCode.ACTIVE
    assert ev.governing == {MAX_W: loser.mrid}


def test_supersession_is_one_way():
    loser = ctl(1, primacy=2, start=100, duration=200)
    winner = ctl(2, primacy=1, start=150, duration=100, cancelled_at=170)  # cancelled after it took over
    ev = at([loser, winner], 180)
    assert ev.status[loser.mrid].current_status == EventStatusCode.SUPERSEDED
    assert ev.status[winner.mrid].current_status == EventStatusCode.CANCELLED
    assert ev.active == [] and ev.governing == {}


def test_a_control_cancelled_partway_stops_flagging():
    broad = ctl(1, primacy=2, modes={MAX_W, CONNECT})
    narrow = ctl(2, primacy=1, modes={MAX_W}, cancelled_at=120)
    assert at([broad, narrow], 110).status[broad.mrid].potentially_superseded
    assert not at([broad, narrow], 120).status[broad.mrid].potentially_superseded


def test_a_superseded_control_supersedes_nothing_after_its_end():
    bottom = ctl(1, primacy=3, start=150, duration=100)
    middle = ctl(2, primacy=2, start=100, duration=100)
    top = ctl(3, primacy=1, start=50, duration=60)  # kills the middle one before it can reach the bottom
    ev = at([bottom, middle, top], 160)
    assert ev.status[middle.mrid].current_status == EventStatusCode.SUPERSEDED
    assert ev.status[middle.mrid].date_time == T0 + 50  # when the top one started, before the middle one did
    assert ev.status[bottom.mrid].current_status == EventStatusCode.ACTIVE
    assert ev.governing == {MAX_W: bottom.mrid}


def test_first_terminal_fact_wins():
    loser = ctl(1, primacy=2, cancelled_at=160)
    winner = ctl(2, primacy=1, start=150)
    assert at([loser, winner], 170).status[loser.mrid].current_status == EventStatusCode.SUPERSEDED
    tie = ctl(1, primacy=2, cancelled_at=150)
    assert at([tie, winner], 170).status[tie.mrid].current_status == EventStatusCode.CANCELLED


# -- DefaultDERControl -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("old_primacy", "new_primacy"), [(1, 1), (0, 5), (5, 0)])
@pytest.mark.parametrize("lfdi", [None, LFDI])
def test_an_edit_cancels_the_old_event_and_the_new_one_is_never_superseded_by_it(old_primacy, new_primacy, lfdi):
    """How the server publishes an edit: the old event cancelled at T (when the edit was stored), the new one created
    at T. Whatever the primacies (an edit may move a control to another priority), the old event ends cancelled
    (2, never 4: the cancellation ties with the new event's takeover and wins) and the new one runs."""
    old = ctl(1, start=100, duration=300, created=0, primacy=old_primacy, cancelled_at=150, randomize_start=30)
    new = ctl(2, start=100, duration=300, created=150, primacy=new_primacy, randomize_start=30)
    before = at([old, new], 120, lfdi=lfdi)
    assert before.status[old.mrid].current_status in (EventStatusCode.SCHEDULED, EventStatusCode.ACTIVE)
    assert new.mrid in before.pending  # not published yet
    after = at([old, new], 200, lfdi=lfdi)
    assert after.status[old.mrid].current_status == EventStatusCode.CANCELLED
    assert after.status[old.mrid].date_time == T0 + 150
    assert after.status[new.mrid].current_status == EventStatusCode.ACTIVE
    assert after.active == [new.mrid] and after.governing == {MAX_W: new.mrid}
    due = responses_due(None, after)
    assert (old.mrid, ResponseStatus.CANCELLED) in due and (old.mrid, ResponseStatus.SUPERSEDED) not in due
    assert (new.mrid, ResponseStatus.STARTED) in due


def test_default_control_fills_the_modes_no_active_control_governs():
    defaults = {MAX_W, CONNECT, EXPORT, "rampTms"}
    c = ctl(1, modes={MAX_W})
    idle = at([c], 50)
    assert idle.default_modes(defaults) == {MAX_W, CONNECT, EXPORT}  # rampTms is not a mode
    busy = at([c], 150)
    assert busy.default_modes(defaults) == {CONNECT, EXPORT}
    assert busy.default_modes(defaults, per_mode=False) == frozenset()
    assert idle.default_modes(defaults, per_mode=False) == {MAX_W, CONNECT, EXPORT}
    assert at([c], 200).default_modes(defaults) == {MAX_W, CONNECT, EXPORT}


# -- randomisation -----------------------------------------------------------------------------------------------------


def test_randomized_window_is_deterministic_and_pinned():
    c = ctl(1, start=0, duration=600, randomize_start=300, randomize_duration=-120)
    window = randomized_window(c, LFDI)
    assert window == randomized_window(c, LFDI) == randomized_window(c, LFDI.lower())
    # pinned: every server process and the conformance suite must agree on it across releases
    assert window == (T0 + 284, T0 + 284 + 574)
    assert cancel_delay(c, LFDI) == 31


def test_randomized_windows_stay_in_bounds_and_spread_over_devices():
    rng = random.Random(7)
    positive = ctl(1, start=0, duration=600, randomize_start=300, randomize_duration=120)
    negative = ctl(2, start=0, duration=600, randomize_start=-300, randomize_duration=-120)
    starts = set()
    for _ in range(300):
        lfdi = f"{rng.getrandbits(160):040X}"
        start, end = randomized_window(positive, lfdi)
        assert T0 <= start <= T0 + 300 and 600 <= end - start <= 720
        starts.add(start)
        start, end = randomized_window(negative, lfdi)
        assert T0 - 300 <= start <= T0 and 480 <= end - start <= 600
        assert randomized_window(negative, lfdi) == (start, end)
    assert len(starts) > 150  # devices spread out, which is the point of randomising


def test_a_randomized_duration_never_goes_below_one_second():
    c = ctl(1, start=0, duration=10, randomize_duration=-3600)
    drawn = {randomized_window(c, f"{n:040X}")[1] - randomized_window(c, f"{n:040X}")[0] for n in range(200)}
    assert min(drawn) == 1 and max(drawn) <= 10


def test_evaluate_uses_the_device_window():
    c = ctl(1, start=100, duration=100, randomize_start=600)
    start, end = randomized_window(c, LFDI)
    assert start > T0 + 100  # this device starts late (pinned hash; would fail if the draw changed to 0)
    assert at([c], 100).governing == {MAX_W: c.mrid}  # nominal
    assert evaluate([c], start - 1, lfdi=LFDI).governing == {}
    assert evaluate([c], start, lfdi=LFDI).status[c.mrid].date_time == start
    assert evaluate([c], end, lfdi=LFDI).expired == {c.mrid}


# -- responses -------------------------------------------------------------------------------------------------------


def test_responses_through_a_life():
    c = ctl(1, start=100, duration=60)
    e0 = at([c], 0)
    e1 = at([c], 120)
    e2 = at([c], 200)
    assert responses_due(None, e0) == [(c.mrid, 1)]
    assert responses_due(e0, e1) == [(c.mrid, 2)]
    assert responses_due(e1, e2) == [(c.mrid, 3)]
    assert responses_due(e2, at([c], 300)) == []
    assert responses_due(e0, e2) == [(c.mrid, 2), (c.mrid, 3)]
    assert responses_due(None, e2) == [(c.mrid, ResponseStatus.RECEIVED), (c.mrid, 2), (c.mrid, 3)]


def test_responses_for_cancel_supersede_and_late_arrival():
    cancelled = ctl(1, start=100, duration=100, cancelled_at=150)
    assert responses_due(at([cancelled], 120), at([cancelled], 160)) == [(cancelled.mrid, 6)]
    before_start = ctl(1, start=100, duration=100, cancelled_at=50)
    assert responses_due(None, at([before_start], 300)) == [(before_start.mrid, 1), (before_start.mrid, 6)]

    loser = ctl(1, primacy=2, start=100, duration=200)
    winner = ctl(2, primacy=1, start=150, duration=20)
    due = responses_due(at([loser, winner], 120), at([loser, winner], 400))
    assert due == [(loser.mrid, 7), (winner.mrid, 2), (winner.mrid, 3)]  # both at 150: then by mRID

    late = ctl(3, start=0, duration=50, created=100)
    assert responses_due(None, at([late], 100)) == [(late.mrid, 1), (late.mrid, 254)]


def test_responses_due_refuses_inconsistent_evaluations():
    c = ctl(1)
    with pytest.raises(ValueError, match="later"):
        responses_due(at([c], 10), at([c], 5))
    with pytest.raises(ValueError, match="lfdi"):
        responses_due(at([c], 5), evaluate([c], T0 + 10, lfdi=LFDI))


# -- input checks ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, error",
    [
        ({"mrid": "XYZ"}, ValueError),
        ({"mrid": "0" * 33}, ValueError),
        ({"duration": 0}, ValueError),
        ({"primacy": 256}, ValueError),
        ({"randomize_start": 3601}, ValueError),
        ({"randomize_duration": -3601}, ValueError),
        ({"cancel_randomized": True}, ValueError),
        ({"cancelled_at": T0 - 1}, ValueError),
        ({"start": 1.5}, TypeError),
        ({"modes": "opModMaxLimW"}, TypeError),
    ],
)
def test_bad_controls_are_refused(change, error):
    fields = {
        "mrid": "0" * 32,
        "program_mrid": "P",
        "primacy": 1,
        "creation_time": T0,
        "start": T0,
        "duration": 60,
        "modes": frozenset({MAX_W}),
    } | change
    with pytest.raises(error):
        ScheduledControl(**fields)


def test_modes_are_frozen_and_ramp_time_is_not_a_mode():
    c = ctl(1, modes={MAX_W, "rampTms"})
    assert c.modes == frozenset({MAX_W})
    ramp_only = ctl(2, modes={"rampTms"}, primacy=0)
    assert at([c, ramp_only], 150).governing == {MAX_W: c.mrid}


def test_duplicate_mrids_are_refused():
    with pytest.raises(ValueError, match="mRID"):
        at([ctl(1), ctl(1, start=500)], 0)


# -- properties --------------------------------------------------------------------------------------------------------

MODES = (MAX_W, CONNECT, EXPORT)


@st.composite
def control_sets(draw: st.DrawFn, max_size: int = 7) -> list[ScheduledControl]:
    numbers = draw(st.lists(st.integers(0, 2**32), max_size=max_size, unique=True))
    controls = []
    for number in numbers:
        created = draw(st.integers(0, 40))
        cancelled = draw(st.none() | st.integers(created, 90))
        primacy = draw(st.integers(0, 2))
        controls.append(
            ctl(
                number,
                start=draw(st.integers(0, 60)),
                duration=draw(st.integers(1, 30)),
                modes=draw(st.frozensets(st.sampled_from(MODES), min_size=1)),
                primacy=primacy,
                created=created,
                program=draw(st.sampled_from("AB")) + str(primacy),
                cancelled_at=cancelled,
                cancel_randomized=cancelled is not None and draw(st.booleans()),
                randomize_start=draw(st.integers(-5, 5)),
                randomize_duration=draw(st.integers(-5, 5)),
            )
        )
    return controls


def window(control: ScheduledControl, lfdi: str | None) -> tuple[int, int]:
    return randomized_window(control, lfdi) if lfdi else (control.start, control.end)


def reference(controls, now, lfdi=None, cross_program=True):
    """The rules of the module docstring written out naively, O(n^2), with no sweep and no shortcuts. For each
    known control: (how it ended by now: None, ("superseded", at, by) or ("cancelled", at), its flag time)."""
    never = float("inf")
    known = sorted((c for c in controls if c.creation_time <= now), key=key)
    end_of: dict[str, float] = {}  # when a control stopped counting (cancelled or superseded), if by now
    result = {}
    for rank, x in enumerate(known):
        xs, xe = window(x, lfdi)
        takeovers, partial = [], []
        for other_rank, y in enumerate(known[:rank]):
            ys, ye = window(y, lfdi)
            if not (ys < xe and xs < ye) or y.modes.isdisjoint(x.modes):
                continue
            if not cross_program and y.program_mrid != x.program_mrid:
                continue
            if y.modes >= x.modes:
                t = max(ys, y.creation_time, x.creation_time)
                if t <= now and t < end_of[y.mrid] and t < ye and t < xe:
                    takeovers.append((t, other_rank, y.mrid))
            else:
                partial.append(y)
        cancel = x.cancelled_at if x.cancelled_at is not None and x.cancelled_at <= now else never
        fate = None
        if takeovers and min(takeovers)[0] < cancel:
            t, _, by = min(takeovers)
            fate = ("superseded", t, by)
        elif cancel != never:
            fate = ("cancelled", cancel)
        end_of[x.mrid] = fate[1] if fate else never
        moment = fate[1] if fate else now
        flags = [
            max(y.creation_time, x.creation_time)
            for y in partial
            if end_of[y.mrid] > moment and max(y.creation_time, x.creation_time) <= moment
        ]
        result[x.mrid] = (fate, min(flags, default=None))
    return result


def key(control: ScheduledControl) -> tuple[int, int, str]:
    return (control.primacy, -control.creation_time, control.mrid)


lfdis = st.none() | st.sampled_from([LFDI, "00" * 20])
fast = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(control_sets(), st.integers(-5, 100), lfdis, st.booleans())
def test_matches_the_naive_reference(controls, offset, lfdi, cross_program):
    now = T0 + offset
    ev = evaluate(controls, now, lfdi=lfdi, cross_program=cross_program)
    expected = reference(controls, now, lfdi, cross_program)
    for control in controls:
        if control.creation_time > now:
            assert control.mrid in ev.pending and control.mrid not in ev.status
            continue
        view = ev.status[control.mrid]
        fate, flag = expected[control.mrid]
        assert (view.potentially_superseded, view.potentially_superseded_time) == (flag is not None, flag)
        if fate is None:
            start, _ = window(control, lfdi)
            assert view.current_status == (EventStatusCode.ACTIVE if now >= start else EventStatusCode.SCHEDULED)
        elif fate[0] == "superseded":
            assert (view.current_status, view.date_time, view.superseded_by) == (4, fate[1], fate[2])
        else:
            assert (view.current_status, view.date_time) == (3 if control.cancel_randomized else 2, fate[1])


@fast
@given(control_sets(), st.integers(-5, 100), lfdis)
def test_governing_is_the_best_active_control_per_mode(controls, offset, lfdi):
    now = T0 + offset
    ev = evaluate(controls, now, lfdi=lfdi)
    by_mrid = {c.mrid: c for c in controls}
    running = [
        c
        for c in controls
        if c.mrid in ev.status
        and ev.status[c.mrid].current_status == EventStatusCode.ACTIVE
        and window(c, lfdi)[0] <= now < window(c, lfdi)[1]
    ]
    assert sorted(ev.active) == sorted(c.mrid for c in running)
    assert ev.active == sorted(ev.active, key=lambda m: key(by_mrid[m]))
    for mode in MODES:
        setters = [c for c in running if mode in c.modes]
        if setters:
            assert ev.governing[mode] == min(setters, key=key).mrid
        else:
            assert mode not in ev.governing
    for mode, mrid in ev.governing.items():
        assert mrid in ev.active and mode in by_mrid[mrid].modes
        assert ev.status[mrid].current_status == EventStatusCode.ACTIVE  # never superseded or cancelled


@fast
@given(control_sets(), st.integers(-5, 100), lfdis, st.randoms(use_true_random=False))
def test_independent_of_input_order(controls, offset, lfdi, rng):
    shuffled = list(controls)
    rng.shuffle(shuffled)
    assert evaluate(shuffled, T0 + offset, lfdi=lfdi) == evaluate(controls, T0 + offset, lfdi=lfdi)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(control_sets(max_size=5), lfdis)
def test_replayed_second_by_second(controls, lfdi):
    """Against the engine's own history: terminal statuses never change once reached, a supersession happens
    exactly when the superseding control is active, nothing changes before ``next_change``, and the responses
    owed match what was observed (started iff it was ever active, completed iff active in its last second)."""
    history = [evaluate(controls, T0 + t, lfdi=lfdi) for t in range(-5, 101)]
    ever_active: dict[str, int] = {}
    last_second_active: set[str] = set()
    for ev in history:
        for mrid in ev.active:
            ever_active.setdefault(mrid, ev.now)
    by_mrid = {c.mrid: c for c in controls}
    for ev in history:
        for mrid in ev.active:
            if ev.now == window(by_mrid[mrid], lfdi)[1] - 1:
                last_second_active.add(mrid)

    for earlier, later in itertools.pairwise(history):
        for mrid, view in earlier.status.items():
            if view.current_status in (2, 3, 4):
                assert later.status[mrid] == view
            if view.current_status == EventStatusCode.ACTIVE:
                assert later.status[mrid].current_status != EventStatusCode.SCHEDULED
        owed_before = {(m, s) for m in earlier.status for s, _ in earlier.responses(m)}
        owed_after = {(m, s) for m in later.status for s, _ in later.responses(m)}
        assert owed_before <= owed_after
        assert set(responses_due(earlier, later)) == owed_after - owed_before

    for ev in history:
        if ev.next_change is not None:
            assert ev.next_change > ev.now
        same_until = ev.next_change if ev.next_change is not None else T0 + 101
        for other in history:
            if ev.now < other.now < same_until:
                assert (other.status, other.active, other.governing, other.expired, other.pending) == (
                    ev.status,
                    ev.active,
                    ev.governing,
                    ev.expired,
                    ev.pending,
                )
        for _mrid, view in ev.status.items():
            if view.current_status == EventStatusCode.SUPERSEDED and view.date_time >= T0 - 5:
                moment = history[view.date_time - (T0 - 5)]
                assert view.superseded_by in moment.active

    final = history[-1]
    for mrid in final.status:
        owed = [s for s, _ in final.responses(mrid)]
        assert owed[0] == ResponseStatus.RECEIVED
        control = by_mrid[mrid]
        if window(control, lfdi)[1] <= control.creation_time:
            assert owed == [1, 254]
            continue
        if ever_active.get(mrid, T0 + 1000) >= T0 - 4:  # observed from its first active second onwards
            assert (ResponseStatus.STARTED in owed) == (mrid in ever_active)
        assert (ResponseStatus.COMPLETED in owed) == (mrid in last_second_active)


# -- micro-benchmark ---------------------------------------------------------------------------------------------------


def _benchmark() -> None:
    import timeit

    envelopes = [ctl(n, start=n * 300, duration=300, modes={EXPORT}, primacy=2, randomize_start=30) for n in range(90)]
    overrides = [
        ctl(1000 + n, start=n * 2700, duration=1800, primacy=1, modes={EXPORT} if n % 2 else {MAX_W, CONNECT})
        for n in range(10)
    ]
    realistic = envelopes + overrides
    worst = [ctl(n, start=n, duration=100_000, created=n, modes={EXPORT}) for n in range(100)]
    now = T0 + 45 * 300 + 10
    for name, controls, lfdi in [
        ("100 controls, nominal windows", realistic, None),
        ("100 controls, device randomisation", realistic, LFDI),
        ("100 controls all overlapping (worst case)", worst, None),
    ]:
        runs = 200
        best = min(timeit.repeat(lambda c=controls, d=lfdi: evaluate(c, now, lfdi=d), number=runs, repeat=7))
        print(f"{name}: {best / runs * 1e6:.0f} µs per evaluate")


if __name__ == "__main__":
    _benchmark()


@given(
    first=st.integers(min_value=0, max_value=2**32 - 2),
    later=st.integers(min_value=1, max_value=10**6),
    key=st.text(max_size=60),
)
def test_timed_mrids_are_stable_ordered_by_time_and_carry_the_pen(first, later, key):
    # Response ids are time-ordered so stored Responses land at the end of the store's indexes.
    from gateway.protocols.ieee2030_5.mapper import timed_mrid

    pen = 0x1234ABCD
    mrid = timed_mrid(key, first, pen)
    assert mrid == timed_mrid(key, first, pen)
    assert len(mrid) == 32 and mrid.endswith("1234ABCD") and int(mrid, 16) >= 0
    second = first + later
    if second < 2**32:
        assert timed_mrid("another" + key, second, pen) > mrid
    assert timed_mrid(key + "x", first, pen) != mrid
