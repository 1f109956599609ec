"""The device side played against an IEEE 2030.5 (CSIP) server under test, and the checks made on what it serves.

The harness is a 2030.5 client with the vendor's client certificate: it starts at DeviceCapability (the target
URL; a bare ``https://host:port`` means the CSIP default ``/dcap``) and from there only follows the links the
server hands out, as a device must; it never builds a path, except where a case is about a path the server did
not hand out (another device's ``/edev/<sfdi>``). Every answer is read with the gateway's own 2030.5 codec, which
checks it against the schema (element order, required elements, types and ranges), after checking the status and
that it is ``application/sep+xml``; an answer that fails any of that fails the case with the reason. Every request
is logged as an :class:`Exchange`; transport errors fail the case (``pytest.fail``), they never escape the run.

The identity the server must recognise is computed here from the certificate, independently of the gateway's
own identity module: LFDI = the first 160 bits of the SHA-256 of the DER certificate, SFDI = its first 36 bits as
a decimal number with a check digit making the digit sum a multiple of 10.

:class:`NotificationListener` is the device's HTTPS endpoint for Notifications (subscriptions cases).
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from conformance.framework import Exchange, Target, truncate
from gateway.protocols.ieee2030_5 import codec
from gateway.protocols.ieee2030_5 import models as m
from gateway.protocols.ieee2030_5.suites import sep2_client

MEDIA_TYPE = codec.MEDIA_TYPE
CLOCK_TOLERANCE = 60  # seconds the DUT's clock may differ from ours (option ``clock_tolerance``)
PAGE = 50  # the ``l`` the harness asks for when it reads a whole list
MAX_PAGES = 40  # a list that needs more pages than this is not read to the end (the case says so)
CRAWL_LIMIT = 150  # resources the link walk visits at most
# Resources the client itself creates (PUT/POST) before they exist: a link to one may answer 404 until then.
CLIENT_WRITTEN_LINKS = frozenset(
    {
        "ConfigurationLink",
        "DERAvailabilityLink",
        "DERCapabilityLink",
        "DERSettingsLink",
        "DERStatusLink",
        "DeviceInformationLink",
        "DeviceStatusLink",
        "FileStatusLink",
        "PowerStatusLink",
    }
)
STATUS_NAMES = {0: "scheduled", 1: "active", 2: "cancelled", 3: "cancelled with randomization", 4: "superseded"}

M = TypeVar("M", bound=m.Sep2Model)


# --- identity -------------------------------------------------------------------------------------------------------


def lfdi_of_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()[:40].upper()


def sfdi_of_lfdi(lfdi: str) -> int:
    base = int(lfdi[:9], 16)
    return base * 10 + (10 - sum(int(d) for d in str(base)) % 10) % 10


def sfdi_check_digit_ok(sfdi: int) -> bool:
    return sfdi >= 0 and sum(int(d) for d in str(sfdi)) % 10 == 0


def certificate_der(path: str) -> bytes:
    """The DER bytes of the first certificate in a PEM file."""
    text = Path(path).read_text(encoding="ascii", errors="replace")
    begin = text.find("-----BEGIN CERTIFICATE-----")
    end = text.find("-----END CERTIFICATE-----", begin)
    if begin < 0 or end < 0:
        raise ValueError(f"{path} holds no PEM certificate")
    return ssl.PEM_cert_to_DER_cert(text[begin : end + len("-----END CERTIFICATE-----")])


def stranger_lfdi() -> str:
    """A well-formed LFDI no real certificate has (the harness's made-up other device)."""
    return hashlib.sha256(b"tgw-conformance: a device that is not the harness").hexdigest()[:40].upper()


# --- answers ----------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Answer:
    """A decoded answer, its bytes and the URL it came from."""

    model: Any
    raw: bytes
    http: httpx.Response
    url: str


@dataclass(slots=True)
class ListRead:
    """A whole list, read page by page: its items in the server's order, ``all`` as the server said it."""

    href: str
    all: int
    items: list[Any]
    pages: list[Answer] = field(default_factory=list)


@dataclass(slots=True)
class ProgramControls:
    program: m.DERProgram
    listing: ListRead  # the DERControlList

    @property
    def controls(self) -> list[m.DERControl]:
        return self.listing.items


def _ssl_context(target: Target, cert: str | None, key: str | None) -> ssl.SSLContext | bool:
    if not target.url.startswith("https"):
        return True
    return sep2_client(target.ca, cert, key)


def dcap_url(target: Target) -> str:
    """DeviceCapability's URL: the target itself, or ``/dcap`` when the target names only the server."""
    parts = urlsplit(target.url)
    return target.url if parts.path not in ("", "/") else target.url.rstrip("/") + "/dcap"


class HarnessDevice:
    """A 2030.5 client with the vendor's certificate; see the module docstring."""

    def __init__(
        self, target: Target, log: list[Exchange], cert: str | None = None, key: str | None = None, label: str = ""
    ) -> None:
        self.target = target
        self.log = log
        self.label = label
        self.dcap_url = dcap_url(target)
        cert = cert if cert is not None else target.cert
        key = key if key is not None else target.key
        self.cert = cert
        self.http = httpx.Client(verify=_ssl_context(target, cert, key), timeout=target.timeout)

    def close(self) -> None:
        self.http.close()

    # --- identity ---------------------------------------------------------------------------------------------------

    @property
    def lfdi(self) -> str:
        if not self.cert:
            pytest.fail("no client certificate was given (--cert/--key): a 2030.5 device is its certificate")
        return lfdi_of_der(certificate_der(self.cert))

    @property
    def sfdi(self) -> int:
        return sfdi_of_lfdi(self.lfdi)

    # --- transport --------------------------------------------------------------------------------------------------

    def url_of(self, href: str, params: dict[str, int] | None = None) -> str:
        url = httpx.URL(urljoin(self.dcap_url, href))
        return str(url.copy_merge_params(params)) if params else str(url)

    def request(
        self,
        method: str,
        href: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        params: dict[str, int] | None = None,
        note: str | None = None,
    ) -> httpx.Response:
        """Send one request; a transport error fails the case with what went wrong and where."""
        url = self.url_of(href, params)
        headers = {"Accept": MEDIA_TYPE}
        if content_type is not None:
            headers["Content-Type"] = content_type
        exchange = Exchange(method, url, truncate(body) if body else "", note=_join(self.label, note))
        self.log.append(exchange)
        try:
            response = self.http.request(method, url, content=body or None, headers=headers)
        except httpx.HTTPError as exc:
            exchange.error = f"{type(exc).__name__}: {exc}"
            pytest.fail(f"could not reach the DUT at {url}: {type(exc).__name__}: {exc}", pytrace=False)
        exchange.status = response.status_code
        exchange.response = truncate(response.content)
        kind = response.headers.get("content-type")
        if kind:
            exchange.note = _join(exchange.note, f"Content-Type: {kind}")
        return response

    def read(self, response: httpx.Response, what: str, expected: type[M] | None = None) -> Answer:
        """The answer to a GET: HTTP 200, application/sep+xml, schema-valid, of the expected type, with its href."""
        url = str(response.request.url)
        if response.status_code != 200:
            pytest.fail(
                f"{what} ({url}): HTTP {response.status_code}, expected 200; body: {truncate(response.content, 300)}",
                pytrace=False,
            )
        media_problem = media_type_problem(response)
        if media_problem:
            pytest.fail(f"{what} ({url}): {media_problem}", pytrace=False)
        try:
            model = codec.decode(response.content, expected)
        except codec.Sep2DecodeError as exc:
            pytest.fail(f"{what} ({url}) is not a schema-valid 2030.5 resource: {exc}", pytrace=False)
        if isinstance(model, m.Resource) and not model.href:
            pytest.fail(f"{what} ({url}): the resource has no href (required in the answer to a GET)", pytrace=False)
        return Answer(model, response.content, response, url)

    def get(
        self, href: str, what: str, expected: type[M] | None = None, params: dict[str, int] | None = None
    ) -> Answer:
        return self.read(self.request("GET", href, params=params, note=what), what, expected)

    def post(self, href: str, model: m.Sep2Model, note: str) -> httpx.Response:
        return self.request("POST", href, body=codec.encode(model), content_type=MEDIA_TYPE, note=note)

    def get_list(self, href: str, what: str, expected: type[M], items: str) -> ListRead:
        """A whole list, page by page with ``s`` and ``l``; fails when the pages do not add up to ``all``."""
        found: list[Any] = []
        pages: list[Answer] = []
        start = 0
        total = 0
        for _ in range(MAX_PAGES):
            answer = self.get(href, what, expected, params={"s": start, "l": PAGE})
            pages.append(answer)
            page = answer.model
            total = page.all
            chunk = list(getattr(page, items) or [])
            if len(chunk) != page.results:
                pytest.fail(
                    f"{what} ({answer.url}): results={page.results} but the page holds {len(chunk)} {items}",
                    pytrace=False,
                )
            found.extend(chunk)
            start += len(chunk)
            if not chunk or start >= total:
                break
        if len(found) != total:
            pytest.fail(
                f"{what} ({self.url_of(href)}): paging through it with s/l gave {len(found)} {items}, but all={total}",
                pytrace=False,
            )
        return ListRead(href, total, found, pages)

    # --- discovery: following links from DeviceCapability ----------------------------------------------------------

    def dcap(self) -> m.DeviceCapability:
        return self.get(self.dcap_url, "DeviceCapability", m.DeviceCapability).model

    def end_devices(self) -> ListRead:
        link = self.dcap().EndDeviceListLink
        if link is None:
            pytest.fail("DeviceCapability has no EndDeviceListLink", pytrace=False)
        return self.get_list(link.href, "EndDeviceList", m.EndDeviceList, "EndDevice")

    def own_end_device(self) -> m.EndDevice:
        """The harness device's EndDevice in the EndDeviceList (matched by the certificate's lFDI or sFDI)."""
        listing = self.end_devices()
        lfdi, sfdi = self.lfdi, self.sfdi
        for device in listing.items:
            if (device.lFDI or "").upper() == lfdi or device.sFDI == sfdi:
                return device
        shown = ", ".join(f"sFDI {d.sFDI} lFDI {d.lFDI}" for d in listing.items[:5]) or "none"
        pytest.fail(
            f"the EndDeviceList holds no EndDevice for this certificate (lFDI {lfdi}, sFDI {sfdi}); it holds: {shown}",
            pytrace=False,
        )

    def function_set_assignments(self) -> list[m.FunctionSetAssignments]:
        device = self.own_end_device()
        link = device.FunctionSetAssignmentsListLink
        if link is None:
            pytest.fail(f"the EndDevice {device.href} has no FunctionSetAssignmentsListLink", pytrace=False)
        listing = self.get_list(
            link.href, "FunctionSetAssignmentsList", m.FunctionSetAssignmentsList, "FunctionSetAssignments"
        )
        return listing.items

    def program_lists(self) -> list[ListRead]:
        """Every DERProgramList the device's FunctionSetAssignments link (one read each, duplicates once)."""
        seen: set[str] = set()
        lists: list[ListRead] = []
        for fsa in self.function_set_assignments():
            link = fsa.DERProgramListLink
            if link is None or link.href in seen:
                continue
            seen.add(link.href)
            lists.append(self.get_list(link.href, "DERProgramList", m.DERProgramList, "DERProgram"))
        if not lists:
            pytest.fail("no FunctionSetAssignments of this device links a DERProgramList", pytrace=False)
        return lists

    def programs(self) -> list[m.DERProgram]:
        return [p for listing in self.program_lists() for p in listing.items]

    def program_controls(self) -> list[ProgramControls]:
        """Each program with a DERControlListLink, and its DERControlList read to the end."""
        found = []
        for program in self.programs():
            link = program.DERControlListLink
            if link is None:
                continue
            what = f"DERControlList of program {program.mRID}"
            found.append(ProgramControls(program, self.get_list(link.href, what, m.DERControlList, "DERControl")))
        return found


# --- checks on what the server serves --------------------------------------------------------------------------------


def media_type_problem(response: httpx.Response) -> str | None:
    kind = response.headers.get("content-type", "")
    if kind.split(";")[0].strip().lower() != MEDIA_TYPE:
        return f"Content-Type is '{kind or 'missing'}', expected {MEDIA_TYPE}"
    return None


def links_of(model: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(field name, href) of every Link/ListLink in a model, and the href of every resource nested in it."""
    if not isinstance(model, m.Sep2Model):
        return
    for name in type(model).model_fields:
        value = getattr(model, name)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, m.Link):
                yield name, item.href
            elif isinstance(item, m.Resource):
                if item.href:
                    yield type(item).__name__, item.href
                yield from links_of(item)
            elif isinstance(item, m.Sep2Model):
                yield from links_of(item)


def time_problems(tm: m.Time, now: float, tolerance: int) -> list[str]:
    """Sanity of the Time resource's zone and daylight-saving fields (not the clock itself)."""
    problems = []
    if not -12 * 3600 <= tm.tzOffset <= 14 * 3600:
        problems.append(f"tzOffset {tm.tzOffset} s is not an offset between -12 h and +14 h")
    elif tm.tzOffset % 900:
        problems.append(f"tzOffset {tm.tzOffset} s is not a whole number of quarter hours")
    if not -7200 <= tm.dstOffset <= 7200 or tm.dstOffset % 900:
        problems.append(f"dstOffset {tm.dstOffset} s is not a daylight-saving shift (quarter hours, at most 2 h)")
    if not 3 <= tm.quality <= 7:
        problems.append(f"quality {tm.quality} is outside 3 (NTP) .. 7 (uncoordinated)")
    year = 366 * 86400
    for name in ("dstStartTime", "dstEndTime"):
        value = getattr(tm, name)
        if abs(value - tm.currentTime) > year:
            problems.append(f"{name} {value} is more than a year from currentTime {tm.currentTime}")
    if tm.dstOffset and tm.dstStartTime == tm.dstEndTime:
        problems.append(f"dstOffset is {tm.dstOffset} s but dstStartTime equals dstEndTime")
    if tm.localTime is not None:
        start, end = tm.dstStartTime, tm.dstEndTime
        inside = start <= tm.currentTime < end if start <= end else (tm.currentTime >= start or tm.currentTime < end)
        expected = tm.currentTime + tm.tzOffset + (tm.dstOffset if inside else 0)
        if abs(tm.localTime - expected) > 2:
            problems.append(
                f"localTime {tm.localTime} is not currentTime + tzOffset{' + dstOffset' if inside else ''} ({expected})"
            )
    return problems


def control_problems(control: m.DERControl) -> list[str]:
    """The shape of one DERControl: mRID, EventStatus, interval, randomization, replyTo, a control mode."""
    name = f"DERControl {control.mRID} ({control.href})"
    problems = []
    mrid = control.mRID or ""
    if len(mrid) != 32 or any(c not in "0123456789ABCDEFabcdef" for c in mrid):
        problems.append(f"{name}: mRID '{mrid}' is not 128 bits (32 hex digits)")
    status = getattr(control, "EventStatus", None)
    if status is None:
        problems.append(f"{name}: no EventStatus")
    elif status.currentStatus not in STATUS_NAMES:
        problems.append(f"{name}: EventStatus currentStatus {status.currentStatus} is not 0..4")
    if control.interval.duration <= 0:
        problems.append(f"{name}: interval duration {control.interval.duration} s is not positive")
    for attribute in ("randomizeStart", "randomizeDuration"):
        value = getattr(control, attribute)
        if value is not None and not -3600 <= value <= 3600:
            problems.append(f"{name}: {attribute} {value} s is outside -3600..3600")
    if int(control.responseRequired or "00", 16) != 0 and not control.replyTo:
        problems.append(f"{name}: responseRequired {control.responseRequired} but no replyTo")
    if not control.DERControlBase.model_dump(exclude_none=True):
        problems.append(f"{name}: DERControlBase sets no control mode")
    return problems


def window(control: m.DERControl, tolerance: int) -> tuple[int, int]:
    """The widest window the control can be in force for some device: randomization and clock tolerance added."""
    start = control.interval.start
    end = start + control.interval.duration
    rs = control.randomizeStart or 0
    rd = control.randomizeDuration or 0
    return start + min(rs, 0) - tolerance, end + max(rs, 0) + max(rd, 0) + tolerance


def surely_in_force(control: m.DERControl, now: int, tolerance: int) -> bool:
    """Whether ``now`` is inside the control's window for every device, whatever its randomization draw."""
    start = control.interval.start
    end = start + control.interval.duration
    rs = control.randomizeStart or 0
    rd = control.randomizeDuration or 0
    return start + max(rs, 0) + tolerance <= now < end + min(rs, 0) + min(rd, 0) - tolerance


def order_problems(controls: list[m.DERControl]) -> list[str]:
    """2030.5 list order of events: interval start ascending, then creationTime descending, then mRID descending."""

    def key(c: m.DERControl) -> tuple[int, int, str]:
        return c.interval.start, -c.creationTime, "".join(chr(255 - ord(x)) for x in c.mRID.upper())

    problems = []
    for position, (earlier, later) in enumerate(itertools.pairwise(controls)):
        if key(earlier) > key(later):
            problems.append(
                f"position {position}: {earlier.mRID} (start {earlier.interval.start}, created"
                f" {earlier.creationTime}) is listed before {later.mRID} (start {later.interval.start}, created"
                f" {later.creationTime})"
            )
    return problems


def problems_in(problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        pytest.fail("; ".join(problems[:10]) + more, pytrace=False)


def _join(*notes: str | None) -> str | None:
    kept = [n for n in notes if n]
    return "; ".join(kept) if kept else None


# --- the device's notification endpoint ------------------------------------------------------------------------------


@dataclass(slots=True)
class Received:
    path: str
    content_type: str
    body: bytes
    at: float


class NotificationListener:
    """An HTTPS endpoint the DUT POSTs Notifications to, run by the harness for the subscription cases.

    It binds ``host:port`` (port 0: any free port) and serves with ``cert``/``key`` (by default the device's own
    certificate, as a 2030.5 client serves its notification endpoint). It answers every POST 201 and keeps it.
    The URL it advertises uses ``advertise`` as the host: the address the harness reaches the DUT from, unless
    the operator names one.
    """

    def __init__(self, host: str, port: int, cert: str, key: str, advertise: str) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.received: list[Received] = []
        self.arrived = threading.Condition()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 1 << 20)) if length else b""
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with listener.arrived:
                    listener.received.append(
                        Received(self.path, self.headers.get("Content-Type", ""), body, time.monotonic())
                    )
                    listener.arrived.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.advertise = advertise
        self.thread = threading.Thread(target=self.server.serve_forever, name="tgw-2030.5-listener", daemon=True)
        self.thread.start()

    def url(self, token: str) -> str:
        host = f"[{self.advertise}]" if ":" in self.advertise else self.advertise
        return f"https://{host}:{self.port}/notify/{token}"

    def wait(self, accept: Callable[[Received], bool], timeout: float) -> Received | None:
        """The first POST ``accept`` takes, waiting up to ``timeout`` s for it."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                found = next((item for item in self.received if accept(item)), None)
                remaining = deadline - time.monotonic()
                if found is not None or remaining <= 0:
                    return found
                self.arrived.wait(remaining)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def local_address_towards(url: str) -> str:
    """The local address this host uses to reach ``url``'s host (no packet is sent)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    try:
        family, _type, _proto, _name, address = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False
