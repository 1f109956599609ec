"""Override endpoints beyond the generic ones (``GET/POST /v1/overrides``, ``GET /v1/overrides/{id}``).

Creating an override is the generic POST: it goes through the ingest path, where ``gateway.overrides.rules``
refuses someone else's resource, a past span or an unknown control with a 422 naming the field. These routes
add what the lifecycle needs: withdraw, the audit trail, and which overrides count at a moment.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel

from gateway.api.errors import client_peer
from gateway.api.schemas import StoredMessageOut
from gateway.model import Override
from gateway.model.overrides import OverrideStatus
from gateway.overrides.service import OverrideError, OverrideService

router = APIRouter(prefix="/v1/overrides", tags=["overrides"])


class AuditEntryOut(BaseModel):
    seq: int
    stored_at: datetime
    received_at: datetime
    protocol: str
    peer: str
    status: OverrideStatus
    changes: list[str]
    override: Override


def _service(request: Request) -> OverrideService:
    service: OverrideService = request.app.state.overrides
    return service


@router.get("/effective", response_model=list[Override], summary="The overrides that count at a moment")
async def effective(
    request: Request,
    at: Annotated[datetime | None, Query(description="ISO 8601 with offset; default now")] = None,
    party_id: Annotated[str | None, Query(max_length=200)] = None,
    subject_id: Annotated[str | None, Query(max_length=200)] = None,
) -> list[Override]:
    """Per party, subject and resource, the active override that wins at ``at`` (made last; ties by id), as the
    VTN, the 2030.5 server and the settlement read them."""
    if at is not None and at.tzinfo is None:
        raise HTTPException(422, "at needs a UTC offset, e.g. 2030-01-07T10:00:00Z")
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    return await asyncio.to_thread(_service(request).effective, moment, party_id=party_id, subject_id=subject_id)


@router.post(
    "/{override_id}/withdraw",
    response_model=StoredMessageOut,
    status_code=201,
    summary="Withdraw an override",
    responses={404: {"description": "no such override"}, 409: {"description": "withdrawn already"}},
)
async def withdraw(override_id: str, request: Request, response: Response) -> StoredMessageOut:
    """A new version with status withdrawn; the earlier versions stay in the log (see /history)."""
    request.state.body_is = "payload"
    try:
        record = await _service(request).withdraw(override_id, protocol="api", peer=client_peer(request))
    except OverrideError as exc:
        raise HTTPException(exc.status, exc.reason) from None
    return StoredMessageOut.of(record)


@router.get(
    "/{override_id}/history",
    response_model=list[AuditEntryOut],
    summary="An override's audit trail",
    responses={404: {"description": "no such override"}},
)
async def history(override_id: str, request: Request) -> list[AuditEntryOut]:
    """Every stored version, oldest first: when, through which protocol and peer, and what it changed."""
    try:
        entries = await asyncio.to_thread(_service(request).history, override_id)
    except OverrideError as exc:
        raise HTTPException(exc.status, exc.reason) from None
    return [
        AuditEntryOut(
            seq=e.seq,
            stored_at=e.stored_at,
            received_at=e.received_at,
            protocol=e.protocol,
            peer=e.peer,
            status=e.status,
            changes=e.changes,
            override=e.override,
        )
        for e in entries
    ]
