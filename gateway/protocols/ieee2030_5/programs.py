"""Each device's DER programs and their controls, as the device must see them at a moment.

Programs come from the mapping table (every device is assigned all of them) plus one synthesised program per
canonical priority that no configured program covers ("priority-N", primacy N): a control naming a configured
program lands there, any other in the program of its priority, so 2030.5 precedence (primacy, then creation time)
always follows the canonical priority. Operating envelopes land in the program marked ``envelopes``.

The event engine (``engine.evaluate``) decides statuses and superseding across ALL of the device's programs at
once (precedence crosses programs), with the device's own randomisation. The result is cached per device until
the index changes or the next start or end of one of its controls, so a poll is a dictionary lookup.

Each control and envelope reaches the device as the index's events (``index.History``): the current edition of
each period, and the editions an edit replaced, cancelled, each in the program its own version named. Responses to
an old edition's mRID still resolve (``DeviceSchedule.by_mrid``) to the canonical control it came from.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from gateway.model import Control
from gateway.protocols.ieee2030_5 import engine, mapper
from gateway.protocols.ieee2030_5.index import CanonicalIndex, Device, Event, Versioned
from gateway.protocols.ieee2030_5.mapper import Edition, MappingError, RenderedControl
from gateway.protocols.ieee2030_5.table import MappingTable, Program


@dataclass(slots=True)
class ProgramView:
    """One DER program as one device sees it."""

    program: Program
    mrid: str
    controls: list[RenderedControl] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.program.program_id


@dataclass(slots=True)
class DeviceSchedule:
    """A device's programs, their controls and the engine's verdict, valid until ``valid_until`` (epoch s)."""

    programs: dict[str, ProgramView]
    evaluation: engine.Evaluation
    by_mrid: dict[str, tuple[ProgramView, RenderedControl]]
    valid_until: int
    version: int
    skipped: list[str] = field(default_factory=list)  # controls this device cannot be given, with why

    def program_of_mrid(self, mrid: str) -> ProgramView | None:
        found = self.by_mrid.get(mrid)
        return found[0] if found else None


class ScheduleBook:
    """Builds and caches :class:`DeviceSchedule` per device; thread-safe (renders run in worker threads)."""

    def __init__(self, index: CanonicalIndex, table: MappingTable) -> None:
        self.index = index
        self.table = table
        self.set_max_w: dict[str, Decimal] = {}  # lfdi -> setMaxW from the device's DERSettings (W)
        self._cache: dict[str, DeviceSchedule] = {}
        self._lock = threading.Lock()
        self.skipped_total = 0

    def expired(self, lfdi: str, now: int) -> bool:
        """Whether the device's cached schedule has passed a start or end (its statuses may have changed); a device
        never rendered has nothing a subscriber saw."""
        cached = self._cache.get(lfdi)
        return cached is not None and now >= cached.valid_until

    def forget(self, lfdi: str) -> None:
        with self._lock:
            self._cache.pop(lfdi, None)

    def schedule(self, device: Device, now: int) -> DeviceSchedule:
        cached = self._cache.get(device.lfdi)
        if cached is not None and cached.version == self.index.version and now < cached.valid_until:
            return cached
        built = self._build(device, now)
        with self._lock:
            self._cache[device.lfdi] = built
        return built

    def program_views(self) -> dict[str, ProgramView]:
        pen = self.table.server.pen
        return {p.program_id: ProgramView(p, mapper.program_mrid(p.program_id, pen)) for p in self.table.programs}

    def _build(self, device: Device, now: int) -> DeviceSchedule:
        version = self.index.version
        pen = self.table.server.pen
        views = self.program_views()
        skipped: list[str] = []
        set_max_w = self.set_max_w.get(device.lfdi) or device.max_w
        envelope_program = self.table.envelope_program or Program(program_id="doe", primacy=0, envelopes=True)
        # each event is rendered from the version that published it (a retired edition shows its old content)
        for payload, editions in _by_version(self.index.events_for(device)):
            if isinstance(payload, Control):
                program = self.table.program(payload.program_id)
                if program is None or program.envelopes:
                    name = f"priority-{payload.priority}"
                    program = (
                        views[name].program if name in views else Program(program_id=name, primacy=payload.priority)
                    )
                try:
                    rendered = mapper.control_to_der(
                        payload,
                        self.table,
                        set_max_w=set_max_w,
                        curve_href=f"{device.href}/derp/{program.program_id}/dc",
                        editions=editions,
                    )
                except MappingError as exc:
                    skipped.append(f"{payload.id}: {exc}")
                    continue
            else:
                program = envelope_program
                rendered = mapper.envelope_to_der(payload, pen, editions)
            view = views.setdefault(
                program.program_id, ProgramView(program, mapper.program_mrid(program.program_id, pen))
            )
            view.controls.extend(rendered)
        by_mrid: dict[str, tuple[ProgramView, RenderedControl]] = {}
        scheduled: list[engine.ScheduledControl] = []
        for view in views.values():
            view.controls.sort(key=lambda c: (c.start, c.mrid))
            for rendered in view.controls:
                by_mrid[rendered.mrid] = (view, rendered)
                scheduled.append(
                    engine.ScheduledControl(
                        mrid=rendered.mrid,
                        program_mrid=view.mrid,
                        primacy=view.program.primacy,
                        creation_time=rendered.creation_time,
                        start=rendered.start,
                        duration=rendered.duration,
                        modes=rendered.modes,
                        cancelled_at=rendered.cancelled_at,
                        randomize_start=rendered.randomize_start,
                        randomize_duration=rendered.randomize_duration,
                    )
                )
        evaluation = engine.evaluate(scheduled, now, lfdi=device.lfdi)
        boundaries = [
            edge for control in scheduled for edge in engine.randomized_window(control, device.lfdi) if edge > now
        ]
        valid_until = min(boundaries, default=now + 3600)
        if skipped:
            self.skipped_total += len(skipped)
        return DeviceSchedule(
            programs=views,
            evaluation=evaluation,
            by_mrid=by_mrid,
            valid_until=min(valid_until, now + 3600),
            version=version,
            skipped=skipped,
        )


def _by_version(events: Iterable[Event]) -> list[tuple[Versioned, list[Edition]]]:
    """Events grouped by the version they show, so that each version is mapped once."""
    groups: dict[int, tuple[Versioned, list[Edition]]] = {}
    for event in events:
        group = groups.get(id(event.version))
        if group is None:
            group = groups[id(event.version)] = (event.version, [])
        group[1].append(event.edition)
    return list(groups.values())
