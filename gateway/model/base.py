"""Shared building blocks of the canonical model.

Every canonical object derives from :class:`CanonicalModel` so that the whole model rejects unknown fields
(a typo in a field name must be an error, not silently dropped data) and serialises the same way.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from gateway.model.currencies import ISO_4217_CODES


class CanonicalModel(BaseModel):
    """Base of every canonical object: strict about unknown fields, validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False)


def _to_utc(value: datetime) -> datetime:
    # Inside the gateway every instant is UTC; offsets given at the edge are honoured, then normalised.
    # pydantic parses "Z" into its own zero-offset tzinfo, which already is UTC for every purpose; only a
    # real offset needs converting (replacing the tzinfo object would cost more than the parse).
    return value.astimezone(UTC) if value.utcoffset() else value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware instant, normalised to UTC. Naive datetimes are rejected: their meaning is ambiguous."""


def _check_currency(code: str) -> str:
    if code not in ISO_4217_CODES:
        raise ValueError(f"'{code}' is not an ISO 4217 currency code (e.g. USD, EUR, AUD)")
    return code


Currency = Annotated[str, Field(min_length=3, max_length=3), AfterValidator(_check_currency)]

Identifier = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\s/]+$")]
"""Ids travel in URLs and MQTT topics, so they may not contain whitespace or slashes."""

NonNegativeDecimal = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
ExactDecimal = Annotated[Decimal, Field(allow_inf_nan=False)]


def new_id() -> str:
    """A fresh random identifier for objects created inside the gateway."""
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)
