"""Dynamic operating envelopes of a market's network over REST: compute them from the cleared positions, list them.

POST computes the envelopes of every connection point for one interval (or a series) and stores them through the
ingestor in one batch (all or nothing, published on the bus, so 2030.5 devices at those points are notified); the
ids are stable per location and window, so computing the same window again stores nothing new unless an input
changed. GET lists the envelopes that bound the market's network in a window, operator-set and computed alike.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from gateway.api.routes_markets import utc_param
from gateway.market.grid import (
    ENVELOPE_PROTOCOL,
    EnvelopeError,
    EnvelopePlan,
    NotCleared,
    envelopes_in_network,
    plan_envelopes,
)
from gateway.market.runs import MarketError, MarketRunner, UnknownMarket
from gateway.model import Envelope, Market, OperatingEnvelope, UtcDatetime
from gateway.model.controls import EnvelopeSource
from gateway.overrides.envelopes import Sharing

router = APIRouter(prefix="/v1/markets", tags=["markets"])


class EnvelopeRequest(BaseModel):
    start: UtcDatetime = Field(description="start of the (first) market interval")
    end: UtcDatetime | None = Field(default=None, description="end of the last interval; absent: the one interval")
    sharing: Sharing = Field(
        default=Sharing.EQUAL,
        description="how a constrained edge's headroom is shared: equally, or in proportion to each point's rating",
    )


class EnvelopesOut(BaseModel):
    envelopes: list[OperatingEnvelope]
    stored: int = Field(description="envelopes stored as new versions (0 when the same inputs were computed before)")
    points: list[str] = Field(description="the connection points (service points with resources) considered")
    overloaded: dict[str, dict[str, list[str]]] = Field(
        description="per interval start and direction: edges the flows without envelopes already overrun"
    )
    unbounded: list[str] = Field(description="connection points with no rated edge above them: no envelope")


def _market(request: Request, market_id: str) -> Market:
    runner: MarketRunner = request.app.state.market_runner
    try:
        return runner.market(market_id)
    except UnknownMarket as exc:
        raise HTTPException(404, str(exc)) from exc


@router.post(
    "/{market_id}/envelopes",
    response_model=EnvelopesOut,
    status_code=201,
    summary="Compute and store the operating envelopes of the market's connection points for cleared intervals",
    responses={
        200: {"description": "nothing new: the same envelopes were computed before"},
        404: {"description": "unknown market"},
        409: {"description": "an interval has not been cleared yet"},
        422: {"description": "no network, a window off the interval grid, or no connection point"},
    },
)
async def compute(market_id: str, body: EnvelopeRequest, request: Request, response: Response) -> EnvelopesOut:
    market = await asyncio.to_thread(_market, request, market_id)
    try:
        plan: EnvelopePlan = await asyncio.to_thread(
            plan_envelopes, request.app.state.store, market, body.start, body.end, body.sharing
        )
    except NotCleared as exc:
        raise HTTPException(409, str(exc)) from exc
    except (EnvelopeError, MarketError) as exc:
        raise HTTPException(422, str(exc)) from exc
    stored = await request.app.state.ingestor.ingest(
        [Envelope(payload=e) for e in plan.envelopes], protocol=ENVELOPE_PROTOCOL, peer=market.id
    )
    new = sum(not m.duplicate for m in stored)
    if not new:
        response.status_code = 200
    return EnvelopesOut(
        envelopes=[m.envelope.payload for m in stored],  # as stored: an unchanged envelope keeps its created_at
        stored=new,
        points=plan.points,
        overloaded=plan.overloaded,
        unbounded=plan.unbounded,
    )


@router.get(
    "/{market_id}/envelopes",
    response_model=list[OperatingEnvelope],
    summary="Operating envelopes in the market's network with a period in [start, end)",
    responses={404: {"description": "unknown market"}},
)
async def listed(
    market_id: str,
    request: Request,
    start: Annotated[datetime | None, Query(description="only envelopes with a period ending after this")] = None,
    end: Annotated[datetime | None, Query(description="only envelopes with a period starting before this")] = None,
    source: Annotated[EnvelopeSource | None, Query(description="operator or computed; absent: both")] = None,
) -> list[OperatingEnvelope]:
    since, until = utc_param(start, "start"), utc_param(end, "end")
    market = await asyncio.to_thread(_market, request, market_id)
    try:
        return await asyncio.to_thread(envelopes_in_network, request.app.state.store, market, since, until, source)
    except ValueError as exc:  # a network root that is not stored
        raise HTTPException(422, str(exc)) from exc
