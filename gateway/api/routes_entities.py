"""Current-state endpoints, one router per canonical kind (/v1/parties, /v1/tenders, ...).

POST stores a new version of an object through the same ingest path as every other edge (so it is checked,
logged and published); GET reads the current state. Routers are built by one factory so that every kind
behaves the same; each kind's indexed columns become typed query filters in the OpenAPI docs.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from gateway.api.errors import client_peer
from gateway.api.schemas import StoredMessageOut
from gateway.ingest import DERIVED_KINDS
from gateway.model import (
    PAYLOAD_TYPES,
    CanonicalModel,
    Control,
    ControlStatus,
    Envelope,
    MessageKind,
    Tender,
    TenderStatus,
    Transaction,
)
from gateway.store import STATE_FILTERS

PATHS: dict[MessageKind, str] = {
    MessageKind.PARTY: "parties",
    MessageKind.LOCATION: "locations",
    MessageKind.RESOURCE: "resources",
    MessageKind.TENDER: "tenders",
    MessageKind.TRANSACTION: "transactions",
    MessageKind.POSITION: "positions",
    MessageKind.DELIVERY: "deliveries",
    MessageKind.SETTLEMENT_LINE: "settlement-lines",
    MessageKind.CONTROL: "controls",
    MessageKind.OPERATING_ENVELOPE: "operating-envelopes",
    MessageKind.OVERRIDE: "overrides",
    MessageKind.RESPONSE: "responses",
    MessageKind.MARKET: "markets",
    MessageKind.SUBSCRIPTION: "subscriptions",
    MessageKind.CLEARING: "clearings",
}

READ_ONLY = DERIVED_KINDS
"""Kinds only the gateway itself writes (market results, positions, bills): no POST route for them."""


async def store_payload(request: Request, response: Response, payload: CanonicalModel) -> StoredMessageOut:
    request.state.body_is = "payload"
    envelope = Envelope(payload=payload)  # type: ignore[arg-type]
    if isinstance(payload, Transaction):  # an accepted tender: checked against what is left, positions refreshed
        desk = request.app.state.bilateral
        [record] = await desk.trade([payload], [envelope], protocol="api", peer=client_peer(request))
    else:
        [record] = await request.app.state.ingestor.ingest([envelope], protocol="api", peer=client_peer(request))
    if record.duplicate:
        response.status_code = 200
    return StoredMessageOut.of(record)


async def load(request: Request, kind: MessageKind, entity_id: str) -> Any:
    found = await asyncio.to_thread(request.app.state.store.get, kind, entity_id)
    if found is None:
        raise HTTPException(404, f"no {kind.value} with id '{entity_id}'")
    return found


def _list_endpoint(kind: MessageKind) -> Callable[..., Awaitable[list[Any]]]:
    filters = STATE_FILTERS[kind]

    async def list_objects(request: Request, limit: int, offset: int, **given: str | None) -> list[Any]:
        chosen = {name: value for name, value in given.items() if value is not None}
        return await asyncio.to_thread(request.app.state.store.list, kind, filters=chosen, limit=limit, offset=offset)

    parameters = [
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
        inspect.Parameter(
            "limit", inspect.Parameter.KEYWORD_ONLY, default=100, annotation=Annotated[int, Query(ge=1, le=1000)]
        ),
        inspect.Parameter("offset", inspect.Parameter.KEYWORD_ONLY, default=0, annotation=Annotated[int, Query(ge=0)]),
        *(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[str | None, Query(max_length=200)],
            )
            for name in filters
        ),
    ]
    list_objects.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    list_objects.__doc__ = f"Current {kind.value} objects in id order" + (
        f", filtered by {', '.join(filters)}." if filters else "."
    )
    return list_objects


def entity_router(kind: MessageKind) -> APIRouter:
    model = PAYLOAD_TYPES[kind]
    path = PATHS[kind]
    router = APIRouter(prefix=f"/v1/{path}", tags=[path])

    router.add_api_route(
        "",
        _list_endpoint(kind),
        methods=["GET"],
        response_model=list[model],  # type: ignore[valid-type]
        summary=f"List {path}",
    )

    async def get_object(entity_id: str, request: Request) -> Any:
        return await load(request, kind, entity_id)

    router.add_api_route(
        "/{entity_id}",
        get_object,
        methods=["GET"],
        response_model=model,
        summary=f"Get one {kind.value}",
        responses={404: {"description": f"no such {kind.value}"}},
    )

    async def post_object(payload: model, request: Request, response: Response) -> StoredMessageOut:  # type: ignore[valid-type]
        return await store_payload(request, response, payload)

    # The body type is only known at run time; with postponed annotations FastAPI needs it set explicitly.
    if kind in READ_ONLY:
        return router
    post_object.__annotations__["payload"] = model
    post_object.__doc__ = (
        f"Create or update a {kind.value} (a new version of the object with that id). Posting identical content"
        " again returns the stored record with status 200 and duplicate=true."
    )
    router.add_api_route(
        "",
        post_object,
        methods=["POST"],
        response_model=StoredMessageOut,
        status_code=201,
        summary=f"Create or update a {kind.value}",
        responses={200: {"description": "identical content already stored"}, 422: {"description": "invalid"}},
    )
    return router


def cancel_router() -> APIRouter:
    """Cancelling is a new version with a cancelled status: the log keeps every version, nothing is deleted."""
    router = APIRouter(tags=["tenders", "controls"])

    @router.post("/v1/tenders/{entity_id}/cancel", response_model=StoredMessageOut, summary="Cancel an open tender")
    async def cancel_tender(entity_id: str, request: Request, response: Response) -> StoredMessageOut:
        tender: Tender = await load(request, MessageKind.TENDER, entity_id)
        if tender.status not in (TenderStatus.OPEN, TenderStatus.PARTIALLY_FILLED, TenderStatus.INDICATIVE):
            raise HTTPException(409, f"tender '{entity_id}' is {tender.status.value} and can no longer be cancelled")
        cancelled = Tender.model_validate({**tender.model_dump(), "status": TenderStatus.CANCELLED})
        return await store_payload(request, response, cancelled)

    @router.post("/v1/controls/{entity_id}/cancel", response_model=StoredMessageOut, summary="Cancel a control")
    async def cancel_control(entity_id: str, request: Request, response: Response) -> StoredMessageOut:
        control: Control = await load(request, MessageKind.CONTROL, entity_id)
        if control.status in (ControlStatus.CANCELLED, ControlStatus.COMPLETED, ControlStatus.SUPERSEDED):
            raise HTTPException(409, f"control '{entity_id}' is {control.status.value} and can no longer be cancelled")
        update = {"status": ControlStatus.CANCELLED, "revision": control.revision + 1}
        cancelled = Control.model_validate({**control.model_dump(), **update})
        return await store_payload(request, response, cancelled)

    return router
