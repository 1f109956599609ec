"""Smoke tests proving the real PostgreSQL and mosquitto fixtures work."""

from __future__ import annotations

import queue
import threading

import paho.mqtt.client as mqtt
from sqlalchemy import create_engine, text

from services import MosquittoServer, PostgresServer


def test_postgres_create_database_and_query(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("tgw_services_smoke")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select 1")).scalar_one() == 1
            name = conn.execute(text("select current_database()")).scalar_one()
            assert name == "tgw_services_smoke"
    finally:
        engine.dispose()


def test_mosquitto_qos1_roundtrip(mqtt_broker: MosquittoServer) -> None:
    topic, payload = "tgw/test/services", b"hello broker"
    connected, subscribed = threading.Event(), threading.Event()
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tgw-smoke")
    client.on_connect = lambda c, userdata, flags, reason, props: connected.set()
    client.on_subscribe = lambda c, userdata, mid, reasons, props: subscribed.set()
    client.on_message = lambda c, userdata, message: received.put(message)
    client.connect(mqtt_broker.host, mqtt_broker.port)
    client.loop_start()
    try:
        assert connected.wait(10), "no CONNACK from broker"
        client.subscribe(topic, qos=1)
        assert subscribed.wait(10), "no SUBACK from broker"
        client.publish(topic, payload, qos=1).wait_for_publish(10)
        message = received.get(timeout=10)
        assert (message.topic, message.payload, message.qos) == (topic, payload, 1)
    finally:
        client.disconnect()
        client.loop_stop()
