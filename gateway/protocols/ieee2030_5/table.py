"""The IEEE 2030.5 mapping table (mappings/ieee2030_5.yaml), loaded and checked once.

Operators edit the table, not code: which DERControlBase control modes the gateway understands and which
canonical control each is (with how its number is written), the server's settings (the PEN in minted mRIDs,
poll rates, time zone), the DER programs devices are assigned and the tariffs that carry transactive prices.
A mistake in the file is reported with the entry at fault when the gateway starts.
"""

from __future__ import annotations

import functools
import zoneinfo
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from gateway.model import ControlKind, ControlSignal, ControlUnit
from gateway.model.base import Identifier
from gateway.resources import mappings_dir, read_mapping


class TableError(ValueError):
    """The mapping file is wrong; the message names the entry."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Encoding(StrEnum):
    PERCENT = "percent"
    SIGNED_PERCENT = "signed_percent"
    ACTIVE_POWER = "active_power"
    REACTIVE_POWER = "reactive_power"
    FIXED_VAR = "fixed_var"
    POWER_FACTOR = "power_factor"
    BOOLEAN = "boolean"
    CURVE = "curve"


class OpModMapping(_Strict):
    opmod: str = Field(pattern=r"^opMod[A-Za-z]+$")
    kind: ControlKind
    signal: ControlSignal
    unit: ControlUnit
    encoding: Encoding
    curve_type: int | None = Field(default=None, ge=0, le=14)
    render: bool = False

    @model_validator(mode="after")
    def _curve_needs_type(self) -> Self:
        if (self.encoding is Encoding.CURVE) != (self.curve_type is not None):
            raise ValueError("curve_type is required for encoding curve and only for it")
        if (self.kind is ControlKind.CURVE) != (self.encoding is Encoding.CURVE):
            raise ValueError("a curve control is written with encoding curve, and only a curve control is")
        return self


class ServerSettings(_Strict):
    pen: int = Field(default=32473, ge=0, le=0xFFFFFFFF)
    poll_rate: int = Field(default=300, ge=1, le=86_400)
    time_zone: str = "UTC"
    completed_grace: int = Field(default=3600, ge=0)
    notification_retries: int = Field(default=5, ge=1, le=20)
    max_page: int = Field(default=100, ge=1, le=1000)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone") from None
        return value


class Program(_Strict):
    program_id: Identifier
    description: str = Field(default="", max_length=32)  # String32 on the wire
    primacy: int = Field(ge=0, le=255)
    envelopes: bool = False
    default_control: dict[str, Any] | None = None


class Tariff(_Strict):
    tariff_id: Identifier
    description: str = Field(default="", max_length=32)
    market_id: Identifier
    price_tenders_from: list[Identifier] = Field(default_factory=list)
    currency: int = Field(default=840, ge=0, le=999)
    price_power_of_ten: int = Field(default=-4, ge=-9, le=0)


class MappingTable(_Strict):
    controls: list[OpModMapping] = Field(min_length=1)
    server: ServerSettings = Field(default_factory=ServerSettings)
    programs: list[Program] = Field(default_factory=list)
    tariffs: list[Tariff] = Field(default_factory=list)
    _inbound: dict[str, list[OpModMapping]] = PrivateAttr(default_factory=dict)
    _outbound: dict[tuple[ControlKind, ControlSignal, ControlUnit], OpModMapping] = PrivateAttr(default_factory=dict)
    _programs: dict[str, Program] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: object) -> None:
        inbound: dict[str, list[OpModMapping]] = {}
        outbound: dict[tuple[ControlKind, ControlSignal, ControlUnit], OpModMapping] = {}
        for entry in self.controls:
            inbound.setdefault(entry.opmod, []).append(entry)
            if entry.render:
                outbound.setdefault((entry.kind, entry.signal, entry.unit), entry)
        self._inbound = inbound
        self._outbound = outbound
        programs: dict[str, Program] = {}
        for program in self.programs:
            if program.program_id in programs:
                raise ValueError(f"program {program.program_id} is listed twice")
            programs[program.program_id] = program
        if sum(p.envelopes for p in self.programs) > 1:
            raise ValueError("only one program may carry the operating envelopes (envelopes: true)")
        self._programs = programs

    def inbound(self, opmod: str) -> OpModMapping | None:
        """How a DERControl's ``opmod`` reads as canonical (the first listed entry: its natural unit)."""
        entries = self._inbound.get(opmod)
        return entries[0] if entries else None

    def outbound(self, kind: ControlKind, signal: ControlSignal, unit: ControlUnit) -> OpModMapping | None:
        return self._outbound.get((kind, signal, unit))

    def program(self, program_id: str | None) -> Program | None:
        return self._programs.get(program_id) if program_id else None

    @property
    def envelope_program(self) -> Program | None:
        return next((p for p in self.programs if p.envelopes), None)


def load_table(path: Path | None = None) -> MappingTable:
    """Read and check a mapping file (the installed one by default)."""
    return read_mapping(path or mappings_dir() / "ieee2030_5.yaml", MappingTable, TableError)


@functools.cache
def default_table() -> MappingTable:
    return load_table()
