"""The northbound VEN bridge: the gateway registers with a utility's VTN as a VEN on behalf of one canonical party.

openleadr's OpenADRClient does the talking (registration, polling, signatures, reports); this module decides what
the utility's events mean canonically and what the party answers:

- each event becomes canonical Controls, or a price Tender, per its program's ``simple_levels`` (``bridge_levels``),
  stored through the one ingest path before the client acknowledges it to the VTN;
- a cancelled event, or one a later oadrDistributeEvent leaves out (an implied cancellation, which openleadr's
  client does not notice), cancels what it became; so does an update the gateway can no longer follow;
- the answer is optOut when the party has an active canonical opt-out override of what the event became, or of
  one of the event's resources over the event's time, else optIn; an override that appears or goes away later is
  sent as an oadrCreateOpt (``sync_opts``: on every override on the bus, and every few seconds from the store,
  because another gateway process may have written it);
- a TELEMETRY_USAGE report offers each of the party's resources, valued from its latest canonical Delivery.

Test events are acknowledged (optIn) and make nothing. An event the gateway cannot carry is answered optOut and
logged: a VEN that cannot follow an event must not let the utility count on it.

What the bridge remembers about events is in memory; after a restart the VTN sends its events again (the client
asks for them), the canonical objects are found unchanged (the store is idempotent), and the first event list also
cancels what the bridge made earlier that the VTN no longer lists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from openleadr import OpenADRClient

from gateway.ingest import Ingestor, Rejected
from gateway.model import (
    Control,
    Market,
    MessageKind,
    Override,
    OverrideStatus,
    Party,
    Resource,
    Tender,
    received,
    utc_now,
)
from gateway.model.intervals import TimeSpan
from gateway.model.overrides import OverrideMode
from gateway.protocols.openadr2b import mapper
from gateway.protocols.openadr2b.bridge_levels import (
    BridgeObject,
    answer_for,
    apply_levels,
    cancelled,
    event_resources,
    id_prefix,
    localise,
    opt_reason,
    unlisted,
)
from gateway.protocols.openadr2b.bridge_reports import offer_telemetry
from gateway.protocols.openadr2b.from_openleadr import (
    OpenleadrEventError,
    event_from_openleadr,
    forget_event,
    is_test_event,
    remember_answer,
    restore_forgotten_answers,
)
from gateway.protocols.openadr2b.messages import Event, EventStatus, OptType
from gateway.protocols.openadr2b.table import LevelMode, MappingTable, default_table
from gateway.protocols.openadr2b.vens import PROTOCOL
from gateway.store import Store, StoredMessage

log = logging.getLogger(__name__)

_KINDS = {Control: MessageKind.CONTROL, Tender: MessageKind.TENDER}
FORGET_AFTER = timedelta(days=1)
"""How long after its end the bridge still remembers an event (a late update of it is then still an update)."""


class BridgeError(Exception):
    """The bridge cannot run: an unknown party, or a VTN that cannot be reached or does not register us."""


@dataclass
class Received:
    """One event as the bridge handled it (what `tgw bridge openadr2b` prints)."""

    event_id: str
    modification_number: int
    status: str
    object_ids: list[str]
    answer: OptType
    note: str | None = None


@dataclass
class _Held:
    """An event the bridge answered. ``raw_id`` is the id as openleadr keeps it (it reads an id "42" as 42)."""

    raw_id: Any
    event: Event
    objects: list[tuple[MessageKind, str]]
    span: TimeSpan
    resources: frozenset[str]
    answer: OptType
    live: bool = True
    opt_refused: bool = False


def _span(event: Event) -> TimeSpan:
    intervals = event.signals[0].intervals if event.signals else []
    duration = event.duration or sum((i.duration for i in intervals), timedelta(0))
    return TimeSpan(start=event.start, duration=max(duration, timedelta(seconds=1)))


class VenBridge:
    """One VEN registration at one utility VTN, for ``party_id``. ``start()`` registers and runs it in the current
    event loop; ``stop()`` ends it. ``poll_seconds`` overrides the poll frequency the VTN asks for;
    ``override_check_seconds`` (None: never) is how often the store is read for overrides made elsewhere."""

    def __init__(
        self,
        store: Store,
        ingestor: Ingestor,
        *,
        vtn_url: str,
        ven_name: str,
        party_id: str,
        table: MappingTable | None = None,
        cert: str | None = None,
        key: str | None = None,
        passphrase: str | None = None,
        ca_file: str | None = None,
        vtn_fingerprint: str | None = None,
        ven_id: str | None = None,
        check_hostname: bool = True,
        poll_seconds: float | None = None,
        override_check_seconds: float | None = 5.0,
    ) -> None:
        if not isinstance(store.get(MessageKind.PARTY, party_id), Party):
            raise BridgeError(f"unknown party '{party_id}': create the party (and its resources) before bridging it")
        self.store = store
        self.ingestor = ingestor
        self.vtn_url = vtn_url
        self.ven_name = ven_name
        self.party_id = party_id
        self.table = table or default_table()
        self.poll_seconds = poll_seconds
        self.override_check_seconds = override_check_seconds
        self.client = OpenADRClient(
            ven_name=ven_name,
            vtn_url=vtn_url,
            cert=cert,
            key=key,
            passphrase=passphrase,
            vtn_fingerprint=vtn_fingerprint,
            show_fingerprint=False,
            ca_file=ca_file,
            ven_id=ven_id,
            check_hostname=check_hostname,
        )
        self.client.add_handler("on_event", self._on_event)
        self.client.add_handler("on_update_event", self._on_event)
        self.client.add_hook("after_parse_xml", self._after_parse)
        self.vtn_id: str | None = None
        self.listeners: list[Callable[[Received], None]] = []
        self._held: dict[str, _Held] = {}
        self._orphans: list[tuple[MessageKind, str]] = []
        self._unknown_contexts: set[str] = set()
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self._subscription: Any = None

    @property
    def peer(self) -> str:
        """The utility as the source of what the bridge stores: its vtnID once it has answered."""
        return (self.vtn_id or self.vtn_url)[:200]

    @property
    def prefix(self) -> str:
        return id_prefix(self.party_id, self.peer)

    # --- lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Register, register the reports, take the VTN's events and start polling; raises :class:`BridgeError`."""
        resources = await asyncio.to_thread(self._resources)
        offer_telemetry(self.client, self.store, self.party_id, resources, self.table.vtn)
        try:
            await self.client.run()
        except Exception as exc:  # openleadr fails with whatever its parsing met (a None unpacked, a KeyError)
            await self.stop()
            raise BridgeError(f"the VTN at {self.vtn_url} could not be worked with: {exc}") from exc
        if not self.client.registration_id:
            await self.stop()
            raise BridgeError(
                f"the VTN at {self.vtn_url} did not register VEN '{self.ven_name}' (unreachable, or it refused;"
                " see the log)"
            )
        if self.poll_seconds:
            for job in self.client.scheduler.get_jobs():
                if getattr(job.func, "__name__", "") == "_poll":
                    job.reschedule(trigger="interval", seconds=self.poll_seconds)
        if self.override_check_seconds:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        if self.ingestor.bus is not None:
            self._subscription = self.ingestor.bus.on([MessageKind.OVERRIDE], self._on_override)

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        if self.client.client_session is not None and not self.client.client_session.closed:
            await self.client.stop()
        elif self.client.scheduler.running:
            self.client.scheduler.shutdown()

    async def _watch(self) -> None:
        assert self.override_check_seconds
        while True:
            await asyncio.sleep(self.override_check_seconds)
            try:
                await self.sync_opts()
            except Exception:
                log.exception("checking overrides for the utility's events failed; will try again")

    async def _on_override(self, message: StoredMessage) -> None:
        payload = message.envelope.payload
        if isinstance(payload, Override) and payload.party_id == self.party_id:
            await self.sync_opts()

    # --- what the VTN sends --------------------------------------------------------------------------------------

    async def _after_parse(self, message_type: str, payload: dict[str, Any]) -> None:
        """Every message from the VTN, before openleadr acts on it: learn the vtnID, mend openleadr's memory and
        find the events a new event list leaves out."""
        if message_type == "oadrCreatedPartyRegistration" and self.vtn_id is None and payload.get("vtn_id"):
            self.vtn_id = str(payload["vtn_id"])
            self._orphans = await asyncio.to_thread(self._live_in_store)
        elif message_type == "oadrDistributeEvent":
            if (payload.get("response") or {}).get("response_code", 200) != 200:
                return  # an error answer (openleadr's VTN sends one as an empty event list) lists nothing
            events = payload.get("events") or []
            restore_forgotten_answers(self.client, events, self._answer_of)
            await self._implied_cancellations({str(e["event_descriptor"]["event_id"]) for e in events})

    def _answer_of(self, event_id: str) -> str:
        held = self._held.get(event_id)
        return (held.answer if held else OptType.OPT_IN).value

    async def _implied_cancellations(self, present: set[str]) -> None:
        async with self._lock:
            now = utc_now()
            for event_id, held in self._held.items():
                if event_id in present or not held.live or held.span.end <= now:
                    continue
                await self._cancel(held.objects)
                held.live = False
                forget_event(self.client, held.raw_id)
                self._notify(held, "cancelled", "left out of the VTN's event list: cancelled")
            self._held = {k: h for k, h in self._held.items() if h.span.end > now - FORGET_AFTER}
            if self._orphans:
                gone = unlisted(self._orphans, self.prefix, present)
                self._orphans = []
                if gone:
                    log.info("the VTN no longer lists %s (made before a restart): cancelling", [i for _, i in gone])
                    await self._cancel(gone)

    async def _on_event(self, raw: dict[str, Any]) -> str:
        """openleadr's on_event and on_update_event: must answer, never raise (openleadr would then opt out of
        every event of the message)."""
        try:
            async with self._lock:
                return (await self._receive(raw)).value
        except Exception:
            log.exception("event %s could not be handled; answering optOut", raw.get("event_descriptor"))
            return OptType.OPT_OUT.value

    async def _receive(self, raw: dict[str, Any]) -> OptType:
        try:
            event = event_from_openleadr(raw)
        except OpenleadrEventError as exc:
            log.warning("an event from %s could not be read (%s); answering optOut", self.peer, exc)
            return OptType.OPT_OUT
        earlier = self._held.get(event.event_id)
        if is_test_event(event):
            self._notify_event(event, [], OptType.OPT_IN, "test event: acknowledged, nothing made")
            return OptType.OPT_IN
        try:
            objects, resources = await asyncio.to_thread(self._objects_of, event)
            made = [(_KINDS[type(obj)], obj.id) for obj in objects]
            stale = [ref for ref in earlier.objects if ref not in made] if earlier else []
            await self._store(objects)
        except (mapper.MappingError, Rejected) as exc:
            reason = exc.reason if isinstance(exc, mapper.MappingError) else str(exc)
            log.warning("event %s from %s refused, answering optOut: %s", event.event_id, self.peer, reason)
            if earlier is not None:
                await self._cancel(earlier.objects)  # the version the gateway followed no longer exists
            refused = _Held(raw["event_descriptor"]["event_id"], event, [], _span(event), frozenset(), OptType.OPT_OUT)
            refused.live = False
            self._held[event.event_id] = refused
            self._notify_event(event, [], OptType.OPT_OUT, f"refused: {reason}")
            return OptType.OPT_OUT
        if stale:
            await self._cancel(stale)
        held = _Held(
            raw_id=raw["event_descriptor"]["event_id"],
            event=event,
            objects=made,
            span=_span(event),
            resources=resources,
            answer=OptType.OPT_IN,
            live=event.status is not EventStatus.CANCELLED,
        )
        held.answer, _ = self._decide(held, await asyncio.to_thread(self._opt_outs))
        self._held[event.event_id] = held
        self._notify(held, event.status.value)
        return held.answer

    def _objects_of(self, event: Event) -> tuple[list[BridgeObject], frozenset[str]]:
        own = {resource.id for resource in self._resources()}
        local = localise(event, prefix=self.prefix, party_id=self.party_id, own_resources=own)
        controls = mapper.event_to_controls(local, self.table)
        program = self.table.program_by_context(event.market_context)
        if program is None and event.market_context not in self._unknown_contexts:
            self._unknown_contexts.add(event.market_context)
            log.warning("no program has market context %s: its SIMPLE levels stay levels", event.market_context)
        market = None
        if program is not None and program.simple_levels.mode is LevelMode.PRICE_ADDER and program.market_id:
            found = self.store.get(MessageKind.MARKET, program.market_id)
            market = found if isinstance(found, Market) else None
        return apply_levels(local, controls, program, market), event_resources(event, own)

    # --- answers -------------------------------------------------------------------------------------------------

    def _opt_outs(self) -> list[Override]:
        found = self.store.list(
            MessageKind.OVERRIDE, filters={"party_id": self.party_id, "status": OverrideStatus.ACTIVE.value}, limit=None
        )
        return [o for o in found if isinstance(o, Override) and o.mode is OverrideMode.OPT_OUT]

    @staticmethod
    def _decide(held: _Held, opt_outs: list[Override]) -> tuple[OptType, Override | None]:
        return answer_for({object_id for _, object_id in held.objects}, held.resources, held.span, opt_outs)

    async def sync_opts(self) -> list[tuple[str, OptType]]:
        """Tell the VTN (oadrCreateOpt) about every live event whose answer the party's overrides changed since it
        was given; returns the (event id, answer) pairs the VTN acknowledged."""
        sent: list[tuple[str, OptType]] = []
        async with self._lock:
            opt_outs = await asyncio.to_thread(self._opt_outs)
            now = utc_now()
            for event_id, held in self._held.items():
                if not held.live or held.span.end <= now:
                    continue
                wanted, override = self._decide(held, opt_outs)
                if wanted is held.answer:
                    continue
                acknowledged = await self.client.create_opt(
                    wanted.value,
                    opt_reason(wanted, override),
                    targets=[{"ven_id": self.client.ven_id}],
                    event_id=held.raw_id,
                    modification_number=held.event.modification_number,
                    market_context=held.event.market_context,
                )
                if not acknowledged:
                    if not held.opt_refused:
                        log.warning("the VTN did not acknowledge our %s of event %s; will retry", wanted, event_id)
                    held.opt_refused = True
                    continue
                held.answer = wanted
                remember_answer(self.client, held.raw_id, wanted.value)
                sent.append((event_id, wanted))
                self._notify(held, "opt sent", f"oadrCreateOpt {wanted.value}")
        return sent

    # --- storing -------------------------------------------------------------------------------------------------

    async def _store(self, objects: list[BridgeObject]) -> None:
        if not objects:
            return
        envelopes = received(objects, protocol=PROTOCOL, peer=self.peer)
        await self.ingestor.ingest(envelopes, protocol=PROTOCOL, peer=self.peer)

    async def _cancel(self, refs: list[tuple[MessageKind, str]]) -> None:
        found = await asyncio.to_thread(lambda: [self.store.get(kind, object_id) for kind, object_id in refs])
        versions = [c for obj in found if isinstance(obj, Control | Tender) and (c := cancelled(obj)) is not None]
        try:
            await self._store(versions)
        except Rejected as exc:
            log.warning("cancelling %s was refused: %s", [o.id for o in versions], exc)

    def _live_in_store(self) -> list[tuple[MessageKind, str]]:
        """What the bridge made for this VTN before a restart that may still matter (tenders are read only for
        the price programs' utilities: a busy market holds many)."""
        now, prefix = utc_now(), self.prefix
        found = self.store.list(MessageKind.CONTROL, limit=None)
        for seller in {p.utility_party_id for p in self.table.programs if p.utility_party_id}:
            found += self.store.list(MessageKind.TENDER, filters={"party_id": seller}, limit=None)
        return [
            (_KINDS[type(obj)], obj.id)
            for obj in found
            if isinstance(obj, Control | Tender)
            and obj.id.startswith(prefix)
            and (obj.span.end if isinstance(obj, Control) else obj.intervals[-1].end) > now
            and cancelled(obj) is not None
        ]

    def _resources(self) -> list[Resource]:
        found = self.store.list(MessageKind.RESOURCE, filters={"owner_id": self.party_id}, limit=None)
        return [r for r in found if isinstance(r, Resource)]

    # --- telling the operator ------------------------------------------------------------------------------------

    def _notify(self, held: _Held, status: str, note: str | None = None) -> None:
        self._notify_event(held.event, [object_id for _, object_id in held.objects], held.answer, note, status)

    def _notify_event(
        self, event: Event, object_ids: list[str], answer: OptType, note: str | None, status: str | None = None
    ) -> None:
        status = status or event.status.value
        notice = Received(event.event_id, event.modification_number, status, object_ids, answer, note)
        for listener in self.listeners:
            try:
                listener(notice)
            except Exception:
                log.exception("a bridge listener failed")
