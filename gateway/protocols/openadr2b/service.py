"""The VTN's simpleHTTP endpoints, /OpenADR2/Simple/2.0b/{EiRegisterParty, EiEvent, EiReport, EiOpt, OadrPoll}.

Each request is one signed-or-not oadrPayload. The order of checks is the protocol's: the body is bounded and
decoded against the 2.0b schema (454 with the schema's reason otherwise), the payload must belong to the service
it was posted to (453), the VEN is identified by its client certificate (directly, under uvicorn's mutual TLS,
or as a SHA-256 fingerprint forwarded by a trusted proxy in the configured header; only a VTN explicitly run
insecure lets a VEN name itself), a signature is verified when the VEN or the VTN requires one (with replay
protection), and then the VTN acts (see ``vtn``). Every refusal is an oadrResponse with its code and a readable
description, is recorded (GET /v1/rejections), and changes no state. HTTP status is 200 for answers the
protocol defines, as 2.0b VENs expect; 413 for an oversized body.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api.tls import peer_certificate_der
from gateway.protocols.openadr2b import codec
from gateway.protocols.openadr2b.fingerprint import fingerprint_of_der
from gateway.protocols.openadr2b.messages import (
    EiResponse,
    OadrDecodeError,
    OadrMessage,
    Payload,
    ResponseCode,
    Service,
)
from gateway.protocols.openadr2b.security import MessageSigner, MessageVerifier, SignatureError
from gateway.protocols.openadr2b.vtn import OadrRefusal, Vtn

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/xml"
MAX_BODY = 4 * 1024 * 1024
INLINE_DECODE = 16 * 1024
PREFIX = "/OpenADR2/Simple/2.0b"

router = APIRouter(prefix=PREFIX, tags=["openadr2b"])


class VtnAccess:
    """Who may talk to the VTN and how messages are signed (app.state.oadr_settings); the mapping table's
    ``VtnSettings`` are what the VTN says.

    ``signer`` (the VTN's certificate and key, loaded once) signs every answer; VENs that know the VTN's
    fingerprint verify it. ``require_signatures`` refuses unsigned requests from every VEN; a VEN that registered
    with oadrXmlSignature true must sign whatever this says. A signed request is always verified in full (digest,
    signature, ReplayProtect window and nonce, and the signing certificate = the TLS client certificate).
    """

    def __init__(
        self,
        *,
        cert_header: str | None = None,
        insecure: bool = False,
        signer: MessageSigner | None = None,
        require_signatures: bool = False,
    ) -> None:
        self.cert_header = cert_header
        self.insecure = insecure
        self.signer = signer
        self.verifier = MessageVerifier(require_signature=False)
        self.require_signatures = require_signatures


def _vtn(request: Request) -> Vtn:
    vtn: Vtn | None = getattr(request.app.state, "oadr_vtn", None)
    if vtn is None:
        vtn = Vtn(request.app.state.store, request.app.state.ingestor)
        request.app.state.oadr_vtn = vtn
    return vtn


def _settings(request: Request) -> VtnAccess:
    settings: VtnAccess | None = getattr(request.app.state, "oadr_settings", None)
    if settings is None:
        settings = VtnAccess()
        request.app.state.oadr_settings = settings
    return settings


def _reply(request: Request, message: OadrMessage) -> Response:
    signer = _settings(request).signer
    if signer is not None:
        body = signer.sign(codec.encode_tree(message))
    elif message.payload is Payload.RESPONSE and message.response is not None and message.response.code == 200:
        body = _plain_ok(message.ven_id, message.response.request_id)  # most polls: the same bytes every time
    else:
        body = codec.encode(message)
    return Response(body, media_type=MEDIA_TYPE)


@functools.lru_cache(maxsize=4096)
def _plain_ok(ven_id: str | None, request_id: str | None) -> bytes:
    return codec.encode(
        OadrMessage(payload=Payload.RESPONSE, response=EiResponse(request_id=request_id), ven_id=ven_id)
    )


def _refusal(request: Request, code: int, description: str, request_id: str | None, ven_id: str | None) -> Response:
    return _reply(
        request,
        OadrMessage(
            payload=Payload.RESPONSE,
            response=EiResponse(code=code, description=description[:1000], request_id=request_id),
            ven_id=ven_id,
        ),
    )


async def _identify(request: Request, vtn: Vtn, message: OadrMessage) -> str:
    """The party id of the calling VEN, or OadrRefusal(463). Answered from memory when the VEN is known; a miss
    is asked again in a thread (which may re-read the parties)."""
    settings = _settings(request)
    directory = vtn.directory
    der = peer_certificate_der(request)
    if der is not None:
        party = directory.party_by_certificate(der, False) or await asyncio.to_thread(
            directory.party_by_certificate, der
        )
        if party is None:
            raise OadrRefusal(
                ResponseCode.NOT_REGISTERED_OR_AUTHORIZED,
                "no party has this client certificate's fingerprint; the operator must add it to the party's"
                " identities (oadr-fingerprint or tls-sha256)",
            )
        return party
    forwarded = request.headers.get(settings.cert_header) if settings.cert_header else None
    if forwarded:
        party = directory.party_by_sha256(forwarded.strip(), False) or await asyncio.to_thread(
            directory.party_by_sha256, forwarded.strip()
        )
        if party is None:
            raise OadrRefusal(
                ResponseCode.NOT_REGISTERED_OR_AUTHORIZED, "no party has the forwarded certificate fingerprint"
            )
        return party
    if settings.insecure:
        name = message.registration.ven_name if message.registration else None
        ven_id = message.ven_id or (message.registration.ven_id if message.registration else None)
        party = directory.party_by_name(ven_id, name, False) or await asyncio.to_thread(
            directory.party_by_name, ven_id, name
        )
        if party is not None:
            return party
        raise OadrRefusal(
            ResponseCode.NOT_REGISTERED_OR_AUTHORIZED,
            f"no party is known as venID '{ven_id}' or venName '{name}'; the operator creates the party first",
        )
    raise OadrRefusal(
        ResponseCode.NOT_REGISTERED_OR_AUTHORIZED,
        "a client certificate is required (mutual TLS); this VTN identifies VENs by certificate fingerprint",
    )


@router.post(
    "/{service}",
    summary="One OpenADR 2.0b request (oadrPayload XML); the answer is an oadrPayload",
    response_class=Response,
    responses={
        200: {"content": {MEDIA_TYPE: {}}, "description": "the 2.0b answer, or an oadrResponse with a 4xx code"}
    },
)
async def post_service(request: Request, service: Annotated[Service, Path()]) -> Response:
    """Documents the endpoint in the OpenAPI schema. Requests never get here: :class:`VtnFastPath`, in front of
    the FastAPI app, serves them (see its docstring)."""
    return await _serve(request, service, await request.body())


class VtnFastPath:
    """The VTN's endpoints as raw ASGI, ahead of the FastAPI app (``gateway.api.app.GatewayApp`` calls it first).

    Legacy VENs poll every few seconds, so the VTN's requests are the gateway's most frequent. Measured with wrk
    on one core: a raw ASGI app on uvicorn answers 45,000 requests/s, a bare FastAPI endpoint 12,000; the VTN's
    own work on a poll (decode and schema check, identify, look for news, answer) is about 25 us, and FastAPI's
    per-request machinery (telemetry switch, middleware stack, routing, parameter solving, Response) cost more
    than that. The body is raw XML, validated by the codec against the 2.0b schema, so nothing is lost by
    skipping FastAPI's parameter handling; the body bound is enforced here while reading, and an unexpected
    error is logged and answered 500 here, as FastAPI's error middleware would.
    """

    def __init__(self, fallback: ASGIApp, owner: ASGIApp) -> None:
        self.fallback = fallback
        self.owner = owner
        self.prefix = PREFIX + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith(self.prefix):
            await self.fallback(scope, receive, send)
            return
        scope["app"] = self.owner  # what FastAPI would set: request.app.state reaches the store and the VTN
        try:
            service = Service(scope["path"][len(self.prefix) :])
        except ValueError:
            services = ", ".join(member.value for member in Service)
            response = Response(status_code=404, content=f"no OpenADR 2.0b service there; the services are {services}")
            await response(scope, receive, send)
            return
        try:
            await self._serve(scope, receive, send, service)
        except Exception:
            log.exception("the OpenADR 2.0b VTN failed on %s", scope["path"])
            await Response(status_code=500, content="internal error; it is logged")(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, service: Service) -> None:
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                response = Response(status_code=413, content=f"an OpenADR message is at most {MAX_BODY} bytes")
                await response(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        response = await _serve(Request(scope, receive), service, b"".join(chunks))
        await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


async def _serve(request: Request, service: Service, body: bytes) -> Response:
    store = request.app.state.store
    vtn = _vtn(request)
    try:
        # a small message decodes faster than a hop to a worker thread costs; a large one must not hold the loop
        decoded = (
            codec.decode_tree(body) if len(body) <= INLINE_DECODE else await asyncio.to_thread(codec.decode_tree, body)
        )
    except OadrDecodeError as exc:
        await asyncio.to_thread(
            store.record_rejection,
            protocol="openadr2b",
            peer=request.client.host if request.client else "?",
            reason=exc.reason,
            raw=body[:4096],
        )
        return _refusal(request, exc.code, exc.reason, None, None)
    message = decoded.message
    try:
        if message.service is not service and message.payload is not Payload.RESPONSE:  # an oadrResponse goes anywhere
            raise OadrRefusal(
                ResponseCode.NOT_RECOGNIZED,
                f"{message.payload.value} belongs to {message.service.value}, not to {service.value}",
            )
        if message.payload is Payload.QUERY_REGISTRATION and not _names_a_ven(request, message):
            answer = vtn.describe(message)  # anyone may ask what the VTN offers before registering
        else:
            party_id = await _identify(request, vtn, message)
            await _check_signature(request, vtn, decoded, party_id)
            answer = await vtn.handle(message, party_id)
    except OadrRefusal as exc:
        await asyncio.to_thread(
            store.record_rejection,
            protocol="openadr2b",
            peer=message.ven_id or (request.client.host if request.client else "?"),
            reason=f"{exc.code}: {exc.description}",
            raw=body[:4096],
            kind=message.payload.value,
        )
        return _refusal(request, exc.code, exc.description, message.request_id, message.ven_id)
    return _reply(request, answer)


def _names_a_ven(request: Request, message: OadrMessage) -> bool:
    """Whether a request says who sends it: a client certificate, a forwarded one, or a venID."""
    settings = _settings(request)
    forwarded = bool(settings.cert_header and request.headers.get(settings.cert_header))
    return peer_certificate_der(request) is not None or forwarded or message.ven_id is not None


async def _check_signature(request: Request, vtn: Vtn, decoded: codec.Decoded, party_id: str) -> None:
    """Verify a signed request in full; refuse an unsigned one where signatures are required (463 either way)."""
    settings = _settings(request)
    der = peer_certificate_der(request)
    if decoded.signature is not None:
        try:
            await asyncio.to_thread(
                settings.verifier.verify, decoded.root, fingerprint_of_der(der) if der is not None else None
            )
        except SignatureError as exc:
            raise OadrRefusal(ResponseCode.NOT_REGISTERED_OR_AUTHORIZED, f"XML signature: {exc}") from exc
        return
    required = settings.require_signatures or vtn.requires_signature_cached(party_id)
    if required is None:
        required = await asyncio.to_thread(vtn.requires_signature, party_id)
    if required:
        raise OadrRefusal(
            ResponseCode.NOT_REGISTERED_OR_AUTHORIZED,
            "this message must be signed (XML signature with ReplayProtect): the VTN or your registration requires it",
        )
