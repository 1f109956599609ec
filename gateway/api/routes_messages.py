"""/v1/messages: the canonical message log. Post any canonical message; read the log by kind, source, time."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response

from gateway.api.errors import client_peer
from gateway.api.schemas import MessagePage, StoredMessageOut
from gateway.model import Envelope, MessageKind

router = APIRouter(prefix="/v1/messages", tags=["messages"])

MAX_BATCH = 1000


@router.post(
    "",
    response_model=StoredMessageOut,
    status_code=201,
    responses={200: {"description": "already stored (duplicate)"}, 422: {"description": "invalid message"}},
)
async def post_message(envelope: Envelope, request: Request, response: Response) -> StoredMessageOut:
    """Store one canonical message and publish it. Resending the same message returns the stored record (200)."""
    request.state.body_is = "envelope"
    [record] = await request.app.state.ingestor.ingest([envelope], protocol="api", peer=client_peer(request))
    if record.duplicate:
        response.status_code = 200
    return StoredMessageOut.of(record)


@router.post("/batch", response_model=list[StoredMessageOut], status_code=201)
async def post_messages(
    envelopes: Annotated[list[Envelope], Body(min_length=1, max_length=MAX_BATCH)], request: Request
) -> list[StoredMessageOut]:
    """Store up to 1,000 messages atomically: all of them, or none when any is refused."""
    request.state.body_is = "batch"
    records = await request.app.state.ingestor.ingest(envelopes, protocol="api", peer=client_peer(request))
    return [StoredMessageOut.of(r) for r in records]


@router.get("", response_model=MessagePage)
async def list_messages(
    request: Request,
    kind: MessageKind | None = None,
    protocol: Annotated[str | None, Query(max_length=40)] = None,
    peer: Annotated[str | None, Query(max_length=200)] = None,
    entity_id: Annotated[str | None, Query(max_length=400)] = None,
    correlation_id: Annotated[str | None, Query(max_length=200)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> MessagePage:
    """Read the log in order; filter by kind, source and received time; page with ``after_seq``."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, [{"loc": ["query", name], "msg": "give a timezone (e.g. Z)", "type": "timezone"}])
    records = await asyncio.to_thread(
        request.app.state.store.query_messages,
        kind=kind,
        protocol=protocol,
        peer=peer,
        entity_id=entity_id,
        correlation_id=correlation_id,
        since=since,
        until=until,
        after_seq=after_seq,
        limit=limit,
    )
    items = [StoredMessageOut.of(r) for r in records]
    return MessagePage(items=items, next_after_seq=items[-1].seq if len(items) == limit else None)


@router.get("/{message_id}", response_model=StoredMessageOut, responses={404: {"description": "no such message"}})
async def get_message(message_id: str, request: Request) -> StoredMessageOut:
    record = await asyncio.to_thread(request.app.state.store.get_message, message_id)
    if record is None:
        raise HTTPException(404, f"no message with id '{message_id}'")
    return StoredMessageOut.of(record)
