"""The VTN played to a VEN under test: a simpleHTTP (pull) endpoint that answers, records and paces the scenario.

Every request the VEN sends is kept as a :class:`Received`: its bytes, what the gateway's own 2.0b codec read from
them (a strict, schema-validating decode; why not, when it fails), and what the harness answered. The cases read
that record and never talk to the VEN themselves; the answers come from :mod:`conformance.openadr2b_ven_scenario`.
Nothing a VEN sends can raise out of here: an unreadable message is answered with a 2.0b error code and recorded
with the reason, and a fault of the harness itself is recorded on the message and answered with code 469.

The endpoint is served by uvicorn (the ASGI server the gateway itself runs on, so no new dependency) in a
background thread, with a bare ASGI callable rather than a framework: five POST routes need no router, and reading
the body by hand keeps its size bounded before anything is parsed. uvicorn gives HTTP/1.1 keep-alive (VENs built on
aiohttp or requests reuse connections), TLS with required client certificates (``ssl_cert_reqs``) and timeouts
against slow clients, none of which http.server does out of the box. The socket is bound here, before uvicorn
starts, so "address in use" reaches the report as itself rather than as a thread that silently died.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from lxml import etree

from conformance.framework import Exchange, Target, truncate
from conformance.openadr2b_ven_scenario import VTN_ID, Scenario, Seen, Step, StepState, Timing
from gateway.protocols.openadr2b import codec
from gateway.protocols.openadr2b.codec_schema import parse
from gateway.protocols.openadr2b.messages import (
    EiResponse,
    OadrDecodeError,
    OadrMessage,
    Payload,
    Registration,
    ResponseCode,
    Service,
)

log = logging.getLogger(__name__)

SERVICES = frozenset(s.value for s in Service)
DEFAULT_POLL_SECONDS = 10
DEFAULT_VEN_WAIT = 60.0
_ACKNOWLEDGED = frozenset(
    {
        Payload.CREATED_EVENT,
        Payload.RESPONSE,
        Payload.CREATED_REPORT,
        Payload.REGISTERED_REPORT,
        Payload.CANCELED_REPORT,
        Payload.CANCELED_PARTY_REGISTRATION,
        Payload.CANCELED_OPT,
    }
)
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class HarnessError(Exception):
    """The harness cannot serve the target as given (a bad URL, a port in use, a certificate that will not load)."""


@dataclass(frozen=True, slots=True)
class HarnessSettings:
    """The run's knobs, from the target and its options (``tgw conformance run openadr2b-ven --help``)."""

    url: str
    prefix: str
    host: str
    port: int
    tls: bool
    cert: str | None
    key: str | None
    ca: str | None
    timing: Timing
    ven_wait: float
    ven_id: str | None
    expect_ven_name: str | None
    opt_wait: float

    @classmethod
    def from_target(cls, target: Target) -> HarnessSettings:
        parts = urlsplit(target.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HarnessError(f"--target {target.url!r} is not an http(s) URL for the harness VTN to serve at")
        tls = parts.scheme == "https"
        if tls and not (target.cert and target.key):
            raise HarnessError("an https --target needs --cert and --key: the harness VTN's own certificate")
        host, port = parts.hostname, parts.port or (443 if tls else 80)
        if target.option("listen"):  # bind elsewhere than the advertised URL (0.0.0.0 behind NAT, say)
            bind_host, _, bind_port = target.option("listen").rpartition(":")
            host, port = bind_host.strip("[]") or host, int(bind_port or port)
        poll = _number(target, "poll_freq", DEFAULT_POLL_SECONDS)
        if poll < 1 or poll != int(poll):
            raise HarnessError(f"--poll-freq {poll:g}: whole seconds, at least 1 (an xcal duration has no fractions)")
        return cls(
            url=target.url.rstrip("/"),
            prefix=parts.path.rstrip("/"),
            host=host,
            port=port,
            tls=tls,
            cert=target.cert if tls else None,
            key=target.key if tls else None,
            ca=target.ca if tls else None,
            timing=Timing(poll_freq=timedelta(seconds=int(poll)), answer_wait=max(target.timeout, 0.1)),
            ven_wait=_number(target, "ven_wait", DEFAULT_VEN_WAIT),
            ven_id=target.option("ven_id") or None,
            expect_ven_name=target.option("expect_ven_name") or None,
            opt_wait=_number(target, "opt_wait", 0.0),
        )


def _number(target: Target, name: str, default: float) -> float:
    text = target.option(name)
    try:
        return float(text) if text else default
    except ValueError:
        raise HarnessError(f"option {name}={text!r} is not a number") from None


@dataclass(slots=True)
class Received:
    """One request from the VEN and the harness's answer to it."""

    seq: int
    at: float  # monotonic
    wall: datetime
    method: str
    url: str
    service: str
    content_type: str
    raw: bytes
    ven_id_then: str | None  # the venID the harness had assigned when this arrived
    message: OadrMessage | None = None
    root: Any = None  # the validated lxml document, for rules about the text (UTC 'Z')
    problem: str | None = None  # why the codec could not read it
    schema_valid: bool = False
    status: int = 200
    answer: bytes = b""
    answered: str = ""
    note: str = ""

    @property
    def payload(self) -> Payload | None:
        return self.message.payload if self.message is not None else None

    @property
    def name(self) -> str:
        return self.message.payload.value if self.message is not None else "an unreadable message"

    def exchange(self, note: str | None = None) -> Exchange:
        """As a report line: 'Sent' is what the VEN sent the harness, 'Received' what the harness answered."""
        what = f"#{self.seq} from the VEN: {self.name}"
        if self.problem:
            what += f" ({self.problem})"
        what += f"; the harness answered {self.answered or 'nothing'}"
        extra = "; ".join(n for n in (self.note, note) if n)
        return Exchange(
            self.method,
            self.url,
            truncate(self.raw),
            status=self.status,
            response=truncate(self.answer),
            note=f"{what}; {extra}" if extra else what,
        )


@dataclass(slots=True)
class Registered:
    """The VEN's registration as the harness granted it."""

    ven_id: str
    registration_id: str
    request: Received


class HarnessVtn:
    """The recording, answering VTN. ``handle`` is called by the HTTP layer (any thread); the cases wait on it."""

    def __init__(self, settings: HarnessSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.cond = threading.Condition()
        self.received: list[Received] = []
        self.scenario = Scenario(settings.timing)
        self.registered: Registered | None = None
        self.started_at = clock()
        self._seq = itertools.count(1)

    # --- the HTTP layer's entry ----------------------------------------------------------------------------------

    def handle(self, method: str, path: str, content_type: str, body: bytes | None) -> tuple[int, bytes]:
        """Answer one HTTP request (``body`` None: larger than a 2.0b message may be). Never raises."""
        with self.cond:
            now = self.clock()
            service = path[len(self.settings.prefix) + 1 :] if path.startswith(self.settings.prefix + "/") else ""
            record = Received(
                seq=next(self._seq),
                at=now,
                wall=datetime.now(UTC),
                method=method,
                url=self.settings.url.removesuffix(self.settings.prefix) + path,
                service=service,
                content_type=content_type,
                raw=body or b"",
                ven_id_then=self.registered.ven_id if self.registered else None,
            )
            try:
                self._answer(record, body)
            except Exception as exc:  # a harness bug must not leave the VEN without an answer or end the run
                log.exception("the harness VTN failed on message #%s", record.seq)
                record.note = f"harness fault: {type(exc).__name__}: {exc}"
                self._reply(record, _response(ResponseCode.DEPLOYMENT_ERROR, "harness fault", None, None))
            self.received.append(record)
            if record.status == 200:  # a stray request (wrong path, too large) is no answer to anything
                self.scenario.observe(Seen(record.seq, record.service, record.message), now)
            self.scenario.expire(now)
            self.cond.notify_all()
            return record.status, record.answer

    def _answer(self, record: Received, body: bytes | None) -> None:
        if record.method != "POST" or record.service not in SERVICES:
            record.status = 404 if record.method == "POST" else 405
            record.note = f"not a 2.0b simpleHTTP endpoint: the services are under {self.settings.prefix}/"
            return
        if body is None:
            record.status = 413
            record.note = f"larger than {codec.MAX_MESSAGE_BYTES:,} bytes"
            return
        try:
            decoded = codec.decode_tree(body)
        except OadrDecodeError as exc:
            record.problem, record.schema_valid = exc.reason, _schema_valid(body)
            own = self.registered.ven_id if self.registered else None
            self._reply(record, _response(exc.code, exc.reason[:200], _request_id_in(body), own))
            return
        record.message, record.root, record.schema_valid = decoded.message, decoded.root, True
        self._reply(record, self._respond(record, decoded.message))

    def _reply(self, record: Received, answer: OadrMessage | bytes) -> None:
        if isinstance(answer, bytes):
            record.answer, record.answered = answer, "a schema-invalid oadrDistributeEvent (on purpose)"
        else:
            record.answer, record.answered = codec.encode(answer), answer.payload.value

    # --- answers ---------------------------------------------------------------------------------------------------

    def _respond(self, record: Received, message: OadrMessage) -> OadrMessage | bytes:
        payload, own = message.payload, self.registered.ven_id if self.registered else None
        if payload is Payload.QUERY_REGISTRATION:
            return self._registration_answer(message, None)
        if payload is Payload.CREATE_PARTY_REGISTRATION:
            return self._register(record, message)
        if own is None:
            if payload is Payload.POLL:  # a VEN that thinks it is registered (an earlier run): ask it to register
                return OadrMessage(payload=Payload.REQUEST_REREGISTRATION, ven_id=message.ven_id or "unknown")
            return _response(ResponseCode.NOT_REGISTERED_OR_AUTHORIZED, "register first", message.request_id, None)
        if message.ven_id is not None and message.ven_id != own:
            return _response(ResponseCode.INVALID_ID, f"your venID is {own}", message.request_id, own)
        now = record.at
        match payload:
            case Payload.POLL:
                found = self.scenario.on_poll(record.seq, now)
                return found if found is not None else _response(ResponseCode.OK, "OK", None, own)
            case Payload.REQUEST_EVENT:
                return self.scenario.on_request_event(record.seq, message.request_id, now)
            case Payload.REGISTER_REPORT:
                self.scenario.offers.extend(message.reports)
                return OadrMessage(
                    payload=Payload.REGISTERED_REPORT, response=EiResponse(request_id=message.request_id), ven_id=own
                )
            case Payload.UPDATE_REPORT:
                return OadrMessage(
                    payload=Payload.UPDATED_REPORT, response=EiResponse(request_id=message.request_id), ven_id=own
                )
            case Payload.CREATE_OPT | Payload.CANCEL_OPT:
                opt_id = message.opt.opt_id if message.opt is not None else message.opt_id
                kind = Payload.CREATED_OPT if payload is Payload.CREATE_OPT else Payload.CANCELED_OPT
                return OadrMessage(
                    payload=kind, response=EiResponse(request_id=message.request_id), opt_id=opt_id, ven_id=own
                )
            case Payload.CANCEL_PARTY_REGISTRATION:
                return OadrMessage(
                    payload=Payload.CANCELED_PARTY_REGISTRATION,
                    response=EiResponse(request_id=message.request_id),
                    registration_id=self.registered.registration_id if self.registered else None,
                    ven_id=own,
                )
        if payload in _ACKNOWLEDGED:
            return _response(ResponseCode.OK, "OK", message.request_id, own)
        return _response(
            ResponseCode.NOT_RECOGNIZED, f"a VEN does not send {payload.value} to a VTN", message.request_id, own
        )

    def _register(self, record: Received, message: OadrMessage) -> OadrMessage:
        """Register (or re-register) the VEN: the operator's --ven-id, else the one it proposes, else a new one."""
        proposed = message.registration.ven_id if message.registration else None
        if self.registered is None:
            ven_id = self.settings.ven_id or proposed or f"TGW-VEN-{self.scenario.token}"
            self.registered = Registered(ven_id, f"TGW-REG-{uuid.uuid4().hex[:8]}", record)
            self.scenario.start(ven_id, record.at)
        return self._registration_answer(message, self.registered)

    def _registration_answer(self, message: OadrMessage, registered: Registered | None) -> OadrMessage:
        registration = Registration(
            registration_id=registered.registration_id if registered else None,
            ven_id=registered.ven_id if registered else None,
            vtn_id=VTN_ID,
            poll_freq=self.settings.timing.poll_freq,
        )
        return OadrMessage(
            payload=Payload.CREATED_PARTY_REGISTRATION,
            response=EiResponse(request_id=message.request_id),
            ven_id=registration.ven_id,
            vtn_id=VTN_ID,
            registration=registration,
        )

    # --- what the cases ask ----------------------------------------------------------------------------------------

    def wait_registered(self) -> Registered | None:
        """The VEN's registration, waiting until ``ven_wait`` seconds after the harness started for it."""
        deadline = self.started_at + self.settings.ven_wait
        with self.cond:
            while self.registered is None and (left := deadline - self.clock()) > 0:
                self.cond.wait(left)
            return self.registered

    def wait_step(self, step: Step) -> StepState:
        """Block until ``step`` has finished (answered, or its deadline passed); earlier steps are closed on their
        own deadlines meanwhile, so waiting for a late step also works when the earlier cases were not run."""
        with self.cond:
            while True:
                now = self.clock()
                self.scenario.expire(now)
                state = self.scenario.steps[step]
                deadline = self.scenario.next_deadline(now)
                if state.finished is not None or deadline is None:
                    return state
                self.cond.wait(max(deadline - now, 0.01))

    def wait_for(self, accept: Callable[[Received], bool], timeout: float) -> Received | None:
        """The first recorded message ``accept`` takes, waiting up to ``timeout`` seconds for it to arrive."""
        deadline = self.clock() + timeout
        with self.cond:
            while True:
                found = next((r for r in self.received if accept(r)), None)
                left = deadline - self.clock()
                if found is not None or left <= 0:
                    return found
                self.cond.wait(left)

    def messages(self, *payloads: Payload) -> list[Received]:
        with self.cond:
            return [r for r in self.received if not payloads or r.payload in payloads]

    def by_seq(self, seq: int | None) -> Received | None:
        with self.cond:
            return next((r for r in self.received if r.seq == seq), None)

    def no_ven_reason(self) -> str:
        """Why there is no registration, from what did arrive (nothing, garbage, polls from a stranger)."""
        with self.cond:
            received = list(self.received)
        reason = (
            f"no VEN registered with the harness VTN at {self.settings.url} within {self.settings.ven_wait:g} s"
            " (point the VEN at --target and start it)"
        )
        if not received:
            hint = (
                " (TLS handshakes are not seen: with --ca the VEN must present a certificate that CA signed)"
                if self.settings.ca
                else ""
            )
            return reason + "; nothing arrived at all" + hint
        unreadable = [r for r in received if r.problem]
        detail = f"; {len(received)} request(s) arrived"
        if unreadable:
            detail += f", {len(unreadable)} unreadable, e.g. {unreadable[0].problem}"
        others = sorted({r.name for r in received if r.message is not None})
        if others:
            detail += f"; received {', '.join(others)} but no oadrCreatePartyRegistration"
        strays = sorted({r.service or r.url for r in received if r.status != 200})
        if strays:
            detail += f"; not 2.0b endpoints: {', '.join(strays[:3])}"
        return reason + detail


def _response(code: int, description: str, request_id: str | None, ven_id: str | None) -> OadrMessage:
    return OadrMessage(
        payload=Payload.RESPONSE,
        response=EiResponse(code=code, description=description, request_id=request_id),
        ven_id=ven_id,
    )


def _schema_valid(body: bytes) -> bool:
    """Whether a message the codec could not read is nevertheless valid 2.0b (then the fault is the harness's
    reader, which does not hold every valid construct, not the VEN's)."""
    try:
        parse(body)
    except OadrDecodeError:
        return False
    return True


def _request_id_in(body: bytes) -> str | None:
    """The requestID of a message the codec refused, when it is well-formed enough to have one (so the error
    answer can name the request it refuses)."""
    with contextlib.suppress(etree.LxmlError, ValueError):
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        root = etree.fromstring(body, parser)
        for element in root.iter():
            if isinstance(element.tag, str) and etree.QName(element).localname == "requestID":
                return (element.text or "").strip() or None
    return None


# --- the HTTP server -----------------------------------------------------------------------------------------------


class HarnessServer:
    """``vtn`` served at the settings' host and port (TLS when the target is https) in a background thread."""

    def __init__(self, vtn: HarnessVtn) -> None:
        self.vtn = vtn
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        self.sock: socket.socket | None = None

    def start(self) -> None:
        """Bind, configure TLS and serve; raises :class:`HarnessError` with the reason when any of it fails."""
        settings = self.vtn.settings
        options: dict[str, Any] = {}
        if settings.tls:
            options = {"ssl_certfile": settings.cert, "ssl_keyfile": settings.key}
            if settings.ca:  # 2.0b: mutual TLS; the VEN must present a certificate this CA signed
                options |= {"ssl_ca_certs": settings.ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
        app = _Endpoint(self.vtn)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", **options)
        try:
            config.load()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise HarnessError(f"the harness VTN's TLS settings do not load: {exc}") from exc
        try:
            family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((settings.host, settings.port))
        except OSError as exc:
            self.close()
            raise HarnessError(f"the harness VTN cannot listen on {settings.host}:{settings.port}: {exc}") from exc
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="tgw-oadr-vtn-harness", daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise HarnessError(f"the harness VTN did not start on {settings.host}:{settings.port}")
            time.sleep(0.01)

    def close(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        if self.sock is not None:
            self.sock.close()
        self.server = self.thread = self.sock = None


class _Endpoint:
    """The ASGI application: read the body (bounded), let the harness answer, send the answer as XML."""

    def __init__(self, vtn: HarnessVtn) -> None:
        self.vtn = vtn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive, codec.MAX_MESSAGE_BYTES)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        status, content = self.vtn.handle(scope["method"], scope["path"], headers.get("content-type", ""), body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/xml"), (b"content-length", str(len(content)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": content})


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None once it exceeds ``limit`` (the rest is read and dropped)."""
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks) if size <= limit else None
