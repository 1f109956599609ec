"""Every resource a device can GET, built for that device at a moment: one resolver for HTTP and notifications.

The server answers a GET and renders a subscribed resource for a Notification the same way, so both go through
:meth:`Views.resolve` (device, path, paging) -> model or None (404). Resources are device-scoped under
``/edev/<sfdi>/...``: a device sees its own EndDevice, the programs assigned to it with only the controls aimed at
it, its own subscriptions, DER resources, responses and mirror usage points, and the prices of its own site. That
scoping is the authorisation rule as well (another device's path is 403, checked before resolving).

Paths (hrefs the server hands out; devices follow links, they do not build them):
``/dcap``, ``/tm``, ``/edev``, ``/edev/S``, ``/edev/S/rg``, ``/edev/S/fsa[/0]``, ``/edev/S/derp[/P]``,
``/edev/S/derp/P/{derc[/M],actderc,dderc,dc[/M]}``, ``/edev/S/der[/0[/dercap|derg|ders|dera]]``,
``/edev/S/sub[/N]``, ``/edev/S/lel``, ``/edev/S/rsps[/P[/rsp[/R]]]``, ``/edev/S/tp[/T[/rc[/0[/tti[/M[/cti]]]]]]``,
``/mup[/N]``. Lists page with ``s`` (start) and ``l`` (limit) and say ``all`` (the total) and ``results``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, unquote

from gateway.model.overrides import OverrideMode
from gateway.protocols.ieee2030_5 import codec
from gateway.protocols.ieee2030_5 import models as m
from gateway.protocols.ieee2030_5.clock import time_fields
from gateway.protocols.ieee2030_5.engine import EventStatusView
from gateway.protocols.ieee2030_5.index import Device
from gateway.protocols.ieee2030_5.mapper import RenderedControl, mint_mrid
from gateway.protocols.ieee2030_5.programs import DeviceSchedule, ProgramView, ScheduleBook
from gateway.protocols.ieee2030_5.table import MappingTable

T = TypeVar("T")
DER_KINDS = {"dercap": "DERCapability", "derg": "DERSettings", "ders": "DERStatus", "dera": "DERAvailability"}
RESPONSE_REQUIRED = "03"  # bits 0 and 1: the device must answer "received" and the specific outcomes


@dataclass(frozen=True, slots=True)
class Page:
    start: int = 0
    limit: int = 1

    def cut(self, items: Sequence[T], max_page: int) -> list[T]:
        return list(items[self.start : self.start + min(self.limit, max_page)])


class DeviceState:
    """What devices posted, as the views read it (implemented by the server over adapter_state and memory)."""

    def der_resource(self, lfdi: str, kind: str) -> m.Sep2Model | None:  # pragma: no cover - interface
        raise NotImplementedError

    def subscriptions(self, lfdi: str) -> list[Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def log_events(self, lfdi: str) -> list[m.LogEvent]:  # pragma: no cover - interface
        raise NotImplementedError

    def responses(self, lfdi: str, program_id: str) -> list[m.DERControlResponse]:  # pragma: no cover
        raise NotImplementedError

    def mirror_usage_points(self, lfdi: str) -> list[m.MirrorUsagePoint]:  # pragma: no cover - interface
        raise NotImplementedError

    def prices(self, device: Device, tariff_id: str, now: int) -> list[tuple[str, int, int, int]]:  # pragma: no cover
        """(mRID, start, duration, price as integer x 10^price_power_of_ten) of each priced interval."""
        raise NotImplementedError


class Views:
    """Builds resources; see the module docstring."""

    def __init__(self, table: MappingTable, book: ScheduleBook, state: DeviceState) -> None:
        self.table = table
        self.book = book
        self.state = state
        self.poll_rate = table.server.poll_rate
        self.max_page = table.server.max_page

    # -- entry point -------------------------------------------------------------------------------

    def resolve(self, device: Device | None, path: str, page: Page, now: int) -> m.Sep2Model | None:
        """The resource at ``path`` as ``device`` sees it, or None (404). ``device`` None: unknown caller, who
        only gets DeviceCapability and Time (the service refuses the rest before calling this)."""
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        if parts == ["dcap"]:
            return self.device_capability(device)
        if parts == ["tm"]:
            return self.time(now)
        if device is None:
            return None
        if parts == ["edev"]:
            own = page.cut([self.end_device(device)], self.max_page)
            return m.EndDeviceList(href="/edev", all=1, results=len(own), subscribable=0, EndDevice=own)
        if parts == ["mup"]:
            found = self.state.mirror_usage_points(device.lfdi)
            return m.MirrorUsagePointList(
                href="/mup",
                all=len(found),
                results=len(page.cut(found, self.max_page)),
                MirrorUsagePoint=page.cut(found, self.max_page),
            )
        if len(parts) == 2 and parts[0] == "mup":
            return next((u for u in self.state.mirror_usage_points(device.lfdi) if u.href == f"/mup/{parts[1]}"), None)
        if len(parts) < 2 or parts[0] != "edev" or parts[1] != str(device.sfdi):
            return None
        return self._device_resource(device, parts[2:], page, now)

    def _device_resource(self, device: Device, rest: list[str], page: Page, now: int) -> m.Sep2Model | None:
        if not rest:
            return self.end_device(device)
        head, tail = rest[0], rest[1:]
        if head == "rg" and not tail:
            return self.registration(device)
        if head == "fsa":
            return self.function_set_assignments(device, tail, now, page)
        if head == "derp":
            return self._programs(device, tail, page, now)
        if head == "der":
            return self._der(device, tail, now, page)
        if head == "sub":
            return self._subscriptions(device, tail, page)
        if head == "lel" and not tail:
            events = self.state.log_events(device.lfdi)
            chosen = page.cut(events, self.max_page)
            return m.LogEventList(href=f"{device.href}/lel", all=len(events), results=len(chosen), LogEvent=chosen)
        if head == "rsps":
            return self._response_sets(device, tail, page, now)
        if head == "tp":
            return self._tariffs(device, tail, page, now)
        return None

    # -- discovery ---------------------------------------------------------------------------------

    def device_capability(self, device: Device | None) -> m.DeviceCapability:
        return m.DeviceCapability(
            href="/dcap",
            pollRate=self.poll_rate,
            TimeLink=m.Link(href="/tm"),
            EndDeviceListLink=m.ListLink(href="/edev", all=1 if device else 0),
            MirrorUsagePointListLink=m.ListLink(
                href="/mup", all=len(self.state.mirror_usage_points(device.lfdi)) if device else 0
            ),
        )

    def time(self, now: int) -> m.Time:
        fields = time_fields(now, self.table.server.time_zone)
        return m.Time(
            href="/tm",
            pollRate=self.poll_rate,
            currentTime=fields.current_time,
            dstEndTime=fields.dst_end,
            dstOffset=fields.dst_offset,
            dstStartTime=fields.dst_start,
            localTime=fields.local_time,
            quality=fields.quality,
            tzOffset=fields.tz_offset,
        )

    def end_device(self, device: Device) -> m.EndDevice:
        h = device.href
        return m.EndDevice(
            href=h,
            subscribable=0,
            DERListLink=m.ListLink(href=f"{h}/der", all=1),
            LogEventListLink=m.ListLink(href=f"{h}/lel", all=len(self.state.log_events(device.lfdi))),
            sFDI=device.sfdi,
            lFDI=device.lfdi,
            changedTime=device.registered_at,
            enabled=True,
            FunctionSetAssignmentsListLink=m.ListLink(href=f"{h}/fsa", all=1),
            RegistrationLink=m.Link(href=f"{h}/rg") if device.pin is not None else None,
            SubscriptionListLink=m.ListLink(href=f"{h}/sub", all=len(self.state.subscriptions(device.lfdi))),
        )

    def registration(self, device: Device) -> m.Registration | None:
        if device.pin is None:
            return None
        return m.Registration(href=f"{device.href}/rg", dateTimeRegistered=device.registered_at, pIN=device.pin)

    def function_set_assignments(self, device: Device, tail: list[str], now: int, page: Page) -> m.Sep2Model | None:
        h = device.href
        programs = len(self.book.schedule(device, now).programs)
        fsa = m.FunctionSetAssignments(
            href=f"{h}/fsa/0",
            mRID=mint_mrid(f"fsa:{device.lfdi}", self.table.server.pen),
            description="Programs of this device",
            DERProgramListLink=m.ListLink(href=f"{h}/derp", all=programs),
            ResponseSetListLink=m.ListLink(href=f"{h}/rsps", all=programs),
            TariffProfileListLink=m.ListLink(href=f"{h}/tp", all=len(self.table.tariffs)),
            TimeLink=m.Link(href="/tm"),
        )
        if not tail:
            return m.FunctionSetAssignmentsList(
                href=f"{h}/fsa",
                pollRate=self.poll_rate,
                all=1,
                results=len(page.cut([fsa], self.max_page)),
                subscribable=0,
                FunctionSetAssignments=page.cut([fsa], self.max_page),
            )
        return fsa if tail == ["0"] else None

    # -- DER programs and controls -----------------------------------------------------------------

    def _programs(self, device: Device, tail: list[str], page: Page, now: int) -> m.Sep2Model | None:
        schedule = self.book.schedule(device, now)
        views = sorted(schedule.programs.values(), key=lambda v: (v.program.primacy, v.key))
        if not tail:
            chosen = page.cut(views, self.max_page)
            return m.DERProgramList(
                href=f"{device.href}/derp",
                pollRate=self.poll_rate,
                all=len(views),
                results=len(chosen),
                subscribable=0,
                DERProgram=[self.program(device, v) for v in chosen],
            )
        view = schedule.programs.get(tail[0])
        if view is None:
            return None
        base = f"{device.href}/derp/{quote(view.key, safe='')}"
        rest = tail[1:]
        if not rest:
            return self.program(device, view)
        match rest:
            case ["derc"]:
                return self.control_list(base, view, schedule, page, active_only=False)
            case ["actderc"]:
                return self.control_list(base, view, schedule, page, active_only=True)
            case ["derc", mrid]:
                found = schedule.by_mrid.get(mrid)
                if found is None or found[0] is not view:
                    return None
                return self.control(base, view, found[1], schedule)
            case ["dderc"]:
                return self.default_control(base, view)
            case ["dc"]:
                curves = [c for r in view.controls for c in r.curves]
                chosen = page.cut(curves, self.max_page)
                for curve in chosen:
                    curve.href = f"{base}/dc/{curve.mRID}"
                return m.DERCurveList(href=f"{base}/dc", all=len(curves), results=len(chosen), DERCurve=chosen)
            case ["dc", mrid]:
                curve = next((c for r in view.controls for c in r.curves if c.mRID == mrid), None)
                if curve is not None:
                    curve.href = f"{base}/dc/{mrid}"
                return curve
        return None

    def program(self, device: Device, view: ProgramView) -> m.DERProgram:
        base = f"{device.href}/derp/{quote(view.key, safe='')}"
        return m.DERProgram(
            href=base,
            subscribable=0,
            mRID=view.mrid,
            description=(view.program.description or view.key)[:32],
            ActiveDERControlListLink=m.ListLink(href=f"{base}/actderc"),
            DefaultDERControlLink=m.Link(href=f"{base}/dderc") if view.program.default_control else None,
            DERControlListLink=m.ListLink(href=f"{base}/derc", all=len(view.controls)),
            DERCurveListLink=m.ListLink(href=f"{base}/dc", all=sum(len(c.curves) for c in view.controls)),
            primacy=view.program.primacy,
        )

    def control_list(
        self, base: str, view: ProgramView, schedule: DeviceSchedule, page: Page, *, active_only: bool
    ) -> m.DERControlList:
        evaluation = schedule.evaluation
        active = set(evaluation.active)
        controls = [c for c in view.controls if not active_only or c.mrid in active]
        # 2030.5 orders event lists by start time, then newest creation first, then mRID descending
        controls.sort(key=lambda c: (c.start, -c.creation_time, _descending(c.mrid)))
        chosen = page.cut(controls, self.max_page)
        return m.DERControlList(
            href=f"{base}/actderc" if active_only else f"{base}/derc",
            all=len(controls),
            results=len(chosen),
            subscribable=1,
            DERControl=[self.control(base, view, c, schedule) for c in chosen],
        )

    def control(
        self, base: str, view: ProgramView, rendered: RenderedControl, schedule: DeviceSchedule
    ) -> m.DERControl:
        status: EventStatusView | None = schedule.evaluation.status.get(rendered.mrid)
        program_base = base
        device_base = base.split("/derp/")[0]
        return m.DERControl(
            href=f"{program_base}/derc/{rendered.mrid}",
            replyTo=f"{device_base}/rsps/{quote(view.key, safe='')}/rsp",
            responseRequired=RESPONSE_REQUIRED if rendered.response_required else "00",
            subscribable=0,
            mRID=rendered.mrid,
            description=rendered.description,
            creationTime=rendered.creation_time,
            EventStatus=m.EventStatus(
                currentStatus=status.current_status if status else 0,
                dateTime=status.date_time if status else rendered.creation_time,
                potentiallySuperseded=status.potentially_superseded if status else False,
                potentiallySupersededTime=status.potentially_superseded_time if status else None,
                reason=(status.reason or "")[:192] or None if status else None,
            ),
            interval=m.DateTimeInterval(duration=rendered.duration, start=rendered.start),
            randomizeDuration=rendered.randomize_duration or None,
            randomizeStart=rendered.randomize_start or None,
            DERControlBase=m.DERControlBase(**rendered.base),
        )

    def default_control(self, base: str, view: ProgramView) -> m.DefaultDERControl | None:
        settings = dict(view.program.default_control or {})
        if not settings:
            return None
        extra = {k: settings.pop(k) for k in list(settings) if not k.startswith("opMod")}
        return m.DefaultDERControl(
            href=f"{base}/dderc",
            subscribable=0,
            mRID=mint_mrid(f"default:{view.key}", self.table.server.pen),
            description=f"default of {view.key}"[:32],
            DERControlBase=m.DERControlBase(**settings),
            **extra,
        )

    # -- DER, subscriptions, logs, responses -------------------------------------------------------

    def _der(self, device: Device, tail: list[str], now: int, page: Page) -> m.Sep2Model | None:
        h = f"{device.href}/der"
        der = m.DER(
            href=f"{h}/0",
            subscribable=0,
            AssociatedDERProgramListLink=m.ListLink(
                href=f"{device.href}/derp", all=len(self.book.schedule(device, now).programs)
            ),
            DERAvailabilityLink=m.Link(href=f"{h}/0/dera"),
            DERCapabilityLink=m.Link(href=f"{h}/0/dercap"),
            DERSettingsLink=m.Link(href=f"{h}/0/derg"),
            DERStatusLink=m.Link(href=f"{h}/0/ders"),
        )
        if not tail:
            ders = page.cut([der], self.max_page)
            return m.DERList(href=h, all=1, results=len(ders), pollRate=self.poll_rate, DER=ders)
        if tail == ["0"]:
            return der
        if len(tail) == 2 and tail[0] == "0" and tail[1] in DER_KINDS:
            return self.state.der_resource(device.lfdi, tail[1])
        return None

    def _subscriptions(self, device: Device, tail: list[str], page: Page) -> m.Sep2Model | None:
        records = self.state.subscriptions(device.lfdi)
        models = [
            m.Subscription(
                href=r.href,
                subscribedResource=r.subscribed_resource,
                encoding=r.encoding,
                level=r.level,
                limit=r.limit,
                notificationURI=r.notification_uri,
            )
            for r in records
        ]
        if not tail:
            chosen = page.cut(models, self.max_page)
            return m.SubscriptionList(
                href=f"{device.href}/sub", all=len(models), results=len(chosen), Subscription=chosen
            )
        return next((s for s in models if s.href == f"{device.href}/sub/{tail[0]}"), None) if len(tail) == 1 else None

    def _response_sets(self, device: Device, tail: list[str], page: Page, now: int) -> m.Sep2Model | None:
        h = f"{device.href}/rsps"
        views = sorted(self.book.schedule(device, now).programs.values(), key=lambda v: v.key)
        sets = [
            m.ResponseSet(
                href=f"{h}/{quote(v.key, safe='')}",
                mRID=mint_mrid(f"rsps:{v.key}", self.table.server.pen),
                description=f"responses to {v.key}"[:32],
                ResponseListLink=m.ListLink(href=f"{h}/{quote(v.key, safe='')}/rsp"),
            )
            for v in views
        ]
        if not tail:
            chosen = page.cut(sets, self.max_page)
            return m.ResponseSetList(href=h, all=len(sets), results=len(chosen), ResponseSet=chosen)
        found = next((s for s in sets if s.href == f"{h}/{quote(tail[0], safe='')}"), None)
        if found is None or len(tail) > 3 or (len(tail) >= 2 and tail[1] != "rsp"):
            return None
        if len(tail) == 1:
            return found
        view = next(v for v in views if v.key == tail[0])
        responses = self.state.responses(device.lfdi, tail[0])
        responses = responses + self._override_responses(device, view, found.href, responses, now)
        if len(tail) == 3:
            return next((r for r in responses if r.href == f"{found.href}/rsp/{tail[2]}"), None)
        chosen = page.cut(responses, self.max_page)
        return m.ResponseList(href=f"{found.href}/rsp", all=len(responses), results=len(chosen), Response=chosen)

    def _override_responses(
        self, device: Device, view: ProgramView, href: str, posted: list[m.DERControlResponse], now: int
    ) -> list[m.DERControlResponse]:
        """Overrides from other edges (the customer's app, MQTT, the VEN) shown as the Response the device would
        have posted: 4 (opted out) or 8 (partly), for each of the program's DERControls they cover. A device that
        posted one itself is not shown a second."""
        overrides = self.book.index.overrides_for(device, datetime.fromtimestamp(now, UTC))
        if not overrides:
            return []
        answered = {(r.subject, r.status) for r in posted}
        shown: list[m.DERControlResponse] = []
        for override in overrides:
            status = 4 if override.mode is OverrideMode.OPT_OUT else 8
            start, end = int(override.span.start.timestamp()), int(override.span.end.timestamp())
            for rendered in view.controls:
                covers = rendered.start < end and start < rendered.start + rendered.duration
                if rendered.source_id != override.subject.id or not covers or (rendered.mrid, status) in answered:
                    continue
                shown.append(
                    m.DERControlResponse(
                        href=f"{href}/rsp/ovr-{mint_mrid(f'{override.id}:{rendered.mrid}', self.table.server.pen)}",
                        createdDateTime=int(override.created_at.timestamp()),
                        endDeviceLFDI=device.lfdi,
                        status=status,
                        subject=rendered.mrid,
                    )
                )
        return shown

    # -- pricing -----------------------------------------------------------------------------------

    def _tariffs(self, device: Device, tail: list[str], page: Page, now: int) -> m.Sep2Model | None:
        h = f"{device.href}/tp"
        pen = self.table.server.pen
        if not tail:
            tariffs = page.cut(self.table.tariffs, self.max_page)
            return m.TariffProfileList(
                href=h,
                all=len(self.table.tariffs),
                results=len(tariffs),
                subscribable=0,
                TariffProfile=[self._tariff(device, t) for t in tariffs],
            )
        tariff = next((t for t in self.table.tariffs if t.tariff_id == tail[0]), None)
        if tariff is None:
            return None
        base = f"{h}/{quote(tariff.tariff_id, safe='')}"
        rest = tail[1:]
        rate = m.RateComponent(
            href=f"{base}/rc/0",
            mRID=mint_mrid(f"rc:{tariff.tariff_id}", pen),
            description="energy"[:32],
            ReadingTypeLink=m.Link(href=f"{base}/rt"),
            TimeTariffIntervalListLink=m.ListLink(href=f"{base}/rc/0/tti"),
            roleFlags="01",
        )
        match rest:
            case []:
                return self._tariff(device, tariff)
            case ["rc"]:
                rates = page.cut([rate], self.max_page)
                return m.RateComponentList(href=f"{base}/rc", all=1, results=len(rates), RateComponent=rates)
            case ["rc", "0"]:
                return rate
            case ["rt"]:
                return m.ReadingType(href=f"{base}/rt", commodity=1, flowDirection=1, kind=12, uom=72)
            case ["rc", "0", "tti", *more]:
                intervals = self.state.prices(device, tariff.tariff_id, now)
                ttis = [self._tti(base, tariff.tariff_id, item, now) for item in intervals]
                if not more:
                    chosen = page.cut(ttis, self.max_page)
                    return m.TimeTariffIntervalList(
                        href=f"{base}/rc/0/tti",
                        all=len(ttis),
                        results=len(chosen),
                        subscribable=1,
                        TimeTariffInterval=chosen,
                    )
                by_mrid = {item[0]: item for item in intervals}
                item = by_mrid.get(more[0])
                if item is None:
                    return None
                if len(more) == 1:
                    return self._tti(base, tariff.tariff_id, item, now)
                if more[1:] == ["cti"]:
                    blocks = page.cut(
                        [
                            m.ConsumptionTariffInterval(
                                href=f"{base}/rc/0/tti/{item[0]}/cti/1", consumptionBlock=1, price=item[3], startValue=0
                            )
                        ],
                        self.max_page,
                    )
                    return m.ConsumptionTariffIntervalList(
                        href=f"{base}/rc/0/tti/{item[0]}/cti",
                        all=1,
                        results=len(blocks),
                        ConsumptionTariffInterval=blocks,
                    )
        return None

    def _tariff(self, device: Device, tariff: Any) -> m.TariffProfile:
        base = f"{device.href}/tp/{quote(tariff.tariff_id, safe='')}"
        return m.TariffProfile(
            href=base,
            mRID=mint_mrid(f"tariff:{tariff.tariff_id}", self.table.server.pen),
            description=(tariff.description or tariff.tariff_id)[:32],
            currency=tariff.currency,
            pricePowerOfTenMultiplier=tariff.price_power_of_ten,
            primacy=0,
            rateCode=tariff.tariff_id[:20],
            RateComponentListLink=m.ListLink(href=f"{base}/rc", all=1),
            serviceCategoryKind=0,
        )

    def _tti(self, base: str, tariff_id: str, item: tuple[str, int, int, int], now: int) -> m.TimeTariffInterval:
        mrid, start, duration, _price = item
        status = 1 if start <= now < start + duration else 0
        return m.TimeTariffInterval(
            href=f"{base}/rc/0/tti/{mrid}",
            mRID=mrid,
            description=f"{tariff_id} price"[:32],
            creationTime=start,
            # dateTime: when the status last changed (active: at the start; scheduled: at creation, given as the
            # start too). Never the clock, or every render would differ and subscribers be notified of nothing.
            EventStatus=m.EventStatus(currentStatus=status, dateTime=start, potentiallySuperseded=False),
            interval=m.DateTimeInterval(duration=duration, start=start),
            ConsumptionTariffIntervalListLink=m.ListLink(href=f"{base}/rc/0/tti/{mrid}/cti", all=1),
            touTier=1,
        )


def _descending(mrid: str) -> str:
    """A key that sorts hex mRIDs in descending order inside an ascending sort."""
    return "".join("fedcba9876543210"["0123456789abcdef".index(c)] for c in mrid.lower())


Encoder = Callable[[m.Sep2Model], bytes]
encode: Encoder = codec.encode
