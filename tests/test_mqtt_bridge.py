"""The MQTT bridge against a real mosquitto broker and a real (SQLite) store.

Each test drives the bridge from an event loop of its own (``asyncio.run``; pytest-asyncio is not used)
and watches the broker with a separate paho client, the way an integrator's sidecar would. Every wait is
on a condition with a deadline; nothing asserts after a fixed sleep.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.exc import OperationalError

from gateway.bus import Bus
from gateway.ingest import Ingestor
from gateway.model import Envelope, Location, LocationKind, MessageKind, Party, Resource, ResourceKind, Role
from gateway.protocols.mqtt import MqttBridge, MqttSettings, parse_mqtt_url
from gateway.protocols.mqtt.codec import decode_inbound, outbound_topic
from gateway.protocols.mqtt.service import publishable
from gateway.store import Store, StoredMessage

from services import MosquittoServer, find_mosquitto, free_port

WAIT = 10.0  # seconds any single condition may take before the test fails
TEST_BUDGET = 30.0  # seconds a whole test's event loop may run


# -- helpers -----------------------------------------------------------------------------------------------


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run one test's coroutine with an overall deadline, so a bug cannot hang the suite."""
    asyncio.run(asyncio.wait_for(main, TEST_BUDGET))


async def eventually(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Wait, without blocking the event loop, until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.02)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def party(party_id: str, name: str = "Alice") -> Party:
    return Party(id=party_id, name=name, roles=[Role.CONSUMER])


def location(location_id: str) -> Location:
    return Location(id=location_id, name="Meter 1", kind=LocationKind.SERVICE_POINT)


def resource(resource_id: str, owner_id: str, location_id: str) -> Resource:
    return Resource(id=resource_id, name="PV", kind=ResourceKind.PV, owner_id=owner_id, location_id=location_id)


@dataclass
class Probe:
    """A separate MQTT client playing the integrator: it subscribes, records, and publishes."""

    host: str
    port: int
    topics: list[str]
    client_id: str = field(default_factory=lambda: uid("probe"))
    clean_session: bool = True
    messages: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=self.clean_session
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(self.host, self.port)
        self.client.loop_start()
        assert self._subscribed.wait(WAIT), "the probe could not subscribe"

    def _on_connect(self, client: mqtt.Client, *_: object) -> None:
        if self.topics:
            client.subscribe([(topic, 1) for topic in self.topics])
        else:
            self._subscribed.set()

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def received(self, under: str = "") -> list[tuple[str, dict[str, Any]]]:
        """Messages on topics starting with ``under``, JSON-decoded, in arrival order."""
        with self._lock:
            return [(topic, json.loads(body)) for topic, body in self.messages if topic.startswith(under)]

    def seqs(self, under: str = "") -> list[int]:
        return [body["seq"] for _, body in self.received(under)]

    def publish(self, topic: str, body: bytes | str | dict[str, Any]) -> None:
        """Publish at QoS 1 and wait for the broker's acknowledgement."""
        payload = json.dumps(body) if isinstance(body, dict) else body
        self.client.publish(topic, payload, qos=1).wait_for_publish(WAIT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Gateway:
    """The parts of a gateway the bridge needs: a store on a SQLite file, a bus and an ingestor."""

    store: Store
    bus: Bus = field(default_factory=Bus)

    @property
    def ingestor(self) -> Ingestor:
        return Ingestor(self.store, self.bus)

    def bridge(self, broker_url: str, client_id: str, prefix: str = "tgw/v1", **options: Any) -> MqttBridge:
        settings = parse_mqtt_url(f"{broker_url}?client_id={client_id}&prefix={prefix}")
        options.setdefault("reconnect_delay", (0.5, 1))
        return MqttBridge(settings, store=self.store, ingestor=self.ingestor, bus=self.bus, **options)

    async def ingest(self, *payloads: Any) -> list[StoredMessage]:
        envelopes = [Envelope(payload=payload) for payload in payloads]
        return await self.ingestor.ingest(envelopes, protocol="rest", peer="test")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    yield Gateway(store)
    store.close()


@pytest.fixture
def probes(mqtt_broker: MosquittoServer) -> Iterator[Callable[..., Probe]]:
    """Make probes on the session's broker; all are closed after the test."""
    made: list[Probe] = []

    def make(*topics: str, **options: Any) -> Probe:
        probe = Probe(mqtt_broker.host, mqtt_broker.port, list(topics), **options)
        made.append(probe)
        return probe

    yield make
    for probe in made:
        probe.close()


async def started(bridge: MqttBridge) -> MqttBridge:
    await bridge.start()
    assert await bridge.wait_ready(WAIT), "the bridge did not connect and subscribe"
    return bridge


# -- outbound --------------------------------------------------------------------------------------------


def test_stored_messages_are_published_in_log_order_with_their_seq(gateway, mqtt_broker, probes) -> None:
    probe = probes("tgw/v1/party/+")
    ids = [uid("p") for _ in range(4)] + [f"{uid('p')}+#"]  # wildcard characters are escaped in the topic

    async def main() -> None:
        bridge = await started(gateway.bridge(mqtt_broker.url, uid("gw")))
        try:
            stored = await gateway.ingest(*(party(i) for i in ids[:3]))
            stored += await gateway.ingest(party(ids[3]))
            stored += await gateway.ingest(party(ids[4]))
            mine = {m.seq for m in stored}
            await eventually(lambda: mine <= set(probe.seqs()), "all five messages on tgw/v1/party/+")
            await eventually(lambda: bridge.published_seq == stored[-1].seq, "the broker's acknowledgements")

            received = [(topic, body) for topic, body in probe.received() if body["seq"] in mine]
            assert [body["seq"] for _, body in received] == [m.seq for m in stored]  # log order
            for (topic, body), message in zip(received, stored, strict=True):
                assert topic == outbound_topic("tgw/v1", message.envelope)
                assert body == {"seq": message.seq, **message.envelope.model_dump(mode="json")}
            assert received[0][0] == f"tgw/v1/party/{ids[0]}"
            assert received[-1][0] == f"tgw/v1/party/{ids[4][:-2]}%2B%23"
            assert bridge.published == 5
            assert gateway.store.get_cursor(bridge.cursor_name) == stored[-1].seq
        finally:
            await bridge.stop()

    run(main())


def test_a_restarted_bridge_resumes_from_its_cursor(gateway, mqtt_broker, probes) -> None:
    prefix, client_id = uid("t"), uid("gw")
    probe = probes(f"{prefix}/party/+")

    async def main() -> None:
        first = await started(gateway.bridge(mqtt_broker.url, client_id, prefix))
        try:
            before = await gateway.ingest(party(uid("p")), party(uid("p")))
            await eventually(lambda: first.published_seq == before[-1].seq, "the first bridge to publish")
        finally:
            await first.stop()
        after = await gateway.ingest(party(uid("p")), party(uid("p")))  # while no bridge runs

        second = await started(gateway.bridge(mqtt_broker.url, client_id, prefix))
        try:
            await eventually(lambda: after[-1].seq in probe.seqs(), "the messages stored while stopped")
            await eventually(lambda: second.published_seq == after[-1].seq, "the broker's acknowledgements")
            # Publishing is in log order, so anything republished from before would have come first.
            assert probe.seqs() == [m.seq for m in before + after]
            assert second.published == 2
        finally:
            await second.stop()

    run(main())


@dataclass
class PersistentBroker:
    """A mosquitto that keeps sessions across restarts on one port (as production brokers are set up).

    The session fixture's broker has persistence off; here the probe's subscription must survive the
    restart so that what the bridge publishes on reconnecting reaches it however the reconnects race.
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.workdir}/\n"
            f"log_dest file {self.workdir / 'mosquitto.log'}\nlog_type all\n"
            f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
        )
        self.process = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + WAIT
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not start on port {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # mosquitto saves its sessions on SIGTERM
            self.process.wait(timeout=WAIT)


def test_bridge_publishes_what_was_stored_while_the_broker_was_down(gateway, tmp_path) -> None:
    try:
        find_mosquitto()
    except Exception as exc:
        pytest.skip(str(exc))
    broker = PersistentBroker(tmp_path)
    broker.start()
    probe = Probe("127.0.0.1", broker.port, ["tgw/v1/party/+"], client_id=uid("probe"), clean_session=False)

    async def main() -> None:
        bridge = await started(gateway.bridge(broker.url, uid("gw")))
        try:
            first = await gateway.ingest(party(uid("p")))
            await eventually(lambda: probe.seqs() == [first[0].seq], "the first message")

            broker.stop()
            await eventually(lambda: not bridge.connected, "the bridge to notice the broker is gone")
            during = await gateway.ingest(party(uid("p")), party(uid("p")))
            during += await gateway.ingest(party(uid("p")))
            assert bridge.published_seq == first[0].seq  # nothing can be confirmed without a broker

            await asyncio.to_thread(broker.start)  # same port, same sessions
            await eventually(lambda: bridge.connected, "the bridge to reconnect")
            await eventually(lambda: bridge.published_seq == during[-1].seq, "the backlog to be acknowledged")
            await eventually(lambda: during[-1].seq in probe.seqs(), "the backlog to reach the subscriber")
            seqs = probe.seqs()
            assert sorted(set(seqs)) == [m.seq for m in first + during]
            assert seqs == sorted(seqs)
            assert gateway.store.get_cursor(bridge.cursor_name) == during[-1].seq
        finally:
            await bridge.stop()

    try:
        run(main())
    finally:
        probe.close()
        broker.stop()


def test_a_gap_in_the_log_is_waited_for_until_it_is_old() -> None:
    now = datetime.now(UTC)

    def message(seq: int, age: float) -> StoredMessage:
        return StoredMessage(seq, Envelope(payload=party(f"p{seq}")), now - timedelta(seconds=age))

    batch = [message(5, 1), message(6, 1), message(8, 1), message(9, 1)]
    assert [m.seq for m in publishable(batch, 4, now=now, grace=5)] == [5, 6]  # 7 may still commit
    assert [m.seq for m in publishable(batch, 6, now=now, grace=5)] == []
    old = [message(5, 1), message(6, 1), message(8, 60), message(9, 1)]
    assert [m.seq for m in publishable(old, 4, now=now, grace=5)] == [5, 6, 8, 9]  # 7 was rolled back


# -- inbound ---------------------------------------------------------------------------------------------


def test_inbound_objects_and_envelopes_are_stored_then_published(gateway, mqtt_broker, probes) -> None:
    location_id, party_id, resource_id = uid("l"), uid("p"), uid("r")
    watcher = probes("tgw/v1/party/+", "tgw/v1/location/+", "tgw/v1/resource/+")
    sender = probes()
    envelope = {
        "correlation_id": "order-17",
        "source": {"protocol": "acme", "peer": "site-7", "native_id": "r-1", "version": "3"},
        "payload": resource(resource_id, party_id, location_id).model_dump(mode="json"),
    }

    async def main() -> None:
        bridge = await started(gateway.bridge(mqtt_broker.url, uid("gw")))
        try:
            # Back to back: the resource refers to the two objects sent just before it.
            sender.publish("tgw/v1/in/location", {"id": location_id, "name": "Meter 1", "kind": "service_point"})
            sender.publish("tgw/v1/in/party", {"object_type": "party", "id": party_id, "name": "Bo", "roles": ["dso"]})
            sender.publish("tgw/v1/in/resource", envelope)
            await eventually(lambda: bridge.stored == 3, "three inbound messages to be stored")

            log = gateway.store.query_messages()
            assert [m.envelope.payload.id for m in log] == [location_id, party_id, resource_id]
            bare = log[1].envelope
            assert (bare.source.protocol, bare.source.peer, bare.source.native_id) == ("mqtt", "mqtt", party_id)
            full = log[2].envelope
            assert (full.source.protocol, full.source.peer, full.correlation_id) == ("acme", "site-7", "order-17")
            assert gateway.store.get(full.message_kind, resource_id) == resource(resource_id, party_id, location_id)
            assert bridge.rejected == 0 and gateway.store.rejections() == []

            await eventually(lambda: len(watcher.seqs()) == 3, "the stored messages to be published")
            assert [body["payload"]["id"] for _, body in watcher.received()] == [location_id, party_id, resource_id]
            assert watcher.received()[2][0] == f"tgw/v1/resource/{resource_id}"
            assert watcher.received()[2][1]["correlation_id"] == "order-17"
        finally:
            await bridge.stop()

    run(main())


def test_invalid_inbound_is_refused_recorded_and_noticed(gateway, mqtt_broker, probes) -> None:
    prefix = uid("t")
    notices = probes(f"{prefix}/rejected/+")
    sender = probes()
    orphan = resource(uid("r"), "nobody", "nowhere").model_dump(mode="json")
    cases = [  # (kind in topic, body, words the reason must contain, loc of the first error)
        ("party", b"{not json", "not JSON", []),
        ("party", {"id": "p-1", "roles": ["consumer"]}, "name: Field required", ["name"]),
        ("resource", orphan, "owner_id: unknown party 'nobody'", ["owner_id"]),
        ("resource", {"payload": orphan, "correlation_id": "c-9"}, "unknown location 'nowhere'", None),
        ("party", location(uid("l")).model_dump(mode="json"), "object_type is 'location'", ["object_type"]),
        ("gizmo", {"id": "g"}, "unknown message kind 'gizmo'", None),
    ]

    async def main() -> None:
        bridge = await started(gateway.bridge(mqtt_broker.url, uid("gw"), prefix))
        try:
            for kind, body, _, _ in cases:
                sender.publish(f"{prefix}/in/{kind}", body)
            await eventually(lambda: len(notices.received()) == len(cases), "a notice for every refusal")
            for (topic, notice), (kind, _, words, loc) in zip(notices.received(), cases, strict=True):
                assert topic == f"{prefix}/rejected/{kind}"
                assert notice["topic"] == f"{prefix}/in/{kind}"
                assert words in notice["reason"], notice
                if loc is not None:
                    assert notice["errors"][0]["loc"] == loc, notice
            assert notices.received()[3][1]["correlation_id"] == "c-9"
            assert ["payload", "location_id"] in [e["loc"] for e in notices.received()[3][1]["errors"]]

            assert gateway.store.last_seq() == 0  # nothing stored
            rejections = list(reversed(gateway.store.rejections(protocol="mqtt")))
            assert [r.kind for r in rejections] == [kind for kind, *_ in cases]
            assert [r.id for r in rejections] == [notice["rejection_id"] for _, notice in notices.received()]
            assert rejections[0].raw == "{not json"
            assert bridge.rejected == len(cases)
        finally:
            await bridge.stop()

    run(main())


def test_the_same_inbound_message_twice_is_stored_once(gateway, mqtt_broker, probes) -> None:
    prefix, party_id, marker_id = uid("t"), uid("p"), uid("marker")
    watcher = probes(f"{prefix}/party/+")
    sender = probes()
    body = party(party_id).model_dump_json(exclude={"created_at"})

    async def main() -> None:
        bridge = await started(gateway.bridge(mqtt_broker.url, uid("gw"), prefix))
        try:
            sender.publish(f"{prefix}/in/party", body)
            sender.publish(f"{prefix}/in/party", body)
            sender.publish(f"{prefix}/in/party", party(marker_id).model_dump_json())
            await eventually(lambda: bridge.stored + bridge.duplicates == 3, "all three to be handled")
            assert (bridge.stored, bridge.duplicates) == (2, 1)
            assert len(gateway.store.query_messages(entity_id=party_id)) == 1

            # Published once: the marker comes after anything the duplicate could have caused.
            await eventually(lambda: marker_id in {b["payload"]["id"] for _, b in watcher.received()}, "the marker")
            assert [b["payload"]["id"] for _, b in watcher.received()] == [party_id, marker_id]
        finally:
            await bridge.stop()

    run(main())


def test_messages_sent_while_the_bridge_was_away_are_delivered_on_return(gateway, mqtt_broker, probes) -> None:
    prefix, client_id, party_id = uid("t"), uid("gw"), uid("p")
    sender = probes()

    async def main() -> None:
        first = await started(gateway.bridge(mqtt_broker.url, client_id, prefix))  # creates the session
        await first.stop()
        sender.publish(f"{prefix}/in/party", party(party_id).model_dump_json())  # queued in the session
        second = await started(gateway.bridge(mqtt_broker.url, client_id, prefix))
        try:
            await eventually(lambda: gateway.store.exists(MessageKind.PARTY, party_id), "the party")
        finally:
            await second.stop()

    run(main())


class FailingStore(Store):
    """A store on the same database whose appends fail as if the database were down, ``failures`` times."""

    def __init__(self, url: str, failures: int) -> None:
        super().__init__(url)
        self.failures = failures

    def append_many(self, envelopes: Any) -> list[StoredMessage]:
        if self.failures > 0:
            self.failures -= 1
            raise OperationalError("INSERT", {}, Exception("database is down"))
        return super().append_many(envelopes)


def test_a_store_outage_is_retried_and_never_acknowledged_early(gateway, mqtt_broker, probes) -> None:
    prefix, client_id, party_id, marker_id = uid("t"), uid("gw"), uid("p"), uid("marker")
    sender = probes()
    down = FailingStore(gateway.store.url, failures=10**6)

    def bridge_on(store: Store) -> MqttBridge:
        settings = parse_mqtt_url(f"{mqtt_broker.url}?client_id={client_id}&prefix={prefix}")
        return MqttBridge(settings, store=store, ingestor=Ingestor(store, gateway.bus), bus=gateway.bus)

    async def main() -> None:
        # 1. The database stays down: the message is not acknowledged, so the broker keeps it for us.
        first = await started(bridge_on(down))
        try:
            sender.publish(f"{prefix}/in/party", party(party_id).model_dump_json())
            await eventually(lambda: first.store_failures >= 2, "retries against the failing store")
            assert first.stored == 0
        finally:
            await first.stop()

        # 2. Back with the database: the broker redelivers, and this time it is stored and acknowledged.
        down.failures = 2  # and a short outage, ridden out by retrying in place
        second = await started(bridge_on(down))
        try:
            await eventually(lambda: gateway.store.exists(MessageKind.PARTY, party_id), "redelivery")
            assert second.store_failures == 2 and second.stored == 1
        finally:
            await second.stop()

        # 3. Acknowledged means gone from the broker: a third session receives only what is new.
        third = await started(bridge_on(gateway.store))
        try:
            sender.publish(f"{prefix}/in/party", party(marker_id).model_dump_json())
            await eventually(lambda: gateway.store.exists(MessageKind.PARTY, marker_id), "the marker")
            assert third.received == 1
        finally:
            await third.stop()

    try:
        run(main())
    finally:
        down.close()


def test_decoding_keeps_decimals_exact_and_locates_errors_in_what_was_sent() -> None:
    body = b'{"id": "l-1", "name": "T1", "kind": "transformer", "rating_kva": 0.1000000000000000000001}'
    decoded = decode_inbound("location", body)
    assert not hasattr(decoded, "reason"), decoded
    assert str(decoded.envelope.payload.rating_kva) == "0.1000000000000000000001"
    refusal = decode_inbound("location", b'{"payload": {"id": "l-1"}}')
    assert refusal.errors[0]["loc"] == ["payload", "object_type"], refusal
    assert "object_type" in refusal.reason
    too_big = decode_inbound("party", b"{}" + b" " * 100, max_bytes=10)
    assert "at most 10" in too_big.reason


# -- configuration ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker", MqttSettings("broker", 1883, client_id=MqttSettings("x").client_id)),
        ("mqtts://broker", MqttSettings("broker", 8883, tls=True, client_id=MqttSettings("x").client_id)),
        (
            "mqtt://gw:s%40cret@10.0.0.5:11883?client_id=gw-1&prefix=site/tgw/",
            MqttSettings("10.0.0.5", 11883, False, "gw", "s@cret", "gw-1", "site/tgw"),
        ),
        ("MQTTS://[::1]:8884/?client_id=a.b:c", MqttSettings("::1", 8884, True, client_id="a.b:c")),
    ],
)
def test_parse_mqtt_url(url: str, expected: MqttSettings) -> None:
    assert parse_mqtt_url(url) == expected


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://broker:1883", "mqtt:// or mqtts://"),
        ("broker:1883", "mqtt:// or mqtts://"),
        ("mqtt://", "host name is missing"),
        ("mqtt://broker:port", "port must be a number"),
        ("mqtt://broker:0", "port must be a number"),
        ("mqtt://broker/tgw/v1", "?prefix="),
        ("mqtt://broker?prefx=a", "unknown parameter 'prefx'"),
        ("mqtt://broker?prefix=a/+/b", "wildcards"),
        ("mqtt://broker?prefix=", "must not be empty"),
        ("mqtt://broker?client_id=has space", "client_id"),
        ("mqtt://broker?client_id=a&client_id=b", "given twice"),
    ],
)
def test_parse_mqtt_url_explains_bad_urls(url: str, words: str) -> None:
    with pytest.raises(ValueError, match="TGW_MQTT_URL must look like mqtt://host:1883") as caught:
        parse_mqtt_url(url)
    assert words in str(caught.value)


def test_parse_mqtt_url_never_repeats_the_password() -> None:
    for url in ("mqtt://u:hunter2@broker:99999", "mqtt://u:hun/ter2@broker", "mqtt://u:hunter2@broker?x=1"):
        with pytest.raises(ValueError) as caught:
            parse_mqtt_url(url)
        assert "hunter2" not in str(caught.value) and "ter2" not in str(caught.value)
    settings = parse_mqtt_url("mqtt://u:hunter2@broker")
    assert "hunter2" not in repr(settings) and "hunter2" not in settings.redacted_url
