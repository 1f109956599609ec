"""The EI/CTS service: TeMIX parties tender, cancel, trade, ask for their positions and report deliveries over
HTTP, in EI 1.0 XML (application/xml) or CTS JSON (application/json); each answer comes in the request's format.

Every request is one EI message posted to ``/ei/v1/messages`` (or to the payload's own path, e.g.
``/ei/v1/eiCreateTender``, which must match the message). The caller is identified by a bearer token or a
client-certificate fingerprint (see ``identity``); a message naming another party as its sender, or acting on
another party's tender, is refused with 403. What the message carries goes through the gateway's one ingest path
(references, the market's rules, stored before the answer), so a tender refused here is refused for the same
reason as on any other edge, and answered with an EI response code: 400 malformed, 403 not yours, 404 unknown
party/market/tender, 409 no longer open, 410 expired, 422 refused by a rule. Nothing of a refused message is
stored; the refusal is recorded (GET /v1/rejections).

``GET /ei/v1/ticker`` is the TeMIX ticker: the open tenders of a market for its next intervals, as an
eiDistributeTender.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from types import ModuleType
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response

from gateway.api.tls import peer_certificate_der, sha256_fingerprint
from gateway.ingest import Ingestor, Rejected
from gateway.market.bilateral import BilateralDesk, TradeRefused
from gateway.market.runs import MarketRunner
from gateway.model import (
    Market,
    MessageKind,
    Party,
    Tender,
    TenderStatus,
    received,
    utc_now,
)
from gateway.model.intervals import interval_end
from gateway.protocols.ei import json_codec, xml_codec
from gateway.protocols.ei.identity import PartyDirectory
from gateway.protocols.ei.messages import (
    EiDecodeError,
    EiMessage,
    EiResponse,
    Payload,
    PositionQuery,
    ResponseCode,
)
from gateway.protocols.ei.oauth import issuer
from gateway.protocols.ei.ticker import TICKER_INTERVALS, open_tenders, ticker_message
from gateway.store import Store

PROTOCOL = "ei"
XML_TYPES = ("application/xml", "text/xml")
JSON_TYPE = "application/json"
MAX_BODY = 4 * 1024 * 1024

_ANSWER: dict[Payload, Payload] = {
    Payload.CREATE_TENDER: Payload.CREATED_TENDER,
    Payload.CANCEL_TENDER: Payload.CANCELED_TENDER,
    Payload.CREATE_TRANSACTION: Payload.CREATED_TRANSACTION,
    Payload.REQUEST_POSITION: Payload.REPLY_POSITION,
    Payload.REQUEST_TENDER: Payload.REPLY_TENDER,
    Payload.CREATE_DELIVERY: Payload.CREATED_DELIVERY,
    Payload.CREATE_QUOTE: Payload.CREATED_QUOTE,
    Payload.REGISTER_PARTY: Payload.REGISTERED_PARTY,
}


_TRADE_CODES = {
    "not_found": ResponseCode.NOT_FOUND,
    "conflict": ResponseCode.CONFLICT,
    "expired": ResponseCode.EXPIRED,
    "unprocessable": ResponseCode.UNPROCESSABLE,
}


class EiRefusal(Exception):
    def __init__(self, code: ResponseCode, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _code_for(rejected: Rejected) -> ResponseCode:
    """The EI code for an ingest refusal: unknown references are 404, an expiry 410, any other rule 422."""
    types = {p.type for p in rejected.problems}
    messages = " ".join(p.msg for p in rejected.problems)
    if types == {"reference_error"} and "unknown" in messages:
        return ResponseCode.NOT_FOUND
    if "expired" in messages:
        return ResponseCode.EXPIRED
    return ResponseCode.UNPROCESSABLE


class EiService:
    """The TeMIX lifecycle on top of the store: what each request payload does, whatever its encoding."""

    def __init__(
        self,
        store: Store,
        ingestor: Ingestor,
        runner: MarketRunner | None = None,
        desk: BilateralDesk | None = None,
    ) -> None:
        self.store = store
        self.ingestor = ingestor
        self.runner = runner or MarketRunner(store)
        self.desk = desk or BilateralDesk(ingestor, self.runner)
        self.directory = PartyDirectory(store)

    async def handle(self, message: EiMessage, party_id: str) -> EiMessage:
        if message.party_id is not None and message.party_id != party_id:
            raise EiRefusal(
                ResponseCode.NOT_AUTHORIZED,
                f"the message is sent as party '{message.party_id}' but the credentials are '{party_id}''s",
            )
        handler: dict[Payload, Callable[[EiMessage, str], object]] = {
            Payload.CREATE_TENDER: self._create_tender,
            Payload.CANCEL_TENDER: self._cancel_tender,
            Payload.CREATE_TRANSACTION: self._create_transaction,
            Payload.REQUEST_POSITION: self._request_position,
            Payload.REQUEST_TENDER: self._request_tender,
            Payload.CREATE_DELIVERY: self._create_delivery,
            Payload.REGISTER_PARTY: self._register_party,
            Payload.CREATE_QUOTE: self._create_quote,
        }
        run = handler.get(message.payload)
        if run is None:
            raise EiRefusal(ResponseCode.BAD_REQUEST, f"{message.payload.value} is not a request this service accepts")
        return await run(message, party_id)  # type: ignore[no-any-return, misc]

    async def _ingest(self, objects: list, party_id: str, request_id: str | None) -> None:  # type: ignore[type-arg]
        envelopes = received(objects, protocol=PROTOCOL, peer=party_id, correlation_id=request_id)
        try:
            await self.ingestor.ingest(envelopes, protocol=PROTOCOL, peer=party_id)
        except Rejected as exc:
            raise EiRefusal(_code_for(exc), "; ".join(_describe(p.loc, p.msg) for p in exc.problems)) from exc

    def _own(self, objects: list, party_id: str, what: str) -> None:  # type: ignore[type-arg]
        for obj in objects:
            if obj.party_id != party_id:
                raise EiRefusal(
                    ResponseCode.NOT_AUTHORIZED, f"{what} '{obj.id}' belongs to party '{obj.party_id}', not to you"
                )

    async def _create_tender(self, message: EiMessage, party_id: str) -> EiMessage:
        if len(message.tenders) != 1:
            raise EiRefusal(ResponseCode.BAD_REQUEST, "an eiCreateTender carries exactly one tender")
        self._own(message.tenders, party_id, "tender")
        first = message.tenders[0]
        ended = interval_end(first.rows[0]["start"], first.resolution, first.time_zone)
        if ended <= utc_now():  # the market rules allow spot tenders (the current interval), not past ones
            raise EiRefusal(
                ResponseCode.EXPIRED,
                f"tender '{first.id}' offers the interval starting {first.rows[0]['start'].isoformat()}, which ended"
                f" at {ended.isoformat()}: nothing can be delivered in it any more",
            )
        # The gateway, not the sender, says when a tender arrived (a backdated one would slip past a closed gate)
        # and that it is open.
        arrived = message.tenders[0].model_copy(update={"created_at": utc_now(), "status": TenderStatus.OPEN})
        await self._ingest([arrived], party_id, message.request_id)
        return self._answer(message, tender_ids=[arrived.id])

    async def _create_quote(self, message: EiMessage, party_id: str) -> EiMessage:
        """A TeMIX quote: an indicative price for a product, stored as a tender with status indicative, checked by
        the market's rules like a tender, visible with the party's tenders, and never accepted or cleared."""
        if len(message.tenders) != 1:
            raise EiRefusal(ResponseCode.BAD_REQUEST, "an eiCreateQuote carries exactly one quote")
        self._own(message.tenders, party_id, "quote")
        quote = message.tenders[0].model_copy(update={"created_at": utc_now(), "status": TenderStatus.INDICATIVE})
        existing = await asyncio.to_thread(self.store.get, MessageKind.TENDER, quote.id)
        if isinstance(existing, Tender) and existing.status is not TenderStatus.INDICATIVE:
            raise EiRefusal(ResponseCode.CONFLICT, f"'{quote.id}' is a tender, not a quote; use another quoteID")
        await self._ingest([quote], party_id, message.request_id)
        return self._answer(message, tender_ids=[quote.id])

    async def _cancel_tender(self, message: EiMessage, party_id: str) -> EiMessage:
        if not message.tender_ids:
            raise EiRefusal(ResponseCode.BAD_REQUEST, "an eiCancelTender names at least one tender")
        cancelled: list[Tender] = []
        for tender_id in message.tender_ids:
            tender = await asyncio.to_thread(self.store.get, MessageKind.TENDER, tender_id)
            if not isinstance(tender, Tender):
                raise EiRefusal(ResponseCode.NOT_FOUND, f"unknown tender '{tender_id}'")
            self._own([tender], party_id, "tender")
            if tender.status not in (TenderStatus.OPEN, TenderStatus.PARTIALLY_FILLED, TenderStatus.INDICATIVE):
                raise EiRefusal(ResponseCode.CONFLICT, f"tender '{tender_id}' is {tender.status.value}")
            cancelled.append(tender.model_copy(update={"status": TenderStatus.CANCELLED}))
        await self._ingest(cancelled, party_id, message.request_id)
        return self._answer(message, tender_ids=message.tender_ids, cancel_reason=message.cancel_reason)

    async def _create_transaction(self, message: EiMessage, party_id: str) -> EiMessage:
        """A bilateral trade: the sender accepts a tender (or reports a trade) with a counterparty."""
        if not message.transactions:
            raise EiRefusal(ResponseCode.BAD_REQUEST, "an eiCreateTransaction carries a transaction")
        self._own(message.transactions, party_id, "transaction")
        envelopes = received(message.transactions, protocol=PROTOCOL, peer=party_id, correlation_id=message.request_id)
        try:
            await self.desk.trade(message.transactions, envelopes, protocol=PROTOCOL, peer=party_id)
        except TradeRefused as exc:
            raise EiRefusal(_TRADE_CODES[exc.kind], exc.reason) from exc
        except Rejected as exc:
            raise EiRefusal(_code_for(exc), "; ".join(_describe(p.loc, p.msg) for p in exc.problems)) from exc
        return self._answer(message, transactions=message.transactions)

    async def _request_position(self, message: EiMessage, party_id: str) -> EiMessage:
        query = message.query or PositionQuery()
        filters = {"party_id": party_id} | ({"market_id": query.market_id} if query.market_id else {})
        window = {"interval_start": (_iso(query.start), _iso(query.end))}
        positions = await asyncio.to_thread(
            self.store.list, MessageKind.POSITION, filters=filters, ranges=window, limit=None
        )
        return self._answer(message, positions=sorted(positions, key=lambda p: (p.interval.start, p.location_id)))

    async def _request_tender(self, message: EiMessage, party_id: str) -> EiMessage:
        query = message.query or PositionQuery()
        if query.market_id is None:
            raise EiRefusal(ResponseCode.BAD_REQUEST, "an eiRequestTender names its market")
        tenders = await asyncio.to_thread(open_tenders, self.store, query.market_id, query.start, query.end)
        return self._answer(message, tenders=tenders)

    async def _create_delivery(self, message: EiMessage, party_id: str) -> EiMessage:
        if not message.deliveries:
            raise EiRefusal(ResponseCode.BAD_REQUEST, "an eiCreateDelivery carries at least one delivery")
        self._own(message.deliveries, party_id, "delivery")
        await self._ingest(message.deliveries, party_id, message.request_id)
        return self._answer(message)

    async def _register_party(self, message: EiMessage, party_id: str) -> EiMessage:
        """A party (re)registers: it may update its name and roles. Its credentials stay what the operator set:
        identities sent on the wire are ignored (a party must not mint its own token), and never echoed back."""
        if message.party is None:
            raise EiRefusal(ResponseCode.BAD_REQUEST, "an eiRegisterParty carries the party's registration")
        if message.party.id != party_id:
            raise EiRefusal(ResponseCode.NOT_AUTHORIZED, f"you are '{party_id}', not '{message.party.id}'")
        stored = await asyncio.to_thread(self.store.get, MessageKind.PARTY, party_id)
        assert isinstance(stored, Party)  # the directory found the caller among the stored parties
        updated = stored.model_copy(update={"name": message.party.name, "roles": message.party.roles})
        if updated != stored:
            await self._ingest([updated], party_id, message.request_id)
        return self._answer(message, party=updated.model_copy(update={"identities": {}}))

    @staticmethod
    def _answer(message: EiMessage, **carried: object) -> EiMessage:
        return EiMessage(
            payload=_ANSWER[message.payload],
            request_id=message.request_id,
            party_id=message.party_id,
            counterparty_id=message.counterparty_id,
            response=EiResponse(ResponseCode.OK, "OK", message.request_id),
            **carried,  # type: ignore[arg-type]
        )


def _iso(instant: datetime | None) -> str | None:
    return None if instant is None else instant.isoformat()


def _describe(loc: tuple[str | int, ...], msg: str) -> str:
    path = ".".join(str(part) for part in loc[2:] if part != "payload")
    return f"{path}: {msg}" if path else msg


# -- HTTP ---------------------------------------------------------------------------------------------------------


router = APIRouter(prefix="/ei/v1", tags=["ei"])


class _Wire:
    """One encoding of a request and its answer: CTS JSON, or EI XML in the namespace set the request used."""

    def __init__(self, module: ModuleType, media: str, dialect: xml_codec.Dialect | None = None) -> None:
        self.module, self.media, self.dialect = module, media, dialect

    def decode(self, body: bytes) -> EiMessage:
        if self.module is xml_codec:
            message, self.dialect = xml_codec.decode_with_dialect(body)
            return message
        return json_codec.decode(body)

    def encode(self, message: EiMessage) -> bytes:
        if self.module is xml_codec:
            return xml_codec.encode(message, self.dialect or xml_codec.Dialect.EI10)
        return json_codec.encode(message)


def _wire(content_type: str | None) -> _Wire | None:
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in XML_TYPES:
        return _Wire(xml_codec, XML_TYPES[0])
    if kind == JSON_TYPE:
        return _Wire(json_codec, JSON_TYPE)
    return None


def _reply(wire: _Wire, message: EiMessage, status: int = 200) -> Response:
    try:
        body = wire.encode(message)
    except ValueError as exc:  # stored values this encoding cannot carry (e.g. more digits than CTS scales allow)
        failure = EiMessage(
            payload=message.payload,
            request_id=message.request_id,
            response=EiResponse(ResponseCode.INTERNAL, f"the answer cannot be encoded: {exc}", message.request_id),
        )
        return Response(wire.encode(failure), status_code=500, media_type=wire.media)
    return Response(body, status_code=status, media_type=wire.media)


def _error(wire: _Wire, payload: Payload, code: ResponseCode, text: str, request_id: str | None) -> Response:
    answer = _ANSWER.get(payload, Payload.CREATED_TENDER)
    message = EiMessage(payload=answer, request_id=request_id, response=EiResponse(code, text, request_id))
    return _reply(wire, message, status=int(code) if int(code) < 500 else 500)


def _service(request: Request) -> EiService:
    service = getattr(request.app.state, "ei", None)
    if service is None:
        service = EiService(
            request.app.state.store,
            request.app.state.ingestor,
            getattr(request.app.state, "market_runner", None),
            getattr(request.app.state, "bilateral", None),
        )
        request.app.state.ei = service
    return service


def _caller(request: Request, service: EiService, authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
        return issuer(request).party(token) or service.directory.by_token(token)
    der = peer_certificate_der(request)  # mutual TLS at the gateway itself (tgw serve --tls-client-ca)
    if der is not None:
        return service.directory.by_certificate(sha256_fingerprint(der))
    header = getattr(request.app.state, "ei_cert_header", None)
    if header:
        fingerprint = request.headers.get(header)
        if fingerprint:
            return service.directory.by_certificate(fingerprint)
    return None


async def _handle(request: Request, expected: Payload | None, authorization: str | None) -> Response:
    wire = _wire(request.headers.get("content-type"))
    service = _service(request)
    store: Store = request.app.state.store
    body = await request.body()
    if wire is None:
        return Response(
            f"content-type must be {XML_TYPES[0]} (EI 1.0 XML) or {JSON_TYPE} (CTS JSON)".encode(),
            status_code=415,
            media_type="text/plain",
        )
    party_id = await asyncio.to_thread(_caller, request, service, authorization)
    payload = expected or Payload.CREATE_TENDER
    if party_id is None:
        return _error(wire, payload, ResponseCode.NOT_AUTHORIZED, "unknown or missing credentials", None)
    if len(body) > MAX_BODY:
        return _error(wire, payload, ResponseCode.BAD_REQUEST, f"body larger than {MAX_BODY} bytes", None)
    try:
        message = wire.decode(body)
    except EiDecodeError as exc:
        await asyncio.to_thread(
            store.record_rejection,
            protocol=PROTOCOL,
            peer=party_id,
            reason=str(exc),
            raw=body[:4096].decode(errors="replace"),
        )
        return _error(wire, payload, exc.code, str(exc), None)
    if expected is not None and message.payload is not expected:
        text = f"this path takes {expected.value}, the message is {message.payload.value}"
        return _error(wire, message.payload, ResponseCode.BAD_REQUEST, text, message.request_id)
    try:
        answer = await service.handle(message, party_id)
    except EiRefusal as exc:
        await asyncio.to_thread(
            store.record_rejection, protocol=PROTOCOL, peer=party_id, reason=exc.description, kind=None
        )
        return _error(wire, message.payload, exc.code, exc.description, message.request_id)
    return _reply(wire, answer)


@router.post("/messages", summary="Any EI/CTS request message (XML or JSON); the answer comes in the same format")
async def post_message(request: Request, authorization: Annotated[str | None, Header()] = None) -> Response:
    return await _handle(request, None, authorization)


def _payload_route(payload: Payload) -> Callable[..., object]:
    async def post_payload(request: Request, authorization: Annotated[str | None, Header()] = None) -> Response:
        return await _handle(request, payload, authorization)

    post_payload.__doc__ = f"An {payload.value} message (EI 1.0 XML or CTS JSON)."
    return post_payload


for _payload in _ANSWER:
    router.add_api_route(f"/{_payload.value}", _payload_route(_payload), methods=["POST"], summary=_payload.value)


@router.get(
    "/ticker",
    summary="Open tenders of a market for its next intervals, as an eiDistributeTender (204: none open)",
)
async def ticker(
    request: Request,
    market_id: Annotated[str, Query(max_length=100)],
    intervals: Annotated[int, Query(ge=1, le=288)] = TICKER_INTERVALS,
    format: Annotated[str, Query(pattern="^(xml|json)$")] = "json",
) -> Response:
    store: Store = request.app.state.store
    market = await asyncio.to_thread(store.get, MessageKind.MARKET, market_id)
    wire = _Wire(xml_codec, XML_TYPES[0]) if format == "xml" else _Wire(json_codec, JSON_TYPE)
    if not isinstance(market, Market):
        return _error(wire, Payload.REQUEST_TENDER, ResponseCode.NOT_FOUND, f"unknown market '{market_id}'", None)
    message = await asyncio.to_thread(ticker_message, store, market, utc_now(), intervals)
    if not message.tenders:  # an eiDistributeTender carries at least one tender
        return Response(status_code=204)
    return _reply(wire, message)
