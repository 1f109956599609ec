"""Market operations over REST: run a call auction, read its results, positions and settlements.

Markets themselves are created and edited like any canonical object (POST /v1/markets); these routes act on one.
Runs happen off the event loop; what they store is published on the bus like everything else.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from gateway.market.billing import settle_window
from gateway.market.runs import GateOpen, MarketError, MarketRunner, RunResult, UnknownMarket
from gateway.model import Clearing, Interval, MessageKind, Position, SettlementLine, UtcDatetime, utc_now

router = APIRouter(prefix="/v1/markets", tags=["markets"])


class ClearRequest(BaseModel):
    interval_start: UtcDatetime | None = Field(
        default=None, description="the interval to clear; absent: every interval whose gate has closed (last 24 h)"
    )
    early: bool = Field(default=False, description="clear before the gate closes (shuts out later tenders)")


class RunOut(BaseModel):
    created: bool = Field(description="false when the interval had been cleared before: the stored result")
    clearing: Clearing
    transaction_ids: list[str]
    skipped: dict[str, int] = Field(description="tenders left out of the book, by reason")


class ClearOut(BaseModel):
    runs: list[RunOut]


class SettleRequest(BaseModel):
    start: UtcDatetime
    end: UtcDatetime


class Unsettled(BaseModel):
    party_id: str
    location_id: str
    interval: Interval


class UnquantifiedOverride(BaseModel):
    override_id: str
    reason: str


class SettleOut(BaseModel):
    lines: list[SettlementLine]
    totals: dict[str, Decimal] = Field(description="per party: what it pays (negative: is paid)")
    stored: int = Field(description="lines stored by this run (0 when the same data was settled before)")
    missing_deliveries: list[Unsettled] = Field(description="positions with no metered delivery: not settled")
    unpriced: list[Unsettled] = Field(
        description="deliveries and override deviations in intervals the market has not cleared: not settled"
    )
    unquantified_overrides: list[UnquantifiedOverride] = Field(
        default_factory=list, description="overrides that count here but whose quantity nobody can say: not charged"
    )


def _window(start: datetime | None, end: datetime | None) -> dict[str, tuple[str | None, str | None]]:
    return {"interval_start": (_iso(start, "start"), _iso(end, "end"))}


def utc_param(instant: datetime | None, name: str) -> datetime | None:
    """A query time in UTC; a time without an offset is ambiguous and refused (422)."""
    if instant is None:
        return None
    if instant.tzinfo is None:
        raise HTTPException(422, f"{name} needs a UTC offset, e.g. 2030-01-07T00:00:00Z")
    return instant.astimezone(UTC)


def _iso(instant: datetime | None, name: str) -> str | None:
    """UTC ISO text as the store indexes it."""
    found = utc_param(instant, name)
    return None if found is None else found.isoformat()


def _unsettled(item: tuple[str, str, Interval]) -> Unsettled:
    party_id, location_id, interval = item
    return Unsettled(party_id=party_id, location_id=location_id, interval=interval)


def _runner(request: Request) -> MarketRunner:
    return request.app.state.market_runner  # type: ignore[no-any-return]


def _http_error(exc: MarketError) -> HTTPException:
    if isinstance(exc, UnknownMarket):
        return HTTPException(404, str(exc))
    if isinstance(exc, GateOpen):
        return HTTPException(409, str(exc))
    return HTTPException(422, str(exc))


def _out(result: RunResult) -> RunOut:
    return RunOut(
        created=result.created,
        clearing=result.clearing,
        transaction_ids=[t.id for t in result.transactions],
        skipped=result.skipped,
    )


@router.post(
    "/{market_id}/clear",
    response_model=ClearOut,
    status_code=201,
    summary="Run the call auction of one interval, or of every interval whose gate has closed",
    responses={200: {"description": "nothing new: every interval asked for was cleared before"}, 404: {}, 409: {}},
)
async def clear_market(market_id: str, body: ClearRequest, request: Request, response: Response) -> ClearOut:
    runner = _runner(request)

    def run() -> list[RunResult]:
        if body.interval_start is not None:
            return [runner.clear_interval(market_id, body.interval_start, early=body.early)]
        market = runner.market(market_id)
        now = utc_now()
        return [runner.clear_interval(market_id, i.start, now=now) for i in runner.due(market, now)]

    try:
        results = await asyncio.to_thread(run)
    except MarketError as exc:
        raise _http_error(exc) from exc
    for result in results:
        request.app.state.bus.publish([m for m in result.stored if not m.duplicate])
    if not any(r.created for r in results):
        response.status_code = 200
    return ClearOut(runs=[_out(r) for r in results])


@router.get("/{market_id}/results", response_model=list[Clearing], summary="Clearing results in time order")
async def results(
    market_id: str,
    request: Request,
    start: Annotated[datetime | None, Query(description="first interval start (inclusive)")] = None,
    end: Annotated[datetime | None, Query(description="last interval start (exclusive)")] = None,
    curves: Annotated[bool, Query(description="include supply and demand curves")] = False,
) -> list[Clearing]:
    runner = _runner(request)
    window = _window(start, end)["interval_start"]
    try:
        await asyncio.to_thread(runner.market, market_id)
    except MarketError as exc:
        raise _http_error(exc) from exc
    since, until = (datetime.fromisoformat(t) if t else None for t in window)
    found = await asyncio.to_thread(runner.clearings, market_id, since=since, until=until)
    if curves:
        return found
    return [c.model_copy(update={"supply_curve": [], "demand_curve": []}) for c in found]


@router.get(
    "/{market_id}/results/{interval_start}",
    response_model=Clearing,
    summary="One interval's clearing, with its supply and demand curves",
    responses={404: {}},
)
async def result(market_id: str, interval_start: datetime, request: Request) -> Clearing:
    runner = _runner(request)
    _iso(interval_start, "interval_start")
    try:
        market = await asyncio.to_thread(runner.market, market_id)
        interval = runner.interval(market, interval_start.astimezone(UTC))
    except MarketError as exc:
        raise _http_error(exc) from exc
    found = await asyncio.to_thread(runner.clearings, market_id, since=interval.start, until=interval.end)
    if not found:
        raise HTTPException(404, f"market '{market_id}' has not cleared {interval.start.isoformat()}")
    return found[0]


@router.get("/{market_id}/positions", response_model=list[Position], summary="Positions per party and interval")
async def positions(
    market_id: str,
    request: Request,
    party_id: Annotated[str | None, Query(max_length=200)] = None,
    start: Annotated[datetime | None, Query(description="first interval start (inclusive)")] = None,
    end: Annotated[datetime | None, Query(description="last interval start (exclusive)")] = None,
) -> list[Position]:
    filters = {"market_id": market_id} | ({"party_id": party_id} if party_id else {})
    window = _window(start, end)
    store = request.app.state.store
    found = await asyncio.to_thread(store.list, MessageKind.POSITION, filters=filters, ranges=window, limit=None)
    return sorted(found, key=lambda p: (p.interval.start, p.party_id, p.location_id))


@router.post(
    "/{market_id}/settle",
    response_model=SettleOut,
    summary="Settle metered deliveries against positions for the intervals starting in [start, end)",
    responses={404: {}, 422: {}},
)
async def settle(market_id: str, body: SettleRequest, request: Request) -> SettleOut:
    try:
        report, stored = await asyncio.to_thread(
            settle_window, request.app.state.store, market_id, body.start, body.end, request.app.state.override_policy
        )
    except MarketError as exc:
        raise _http_error(exc) from exc
    except ValueError as exc:  # data the settlement cannot price consistently (mixed currencies, double meters)
        raise HTTPException(422, str(exc)) from exc
    new = [m for m in stored if not m.duplicate]
    request.app.state.bus.publish(new)
    return SettleOut(
        lines=report.lines,
        totals=report.totals,
        stored=len(new),
        missing_deliveries=[
            Unsettled(party_id=p, location_id=loc, interval=i) for p, loc, i in report.missing_deliveries
        ],
        unpriced=[Unsettled(party_id=p, location_id=loc, interval=i) for p, loc, i in report.unpriced],
        unquantified_overrides=[UnquantifiedOverride(override_id=o, reason=r) for o, r in report.unquantified],
    )


@router.get("/{market_id}/settlements", response_model=list[SettlementLine], summary="Stored settlement lines")
async def settlements(
    market_id: str,
    request: Request,
    party_id: Annotated[str | None, Query(max_length=200)] = None,
    start: Annotated[datetime | None, Query(description="first interval start (inclusive)")] = None,
    end: Annotated[datetime | None, Query(description="last interval start (exclusive)")] = None,
) -> list[SettlementLine]:
    filters = {"market_id": market_id} | ({"party_id": party_id} if party_id else {})
    window = _window(start, end)
    store = request.app.state.store
    found = await asyncio.to_thread(store.list, MessageKind.SETTLEMENT_LINE, filters=filters, ranges=window, limit=None)
    return sorted(found, key=lambda line: (line.interval.start, line.party_id, line.kind.value, line.id))
