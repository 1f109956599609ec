"""Group commit for what devices post: many devices' Responses stored in one durable transaction.

A device is answered 201 only once its Response is stored, and a store commit is durable (SQLite: WAL with
synchronous=FULL, one fsync per commit). Committing each POST on its own caps the server at one fsync per Response
(about 1,000/s on a fast disk, far fewer with concurrent writers contending for SQLite's lock), while the work of a
Response is tens of microseconds. So POSTs that arrive while a commit is in flight wait for the next one and go in
together: one worker thread, one check of the references, one ``append_many`` and one fsync for the lot, and each
waiting POST is answered when the commit that holds its Response is done. The parties, controls and resources
Responses name are looked up in the store once and then remembered (the store never deletes an object).

Each request keeps its own outcome, exactly as if it had been ingested alone: its problems (``Rejected``, with the
positions within its own batch) refuse only it; if the shared append fails (a reused message id, say), every request
of it is appended on its own so only the one at fault fails. Only kinds that no other message refers to (Responses
and Overrides) come this way, so checking the requests' objects together cannot let one request's object satisfy
another's reference.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from gateway.ingest import Ingestor, Problem, Rejected
from gateway.model import Envelope, MessageKind
from gateway.store import StoredMessage

log = logging.getLogger(__name__)

GROUPED_KINDS = frozenset({MessageKind.RESPONSE, MessageKind.OVERRIDE})
MAX_GROUP = 256
MAX_KNOWN = 500_000

_Request = tuple[list[Envelope], asyncio.Future[list[StoredMessage]]]


class GroupCommit:
    """Stores batches of envelopes from concurrent requests in shared transactions; see the module docstring."""

    def __init__(self, ingestor: Ingestor, protocol: str) -> None:
        self.ingestor = ingestor
        self.protocol = protocol
        self._pending: list[_Request] = []
        self._writer: asyncio.Task[None] | None = None
        self._known: set[tuple[MessageKind, str]] = set()  # parties, controls, resources found stored (worker only)
        self.commits = 0  # transactions written (for tests and benchmarks: requests / commits is the group size)

    async def ingest(self, envelopes: Sequence[Envelope], *, peer: str) -> list[StoredMessage]:
        """Like ``Ingestor.ingest`` for one request (stored durably, then published on the bus), sharing the commit
        with the requests that wait beside it."""
        sourced = [envelope.with_source(self.protocol, peer) for envelope in envelopes]
        if any(envelope.message_kind not in GROUPED_KINDS for envelope in sourced):
            return await self.ingestor.ingest(envelopes, protocol=self.protocol, peer=peer)
        future: asyncio.Future[list[StoredMessage]] = asyncio.get_running_loop().create_future()
        self._pending.append((sourced, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_pending())
        stored = await future
        if self.ingestor.bus is not None:
            self.ingestor.bus.publish(stored)
        return stored

    async def _write_pending(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
                try:
                    outcomes = await asyncio.to_thread(self._write, [envelopes for envelopes, _ in group])
                except BaseException as exc:  # every waiting request must hear of it
                    outcomes = [exc] * len(group)
                    if not isinstance(exc, Exception):
                        raise
                finally:
                    self.commits += 1
                for (_, future), outcome in zip(group, outcomes, strict=True):
                    if future.done():  # the request was cancelled (its client went away); it is stored anyway
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._writer = None
            if self._pending:  # left by an exception (cancelled at shutdown): no request may wait for ever
                for _, future in self._pending:
                    future.cancel()
                self._pending = []

    def _write(self, requests: list[list[Envelope]]) -> list[list[StoredMessage] | BaseException]:
        """A worker thread: check every request, append those without problems together (one commit)."""
        owner: list[tuple[int, int]] = [(r, i) for r, envelopes in enumerate(requests) for i in range(len(envelopes))]
        problems: dict[int, list[Problem]] = {}
        if len(self._known) > MAX_KNOWN:
            self._known.clear()
        flat = [envelope for envelopes in requests for envelope in envelopes]
        for problem in self.ingestor.check(flat, known=self._known):
            request, position = owner[int(problem.loc[0])]
            problems.setdefault(request, []).append(Problem((position, *problem.loc[1:]), problem.msg, problem.type))
        outcomes: list[list[StoredMessage] | BaseException] = [
            Rejected(problems[r]) if r in problems else [] for r in range(len(requests))
        ]
        accepted = [r for r in range(len(requests)) if r not in problems]
        store = self.ingestor.store
        try:
            stored = store.append_many([envelope for r in accepted for envelope in requests[r]])
        except Exception:
            log.info("a group commit of %d requests failed; appending them one by one", len(accepted), exc_info=True)
            for r in accepted:
                try:
                    outcomes[r] = store.append_many(requests[r])
                except Exception as exc:
                    outcomes[r] = exc
            return outcomes
        first = 0
        for r in accepted:
            outcomes[r] = stored[first : first + len(requests[r])]
            first += len(requests[r])
        return outcomes
