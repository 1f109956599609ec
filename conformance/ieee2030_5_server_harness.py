"""The utility server the ieee2030_5-client suite plays against a DER client (inverter, gateway) under test.

A scripted, minimal but correct IEEE 2030.5 (CSIP) server, built with the gateway's own codec and models and its
event engine, and owned by the harness: the gateway's Sep2Server is a product under other tests, and a harness
that shared its code could not catch a bug the two have in common. It serves HTTPS with mutual TLS (``--cert`` /
``--key`` its own certificate, ``--ca`` the CA that issued the device's) and knows the device only by the
certificate it presents: LFDI and SFDI are derived from it with the conformance package's own identity functions.

What it serves, all reached by links from DeviceCapability (``/dcap``, or the target URL's path): Time (a clock
deliberately offset from the wall clock, so a device that schedules by its own clock is seen to), the
EndDeviceList with the device's EndDevice, Registration, FunctionSetAssignments, a DERProgramList of two programs
(``pollRate`` given), their DERControlLists, ActiveDERControlLists and the main program's DefaultDERControl, and a
ResponseSet per program whose ResponseList takes the device's Responses. Every other path is 404. Every path
outside ``/dcap`` carries a prefix drawn per run, so a device that builds paths instead of following links does not
find them by accident; whether a requested path had been handed out *before* it was requested is recorded anyway.

The first device to present a certificate (or the one ``--lfdi`` names) is the device under test; its arrival
starts the :class:`Script`, a timeline of DERControls in units of ``--pace`` seconds (see its docstring). Any
other certificate is answered 403 and noted. Every request of the device is kept as an :class:`Observation`
with the harness clock's time, what was asked and what was answered; the suite's cases judge those.
"""

from __future__ import annotations

import contextlib
import html
import math
import re
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from conformance.framework import Exchange, Target, truncate
from conformance.ieee2030_5_client_script import Script, ScriptedControl, ScriptedProgram, mrid
from conformance.ieee2030_5_harness import lfdi_of_der, sfdi_of_lfdi
from gateway.protocols.ieee2030_5 import codec
from gateway.protocols.ieee2030_5 import models as m
from gateway.protocols.ieee2030_5.suites import allow_sep2_suite, is_ecdsa_certificate

MEDIA_TYPE = codec.MEDIA_TYPE
DEFAULT_PACE = 10  # seconds per scenario unit: the whole script lasts 16 units plus the allowance for lateness
DEFAULT_POLL_RATE = 5  # seconds, the pollRate the harness gives
DEFAULT_GRACE = 5.0  # seconds a Response may come after its due moment, on top of one pollRate
DEFAULT_TIME_OFFSET = -5000  # the harness's 2030.5 clock runs this many seconds from the wall clock
DEFAULT_DEVICE_WAIT = 120.0
DEFAULT_PIN = 111115
EARLY = 1.0  # seconds a Response may come before its due moment: 2030.5 times are whole seconds
MAX_BODY = 1 << 16
MAX_OBSERVATIONS = 100_000
STATUS_NAMES = {
    1: "received",
    2: "started",
    3: "completed",
    4: "opted out",
    5: "opted in",
    6: "cancelled",
    7: "superseded",
    13: "aborted by another server's event",
    14: "aborted by another program's event",
    252: "rejected: not applicable",
    253: "rejected: invalid",
    254: "rejected: received after expiry",
}
_HREF = re.compile(rb'(?:href|replyTo)="([^"]*)"')
N = TypeVar("N", int, float)


# --- configuration ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HarnessConfig:
    """What the target and its options say; :meth:`from_target` refuses what cannot make a meaningful run."""

    host: str
    port: int
    dcap_path: str
    cert: str
    key: str
    ca: str
    pace: int
    poll_rate: int
    grace: float
    time_offset: int
    device_wait: float
    lfdi: str | None
    pin: int

    @property
    def late(self) -> float:
        """How long after its due moment a Response may arrive: one poll to notice, plus the grace."""
        return self.poll_rate + self.grace

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}{self.dcap_path}"

    @classmethod
    def from_target(cls, target: Target) -> HarnessConfig:
        """Raises ValueError with the reason a vendor needs to fix the command line."""
        parts = urlsplit(target.url)
        if parts.scheme != "https" or not parts.hostname or parts.port is None:
            raise ValueError(
                f"--target must be https://HOST:PORT (where the harness listens, mutual TLS), not {target.url!r}"
            )
        missing = [
            name for name, value in (("--cert", target.cert), ("--key", target.key), ("--ca", target.ca)) if not value
        ]
        if missing:
            raise ValueError(
                f"the harness needs {', '.join(missing)}: its server certificate and key, and the CA that issued the"
                " device's client certificate"
            )
        pace = _number(target, "pace", DEFAULT_PACE, int)
        poll_rate = _number(target, "poll_rate", DEFAULT_POLL_RATE, int)
        grace = _number(target, "grace", DEFAULT_GRACE, float)
        if not 2 <= pace <= 1800:
            raise ValueError(f"--pace {pace}: between 2 and 1800 seconds (randomizeStart is 2 x pace, at most 3600)")
        if not 1 <= poll_rate <= pace:
            raise ValueError(f"--poll-rate {poll_rate}: between 1 s and the pace ({pace} s), or new controls go unseen")
        if grace < 0:
            raise ValueError(f"--grace {grace}: not negative")
        lfdi = target.option("lfdi").strip().upper() or None
        if lfdi is not None and not re.fullmatch(r"[0-9A-F]{40}", lfdi):
            raise ValueError(f"--lfdi {lfdi!r} is not an LFDI (40 hex digits)")
        pin = _number(target, "pin", DEFAULT_PIN, int)
        if not 0 <= pin <= 999999:
            raise ValueError(f"--pin {pin}: six digits")
        return cls(
            host=parts.hostname,
            port=parts.port,
            dcap_path=parts.path if parts.path not in ("", "/") else "/dcap",
            cert=str(target.cert),
            key=str(target.key),
            ca=str(target.ca),
            pace=pace,
            poll_rate=poll_rate,
            grace=grace,
            time_offset=_number(target, "time_offset", DEFAULT_TIME_OFFSET, int),
            device_wait=_number(target, "device_wait", DEFAULT_DEVICE_WAIT, float),
            lfdi=lfdi,
            pin=pin,
        )


def _number(target: Target, name: str, default: N, kind: type[N]) -> N:
    text = target.option(name).strip()
    if not text:
        return default
    try:
        return kind(text)
    except ValueError:
        raise ValueError(
            f"--{name.replace('_', '-')} {text!r} is not a{'n integer' if kind is int else ' number'}"
        ) from None


# --- what the device did --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Observation:
    """One request of the device under test and the harness's answer; ``at`` is on the harness clock."""

    at: float
    method: str
    path: str
    query: str
    content_type: str
    body: bytes
    status: int
    answer: bytes
    linked: bool  # the path had been handed out (a link, an href, a replyTo, a Location) before this request
    location: str | None = None

    def param(self, name: str) -> str | None:
        values = parse_qs(self.query).get(name)
        return values[0] if values else None

    def exchange(self, t0: float | None, note: str | None = None) -> Exchange:
        when = f"at t0{self.at - t0:+.1f}s" if t0 is not None else f"at {self.at:.1f}"
        kind = f"; Content-Type: {self.content_type}" if self.content_type else ""
        url = self.path + (f"?{self.query}" if self.query else "")
        return Exchange(
            self.method,
            url,
            truncate(self.body) if self.body else "",
            status=self.status,
            response=truncate(self.answer),
            note="; ".join(x for x in (note, f"{when} (harness clock){kind}") if x),
        )


@dataclass(frozen=True, slots=True)
class Posted:
    """A POST of the device, read as a 2030.5 Response; ``problem`` says why it could not be read as one."""

    observation: Observation
    response: m.Response | None
    problem: str | None


@dataclass(frozen=True, slots=True)
class SeenDevice:
    lfdi: str
    sfdi: int
    first_seen: float


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = None
    location: str | None = None
    reason: str | None = None  # sent as X-Error-Reason, as the gateway's own server does


# --- the server -------------------------------------------------------------------------------------------------


class HarnessServer:
    """The harness's 2030.5 server; see the module docstring. ``start`` listens, ``close`` stops and drops every
    connection (a device's keep-alive connection must not outlive the run)."""

    def __init__(self, config: HarnessConfig) -> None:
        self.config = config
        self.token = secrets.token_hex(8).upper()
        self.prefix = f"/h{self.token[:6].lower()}"
        self.lock = threading.Lock()
        self.arrived = threading.Event()
        self.device: SeenDevice | None = None
        self.script: Script | None = None
        self.observations: list[Observation] = []
        self.refusals: dict[str, int] = {}
        self.handshakes: dict[tuple[str, str], int] = {}  # (TLS version, suite) -> connections that negotiated it
        self.ecdsa = False  # whether the harness's certificate can carry the 2030.5 suite (set by start)
        self.handed_out: set[str] = {config.dcap_path}
        self.stored: dict[str, list[m.Response]] = {}
        self._read: dict[int, Posted] = {}  # observation index -> its POST read as a Response
        self._http: _TlsServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen on the target's host and port; raises OSError (ssl.SSLError included) with the reason."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # 2030.5 is TLS 1.2 with one suite. Offering only 1.2, the 2030.5 suite first and the server's order winning,
        # the suite a connection negotiates says whether the device offers it (SEP-CLI-CONN-002); devices that do
        # not still connect with another suite, so the other cases can judge them.
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
        allow_sep2_suite(context, first=True)
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        context.load_cert_chain(self.config.cert, self.config.key)  # an unusable file fails here, as an SSLError
        self.ecdsa = is_ecdsa_certificate(self.config.cert)
        context.load_verify_locations(cafile=self.config.ca)
        context.verify_mode = ssl.CERT_REQUIRED
        self._http = _TlsServer((self.config.host, self.config.port), self, context)
        self._thread = threading.Thread(target=self._http.serve_forever, name="tgw-2030.5-harness", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http.drop_connections()
            self._http = None

    def clock(self) -> float:
        """The harness's 2030.5 clock: the wall clock plus the configured offset."""
        return time.time() + self.config.time_offset

    def wait_for_device(self, timeout: float) -> SeenDevice | None:
        self.arrived.wait(timeout)
        return self.device

    def wait_until(self, moment: float) -> None:
        """Sleep until the harness clock reaches ``moment``."""
        while (left := moment - self.clock()) > 0:
            time.sleep(min(left, 0.5))

    def snapshot(self) -> list[Observation]:
        with self.lock:
            return list(self.observations)

    def posts(self) -> list[Posted]:
        """Every POST the device made, read as a Response (whatever the harness answered); each is read once."""
        found = []
        for index, seen in enumerate(self.snapshot()):
            if seen.method != "POST":
                continue
            posted = self._read.get(index)
            if posted is None:
                posted = self._read[index] = _read_post(seen)
            found.append(posted)
        return found

    def refused(self, reason: str) -> None:
        with self.lock:
            self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def handshook(self, version: str, suite: str) -> None:
        with self.lock:
            self.handshakes[(version, suite)] = self.handshakes.get((version, suite), 0) + 1

    # --- requests ---------------------------------------------------------------------------------------------

    def dispatch(self, method: str, target: str, content_type: str, body: bytes, der: bytes | None) -> Reply:
        """One request from a TLS peer with certificate ``der``: identify, route, record."""
        if not der:
            self.refused("a client presented no certificate")
            return Reply(403)
        lfdi = lfdi_of_der(der)
        with self.lock:
            now = self.clock()
            if self.device is None:
                if self.config.lfdi is not None and lfdi != self.config.lfdi:
                    reason = f"a certificate with LFDI {lfdi} (not the --lfdi {self.config.lfdi}) was answered 403"
                    self.refusals[reason] = self.refusals.get(reason, 0) + 1
                    return Reply(403)
                self.device = SeenDevice(lfdi, sfdi_of_lfdi(lfdi), now)
                self.script = Script(math.ceil(now), self.config.pace, self.config.late, self.token)
                self.stored = {program.key: [] for program in self.script.programs}
                self.arrived.set()
            elif lfdi != self.device.lfdi:
                reason = f"a second certificate (LFDI {lfdi}) was answered 403: one device per run"
                self.refusals[reason] = self.refusals.get(reason, 0) + 1
                return Reply(403)
            parts = urlsplit(target)
            path = parts.path or "/"
            linked = path in self.handed_out
            try:
                reply = self._route(method, path, parts.query, content_type, body, now)
            except ValueError as exc:  # a query the harness cannot read
                reply = _error(400, 0, str(exc))
            if reply.status < 300:
                self.handed_out.update(_hrefs(reply.body))
                if reply.location:
                    self.handed_out.add(reply.location)
            if len(self.observations) < MAX_OBSERVATIONS:
                self.observations.append(
                    Observation(
                        now,
                        method,
                        path,
                        parts.query,
                        content_type,
                        body,
                        reply.status,
                        reply.body,
                        linked,
                        reply.location,
                    )
                )
            return reply

    def _route(self, method: str, path: str, query: str, content_type: str, body: bytes, now: float) -> Reply:
        assert self.device is not None and self.script is not None
        if path == self.config.dcap_path:
            return self._get(method) or _ok(self._dcap())
        if not path.startswith(self.prefix + "/"):
            return Reply(404)
        params = parse_qs(query)
        script, sfdi = self.script, str(self.device.sfdi)
        match path[len(self.prefix) + 1 :].split("/"):
            case ["rsps", key, "rsp"] if key in self.stored and method == "POST":
                return self._take_response(key, content_type, body)
            case _ if method != "GET":
                return Reply(405)
            case ["tm"]:
                return _ok(self._time(now))
            case ["edev"]:
                return _ok(
                    _paged(
                        m.EndDeviceList,
                        "EndDevice",
                        [self._end_device()],
                        params,
                        self.href("edev"),
                        pollRate=self.config.poll_rate,
                    )
                )
            case ["edev", found] if found == sfdi:
                return _ok(self._end_device())
            case ["edev", found, "rg"] if found == sfdi:
                return _ok(
                    m.Registration(
                        href=self.href(f"edev/{sfdi}/rg"), dateTimeRegistered=script.t0 - 86400, pIN=self.config.pin
                    )
                )
            case ["edev", found, "fsa"] if found == sfdi:
                return _ok(
                    _paged(
                        m.FunctionSetAssignmentsList,
                        "FunctionSetAssignments",
                        [self._fsa()],
                        params,
                        self.href(f"edev/{sfdi}/fsa"),
                        pollRate=self.config.poll_rate,
                    )
                )
            case ["edev", found, "fsa", "0"] if found == sfdi:
                return _ok(self._fsa())
            case ["derp"]:
                programs = [self._program(p, now) for p in script.programs]
                return _ok(
                    _paged(
                        m.DERProgramList,
                        "DERProgram",
                        programs,
                        params,
                        self.href("derp"),
                        pollRate=self.config.poll_rate,
                    )
                )
            case ["derp", key, *rest] if (program := script.program(key)) is not None:
                return self._program_part(program, rest, params, now)
            case ["rsps"]:
                sets = [self._response_set(p) for p in script.programs]
                return _ok(_paged(m.ResponseSetList, "ResponseSet", sets, params, self.href("rsps")))
            case ["rsps", key] if (program := script.program(key)) is not None:
                return _ok(self._response_set(program))
            case ["rsps", key, "rsp"] if key in self.stored:
                return _ok(_paged(m.ResponseList, "Response", self.stored[key], params, self.href(f"rsps/{key}/rsp")))
            case ["rsps", key, "rsp", number] if key in self.stored and number.isdigit():
                stored = self.stored[key]
                return _ok(stored[int(number)]) if int(number) < len(stored) else Reply(404)
        return Reply(404)

    def _program_part(
        self, program: ScriptedProgram, rest: list[str], params: dict[str, list[str]], now: float
    ) -> Reply:
        assert self.script is not None
        base = f"derp/{program.key}"
        match rest:
            case []:
                return _ok(self._program(program, now))
            case ["derc"]:
                controls = [self._control(c, now) for c in self.script.visible(program, now)]
                return _ok(
                    _paged(m.DERControlList, "DERControl", controls, params, self.href(f"{base}/derc"), subscribable=0)
                )
            case ["derc", found]:
                control = self.script.by_mrid(found)
                if control is None or control.program is not program or control.created > now:
                    return Reply(404)
                return _ok(self._control(control, now))
            case ["actderc"]:
                active = set(self.script.evaluate(now).active)
                controls = [self._control(c, now) for c in self.script.visible(program, now) if c.mrid in active]
                return _ok(
                    _paged(
                        m.DERControlList, "DERControl", controls, params, self.href(f"{base}/actderc"), subscribable=0
                    )
                )
            case ["dderc"] if program.default_limit is not None:
                return _ok(
                    m.DefaultDERControl(
                        href=self.href(f"{base}/dderc"),
                        mRID=mrid(self.token, 100 + program.primacy),
                        description="fallback when nothing is active",
                        DERControlBase=m.DERControlBase(opModMaxLimW=program.default_limit),
                    )
                )
        return Reply(404)

    def _take_response(self, key: str, content_type: str, body: bytes) -> Reply:
        """A correct server's answer to a posted Response: 415 for another media type, 400 for a body that is not
        a schema-valid Response, 403 for another device's LFDI, else 201 with its Location."""
        assert self.device is not None
        if content_type.split(";")[0].strip().lower() != MEDIA_TYPE:
            return _error(415, 0, f"Content-Type {content_type or 'missing'}, expected {MEDIA_TYPE}")
        try:
            response = codec.decode(body, m.Response)
        except codec.Sep2DecodeError as exc:
            return _error(400, 0, str(exc))
        if response.endDeviceLFDI.upper() != self.device.lfdi:
            return Reply(403, reason=f"endDeviceLFDI {response.endDeviceLFDI} is not this certificate's LFDI")
        stored = self.stored[key]
        location = self.href(f"rsps/{key}/rsp/{len(stored)}")
        stored.append(response.model_copy(update={"href": location}))
        return Reply(201, location=location)

    # --- resources ----------------------------------------------------------------------------------------------

    def href(self, tail: str) -> str:
        """The path of a harness resource (under the per-run prefix)."""
        return f"{self.prefix}/{tail}"

    def _get(self, method: str) -> Reply | None:
        return None if method == "GET" else Reply(405)

    def _dcap(self) -> m.DeviceCapability:
        return m.DeviceCapability(
            href=self.config.dcap_path,
            ResponseSetListLink=m.ListLink(href=self.href("rsps"), all=2),
            TimeLink=m.Link(href=self.href("tm")),
            EndDeviceListLink=m.ListLink(href=self.href("edev"), all=1),
            pollRate=self.config.poll_rate,
        )

    def _time(self, now: float) -> m.Time:
        current = int(now)
        year = current - current % (365 * 86400)  # a fixed zone without daylight saving: offsets 0
        return m.Time(
            href=self.href("tm"),
            currentTime=current,
            dstEndTime=year,
            dstOffset=0,
            dstStartTime=year,
            localTime=current,
            quality=3,  # the server's clock is the device's authority, offset or not
            tzOffset=0,
        )

    def _end_device(self) -> m.EndDevice:
        assert self.device is not None and self.script is not None
        sfdi = self.device.sfdi
        return m.EndDevice(
            href=self.href(f"edev/{sfdi}"),
            lFDI=self.device.lfdi,
            sFDI=sfdi,
            changedTime=self.script.t0,
            enabled=True,
            FunctionSetAssignmentsListLink=m.ListLink(href=self.href(f"edev/{sfdi}/fsa"), all=1),
            RegistrationLink=m.Link(href=self.href(f"edev/{sfdi}/rg")),
        )

    def _fsa(self) -> m.FunctionSetAssignments:
        assert self.device is not None
        return m.FunctionSetAssignments(
            href=self.href(f"edev/{self.device.sfdi}/fsa/0"),
            DERProgramListLink=m.ListLink(href=self.href("derp"), all=2),
            TimeLink=m.Link(href=self.href("tm")),
            mRID=mrid(self.token, 3),
            description="tgw conformance harness",
        )

    def _program(self, program: ScriptedProgram, now: float) -> m.DERProgram:
        assert self.script is not None
        base = f"derp/{program.key}"
        count = len(self.script.visible(program, now))
        default = m.Link(href=self.href(f"{base}/dderc")) if program.default_limit is not None else None
        return m.DERProgram(
            href=self.href(base),
            mRID=program.mrid,
            description=program.description,
            ActiveDERControlListLink=m.ListLink(href=self.href(f"{base}/actderc")),
            DefaultDERControlLink=default,
            DERControlListLink=m.ListLink(href=self.href(f"{base}/derc"), all=count),
            primacy=program.primacy,
        )

    def _control(self, control: ScriptedControl, now: float) -> m.DERControl:
        assert self.script is not None
        view = self.script.evaluate(now).status[control.mrid]
        return m.DERControl(
            href=self.href(f"derp/{control.program.key}/derc/{control.mrid}"),
            replyTo=self.href(f"rsps/{control.program.key}/rsp"),
            responseRequired=control.response_required,
            mRID=control.mrid,
            description=f"{control.key}: {control.role}"[:32],
            creationTime=control.created,
            EventStatus=m.EventStatus(
                currentStatus=view.current_status,
                dateTime=view.date_time,
                potentiallySuperseded=view.potentially_superseded,
                potentiallySupersededTime=view.potentially_superseded_time,
                reason=view.reason,
            ),
            interval=m.DateTimeInterval(duration=control.duration, start=control.start),
            randomizeStart=control.randomize_start or None,
            DERControlBase=m.DERControlBase(opModMaxLimW=control.limit),
        )

    def _response_set(self, program: ScriptedProgram) -> m.ResponseSet:
        key = program.key
        return m.ResponseSet(
            href=self.href(f"rsps/{key}"),
            mRID=mrid(self.token, 200 + program.primacy),
            description=f"responses to {program.description}"[:32],
            ResponseListLink=m.ListLink(href=self.href(f"rsps/{key}/rsp"), all=len(self.stored[key])),
        )


def _read_post(seen: Observation) -> Posted:
    try:
        model = codec.decode(seen.body)
    except codec.Sep2DecodeError as exc:
        return Posted(seen, None, f"not a schema-valid 2030.5 document: {exc}")
    if isinstance(model, m.Response):
        return Posted(seen, model, None)
    return Posted(seen, None, f"a {type(model).__name__}, not a Response")


def _ok(model: m.Sep2Model) -> Reply:
    return Reply(200, codec.encode(model), MEDIA_TYPE)


def _error(status: int, reason_code: int, reason: str) -> Reply:
    return Reply(status, codec.encode(m.Error(reasonCode=reason_code)), MEDIA_TYPE, reason=reason[:300])


def _paged(kind: type[Any], items: str, found: list[Any], params: dict[str, list[str]], href: str, **extra: Any) -> Any:
    """A page of a list with 2030.5 query semantics: ``s`` start (default 0), ``l`` limit (default 1)."""
    try:
        start = int(params.get("s", ["0"])[0])
        limit = int(params.get("l", ["1"])[0])
    except ValueError:
        raise ValueError("s and l must be integers") from None
    if start < 0 or limit < 0:
        raise ValueError("s and l must not be negative")
    chunk = found[start : start + min(limit, 255)]
    return kind(href=href, all=len(found), results=len(chunk), **{items: chunk}, **extra)


def _hrefs(body: bytes) -> set[str]:
    """The paths an answer hands out (href and replyTo attributes), without query or host."""
    return {urlsplit(html.unescape(found.decode())).path for found in _HREF.findall(body)}


# --- HTTPS ----------------------------------------------------------------------------------------------------------


class _TlsServer(ThreadingHTTPServer):
    """A threading HTTPS server whose TLS handshake runs in the connection's own thread (a slow or failing
    client cannot hold up accept) and which can drop every open connection when the run ends."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], harness: HarnessServer, context: ssl.SSLContext) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.harness = harness
        self.context = context
        self.open: set[socket.socket] = set()
        self.open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a device hanging up mid-answer is its business; the run goes on

    def drop_connections(self) -> None:
        with self.open_lock:
            for sock in list(self.open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self.open.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _TlsServer
    peer: bytes | None = None

    def handle(self) -> None:
        connection: Any = self.connection
        try:
            connection.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            self.server.harness.refused(f"a TLS handshake from {self.client_address[0]} failed: {exc}")
            return
        self.peer = connection.getpeercert(binary_form=True)
        self.server.harness.handshook(connection.version() or "?", (connection.cipher() or ("?",))[0])
        with self.server.open_lock:
            self.server.open.add(connection)
        try:
            super().handle()
        finally:
            with self.server.open_lock:
                self.server.open.discard(connection)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _serve(self) -> None:
        body = self._body()
        if body is None:
            self.send_response(413)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            return
        reply = self.server.harness.dispatch(
            self.command, self.path, self.headers.get("Content-Type", ""), body, self.peer
        )
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        if reply.location:
            self.send_header("Location", reply.location)
        if reply.reason:
            self.send_header("X-Error-Reason", reply.reason.encode("ascii", "replace").decode())
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _body(self) -> bytes | None:
        """The request body (Content-Length or chunked), or None when it is larger than MAX_BODY."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = bytearray()
            while True:
                size = int(self.rfile.readline(64).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(chunks)
                if len(chunks) + size > MAX_BODY:
                    return None
                chunks += self.rfile.read(size)
                self.rfile.readline(8)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            return None
        return self.rfile.read(length) if length > 0 else b""
