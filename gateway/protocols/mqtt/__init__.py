"""MQTT bridge: the gateway as a sidecar, speaking canonical JSON over an MQTT broker.

Outbound, every stored canonical message is published to ``{prefix}/{kind}/{id}``; inbound, canonical
objects or envelopes published to ``{prefix}/in/{kind}`` are stored (then acknowledged) like any other input.
See :mod:`gateway.protocols.mqtt.service` for the topics and JSON shapes.
"""

from gateway.protocols.mqtt.codec import outbound_topic
from gateway.protocols.mqtt.service import MqttBridge
from gateway.protocols.mqtt.url import MqttSettings, default_client_id, parse_mqtt_url

__all__ = ["MqttBridge", "MqttSettings", "default_client_id", "outbound_topic", "parse_mqtt_url"]
