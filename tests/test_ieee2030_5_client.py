"""The 2030.5 client (``gateway.protocols.ieee2030_5.client``) against the real server over mutual TLS on loopback:
the responding device (:class:`ControlTracker`) replayed at chosen moments of a control's life, paging, the errors
a person reads, and server behaviour only a long-lived device notices: a restart (cancellation times,
subscriptions), Responses (without a time, refused, read back at their Location), Notifications (retried, limited,
sent only on real change) and mirrored readings in reading sets. tests/test_ieee2030_5_server.py has the main flow.

One PKI, one gateway and one HTTPS notification listener per module; each test provisions its own device, so
controls never cross tests. The tracker is given explicit moments, so nothing waits for the clock.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest
from certs import Issued, TestCa
from fastapi import FastAPI
from fastapi.responses import Response

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.api.tls import server_tls_options
from gateway.config import Settings
from gateway.ingest import Problem, Rejected
from gateway.model import Clearing, Envelope, Interval, Resolution, Source
from gateway.model.markets import ClearingType
from gateway.protocols.ieee2030_5 import codec, mapper
from gateway.protocols.ieee2030_5 import models as m
from gateway.protocols.ieee2030_5.client import ControlTracker, Sep2Client, Sep2ClientError
from gateway.protocols.ieee2030_5.identity import lfdi_of_certificate
from gateway.protocols.ieee2030_5.suites import SEP2_SUITE
from gateway.resources import mappings_dir
from gateway.store import Store

PIN = 111115
MARKET = "m-client"
PEN = 32473


@dataclass
class Gateway:
    base: str
    api: httpx.Client
    ca: TestCa
    server: Issued
    database: str
    names: Iterator[int]
    app: FastAPI
    listener: Listener
    issued: dict[str, Issued] = field(default_factory=dict)  # LFDI -> the device's certificate and key

    def device(self, *, pin: str | None = str(PIN)) -> tuple[Sep2Client, str]:
        name = f"cdev{next(self.names)}"
        issued = self.ca.issue(name)
        self.issued[lfdi_of_certificate(issued.der)] = issued
        identities = {"lfdi": lfdi_of_certificate(issued.der)}
        if pin is not None:
            identities["ieee2030_5-pin"] = pin
        resource = {
            "id": name,
            "name": name,
            "kind": "pv",
            "owner_id": "ann",
            "location_id": "site-ann",
            "ratings": {"max_kw": "5"},
            "identities": identities,
        }
        ok(self.api.post("/v1/resources", json=resource))
        return self.client(issued), name

    def client(self, issued: Issued, *, pin: int | None = PIN, base: str | None = None) -> Sep2Client:
        return Sep2Client(base or self.base, cert=issued.cert, key=issued.key, ca=self.ca.ca_file, pin=pin)

    def controls(self, resource_id: str, *, at: int, **specs: dict[str, Any]) -> dict[str, str]:
        """POST one canonical control per spec (start/duration in seconds from ``at``); returns id -> mRID."""
        mrids: dict[str, str] = {}
        for control_id, spec in specs.items():
            spec = dict(spec)
            start = datetime.fromtimestamp(at + spec.pop("start"), UTC)
            body = {
                "id": control_id,
                "targets": {"resource_ids": [resource_id]},
                "kind": "limit",
                "signal": "real_power",
                "unit": "percent",
                "periods": [
                    {
                        "span": {"start": start.isoformat(), "duration": f"PT{spec.pop('duration')}S"},
                        "value": spec.pop("value", "50"),
                    }
                ],
                **spec,
            }
            ok(self.api.post("/v1/controls", json=body))
            mrids[control_id] = mapper.control_mrid(control_id, 0, PEN)
        return mrids

    def response_statuses(self, subject_id: str) -> list[str]:
        found = ok(self.api.get("/v1/responses", params={"subject_id": subject_id, "limit": 1000})).json()
        return sorted(r["status"] for r in found)


def ok(answer: httpx.Response) -> httpx.Response:
    assert answer.status_code < 300, f"{answer.request.method} {answer.request.url}: {answer.status_code} {answer.text}"
    return answer


def tls_client(ca: TestCa, issued: Issued, base: str) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(ca.ca_file))
    context.load_cert_chain(str(issued.cert), str(issued.key))
    return httpx.Client(base_url=base, verify=context, timeout=30)


def mapping_file(folder: Path) -> Path:
    """The shipped table with one tariff: the cleared price of MARKET at the device's site."""
    base = (mappings_dir() / "ieee2030_5.yaml").read_text(encoding="utf-8").split("\ntariffs:")[0]
    tariff = f"\ntariffs:\n  - tariff_id: spot\n    market_id: {MARKET}\n    price_power_of_ten: -4\n"
    path = folder / "ieee2030_5.yaml"
    path.write_text(base + tariff, encoding="utf-8")
    return path


def settings_for(ca: TestCa, database: str) -> Settings:
    return Settings(
        database_url=database,
        market_tick_seconds=0,
        ieee2030_5_mappings=str(mapping_file(Path(ca.folder))),
        ieee2030_5_notify_ca=str(ca.ca_file),
        ieee2030_5_notify_backoff=0.05,
    )


def serve(ca: TestCa, server: Issued, database: str, app: FastAPI | None = None) -> Any:
    tls = server_tls_options(str(server.cert), str(server.key), str(ca.ca_file), require_client=True)
    return serve_in_thread(app or create_app(settings_for(ca, database)), **tls)


@dataclass
class Delivered:
    path: str
    body: bytes
    answered: int


class Listener:
    """A device's HTTPS endpoint for Notifications (server certificate from the test CA) that records every POST,
    and refuses the first ``failures`` of them with 503 to make the server retry."""

    def __init__(self, issued: Issued) -> None:
        self.received: list[Delivered] = []
        self.failures = 0
        self.arrived = threading.Condition()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with listener.arrived:
                    status = 503 if listener.failures > 0 else 201
                    listener.failures -= status == 503
                    listener.received.append(Delivered(self.path, body, status))
                    listener.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(issued.cert), str(issued.key))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, token: str) -> str:
        return f"https://localhost:{self.server.server_address[1]}/notify/{token}"

    def wait(self, token: str, accept: Any, timeout: float = 10) -> list[Delivered]:
        """Every delivery to ``token`` once one that was answered 201 satisfies ``accept`` (or the timeout)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                mine = [d for d in self.received if d.path == f"/notify/{token}"]
                if any(d.answered == 201 and accept(codec.decode(d.body, m.Notification)) for d in mine):
                    return mine
                if time.monotonic() > deadline:
                    return mine
                self.arrived.wait(0.05)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("sep2-client")
    ca = TestCa(folder)
    server = ca.issue("localhost", server=True)
    operator = ca.issue("operator")
    database = f"sqlite:///{folder / 'gw.db'}"
    store = Store(database)  # migrated before two apps share it
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    clearing = Clearing(
        market_id=MARKET,
        interval=Interval(start=hour, duration=Resolution.HOUR),
        type=ClearingType.EXACT,
        price=Decimal("0.25"),
        cleared_quantity=Decimal(10),
        gate_closed_at=hour - timedelta(minutes=5),
    )  # as the market runner stores it
    store.append(Envelope(payload=clearing, source=Source(protocol="market", peer=MARKET, native_id="c1")))
    store.close()
    app = create_app(settings_for(ca, database))
    listener = Listener(server)
    with serve(ca, server, database, app) as base, tls_client(ca, operator, base) as api:
        for path, body in (
            ("/v1/parties", {"id": "ann", "name": "Ann", "roles": ["prosumer"]}),
            ("/v1/locations", {"id": "site-ann", "name": "Ann", "kind": "service_point"}),
        ):
            ok(api.post(path, json=body))
        yield Gateway(base, api, ca, server, database, count(1), app, listener)
    listener.close()


def whole_seconds_now() -> int:
    return int(datetime.now(UTC).timestamp())


# -- the responding device -------------------------------------------------------------------------------


def test_the_tracker_answers_each_control_as_its_life_unfolds(gw: Gateway) -> None:
    client, resource = gw.device()
    t0 = whole_seconds_now()
    mrid = gw.controls(
        resource,
        at=t0,
        older={"start": 600, "duration": 600, "priority": 3, "value": "60"},
        newer={"start": 900, "duration": 600, "priority": 2, "value": "40"},  # takes the same mode over at +900
        quiet={"start": 600, "duration": 300, "priority": 4, "kind": "connect", "signal": "connect",
               "unit": "boolean", "value": "0", "response_required": False},
        dropped={"start": 600, "duration": 600, "priority": 5, "kind": "setpoint", "unit": "percent"},
        late={"start": -7200, "duration": 600, "priority": 6, "kind": "setpoint", "signal": "reactive_power"},
    )  # fmt: skip
    ok(gw.api.post("/v1/controls/dropped/cancel"))
    with client:
        programs = client.discover().programs
        tracker = ControlTracker(client)

        def step(now: int) -> set[tuple[str, int]]:
            return {(s.mrid, s.status) for s in tracker.update(programs, now=now)}

        # known and scheduled: "received"; the cancelled one also "cancelled"; the one that was over before it
        # was created: "received" then "rejected, received after expiry"; the quiet one asked for nothing
        assert step(t0 + 1) == {
            (mrid["older"], 1),
            (mrid["newer"], 1),
            (mrid["dropped"], 1),
            (mrid["dropped"], 6),
            (mrid["late"], 1),
            (mrid["late"], 254),
        }
        assert step(t0 + 2) == set()  # nothing is sent twice
        assert step(t0 + 700) == {(mrid["older"], 2)}
        assert step(t0 + 1000) == {(mrid["older"], 7), (mrid["newer"], 2)}
        applied = tracker.effective_modes()
        assert applied["opModMaxLimW"] == 4000  # the newer control's 40 %
        assert applied["opModConnect"] is True  # the quiet control ended: the DefaultDERControl's value again
        assert step(t0 + 1600) == {(mrid["newer"], 3)}
        assert tracker.statuses(mrid["older"]) == [1, 2, 7]
    assert gw.response_statuses("older") == ["received", "started", "superseded"]
    assert gw.response_statuses("newer") == ["completed", "received", "started"]
    assert gw.response_statuses("dropped") == ["cancelled", "received"]
    assert gw.response_statuses("late") == ["received", "rejected_expired"]
    assert gw.response_statuses("quiet") == []


def test_a_response_that_fails_is_sent_again_on_the_next_update(gw: Gateway) -> None:
    client, resource = gw.device()
    t0 = whole_seconds_now()
    mrid = gw.controls(resource, at=t0, retried={"start": 600, "duration": 600})["retried"]
    with client:
        programs = client.discover().programs
        tracker = ControlTracker(client)
        [control] = [c for p in programs for c in p.controls if c.mRID == mrid]
        broken = [p.__class__(p.program, [c.model_copy(update={"replyTo": c.replyTo + "x"}) for c in p.controls])
                  for p in programs]  # fmt: skip
        with pytest.raises(Sep2ClientError) as refused:
            tracker.update(broken, now=t0 + 1)
        assert refused.value.status == 404 and refused.value.method == "POST"
        assert [(s.mrid, s.status) for s in tracker.update(programs, now=t0 + 1)] == [(control.mRID, 1)]
    assert gw.response_statuses("retried") == ["received"]


# -- lists, identity and errors ----------------------------------------------------------------------------------


def test_whole_lists_are_read_page_by_page(gw: Gateway) -> None:
    client, resource = gw.device()
    t0 = whole_seconds_now()
    specs = {f"page-{n}": {"start": 600 + 60 * n, "duration": 60, "priority": 8} for n in range(5)}
    mrids = gw.controls(resource, at=t0, **specs)
    with client:
        client.page_size = 2  # three pages: 2 + 2 + 1
        requests: list[httpx.Request] = []
        client.http.event_hooks["request"].append(requests.append)
        [program] = [p for p in client.discover(tariffs=False).programs if p.program.primacy == 8]
        assert [c.mRID for c in program.controls] == [mrids[f"page-{n}"] for n in range(5)]  # by start time
        assert program.program.DERControlListLink is not None
        own = program.program.DERControlListLink.href
        assert [r.url.params.get("s") for r in requests if r.url.path == own] == ["0", "2", "4"]
        whole = client.get(program.program.DERControlListLink.href, m.DERControlList, params={"s": 0, "l": 100})
        assert [c.mRID for c in whole.DERControl or []] == [c.mRID for c in program.controls]


def test_the_client_knows_itself_and_reports_refusals_with_the_servers_reason(gw: Gateway) -> None:
    client, _resource = gw.device()
    with client:
        view = client.discover()
        assert view.end_device.sFDI == client.sfdi and view.end_device.lFDI == client.lfdi
        assert view.registration is not None and view.registration.pIN == PIN
        assert client.enrol() == view.end_device.href
    stranger = gw.client(gw.ca.issue("stranger-client"))
    with stranger, pytest.raises(Sep2ClientError) as refused:
        stranger.discover()
    assert refused.value.status == 403 and refused.value.reason_code is not None
    assert stranger.lfdi in refused.value.reason and "not registered" in str(refused.value)
    _client, resource = gw.device()
    issued = gw.ca.issue("wrong-pin")
    ok(gw.api.post("/v1/resources", json={**gw.api.get(f"/v1/resources/{resource}").json(),
                                          "identities": {"lfdi": lfdi_of_certificate(issued.der),
                                                         "ieee2030_5-pin": "222220"}}))  # fmt: skip
    with gw.client(issued) as wrong, pytest.raises(Sep2ClientError, match="PIN 222220 is not the PIN 111115"):
        wrong.discover()


# -- what a long-lived device notices --------------------------------------------------------------------------


def test_a_cancelled_control_keeps_its_cancellation_time_across_a_restart(gw: Gateway) -> None:
    client, resource = gw.device()
    t0 = whole_seconds_now()
    created = datetime.fromtimestamp(t0 - 300, UTC).isoformat()
    mrid = gw.controls(resource, at=t0, kept={"start": 600, "duration": 600, "created_at": created})["kept"]
    ok(gw.api.post("/v1/controls/kept/cancel"))
    with client:
        before = client.discover(tariffs=False).control(mrid)
    assert before is not None and before.EventStatus.currentStatus == 2
    assert before.creationTime == t0 - 300 and before.EventStatus.dateTime >= t0  # cancelled now, not at creation
    with serve(gw.ca, gw.server, gw.database) as restarted, gw.client(gw.issued[client.lfdi], base=restarted) as again:
        after = again.discover(tariffs=False).control(mrid)
    assert after is not None and after.EventStatus == before.EventStatus


def test_a_response_without_a_created_time_is_stamped_by_the_server(gw: Gateway) -> None:
    client, resource = gw.device()
    t0 = whole_seconds_now()
    mrid = gw.controls(resource, at=t0, untimed={"start": 600, "duration": 600})["untimed"]
    with client:
        control = client.discover(tariffs=False).control(mrid)
        assert control is not None and control.replyTo
        body = codec.encode(m.DERControlResponse(endDeviceLFDI=client.lfdi, status=1, subject=mrid))
        answer = client.http.post(client.url(control.replyTo), content=body, headers={"Content-Type": codec.MEDIA_TYPE})
        assert answer.status_code == 201, (answer.status_code, answer.headers.get("x-error-reason"))
    [stored] = ok(gw.api.get("/v1/responses", params={"subject_id": "untimed"})).json()
    assert abs(datetime.fromisoformat(stored["at"]).timestamp() - t0) < 60


def test_a_response_is_listed_and_readable_at_its_location_only_once_stored(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, resource = gw.device()
    t0 = whole_seconds_now()
    mrid = gw.controls(resource, at=t0, listed={"start": 600, "duration": 600})["listed"]
    server = gw.app.state.sep2
    with client:
        control = client.discover(tariffs=False).control(mrid)
        assert control is not None and control.replyTo

        async def refuse(*_args: Any, **_kwargs: Any) -> Any:
            raise Rejected([Problem((0, "payload"), "refused for the test")])

        with monkeypatch.context() as patched:
            patched.setattr(server.response_commit, "ingest", refuse)
            with pytest.raises(Sep2ClientError) as refused:
                client.respond(control, 1, at=t0)
            assert refused.value.status == 400 and "refused for the test" in refused.value.reason
        assert client.get(control.replyTo, m.ResponseList, params={"s": 0, "l": 10}).all == 0
        location = client.respond(control, 1, at=t0)
        assert location is not None and client.respond(control, 1, at=t0) == location  # the same one again
        kept = client.get(location, m.DERControlResponse)
        assert (kept.subject, kept.status, kept.createdDateTime, kept.href) == (mrid, 1, t0, location)
        assert client.get(control.replyTo, m.ResponseList, params={"s": 0, "l": 10}).all == 1
    assert gw.response_statuses("listed") == ["received"]


# -- notifications ----------------------------------------------------------------------------------------------


def lists(mrid: str) -> Any:
    def accept(notification: m.Notification) -> bool:
        resource = notification.Resource
        return isinstance(resource, m.DERControlList) and mrid in {c.mRID for c in resource.DERControl or []}

    return accept


def test_a_notification_the_listener_refuses_is_retried_until_it_is_taken(gw: Gateway) -> None:
    client, resource = gw.device()
    t0 = whole_seconds_now()
    with client:
        [default] = [
            p for p in client.discover(tariffs=False).programs if p.program.description == "Utility DER program"
        ]
        assert default.program.DERControlListLink is not None
        href = default.program.DERControlListLink.href
        client.subscribe(href, gw.listener.url(str(client.sfdi)))
        with gw.listener.arrived:
            gw.listener.failures = 2
        mrid = gw.controls(resource, at=t0, retried={"start": 600, "duration": 600, "program_id": "default"})
        delivered = gw.listener.wait(str(client.sfdi), lists(mrid["retried"]))
    assert [d.answered for d in delivered] == [503, 503, 201]
    assert len({d.body for d in delivered}) == 1  # the same Notification each time
    notification = codec.decode(delivered[-1].body, m.Notification)
    assert notification.subscribedResource == href and notification.status == 0


def test_a_subscription_made_before_a_restart_is_notified_of_the_first_change_after_it(gw: Gateway) -> None:
    client, resource = gw.device()
    t0 = whole_seconds_now()
    with client:
        [default] = [
            p for p in client.discover(tariffs=False).programs if p.program.description == "Utility DER program"
        ]
        assert default.program.DERControlListLink is not None
        client.subscribe(default.program.DERControlListLink.href, gw.listener.url(str(client.sfdi)))
    operator = gw.ca.issue(f"operator-{next(gw.names)}")
    with serve(gw.ca, gw.server, gw.database) as restarted, tls_client(gw.ca, operator, restarted) as api:
        mrid = mapper.control_mrid("after-restart", 0, PEN)
        start = datetime.fromtimestamp(t0 + 600, UTC).isoformat()
        ok(api.post("/v1/controls", json={
            "id": "after-restart", "program_id": "default", "targets": {"resource_ids": [resource]}, "kind": "limit",
            "signal": "real_power", "unit": "percent", "periods": [{"span": {"start": start, "duration": "PT10M"},
                                                                     "value": "30"}],
        }))  # fmt: skip
        delivered = gw.listener.wait(str(client.sfdi), lists(mrid))
    assert any(lists(mrid)(codec.decode(d.body, m.Notification)) for d in delivered if d.answered == 201)


def test_a_notification_carries_at_most_the_subscriptions_limit_and_only_real_changes(gw: Gateway) -> None:
    client, resource = gw.device()
    t0 = whole_seconds_now()
    with client:
        view = client.discover()
        [default] = [p for p in view.programs if p.program.description == "Utility DER program"]
        assert default.program.DERControlListLink is not None
        [tariff] = view.tariffs
        assert [price for _start, _duration, price in tariff.prices()] == [Decimal("0.25")]
        rate = client.get_all(tariff.profile.RateComponentListLink.href, m.RateComponentList, "RateComponent")[1][0]
        token = f"{client.sfdi}-limited"
        client.subscribe(default.program.DERControlListLink.href, gw.listener.url(token), limit=1)
        client.subscribe(rate.TimeTariffIntervalListLink.href, gw.listener.url(f"{client.sfdi}-prices"))
        time.sleep(1.1)  # the next second: a resource that wrongly depends on the clock would differ now
        specs = {f"limited-{n}": {"start": 600 * (n + 1), "duration": 60, "program_id": "default"} for n in (0, 1)}
        mrids = gw.controls(resource, at=t0, **specs)

        def both(notification: m.Notification) -> bool:
            return isinstance(notification.Resource, m.DERControlList) and notification.Resource.all == 2

        delivered = gw.listener.wait(token, both)
        time.sleep(0.3)  # any notification of the same change is under way by now
    last = codec.decode(delivered[-1].body, m.Notification)
    assert isinstance(last.Resource, m.DERControlList)
    assert (last.Resource.all, last.Resource.results) == (2, 1)
    assert [c.mRID for c in last.Resource.DERControl or []] == [mrids["limited-0"]]  # the first by start time
    assert not [d for d in gw.listener.received if d.path == f"/notify/{client.sfdi}-prices"]  # prices unchanged


# -- metering -----------------------------------------------------------------------------------------------------


def test_readings_in_a_mirror_reading_set_take_the_sets_intervals(gw: Gateway) -> None:
    client, resource = gw.device()
    start = (whole_seconds_now() // 300 - 4) * 300
    reading = m.MirrorMeterReading(
        mRID="00000000000000000000000000000AB1",
        MirrorReadingSet=[
            m.MirrorReadingSet(
                mRID="00000000000000000000000000000AB2",
                timePeriod=m.DateTimeInterval(start=start, duration=600),
                Reading=[m.Reading(value=1000), m.Reading(value=3000)],  # two 5-minute averages, as devices write
            )
        ],
        ReadingType=m.ReadingType(commodity=1, flowDirection=1, intervalLength=300, kind=8, uom=38),
    )
    with client:
        client.discover(tariffs=False)
        location = client.mirror(client.mirror_usage_point("00000000000000000000000000000AB0"), [reading])
        client.mirror_readings(location, [reading])  # the same readings again change nothing
        found = ok(gw.api.get("/v1/deliveries", params={"party_id": "ann", "limit": 1000})).json()
        mine = sorted(
            (d["interval"]["start"], d["quantity"], d["measured_at"]) for d in found if d["resource_id"] == resource
        )
        assert [(Decimal(q)) for _s, q, _m in mine] == [1, 3]
        assert [datetime.fromisoformat(s).timestamp() for s, _q, _m in mine] == [start, start + 300]
        assert [datetime.fromisoformat(at).timestamp() for _s, _q, at in mine] == [start + 300, start + 600]
        log = ok(gw.api.get("/v1/messages", params={"kind": "delivery", "peer": client.lfdi})).json()["items"]
        assert len(log) == 2  # each reading stored once
        unknown = reading.model_copy(
            update={"ReadingType": reading.ReadingType.model_copy(update={"intervalLength": None})}
        )
        with pytest.raises(Sep2ClientError, match="intervalLength") as refused:
            client.mirror_readings(location, [unknown])
        assert refused.value.status == 400
        empty = m.MirrorMeterReading(
            mRID="00000000000000000000000000000AB3",
            Reading=m.Reading(timePeriod=m.DateTimeInterval(start=start, duration=300)),
            ReadingType=m.ReadingType(uom=38),
        )
        with pytest.raises(Sep2ClientError, match="no value"):
            client.mirror_readings(location, [empty])


def test_der_resources_put_by_the_device_read_back_where_they_live(gw: Gateway) -> None:
    client, _resource = gw.device()
    with client:
        client.discover(tariffs=False)
        href = client.put_der_status(m.DERStatus(readingTime=whole_seconds_now()))
        status = client.get(href, m.DERStatus)
        assert status.href == href and status.readingTime <= whole_seconds_now()
        with pytest.raises(Sep2ClientError, match="takes a DERStatus") as refused:
            client.put(href, m.DERAvailability(readingTime=1))
        assert refused.value.status == 400 and client.get(href, m.DERStatus) == status


def test_the_client_reaches_a_server_that_speaks_only_what_2030_5_requires(tmp_path: Path) -> None:
    """A strict utility server: TLS 1.2 only, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 only. Python's default client
    suites leave CCM out; the client adds it, or a conformance run against such a server could not even connect."""
    ca = TestCa(tmp_path)
    server, device = ca.issue("localhost", server=True), ca.issue("strict-device")
    dcap = codec.encode(m.DeviceCapability(href="/dcap", pollRate=900))
    app = FastAPI()

    @app.get("/dcap")
    def device_capability() -> Response:
        return Response(dcap, media_type=codec.MEDIA_TYPE)

    def strict(_config: Any, default: Any) -> ssl.SSLContext:
        context: ssl.SSLContext = default()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(SEP2_SUITE)
        return context

    tls = server_tls_options(str(server.cert), str(server.key), str(ca.ca_file), require_client=True)
    with serve_in_thread(app, **tls, ssl_context_factory=strict) as base:  # type: ignore[arg-type]
        base = base.replace("127.0.0.1", "localhost")
        with Sep2Client(base, cert=device.cert, key=device.key, ca=ca.ca_file) as client:
            assert client.get("/dcap", m.DeviceCapability).pollRate == 900
        with (
            pytest.raises(httpx.ConnectError),
            httpx.Client(verify=ssl.create_default_context(cafile=str(ca.ca_file))) as plain,
        ):
            plain.get(f"{base}/dcap")  # Python's defaults alone share no suite with it: what the client fixed
