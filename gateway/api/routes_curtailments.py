"""POST /v1/curtailments: the distribution operator overrides market dispatch behind a constrained location.

The allocation and its controls are planned off the event loop (``gateway.overrides.dispatch``), then stored in one
batch through the ingestor, which publishes them: the 2030.5 server and the OpenADR VTN render them from there like
any control. A refusal is a 4xx with the field and the reason, recorded in /v1/rejections, and stores nothing.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, Field

from gateway.api.errors import client_peer
from gateway.model import ControlKind, TimeSpan, utc_now
from gateway.overrides.curtailment import Direction, Method
from gateway.overrides.dispatch import (
    CurtailmentError,
    CurtailmentRequest,
    Plan,
    ResourcePlan,
    changed_envelopes,
    plan_curtailment,
)
from gateway.overrides.policy import Enforcement

router = APIRouter(prefix="/v1/curtailments", tags=["curtailments"])


class StepOut(BaseModel):
    start: datetime
    end: datetime
    dispatched_kw: Decimal = Field(description="what the resource was dispatched to in the direction, kW")
    reduction_kw: Decimal
    limit_kw: Decimal = Field(description="what it may still deliver in the direction: dispatch - reduction")
    price: Decimal | None = Field(description="the offer (export) or bid (import) price of its dispatch, per kWh")


class ShareOut(BaseModel):
    resource_id: str
    party_id: str
    location_id: str
    dispatched_kw: Decimal = Field(description="its largest dispatch in the span, kW")
    reduction_kw: Decimal = Field(description="the largest reduction asked of it in the span, kW")
    control_id: str | None = Field(description="the control that carries it; none when it is not curtailed")
    control_kind: ControlKind | None = Field(description="limit, or connect (isolation, hard only)")
    connected_seq: int = Field(description="log sequence of its connection where it is (first-in last-out order)")
    connected_at: datetime | None
    steps: list[StepOut] = Field(description="per piece of the span (cut at the market's interval boundaries)")


class PieceOut(BaseModel):
    start: datetime
    end: datetime
    required_kw: Decimal
    available_kw: Decimal = Field(description="the dispatch of every candidate in the direction")
    allocated_kw: Decimal
    shortfall_kw: Decimal = Field(description="what the DERs behind the location cannot give")


class SkippedOut(BaseModel):
    resource_id: str
    reason: str


class CurtailmentOut(BaseModel):
    curtailment_id: str = Field(description="the same for every request with this location, direction, span, program")
    created: bool = Field(description="false when every control was stored as is already (a repeated request)")
    location_id: str
    direction: Direction
    method: Method
    program_id: str
    enforcement: Enforcement
    span: TimeSpan
    required_kw: Decimal
    shortfall_kw: Decimal = Field(description="the largest shortfall in any piece of the span")
    allocation: list[ShareOut]
    pieces: list[PieceOut]
    cancelled_control_ids: list[str] = Field(description="earlier controls of this curtailment it no longer needs")
    skipped: list[SkippedOut] = Field(description="resources behind the location that cannot take part, and why")
    warnings: list[str]


def _share(plan: ResourcePlan) -> ShareOut:
    resource = plan.resource
    return ShareOut(
        resource_id=resource.id,
        party_id=resource.owner_id,
        location_id=resource.location_id,
        dispatched_kw=plan.dispatched_kw,
        reduction_kw=plan.reduction_kw,
        control_id=plan.control.id if plan.control else None,
        control_kind=plan.control.kind if plan.control else None,
        connected_seq=plan.connected_seq,
        connected_at=plan.connected_at,
        steps=[
            StepOut(
                start=s.start,
                end=s.end,
                dispatched_kw=s.dispatched_kw,
                reduction_kw=s.reduction_kw,
                limit_kw=s.limit_kw,
                price=s.price,
            )
            for s in plan.steps
        ],
    )


def curtailment_out(plan: Plan, *, created: bool) -> CurtailmentOut:
    """The plan as the REST API and ``tgw override curtail --json`` present it."""
    request = plan.request
    return CurtailmentOut(
        curtailment_id=plan.curtailment_id,
        created=created,
        location_id=request.location_id,
        direction=request.direction,
        method=request.method,
        program_id=request.program_id,
        enforcement=request.enforcement,
        span=request.window,
        required_kw=request.reduce_kw,
        shortfall_kw=plan.shortfall_kw,
        allocation=[_share(r) for r in plan.resources],
        pieces=[
            PieceOut(
                start=p.start,
                end=p.end,
                required_kw=p.allocation.required_kw,
                available_kw=p.allocation.available_kw,
                allocated_kw=p.allocation.allocated_kw,
                shortfall_kw=p.allocation.shortfall_kw,
            )
            for p in plan.pieces
        ],
        cancelled_control_ids=[c.id for c in plan.cancelled],
        skipped=[SkippedOut(resource_id=s.resource_id, reason=s.reason) for s in plan.skipped],
        warnings=list(plan.warnings),
    )


@router.post(
    "",
    response_model=CurtailmentOut,
    status_code=201,
    summary="Curtail the DERs behind a constrained location (soft or hard override of market dispatch)",
    responses={
        200: {"description": "a repeat: every control of this allocation was stored already, nothing changed"},
        404: {"description": "unknown location"},
        409: {"description": "the stated enforcement contradicts the program's in the override policy"},
        422: {"description": "invalid request, a span that has ended, or no DER behind the location to curtail"},
    },
)
async def curtail(body: CurtailmentRequest, request: Request, response: Response) -> CurtailmentOut:
    """Share ``reduce_kw`` of reduction in ``direction`` among the DERs at and below ``location_id`` by ``method``
    (filo: the latest connected first; pro_rata: in proportion to dispatch; bid_order: the least valuable dispatch
    first), per piece of the span, from what the market dispatched them to (their party's cleared trades at their
    location, split by rating; their rating when the party holds no position there).

    Each curtailed resource gets one control, stored in one batch: a limit on export_power / import_power (kW) of
    dispatch - reduction, or (hard, when its whole dispatch is removed) connect 0. 2030.5 devices see it as a
    DERControl (opModExpLimW / opModImpLimW / opModConnect), OpenADR VENs as an event. Soft: the customer may
    override it and is settled by the program's terms; hard: an override is refused. The reduction the DERs cannot
    give is the ``shortfall_kw``. Posting the same curtailment again changes nothing; a new reduction or method for
    the same location, direction, span and program revises it."""
    store = request.app.state.store
    try:
        plan = await asyncio.to_thread(plan_curtailment, store, body, request.app.state.override_policy, utc_now())
    except CurtailmentError as exc:
        await asyncio.to_thread(_record, request, exc.reason)
        detail = [{"loc": ["body", *exc.loc], "msg": exc.reason, "type": exc.type}]
        raise HTTPException(exc.status, detail) from None
    envelopes = await asyncio.to_thread(changed_envelopes, store, plan)
    stored = await request.app.state.ingestor.ingest(envelopes, protocol="api", peer=client_peer(request))
    created = any(not m.duplicate for m in stored)
    if not created:
        response.status_code = 200
    return curtailment_out(plan, created=created)


def _record(request: Request, reason: str) -> None:
    """Refused input is recorded (house rule), as the app's error handlers do for other refusals."""
    raw = getattr(request.state, "raw_body", None)
    request.app.state.store.record_rejection(
        protocol="api", peer=client_peer(request), reason=reason, raw=raw, kind="curtailment"
    )
