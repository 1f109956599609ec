"""The scenario the ieee2030_5-client harness plays to a DER client, and the oracle of what the device owes.

Kept apart from the server (:mod:`conformance.ieee2030_5_server_harness`) because it is the part a reader checks
against the standard: which controls, when, in which programs, and what the event engine says a compliant device
must answer. It is pure: no I/O, no clock; the server asks it what to publish at a moment.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.protocols.ieee2030_5 import engine

PEN = 32473  # IANA's private enterprise number for documentation (RFC 5612): the low 32 bits of every mRID


@dataclass(frozen=True, slots=True)
class ScriptedProgram:
    key: str
    mrid: str
    primacy: int
    description: str
    default_limit: int | None = None  # opModMaxLimW of its DefaultDERControl, hundredths of a percent


@dataclass(frozen=True, slots=True)
class ScriptedControl:
    """One DERControl of the script: every control sets opModMaxLimW only, so any two that overlap in time
    compete for the same mode and precedence decides."""

    key: str
    role: str
    program: ScriptedProgram
    mrid: str
    created: int
    start: int
    duration: int
    limit: int
    cancelled_at: int | None = None
    randomize_start: int = 0
    response_required: str = "03"  # bit 0 received, bit 1 the specific outcomes (started, completed, ...)

    @property
    def end(self) -> int:
        return self.start + self.duration

    @property
    def name(self) -> str:
        return f"{self.key} ({self.role}, mRID {self.mrid})"

    def scheduled(self) -> engine.ScheduledControl:
        return engine.ScheduledControl(
            mrid=self.mrid,
            program_mrid=self.program.mrid,
            primacy=self.program.primacy,
            creation_time=self.created,
            start=self.start,
            duration=self.duration,
            modes=frozenset({"opModMaxLimW"}),
            cancelled_at=self.cancelled_at,
            randomize_start=self.randomize_start,
        )


def mrid(token: str, number: int) -> str:
    """128 bits: 64 drawn per run, a 32-bit serial, and the PEN in the low 32 bits as 2030.5 asks."""
    return f"{token[:16]}{number:08X}{PEN:08X}"


class Script:
    """The timeline the device lives through, in units ``u`` of ``--pace`` seconds from ``t0`` (the whole
    second after the device's first request, harness clock). Program ``b`` (primacy 10) outranks ``a`` (20).

    ======  =======  ==============  ==============  ==========================================================
    key     program  created         in force        what the device owes
    ======  =======  ==============  ==============  ==========================================================
    C1      a        0               [2u, 4u)        1 at once, 2 at 2u, 3 at 4u
    X       a        0               [4u, 8u)        1, 2 at 4u, then 7 (superseded) when Y starts at 6u
    Y       b        5u              [6u, 8u)        1 at 5u, 2 at 6u, 3 at 8u
    Z       a        0               [8u, 11u)       1, 2 at 8u, 6 when cancelled at 9.5u (never 3)
    (gap)                            [11u, 12u)      nothing active: program a's DefaultDERControl applies
    R       a        0               [12u, 14u) +d   randomizeStart 2u: 2 at 12u + d, 3 at 14u + d, d in [0, 2u]
    ======  =======  ==============  ==============  ==========================================================

    Controls appear in their DERControlList at their creation time; Z's EventStatus turns 2 (cancelled) at 9.5u,
    X's 4 (superseded) at 6u, as :func:`engine.evaluate` renders them. The engine is also the oracle of which
    Responses are owed and when (:meth:`owed`).
    """

    def __init__(self, t0: int, unit: int, late: float, token: str) -> None:
        u = unit
        self.t0 = t0
        self.unit = unit
        main = ScriptedProgram("a", mrid(token, 1), 20, "main program", default_limit=9000)
        priority = ScriptedProgram("b", mrid(token, 2), 10, "priority program")
        self.programs = (priority, main)  # by primacy, as a DERProgramList is ordered
        self.main = main
        self.controls = (
            ScriptedControl("C1", "plain", main, mrid(token, 11), t0, t0 + 2 * u, 2 * u, 5000),
            ScriptedControl("X", "to be superseded", main, mrid(token, 12), t0, t0 + 4 * u, 4 * u, 4000),
            ScriptedControl("Y", "superseding", priority, mrid(token, 13), t0 + 5 * u, t0 + 6 * u, 2 * u, 2000),
            ScriptedControl(
                "Z",
                "to be cancelled",
                main,
                mrid(token, 14),
                t0,
                t0 + 8 * u,
                3 * u,
                3000,
                cancelled_at=t0 + 9 * u + u // 2,
            ),
            ScriptedControl(
                "R", "randomised", main, mrid(token, 15), t0, t0 + 12 * u, 2 * u, 6000, randomize_start=2 * u
            ),
        )
        self.gap = (t0 + 11 * u, t0 + 12 * u)
        self.end = t0 + 16 * u  # the latest moment R can end
        self.over = self.end + late  # by then everything owed must have arrived
        self._scheduled = [c.scheduled() for c in self.controls]

    def control(self, key: str) -> ScriptedControl:
        return next(c for c in self.controls if c.key == key)

    def by_mrid(self, value: str) -> ScriptedControl | None:
        return next((c for c in self.controls if c.mrid == value.upper()), None)

    def program(self, key: str) -> ScriptedProgram | None:
        return next((p for p in self.programs if p.key == key), None)

    def visible(self, program: ScriptedProgram, now: float) -> list[ScriptedControl]:
        """The program's controls created by ``now``, in 2030.5 event order: start ascending, then creationTime
        descending, then mRID descending."""
        found = [c for c in self.controls if c.program is program and c.created <= now]
        found.sort(key=lambda c: c.mrid, reverse=True)
        found.sort(key=lambda c: (c.start, -c.created))
        return found

    def evaluate(self, now: float) -> engine.Evaluation:
        """What the server publishes at ``now``: statuses on nominal windows (the server does not draw the
        device's randomisation), supersession across programs as the engine reads precedence."""
        return engine.evaluate(self._scheduled, int(now))

    def owed(self, lfdi: str) -> dict[str, list[tuple[int, int]]]:
        """The oracle: per control key, the (Response status, due since) a compliant device owes by the end, from
        :func:`engine.responses_due` over the whole run. R's due times are for the engine's own randomisation draw
        and so only say *which* statuses are owed; its cases judge R against its window instead."""
        final = engine.evaluate(self._scheduled, self.end + 1, lfdi=lfdi)
        due = engine.responses_due(None, final)
        since = {mrid: dict(final.responses(mrid)) for mrid in final.timelines}
        owed: dict[str, list[tuple[int, int]]] = {c.key: [] for c in self.controls}
        for mrid_, status in due:
            control = self.by_mrid(mrid_)
            if control is not None and _asked(control.response_required, int(status)):
                owed[control.key].append((int(status), since[mrid_][status]))
        return owed

    def rel(self, moment: float) -> str:
        """A harness-clock moment as the offset from t0 the reasons speak in."""
        return f"t0{moment - self.t0:+.1f}s"


def _asked(response_required: str, status: int) -> bool:
    """Whether responseRequired asks for ``status``: bit 0 for 1 (received), bit 1 for the specific outcomes."""
    bits = int(response_required or "00", 16)
    return bool(bits & 0x01) if status == 1 else bool(bits & 0x02)
