"""The OpenADR 2.0b mapping, without a wire: events <-> controls (hypothesis round trips), the profile rules the
rendering keeps (UTC, uids from 0, durations adding up, SIMPLE 0..3, currentValue 0 unless active), answers and
opts as Responses and Overrides, telemetry as Deliveries, and what is refused with which code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.model import Control, ControlKind, ControlPeriod, ControlSignal, ControlStatus, ControlTargets, ControlUnit
from gateway.model.intervals import TimeSpan
from gateway.model.overrides import OverrideMode, OverrideStatus, ResponseStatus
from gateway.protocols.openadr2b import mapper, render
from gateway.protocols.openadr2b.messages import (
    Availability,
    Event,
    EventResponse,
    EventSignal,
    EventStatus,
    ItemUnit,
    Opt,
    OptType,
    Report,
    ReportDescription,
    ReportInterval,
    ResponseCode,
    SignalInterval,
    Target,
)
from gateway.protocols.openadr2b.table import TableError, load_table

T0 = datetime(2026, 11, 25, 17, tzinfo=UTC)
USD = ItemUnit("currencyPerKWh", "currencyPerKWh", "USD")


def event(*signals: EventSignal, status: EventStatus = EventStatus.FAR, duration: timedelta | None = None) -> Event:
    total = duration if duration is not None else sum((i.duration for i in signals[0].intervals), timedelta())
    return Event(
        event_id="e1",
        modification_number=3,
        market_context="http://tgw.local/programs/default",
        created=T0 - timedelta(days=1),
        status=status,
        start=T0,
        duration=total,
        signals=list(signals),
        target=Target(ven_ids=["ven-a"], resource_ids=["r1"]),
        priority=1,
    )


def simple(*levels: int, minutes: int = 15) -> EventSignal:
    intervals = [SignalInterval(uid, timedelta(minutes=minutes), Decimal(level)) for uid, level in enumerate(levels)]
    return EventSignal(name="SIMPLE", type="level", id="s0", intervals=intervals)


def control(
    kind: ControlKind, signal: ControlSignal, unit: ControlUnit, values: list[Decimal], **extra: object
) -> Control:
    periods = [
        ControlPeriod(span=TimeSpan(start=T0 + timedelta(minutes=15 * n), duration=timedelta(minutes=15)), value=v)
        for n, v in enumerate(values)
    ]
    return Control(
        id="c1",
        targets=ControlTargets(party_ids=["ven-a"]),
        kind=kind,
        signal=signal,
        unit=unit,
        periods=periods,
        **extra,  # type: ignore[arg-type]
    )


def test_an_event_with_two_signals_becomes_two_controls() -> None:
    price = EventSignal(
        name="ELECTRICITY_PRICE",
        type="price",
        id="s1",
        intervals=[SignalInterval(0, timedelta(minutes=30), Decimal("1.20"))],
        unit=USD,
    )
    controls = mapper.event_to_controls(event(simple(3, 2), price))
    assert [c.id for c in controls] == ["e1.s0", "e1.s1"]
    level, cost = controls
    assert (level.kind, level.signal, level.unit) == (ControlKind.LEVEL, ControlSignal.DR_LEVEL, ControlUnit.LEVEL)
    assert [p.value for p in level.periods] == [3, 2]
    assert level.periods[1].span.start == T0 + timedelta(minutes=15)
    assert (cost.signal, cost.unit, cost.periods[0].value) == (
        ControlSignal.PRICE,
        ControlUnit.CURRENCY_PER_KWH,
        Decimal("1.20"),
    )
    assert level.priority == 0 and level.revision == 3 and level.program_id == "default"
    assert level.targets.party_ids == ["ven-a"] and level.targets.resource_ids == ["r1"]


@pytest.mark.parametrize(
    ("bad", "code", "words"),
    [
        (event(simple(4)), ResponseCode.INVALID_DATA, "0, 1, 2 or 3"),
        (event(simple(1, 2), duration=timedelta(hours=2)), ResponseCode.INVALID_DATA, "add up"),
        (
            event(
                EventSignal(
                    name="BID_LOAD",
                    type="setpoint",
                    id="x",
                    intervals=[SignalInterval(0, timedelta(minutes=5), Decimal(1))],
                )
            ),
            ResponseCode.SIGNAL_NOT_SUPPORTED,
            "not in mappings",
        ),
    ],
)
def test_events_the_model_cannot_hold_are_refused_with_a_code(bad: Event, code: int, words: str) -> None:
    with pytest.raises(mapper.MappingError) as caught:
        mapper.event_to_controls(bad)
    assert caught.value.code == code and words in caught.value.reason


def test_priorities_map_both_ways() -> None:
    assert [mapper.canonical_priority(p) for p in (0, 1, 2, 256)] == [255, 0, 1, 254]
    assert [mapper.oadr_priority(p) for p in (0, 1, 254, 255)] == [1, 2, 255, 0]
    for oadr in range(1, 256):
        assert mapper.oadr_priority(mapper.canonical_priority(oadr)) == oadr


@pytest.mark.parametrize(
    ("minutes", "status", "current"),
    [
        (-120, EventStatus.FAR, 0),
        (-10, EventStatus.NEAR, 0),
        (5, EventStatus.ACTIVE, 3),
        (20, EventStatus.ACTIVE, 1),
        (45, EventStatus.COMPLETED, 0),
    ],
)
def test_rendering_keeps_the_profile_rules(minutes: int, status: EventStatus, current: int) -> None:
    c = control(ControlKind.LEVEL, ControlSignal.DR_LEVEL, ControlUnit.LEVEL, [Decimal(3), Decimal(1)])
    rendered = render.control_to_event(c, ven_id="ven-a", now=T0 + timedelta(minutes=minutes))
    assert rendered.status is status
    signal = rendered.signals[0]
    assert signal.current_value == current  # rule 14: 0 unless active
    assert [i.uid for i in signal.intervals] == [0, 1]  # rule 2
    assert sum((i.duration for i in signal.intervals), timedelta()) == rendered.duration  # rule 8
    assert rendered.start.tzinfo is not None and rendered.start.utcoffset() == timedelta(0)  # rule 1
    assert rendered.target.ven_ids == ["ven-a"]


def test_a_cancelled_control_renders_as_a_cancelled_event_and_gaps_are_level_zero() -> None:
    gap = Control(
        id="c2",
        targets=ControlTargets(broadcast=True),
        kind=ControlKind.LEVEL,
        signal=ControlSignal.DR_LEVEL,
        unit=ControlUnit.LEVEL,
        status=ControlStatus.CANCELLED,
        periods=[
            ControlPeriod(span=TimeSpan(start=T0, duration=timedelta(minutes=15)), value=Decimal(2)),
            ControlPeriod(
                span=TimeSpan(start=T0 + timedelta(minutes=30), duration=timedelta(minutes=15)), value=Decimal(3)
            ),
        ],
    )
    rendered = render.control_to_event(gap, ven_id="v", now=T0)
    assert rendered.status is EventStatus.CANCELLED
    assert [(i.duration, i.value) for i in rendered.signals[0].intervals] == [
        (timedelta(minutes=15), 2),
        (timedelta(minutes=15), 0),
        (timedelta(minutes=15), 3),
    ]


def test_controls_openadr_cannot_carry_are_refused() -> None:
    big = control(ControlKind.LEVEL, ControlSignal.DR_LEVEL, ControlUnit.LEVEL, [Decimal(5)])
    with pytest.raises(mapper.MappingError, match=r"0\.\.3"):
        render.control_to_event(big, ven_id="v", now=T0)
    var = control(ControlKind.SETPOINT, ControlSignal.REACTIVE_POWER, ControlUnit.KVAR, [Decimal(5)])
    with pytest.raises(mapper.MappingError) as caught:
        render.control_to_event(var, ven_id="v", now=T0)
    assert caught.value.code == ResponseCode.SIGNAL_NOT_SUPPORTED


RENDERABLE = [
    (ControlKind.LEVEL, ControlSignal.DR_LEVEL, ControlUnit.LEVEL, st.integers(0, 3).map(Decimal)),
    (
        ControlKind.LEVEL,
        ControlSignal.PRICE,
        ControlUnit.CURRENCY_PER_KWH,
        st.decimals(min_value=-10, max_value=10, places=5, allow_nan=False),
    ),
    (
        ControlKind.SETPOINT,
        ControlSignal.REAL_POWER,
        ControlUnit.KW,
        st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False),
    ),
    (
        ControlKind.LIMIT,
        ControlSignal.REAL_POWER,
        ControlUnit.PERCENT,
        st.decimals(min_value=0, max_value=100, places=2, allow_nan=False),
    ),
    (
        ControlKind.SETPOINT,
        ControlSignal.STATE_OF_CHARGE,
        ControlUnit.PERCENT,
        st.decimals(min_value=0, max_value=100, places=1, allow_nan=False),
    ),
]


@st.composite
def renderable_controls(draw: st.DrawFn) -> Control:
    kind, signal, unit, values = draw(st.sampled_from(RENDERABLE))
    count = draw(st.integers(1, 12))
    minutes = draw(st.lists(st.sampled_from([5, 15, 30, 60]), min_size=count, max_size=count))
    periods, at = [], T0
    for length in minutes:
        periods.append(ControlPeriod(span=TimeSpan(start=at, duration=timedelta(minutes=length)), value=draw(values)))
        at += timedelta(minutes=length)
    return Control(
        id="c",
        targets=ControlTargets(party_ids=["ven-a"]),
        kind=kind,
        signal=signal,
        unit=unit,
        periods=periods,
        priority=draw(st.integers(0, 255)),
        revision=draw(st.integers(0, 1000)),
        randomize_start=timedelta(seconds=draw(st.integers(0, 3600))),
        program_id="default",
    )


@given(renderable_controls(), st.integers(-200, 900))
def test_every_renderable_control_round_trips_exactly(original: Control, minutes: int) -> None:
    rendered = render.control_to_event(original, ven_id="ven-a", now=T0 + timedelta(minutes=minutes))
    (back,) = mapper.event_to_controls(rendered)
    assert back.periods == original.periods  # exact Decimals, same spans
    assert (back.kind, back.signal, back.unit) == (original.kind, original.signal, original.unit)
    assert (back.priority, back.revision, back.randomize_start) == (
        original.priority,
        original.revision,
        original.randomize_start,
    )
    assert back.program_id == original.program_id and back.targets.party_ids == ["ven-a"]


def test_answers_become_responses_and_an_opt_out_an_override() -> None:
    c = control(ControlKind.LEVEL, ControlSignal.DR_LEVEL, ControlUnit.LEVEL, [Decimal(1), Decimal(2)])
    out = mapper.event_response_to_canonical(EventResponse("c1", 0, OptType.OPT_OUT), "ven-a", c, T0)
    response, override = out
    assert response.status is ResponseStatus.OPTED_OUT and response.subject.id == "c1"  # type: ignore[union-attr]
    assert override.status is OverrideStatus.ACTIVE and override.span == c.span  # type: ignore[union-attr]
    _, withdrawn = mapper.event_response_to_canonical(EventResponse("c1", 0, OptType.OPT_IN), "ven-a", c, T0)
    assert withdrawn.id == override.id and withdrawn.status is OverrideStatus.WITHDRAWN  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("code", "said", "status", "text"),
    [
        (
            460,
            "ERROR",
            ResponseStatus.REJECTED_NOT_APPLICABLE,
            "OpenADR 2.0b responseCode 460 (signal not supported): ERROR",
        ),
        (462, "", ResponseStatus.REJECTED_NOT_APPLICABLE, "OpenADR 2.0b responseCode 462 (target mismatch)"),
        (
            454,
            "bad interval",
            ResponseStatus.REJECTED_INVALID,
            "OpenADR 2.0b responseCode 454 (invalid data): bad interval",
        ),
        (500, "boom", ResponseStatus.REJECTED_INVALID, "OpenADR 2.0b responseCode 500 (error): boom"),
    ],
)
@pytest.mark.parametrize("opt", list(OptType))
def test_an_error_code_is_a_rejected_response_and_never_an_override(
    code: int, said: str, status: ResponseStatus, text: str, opt: OptType
) -> None:
    """A VEN that cannot act on an event (openleadr answers 460 to an x- signal, with its on_event's optType) did
    not opt out: the Response records the code, the resource it answered for, and there is no Override."""
    c = control(ControlKind.LIMIT, ControlSignal.EXPORT_POWER, ControlUnit.KW, [Decimal(1)])
    answer = EventResponse("c1", 2, opt, code=code, description=said)
    out = mapper.event_response_to_canonical(answer, "ven-a", c, T0, resource_id="r1")
    [response] = out
    assert response.status is status and response.description == text  # type: ignore[union-attr]
    assert response.id == "oadr.ven-a.c1.2" and response.subject.id == "c1" and response.resource_id == "r1"  # type: ignore[union-attr]
    assert mapper.event_response_to_canonical(EventResponse("c1", 2, opt, code=200), "ven-a", c, T0)[0].status in (
        ResponseStatus.OPTED_IN,
        ResponseStatus.OPTED_OUT,
    )


def test_an_availability_opt_covers_each_resource_and_window() -> None:
    opt = Opt(
        opt_id="o1",
        opt_type=OptType.OPT_OUT,
        opt_reason="x-schedule",
        created=T0,
        availability=[Availability(T0, timedelta(hours=1)), Availability(T0 + timedelta(hours=3), timedelta(hours=1))],
    )
    overrides = mapper.opt_to_overrides(opt, "ven-a", control=None, resource_ids=["r1", "r2"])
    assert [o.id for o in overrides] == [f"oadr-opt.o1.{n}" for n in range(4)]
    assert {o.resource_id for o in overrides} == {"r1", "r2"}
    assert all(o.mode is OverrideMode.OPT_OUT and o.reason.value == "schedule" for o in overrides)
    with pytest.raises(mapper.MappingError) as caught:
        mapper.opt_to_overrides(opt, "ven-a", control=None, resource_ids=[])
    assert caught.value.code == ResponseCode.TARGET_MISMATCH


def test_telemetry_becomes_deliveries_in_kilowatts() -> None:
    power = ReportDescription(
        "p", "usage", "Direct Read", resource_id="r1", unit=ItemUnit("powerReal", "RealPower", "W", "k")
    )
    energy = ReportDescription(
        "e", "usage", "Direct Read", resource_id="r1", unit=ItemUnit("energyReal", "RealEnergy", "Wh")
    )
    report = Report(
        report_specifier_id="spec",
        report_name="TELEMETRY_USAGE",
        created=T0,
        intervals=[
            ReportInterval(T0, timedelta(minutes=15), "p", Decimal("2.5")),
            ReportInterval(T0, timedelta(minutes=15), "e", Decimal("500")),
        ],
    )
    deliveries = mapper.report_to_deliveries(report, "ven-a", {"p": power, "e": energy}, lambda r: "sp-a")
    assert [d.quantity for d in deliveries] == [Decimal("2.5"), Decimal("2")]  # 500 Wh in 15 min = 2 kW
    assert {d.location_id for d in deliveries} == {"sp-a"} and deliveries[0].interval.start == T0
    odd = Report(
        report_specifier_id="s",
        report_name="TELEMETRY_USAGE",
        created=T0,
        intervals=[ReportInterval(T0, timedelta(minutes=7), "p", Decimal(1))],
    )
    with pytest.raises(mapper.MappingError, match="not a market interval"):
        mapper.report_to_deliveries(odd, "ven-a", {"p": power}, lambda r: "sp-a")


def test_a_broken_mapping_file_names_the_entry(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "openadr2b.yaml"
    path.write_text("signals:\n  - {name: SIMPLE, type: level, kind: level, signal: dr_level, unit: furlongs}\n")
    with pytest.raises(TableError, match=r"signals\.0\.unit"):
        load_table(path)
