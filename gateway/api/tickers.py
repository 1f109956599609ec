"""Keeps each market's EI ticker retained on the MQTT broker: the app composes the EI adapter (which knows what a
ticker is) with the MQTT bridge (which knows the broker), so neither adapter imports the other."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from gateway.model import Market, MessageKind, utc_now
from gateway.protocols.ei import json_codec
from gateway.protocols.ei.ticker import ticker_message
from gateway.store import Store

if TYPE_CHECKING:
    from gateway.protocols.mqtt import MqttBridge

log = logging.getLogger(__name__)


def ticker_topic(market_id: str) -> str:
    from gateway.protocols.mqtt.codec import topic_level

    return f"ei/ticker/{topic_level(market_id)}"


async def publish_tickers(store: Store, mqtt: MqttBridge, every_seconds: float) -> None:
    """Every ``every_seconds``: each active market's ticker as CTS JSON, retained, on <prefix>/ei/ticker/<market>
    (republished even when unchanged, so a broker that lost its retained messages has them back within a tick)."""
    while True:
        try:
            markets = await asyncio.to_thread(store.list, MessageKind.MARKET, limit=None)
            for market in markets:
                if isinstance(market, Market) and market.active:
                    message = await asyncio.to_thread(ticker_message, store, market, utc_now())
                    # No open tender: an empty retained message, which is how MQTT clears a retained value (an
                    # eiDistributeTender must carry at least one tender).
                    body = json_codec.encode(message) if message.tenders else b""
                    mqtt.publish_retained(ticker_topic(market.id), body)
        except Exception:  # a store outage must not end the loop; the next round tries again
            log.exception("could not publish the EI tickers")
        await asyncio.sleep(every_seconds)
