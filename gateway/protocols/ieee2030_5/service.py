"""The IEEE 2030.5 (CSIP) utility server's HTTP face: every function set a device uses, on FastAPI.

Every request is checked in the same order: the caller is its client certificate (mutual TLS, or the certificate a
configured proxy forwards), and a certificate whose LFDI no provisioned resource carries is 403; a path under
another device's ``/edev/<sfdi>`` is 403; a body must be ``application/sep+xml`` (400 otherwise), at most
``MAX_BODY`` bytes (413) and a schema-valid object of the type the resource takes (400, with the reason in the
``X-Error-Reason`` header, since the 2030.5 Error body has only a reason code). Refusals are recorded
(GET /v1/rejections) and change nothing. A POST is answered 201 with a Location only after what it carried is
stored. GETs are answered from memory (see ``index``), with ``s``/``l`` paging on lists.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.tls import peer_certificate_der
from gateway.ingest import Rejected
from gateway.protocols.ieee2030_5 import codec
from gateway.protocols.ieee2030_5 import models as m
from gateway.protocols.ieee2030_5.identity import (
    DeviceIdentity,
    IdentityError,
    forwarded_identity,
    identity_of_certificate,
)
from gateway.protocols.ieee2030_5.index import Device
from gateway.protocols.ieee2030_5.server import PROTOCOL, Refusal, Sep2Server
from gateway.protocols.ieee2030_5.views import DER_KINDS, Page

log = logging.getLogger(__name__)

MEDIA_TYPE = codec.MEDIA_TYPE
MAX_BODY = 64 * 1024
REASON_HEADER = "X-Error-Reason"

router = APIRouter(tags=["ieee2030_5"])

_SEP_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {MEDIA_TYPE: {}}, "description": "the resource (application/sep+xml)"},
    400: {"description": "malformed XML, wrong media type or invalid values: an Error body"},
    403: {"description": "no or unknown client certificate, or another device's resource"},
    404: {"description": "no such resource for this device"},
}


def _path_of(request: Request) -> str:
    """The request's path, straight from the ASGI scope: ``request.url`` builds a whole URL object (host header,
    query, scheme) that a 2030.5 handler only ever asks the path of, and devices post often."""
    path: str = request.scope["path"]
    return path


def _header(scope: Scope, name: bytes) -> str | None:
    """One request header (``name`` in lower case), without building Starlette's Headers for the whole set."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _server(request: Request) -> Sep2Server:
    server: Sep2Server | None = getattr(request.app.state, "sep2", None)
    if server is None:
        raise RuntimeError("the 2030.5 server is not configured on this app")
    return server


def sep(model: m.Sep2Model, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(codec.encode(model), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def error(status: int, reason: str, code: int = 1) -> Response:
    """An Error body (reasonCode 0 format, 1 values, 2 limit, 3 unsupported) with the reason in a header."""
    return Response(
        codec.encode(m.Error(reasonCode=code)),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers={REASON_HEADER: reason.encode("ascii", "replace").decode()[:500]},
    )


@functools.lru_cache(maxsize=16_384)
def _identity_of_pem(pem: str) -> DeviceIdentity:
    """Connections present the same certificate on every request: derive its LFDI once."""
    import ssl

    return identity_of_certificate(ssl.PEM_cert_to_DER_cert(pem))


def _identity(request: Request, server: Sep2Server) -> DeviceIdentity:
    tls = request.scope.get("extensions", {}).get("tls", {})
    chain = tls.get("client_cert_chain") or []
    if chain:
        return _identity_of_pem(chain[0])
    if peer_certificate_der(request) is None and server.cert_header:
        value = request.headers.get(server.cert_header)
        if value:
            return forwarded_identity(value)
    raise IdentityError(
        "no client certificate: a 2030.5 device must present its certificate (mutual TLS)"
        + (f" or come through the proxy that forwards it in {server.cert_header}" if server.cert_header else "")
    )


async def _refuse(
    server: Sep2Server, peer: str, status: int, reason: str, code: int, raw: bytes | None = None
) -> Response:
    await asyncio.to_thread(
        server.store.record_rejection, protocol=PROTOCOL, peer=peer, reason=f"{status}: {reason}", raw=raw
    )
    return error(status, reason, code)


async def _caller(request: Request, server: Sep2Server) -> Device | Response:
    """The calling device, or the 403 to answer."""
    try:
        identity = _identity(request, server)
    except IdentityError as exc:
        return await _refuse(server, request.client.host if request.client else "?", 403, str(exc), 1)
    await server.fresh()
    device = server.device_of(identity.lfdi)
    if device is None:
        await asyncio.to_thread(server.index.catch_up)
        device = server.device_of(identity.lfdi)
    if device is None:
        return await _refuse(
            server,
            identity.lfdi,
            403,
            f"unknown device: LFDI {identity.lfdi} (SFDI {identity.sfdi}) is not registered",
            1,
        )
    if not server.loaded(device.lfdi):
        await asyncio.to_thread(server.posted, device.lfdi)
    return device


def _page(request: Request) -> Page | Response:
    query = request.query_params
    try:
        start = int(query.get("s", "0"))
        limit = int(query.get("l", "1"))
    except ValueError:
        return error(400, "s and l must be integers", 1)
    if start < 0 or limit < 0 or start > 2**32 or limit > 2**32:
        return error(400, "s and l must be 0..2^32", 1)
    return Page(start, limit)


def _foreign(device: Device, path: str) -> bool:
    """A path under another device's /edev/<sfdi>."""
    parts = path.strip("/").split("/")
    return len(parts) >= 2 and parts[0] == "edev" and parts[1] != str(device.sfdi)


async def get_resource(request: Request) -> Response:
    """Any resource a device reads (see ``views`` for the paths); lists take ``s`` and ``l``."""
    server = _server(request)
    device = await _caller(request, server)
    if isinstance(device, Response):
        return device
    path = _path_of(request)
    if _foreign(device, path):
        return await _refuse(server, device.lfdi, 403, f"{path} belongs to another device", 1)
    page = _page(request)
    if isinstance(page, Response):
        return page
    now = server.now()
    if "/tp" in path:
        found = await asyncio.to_thread(server.views.resolve, device, path, page, now)
    else:
        found = server.views.resolve(device, path, page, now)
    if found is None:
        return error(404, f"{path}: no such resource", 1)
    return sep(found)


async def _body(request: Request, server: Sep2Server, device: Device, expected: tuple[type, ...]) -> Any:
    """The posted object, or a Refusal (media type, size, XML, type)."""
    content_type = (_header(request.scope, b"content-type") or "").split(";")[0].strip().lower()
    if content_type != MEDIA_TYPE:
        raise Refusal(400, f"Content-Type must be {MEDIA_TYPE}, not {content_type or 'missing'}", 0)
    declared = _header(request.scope, b"content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY:
        raise Refusal(413, f"body of {declared} bytes exceeds {MAX_BODY}", 2)
    raw: bytes | None = request.scope.get("state", {}).get("raw_body")  # read already (BodyLimit, the fast path)
    if raw is None:
        chunks = bytearray()
        async for chunk in request.stream():
            chunks.extend(chunk)
            if len(chunks) > MAX_BODY:
                raise Refusal(413, f"body exceeds {MAX_BODY} bytes", 2)
        raw = bytes(chunks)
    elif len(raw) > MAX_BODY:  # BodyLimit's bound is the whole API's, larger than a 2030.5 body's
        raise Refusal(413, f"body exceeds {MAX_BODY} bytes", 2)
    try:
        found = codec.decode(raw, max_bytes=MAX_BODY)
    except codec.Sep2DecodeError as exc:
        raise Refusal(400, str(exc), 0) from None
    if not isinstance(found, expected):
        names = " or ".join(t.__name__ for t in expected)
        raise Refusal(400, f"this resource takes a {names}, not a {type(found).__name__}", 0)
    return found


def _mutation(handler: Any) -> Any:
    """Identify the caller, refuse foreign paths, turn Refusal and Rejected into recorded Error answers."""

    async def run(request: Request) -> Response:
        server = _server(request)
        device = await _caller(request, server)
        if isinstance(device, Response):
            return device
        path = _path_of(request)
        if _foreign(device, path):
            return await _refuse(server, device.lfdi, 403, f"{path} belongs to another device", 1)
        try:
            return await handler(request, server, device)
        except Refusal as refusal:
            return await _refuse(server, device.lfdi, refusal.status, refusal.reason, refusal.code)
        except Rejected as rejected:
            return await _refuse(server, device.lfdi, 400, str(rejected), 1)

    run.__name__ = handler.__name__  # not functools.wraps: FastAPI would read the wrapped signature as parameters
    run.__doc__ = handler.__doc__
    return run


@_mutation
async def post_end_device(request: Request, server: Sep2Server, device: Device) -> Response:
    """A provisioned device registers itself: its lFDI/sFDI must be those of its certificate."""
    body = await _body(request, server, device, (m.EndDevice,))
    if body.lFDI is not None and body.lFDI.upper() != device.lfdi:
        raise Refusal(403, f"lFDI {body.lFDI} does not match the client certificate's LFDI {device.lfdi}")
    if body.sFDI != device.sfdi:
        raise Refusal(403, f"sFDI {body.sFDI} does not match the client certificate's SFDI {device.sfdi}")
    return Response(status_code=201, headers={"Location": device.href})


@_mutation
async def put_der_resource(request: Request, server: Sep2Server, device: Device) -> Response:
    path = _path_of(request)
    kind = path.rstrip("/").rsplit("/", 1)[-1]
    if kind not in DER_KINDS or not path.startswith(f"{device.href}/der/0/"):
        return error(404, f"{path}: no such resource", 1)
    expected = getattr(m, DER_KINDS[kind])
    body = await _body(request, server, device, (expected,))
    await asyncio.to_thread(server.put_der, device, kind, body)
    return Response(status_code=204)


@_mutation
async def post_response(request: Request, server: Sep2Server, device: Device) -> Response:
    path = _path_of(request)
    parts = path.strip("/").split("/")  # edev, S, rsps, P, rsp
    if len(parts) != 5 or parts[2] != "rsps" or parts[4] != "rsp":
        return error(404, f"{path}: no such resource", 1)
    body = await _body(request, server, device, (m.DERControlResponse, m.Response))
    location, envelopes, kept = server.post_response(device, parts[3], body)
    await server.response_commit.ingest(envelopes, peer=device.lfdi)  # stored (a shared commit) before the 201
    server.keep_response(device, parts[3], kept)  # listed only once stored: a refused one leaves no trace
    return Response(status_code=201, headers={"Location": location})


@_mutation
async def post_subscription(request: Request, server: Sep2Server, device: Device) -> Response:
    body = await _body(request, server, device, (m.Subscription,))
    record = await asyncio.to_thread(server.post_subscription, device, body)
    server.notifier.add(record, notify_now=False)
    return Response(status_code=201, headers={"Location": record.href})


@_mutation
async def delete_subscription(request: Request, server: Sep2Server, device: Device) -> Response:
    path = _path_of(request)
    tail = path.rstrip("/").rsplit("/", 1)[-1]
    if not tail.isdigit() or not await asyncio.to_thread(server.delete_subscription, device, int(tail)):
        return error(404, f"{path}: no such subscription", 1)
    return Response(status_code=204)


@_mutation
async def post_log_event(request: Request, server: Sep2Server, device: Device) -> Response:
    body = await _body(request, server, device, (m.LogEvent,))
    location = await asyncio.to_thread(server.post_log_event, device, body)
    return Response(status_code=201, headers={"Location": location})


@_mutation
async def post_mirror_usage_point(request: Request, server: Sep2Server, device: Device) -> Response:
    body = await _body(request, server, device, (m.MirrorUsagePoint,))
    readings = server.mirror_readings(device, list(body.MirrorMeterReading or []))
    href, new = await asyncio.to_thread(server.post_mirror_usage_point, device, body)
    if readings:
        await server.ingestor.ingest(readings, protocol=PROTOCOL, peer=device.lfdi)
    return Response(status_code=201 if new else 204, headers={"Location": href})


@_mutation
async def post_mirror_reading(request: Request, server: Sep2Server, device: Device) -> Response:
    path = _path_of(request)
    number = path.rstrip("/").rsplit("/", 1)[-1]
    if not number.isdigit() or int(number) not in server.posted(device.lfdi).mups:
        return error(404, f"{path}: no such mirror usage point of this device", 1)
    body = await _body(request, server, device, (m.MirrorMeterReading, m.MirrorMeterReadingList))
    items = list(body.MirrorMeterReading or []) if isinstance(body, m.MirrorMeterReadingList) else [body]
    readings = server.mirror_readings(device, items)
    if readings:
        await server.ingestor.ingest(readings, protocol=PROTOCOL, peer=device.lfdi)
    return Response(status_code=201, headers={"Location": path})


GET_PATHS: list[tuple[str, str]] = [
    ("/dcap", "DeviceCapability: the entry point of discovery"),
    ("/tm", "Time, with the server's time zone and daylight-saving fields"),
    ("/edev", "EndDeviceList: the calling device's own EndDevice"),
    ("/edev/{sfdi}", "EndDevice"),
    ("/edev/{sfdi}/rg", "Registration (the PIN the device checks)"),
    ("/edev/{sfdi}/fsa", "FunctionSetAssignmentsList"),
    ("/edev/{sfdi}/fsa/{n}", "FunctionSetAssignments"),
    ("/edev/{sfdi}/derp", "DERProgramList (by primacy)"),
    ("/edev/{sfdi}/derp/{program}", "DERProgram"),
    ("/edev/{sfdi}/derp/{program}/derc", "DERControlList: every control of the program aimed at this device"),
    ("/edev/{sfdi}/derp/{program}/derc/{mrid}", "DERControl"),
    ("/edev/{sfdi}/derp/{program}/actderc", "ActiveDERControlList"),
    ("/edev/{sfdi}/derp/{program}/dderc", "DefaultDERControl"),
    ("/edev/{sfdi}/derp/{program}/dc", "DERCurveList"),
    ("/edev/{sfdi}/derp/{program}/dc/{mrid}", "DERCurve"),
    ("/edev/{sfdi}/der", "DERList"),
    ("/edev/{sfdi}/der/{n}", "DER"),
    (
        "/edev/{sfdi}/der/{n}/{kind}",
        "DERCapability (dercap), DERSettings (derg), DERStatus (ders), DERAvailability (dera)",
    ),
    ("/edev/{sfdi}/sub", "SubscriptionList"),
    ("/edev/{sfdi}/sub/{n}", "Subscription"),
    ("/edev/{sfdi}/lel", "LogEventList"),
    ("/edev/{sfdi}/rsps", "ResponseSetList"),
    ("/edev/{sfdi}/rsps/{program}", "ResponseSet"),
    ("/edev/{sfdi}/rsps/{program}/rsp", "ResponseList: this device's last responses"),
    ("/edev/{sfdi}/rsps/{program}/rsp/{id}", "Response: one of them (the Location a POSTed Response was given)"),
    ("/edev/{sfdi}/tp", "TariffProfileList: transactive prices at this device's site"),
    ("/edev/{sfdi}/tp/{tariff}", "TariffProfile"),
    ("/edev/{sfdi}/tp/{tariff}/rt", "ReadingType of the tariff"),
    ("/edev/{sfdi}/tp/{tariff}/rc", "RateComponentList"),
    ("/edev/{sfdi}/tp/{tariff}/rc/{n}", "RateComponent"),
    ("/edev/{sfdi}/tp/{tariff}/rc/{n}/tti", "TimeTariffIntervalList"),
    ("/edev/{sfdi}/tp/{tariff}/rc/{n}/tti/{mrid}", "TimeTariffInterval"),
    ("/edev/{sfdi}/tp/{tariff}/rc/{n}/tti/{mrid}/cti", "ConsumptionTariffIntervalList (the price)"),
    ("/mup", "MirrorUsagePointList: this device's mirrors"),
    ("/mup/{n}", "MirrorUsagePoint"),
]

for _path, _summary in GET_PATHS:
    router.add_api_route(
        _path, get_resource, methods=["GET"], summary=_summary, response_class=Response, responses=_SEP_RESPONSE
    )

for _path, _endpoint, _method, _summary in (
    ("/edev", post_end_device, "POST", "Register: a provisioned device confirms its lFDI/sFDI"),
    (
        "/edev/{sfdi}/der/{n}/{kind}",
        put_der_resource,
        "PUT",
        "Report DERCapability, DERSettings, DERStatus or DERAvailability",
    ),
    ("/edev/{sfdi}/rsps/{program}/rsp", post_response, "POST", "Post a Response to a DERControl (1 received .. 254)"),
    ("/edev/{sfdi}/sub", post_subscription, "POST", "Subscribe to a resource (Notifications by HTTP POST)"),
    ("/edev/{sfdi}/sub/{n}", delete_subscription, "DELETE", "End a subscription"),
    ("/edev/{sfdi}/lel", post_log_event, "POST", "Post a LogEvent"),
    ("/mup", post_mirror_usage_point, "POST", "Create a MirrorUsagePoint (readings become metered deliveries)"),
    ("/mup/{n}", post_mirror_reading, "POST", "Post MirrorMeterReading(s): metered deliveries"),
):
    router.add_api_route(
        _path, _endpoint, methods=[_method], summary=_summary, response_class=Response, responses=_SEP_RESPONSE
    )


_GET_ROUTE = re.compile("|".join("^" + re.sub(r"\{[a-z]+\}", "[^/]+", path) + "$" for path, _summary in GET_PATHS))
_POST_RESPONSE_ROUTE = re.compile(r"^/edev/[^/]+/rsps/[^/]+/rsp$")  # the route of post_response


class Sep2FastPath:
    """The 2030.5 GETs as raw ASGI, ahead of the FastAPI app (``gateway.api.app.GatewayApp`` calls it first).

    Devices poll their DERControlList and EndDevice often, so these are the server's most frequent requests.
    Measured with 32 devices on mutual TLS (``benchmarks/bench_ieee2030_5_server.py``), FastAPI's per-request
    machinery (middleware stack, matching ~130 routes, parameter solving) cost about twice the 2030.5 work of a
    GET. Only a GET whose path matches one of ``GET_PATHS`` (exactly what the FastAPI route would match) comes
    here, and it runs the same ``get_resource`` with the same answers; anything else (HEAD, other methods,
    trailing slashes that FastAPI redirects, unknown paths) goes to FastAPI. No middleware acts on a GET (the body
    limit skips them), and an unexpected error is logged and answered 500 here, as FastAPI's error middleware
    would.
    """

    def __init__(self, fallback: ASGIApp, owner: ASGIApp) -> None:
        self.fallback = fallback
        self.owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and _POST_RESPONSE_ROUTE.match(scope["path"]):
            await self._post_response(scope, receive, send)
            return
        if scope["type"] != "http" or scope["method"] != "GET" or _GET_ROUTE.match(scope["path"]) is None:
            await self.fallback(scope, receive, send)
            return
        scope["app"] = self.owner  # what FastAPI would set: request.app.state reaches the 2030.5 server
        try:
            response = await get_resource(Request(scope, receive))
        except Exception:
            log.exception("the IEEE 2030.5 server failed on GET %s", scope["path"])
            response = PlainTextResponse("Internal Server Error", status_code=500)
        await response(scope, receive, send)

    async def _post_response(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A device's Response (the server's most frequent POST) without FastAPI: the same ``post_response``, with
        the body read here as the gateway's BodyLimit middleware would. A body without a Content-Length, or over
        this server's ``MAX_BODY``, goes to FastAPI (and its 413s); an exception the handler does not answer
        itself (a reused message id, the store failing) gets the app's own exception handler's answer."""
        declared = _header(scope, b"content-length")
        if declared is None or not (declared.isascii() and declared.isdigit()) or int(declared) > MAX_BODY:
            await self.fallback(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        scope["app"] = self.owner
        scope.setdefault("state", {})["raw_body"] = body  # as BodyLimit keeps it, for recording refused input
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        request = Request(scope, replay)
        try:
            response = await post_response(request)
        except Exception as exc:
            handler = next(
                (self.owner.exception_handlers[t] for t in type(exc).__mro__ if t in self.owner.exception_handlers),
                None,
            )
            if handler is None:
                log.exception("the IEEE 2030.5 server failed on POST %s", scope["path"])
                response = PlainTextResponse("Internal Server Error", status_code=500)
            else:
                response = await handler(request, exc)
        await response(scope, receive, send)
