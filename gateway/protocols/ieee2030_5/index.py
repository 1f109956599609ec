"""What the 2030.5 server must know of the canonical state, held in memory and kept current incrementally.

A utility server may have a hundred thousand devices polling it. Answering each GET from the database (which
device is this certificate, which controls are aimed at it) would put a query, and the parsing of every control,
on every poll. Instead the server holds an index of the few kinds it renders from: resources that carry an LFDI
(the devices), locations (for "at or below" targeting), controls and operating envelopes. It is loaded once, then
kept current from the bus (messages this process stored, applied without reading them back) and, when the log
has moved beyond what the bus delivered (another gateway process wrote, or the bus dropped messages), by reading
the log from the last sequence applied. ``version`` moves only when something a device would see changed, so the
per-device render caches survive the stream of Responses and meter readings devices post.

Events are immutable once published (2030.5: a change is a new event, the old one is cancelled, never rewritten
and never deleted while it is relevant). So for each live control and envelope the index keeps a :class:`History`:
the events its current version shows (one per period, each an :class:`~mapper.Edition` of that period's content)
and the earlier editions an edit replaced, shown cancelled from the moment the editing version was stored until
they end (plus the grace). A version that changes nothing a device acts on in a period (a status change, a
re-post, a new target) keeps that period's event, mRID and creationTime included; one that changes it gets the
next edition, created when it was stored, so the new event never supersedes the old one (the cancellation ties
with it and wins, see engine rule 4). A device a version no longer reaches (taken off the targets) is shown the
event it had, cancelled, rather than losing it. A history is a pure function of the versions in the log and their
``stored_at``: after a restart it is replayed from the log (only for objects with more than one version, or
stored cancelled), so devices are served the same mRIDs, statuses and times.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

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
from gateway.protocols.ieee2030_5.mapper import Edition, control_fingerprint, envelope_fingerprint
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
_HISTORY_PAGE = 10_000
_EDITED = (MessageKind.CONTROL, MessageKind.OPERATING_ENVELOPE)

Versioned = Control | OperatingEnvelope


@dataclass(frozen=True, slots=True)
class Event:
    """One published DERControl: one period of one version of a control or envelope, in one edition."""

    version: Versioned  # the version whose content (and program) it shows
    edition: Edition
    fingerprint: tuple[Any, ...]
    audience: Versioned | None = None  # a retired event: the version whose targets saw it last (None: ``version``)

    @property
    def end(self) -> datetime:
        return self.version.periods[self.edition.period].span.end

    @property
    def reach(self) -> Versioned:
        """The version whose targets (or connection point) decide which devices are shown this event."""
        return self.audience or self.version

    def cancelled(self, at: int) -> Event:
        """This event cancelled at ``at``; a cancelled event keeps its first cancellation."""
        if self.edition.cancelled_at is not None:
            return self
        return replace(self, edition=replace(self.edition, cancelled_at=at))

    def retired(self, at: int, seen_by: Versioned) -> Event:
        """This event taken from the devices ``seen_by`` reached (the version current until ``at``): they are
        shown it cancelled at ``at`` (or at its earlier cancellation) rather than losing it."""
        return replace(self.cancelled(at), audience=seen_by)


@dataclass(slots=True)
class History:
    """What devices are shown of one control or envelope: see the module docstring."""

    current: Versioned
    events: list[Event]  # the current events, by period
    retired: list[Event]  # replaced editions, copies for devices taken off: cancelled, shown until the end + grace
    numbers: dict[int, int]  # period -> the last edition number used
    last_seq: int  # the log sequence of the newest version applied (0: unknown)
    first_cancelled: int | None = None  # when a version was first stored cancelled (epoch s)

    @property
    def end(self) -> datetime:
        ends = [self.current.periods[-1].span.end, *(e.end for e in self.events), *(e.end for e in self.retired)]
        return max(ends)

    def shown(self) -> list[Event]:
        return [*self.retired, *self.events]


def _fingerprint(payload: Versioned, period: int) -> tuple[Any, ...]:
    if isinstance(payload, Control):
        return control_fingerprint(payload, period)
    return envelope_fingerprint(payload, period)


def advance(history: History | None, payload: Versioned, stored_at: int, seq: int) -> History:
    """The history after one more stored version (``stored_at``: when the log stored it, epoch s). Pure, so the
    live index and a replay of the log agree.

    * First version: edition 0 of every period, created at the object's ``created_at``.
    * A cancelled version publishes nothing new: every current event is cancelled at ``stored_at`` (or keeps an
      earlier cancellation) under its own mRID.
    * Otherwise, per period: the same fingerprint as a live current event keeps that event; a different one (or
      a current event that was cancelled: 2030.5 cannot revive an event) retires the old event, cancelled at
      ``stored_at``, and publishes the next edition, created at ``stored_at``. Periods the version no longer has
      are retired (cancelled) too.
    * A version that reaches fewer devices (targets dropped; an envelope moved) keeps its events for the devices
      it still reaches and retires a cancelled copy of each for the devices the previous version reached: a
      device taken off a control sees its event cancelled, as 2030.5 requires, instead of losing it.
    A retired event is shown to the devices the version current until then reached (``Event.audience``).
    """
    cancelled = isinstance(payload, Control) and is_cancelled(payload)
    count = len(payload.periods)
    if history is None:
        created = int(payload.created_at.timestamp())
        cancel = stored_at if cancelled else None
        events = [Event(payload, Edition(p, 0, created, cancel), _fingerprint(payload, p)) for p in range(count)]
        return History(payload, events, [], dict.fromkeys(range(count), 0), seq, stored_at if cancelled else None)
    if seq and seq <= history.last_seq:
        return history  # replayed already
    first_cancelled = history.first_cancelled
    previous = history.current
    retired = list(history.retired)
    if cancelled:
        events = [event.cancelled(stored_at) for event in history.events]
        numbers = history.numbers
        if first_cancelled is None:
            first_cancelled = stored_at
        kept = events
    else:
        events = []
        kept = []
        numbers = dict(history.numbers)
        old = history.events
        for period in range(count):
            fingerprint = _fingerprint(payload, period)
            before = old[period] if period < len(old) else None
            if before is not None and before.edition.cancelled_at is None and before.fingerprint == fingerprint:
                events.append(before)
                kept.append(before)
                continue
            if before is not None:
                retired.append(before.retired(stored_at, previous))
            number = numbers.get(period, -1) + 1
            numbers[period] = number
            events.append(Event(payload, Edition(period, number, stored_at), fingerprint))
        retired.extend(event.retired(stored_at, previous) for event in old[count:])
    if kept and _reach_shrank(previous, payload):
        retired.extend(event.retired(stored_at, previous) for event in kept)
    return History(payload, events, retired, numbers, max(seq, history.last_seq), first_cancelled)


def _reach_shrank(before: Versioned, after: Versioned) -> bool:
    """Whether ``after`` may reach fewer devices than ``before`` (conservative: a location replaced by its parent
    counts as shrinking; the devices still reached are shown the live event, not the retired copy)."""
    if isinstance(before, Control) and isinstance(after, Control):
        old, new = before.targets, after.targets
        if new.broadcast:
            return False
        return old.broadcast or not (
            set(old.resource_ids) <= set(new.resource_ids)
            and set(old.party_ids) <= set(new.party_ids)
            and set(old.location_ids) <= set(new.location_ids)
        )
    if isinstance(before, OperatingEnvelope) and isinstance(after, OperatingEnvelope):
        return (before.resource_id, before.location_id) != (after.resource_id, after.location_id)
    return False


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
        # (kind, id) -> what devices are shown of each live control and envelope (events, editions, retired ones)
        self.histories: dict[tuple[MessageKind, str], History] = {}
        self._known: set[tuple[MessageKind, str]] = set()  # every control and envelope id ever seen, live or not
        self._unresolved: set[tuple[MessageKind, str]] = set()  # changed, history not in memory: replay from the log
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
            edited = self._edited()
            for kind in _EDITED:
                for payload in self.store.list(kind, limit=None):
                    assert isinstance(payload, Control | OperatingEnvelope)
                    key = (kind, payload.id)
                    self._known.add(key)
                    if payload.periods[-1].span.end < horizon:
                        continue
                    if key in edited or (isinstance(payload, Control) and is_cancelled(payload)):
                        self._replay(key)  # several versions, or stored cancelled: when, as _apply saw it live
                    else:
                        self._put(key, advance(None, payload, 0, 0))
            for override in self.store.list(MessageKind.OVERRIDE, limit=None):
                assert isinstance(override, Override)
                if override.span.end >= horizon:
                    self.overrides[override.id] = override
            self.applied_seq = max(self.applied_seq, seq)
            self._loaded = True
            self._log_checked_at = time.monotonic()
            self.version += 1

    def _edited(self) -> set[tuple[MessageKind, str]]:
        """The controls and envelopes the log holds more than one version of (one grouped query, no bodies)."""
        return self.store.revised(_EDITED)

    def _replay(self, key: tuple[MessageKind, str]) -> None:
        """Rebuild one object's history from its versions in the log, with the times the log stored them: the
        EventStatus dateTimes devices saw before a restart. (Creation times would move a cancellation back, so a
        device would see the status change again and the engine would rewrite the event's history.)"""
        kind, entity_id = key
        history: History | None = None
        after = 0
        while True:
            found = self.store.query_messages(kind=kind, entity_id=entity_id, after_seq=after, limit=_HISTORY_PAGE)
            for message in found:
                payload = message.envelope.payload
                if isinstance(payload, Control | OperatingEnvelope):
                    history = advance(history, payload, int(message.stored_at.timestamp()), message.seq)
            if len(found) < _HISTORY_PAGE:
                break
            after = found[-1].seq
        if history is None:
            return
        horizon = datetime.now(UTC) - self.grace
        history.retired = [e for e in history.retired if e.end >= horizon]  # as prune() would have left them
        if history.end >= horizon:
            self._put(key, history)

    def _put(self, key: tuple[MessageKind, str], history: History) -> None:
        self._known.add(key)
        self.histories[key] = history
        current = history.current
        if isinstance(current, Control):
            self.controls[current.id] = current
            if history.first_cancelled is not None:
                self.cancelled_at[current.id] = history.first_cancelled
        else:
            self.envelopes[current.id] = current

    def _resolve(self) -> None:
        """Replay the objects that changed while their history was not in memory (a thread: it reads the log)."""
        while self._unresolved:
            self._replay(self._unresolved.pop())
            self.version += 1

    def fresh_in_memory(self) -> bool:
        """Apply what the bus delivered; True when that is known to be everything (no store read needed).
        Cheap: call it on the event loop before answering; when False, call :meth:`catch_up` in a thread."""
        if not self._loaded:
            return False
        if self._subscription is not None:
            self._apply_messages(self._subscription.drain())
        if self._unresolved:
            return False
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
            self._resolve()
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
                    self._apply(envelope.payload, message.stored_at, message.seq)

    def _apply(self, payload: CanonicalObject, stored_at: datetime, seq: int = 0) -> None:
        if isinstance(payload, Resource):
            old = self._device_of_resource.get(payload.id)
            if old is not None:
                self.devices_by_lfdi.pop(old.lfdi, None)
                self.devices_by_sfdi.pop(old.sfdi, None)
                self._device_of_resource.pop(payload.id, None)
            self._put_resource(payload, int(stored_at.timestamp()))
        elif isinstance(payload, Location):
            self.parents[payload.id] = payload.parent_id
        elif isinstance(payload, Control | OperatingEnvelope):
            kind = MessageKind.CONTROL if isinstance(payload, Control) else MessageKind.OPERATING_ENVELOPE
            key = (kind, payload.id)
            history = self.histories.get(key)
            if key in self._unresolved:
                return  # replayed from the log, this version included, before the next answer
            if history is None and key in self._known:  # edited after it left memory (ended, or pruned)
                self._unresolved.add(key)
                return
            updated = advance(history, payload, int(stored_at.timestamp()), seq)
            if updated is history:
                return
            self._put(key, updated)
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
            for key, history in list(self.histories.items()):
                if history.end < horizon:
                    del self.histories[key]
                    (self.controls if key[0] is MessageKind.CONTROL else self.envelopes).pop(key[1], None)
                elif history.retired and min(e.end for e in history.retired) < horizon:
                    history.retired = [e for e in history.retired if e.end >= horizon]
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
        return [c for c in self.controls.values() if _aims_at(c, device, locations)]

    def envelopes_for(self, device: Device) -> list[OperatingEnvelope]:
        """Operating envelopes at the device's connection point: its own resource, else its location."""
        return [e for e in self.envelopes.values() if _at(e, device)]

    def events_for(self, device: Device) -> Iterable[Event]:
        """The events the device is shown: those of the controls and envelopes aimed at it now, and the retired
        (cancelled) editions of those that were aimed at it when they were published."""
        locations = set(self.locations_up(device.location_id))
        for history in self.histories.values():
            live = _shown_to(history.current, device, locations)
            if live:
                yield from history.events
            if not history.retired:
                continue
            editions = {(e.edition.period, e.edition.number) for e in history.events} if live else set()
            dropped: dict[tuple[int, int], Event] = {}
            for event in history.retired:
                key = (event.edition.period, event.edition.number)
                if key in editions or not _shown_to(event.reach, device, locations):
                    continue  # the device is shown this edition live, or was never shown it
                # taken off, put back and taken off again: the last time it was taken off stands
                earlier = dropped.get(key)
                if earlier is None or (event.edition.cancelled_at or 0) >= (earlier.edition.cancelled_at or 0):
                    dropped[key] = event
            yield from dropped.values()

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


def _aims_at(control: Control, device: Device, locations: set[str]) -> bool:
    targets = control.targets
    return (
        targets.broadcast
        or device.resource_id in targets.resource_ids
        or device.party_id in targets.party_ids
        or not locations.isdisjoint(targets.location_ids)
    )


def _shown_to(payload: Versioned, device: Device, locations: set[str]) -> bool:
    if isinstance(payload, Control):
        return _aims_at(payload, device, locations)
    return _at(payload, device)


def _at(envelope: OperatingEnvelope, device: Device) -> bool:
    return envelope.resource_id == device.resource_id or (
        envelope.resource_id is None and envelope.location_id == device.location_id
    )
