"""The OpenADR 2.0b mapping table (mappings/openadr2b.yaml), loaded and checked once.

Operators edit the table, not code: which (signalName, signalType) pairs the gateway understands and which
canonical control each one is, the VTN's settings, and the programs (market context <-> program id, price
sources, what a SIMPLE level means to the northbound bridge). A mistake in the file is reported with the
entry at fault when the gateway starts, not when the first event arrives.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from gateway.model import ControlKind, ControlSignal, ControlUnit
from gateway.model.base import Identifier
from gateway.resources import mappings_dir, read_mapping


class TableError(ValueError):
    """The mapping file is wrong; the message names the entry."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignalMapping(_Strict):
    name: str = Field(pattern=r"^([A-Z_]+|x-\S+)$")
    type: str = Field(min_length=1)
    kind: ControlKind
    signal: ControlSignal
    unit: ControlUnit
    item: str | None = None
    factor: Decimal = Decimal(1)
    render: bool = False


class VtnSettings(_Strict):
    vtn_id: str = Field(default="TGW-VTN", min_length=1, max_length=200)
    poll_freq: timedelta = timedelta(seconds=10)
    near_window: timedelta = timedelta(minutes=15)
    completed_grace: timedelta = timedelta(hours=1)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    market_context: str = "http://tgw.local/programs/default"
    # powerReal items carry powerAttributes (the 2.0b schema requires them): the grid's nominal values
    grid_hertz: Decimal = Decimal(60)
    grid_voltage: Decimal = Decimal(120)


class LevelMode(StrEnum):
    CONTROL = "control"
    PRICE_ADDER = "price_adder"
    CURTAILMENT = "curtailment"


class SimpleLevels(_Strict):
    """What a SIMPLE level from a utility's VTN becomes in the northbound bridge; a level missing from ``adder``
    or ``curtailment_kw`` adds nothing (level 0, normal operation, by definition)."""

    mode: LevelMode = LevelMode.CONTROL
    base_price: Decimal = Decimal(0)
    adder: dict[int, Decimal] = Field(default_factory=dict)
    curtailment_kw: dict[int, Decimal] = Field(default_factory=dict)
    # price_adder: the rate the utility's price tender offers at each price (the tender is a tariff, not a bid)
    tender_quantity_kw: Decimal | None = Field(default=None, ge=0)
    # curtailment: the site's normal import capacity, from which curtailment_kw[level] is taken away
    site_import_kw: Decimal | None = Field(default=None, ge=0)

    @field_validator("adder", "curtailment_kw")
    @classmethod
    def _levels(cls, table: dict[int, Decimal]) -> dict[int, Decimal]:
        if any(level not in range(4) for level in table):
            raise ValueError("SIMPLE levels are 0, 1, 2 and 3")
        return table

    @model_validator(mode="after")
    def _mode_has_what_it_needs(self) -> Self:
        if self.mode is LevelMode.PRICE_ADDER and self.tender_quantity_kw is None:
            raise ValueError("mode price_adder needs tender_quantity_kw (the rate the price tender offers)")
        if self.mode is LevelMode.CURTAILMENT and self.site_import_kw is None:
            raise ValueError("mode curtailment needs site_import_kw (the import limit a curtailment is taken from)")
        if any(kw < 0 for kw in self.curtailment_kw.values()):
            raise ValueError("curtailment_kw values are reductions in kW and cannot be negative")
        return self


class Program(_Strict):
    program_id: Identifier
    market_context: str = Field(min_length=1)
    market_id: Identifier | None = None
    price_tenders_from: list[Identifier] = Field(default_factory=list)
    clearing_prices: bool = False
    simple_levels: SimpleLevels = Field(default_factory=SimpleLevels)
    # northbound bridge, price_adder mode: who sells at the price (the utility's canonical party) and where
    utility_party_id: Identifier | None = None
    location_id: Identifier | None = None

    @model_validator(mode="after")
    def _price_adder_has_a_market(self) -> Self:
        if self.simple_levels.mode is LevelMode.PRICE_ADDER:
            missing = [name for name in ("market_id", "utility_party_id", "location_id") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"simple_levels mode price_adder needs {', '.join(missing)} on the program")
        return self


class MappingTable(_Strict):
    signals: list[SignalMapping] = Field(min_length=1)
    vtn: VtnSettings = Field(default_factory=VtnSettings)
    programs: list[Program] = Field(default_factory=list)
    _inbound: dict[tuple[str, str], SignalMapping] = PrivateAttr(default_factory=dict)
    _outbound: dict[tuple[ControlKind, ControlSignal, ControlUnit], SignalMapping] = PrivateAttr(default_factory=dict)
    _by_context: dict[str, Program] = PrivateAttr(default_factory=dict)
    _by_program: dict[str, Program] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: object) -> None:
        inbound: dict[tuple[str, str], SignalMapping] = {}
        outbound: dict[tuple[ControlKind, ControlSignal, ControlUnit], SignalMapping] = {}
        for entry in self.signals:
            if (entry.name, entry.type) in inbound:
                raise ValueError(f"signal {entry.name}/{entry.type} is listed twice")
            inbound[(entry.name, entry.type)] = entry
            if entry.render:
                outbound.setdefault((entry.kind, entry.signal, entry.unit), entry)
        self._inbound = inbound
        self._outbound = outbound
        self._by_context = {p.market_context: p for p in self.programs}
        self._by_program = {p.program_id: p for p in self.programs}

    def inbound(self, name: str, signal_type: str) -> SignalMapping | None:
        return self._inbound.get((name, signal_type))

    def outbound(self, kind: ControlKind, signal: ControlSignal, unit: ControlUnit) -> SignalMapping | None:
        return self._outbound.get((kind, signal, unit))

    def program_by_context(self, market_context: str) -> Program | None:
        return self._by_context.get(market_context)

    def program(self, program_id: str | None) -> Program | None:
        return self._by_program.get(program_id) if program_id else None


def load_table(path: Path | None = None) -> MappingTable:
    """Read and check a mapping file (the installed one by default)."""
    return read_mapping(path or mappings_dir() / "openadr2b.yaml", MappingTable, TableError)


@functools.cache
def default_table() -> MappingTable:
    return load_table()
