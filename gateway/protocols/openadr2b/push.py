"""Push delivery (2.0b simpleHTTP push): VENs that registered with oadrHttpPullModel false get each change to their
events POSTed to their oadrTransportAddress (``<address>/EiEvent``) instead of waiting for a poll.

The pusher wakes when this process stores a control, tender, clearing, resource or location (the bus), and at
least every ``interval`` seconds anyway (another gateway process may have written; statuses move with time). A
VEN that does not take the message (connection refused, non-200) is retried with backoff and then on the next
wake-up: what counts as sent is only what a VEN answered 200 to. The VEN's answer, when it is an
oadrCreatedEvent, is handled like one it posted itself (its optIn/optOut become responses and overrides).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

import httpx

from gateway.bus import Bus
from gateway.model import MessageKind
from gateway.protocols.openadr2b import codec
from gateway.protocols.openadr2b.messages import OadrDecodeError, OadrMessage, Payload
from gateway.protocols.openadr2b.security import MessageSigner
from gateway.protocols.openadr2b.vens import VenRecord
from gateway.protocols.openadr2b.vtn import OadrRefusal, Vtn

log = logging.getLogger(__name__)

WATCHED = (MessageKind.CONTROL, MessageKind.TENDER, MessageKind.CLEARING, MessageKind.RESOURCE, MessageKind.LOCATION)
ATTEMPTS = 3


class EventPusher:
    def __init__(
        self,
        vtn: Vtn,
        bus: Bus,
        *,
        signer: MessageSigner | None = None,
        tls: ssl.SSLContext | None = None,
        interval: float = 10.0,
        debounce: float = 0.1,
    ) -> None:
        self.vtn = vtn
        self.bus = bus
        self.signer = signer
        self.interval = interval
        self.debounce = debounce
        self._client = httpx.AsyncClient(verify=tls or True, timeout=10)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.pushed = 0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        subscription = self.bus.subscribe(WATCHED)

        async def listen() -> None:
            async for _ in subscription:
                self._wake.set()

        self._tasks = [
            loop.create_task(listen(), name="oadr-push-listen"),
            loop.create_task(self._run(), name="oadr-push"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            await asyncio.sleep(self.debounce)  # one push for a batch of changes
            self._wake.clear()
            try:
                await self.push_all()
            except Exception:
                log.exception("pushing OpenADR events failed; will retry on the next change or in %s s", self.interval)

    async def push_all(self) -> int:
        """Send every push VEN whose events changed its oadrDistributeEvent; returns how many took it."""
        records = await asyncio.to_thread(self.vtn.directory.records)
        delivered = 0
        for record in records:
            if not record.registered or record.http_pull_model or not record.transport_address:
                continue
            message = await asyncio.to_thread(self.vtn.changed_distribution, record)
            if message is not None and await self._post(record, message):
                self.vtn.mark_sent(record.ven_id, message)
                delivered += 1
        self.pushed += delivered
        return delivered

    async def _post(self, record: VenRecord, message: OadrMessage) -> bool:
        assert record.transport_address is not None
        url = record.transport_address.rstrip("/") + "/EiEvent"
        body = self.signer.sign(codec.encode_tree(message)) if self.signer is not None else codec.encode(message)
        for attempt in range(ATTEMPTS):
            try:
                answer = await self._client.post(url, content=body, headers={"content-type": "application/xml"})
            except httpx.HTTPError as exc:
                log.warning("push to VEN %s at %s failed (%s), attempt %d", record.ven_id, url, exc, attempt + 1)
            else:
                if answer.status_code == 200:
                    await self._take_answer(record, answer.content)
                    return True
                log.warning("VEN %s answered the push with HTTP %d", record.ven_id, answer.status_code)
            await asyncio.sleep(0.5 * 2**attempt)
        return False

    async def _take_answer(self, record: VenRecord, content: bytes) -> None:
        if not content.strip():
            return
        try:
            answer = codec.decode(content)
        except OadrDecodeError as exc:
            log.warning("VEN %s answered the push with something that is not 2.0b: %s", record.ven_id, exc.reason)
            return
        if answer.payload is Payload.CREATED_EVENT:
            try:
                await self.vtn.handle(answer, record.party_id)
            except OadrRefusal as exc:
                log.warning("VEN %s's answer to the push was refused: %s", record.ven_id, exc.description)
