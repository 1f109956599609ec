"""A small IEEE 2030.5 (CSIP) client: the "correct device" the tests, the conformance suites and the demo use.

It talks to a utility server over mutual TLS with its own device certificate and behaves as CSIP asks of a DER
client:

- it finds everything by following links from DeviceCapability (``/dcap`` by default), never by building paths,
  because a server is free to choose its own URLs;
- it reads whole lists by paging with ``s``/``l`` until it has the ``all`` the server announced, because a server
  may cut a page shorter than asked;
- it checks that the server knows it under the names derived from its own certificate (LFDI/SFDI, computed with
  :mod:`identity`) and, when given one, the Registration PIN, because a device must not act on another device's
  programs;
- it keeps its clock in step with the server's Time resource (:meth:`Sep2Client.time_offset`), because event
  windows are in server time;
- :class:`ControlTracker` answers DERControls with the Responses a compliant device owes, at the moments it owes
  them, as decided by the same pure event engine the server uses (:mod:`engine`): 1 received, 2 started,
  3 completed, 6 cancelled, 7 superseded, 254 received after expiry.

Every failed request raises :class:`Sep2ClientError` with the method, the URL, the HTTP status, the server's
``X-Error-Reason`` header and the Error body's reasonCode, so a person can see what the server refused and why.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx

from gateway.protocols.ieee2030_5 import codec, engine
from gateway.protocols.ieee2030_5 import models as m
from gateway.protocols.ieee2030_5.identity import lfdi_of_certificate, sfdi_of_lfdi
from gateway.protocols.ieee2030_5.suites import sep2_client

__all__ = [
    "ControlTracker",
    "DeviceView",
    "ProgramState",
    "SentResponse",
    "Sep2Client",
    "Sep2ClientError",
    "TariffState",
    "average_power_reading",
]

MEDIA_TYPE = codec.MEDIA_TYPE
REASON_HEADER = "X-Error-Reason"
PAGE = 50
"""The ``l`` asked for when a whole list is read (the server may answer fewer; paging continues)."""
MAX_PAGES = 1000
"""A list that needs more pages than this is refused as a server fault rather than read forever."""
_UOM_W = 38
_KIND_DEMAND = 8  # ReadingType.kind: demand (average power over the interval)
_FLOW_FORWARD = 1  # ReadingType.flowDirection: forward (delivered to the customer); 19 reverse

L = TypeVar("L", bound=m.Sep2Model)


class Sep2ClientError(Exception):
    """A request the server refused, or an answer a 2030.5 client cannot accept.

    ``status`` is the HTTP status (None when the answer itself was wrong, e.g. not ``application/sep+xml``),
    ``reason`` the server's ``X-Error-Reason`` (or what was wrong with the answer) and ``reason_code`` the Error
    body's reasonCode (0 invalid request format, 1 invalid request values, 2 resource limit reached, 3 conditional
    subscription field not supported, 4 maximum request frequency exceeded) when the server sent one.
    """

    def __init__(self, method: str, url: str, status: int | None, reason: str, reason_code: int | None = None) -> None:
        where = f"{method} {url}"
        what = f"HTTP {status}" if status is not None else "bad answer"
        code = f" (Error reasonCode {reason_code})" if reason_code is not None else ""
        super().__init__(f"{where}: {what}: {reason or 'no reason given'}{code}")
        self.method = method
        self.url = url
        self.status = status
        self.reason = reason
        self.reason_code = reason_code


# -- what discovery finds ---------------------------------------------------------------------------


@dataclass(slots=True)
class ProgramState:
    """One DERProgram as the device read it: all its controls, the active ones and its default."""

    program: m.DERProgram
    controls: list[m.DERControl] = field(default_factory=list)
    active: list[m.DERControl] = field(default_factory=list)
    default: m.DefaultDERControl | None = None

    def control(self, mrid: str) -> m.DERControl | None:
        return next((c for c in self.controls if c.mRID == mrid.upper()), None)


@dataclass(slots=True)
class TariffState:
    """One TariffProfile with its time tariff intervals and their consumption prices."""

    profile: m.TariffProfile
    intervals: list[tuple[m.TimeTariffInterval, list[m.ConsumptionTariffInterval]]] = field(default_factory=list)

    def prices(self) -> list[tuple[int, int, Decimal]]:
        """(start, duration, price in currency per kWh) of each interval's first consumption block."""
        power = self.profile.pricePowerOfTenMultiplier or 0
        found: list[tuple[int, int, Decimal]] = []
        for interval, blocks in self.intervals:
            priced = [b for b in blocks if b.price is not None]
            if not priced:
                continue
            block = min(priced, key=lambda b: b.consumptionBlock)
            assert block.price is not None
            found.append((interval.interval.start, interval.interval.duration, Decimal(block.price).scaleb(power)))
        return sorted(found)


@dataclass(slots=True)
class DeviceView:
    """Everything :meth:`Sep2Client.discover` found, in the order it followed the links."""

    capability: m.DeviceCapability
    time: m.Time
    time_offset: int
    end_device: m.EndDevice
    registration: m.Registration | None
    assignments: list[m.FunctionSetAssignments]
    programs: list[ProgramState]
    tariffs: list[TariffState] = field(default_factory=list)

    def controls(self) -> Iterator[tuple[m.DERProgram, m.DERControl]]:
        """Every (program, control), programs by primacy."""
        for state in sorted(self.programs, key=lambda p: p.program.primacy):
            for control in state.controls:
                yield state.program, control

    def control(self, mrid: str) -> m.DERControl | None:
        return next((c for _p, c in self.controls() if c.mRID == mrid.upper()), None)

    def program_of(self, mrid: str) -> ProgramState | None:
        return next((p for p in self.programs if p.control(mrid) is not None), None)


@dataclass(frozen=True, slots=True)
class SentResponse:
    """A Response the tracker posted: to which control, which status, when, and where the server filed it."""

    mrid: str
    status: int
    at: int
    location: str | None


# -- the client -------------------------------------------------------------------------------------


class Sep2Client:
    """A 2030.5 device talking to one utility server; see the module docstring.

    ``cert``/``key`` are the device's certificate and key (PEM files): the server knows the device by the LFDI of
    that certificate. ``ca`` is the CA bundle that signed the server's certificate. ``pin`` is the Registration
    PIN the device was provisioned with (checked by :meth:`discover` when given). ``base_url`` is the server's
    ``https://host:port``, optionally with the DeviceCapability path (``/dcap`` if it has none). ``page_size`` is
    the ``l`` asked for when reading a whole list.
    """

    def __init__(
        self,
        base_url: str,
        cert: str | Path,
        key: str | Path,
        ca: str | Path,
        *,
        pin: int | None = None,
        timeout: float = 10.0,
        page_size: int = PAGE,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(f"base_url must be an https://host:port URL, not {base_url!r}")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.dcap_href = parts.path if parts.path not in ("", "/") else "/dcap"
        self.pin = pin
        self.page_size = page_size
        self.lfdi, self.sfdi = _identity_of(Path(cert))
        self.http = httpx.Client(verify=sep2_client(str(ca), str(cert), str(key)), timeout=timeout)
        self.offset = 0
        self.view: DeviceView | None = None
        self.acknowledged: set[str] = set()
        """mRIDs answered "received" by :meth:`acknowledge`, so that polling again does not answer them twice."""

    # -- plumbing --------------------------------------------------------------------------------

    def url(self, href: str) -> str:
        """The absolute URL of a link (hrefs are host-relative paths, or absolute URLs)."""
        return urljoin(self.origin + "/", href)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Sep2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        href: str,
        body: m.Sep2Model | bytes | None = None,
        *,
        params: dict[str, int] | None = None,
        expect: Iterable[int] = (200,),
    ) -> httpx.Response:
        """One request; raises Sep2ClientError unless the status is one of ``expect``."""
        url = self.url(href)
        content = codec.encode(body) if isinstance(body, m.Sep2Model) else body
        headers = {"Accept": MEDIA_TYPE}
        if content is not None:
            headers["Content-Type"] = MEDIA_TYPE
        try:
            answer = self.http.request(method, url, content=content, headers=headers, params=params)
        except httpx.HTTPError as exc:
            raise Sep2ClientError(method, url, None, f"{type(exc).__name__}: {exc}") from exc
        if answer.status_code not in set(expect):
            raise Sep2ClientError(method, url, answer.status_code, *_refusal(answer))
        return answer

    def get(self, href: str, expected: type[L], *, params: dict[str, int] | None = None) -> L:
        """GET a resource and decode it as ``expected`` (schema-checked by the codec)."""
        answer = self.request("GET", href, params=params)
        media = answer.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != MEDIA_TYPE:
            raise Sep2ClientError(
                "GET", self.url(href), None, f"answered {media or 'no'} Content-Type, not {MEDIA_TYPE}"
            )
        try:
            return codec.decode(answer.content, expected)
        except codec.Sep2DecodeError as exc:
            raise Sep2ClientError("GET", self.url(href), None, f"not a valid {expected.__name__}: {exc}") from None

    def get_all(self, href: str, expected: type[L], items: str) -> tuple[L, list[Any]]:
        """A whole list: pages of ``l=page_size`` from ``s=0`` until ``all`` items were read. Returns the first page
        (for its attributes) and every item. A server that announces more than it delivers is an error, since a
        device must not act on a partial list believing it whole."""
        first = self.get(href, expected, params={"s": 0, "l": self.page_size})
        total: int = first.all  # type: ignore[attr-defined]
        found: list[Any] = list(getattr(first, items) or [])
        pages = 1
        while len(found) < total:
            page = self.get(href, expected, params={"s": len(found), "l": self.page_size})
            more = list(getattr(page, items) or [])
            if not more:
                raise Sep2ClientError(
                    "GET", self.url(href), None, f"announced all={total} but returned no item at s={len(found)}"
                )
            found.extend(more)
            pages += 1
            if pages > MAX_PAGES:
                raise Sep2ClientError("GET", self.url(href), None, f"more than {MAX_PAGES} pages")
        return first, found

    def post(self, href: str, body: m.Sep2Model | bytes, *, expect: Iterable[int] = (201,)) -> str | None:
        """POST a resource; returns the Location the server answered (None if it gave none)."""
        return self.request("POST", href, body, expect=expect).headers.get("location")

    def put(self, href: str, body: m.Sep2Model, *, expect: Iterable[int] = (200, 201, 204)) -> None:
        self.request("PUT", href, body, expect=expect)

    def delete(self, href: str, *, expect: Iterable[int] = (200, 204)) -> None:
        self.request("DELETE", href, expect=expect)

    # -- time ------------------------------------------------------------------------------------

    def time_offset(self, time_href: str | None = None) -> int:
        """Read the server's Time and keep ``server - local`` (seconds); :meth:`now` applies it. The request's
        midpoint is taken as the moment the server read its clock."""
        return self._read_time(time_href or self._time_href())[1]

    def _read_time(self, href: str) -> tuple[m.Time, int]:
        before = time.time()
        server_time = self.get(href, m.Time)
        after = time.time()
        self.offset = server_time.currentTime - round((before + after) / 2)
        return server_time, self.offset

    def now(self) -> int:
        """The server's clock as far as this device knows it (epoch seconds)."""
        return int(time.time()) + self.offset

    def _time_href(self) -> str:
        capability = self.view.capability if self.view else self.get(self.dcap_href, m.DeviceCapability)
        if capability.TimeLink is None:
            raise Sep2ClientError("GET", self.url(self.dcap_href), None, "DeviceCapability has no TimeLink")
        return capability.TimeLink.href

    # -- discovery -------------------------------------------------------------------------------

    def enrol(self, end_device_list_href: str | None = None) -> str:
        """POST this device's EndDevice (its own lFDI/sFDI) to the EndDeviceList; returns the Location."""
        href = end_device_list_href
        if href is None:
            capability = self.get(self.dcap_href, m.DeviceCapability)
            if capability.EndDeviceListLink is None:
                raise Sep2ClientError(
                    "GET", self.url(self.dcap_href), None, "DeviceCapability has no EndDeviceListLink"
                )
            href = capability.EndDeviceListLink.href
        location = self.post(href, m.EndDevice(lFDI=self.lfdi, sFDI=self.sfdi, changedTime=self.now()))
        if not location:
            raise Sep2ClientError("POST", self.url(href), 201, "the server answered 201 without a Location")
        return location

    def discover(self, *, tariffs: bool = True) -> DeviceView:
        """The CSIP discovery walk: DeviceCapability -> Time -> EndDeviceList -> this device's EndDevice ->
        Registration -> FunctionSetAssignments -> DERPrograms (controls, active controls, default) and, with
        ``tariffs``, TariffProfiles with their prices. Raises Sep2ClientError when the server does not know this
        device by its certificate's LFDI/SFDI or its PIN differs from the one provisioned."""
        capability = self.get(self.dcap_href, m.DeviceCapability)
        if capability.TimeLink is None or capability.EndDeviceListLink is None:
            raise Sep2ClientError(
                "GET", self.url(self.dcap_href), None, "DeviceCapability lacks the TimeLink or EndDeviceListLink"
            )
        server_time, offset = self._read_time(capability.TimeLink.href)
        end_device = self._own_end_device(capability.EndDeviceListLink.href)
        registration = self._check_registration(end_device)
        assignments = self._assignments(end_device)
        view = DeviceView(
            capability=capability,
            time=server_time,
            time_offset=offset,
            end_device=end_device,
            registration=registration,
            assignments=assignments,
            programs=self._programs(assignments),
        )
        if tariffs:
            view.tariffs = self._tariffs(assignments)
        self.view = view
        return view

    def poll(self) -> list[ProgramState]:
        """The device's programs and controls now, re-read through the FunctionSetAssignments found by
        :meth:`discover` (which runs first if it has not)."""
        if self.view is None:
            return self.discover(tariffs=False).programs
        assignments = self._assignments(self.view.end_device)
        self.view.assignments = assignments
        self.view.programs = self._programs(assignments)
        return self.view.programs

    def _own_end_device(self, href: str) -> m.EndDevice:
        _first, devices = self.get_all(href, m.EndDeviceList, "EndDevice")
        mine = [d for d in devices if d.sFDI == self.sfdi]
        if not mine:
            listed = ", ".join(str(d.sFDI) for d in devices) or "none"
            raise Sep2ClientError(
                "GET",
                self.url(href),
                None,
                f"no EndDevice with this certificate's SFDI {self.sfdi} (LFDI {self.lfdi}); listed: {listed}",
            )
        device = mine[0]
        if device.href:  # the list may carry a summary; the EndDevice itself is authoritative
            device = self.get(device.href, m.EndDevice)
        if device.sFDI != self.sfdi or (device.lFDI is not None and device.lFDI.upper() != self.lfdi):
            raise Sep2ClientError(
                "GET",
                self.url(device.href or href),
                None,
                f"the EndDevice names lFDI {device.lFDI} / sFDI {device.sFDI}, but this device's certificate gives"
                f" LFDI {self.lfdi} / SFDI {self.sfdi}",
            )
        return device

    def _check_registration(self, device: m.EndDevice) -> m.Registration | None:
        if device.RegistrationLink is None:
            if self.pin is not None:
                raise Sep2ClientError(
                    "GET", self.url(device.href or ""), None, "the EndDevice has no RegistrationLink to check the PIN"
                )
            return None
        registration = self.get(device.RegistrationLink.href, m.Registration)
        if self.pin is not None and registration.pIN != self.pin:
            raise Sep2ClientError(
                "GET",
                self.url(device.RegistrationLink.href),
                None,
                f"Registration PIN {registration.pIN:06d} is not the PIN {self.pin:06d} this device was provisioned"
                " with: it may be talking to the wrong server or registered under another device",
            )
        return registration

    def _assignments(self, device: m.EndDevice) -> list[m.FunctionSetAssignments]:
        if device.FunctionSetAssignmentsListLink is None:
            return []
        _first, found = self.get_all(
            device.FunctionSetAssignmentsListLink.href, m.FunctionSetAssignmentsList, "FunctionSetAssignments"
        )
        return found

    def _programs(self, assignments: Sequence[m.FunctionSetAssignments]) -> list[ProgramState]:
        programs: dict[str, ProgramState] = {}
        for fsa in assignments:
            if fsa.DERProgramListLink is None:
                continue
            _first, found = self.get_all(fsa.DERProgramListLink.href, m.DERProgramList, "DERProgram")
            for program in found:
                key = program.href or program.mRID
                if key not in programs:
                    programs[key] = self._program(program)
        return sorted(programs.values(), key=lambda p: (p.program.primacy, p.program.mRID))

    def _program(self, program: m.DERProgram) -> ProgramState:
        state = ProgramState(program)
        if program.DERControlListLink is not None:
            _first, state.controls = self.get_all(program.DERControlListLink.href, m.DERControlList, "DERControl")
        if program.ActiveDERControlListLink is not None:
            _first, state.active = self.get_all(program.ActiveDERControlListLink.href, m.DERControlList, "DERControl")
        if program.DefaultDERControlLink is not None:
            state.default = self.get(program.DefaultDERControlLink.href, m.DefaultDERControl)
        return state

    def _tariffs(self, assignments: Sequence[m.FunctionSetAssignments]) -> list[TariffState]:
        tariffs: list[TariffState] = []
        for fsa in assignments:
            if fsa.TariffProfileListLink is None:
                continue
            _first, profiles = self.get_all(fsa.TariffProfileListLink.href, m.TariffProfileList, "TariffProfile")
            for profile in profiles:
                state = TariffState(profile)
                if profile.RateComponentListLink is not None:
                    _first, rates = self.get_all(
                        profile.RateComponentListLink.href, m.RateComponentList, "RateComponent"
                    )
                    for rate in rates:
                        _first, ttis = self.get_all(
                            rate.TimeTariffIntervalListLink.href, m.TimeTariffIntervalList, "TimeTariffInterval"
                        )
                        for tti in ttis:
                            blocks: list[m.ConsumptionTariffInterval] = []
                            if tti.ConsumptionTariffIntervalListLink is not None:
                                _first, blocks = self.get_all(
                                    tti.ConsumptionTariffIntervalListLink.href,
                                    m.ConsumptionTariffIntervalList,
                                    "ConsumptionTariffInterval",
                                )
                            state.intervals.append((tti, blocks))
                tariffs.append(state)
        return tariffs

    def prices(self, view: DeviceView | None = None) -> list[tuple[int, int, Decimal]]:
        """(start, duration, price per kWh) of every priced interval of every tariff found by discovery."""
        chosen = view or self.view
        if chosen is None:
            chosen = self.discover()
        return sorted(p for tariff in chosen.tariffs for p in tariff.prices())

    # -- responses -------------------------------------------------------------------------------

    def respond(self, control: m.DERControl, status: int, *, at: int | None = None) -> str | None:
        """POST a DERControlResponse (``status``: 1 received, 2 started, 3 completed, 4 opted out, 6 cancelled,
        7 superseded, ...) to the control's replyTo; returns the Location. A control without replyTo takes no
        response (2030.5: the server did not ask for one), which is an error to attempt."""
        if not control.replyTo:
            raise Sep2ClientError("POST", "(no replyTo)", None, f"DERControl {control.mRID} has no replyTo")
        response = m.DERControlResponse(
            createdDateTime=self.now() if at is None else at,
            endDeviceLFDI=self.lfdi,
            status=status,
            subject=control.mRID,
        )
        return self.post(control.replyTo, response)

    def acknowledge(self, view: DeviceView | None = None) -> int:
        """Answer "received" (1) to every control whose responseRequired asks for it and that this client has not
        acknowledged yet (a device answers each control once, however often it polls); returns how many."""
        chosen = view or self.view or self.discover()
        answered = 0
        for _program, control in chosen.controls():
            if control.mRID not in self.acknowledged and _wants(control, 1):
                self.respond(control, 1)
                self.acknowledged.add(control.mRID)
                answered += 1
        return answered

    # -- subscriptions ---------------------------------------------------------------------------

    def subscribe(self, resource_href: str, notification_uri: str, *, limit: int = 10) -> str:
        """Subscribe to a resource (a list's ``subscribable`` must be 1); the server POSTs Notifications to
        ``notification_uri``. Returns the Subscription's Location (DELETE it with :meth:`unsubscribe`)."""
        device = self._end_device()
        if device.SubscriptionListLink is None:
            raise Sep2ClientError(
                "POST", self.url(device.href or ""), None, "the EndDevice has no SubscriptionListLink"
            )
        subscription = m.Subscription(
            subscribedResource=resource_href, encoding=0, level="-S1", limit=limit, notificationURI=notification_uri
        )
        location = self.post(device.SubscriptionListLink.href, subscription)
        if not location:
            raise Sep2ClientError("POST", self.url(device.SubscriptionListLink.href), 201, "no Location for it")
        return location

    def unsubscribe(self, location: str) -> None:
        self.delete(location)

    # -- DER resources ---------------------------------------------------------------------------

    def der(self) -> m.DER:
        """The device's (first) DER, found through the EndDevice's DERListLink."""
        device = self._end_device()
        if device.DERListLink is None:
            raise Sep2ClientError("GET", self.url(device.href or ""), None, "the EndDevice has no DERListLink")
        _first, found = self.get_all(device.DERListLink.href, m.DERList, "DER")
        if not found:
            raise Sep2ClientError("GET", self.url(device.DERListLink.href), None, "the DERList is empty")
        return found[0]

    def _der_link(self, name: str) -> str:
        link = getattr(self.der(), name)
        if link is None:
            raise Sep2ClientError("GET", "(DER)", None, f"the DER has no {name}")
        return str(link.href)

    def put_der_settings(self, settings: m.DERSettings) -> str:
        """PUT DERSettings (setMaxW is what opModMaxLimW percentages are of); returns the href written."""
        href = self._der_link("DERSettingsLink")
        self.put(href, settings)
        return href

    def put_der_status(self, status: m.DERStatus) -> str:
        href = self._der_link("DERStatusLink")
        self.put(href, status)
        return href

    def put_der_capability(self, capability: m.DERCapability) -> str:
        href = self._der_link("DERCapabilityLink")
        self.put(href, capability)
        return href

    def put_der_availability(self, availability: m.DERAvailability) -> str:
        href = self._der_link("DERAvailabilityLink")
        self.put(href, availability)
        return href

    def get_der_settings(self) -> m.DERSettings:
        return self.get(self._der_link("DERSettingsLink"), m.DERSettings)

    # -- metering mirror -------------------------------------------------------------------------

    def mirror(self, usage_point: m.MirrorUsagePoint, readings: Sequence[m.MirrorMeterReading] = ()) -> str:
        """Create (or find, by mRID) a MirrorUsagePoint through DeviceCapability's MirrorUsagePointListLink, with
        ``readings`` posted in it; returns its Location, where :meth:`mirror_readings` posts later readings."""
        capability = self.view.capability if self.view else self.get(self.dcap_href, m.DeviceCapability)
        if capability.MirrorUsagePointListLink is None:
            raise Sep2ClientError("GET", self.url(self.dcap_href), None, "DeviceCapability has no MirrorUsagePointLink")
        body = usage_point
        if readings:
            body = usage_point.model_copy(update={"MirrorMeterReading": list(readings)})
        location = self.post(capability.MirrorUsagePointListLink.href, body, expect=(201, 204))
        if not location:
            raise Sep2ClientError("POST", self.url(capability.MirrorUsagePointListLink.href), 201, "no Location")
        return location

    def mirror_readings(self, location: str, readings: Sequence[m.MirrorMeterReading]) -> None:
        """POST more readings to a MirrorUsagePoint (one MirrorMeterReading, or a list of them)."""
        body: m.Sep2Model
        if len(readings) == 1:
            body = readings[0]
        else:
            body = m.MirrorMeterReadingList(all=len(readings), results=len(readings), MirrorMeterReading=list(readings))
        self.post(location, body)

    def mirror_usage_point(self, mrid: str, description: str = "DER output") -> m.MirrorUsagePoint:
        """A MirrorUsagePoint for this device's DER (roleFlags: mirror + DER), without readings."""
        return m.MirrorUsagePoint(
            mRID=mrid,
            description=description[:32],
            roleFlags="0009",
            serviceCategoryKind=0,
            status=1,
            deviceLFDI=self.lfdi,
        )

    def _end_device(self) -> m.EndDevice:
        if self.view is None:
            self.discover(tariffs=False)
        assert self.view is not None
        return self.view.end_device


def average_power_reading(
    mrid: str, start: int, duration: int, watts: int, *, power_of_ten: int = 0
) -> m.MirrorMeterReading:
    """A MirrorMeterReading of average real power (W x 10^power_of_ten) over [start, start + duration): what a DER
    reports so that its metered delivery can be settled. Positive ``watts`` is forward flow (consumption)."""
    return m.MirrorMeterReading(
        mRID=mrid,
        description="average real power"[:32],
        Reading=m.Reading(timePeriod=m.DateTimeInterval(start=start, duration=duration), value=watts),
        ReadingType=m.ReadingType(
            accumulationBehaviour=12,  # indicating (an average over the interval)
            commodity=1,
            flowDirection=_FLOW_FORWARD,
            intervalLength=duration,
            kind=_KIND_DEMAND,
            powerOfTenMultiplier=power_of_ten,
            uom=_UOM_W,
        ),
    )


# -- the responding device ------------------------------------------------------------------------


class ControlTracker:
    """Posts the Responses a compliant device owes as it sees successive polls.

    The device itself decides what it executes and so what it reports, as CSIP asks: from the DERControls it read
    (all its programs at once, since precedence crosses programs), the event engine says which are active,
    superseded or over at ``now`` and :meth:`engine.Evaluation.responses` what is owed by then. The tracker
    remembers what it sent per control, so a response is sent once, in order, however often or seldom it polls;
    a control first seen late gets everything owed at once (e.g. 1 and 2 for one already running). Only the
    statuses the control's ``responseRequired`` asks for are sent: bit 0 for "received", bit 1 for the others.
    """

    def __init__(self, client: Sep2Client) -> None:
        self.client = client
        self.sent: list[SentResponse] = []
        self._sent: dict[str, set[int]] = {}
        self.evaluation: engine.Evaluation | None = None
        self.programs: list[ProgramState] = []

    def update(self, programs: Sequence[ProgramState] | None = None, now: int | None = None) -> list[SentResponse]:
        """Evaluate the controls (``programs`` from :meth:`Sep2Client.poll`, which is called when not given) at
        ``now`` (the server's clock by default) and post what fell due; returns what was posted this time."""
        self.programs = list(programs) if programs is not None else self.client.poll()
        moment = self.client.now() if now is None else now
        controls, by_mrid = scheduled_controls(self.programs)
        evaluation = engine.evaluate(controls, moment, lfdi=self.client.lfdi)
        self.evaluation = evaluation
        posted: list[SentResponse] = []
        owed = [
            (since, order, mrid, status)
            for mrid in by_mrid
            for order, (status, since) in enumerate(evaluation.responses(mrid))
            if int(status) not in self._sent.get(mrid, set())
        ]
        for _since, _order, mrid, status in sorted(owed):
            control = by_mrid[mrid]
            code = int(status)
            handled = self._sent.setdefault(mrid, set())
            if not _wants(control, code):
                handled.add(code)  # not asked for: handled by not sending it
                continue
            location = self.client.respond(control, code, at=moment)  # raises: not handled, retried next update
            handled.add(code)
            sent = SentResponse(mrid, code, moment, location)
            self.sent.append(sent)
            posted.append(sent)
        return posted

    def statuses(self, mrid: str) -> list[int]:
        """The Response statuses sent so far for one control, in order."""
        return [s.status for s in self.sent if s.mrid == mrid.upper()]

    def effective_modes(self) -> dict[str, Any]:
        """What the device applies now: each control mode's value from the control that governs it, else from
        the highest-primacy DefaultDERControl that sets it (per mode, as CSIP practice)."""
        if self.evaluation is None:
            return {}
        by_mrid = {c.mRID: c for p in self.programs for c in p.controls}
        applied: dict[str, Any] = {}
        for mode, mrid in self.evaluation.governing.items():
            applied[mode] = getattr(by_mrid[mrid].DERControlBase, mode)
        for state in sorted(self.programs, key=lambda p: p.program.primacy):
            if state.default is None:
                continue
            for mode, value in state.default.DERControlBase:
                if value is not None and mode not in applied and mode not in engine.NON_MODE_ELEMENTS:
                    applied[mode] = value
        return applied


def scheduled_controls(
    programs: Sequence[ProgramState],
) -> tuple[list[engine.ScheduledControl], dict[str, m.DERControl]]:
    """The engine's view of every control the device read: window, modes, primacy of its program, and the
    cancellation time the server published (EventStatus 2 or 3, with its dateTime)."""
    controls: list[engine.ScheduledControl] = []
    by_mrid: dict[str, m.DERControl] = {}
    for state in programs:
        for control in state.controls:
            if control.mRID in by_mrid:
                continue  # the same control listed by two programs: the first (higher primacy) one counts
            status = control.EventStatus
            cancelled = status.currentStatus in (2, 3)
            controls.append(
                engine.ScheduledControl(
                    mrid=control.mRID,
                    program_mrid=state.program.mRID,
                    primacy=state.program.primacy,
                    creation_time=control.creationTime,
                    start=control.interval.start,
                    duration=control.interval.duration,
                    modes=frozenset(name for name, value in control.DERControlBase if value is not None),
                    cancelled_at=max(status.dateTime, control.creationTime) if cancelled else None,
                    cancel_randomized=status.currentStatus == 3,
                    randomize_start=control.randomizeStart or 0,
                    randomize_duration=control.randomizeDuration or 0,
                )
            )
            by_mrid[control.mRID] = control
    return controls, by_mrid


def _wants(control: m.DERControl, status: int) -> bool:
    """Whether responseRequired asks for this status: bit 0 "received", bit 1 the specific outcomes."""
    bits = int(control.responseRequired or "00", 16)
    return bool(bits & 0x01) if status == 1 else bool(bits & 0x02)


def _refusal(answer: httpx.Response) -> tuple[str, int | None]:
    """The server's reason (X-Error-Reason, else the body's first line) and the Error reasonCode, if any."""
    reason = answer.headers.get(REASON_HEADER, "")
    code: int | None = None
    if answer.content:
        try:
            error = codec.decode(answer.content, m.Error)
            code = error.reasonCode
        except codec.Sep2DecodeError:
            if not reason:
                reason = answer.text.strip().splitlines()[0][:300] if answer.text.strip() else ""
    return reason, code


def _identity_of(cert: Path) -> tuple[str, int]:
    """LFDI and SFDI of the device certificate (the first certificate in the PEM file)."""
    text = cert.read_text(encoding="ascii")
    begin = text.index("-----BEGIN CERTIFICATE-----")
    end = text.index("-----END CERTIFICATE-----", begin) + len("-----END CERTIFICATE-----")
    lfdi = lfdi_of_certificate(ssl.PEM_cert_to_DER_cert(text[begin:end]))
    return lfdi, sfdi_of_lfdi(lfdi)
