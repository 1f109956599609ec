"""Each device's DER programs and their controls, as the device must see them at a moment.

Programs come from the mapping table (every device is assigned all of them) plus one synthesised program per
canonical priority that no configured program covers ("priority-N", primacy N): a control naming a configured
program lands there, any other in the program of its priority, so 2030.5 precedence (primacy, then creation time)
always follows the canonical priority. Operating envelopes land in the program marked ``envelopes``.

The event engine (``engine.evaluate``) decides statuses and superseding across ALL of the device's programs at
once (precedence crosses programs), with the device's own randomisation. The result is cached per device until
the index changes or the next start or end of one of its controls, so a poll is a dictionary lookup.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal

from gateway.protocols.ieee2030_5 import engine, mapper
from gateway.protocols.ieee2030_5.index import CanonicalIndex, Device, is_cancelled
from gateway.protocols.ieee2030_5.mapper import MappingError, RenderedControl
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
        for control in self.index.controls_for(device):
            program = self.table.program(control.program_id)
            if program is None or program.envelopes:
                name = f"priority-{control.priority}"
                program = views[name].program if name in views else Program(program_id=name, primacy=control.priority)
            try:
                rendered = mapper.control_to_der(
                    control,
                    self.table,
                    set_max_w=set_max_w,
                    curve_href=f"{device.href}/derp/{program.program_id}/dc",
                    cancelled_at=self.index.cancelled_at.get(control.id) if is_cancelled(control) else None,
                )
            except MappingError as exc:
                skipped.append(f"{control.id}: {exc}")
                continue
            view = views.setdefault(
                program.program_id, ProgramView(program, mapper.program_mrid(program.program_id, pen))
            )
            view.controls.extend(rendered)
        envelope_program = self.table.envelope_program
        envelopes = self.index.envelopes_for(device)
        if envelopes:
            program = envelope_program or Program(program_id="doe", primacy=0, envelopes=True)
            view = views.setdefault(
                program.program_id, ProgramView(program, mapper.program_mrid(program.program_id, pen))
            )
            for envelope in envelopes:
                view.controls.extend(mapper.envelope_to_der(envelope, pen))
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
