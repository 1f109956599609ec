"""Error responses: a client's mistake is a 4xx with reasons it can act on, never a 500.

Every refusal of client input is also recorded in the store's rejections (house rule: bad input is
recorded), with the peer and the reason.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.ingest import Rejected
from gateway.market.bilateral import TradeRefused
from gateway.store import MessageIdConflict, StoreError

log = logging.getLogger(__name__)


def client_peer(request: Request) -> str:
    """Who is calling: the X-Client-Id header when given (stable across addresses), else the address."""
    explicit = request.headers.get("x-client-id")
    if explicit:
        return explicit[:200]
    return request.client.host if request.client else "unknown"


def _record(request: Request, reason: str, kind: str | None = None) -> None:
    store = getattr(request.app.state, "store", None)
    if store is None:
        return
    try:
        raw = getattr(request.state, "raw_body", None)
        store.record_rejection(protocol="api", peer=client_peer(request), reason=reason, raw=raw, kind=kind)
    except Exception:  # recording must never turn a 4xx into a 500
        log.exception("could not record a rejection")


def _errors_from_validation(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        # pydantic prefixes our validators' reasons with "Value error, "; the reason alone reads better.
        msg = error.get("msg", "").removeprefix("Value error, ")
        item = {"loc": list(error.get("loc", ())), "msg": msg, "type": error.get("type", "")}
        errors.append(item)
    return errors


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = _errors_from_validation(exc)
    _record(request, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})


async def on_rejected(request: Request, exc: Rejected) -> JSONResponse:
    # How the endpoint's body relates to the batch-relative path (index, "payload", field...): an entity
    # endpoint's body is the payload, /v1/messages' body is one envelope, /v1/messages/batch's is the list.
    style = getattr(request.state, "body_is", "payload")
    skip = {"payload": 2, "envelope": 1, "batch": 0}[style]
    errors = [{"loc": ["body", *p.loc[skip:]], "msg": p.msg, "type": p.type} for p in exc.problems]
    _record(request, str(exc))
    return JSONResponse(status_code=422, content={"detail": errors})


_TRADE_STATUS = {"not_found": 422, "conflict": 409, "expired": 410, "unprocessable": 422}


async def on_trade_refused(request: Request, exc: TradeRefused) -> JSONResponse:
    _record(request, str(exc))
    detail = [{"loc": ["body", "tender_id"], "msg": exc.reason, "type": "trade_rule"}]
    return JSONResponse(status_code=_TRADE_STATUS[exc.kind], content={"detail": detail})


async def on_conflict(request: Request, exc: MessageIdConflict) -> JSONResponse:
    _record(request, str(exc))
    return JSONResponse(
        status_code=409, content={"detail": [{"loc": ["body", "message_id"], "msg": str(exc), "type": "conflict"}]}
    )


async def on_store_error(request: Request, exc: StoreError) -> JSONResponse:
    return JSONResponse(
        status_code=400, content={"detail": [{"loc": ["query"], "msg": str(exc), "type": "bad_request"}]}
    )


async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(
        status_code=exc.status_code, content={"detail": exc.detail}, headers=getattr(exc, "headers", None)
    )


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(
        status_code=500, content={"detail": "internal error in the gateway; the operator's log has the details"}
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Rejected, on_rejected)  # type: ignore[arg-type]
    app.add_exception_handler(MessageIdConflict, on_conflict)  # type: ignore[arg-type]
    app.add_exception_handler(TradeRefused, on_trade_refused)  # type: ignore[arg-type]
    app.add_exception_handler(StoreError, on_store_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_unexpected)
