"""The customer's word (overrides) and devices' answers to controls (responses).

In transactive energy the customer always decides: an override is never an error, it is a fact that the
market settles as a deviation. Responses keep the full 2030.5 vocabulary because it is the richest; OpenADR
optIn/optOut map onto a subset.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Self

from pydantic import Field, model_validator

from gateway.model.base import CanonicalModel, Identifier, NonNegativeDecimal, UtcDatetime, new_id, utc_now
from gateway.model.intervals import TimeSpan


class OverrideMode(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    PARTIAL = "partial"


class OverrideReason(StrEnum):
    """OpenADR optReason values, which cover what the other protocols can say."""

    ECONOMIC = "economic"
    EMERGENCY = "emergency"
    MUST_RUN = "must_run"
    NOT_PARTICIPATING = "not_participating"
    OUTAGE_RUN_STATUS = "outage_run_status"
    OVERRIDE_STATUS = "override_status"
    PARTICIPATING = "participating"
    SCHEDULE = "schedule"
    OTHER = "other"


class SubjectKind(StrEnum):
    CONTROL = "control"
    TRANSACTION = "transaction"
    RESOURCE = "resource"
    OPERATING_ENVELOPE = "operating_envelope"
    TENDER = "tender"


class Subject(CanonicalModel):
    """A reference to the canonical object an override or response is about."""

    kind: SubjectKind
    id: Identifier


class OverrideStatus(StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


class Override(CanonicalModel):
    """A party opts out of (or into, or partly out of) a control, transaction or resource's dispatch."""

    object_type: Literal["override"] = "override"
    id: Identifier = Field(default_factory=new_id)
    party_id: Identifier
    subject: Subject
    resource_id: Identifier | None = None
    mode: OverrideMode
    reason: OverrideReason = OverrideReason.OVERRIDE_STATUS
    reason_text: str | None = Field(default=None, max_length=1000)
    span: TimeSpan
    quantity_kw: NonNegativeDecimal | None = Field(default=None, description="kept in a partial override")
    status: OverrideStatus = OverrideStatus.ACTIVE
    created_at: UtcDatetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _partial_has_quantity(self) -> Self:
        if (self.mode is OverrideMode.PARTIAL) != (self.quantity_kw is not None):
            raise ValueError("quantity_kw is required for a partial override and only for one")
        return self


class ResponseStatus(StrEnum):
    """IEEE 2030.5 Response.status codes by name (the code is :attr:`code`)."""

    RECEIVED = "received"
    STARTED = "started"
    COMPLETED = "completed"
    OPTED_OUT = "opted_out"
    OPTED_IN = "opted_in"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    PARTIAL_OPT_OUT = "partial_opt_out"
    PARTIAL_OPT_IN = "partial_opt_in"
    COMPLETED_NO_PARTICIPATION = "completed_no_participation"
    ACKNOWLEDGED = "acknowledged"
    CANNOT_DISPLAY = "cannot_display"
    ABORTED_BY_SERVER = "aborted_by_server"
    ABORTED_BY_PROGRAM = "aborted_by_program"
    REJECTED_NOT_APPLICABLE = "rejected_not_applicable"
    REJECTED_INVALID = "rejected_invalid"
    REJECTED_EXPIRED = "rejected_expired"

    @property
    def code(self) -> int:
        return _RESPONSE_CODES[self]

    @classmethod
    def from_code(cls, code: int) -> ResponseStatus:
        try:
            return _RESPONSE_BY_CODE[code]
        except KeyError:
            raise ValueError(f"{code} is not an IEEE 2030.5 response status (1..14, 252..254)") from None


_RESPONSE_CODES = dict(zip(ResponseStatus, [*range(1, 15), 252, 253, 254], strict=True))
_RESPONSE_BY_CODE = {code: status for status, code in _RESPONSE_CODES.items()}


class Response(CanonicalModel):
    """A device's or party's answer to a control (received, started, completed, opted out, rejected...)."""

    object_type: Literal["response"] = "response"
    id: Identifier = Field(default_factory=new_id)
    subject: Subject
    party_id: Identifier | None = None
    resource_id: Identifier | None = None
    status: ResponseStatus
    at: UtcDatetime = Field(default_factory=utc_now)
    description: str | None = Field(default=None, max_length=1000)
