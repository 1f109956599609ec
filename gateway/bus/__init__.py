"""In-process publish/subscribe of stored canonical messages, by message kind.

The bus is for live fan-out inside one process (API streams, the MQTT bridge's wake-up, market and
override services). It is deliberately not the durable path: everything on it is already in the store's
log, so a subscriber that falls behind loses nothing it cannot read back from the log by sequence number.
A slow subscriber therefore never blocks publishers; its queue drops the oldest entries and counts them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from gateway.model import MessageKind
from gateway.store import StoredMessage

log = logging.getLogger(__name__)

Handler = Callable[[StoredMessage], Awaitable[None]]


class Subscription:
    """A bounded queue of messages of the kinds asked for; iterate it with ``async for``."""

    def __init__(self, bus: Bus, kinds: frozenset[MessageKind] | None, maxsize: int) -> None:
        self._bus = bus
        self.kinds = kinds
        self._queue: asyncio.Queue[StoredMessage | None] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0
        self.closed = False

    def wants(self, message: StoredMessage) -> bool:
        return self.kinds is None or message.envelope.message_kind in self.kinds

    def offer(self, message: StoredMessage) -> None:
        if self.closed:
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(message)

    async def get(self) -> StoredMessage:
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        return item

    def drain(self) -> list[StoredMessage]:
        """Everything queued now, without waiting: for a consumer that catches up when it is asked something
        (a request handler) rather than in a task of its own."""
        items: list[StoredMessage] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                items.append(item)
        return items

    def __aiter__(self) -> AsyncIterator[StoredMessage]:
        return self

    async def __anext__(self) -> StoredMessage:
        return await self.get()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._bus._remove(self)
            if self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(None)


class Bus:
    """Fan-out of stored messages to subscribers in this process."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.published = 0

    def subscribe(self, kinds: Iterable[MessageKind] | None = None, *, maxsize: int = 10_000) -> Subscription:
        subscription = Subscription(self, frozenset(kinds) if kinds is not None else None, maxsize)
        self._subscriptions.append(subscription)
        return subscription

    def on(self, kinds: Iterable[MessageKind] | None, handler: Handler) -> Subscription:
        """Run ``handler`` for every matching message in a task of its own; a failing handler is logged."""
        subscription = self.subscribe(kinds)

        async def pump() -> None:
            async for message in subscription:
                try:
                    await handler(message)
                except Exception:
                    log.exception("bus handler %s failed on message %s", handler, message.envelope.message_id)

        task = asyncio.get_running_loop().create_task(pump())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return subscription

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the loop so that threads (store workers, the MQTT client) can publish safely."""
        self._loop = loop

    def publish(self, messages: StoredMessage | Iterable[StoredMessage]) -> None:
        """Deliver new messages to subscribers; call on the event loop. Duplicates are not republished."""
        batch = [messages] if isinstance(messages, StoredMessage) else list(messages)
        for message in batch:
            if message.duplicate:
                continue
            self.published += 1
            for subscription in list(self._subscriptions):
                if subscription.wants(message):
                    subscription.offer(message)

    def publish_threadsafe(self, messages: StoredMessage | Iterable[StoredMessage]) -> None:
        """Publish from a thread other than the event loop's."""
        if self._loop is None:
            raise RuntimeError("bus.bind(loop) must be called before publishing from threads")
        batch = [messages] if isinstance(messages, StoredMessage) else list(messages)
        self._loop.call_soon_threadsafe(self.publish, batch)

    def _remove(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    async def close(self) -> None:
        for subscription in list(self._subscriptions):
            subscription.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


__all__ = ["Bus", "Handler", "Subscription"]
