"""The 2030.5 utility server's state and actions, behind the HTTP routes in ``service``.

It owns the canonical index (devices, controls, envelopes in memory), the per-device schedules, the views, the
notifier, and what devices posted. What a device posts is kept in the store's ``adapter_state`` (protocol
``ieee2030_5``, peer = its LFDI) and written before the device is answered, so a restart loses nothing that was
acknowledged: its DER capability, settings, status and availability (``der/0/<kind>``, the XML as posted), its
subscriptions (``sub/<id>``), mirror usage points (``mup/<id>``) and the last log events (``log``). Responses,
overrides and meter readings become canonical objects and go through the ingestor (stored, then published);
the last responses per program are also kept in memory for the device's ResponseList.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from gateway.ingest import Ingestor
from gateway.model import (
    Clearing,
    Delivery,
    Envelope,
    Interval,
    MessageKind,
    SubjectKind,
    Tender,
    TenderStatus,
    TimeSpan,
    received,
)
from gateway.model.intervals import Resolution
from gateway.model.market import Side
from gateway.protocols.ieee2030_5 import codec, mapper
from gateway.protocols.ieee2030_5 import models as m
from gateway.protocols.ieee2030_5.commit import GroupCommit
from gateway.protocols.ieee2030_5.index import CanonicalIndex, Device
from gateway.protocols.ieee2030_5.notify import Notifier, SubscriptionRecord
from gateway.protocols.ieee2030_5.programs import ScheduleBook
from gateway.protocols.ieee2030_5.table import MappingTable
from gateway.protocols.ieee2030_5.views import DER_KINDS, DeviceState, Page, Views
from gateway.store import Store

log = logging.getLogger(__name__)

PROTOCOL = "ieee2030_5"
LOG_KEPT = 100
RESPONSES_KEPT = 100
PRUNE_SECONDS = 300.0
MAX_SUBSCRIPTIONS = 32
_UOM_W = 38
_UOM_WH = 72
_REVERSE = 19


class Refusal(Exception):
    """A request the server refuses: HTTP status, 2030.5 Error reasonCode (0 format, 1 values, 2 limit) and why."""

    def __init__(self, status: int, reason: str, code: int = 1) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.code = code


@dataclass(slots=True)
class _Posted:
    """A device's posted state, as loaded once from adapter_state."""

    der: dict[str, m.Sep2Model]
    subscriptions: dict[int, SubscriptionRecord]
    log: deque[m.LogEvent]
    mups: dict[int, m.MirrorUsagePoint]


class Sep2Server(DeviceState):
    """See the module docstring."""

    def __init__(
        self,
        store: Store,
        ingestor: Ingestor,
        table: MappingTable,
        *,
        cert_header: str | None = None,
        notify_tls: ssl.SSLContext | None = None,
        notify_backoff: float = 1.0,
    ) -> None:
        self.store = store
        self.ingestor = ingestor
        self.response_commit = GroupCommit(ingestor, PROTOCOL)  # POSTed Responses share durable commits
        self.table = table
        self.cert_header = cert_header
        self.index = CanonicalIndex(store, ingestor.bus, grace=timedelta(seconds=table.server.completed_grace))
        self.book = ScheduleBook(self.index, table)
        self.views = Views(table, self.book, self)
        self.notifier = Notifier(
            self._render_for(), retries=table.server.notification_retries, tls=notify_tls, first_backoff=notify_backoff
        )
        self._posted: dict[str, _Posted] = {}
        # (lfdi, program) -> href -> Response, oldest first (dicts keep insertion order; a set-like lookup per POST)
        self._responses: dict[tuple[str, str], dict[str, m.DERControlResponse]] = {}
        self._notified_version = -1
        self._pruned_at = time.monotonic()
        self._subscriptions_loaded = False
        self._price_cache: dict[tuple[str, str], tuple[float, list[tuple[str, int, int, int]]]] = {}

    # -- freshness -------------------------------------------------------------------------------

    async def fresh(self) -> None:
        """Bring the index up to date (from memory when possible) and notify subscribers of what changed."""
        if not self.index.fresh_in_memory():
            await asyncio.to_thread(self.index.catch_up)
            if time.monotonic() - self._pruned_at > PRUNE_SECONDS:  # ended controls leave memory, not the store
                self._pruned_at = time.monotonic()
                self.index.prune(datetime.now(UTC))
        if not self._subscriptions_loaded:
            await asyncio.to_thread(self._load_subscriptions)
        if self.index.version != self._notified_version:
            self._notified_version = self.index.version
            if self.notifier.subscriptions:
                self.notifier.check()

    async def on_clock(self) -> int:
        """Notify the subscribers of devices whose controls changed status with time (a control became active or
        ended): the schedule cache knows each device's next start or end, so only those devices are rendered
        again. Returns how many notifications were scheduled."""
        await self.fresh()
        now = self.now()
        due = [r for r in self.notifier.subscriptions.values() if self.book.expired(r.lfdi, now)]
        return self.notifier.check(due) if due else 0

    def _load_subscriptions(self) -> None:
        for _lfdi, _name, body in self.store.prefixed_state(PROTOCOL, "sub/"):
            self.notifier.add(SubscriptionRecord(**body), notify_now=False)
        self._subscriptions_loaded = True

    def device_of(self, lfdi: str) -> Device | None:
        return self.index.device(lfdi)

    def now(self) -> int:
        return int(datetime.now(UTC).timestamp())

    def _render_for(self) -> Any:
        def render(lfdi: str, href: str, limit: int) -> m.Sep2Model | None:
            device = self.index.device(lfdi)
            if device is None:
                return None
            return self.views.resolve(device, href, Page(0, limit), self.now())

        return render

    # -- what devices posted (DeviceState) ----------------------------------------------------------

    def posted(self, lfdi: str) -> _Posted:
        """The device's posted state, loaded from the store on first use (a worker thread calls this first)."""
        found = self._posted.get(lfdi)
        if found is None:
            rows = self.store.peer_state(PROTOCOL, lfdi)
            der: dict[str, m.Sep2Model] = {}
            subscriptions: dict[int, SubscriptionRecord] = {}
            mups: dict[int, m.MirrorUsagePoint] = {}
            events: deque[m.LogEvent] = deque(maxlen=LOG_KEPT)
            for name, body in rows.items():
                if name.startswith("der/0/"):
                    der[name.removeprefix("der/0/")] = codec.decode(body["xml"].encode())
                elif name.startswith("sub/"):
                    record = SubscriptionRecord(**body)
                    subscriptions[record.id] = record
                elif name.startswith("mup/"):
                    mups[int(name.removeprefix("mup/"))] = codec.decode(body["xml"].encode(), m.MirrorUsagePoint)
                elif name == "log":
                    events.extend(codec.decode(x.encode(), m.LogEvent) for x in body["events"])
            found = _Posted(der, subscriptions, events, mups)
            self._posted[lfdi] = found
            settings = der.get("derg")
            if settings is not None:
                self._note_settings(lfdi, settings)
        return found

    def loaded(self, lfdi: str) -> bool:
        return lfdi in self._posted

    def der_resource(self, lfdi: str, kind: str) -> m.Sep2Model | None:
        return self.posted(lfdi).der.get(kind)

    def subscriptions(self, lfdi: str) -> list[SubscriptionRecord]:
        return sorted(self.posted(lfdi).subscriptions.values(), key=lambda r: r.id)

    def log_events(self, lfdi: str) -> list[m.LogEvent]:
        return list(self.posted(lfdi).log)

    def responses(self, lfdi: str, program_id: str) -> list[m.DERControlResponse]:
        return list(self._responses.get((lfdi, program_id), {}).values())

    def mirror_usage_points(self, lfdi: str) -> list[m.MirrorUsagePoint]:
        return [self.posted(lfdi).mups[k] for k in sorted(self.posted(lfdi).mups)]

    def prices(self, device: Device, tariff_id: str, now: int) -> list[tuple[str, int, int, int]]:
        """The device's priced intervals: the tariff market's cleared prices at its site, from the current interval
        on, and open sell tenders of the tariff's price sources at or above its location. Cached 5 s per site."""
        key = (tariff_id, device.location_id)
        cached = self._price_cache.get(key)
        if cached is not None and now - cached[0] < 5:
            return cached[1]
        tariff = next((t for t in self.table.tariffs if t.tariff_id == tariff_id), None)
        if tariff is None:
            return []
        path = self.index.locations_up(device.location_id)
        since = datetime.fromtimestamp(now, UTC) - timedelta(hours=1)
        items: dict[int, tuple[str, int, int, int]] = {}
        scale = Decimal(10) ** -tariff.price_power_of_ten
        pen = self.table.server.pen
        for clearing in self.store.list(
            MessageKind.CLEARING,
            filters={"market_id": tariff.market_id},
            ranges={"interval_start": (since.isoformat(), None)},
            limit=None,
        ):
            assert isinstance(clearing, Clearing)
            price = next((clearing.prices[p] for p in path if p in clearing.prices), clearing.price)
            per_kwh = price if clearing.price_per.value == "kWh" else price / 1000
            start = int(clearing.interval.start.timestamp())
            duration = int(clearing.interval.length.total_seconds())
            if start + duration <= now:
                continue
            mrid = mapper.mint_mrid(f"price:{tariff_id}:{device.location_id}:{start}", pen)
            items[start] = (mrid, start, duration, int((per_kwh * scale).to_integral_value()))
        if tariff.price_tenders_from:
            for tender in self.store.list(MessageKind.TENDER, filters={"market_id": tariff.market_id}, limit=None):
                assert isinstance(tender, Tender)
                if (
                    tender.party_id not in tariff.price_tenders_from
                    or tender.side is not Side.SELL
                    or tender.status is not TenderStatus.OPEN
                    or tender.location_id not in path
                ):
                    continue
                for row in tender.rows:
                    interval = tender.interval(row)
                    start = int(interval.start.timestamp())
                    duration = int(interval.length.total_seconds())
                    if start in items or start + duration <= now:
                        continue
                    per_kwh = row["price"] if tender.price_per.value == "kWh" else row["price"] / 1000
                    mrid = mapper.mint_mrid(f"tender:{tender.id}:{start}", pen)
                    items[start] = (mrid, start, duration, int((per_kwh * scale).to_integral_value()))
        found = [items[k] for k in sorted(items)]
        self._price_cache[key] = (now, found)
        return found

    # -- actions (worker threads: they write the store) -----------------------------------------

    def put_der(self, device: Device, kind: str, resource: m.Sep2Model) -> None:
        expected = DER_KINDS[kind]
        if type(resource).__name__ != expected:
            raise Refusal(400, f"{device.href}/der/0/{kind} takes a {expected}, not a {type(resource).__name__}", 0)
        posted = self.posted(device.lfdi)
        resource = resource.model_copy(update={"href": f"{device.href}/der/0/{kind}"})  # read back where it lives
        self.store.put_state(PROTOCOL, device.lfdi, f"der/0/{kind}", {"xml": codec.encode(resource).decode()})
        posted.der[kind] = resource
        if kind == "derg":
            self._note_settings(device.lfdi, resource)

    def _note_settings(self, lfdi: str, settings: Any) -> None:
        """setMaxW from DERSettings: opModMaxLimW is a share of it."""
        set_max_w = getattr(settings, "setMaxW", None)
        if set_max_w is not None:
            self.book.set_max_w[lfdi] = mapper.unscaled(set_max_w.value, set_max_w.multiplier)
            self.book.forget(lfdi)

    def post_response(
        self, device: Device, program_id: str, response: Any
    ) -> tuple[str, list[Envelope], m.DERControlResponse]:
        """Check a Response and make its canonical objects; the caller ingests them, then lists the returned
        response with :meth:`keep_response` and answers 201 with the location. The location ends in the Response's
        time-ordered mRID, made from what the Response says (device, control, status, createdDateTime): the same
        Response posted again has the same location, before or after a restart, and the canonical Response's id
        is built from it too."""
        if response.endDeviceLFDI.upper() != device.lfdi:
            raise Refusal(403, f"endDeviceLFDI {response.endDeviceLFDI} is not the LFDI of the client certificate")
        try:
            mapper.ResponseStatus.from_code(response.status)
        except ValueError as exc:
            raise Refusal(400, str(exc)) from None
        if response.createdDateTime is None:  # optional in the schema: the response was made when it arrived
            response = response.model_copy(update={"createdDateTime": self.now()})
        schedule = self.book.schedule(device, self.now())
        found = schedule.by_mrid.get(response.subject.upper())
        if found is None or found[0].key != program_id:
            raise Refusal(400, f"subject {response.subject} is not a DERControl of program {program_id} of this device")
        _view, rendered = found
        span = TimeSpan(
            start=datetime.fromtimestamp(rendered.start, UTC), duration=timedelta(seconds=rendered.duration)
        )
        kind = SubjectKind.OPERATING_ENVELOPE if rendered.source_id in self.index.envelopes else SubjectKind.CONTROL
        native = f"{device.lfdi}:{rendered.mrid}:{response.status}:{response.createdDateTime}"
        message_id = mapper.timed_mrid(native, response.createdDateTime, self.table.server.pen).lower()
        canonical, override = mapper.response_to_canonical(
            response,
            mapper.ResponseFacts(rendered.source_id, kind, span),
            party_id=device.party_id,
            resource_id=device.resource_id,
            message_id=message_id,
        )
        objects: list[Any] = [canonical] if override is None else [canonical, override]
        envelopes = received(objects, protocol=PROTOCOL, peer=device.lfdi)
        location = f"{device.href}/rsps/{quote(program_id, safe='')}/rsp/{message_id}"
        return location, envelopes, response.model_copy(update={"href": location})

    def keep_response(self, device: Device, program_id: str, response: m.DERControlResponse) -> None:
        """List a stored Response in the device's ResponseList (memory: the last RESPONSES_KEPT per program).
        Only after it was stored, so that a refused Response never shows there."""
        ring = self._responses.setdefault((device.lfdi, program_id), {})
        if response.href not in ring:
            ring[response.href or ""] = response
            if len(ring) > RESPONSES_KEPT:
                del ring[next(iter(ring))]

    def post_subscription(self, device: Device, subscription: Any) -> SubscriptionRecord:
        posted = self.posted(device.lfdi)
        if len(posted.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise Refusal(400, f"a device may hold at most {MAX_SUBSCRIPTIONS} subscriptions", 2)
        resource = subscription.subscribedResource
        if not resource.startswith(device.href) or self.views.resolve(device, resource, Page(), self.now()) is None:
            raise Refusal(400, f"{resource} is not a resource of this device that can be subscribed to")
        uri = subscription.notificationURI
        if not uri.startswith(("https://", "http://")):
            raise Refusal(400, f"notificationURI {uri!r} must be an http(s) URL")
        if subscription.Condition is not None if hasattr(subscription, "Condition") else False:
            raise Refusal(400, "conditional subscriptions are not supported", 3)
        for existing in posted.subscriptions.values():  # the same subscription again is the same one
            if existing.subscribed_resource == resource and existing.notification_uri == uri:
                return existing
        new_id = max(posted.subscriptions, default=0) + 1
        record = SubscriptionRecord(
            lfdi=device.lfdi,
            edev_href=device.href,
            id=new_id,
            subscribed_resource=resource,
            notification_uri=uri,
            limit=subscription.limit,
            encoding=subscription.encoding,
            level=subscription.level,
        )
        self.store.put_state(PROTOCOL, device.lfdi, f"sub/{new_id}", record.as_state())
        posted.subscriptions[new_id] = record
        return record

    def delete_subscription(self, device: Device, subscription_id: int) -> bool:
        posted = self.posted(device.lfdi)
        if subscription_id not in posted.subscriptions:
            return False
        self.store.put_state(PROTOCOL, device.lfdi, f"sub/{subscription_id}", None)
        del posted.subscriptions[subscription_id]
        self.notifier.remove(device.lfdi, subscription_id)
        return True

    def post_log_event(self, device: Device, event: m.LogEvent) -> str:
        posted = self.posted(device.lfdi)
        posted.log.append(event)
        self.store.put_state(PROTOCOL, device.lfdi, "log", {"events": [codec.encode(e).decode() for e in posted.log]})
        return f"{device.href}/lel"

    def post_mirror_usage_point(self, device: Device, mup: Any) -> tuple[str, bool]:
        """Create (or find, by mRID) a mirror usage point; returns its href and whether it is new."""
        if getattr(mup, "deviceLFDI", None) and mup.deviceLFDI.upper() != device.lfdi:
            raise Refusal(403, f"deviceLFDI {mup.deviceLFDI} is not the LFDI of the client certificate")
        posted = self.posted(device.lfdi)
        for number, existing in posted.mups.items():
            if existing.mRID == mup.mRID:
                return f"/mup/{number}", False
        number = max(posted.mups, default=0) + 1
        kept = mup.model_copy(update={"href": f"/mup/{number}", "MirrorMeterReading": []})  # Many: a list, never None
        self.store.put_state(PROTOCOL, device.lfdi, f"mup/{number}", {"xml": codec.encode(kept).decode()})
        posted.mups[number] = kept
        return f"/mup/{number}", True

    def mirror_readings(self, device: Device, readings: list[Any]) -> list[Envelope]:
        """Mirrored readings of power (W) or energy (Wh) over a market interval, as canonical Deliveries."""
        envelopes: list[Envelope] = []
        for reading in readings:
            reading_type = getattr(reading, "ReadingType", None)
            uom = getattr(reading_type, "uom", None)
            power = getattr(reading_type, "powerOfTenMultiplier", 0) or 0
            sign = -1 if getattr(reading_type, "flowDirection", 1) == _REVERSE else 1
            if uom not in (_UOM_W, _UOM_WH):
                continue
            points: list[tuple[Any, Any]] = []  # (reading, its period)
            for reading_set in getattr(reading, "MirrorReadingSet", None) or []:
                points.extend(_set_periods(reading_set, getattr(reading_type, "intervalLength", None)))
            single = getattr(reading, "Reading", None)
            if single is not None and single.timePeriod is not None:  # without a period: an instantaneous value
                points.append((single, single.timePeriod))
            for point, period in points:
                resolution = _resolution(period.duration)
                if resolution is None:
                    raise Refusal(400, f"a reading over {period.duration} s is not a market interval (300, 900, 3600)")
                if point.value is None:
                    raise Refusal(400, f"a Reading of {reading.mRID} at {period.start} has no value")
                value = mapper.unscaled(point.value, power) * sign
                kw = value / 1000 if uom == _UOM_W else value / 1000 / (Decimal(period.duration) / 3600)
                start = datetime.fromtimestamp(period.start, UTC)
                try:
                    interval = Interval(start=start, duration=resolution)
                except ValueError as exc:
                    raise Refusal(400, f"reading at {start.isoformat()}: {exc}") from None
                native = f"{device.lfdi}:{reading.mRID}:{period.start}"
                delivery = Delivery(
                    id=mapper.mint_mrid(native, self.table.server.pen).lower(),
                    party_id=device.party_id,
                    location_id=device.location_id,
                    resource_id=device.resource_id,
                    interval=interval,
                    quantity=kw,
                    measured_at=interval.end,  # not the arrival time: the same reading posted again is a duplicate
                )
                envelopes.extend(received([delivery], protocol=PROTOCOL, peer=device.lfdi))
        return envelopes


def _set_periods(reading_set: Any, interval_length: int | None) -> list[tuple[Any, Any]]:
    """Each Reading of a MirrorReadingSet with its period: its own timePeriod, else (as devices usually write them)
    the set's own period for a lone reading, or consecutive ``intervalLength`` steps from the set's start."""
    readings = list(reading_set.Reading or [])
    found: list[tuple[Any, Any]] = []
    for number, point in enumerate(readings):
        if point.timePeriod is not None:
            found.append((point, point.timePeriod))
        elif len(readings) == 1:
            found.append((point, reading_set.timePeriod))
        elif interval_length:
            start = reading_set.timePeriod.start + number * interval_length
            found.append((point, m.DateTimeInterval(start=start, duration=interval_length)))
        else:
            raise Refusal(
                400,
                f"MirrorReadingSet {reading_set.mRID} holds {len(readings)} Readings without a timePeriod and its"
                " ReadingType has no intervalLength: their intervals are unknown",
            )
    return found


def _resolution(seconds: int) -> Resolution | None:
    return {300: Resolution.FIVE_MINUTES, 900: Resolution.FIFTEEN_MINUTES, 3600: Resolution.HOUR}.get(seconds)
