"""The IEEE 2030.5 (CSIP) utility server end to end on PostgreSQL: real mutual TLS on loopback, devices that are
:class:`Sep2Client` with their own certificates, operators on the canonical REST API, and a real PostgreSQL store.

Why this module exists: the Responses devices POST go through the server's group commit
(``gateway/protocols/ieee2030_5/commit.py``) into ``Store.append_many``, which on PostgreSQL takes the SQLAlchemy
Core path (``Store._append``) rather than SQLite's cursor path, and ``tests/test_ieee2030_5_server.py`` runs only on
SQLite. Here the same server runs on a fresh database of the ``postgres_server`` fixture: one device's Responses,
many devices posting at once (several requests per PostgreSQL transaction, duplicates among them), opt-outs that
become Overrides, and a restart of the server on the same database. Helpers come from the SQLite module.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import httpx
import pytest
from certs import TestCa
from fastapi import FastAPI
from test_ieee2030_5_server import (
    PIN,
    Gateway,
    Listener,
    canonical,
    control,
    der_settings,
    find,
    notification_listener,
    ok,
    raw,
    statuses,
    tls_client,
)

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.api.tls import server_tls_options
from gateway.config import Settings
from gateway.model import MessageKind
from gateway.protocols.ieee2030_5 import codec, mapper
from gateway.protocols.ieee2030_5 import models as m
from gateway.protocols.ieee2030_5.client import Sep2Client
from gateway.protocols.ieee2030_5.identity import lfdi_of_certificate
from gateway.protocols.ieee2030_5.server import PROTOCOL, Sep2Server
from gateway.store import Store, StoredMessage

from services import PostgresServer

T = TypeVar("T")

DEVICES = 8  # devices posting at once
POSTS_EACH = 6  # Responses each of them posts
_databases = itertools.count()


def fresh_database(server: PostgresServer) -> str:
    """The URL of a new, empty database on the session's PostgreSQL."""
    return server.create_database(f"tgw_sep2_{next(_databases)}")


@dataclass
class PgGateway(Gateway):
    """The SQLite module's Gateway, plus the running app (its 2030.5 server and group commit)."""

    app: FastAPI

    @property
    def sep2(self) -> Sep2Server:
        server: Sep2Server = self.app.state.sep2
        return server

    def responses_logged(self, after_seq: int = 0, **filters: str) -> list[StoredMessage]:
        """Response messages in the PostgreSQL log (not the current-state table), in log order."""
        return self.store.query_messages(kind=MessageKind.RESPONSE, after_seq=after_seq, limit=10_000, **filters)


# -- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def listener(pki: TestCa) -> Iterator[Listener]:
    with notification_listener(pki) as box:
        yield box


@contextmanager
def running(settings: Settings, pki: TestCa, listener: Listener, store: Store | None = None) -> Iterator[PgGateway]:
    """The gateway over mutual TLS on ``settings.database_url``, as the SQLite module's ``gw`` fixture runs it;
    without ``store`` the app opens (and closes) its own, as ``tgw serve`` does."""
    server = pki.issue("localhost", server=True)
    operator = pki.issue("operator")
    tls = server_tls_options(str(server.cert), str(server.key), str(pki.ca_file), require_client=True)
    app = create_app(settings, store=store)
    with serve_in_thread(app, **tls) as base:
        base = base.replace("127.0.0.1", "localhost")
        opened: Store = app.state.store
        assert opened.engine.dialect.name == "postgresql"
        with tls_client(pki, operator, base) as api:
            yield PgGateway(base, api, pki, opened, settings, listener, iter(range(1, 10_000)), app)


def seed(api: httpx.Client) -> None:
    """The party and locations every provisioned device belongs to."""
    for path, body in (
        ("/v1/parties", {"id": "ann", "name": "Ann", "roles": ["prosumer"]}),
        ("/v1/locations", {"id": "root", "name": "Substation", "kind": "substation"}),
        ("/v1/locations", {"id": "site-ann", "name": "Ann", "kind": "service_point", "parent_id": "root"}),
    ):
        ok(api.post(path, json=body))


@pytest.fixture(scope="module")
def settings(postgres_server: PostgresServer, pki: TestCa) -> Settings:
    return Settings(
        database_url=fresh_database(postgres_server),
        market_tick_seconds=0,
        ieee2030_5_notify_ca=str(pki.ca_file),
        ieee2030_5_notify_backoff=0.05,
    )


@pytest.fixture(scope="module")
def gw(settings: Settings, pki: TestCa, listener: Listener) -> Iterator[PgGateway]:
    store = Store(settings.database_url)
    try:
        with running(settings, pki, listener, store) as gateway:
            seed(gateway.api)
            yield gateway
    finally:
        store.close()


def concurrently(work: list[Callable[[], T]]) -> list[T]:
    """Run every callable on its own thread, all released at once; their results in order."""
    start = threading.Barrier(len(work))

    def run(job: Callable[[], T]) -> T:
        start.wait(timeout=30)
        return job()

    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        return list(pool.map(run, work))


def response_body(client: Sep2Client, mrid: str, status: int, at: int) -> bytes:
    response = m.DERControlResponse(createdDateTime=at, endDeviceLFDI=client.lfdi, status=status, subject=mrid)
    return codec.encode(response)


def response_id(location: str) -> str:
    """The canonical Response a Location names (the 2030.5 id in the Location is its canonical id's stem)."""
    return f"{location.rsplit('/', 1)[1]}-response"


def post_all(client: Sep2Client, href: str, bodies: list[bytes]) -> list[tuple[int, str]]:
    """POST each body in turn; (HTTP status, Location) of each."""
    answers = [raw(client, "POST", href, body) for body in bodies]
    return [(a.status_code, a.headers.get("location", a.text)) for a in answers]


# -- 1. one device's Responses ---------------------------------------------------------------------------------


def test_a_device_enrols_finds_its_control_and_its_responses_are_stored_in_postgres(gw: PgGateway) -> None:
    client, resource = gw.device()
    with client:
        assert client.enrol() == f"/edev/{client.sfdi}"
        mrid = control(gw, "pg-flow", resource)
        view = client.discover()
        program, found = find(view, mrid)
        assert program.primacy == 0 and found.EventStatus.currentStatus == 1
        assert found.DERControlBase.opModMaxLimW == 5000
        commits = gw.sep2.response_commit.commits
        locations = [client.respond(found, status) for status in (1, 2, 3)]
        assert all((loc or "").startswith(f"/edev/{client.sfdi}/rsps/priority-0/rsp/") for loc in locations)
        assert len(set(locations)) == 3
        assert gw.sep2.response_commit.commits == commits + 3  # one after another: a transaction each

        stored = canonical(gw, "responses", subject_id="pg-flow")
        assert sorted(r["status"] for r in stored) == ["completed", "received", "started"]
        assert {r["resource_id"] for r in stored} == {resource}
        assert {r["party_id"] for r in stored} == {"ann"}
        assert {r["subject"]["kind"] for r in stored} == {"control"}
        logged = gw.responses_logged(peer=client.lfdi)
        assert [entry.envelope.payload.status.value for entry in logged] == ["received", "started", "completed"]
        assert {entry.envelope.source.protocol for entry in logged if entry.envelope.source} == {PROTOCOL}
        assert [e.envelope.payload.id for e in logged] == [response_id(loc or "") for loc in locations]
        assert {e.envelope.payload.id for e in logged} == {r["id"] for r in stored}
        assert [e.stored_at.tzinfo for e in logged] == [UTC] * 3
        responses = client.get(found.replyTo or "", m.ResponseList, params={"s": 0, "l": 10})
        assert [r.status for r in responses.Response or []] == [1, 2, 3]


# -- 2. many devices at once: several requests per PostgreSQL transaction ------------------------------------------


def test_concurrent_devices_share_postgres_commits_and_every_response_is_stored_once(gw: PgGateway) -> None:
    devices = [gw.device() for _ in range(DEVICES)]
    now = int(time.time())
    clients = [client for client, _resource in devices]
    try:
        work: list[tuple[Sep2Client, str, str, list[bytes]]] = []
        for n, (client, resource) in enumerate(devices):
            mrid = control(gw, f"pg-burst-{n}", resource)
            _program, found = find(client.discover(), mrid)
            bodies = [response_body(client, mrid, (1, 2, 3)[k % 3], now - k) for k in range(POSTS_EACH)]
            work.append((client, resource, found.replyTo or "", bodies))
        total = DEVICES * POSTS_EACH
        before_seq = gw.store.last_seq()
        before_commits = gw.sep2.response_commit.commits

        answers = concurrently([lambda w=w: post_all(w[0], w[2], w[3]) for w in work])

        commits = gw.sep2.response_commit.commits - before_commits
        assert [status for per_device in answers for status, _loc in per_device] == [201] * total, answers
        locations = [loc for per_device in answers for _status, loc in per_device]
        assert len(set(locations)) == total
        assert 1 <= commits < total, f"{total} requests in {commits} transactions: none shared a commit"
        new = gw.responses_logged(after_seq=before_seq)
        assert len(new) == total and len({e.envelope.message_id for e in new}) == total
        assert len({e.seq for e in new}) == total
        for (client, resource, _href, _bodies), per_device in zip(work, answers, strict=True):
            mine = [e for e in new if e.envelope.source is not None and e.envelope.source.peer == client.lfdi]
            assert sorted(e.envelope.payload.id for e in mine) == sorted(response_id(loc) for _s, loc in per_device)
            assert {e.envelope.payload.resource_id for e in mine} == {resource}
        for n, (_client, resource, _href, _bodies) in enumerate(work):
            stored = canonical(gw, "responses", subject_id=f"pg-burst-{n}")
            assert len(stored) == POSTS_EACH and {r["resource_id"] for r in stored} == {resource}
            assert sorted(r["status"] for r in stored) == sorted(["received", "started", "completed"] * 2)

        # every Response again, each twice at once (so identical ones may meet in one transaction): duplicates
        after_seq = gw.store.last_seq()
        again = concurrently([lambda w=w: post_all(w[0], w[2], w[3]) for w in work for _twice in range(2)])
        assert [status for per_device in again for status, _loc in per_device] == [201] * (2 * total), again
        assert [loc for per_device in again[0::2] for _s, loc in per_device] == locations
        assert [loc for per_device in again[1::2] for _s, loc in per_device] == locations
        assert gw.responses_logged(after_seq=after_seq) == []
        assert gw.store.last_seq() == after_seq
        for n in range(DEVICES):
            assert len(canonical(gw, "responses", subject_id=f"pg-burst-{n}")) == POSTS_EACH
        client, _resource, href, _bodies = work[0]
        listed = client.get(href, m.ResponseList, params={"s": 0, "l": 50})
        assert listed.all == POSTS_EACH and len({r.href for r in listed.Response or []}) == POSTS_EACH
    finally:
        for client in clients:
            client.close()


# -- 3. opting out ------------------------------------------------------------------------------------------------


def test_responses_opting_out_become_canonical_overrides_in_postgres(gw: PgGateway) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    devices = [gw.device() for _ in range(4)]
    try:
        found: list[m.DERControl] = []
        for n, (client, resource) in enumerate(devices):
            mrid = control(gw, f"pg-opt-{n}", resource, at=start)
            found.append(find(client.discover(), mrid)[1])
        assert all(canonical(gw, "overrides", subject_id=f"pg-opt-{n}") == [] for n in range(len(devices)))
        before_seq = gw.store.last_seq()
        at = int(time.time())

        # a Response and an Override per request, several requests per transaction
        answers = concurrently(
            [
                lambda c=client, f=ctl: post_all(c, f.replyTo or "", [response_body(c, f.mRID, 4, at)])
                for (client, _resource), ctl in zip(devices, found, strict=True)
            ]
        )

        assert [status for per_device in answers for status, _loc in per_device] == [201] * len(devices), answers
        for n, (_client, resource) in enumerate(devices):
            [override] = canonical(gw, "overrides", subject_id=f"pg-opt-{n}")
            assert override["mode"] == "opt_out" and override["resource_id"] == resource
            assert override["party_id"] == "ann" and override["reason_text"] == "IEEE 2030.5 Response 4"
            assert datetime.fromisoformat(override["span"]["start"]) == start  # the whole period (status 4)
            [response] = canonical(gw, "responses", subject_id=f"pg-opt-{n}")
            assert response["status"] == "opted_out" and response["resource_id"] == resource
        logged = gw.store.query_messages(after_seq=before_seq, limit=100)
        assert sorted(e.envelope.message_kind.value for e in logged) == ["override"] * 4 + ["response"] * 4
    finally:
        for client, _resource in devices:
            client.close()


# -- 4. restart ---------------------------------------------------------------------------------------------------


def test_a_restarted_server_on_the_same_postgres_database_keeps_controls_settings_and_subscriptions(
    gw: PgGateway, postgres_server: PostgresServer
) -> None:
    settings = replace(gw.settings, database_url=fresh_database(postgres_server))
    issued = gw.ca.issue("pg-restart-dev")
    lfdi = lfdi_of_certificate(issued.der)
    resource = {
        "id": "pg-restart-dev",
        "name": "r",
        "kind": "pv",
        "owner_id": "ann",
        "location_id": "site-ann",
        "ratings": {"max_kw": "10"},
        "identities": {"lfdi": lfdi, "ieee2030_5-pin": str(PIN)},
    }
    with running(settings, gw.ca, gw.listener) as first:
        seed(first.api)
        ok(first.api.post("/v1/resources", json=resource))
        mrid = control(first, "pg-restart", "pg-restart-dev", priority=4, unit="kW", value="5")
        with first.client(issued) as client:
            view = client.discover()
            _program, found = find(view, mrid)
            assert found.DERControlBase.opModMaxLimW == 5000  # 5 of 10 kW (the rating: no setMaxW yet)
            before = statuses(view)
            received = response_body(client, mrid, 1, client.now())
            first_answer = raw(client, "POST", found.replyTo or "", received)
            assert first_answer.status_code == 201, first_answer.text
            client.put_der_settings(der_settings(8000))
            location = client.subscribe(f"/edev/{client.sfdi}/derp", f"{gw.listener.url}/notify/pg-restart")
            mup = client.mirror(client.mirror_usage_point("0123456789ABCDEF0123456789ABCDEF"))
            sfdi = client.sfdi
    with running(settings, gw.ca, gw.listener) as second:
        with second.client(issued) as client:
            view = client.discover()
            assert statuses(view) == before  # the same mRID, status and creationTime
            _program, again = find(view, mrid)
            assert again.DERControlBase.opModMaxLimW == 6250  # 5 kW of the setMaxW of 8 kW the device reported
            der = client.der()
            assert der.DERSettingsLink is not None
            kept = client.get(der.DERSettingsLink.href, m.DERSettings)
            assert mapper.unscaled(kept.setMaxW.value, kept.setMaxW.multiplier) == 8000
            subscription = client.get(location, m.Subscription)
            assert subscription.subscribedResource == f"/edev/{sfdi}/derp"
            mirror = client.get(mup, m.MirrorUsagePoint)
            assert mirror.mRID == "0123456789ABCDEF0123456789ABCDEF" and mirror.deviceLFDI == lfdi

            # the Response posted before the restart is a duplicate now; a new one is stored
            seq = second.store.last_seq()
            repeated = raw(client, "POST", again.replyTo or "", received)
            assert repeated.status_code == 201 and repeated.headers["location"] == first_answer.headers["location"]
            assert second.store.last_seq() == seq
            client.respond(again, 2)
        stored = canonical(second, "responses", subject_id="pg-restart")
        assert sorted(r["status"] for r in stored) == ["received", "started"]
