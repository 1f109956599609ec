"""Subscription/Notification: a device asks to be told when a resource changes; the server POSTs it the new state.

Subscriptions are durable (``adapter_state``, protocol ``ieee2030_5``, peer = LFDI, name ``sub/<id>``) and held
in memory. After anything a device could see changes (the canonical index moved), the notifier renders each
subscribed resource again for its device and compares it with what it last delivered, so a device is told
exactly when its view changed, once, whatever caused it. Delivery is an HTTP POST of a Notification to the
subscription's notificationURI (application/sep+xml), over TLS with the server's certificate when the URI is
https, retried with exponential back-off (1 s, 2 s, 4 s...) up to the table's ``notification_retries``; a
failure after that is logged and counted, and the next change is delivered afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import asdict, dataclass

import httpx

from gateway.protocols.ieee2030_5 import codec
from gateway.protocols.ieee2030_5 import models as m

log = logging.getLogger(__name__)

PROTOCOL = "ieee2030_5"


@dataclass(slots=True)
class SubscriptionRecord:
    """A device's subscription as the server keeps it."""

    lfdi: str
    edev_href: str
    id: int
    subscribed_resource: str
    notification_uri: str
    limit: int
    encoding: int = 0
    level: str = "-S1"

    @property
    def href(self) -> str:
        return f"{self.edev_href}/sub/{self.id}"

    def as_state(self) -> dict[str, object]:
        return asdict(self)


# render(lfdi, href, limit) -> the resource as the device would GET it now (a list: its first ``limit`` items, the
# subscription's limit, which 2030.5 makes the notification's ``l``), or None when it no longer exists
Renderer = Callable[[str, str, int], "m.BaseModel | None"]


@dataclass(slots=True)
class Delivery:
    subscription: SubscriptionRecord
    body: bytes


class Notifier:
    """Renders subscribed resources after changes and delivers Notifications with retries."""

    def __init__(
        self,
        render: Renderer,
        *,
        retries: int = 5,
        tls: ssl.SSLContext | None = None,
        first_backoff: float = 1.0,
        timeout: float = 10.0,
    ) -> None:
        self.render = render
        self.retries = retries
        self.first_backoff = first_backoff
        self.subscriptions: dict[tuple[str, int], SubscriptionRecord] = {}
        self._delivered: dict[tuple[str, int], str] = {}
        self._client = httpx.AsyncClient(verify=tls if tls is not None else True, timeout=timeout)
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0

    def add(self, record: SubscriptionRecord, *, notify_now: bool = True) -> None:
        self.subscriptions[(record.lfdi, record.id)] = record
        if notify_now:
            self.check([record])
        else:
            self._delivered[(record.lfdi, record.id)] = self._digest(record)[0]

    def remove(self, lfdi: str, subscription_id: int) -> None:
        self.subscriptions.pop((lfdi, subscription_id), None)
        self._delivered.pop((lfdi, subscription_id), None)

    def _digest(self, record: SubscriptionRecord) -> tuple[str, m.BaseModel | None]:
        resource = self.render(record.lfdi, record.subscribed_resource, record.limit)
        body = codec.encode(resource) if resource is not None else b""
        return hashlib.blake2b(body, digest_size=16).hexdigest(), resource

    def check(self, records: list[SubscriptionRecord] | None = None) -> int:
        """Render every (or the given) subscribed resource; schedule a delivery where it changed. Returns how
        many were scheduled. Call on the event loop."""
        scheduled = 0
        for record in records if records is not None else list(self.subscriptions.values()):
            key = (record.lfdi, record.id)
            digest, resource = self._digest(record)
            if self._delivered.get(key) == digest:
                continue
            self._delivered[key] = digest
            notification = m.Notification(
                subscribedResource=record.subscribed_resource,
                Resource=resource,
                status=0 if resource is not None else 4,  # 4: subscription cancelled, resource deleted
                subscriptionURI=record.href,
            )
            self._spawn(Delivery(record, codec.encode(notification)))
            scheduled += 1
        return scheduled

    def _spawn(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery) -> None:
        uri = delivery.subscription.notification_uri
        wait = self.first_backoff
        for attempt in range(1, self.retries + 1):
            try:
                answer = await self._client.post(uri, content=delivery.body, headers={"Content-Type": codec.MEDIA_TYPE})
                if answer.status_code < 300:
                    self.sent += 1
                    return
                reason = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                await asyncio.sleep(wait)
                wait *= 2
        self.failed += 1
        log.warning("notification to %s failed after %d attempts: %s", uri, self.retries, reason)

    async def drain(self) -> None:
        """Wait for the deliveries under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._client.aclose()
