"""The MQTT bridge: lets integrators run the gateway as a sidecar and talk to it in canonical JSON over MQTT.

Topics (``{prefix}`` is ``tgw/v1`` unless the URL says ``?prefix=``):

``{prefix}/{kind}/{id}``  outbound, QoS 1. Every stored canonical message, in log order. The body is the
    stored envelope's JSON with the log sequence number added as the first member::

        {"seq": 42, "message_id": "...", "kind": "party", "source": {...}, "correlation_id": null,
         "created_at": "...", "received_at": "...", "payload": {"object_type": "party", "id": "p-1", ...}}

    ``seq`` is what a consumer keeps to notice gaps or drop the duplicates that at-least-once delivery
    brings. ``{id}`` is ``payload.id`` with ``%``, ``+``, ``#``, ``/`` and NUL percent-encoded (``%2B``...),
    because MQTT forbids wildcards in the topic of a published message; the id in the body is unaltered.

``{prefix}/in/{kind}``  inbound, subscribed at QoS 1. The body is either a bare canonical object of that
    kind (``{"id": "p-1", "name": "...", "roles": ["consumer"]}``, ``object_type`` optional) or a full
    envelope (``{"payload": {"object_type": "party", ...}, "correlation_id": "...", "source": {...}}``; an
    envelope's payload must name its ``object_type``). Numbers are read as exact decimals. It is checked and stored
    like REST input (protocol ``mqtt``, peer ``mqtt`` unless the envelope names its source) and then, being
    a stored message, published outbound like any other.

``{prefix}/rejected/{kind}``  QoS 1 notices about refused inbound messages::

        {"reason": "the resource was refused: owner_id: unknown party 'p-9'",
         "errors": [{"loc": ["owner_id"], "msg": "unknown party 'p-9'"}],
         "topic": "tgw/v1/in/resource", "correlation_id": null, "rejection_id": 7}

    ``loc`` points into what was sent (into the bare object, or into the envelope); ``rejection_id`` is
    the row in the store's rejection log (``GET /v1/rejections``).

Delivery guarantees. Outbound is at-least-once and durable (the outbox pattern): the bridge reads the log
after its cursor (``mqtt:{client_id}`` in the store), publishes a batch, waits for the broker's PUBACK of
every message in it, and only then moves the cursor. A lost connection, a broker restart, or a restart of
the gateway therefore loses nothing stored, and may repeat what was published but not yet confirmed.
Inbound follows the house rule "stored before acknowledged": paho's automatic acknowledgement is off, and a
message is acknowledged only once it is stored, found to be a duplicate, or refused and its refusal
recorded (a refused message will never become valid by redelivery). While the store is unreachable nothing
is acknowledged: the bridge retries in arrival order, and if it stops first the broker redelivers from the
bridge's persistent session (``clean_session=False`` under a stable client id), which also holds the
messages sent to ``{prefix}/in/+`` while the bridge was away.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from gateway.bus import Bus, Subscription
from gateway.ingest import Ingestor, Rejected
from gateway.model import Envelope, utc_now
from gateway.protocols.mqtt.codec import (
    DEFAULT_PEER,
    MAX_INBOUND_BYTES,
    PROTOCOL,
    Decoded,
    Refusal,
    decode_inbound,
    outbound_body,
    outbound_topic,
    problem_errors,
    summarise_errors,
    topic_level,
)
from gateway.protocols.mqtt.url import MqttSettings
from gateway.store import MessageIdConflict, Store, StoredMessage, StoreError

log = logging.getLogger(__name__)

_P = ParamSpec("_P")


# -- scheduling and failures ---------------------------------------------------------------------------------


def publishable(batch: list[StoredMessage], after_seq: int, *, now: datetime, grace: float) -> list[StoredMessage]:
    """The leading part of ``batch`` that is safe to publish now, stopping at a young gap in the sequence.

    On PostgreSQL a sequence number is taken when a transaction inserts, not when it commits, so a writer
    may commit seq 11 while seq 10 is still in flight. Moving the cursor past 11 would lose 10 for good.
    A gap is therefore waited for until the message after it is ``grace`` seconds old; by then the missing
    number belongs to a rolled-back transaction (sequences never reuse numbers) and is skipped. SQLite has
    one writer at a time and no gaps.
    """
    expected = after_seq + 1
    for index, message in enumerate(batch):
        if message.seq != expected and (now - message.stored_at).total_seconds() < grace:
            return batch[:index]
        expected = message.seq + 1
    return batch


def is_store_outage(exc: BaseException) -> bool:
    """True for failures that retrying later may cure (database down, locked, pool exhausted).

    A conflicting message id is the sender's error, not an outage: retrying would never succeed.
    """
    if isinstance(exc, MessageIdConflict):
        return False
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    return isinstance(exc, StoreError | DisconnectionError | PoolTimeout | OSError)


# -- the bridge ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Inbound:
    """A message from the broker, remembered with the connection it came on (acks are per connection)."""

    topic: str
    body: bytes
    mid: int
    qos: int
    generation: int
    handled: bool = False  # stored, found duplicate, or refused and recorded; only the ack may be missing


class _PahoNoise(logging.Filter):
    """paho 2.2 logs "Client is not connected" at ERROR once after every disconnect, even a clean one.

    The bridge logs lost connections itself (with the reason), so that line is demoted to DEBUG.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith("Client is not connected"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


_paho_log = logging.getLogger(f"{__name__}.paho")
_paho_log.addFilter(_PahoNoise())


def _guarded(callback: Callable[_P, None]) -> Callable[_P, None]:
    """Log and swallow any exception: a callback that raises would end paho's network thread."""

    @functools.wraps(callback)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            callback(*args, **kwargs)
        except Exception:
            log.exception("MQTT bridge: %s failed", callback.__name__)

    return wrapper


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again any that swallowed a cancellation."""
    while pending := [task for task in tasks if not task.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=1.0)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("MQTT bridge task %s had failed", task.get_name(), exc_info=task.exception())


class MqttBridge:
    """Publishes the store's log to MQTT and stores what integrators publish to it.

    Usage (in an async context, e.g. the FastAPI lifespan)::

        bridge = MqttBridge(parse_mqtt_url(url), store=store, ingestor=ingestor, bus=bus)
        await bridge.start()   # returns at once; connects (and keeps reconnecting) in the background
        ...
        await bridge.stop()

    paho's network thread runs the MQTT connection; everything else (store access, decisions, acks) happens
    on the event loop, where paho callbacks hand their work. Outbound is at-least-once; see the module
    docstring for topics, JSON shapes and guarantees.
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        store: Store,
        ingestor: Ingestor,
        bus: Bus,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        reconnect_delay: tuple[float, float] = (1, 30),
        max_inbound_bytes: int = MAX_INBOUND_BYTES,
        inbound_batch_size: int = 100,
        gap_grace: float = 5.0,
    ) -> None:
        self.settings = settings
        self._store = store
        self._ingestor = ingestor
        self._bus = bus
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._reconnect_delay = reconnect_delay
        self._max_inbound_bytes = max_inbound_bytes
        self._inbound_batch_size = inbound_batch_size
        self._gap_grace = gap_grace
        prefix = settings.topic_prefix
        self.inbound_filter = f"{prefix}/in/+"
        self.cursor_name = f"mqtt:{settings.client_id}"
        # counters, for health and metrics
        self.published = 0  # outbound messages the broker acknowledged
        self.received = 0  # inbound messages taken from the broker (redeliveries included)
        self.stored = 0  # inbound messages stored as new
        self.duplicates = 0  # inbound messages already stored (acknowledged, not republished)
        self.rejected = 0  # inbound messages refused (recorded and noticed)
        self.store_failures = 0  # attempts to store inbound messages that failed on the store
        # connection state, written by paho's thread (plain assignments: atomic)
        self._connected = False
        self._generation = 0
        self._stopping = False
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wakeups: Subscription | None = None
        self._online = asyncio.Event()  # recreated by start(): events belong to the loop that runs them
        self._subscribed = asyncio.Event()
        self._batch_acked = asyncio.Event()
        self._inbox: asyncio.Queue[_Inbound] = asyncio.Queue()
        # outbound progress
        self._published_seq = 0
        self._saved_seq: int | None = None  # the cursor as stored; None until read
        self._batch: list[tuple[int, int]] = []  # (mid, seq) of the batch in flight, in log order
        self._unacked: set[int] = set()

    # -- public state --------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the broker accepted our connection and it is still up."""
        return self._connected

    @property
    def published_seq(self) -> int:
        """The last log sequence the broker acknowledged (everything up to it was published)."""
        return self._published_seq

    def stats(self) -> dict[str, int | bool]:
        """The counters and state in one dict, for /health, metrics and logs."""
        return {
            "connected": self._connected,
            "published_seq": self._published_seq,
            "published": self.published,
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "store_failures": self.store_failures,
        }

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until connected and subscribed to the inbound topics; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._subscribed.wait()
            return True
        except TimeoutError:
            return False

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting and the outbound and inbound tasks; returns without waiting for the broker.

        An unreachable broker is not an error here: the gateway runs, ``connected`` stays False (health
        reports degraded), and paho keeps retrying with backoff.
        """
        if self._client is not None:
            raise RuntimeError("the MQTT bridge is already started")
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._batch, self._unacked = [], set()
        self._online = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._batch_acked = asyncio.Event()
        self._inbox = asyncio.Queue()
        self._wakeups = self._bus.subscribe(maxsize=1)  # a full queue of one is a "something new" flag
        self._client = self._make_client()
        self._client.connect_async(self.settings.host, self.settings.port, keepalive=30)
        self._client.loop_start()
        self._tasks = [
            self._loop.create_task(self._publish_forever(), name="mqtt-outbound"),
            self._loop.create_task(self._consume_inbound(), name="mqtt-inbound"),
        ]
        log.info("MQTT bridge connecting to %s", self.settings.redacted_url)

    async def stop(self) -> None:
        """Stop the tasks, keep the outbound progress confirmed so far, and disconnect.

        Inbound messages not yet stored stay unacknowledged, so the broker redelivers them next time.
        """
        client = self._client
        if client is None:
            return
        self._stopping = True
        await _cancel_all(self._tasks)
        self._tasks = []
        self._take_acked_prefix()
        await self._save_cursor(quiet=True)
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        if self._wakeups is not None:
            self._wakeups.close()
            self._wakeups = None
        self._client = None
        self._connected = False
        log.info("MQTT bridge stopped at seq %d", self._published_seq)

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            clean_session=False,  # a persistent session: the broker queues QoS 1 input while we are away
            protocol=mqtt.MQTTv311,
        )
        client.manual_ack_set(True)  # acknowledge inbound messages only once stored
        client.suppress_exceptions = True  # belt and braces: callbacks are guarded too
        client.enable_logger(_paho_log)
        client.reconnect_delay_set(*self._reconnect_delay)  # type: ignore[arg-type]
        client.max_inflight_messages_set(100)
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set()  # the system's CAs (or SSL_CERT_FILE), hostname verification on
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- paho callbacks (paho's network thread) ------------------------------------------------------------

    def _to_loop(self, callback: Callable[..., object], *args: object) -> None:
        """Run ``callback`` on the event loop; dropped (with a debug line) once the loop is gone."""
        loop = self._loop
        if loop is None or loop.is_closed():
            log.debug("MQTT bridge: event loop gone, dropping %s", getattr(callback, "__name__", callback))
            return
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # closed between the check and the call
            log.debug("MQTT bridge: event loop closed, dropping %s", getattr(callback, "__name__", callback))

    @_guarded
    def _on_connect(
        self, client: mqtt.Client, _userdata: object, flags: mqtt.ConnectFlags, reason: Any, _props: object
    ) -> None:
        if reason.is_failure:
            log.error("MQTT broker %s refused the connection: %s", self.settings.redacted_url, reason)
            return
        self._generation += 1
        self._connected = True
        client.subscribe(self.inbound_filter, qos=1)  # again on every connect: a restarted broker forgets
        self._to_loop(self._online.set)
        log.info("MQTT bridge connected to %s (session present: %s)", self.settings.redacted_url, flags.session_present)

    @_guarded
    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: object, _flags: object, reason: Any, _props: object
    ) -> None:
        self._connected = False
        self._to_loop(self._online.clear)
        self._to_loop(self._subscribed.clear)
        if not self._stopping:
            log.warning("MQTT bridge lost the broker (%s); reconnecting", reason)

    @_guarded
    def _on_subscribe(self, _client: mqtt.Client, _userdata: object, _mid: int, reasons: list[Any], _p: object) -> None:
        if any(reason.is_failure for reason in reasons):
            log.error("MQTT broker refused the subscription to %s: %s", self.inbound_filter, reasons)
            return
        self._to_loop(self._subscribed.set)

    @_guarded
    def _on_publish(self, _client: mqtt.Client, _userdata: object, mid: int, _reason: object, _p: object) -> None:
        self._to_loop(self._acknowledged, mid)

    @_guarded
    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", errors="replace")  # brokers should not let this through
        item = _Inbound(topic, bytes(message.payload), message.mid, message.qos, self._generation)
        # call_soon_threadsafe keeps arrival order, which inbound handling relies on (a party before the
        # resource that refers to it); one worker then takes items in that order.
        self._to_loop(self._enqueue, item)

    # -- outbound (event loop) -----------------------------------------------------------------------------

    async def _publish_forever(self) -> None:
        """The outbox loop: never ends on an error, it logs, waits and resumes from the cursor."""
        while not self._stopping:
            try:
                await self._publish_next()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_store_outage(exc):
                    log.warning("MQTT bridge cannot read the store (%s); retrying", exc)
                else:
                    log.exception("MQTT bridge outbound step failed; retrying")
                await asyncio.sleep(self._poll_interval)

    async def _publish_next(self) -> None:
        if self._saved_seq is None:
            self._saved_seq = await asyncio.to_thread(self._store.get_cursor, self.cursor_name)
            self._published_seq = max(self._published_seq, self._saved_seq)
        await self._save_cursor()
        await self._online.wait()
        batch = await asyncio.to_thread(
            self._store.query_messages, after_seq=self._published_seq, limit=self._batch_size
        )
        ready = publishable(batch, self._published_seq, now=utc_now(), grace=self._gap_grace)
        if ready:
            await self._publish_batch(ready)
        else:
            await self._wait_for_news()

    async def _publish_batch(self, batch: list[StoredMessage]) -> None:
        """Hand the batch to paho and wait for the broker to acknowledge all of it, then move the cursor."""
        assert self._client is not None
        self._batch, self._unacked = [], set()
        self._batch_acked.clear()
        prefix = self.settings.topic_prefix
        for message in batch:
            info = self._client.publish(outbound_topic(prefix, message.envelope), outbound_body(message), qos=1)
            if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:  # paho's queue is unbounded; defensive only
                break
            self._batch.append((info.mid, message.seq))
            self._unacked.add(info.mid)
        # Not connected: paho keeps the messages and sends them after reconnecting, so we simply wait.
        if self._unacked:
            await self._batch_acked.wait()
        self._take_acked_prefix()
        await self._save_cursor()

    def _acknowledged(self, mid: int) -> None:
        """The broker's PUBACK for ``mid`` (on the loop: batch bookkeeping needs no lock)."""
        if mid in self._unacked:
            self._unacked.discard(mid)
            if not self._unacked:
                self._batch_acked.set()

    def _take_acked_prefix(self) -> None:
        """Advance past the batch's leading acknowledged messages (all of it, normally)."""
        done = 0
        for mid, seq in self._batch:
            if mid in self._unacked:
                break
            self._published_seq = max(self._published_seq, seq)
            done += 1
        self.published += done
        self._batch = self._batch[done:]

    async def _save_cursor(self, *, quiet: bool = False) -> None:
        """Store the cursor if it moved; ``quiet`` logs instead of raising (the next save catches up)."""
        seq = self._published_seq
        if self._saved_seq is None or seq <= self._saved_seq:
            return
        try:
            await asyncio.to_thread(self._store.set_cursor, self.cursor_name, seq)
        except Exception as exc:
            if not quiet:
                raise
            log.warning("MQTT bridge could not save its cursor at %d (%s); it will republish from earlier", seq, exc)
            return
        self._saved_seq = seq

    async def _wait_for_news(self) -> None:
        """Sleep until the bus says something was stored, or a poll interval (other processes write too)."""
        if self._wakeups is None:
            await asyncio.sleep(self._poll_interval)
            return
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that races with the
            # wake-up, and stop() would then wait for a task that never ends.
            async with asyncio.timeout(self._poll_interval):
                await self._wakeups.get()
        except TimeoutError:
            pass
        except StopAsyncIteration:  # the bus was closed under us: fall back to polling
            self._wakeups = None

    # -- inbound (event loop) ------------------------------------------------------------------------------

    def _enqueue(self, item: _Inbound) -> None:
        self.received += 1
        self._inbox.put_nowait(item)

    async def _consume_inbound(self) -> None:
        """One worker, so messages are stored in arrival order; it takes what has queued up as one batch."""
        while not self._stopping:
            items = [await self._inbox.get()]
            while len(items) < self._inbound_batch_size and not self._inbox.empty():
                items.append(self._inbox.get_nowait())
            await self._handle_until_done(items)

    async def _handle_until_done(self, items: list[_Inbound]) -> None:
        """Handle ``items``, retrying while the store is down; never acknowledge what was not handled."""
        delay = 0.2
        while not self._stopping:
            try:
                await self._handle(items)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_store_outage(exc):
                    log.exception(
                        "MQTT bridge failed on %d inbound message(s); left unacknowledged for the broker to "
                        "redeliver after the next reconnect",
                        sum(not item.handled for item in items),
                    )
                    self._ack_handled(items)
                    return
                self.store_failures += 1
                log.warning(
                    "MQTT bridge cannot store inbound messages (%s); %d wait unacknowledged, retrying in %.1fs",
                    exc,
                    sum(not item.handled for item in items),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _handle(self, items: list[_Inbound]) -> None:
        """Store or refuse each item in arrival order (valid neighbours share a transaction), then ack."""
        run: list[tuple[_Inbound, Decoded]] = []
        for item in items:
            if item.handled:
                continue
            result = decode_inbound(item.topic.rsplit("/", 1)[-1], item.body, max_bytes=self._max_inbound_bytes)
            if isinstance(result, Refusal):
                await self._store_all(run)
                run = []
                await self._refuse(item, result)
            else:
                run.append((item, result))
        await self._store_all(run)
        self._ack_handled(items)

    async def _store_all(self, valid: list[tuple[_Inbound, Decoded]]) -> None:
        """Store the batch in one transaction; if any is refused, store one by one to find which."""
        if not valid:
            return
        if len(valid) > 1:
            try:
                stored = await self._ingestor.ingest(
                    [d.envelope for _, d in valid], protocol=PROTOCOL, peer=DEFAULT_PEER
                )
            except (Rejected, MessageIdConflict):
                pass
            else:
                for (item, _), record in zip(valid, stored, strict=True):
                    self._count_stored(item, record)
                return
        for item, decoded in valid:
            await self._store_one(item, decoded)

    async def _store_one(self, item: _Inbound, decoded: Decoded) -> None:
        envelope = decoded.envelope
        try:
            [record] = await self._ingestor.ingest([envelope], protocol=PROTOCOL, peer=DEFAULT_PEER)
        except Rejected as exc:
            errors = problem_errors(exc.problems, bare=decoded.bare)
            await self._refuse(item, self._refusal_for(envelope, f"was refused: {summarise_errors(errors)}", errors))
        except MessageIdConflict as exc:
            await self._refuse(
                item, self._refusal_for(envelope, f"was refused: {exc}", [{"loc": ["message_id"], "msg": str(exc)}])
            )
        else:
            self._count_stored(item, record)

    def _refusal_for(self, envelope: Envelope, what: str, errors: list[dict[str, Any]]) -> Refusal:
        kind = envelope.message_kind.value
        peer = envelope.source.peer if envelope.source is not None else DEFAULT_PEER
        return Refusal(kind, f"the {kind} {what}", errors, peer, envelope.correlation_id)

    def _count_stored(self, item: _Inbound, record: StoredMessage) -> None:
        item.handled = True
        if record.duplicate:
            self.duplicates += 1
        else:
            self.stored += 1

    async def _refuse(self, item: _Inbound, refusal: Refusal) -> None:
        """Record the refusal (durably, before the ack), tell the sender on the rejected topic."""
        rejection_id = await asyncio.to_thread(
            self._store.record_rejection,
            protocol=PROTOCOL,
            peer=refusal.peer,
            reason=refusal.reason,
            raw=item.body,
            kind=refusal.kind[:40],
        )
        item.handled = True
        self.rejected += 1
        log.info("MQTT bridge refused a message on %s: %s", item.topic, refusal.reason)
        notice = {
            "reason": refusal.reason,
            "errors": refusal.errors,
            "topic": item.topic,
            "correlation_id": refusal.correlation_id,
            "rejection_id": rejection_id,
        }
        self._publish_quietly(f"{self.settings.topic_prefix}/rejected/{topic_level(refusal.kind)}", notice)

    def publish_retained(self, suffix: str, body: bytes) -> bool:
        """Publish ``body`` retained at QoS 1 on ``<prefix>/<suffix>`` (a latest-value topic such as a ticker, which
        a subscriber should get on connecting). False when not connected: the caller publishes again next time."""
        if self._client is None or not self.connected:
            return False
        info = self._client.publish(f"{self.settings.topic_prefix}/{suffix}", body, qos=1, retain=True)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def _publish_quietly(self, topic: str, body: dict[str, Any]) -> None:
        """Publish a notice; a failure is logged, never raised (the refusal itself is already recorded)."""
        if self._client is None:
            return
        try:
            self._client.publish(topic, json.dumps(body, default=str), qos=1)
        except Exception:
            log.exception("MQTT bridge could not publish a notice to %s", topic)

    def _ack_handled(self, items: list[_Inbound]) -> None:
        """PUBACK, in arrival order, every handled message still on the connection it came on.

        A message from an earlier connection is not acknowledged: its packet id means nothing now, and the
        broker redelivers it on the new connection, where it is recognised as a duplicate and acknowledged.
        """
        client = self._client
        for item in items:
            if not item.handled or item.qos == 0 or client is None:
                continue
            if item.generation != self._generation or not self._connected:
                continue
            client.ack(item.mid, item.qos)


__all__ = ["MqttBridge", "is_store_outage", "publishable"]
