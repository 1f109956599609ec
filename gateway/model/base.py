"""Shared building blocks of the canonical model.

Every canonical object derives from :class:`CanonicalModel` so that the whole model rejects unknown fields
(a typo in a field name must be an error, not silently dropped data) and serialises the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema
from uuid_utils import uuid7

from gateway.model.currencies import ISO_4217_CODES


class CanonicalModel(BaseModel):
    """Base of every canonical object: strict about unknown fields, validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False)


class _UtcDatetimeSchema:
    """Validation of :data:`UtcDatetime`, done by pydantic-core in Rust wherever it can be.

    Input already in UTC ("Z" or "+00:00", nearly all of it) is accepted by the first branch without any
    Python call; only input with another offset reaches the second branch, which converts it. Tenders carry
    a timestamp per row, so this is on the hottest path of the model.
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.union_schema(
            [
                core_schema.datetime_schema(tz_constraint=0),
                core_schema.no_info_after_validator_function(
                    _to_utc, core_schema.datetime_schema(tz_constraint="aware")
                ),
            ],
            mode="left_to_right",
            custom_error_type="datetime_utc",
            custom_error_message="Input should be a datetime with timezone info, e.g. 2030-01-07T00:00:00Z",
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "string", "format": "date-time"}


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, _UtcDatetimeSchema]
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
    """A fresh identifier for objects and messages created inside the gateway: a UUIDv7 (RFC 9562), 48 bits of
    milliseconds then 74 random bits.

    Time-ordered rather than uuid4 because ids are indexed keys: a random key puts each new row on a random page
    of the index, and a durable commit then writes one page per row per such index (a group of device Responses
    dirtied ~20 index pages where ordered ids dirty one). Unique as a uuid4 is for any practical purpose; the
    creation time it reveals is already in every envelope. ``uuid_utils`` (Rust) because the standard library
    has no uuid7 before Python 3.14."""
    return str(uuid7())


def utc_now() -> datetime:
    return datetime.now(UTC)
