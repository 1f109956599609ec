"""What the 2030.5 server must know of the canonical state, held in memory and kept current incrementally.

A utility server may have a hundred thousand devices polling it. Answering each GET from the database (which
device is this certificate, which controls are aimed at it) would put a query, and the parsing of every control,
on every poll. Instead the server holds an index of the few kinds it renders from: resources that carry an LFDI
(the devices), locations (for "at or below" targeting), controls and operating envelopes. It is loaded once, then
kept current from the bus (messages this process stored, applied without reading them back) and, when the log
has moved beyond what the bus delivered (another gateway process wrote, or the bus dropped messages), by reading
the log from the last sequence applied. ``version`` moves only when something a device would see changed, so the
per-device render caches survive the stream of Responses and meter readings devices post.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gateway.bus import Bus, Subscription
from gateway.model import (
    CanonicalObject,
    Control,
    ControlStatus,
    Location,
    MessageKind,
    OperatingEnvelope,
    Override,
    Resource,
)
from gateway.overrides.resolve import standing
from gateway.protocols.ieee2030_5.identity import sfdi_of_lfdi
from gateway.store import Store, StoredMessage

LFDI_IDENTITY = "lfdi"
PIN_IDENTITY = "ieee2030_5-pin"
WATCHED = frozenset(
    {
        MessageKind.RESOURCE,
        MessageKind.LOCATION,
        MessageKind.CONTROL,
        MessageKind.OPERATING_ENVELOPE,
        MessageKind.OVERRIDE,
    }
)
_LOG_CHECK_SECONDS = 1.0
_CATCH_UP_PAGE = 5000


@dataclass(frozen=True, slots=True)
class Device:
    """A canonical resource as a 2030.5 EndDevice: the certificate names (LFDI, SFDI) and where it sits."""

    lfdi: str
    sfdi: int
    resource_id: str
    party_id: str
    location_id: str
    name: str
    pin: int | None
    max_w: Decimal | None  # the resource's max_kw rating in W: setMaxW until the device posts its DERSettings
    registered_at: int  # when this gateway learnt of it (resources carry no creation time)

    @property
    def href(self) -> str:
        return f"/edev/{self.sfdi}"


def device_of(resource: Resource, seen_at: int) -> Device | None:
    """The device a resource describes, or None when it carries no LFDI (it is not a 2030.5 device)."""
    lfdi = resource.identities.get(LFDI_IDENTITY)
    if not lfdi:
        return None
    lfdi = lfdi.strip().upper()
    try:
        sfdi = sfdi_of_lfdi(lfdi)
    except ValueError:
        return None
    pin_text = resource.identities.get(PIN_IDENTITY)
    max_kw = resource.ratings.max_kw
    return Device(
        lfdi=lfdi,
        sfdi=sfdi,
        resource_id=resource.id,
        party_id=resource.owner_id,
        location_id=resource.location_id,
        name=resource.name,
        pin=int(pin_text) if pin_text and pin_text.isdigit() else None,
        max_w=max_kw * 1000 if max_kw is not None else None,
        registered_at=seen_at,
    )


class CanonicalIndex:
    """Devices, locations, and the live controls and envelopes, by id; see the module docstring."""

    def __init__(self, store: Store, bus: Bus | None, *, grace: timedelta = timedelta(hours=1)) -> None:
        self.store = store
        self.grace = grace
        self.version = 0
        self.applied_seq = 0
        self.devices_by_lfdi: dict[str, Device] = {}
        self.devices_by_sfdi: dict[int, Device] = {}
        self._device_of_resource: dict[str, Device] = {}
        self.parents: dict[str, str | None] = {}
        self.controls: dict[str, Control] = {}
        self.envelopes: dict[str, OperatingEnvelope] = {}
        self.overrides: dict[str, Override] = {}  # live ones, from every edge: the device's ResponseList shows them
        self.cancelled_at: dict[str, int] = {}  # control id -> when this index first saw it cancelled (epoch)
        # every kind, not only WATCHED: the sequence numbers of the others tell that nothing was missed
        self._subscription: Subscription | None = bus.subscribe(None) if bus is not None else None
        self._lock = threading.RLock()
        self._loaded = False
        self._log_checked_at = 0.0

    # -- keeping current ------------------------------------------------------------------------------

    def load(self) -> None:
        """Read everything once (a thread: it queries the store)."""
        with self._lock:
            seq = self.store.last_seq()
            loaded_at = int(time.time())
            for resource in self.store.list(MessageKind.RESOURCE, limit=None):
                assert isinstance(resource, Resource)
                self._put_resource(resource, loaded_at)
            for location in self.store.list(MessageKind.LOCATION, limit=None):
                assert isinstance(location, Location)
                self.parents[location.id] = location.parent_id
            horizon = datetime.now(UTC) - self.grace
            for control in self.store.list(MessageKind.CONTROL, limit=None):
                assert isinstance(control, Control)
                if control.periods[-1].span.end >= horizon:
                    self.controls[control.id] = control
                    if is_cancelled(control):  # when the log first stored it cancelled, as _apply saw it live
                        self.cancelled_at[control.id] = self._first_cancelled(control)
            for envelope in self.store.list(MessageKind.OPERATING_ENVELOPE, limit=None):
                assert isinstance(envelope, OperatingEnvelope)
                if envelope.periods[-1].span.end >= horizon:
                    self.envelopes[envelope.id] = envelope
            for override in self.store.list(MessageKind.OVERRIDE, limit=None):
                assert isinstance(override, Override)
                if override.span.end >= horizon:
                    self.overrides[override.id] = override
            self.applied_seq = max(self.applied_seq, seq)
            self._loaded = True
            self._log_checked_at = time.monotonic()
            self.version += 1

    def _first_cancelled(self, control: Control) -> int:
        """When the first cancelled version of a control was stored (epoch s): the EventStatus dateTime devices
        saw before a restart. Its creation time would move the cancellation back, so a device would see the
        status change again and the engine would rewrite the control's history (never started, say)."""
        for message in self.store.query_messages(kind=MessageKind.CONTROL, entity_id=control.id, limit=10_000):
            payload = message.envelope.payload
            if isinstance(payload, Control) and is_cancelled(payload):
                return int(message.stored_at.timestamp())
        return int(control.created_at.timestamp())

    def fresh_in_memory(self) -> bool:
        """Apply what the bus delivered; True when that is known to be everything (no store read needed).
        Cheap: call it on the event loop before answering; when False, call :meth:`catch_up` in a thread."""
        if not self._loaded:
            return False
        if self._subscription is not None:
            self._apply_messages(self._subscription.drain())
        return time.monotonic() - self._log_checked_at < _LOG_CHECK_SECONDS

    def catch_up(self) -> None:
        """Load on first use; else read the log past the last applied sequence (other processes' writes)."""
        with self._lock:
            if not self._loaded:
                self.load()
                if self._subscription is not None:
                    self._subscription.drain()  # already in what load() read
                return
            if self._subscription is not None:
                self._apply_messages(self._subscription.drain())
            while True:
                found = self.store.query_messages(after_seq=self.applied_seq, limit=_CATCH_UP_PAGE)
                self._apply_messages(found)
                if len(found) < _CATCH_UP_PAGE:
                    break
            self._log_checked_at = time.monotonic()

    def _apply_messages(self, messages: list[StoredMessage]) -> None:
        if not messages:
            return
        with self._lock:
            for message in messages:
                if message.seq <= self.applied_seq and message.seq != 0:
                    continue
                self.applied_seq = max(self.applied_seq, message.seq)
                envelope = message.envelope
                if envelope.message_kind in WATCHED:
                    self._apply(envelope.payload, message.stored_at)

    def _apply(self, payload: CanonicalObject, stored_at: datetime) -> None:
        if isinstance(payload, Resource):
            old = self._device_of_resource.get(payload.id)
            if old is not None:
                self.devices_by_lfdi.pop(old.lfdi, None)
                self.devices_by_sfdi.pop(old.sfdi, None)
                self._device_of_resource.pop(payload.id, None)
            self._put_resource(payload, int(stored_at.timestamp()))
        elif isinstance(payload, Location):
            self.parents[payload.id] = payload.parent_id
        elif isinstance(payload, Control):
            if is_cancelled(payload) and payload.id not in self.cancelled_at:
                self.cancelled_at[payload.id] = int(stored_at.timestamp())
            self.controls[payload.id] = payload
        elif isinstance(payload, OperatingEnvelope):
            self.envelopes[payload.id] = payload
        elif isinstance(payload, Override):
            self.overrides[payload.id] = payload
        else:
            return
        self.version += 1

    def _put_resource(self, resource: Resource, seen_at: int) -> None:
        device = device_of(resource, seen_at)
        if device is None:
            return
        self.devices_by_lfdi[device.lfdi] = device
        self.devices_by_sfdi[device.sfdi] = device
        self._device_of_resource[resource.id] = device

    def prune(self, now: datetime) -> None:
        """Forget controls and envelopes that ended longer than the grace ago (they stay in the store)."""
        horizon = now - self.grace
        with self._lock:
            for key in [k for k, c in self.controls.items() if c.periods[-1].span.end < horizon]:
                del self.controls[key]
            for key in [k for k, e in self.envelopes.items() if e.periods[-1].span.end < horizon]:
                del self.envelopes[key]
            for key in [k for k, o in self.overrides.items() if o.span.end < horizon]:
                del self.overrides[key]

    # -- what a device sees ---------------------------------------------------------------------------

    def locations_up(self, location_id: str) -> list[str]:
        """The location and its ancestors, nearest first (cycles cut)."""
        path: list[str] = []
        current: str | None = location_id
        while current is not None and current not in path:
            path.append(current)
            current = self.parents.get(current)
        return path

    def controls_for(self, device: Device) -> list[Control]:
        """Controls aimed at the device: its resource, its owner, a location at or above it, or broadcast."""
        locations = set(self.locations_up(device.location_id))
        found: list[Control] = []
        for control in self.controls.values():
            targets = control.targets
            if (
                targets.broadcast
                or device.resource_id in targets.resource_ids
                or device.party_id in targets.party_ids
                or not locations.isdisjoint(targets.location_ids)
            ):
                found.append(control)
        return found

    def envelopes_for(self, device: Device) -> list[OperatingEnvelope]:
        """Operating envelopes at the device's connection point: its own resource, else its location."""
        return [
            e
            for e in self.envelopes.values()
            if e.resource_id == device.resource_id or (e.resource_id is None and e.location_id == device.location_id)
        ]

    def overrides_for(self, device: Device, now: datetime) -> list[Override]:
        """The device's party's overrides in force now or later that concern this device (named, or the party as a
        whole), from every edge: an opt-out through the customer's app is shown to the device too."""
        mine = [
            o
            for o in self.overrides.values()
            if o.party_id == device.party_id and o.resource_id in (None, device.resource_id)
        ]
        return standing(mine, now) if mine else []

    def device(self, lfdi: str) -> Device | None:
        return self.devices_by_lfdi.get(lfdi)


def is_cancelled(control: Control) -> bool:
    return control.status is ControlStatus.CANCELLED
