"""The operator's override policy: which program settles where, what an enrolled party was expected to give, the
penalties, and which controls are hard (not to be overridden).

It is a mapping file (``mappings/overrides.yaml``) rather than canonical data because it is the utility's tariff
and program terms, which change with a rate case, not with traffic; every edge and the settlement read the same
table, so an override costs the same whichever protocol carried it.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from gateway.resources import mappings_dir, read_mapping

NonNegative = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


class PolicyError(ValueError):
    """The override mapping file cannot be used; the message names the file and the entry."""


class Enforcement(StrEnum):
    SOFT = "soft"
    """The party may override; it pays the penalty (if any) and the deviation."""
    HARD = "hard"
    """The operator curtails or disconnects directly; an override is refused."""


class ProgramTerms(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    market_id: str | None = None
    response_kw: dict[str, NonNegative] = Field(default_factory=dict)
    penalty_per_kwh: NonNegative | None = None
    enforcement: Enforcement = Enforcement.SOFT

    def expected_kw(self, party_id: str) -> Decimal | None:
        """The reduction ``party_id`` was expected to give (None: the program does not say)."""
        return self.response_kw.get(party_id, self.response_kw.get("default"))


class MarketTerms(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    penalty_per_kwh: NonNegative | None = None


class OverridePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    programs: dict[str, ProgramTerms] = Field(default_factory=dict)
    markets: dict[str, MarketTerms] = Field(default_factory=dict)

    def program(self, program_id: str | None) -> ProgramTerms | None:
        return None if program_id is None else self.programs.get(program_id)

    def is_hard(self, program_id: str | None) -> bool:
        terms = self.program(program_id)
        return terms is not None and terms.enforcement is Enforcement.HARD

    def market_penalty(self, market_id: str) -> Decimal | None:
        terms = self.markets.get(market_id)
        return None if terms is None else terms.penalty_per_kwh


def load_policy(path: Path | str | None = None) -> OverridePolicy:
    """The policy in ``path``, or the installed ``mappings/overrides.yaml``."""
    return read_mapping(Path(path) if path else mappings_dir() / "overrides.yaml", OverridePolicy, PolicyError)
