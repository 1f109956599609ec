"""The IEEE 2030.5 (CSIP) utility server end to end: real mutual TLS on loopback, devices that are
:class:`Sep2Client` with their own certificates, operators on the canonical REST API.

One PKI and one server per module (a SQLite file, the shipped mapping table plus one tariff); each test
provisions its own device(s) so that the controls of one test never reach another's view. Controls start in the
past, so the engine's "now" has already passed every moment a test checks: nothing waits for the clock.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from certs import Issued, TestCa
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.api.tls import server_tls_options
from gateway.config import Settings
from gateway.model import (
    Clearing,
    Control,
    ControlPeriod,
    ControlStatus,
    ControlTargets,
    Envelope,
    Interval,
    MessageKind,
    Resolution,
    Source,
    TimeSpan,
)
from gateway.model.markets import ClearingType
from gateway.protocols.ieee2030_5 import codec, mapper
from gateway.protocols.ieee2030_5 import models as m
from gateway.protocols.ieee2030_5.client import (
    ControlTracker,
    DeviceView,
    Sep2Client,
    Sep2ClientError,
    average_power_reading,
)
from gateway.protocols.ieee2030_5.clock import time_fields
from gateway.protocols.ieee2030_5.identity import lfdi_of_certificate, sfdi_is_valid, sfdi_of_lfdi
from gateway.protocols.ieee2030_5.index import CanonicalIndex, Device, History
from gateway.protocols.ieee2030_5.suites import SEP2_SUITE, sep2_only_client
from gateway.protocols.ieee2030_5.table import TableError, load_table
from gateway.resources import mappings_dir
from gateway.store import Store

PIN = 111115
PEN = 32473
MARKET = "m-der"
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
TARIFF = f"""
tariffs:
  - tariff_id: transactive
    description: Transactive price
    market_id: {MARKET}
    currency: 840
    price_power_of_ten: -4
"""


# -- fixtures ---------------------------------------------------------------------------------------------


@dataclass
class Listener:
    """A device's HTTPS endpoint for Notifications: records every POST body."""

    url: str
    bodies: list[bytes] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, test: Any, timeout: float = 10) -> list[m.Notification]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                found = [codec.decode(b, m.Notification) for b in self.bodies]
                if test(found) or time.monotonic() > deadline:
                    return found
                self.arrived.wait(0.1)


@dataclass
class Gateway:
    base: str
    api: httpx.Client
    ca: TestCa
    store: Store
    settings: Settings
    listener: Listener
    names: Iterator[int]

    def device(self, name: str | None = None, *, max_kw: str = "10") -> tuple[Sep2Client, str]:
        """A provisioned device (its own certificate, a resource carrying its LFDI and PIN) and its resource id."""
        issued, name = self.provision(name, max_kw=max_kw)
        return self.client(issued), name

    def provision(self, name: str | None = None, *, max_kw: str = "10") -> tuple[Issued, str]:
        """A device's certificate and the resource that carries its LFDI and PIN (the resource id)."""
        name = name or f"dev{next(self.names)}"
        issued = self.ca.issue(name)
        lfdi = lfdi_of_certificate(issued.der)
        resource = {
            "id": name,
            "name": f"{name} inverter",
            "kind": "pv",
            "owner_id": "ann",
            "location_id": "site-ann",
            "ratings": {"max_kw": max_kw},
            "identities": {"lfdi": lfdi, "ieee2030_5-pin": str(PIN)},
        }
        ok(self.api.post("/v1/resources", json=resource))
        return issued, name

    def client(self, issued: Issued, pin: int | None = PIN) -> Sep2Client:
        return Sep2Client(self.base, cert=issued.cert, key=issued.key, ca=self.ca.ca_file, pin=pin)


def ok(answer: httpx.Response) -> httpx.Response:
    assert answer.status_code < 300, f"{answer.request.method} {answer.request.url}: {answer.status_code} {answer.text}"
    return answer


def tls_client(ca: TestCa, issued: Issued, base: str) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(ca.ca_file))
    context.load_cert_chain(str(issued.cert), str(issued.key))
    return httpx.Client(base_url=base, verify=context, timeout=30)


def mapping_file(folder: Path) -> Path:
    base = (mappings_dir() / "ieee2030_5.yaml").read_text(encoding="utf-8").split("\ntariffs:")[0]
    path = folder / "ieee2030_5.yaml"
    path.write_text(base + TARIFF, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def listener(pki: TestCa) -> Iterator[Listener]:
    with notification_listener(pki) as box:
        yield box


@contextmanager
def notification_listener(pki: TestCa) -> Iterator[Listener]:
    """An HTTPS endpoint that keeps the Notifications POSTed to it (subscriptions need somewhere to send them)."""
    issued = pki.issue("localhost", server=True)
    box = Listener(url="")

    async def receive(request: Request) -> Response:
        body = await request.body()
        with box.arrived:
            box.bodies.append(body)
            box.arrived.notify_all()
        return Response(status_code=204)

    app = Starlette(routes=[Route("/notify/{rest:path}", receive, methods=["POST"])])
    tls = server_tls_options(str(issued.cert), str(issued.key), None, require_client=False)
    with serve_in_thread(app, **tls) as base:  # type: ignore[arg-type]
        box.url = base.replace("127.0.0.1", "localhost")
        yield box


@pytest.fixture(scope="module")
def gw(pki: TestCa, listener: Listener, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("gw")
    store = Store(f"sqlite:///{folder / 'gw.db'}")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'gw.db'}",
        market_tick_seconds=0,
        ieee2030_5_mappings=str(mapping_file(folder)),
        ieee2030_5_notify_ca=str(pki.ca_file),
        ieee2030_5_notify_backoff=0.05,
    )
    server = pki.issue("localhost", server=True)
    operator = pki.issue("operator")
    tls = server_tls_options(str(server.cert), str(server.key), str(pki.ca_file), require_client=True)
    with serve_in_thread(create_app(settings, store=store), **tls) as base:
        base = base.replace("127.0.0.1", "localhost")
        with tls_client(pki, operator, base) as api:
            for path, body in (
                ("/v1/parties", {"id": "op", "name": "Operator", "roles": ["dmo"]}),
                ("/v1/parties", {"id": "ann", "name": "Ann", "roles": ["prosumer"]}),
                ("/v1/locations", {"id": "root", "name": "Substation", "kind": "substation"}),
                ("/v1/locations", {"id": "site-ann", "name": "Ann", "kind": "service_point", "parent_id": "root"}),
                ("/v1/markets", {"id": MARKET, "operator_id": "op"}),
            ):
                ok(api.post(path, json=body))
            clearing = Clearing(
                market_id=MARKET,
                interval=Interval(start=HOUR, duration=Resolution.HOUR),
                type=ClearingType.MARGINAL_SELLER,
                price=Decimal("0.30"),
                cleared_quantity=Decimal(40),
                prices={"root": Decimal("0.30"), "site-ann": Decimal("0.1234")},
                gate_closed_at=HOUR - timedelta(minutes=5),
            )  # as the market runner stores it
            store.append(Envelope(payload=clearing, source=Source(protocol="market", peer=MARKET, native_id="c1")))
            yield Gateway(base, api, pki, store, settings, listener, iter(range(1, 10_000)))
    store.close()


def control(
    gw: Gateway,
    control_id: str,
    resource_id: str,
    *,
    priority: int = 0,
    kind: str = "limit",
    signal: str = "real_power",
    unit: str = "percent",
    value: str = "50",
    start: int = -60,
    duration: str = "PT1H",
    program_id: str | None = None,
    at: datetime | None = None,
) -> str:
    """A canonical control through POST /v1/controls (starting ``start`` seconds from now, or ``at``); returns the
    mRID its first period has on the wire as first published."""
    moment = at or datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=start)
    body: dict[str, Any] = {
        "id": control_id,
        "targets": {"resource_ids": [resource_id]},
        "kind": kind,
        "signal": signal,
        "unit": unit,
        "priority": priority,
        "periods": [{"span": {"start": moment.isoformat(), "duration": duration}, "value": value}],
    }
    if program_id:
        body["program_id"] = program_id
    ok(gw.api.post("/v1/controls", json=body))
    return mapper.control_mrid(control_id, 0, PEN)


def der_settings(set_max_w: int) -> m.DERSettings:
    value, power = mapper.scaled(Decimal(set_max_w))
    return m.DERSettings(
        setGradW=100, setMaxW=m.ActivePower(multiplier=power, value=value), updatedTime=int(time.time())
    )


def find(view: DeviceView, mrid: str) -> tuple[m.DERProgram, m.DERControl]:
    for program, found in view.controls():
        if found.mRID == mrid:
            return program, found
    raise AssertionError(f"{mrid} is not in the device's view: {[c.mRID for _p, c in view.controls()]}")


def raw(
    client: Sep2Client, method: str, path: str, body: bytes, content_type: str = codec.MEDIA_TYPE
) -> httpx.Response:
    return client.http.request(method, client.url(path), content=body, headers={"Content-Type": content_type})


def canonical(gw: Gateway, kind: str, **filters: str) -> list[dict[str, Any]]:
    return ok(gw.api.get(f"/v1/{kind}", params={"limit": 1000, **filters})).json()


# -- a. the flow ---------------------------------------------------------------------------------------------


def test_a_provisioned_device_enrols_discovers_its_control_and_its_responses_become_canonical(gw: Gateway) -> None:
    client, resource = gw.device()
    with client:
        assert client.enrol() == f"/edev/{client.sfdi}"
        mrid = control(gw, "flow-1", resource)
        view = client.discover()
        assert view.end_device.lFDI == client.lfdi and view.registration is not None
        assert abs(view.time_offset) <= 2
        program, found = find(view, mrid)
        assert program.primacy == 0 and program.description == "priority-0"
        assert found.DERControlBase.opModMaxLimW == 5000  # 50 % in hundredths
        assert found.EventStatus.currentStatus == 1  # started a minute ago
        assert found.responseRequired == "03"
        # the default program is assigned to every device and carries its DefaultDERControl
        default = next(s.default for s in view.programs if s.program.description == "Utility DER program")
        assert default is not None
        assert default.DERControlBase.opModConnect is True and default.DERControlBase.opModMaxLimW == 10000
        # the correct device answers received and started now, completed at the end (posted here by hand)
        tracker = ControlTracker(client)
        sent = tracker.update(view.programs, now=client.now() + 1)
        assert [s.status for s in sent if s.mrid == mrid] == [1, 2], (sent, view.time_offset, tracker.evaluation)
        assert (client.respond(found, 3) or "").startswith(f"/edev/{client.sfdi}/rsps/priority-0/rsp/")
        stored = canonical(gw, "responses", subject_id="flow-1")
        assert sorted(r["status"] for r in stored) == ["completed", "received", "started"]
        assert {r["resource_id"] for r in stored} == {resource}
        # and the device reads its own responses back
        responses = client.get(found.replyTo or "", m.ResponseList, params={"s": 0, "l": 10})
        assert [r.status for r in responses.Response or []][-3:] == [1, 2, 3]


def test_a_higher_precedence_control_supersedes_the_same_mode_only(gw: Gateway) -> None:
    client, resource = gw.device()
    with client:
        older = control(gw, "sup-old", resource, priority=5, start=-120)
        other_mode = control(
            gw, "sup-connect", resource, priority=5, kind="connect", signal="connect", unit="boolean", value="1"
        )
        newer = control(gw, "sup-new", resource, priority=0, start=-30)
        view = client.discover()
        statuses = {mr: c.EventStatus for _p, c in view.controls() for mr in [c.mRID]}
        assert statuses[older].currentStatus == 4
        assert statuses[newer].currentStatus == 1
        assert statuses[other_mode].currentStatus == 1  # opModConnect is not set by the newer control
        # the engine-driven device answers 7 (superseded) to the old one
        tracker = ControlTracker(client)
        sent = [(s.mrid, s.status) for s in tracker.update(view.programs, now=client.now() + 1)]
        assert (older, 7) in sent and (newer, 2) in sent and (other_mode, 2) in sent
        active = {c.mRID for state in view.programs for c in state.active}
        assert older not in active and {newer, other_mode} <= active


def test_a_cancelled_control_stays_listed_as_cancelled(gw: Gateway) -> None:
    client, resource = gw.device()
    with client:
        mrid = control(gw, "cancel-me", resource, start=600)
        assert find(client.discover(), mrid)[1].EventStatus.currentStatus == 0
        ok(gw.api.post("/v1/controls/cancel-me/cancel"))
        view = client.discover()
        _program, found = find(view, mrid)
        assert found.EventStatus.currentStatus == 2
        tracker = ControlTracker(client)
        assert [(s.mrid, s.status) for s in tracker.update(view.programs, now=client.now() + 1)] == [
            (mrid, 1),
            (mrid, 6),
        ]


def test_a_response_opting_out_becomes_a_canonical_override(gw: Gateway) -> None:
    client, resource = gw.device()
    with client:
        mrid = control(gw, "opt-out", resource)
        view = client.discover()
        _program, found = find(view, mrid)
        assert client.acknowledge(view) == 1 and client.acknowledge(view) == 0  # once per control
        assert canonical(gw, "overrides", subject_id="opt-out") == []
        client.respond(found, 4)
        [override] = canonical(gw, "overrides", subject_id="opt-out")
        assert override["mode"] == "opt_out" and override["resource_id"] == resource
        assert sorted(r["status"] for r in canonical(gw, "responses", subject_id="opt-out")) == [
            "opted_out",
            "received",
        ]


def test_an_operating_envelope_is_a_csip_aus_control_in_the_doe_program(gw: Gateway) -> None:
    client, resource = gw.device()
    with client:
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        envelope = {
            "id": "doe-1",
            "location_id": "site-ann",
            "resource_id": resource,
            "periods": [
                {
                    "span": {"start": start.isoformat(), "duration": "PT30M"},
                    "import_limit_kw": "7",
                    "export_limit_kw": "1.5",
                }
            ],
        }
        ok(gw.api.post("/v1/operating-envelopes", json=envelope))
        view = client.discover()
        [(program, found)] = [(p, c) for p, c in view.controls() if p.description == "Dynamic operating envelopes"]
        assert program.primacy == 5
        base = found.DERControlBase
        assert base.opModExpLimW is not None and base.opModImpLimW is not None
        assert mapper.kw_of(base.opModExpLimW) == Decimal("1.5") and mapper.kw_of(base.opModImpLimW) == 7
        assert found.interval.duration == 1800
        client.respond(found, 1)
        [response] = canonical(gw, "responses", subject_id="doe-1")
        assert response["subject"]["kind"] == "operating_envelope"


def statuses(view: DeviceView) -> dict[str, tuple[int, int, int]]:
    """mRID -> (currentStatus, EventStatus dateTime, creationTime) of every DERControl the device sees."""
    return {c.mRID: (c.EventStatus.currentStatus, c.EventStatus.dateTime, c.creationTime) for _p, c in view.controls()}


def test_a_an_edited_control_is_a_new_event_and_the_old_one_is_shown_cancelled(gw: Gateway) -> None:
    """2030.5 events are immutable: an edit (same id, next revision) cancels the published DERControl under its own
    mRID and publishes the new content under a new one; the old mRID still resolves to the canonical control."""
    client, resource = gw.device()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    with client:
        old = control(gw, "edit-me", resource, priority=6, value="50", at=start)
        view = client.discover()
        program, found = find(view, old)
        assert found.DERControlBase.opModMaxLimW == 5000 and found.EventStatus.currentStatus == 1
        assert program.DERControlListLink is not None
        subscribed = program.DERControlListLink.href
        client.subscribe(subscribed, f"{gw.listener.url}/notify/{client.sfdi}")
        client.respond(found, 1)

        assert control(gw, "edit-me", resource, priority=6, value="30", at=start) == old  # the helper: edition 0
        [stored] = [c for c in canonical(gw, "controls") if c["id"] == "edit-me"]
        assert stored["revision"] == 1
        new = mapper.control_mrid("edit-me", 0, PEN, 1)
        assert new != old
        view = client.discover()
        _program, was = find(view, old)
        _program, now_ = find(view, new)
        assert was.DERControlBase.opModMaxLimW == 5000  # the old event is never rewritten
        assert was.EventStatus.currentStatus == 2  # cancelled, still listed
        assert now_.DERControlBase.opModMaxLimW == 3000 and now_.EventStatus.currentStatus == 1
        cancelled_at = was.EventStatus.dateTime
        assert now_.creationTime == cancelled_at >= found.creationTime  # replaced at the moment the edit was stored
        assert was.creationTime == found.creationTime and was.interval == found.interval

        # subscribers are told: the old event cancelled and the new one, in one notification
        def replaced(notes: list[m.Notification]) -> bool:
            return any(
                n.subscribedResource == subscribed
                and isinstance(n.Resource, m.DERControlList)
                and {(c.mRID, c.EventStatus.currentStatus) for c in n.Resource.DERControl or []} >= {(old, 2), (new, 1)}
                for n in notes
            )

        assert replaced(gw.listener.wait_for(replaced)), "no Notification of the edit arrived"

        # a device that posted for the old mRID keeps posting for it: still the canonical control
        client.respond(was, 6)
        client.respond(now_, 1)
        stored_responses = canonical(gw, "responses", subject_id="edit-me")
        assert sorted(r["status"] for r in stored_responses) == ["cancelled", "received", "received"]
        # the engine-driven device: received/started for both, cancelled (6) for the old one, never superseded (7)
        sent = [(s.mrid, s.status) for s in ControlTracker(client).update(view.programs, now=client.now() + 1)]
        assert (old, 6) in sent and (new, 2) in sent and (old, 7) not in sent

        before = statuses(view)
        # re-posting the same content (a fresh created_at, no revision) changes nothing a device sees
        control(gw, "edit-me", resource, priority=6, value="30", at=start)
        assert statuses(client.discover()) == before
        # cancelling is a status change: the current event is cancelled under its own mRID, nothing new appears
        ok(gw.api.post("/v1/controls/edit-me/cancel"))
        after = statuses(client.discover())
        assert set(after) == set(before)
        assert after[old] == before[old]  # the first cancellation stands
        assert after[new][0] == 2 and after[new][2] == before[new][2]


def test_a_a_device_taken_off_a_control_sees_its_event_cancelled(gw: Gateway) -> None:
    """2030.5 events are cancelled, never deleted: a device dropped from a control's targets is shown the event it
    had cancelled (same mRID, creationTime and content) while the devices still targeted keep it active."""
    kept_client, kept = gw.device()
    dropped_client, dropped = gw.device()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)

    def post(targets: list[str]) -> None:
        body = {
            "id": "drop-me",
            "targets": {"resource_ids": targets},
            "kind": "limit",
            "signal": "real_power",
            "unit": "percent",
            "priority": 6,
            "periods": [{"span": {"start": start.isoformat(), "duration": "PT1H"}, "value": "50"}],
        }
        ok(gw.api.post("/v1/controls", json=body))

    mrid = mapper.control_mrid("drop-me", 0, PEN)
    with kept_client, dropped_client:
        post([kept, dropped])
        first = statuses(dropped_client.discover())
        assert first[mrid][0] == 1 and statuses(kept_client.discover())[mrid][0] == 1

        post([kept])  # the same content, one target fewer
        assert statuses(kept_client.discover()) == {mrid: first[mrid]}  # unchanged for the device still targeted
        view = dropped_client.discover()
        status, cancelled_at, created = statuses(view)[mrid]
        assert status == 2 and cancelled_at >= first[mrid][1] and created == first[mrid][2]
        _program, shown = find(view, mrid)
        assert shown.DERControlBase.opModMaxLimW == 5000  # the event itself is not rewritten
        dropped_client.respond(shown, 6)  # its acknowledgement still reaches the canonical control
        assert [r["status"] for r in canonical(gw, "responses", subject_id="drop-me")] == ["cancelled"]

        post([kept])  # a re-post changes nothing for either device
        assert statuses(dropped_client.discover())[mrid] == (status, cancelled_at, created)


def test_a_an_edited_operating_envelope_replaces_only_the_changed_period(gw: Gateway) -> None:
    client, resource = gw.device()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)

    def envelope(export_kw: str) -> dict[str, Any]:
        return {
            "id": "doe-edit",
            "location_id": "site-ann",
            "resource_id": resource,
            "periods": [
                {
                    "span": {"start": start.isoformat(), "duration": "PT30M"},
                    "import_limit_kw": "7",
                    "export_limit_kw": "2",
                },
                {
                    "span": {"start": (start + timedelta(minutes=30)).isoformat(), "duration": "PT30M"},
                    "import_limit_kw": "7",
                    "export_limit_kw": export_kw,
                },
            ],
        }

    first, second = mapper.envelope_mrid("doe-edit", 0, PEN), mapper.envelope_mrid("doe-edit", 1, PEN)
    with client:
        ok(gw.api.post("/v1/operating-envelopes", json=envelope("1.5")))
        view = client.discover()
        assert {mr: s[0] for mr, s in statuses(view).items() if mr in (first, second)} == {first: 1, second: 0}
        _program, old = find(view, second)
        client.respond(old, 1)
        ok(gw.api.post("/v1/operating-envelopes", json=envelope("0.5")))  # the second period's export limit
        view = client.discover()
        new = mapper.envelope_mrid("doe-edit", 1, PEN, 1)
        seen = statuses(view)
        assert seen[first][0] == 1 and seen[second][0] == 2 and seen[new][0] == 0  # the first period is untouched
        _program, was = find(view, second)
        _program, now_ = find(view, new)
        assert was.DERControlBase.opModExpLimW is not None and now_.DERControlBase.opModExpLimW is not None
        assert mapper.kw_of(was.DERControlBase.opModExpLimW) == Decimal("1.5")
        assert mapper.kw_of(now_.DERControlBase.opModExpLimW) == Decimal("0.5")
        client.respond(was, 6)  # to the replaced event: still the envelope
        responses = canonical(gw, "responses", subject_id="doe-edit")
        assert sorted(r["status"] for r in responses) == ["cancelled", "received"]
        assert {r["subject"]["kind"] for r in responses} == {"operating_envelope"}


# -- b. bad input -------------------------------------------------------------------------------------------------


def refused(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(codec.MEDIA_TYPE)
    assert isinstance(codec.decode(answer.content), m.Error)
    reason = answer.headers.get("X-Error-Reason", "")
    assert reason
    return reason


@pytest.fixture(scope="module")
def enrolled(gw: Gateway) -> Iterator[tuple[Sep2Client, str, DeviceView]]:
    client, resource = gw.device()
    mrid = control(gw, "bad-input", resource)
    with client:
        yield client, mrid, client.discover()


def test_b_malformed_xml_and_wrong_media_type_are_400_with_an_error_body(
    enrolled: tuple[Sep2Client, str, DeviceView],
) -> None:
    client, _mrid, _view = enrolled
    refused(raw(client, "POST", "/edev", b"<EndDevice xmlns='urn:ieee:std:2030.5:ns'><sFDI>"), 400)
    good = codec.encode(m.EndDevice(sFDI=client.sfdi, lFDI=client.lfdi, changedTime=0))
    assert "Content-Type" in refused(raw(client, "POST", "/edev", good, "application/xml"), 400)
    assert "EndDevice" in refused(raw(client, "POST", "/edev", codec.encode(m.Error(reasonCode=0))), 400)


def test_b_an_oversized_body_is_413(enrolled: tuple[Sep2Client, str, DeviceView]) -> None:
    client, _mrid, _view = enrolled
    body = b"<EndDevice xmlns='urn:ieee:std:2030.5:ns'>" + b" " * (65 * 1024) + b"</EndDevice>"
    refused(raw(client, "POST", "/edev", body), 413)


def test_b_an_unknown_certificate_and_another_devices_paths_are_403(
    gw: Gateway, enrolled: tuple[Sep2Client, str, DeviceView]
) -> None:
    client, _mrid, _view = enrolled
    stranger = gw.client(gw.ca.issue("stranger"))
    with stranger, pytest.raises(Sep2ClientError) as caught:
        stranger.discover()
    assert caught.value.status == 403 and "not registered" in (caught.value.reason or "")
    other, _resource = gw.device()
    with other:
        refused(client.http.get(client.url(f"/edev/{other.sfdi}")), 403)
        refused(client.http.get(client.url(f"/edev/{other.sfdi}/derp")), 403)
        sub = m.Subscription(
            subscribedResource=f"/edev/{other.sfdi}/derp",
            encoding=0,
            level="-S1",
            limit=1,
            notificationURI="https://x/",
        )
        refused(raw(client, "POST", f"/edev/{other.sfdi}/sub", codec.encode(sub)), 403)


def test_b_a_device_offering_only_the_suite_2030_5_requires_is_served(gw: Gateway) -> None:
    """TLS 1.2 with TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 and nothing else, as strict device stacks offer: Python's
    default suites leave CCM out, so unless the gateway adds it this handshake fails with "no shared cipher"."""
    issued, _resource = gw.provision()
    sfdi = sfdi_of_lfdi(lfdi_of_certificate(issued.der))
    context = sep2_only_client(str(gw.ca.ca_file), str(issued.cert), str(issued.key))
    host, port = urlsplit(gw.base).hostname or "", urlsplit(gw.base).port or 443
    with (
        socket.create_connection((host, port), timeout=10) as plain,
        context.wrap_socket(plain, server_hostname=host) as tls,
    ):
        assert (tls.version(), tls.cipher()[0]) == ("TLSv1.2", SEP2_SUITE)
        tls.sendall(f"GET /edev/{sfdi} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:300]
    assert codec.decode(body, m.EndDevice).sFDI == sfdi


def test_b_a_wrong_pin_is_an_error_the_device_reports(gw: Gateway) -> None:
    issued = gw.ca.issue("pin-check")
    lfdi = lfdi_of_certificate(issued.der)
    resource = {"id": "pin-check", "name": "p", "kind": "pv", "owner_id": "ann", "location_id": "site-ann"}
    ok(gw.api.post("/v1/resources", json={**resource, "identities": {"lfdi": lfdi, "ieee2030_5-pin": "222220"}}))
    with gw.client(issued) as client, pytest.raises(Sep2ClientError, match="PIN 222220"):
        client.discover()


def test_b_foreign_identities_in_bodies_are_403(enrolled: tuple[Sep2Client, str, DeviceView]) -> None:
    client, mrid, view = enrolled
    foreign = "0" * 40
    body = codec.encode(m.EndDevice(sFDI=sfdi_of_lfdi(foreign), lFDI=foreign, changedTime=0))
    refused(raw(client, "POST", "/edev", body), 403)
    _program, found = find(view, mrid)
    response = m.DERControlResponse(createdDateTime=0, endDeviceLFDI=foreign, status=1, subject=mrid)
    refused(raw(client, "POST", found.replyTo or "", codec.encode(response)), 403)


def test_b_a_response_to_an_unknown_subject_is_400_and_stores_nothing(
    gw: Gateway, enrolled: tuple[Sep2Client, str, DeviceView]
) -> None:
    client, mrid, view = enrolled
    _program, found = find(view, mrid)
    before = len(canonical(gw, "responses"))
    unknown = "ABCDEF" * 5 + "AB"
    response = m.DERControlResponse(
        createdDateTime=int(time.time()), endDeviceLFDI=client.lfdi, status=1, subject=unknown
    )
    assert unknown in refused(raw(client, "POST", found.replyTo or "", codec.encode(response)), 400)
    assert len(canonical(gw, "responses")) == before


# -- c. subscriptions --------------------------------------------------------------------------------------


def test_c_a_subscriber_is_notified_of_a_new_control_without_polling(gw: Gateway) -> None:
    client, resource = gw.device()
    with client:
        first = control(gw, "sub-1", resource, priority=7)
        view = client.discover()
        program, _found = find(view, first)
        assert program.DERControlListLink is not None
        subscribed = program.DERControlListLink.href
        location = client.subscribe(subscribed, f"{gw.listener.url}/notify/{client.sfdi}")
        assert location.startswith(f"/edev/{client.sfdi}/sub/")
        second = control(gw, "sub-2", resource, priority=7, start=300)

        def has_second(found: list[m.Notification]) -> bool:
            return any(
                n.subscribedResource == subscribed
                and isinstance(n.Resource, m.DERControlList)
                and second in {c.mRID for c in n.Resource.DERControl or []}
                for n in found
            )

        notifications = gw.listener.wait_for(has_second)
        assert has_second(notifications), "no Notification with the new control arrived (and no request was made)"
        [notification] = [n for n in notifications if n.subscribedResource == subscribed]
        assert notification.subscriptionURI == location and notification.status == 0


def test_c_a_subscriber_is_notified_when_a_control_becomes_active_with_time(gw: Gateway) -> None:
    """Nothing is stored when a control's start passes, yet its status changes: the server's clock notices."""
    client, resource = gw.device()
    with client:
        soon = control(gw, "sub-soon", resource, priority=8, start=3)
        view = client.discover()
        program, found = find(view, soon)
        assert found.EventStatus.currentStatus == 0 and program.DERControlListLink is not None
        subscribed = program.DERControlListLink.href
        client.subscribe(subscribed, f"{gw.listener.url}/notify/{client.sfdi}")

        def active(found: list[m.Notification]) -> bool:
            return any(
                n.subscribedResource == subscribed
                and isinstance(n.Resource, m.DERControlList)
                and any(c.mRID == soon and c.EventStatus.currentStatus == 1 for c in n.Resource.DERControl or [])
                for n in found
            )

        assert active(gw.listener.wait_for(active, timeout=15)), "no Notification when the control became active"


# -- d. restart -------------------------------------------------------------------------------------------------


def test_d_a_restarted_server_keeps_settings_subscriptions_and_mirrors(gw: Gateway, tmp_path: Path) -> None:
    settings = dataclasses.replace(gw.settings, database_url=f"sqlite:///{tmp_path / 'restart.db'}")
    server = gw.ca.issue("localhost", server=True)
    issued = gw.ca.issue("restart-dev")
    lfdi = lfdi_of_certificate(issued.der)
    tls = server_tls_options(str(server.cert), str(server.key), str(gw.ca.ca_file), require_client=True)
    resource = {
        "id": "restart-dev",
        "name": "r",
        "kind": "pv",
        "owner_id": "ann",
        "location_id": "site-ann",
        "identities": {"lfdi": lfdi, "ieee2030_5-pin": str(PIN)},
    }
    with serve_in_thread(create_app(settings), **tls) as base:
        base = base.replace("127.0.0.1", "localhost")
        with tls_client(gw.ca, issued, base) as api:
            ok(api.post("/v1/parties", json={"id": "ann", "name": "Ann", "roles": ["prosumer"]}))
            ok(api.post("/v1/locations", json={"id": "site-ann", "name": "Ann", "kind": "service_point"}))
            ok(api.post("/v1/resources", json=resource))
        with Sep2Client(base, cert=issued.cert, key=issued.key, ca=gw.ca.ca_file) as client:
            client.discover()
            client.put_der_settings(der_settings(8000))
            location = client.subscribe(f"/edev/{client.sfdi}/derp", f"{gw.listener.url}/notify/restart")
            mup = client.mirror(client.mirror_usage_point("0123456789ABCDEF0123456789ABCDEF"))
    with serve_in_thread(create_app(settings), **tls) as base:
        base = base.replace("127.0.0.1", "localhost")
        with Sep2Client(base, cert=issued.cert, key=issued.key, ca=gw.ca.ca_file) as client:
            client.discover()
            der = client.der()
            assert der.DERSettingsLink is not None
            settings_back = client.get(der.DERSettingsLink.href, m.DERSettings)
            assert mapper.unscaled(settings_back.setMaxW.value, settings_back.setMaxW.multiplier) == 8000
            subscription = client.get(location, m.Subscription)
            assert subscription.subscribedResource == f"/edev/{client.sfdi}/derp"
            mirror = client.get(mup, m.MirrorUsagePoint)
            assert mirror.mRID == "0123456789ABCDEF0123456789ABCDEF" and mirror.deviceLFDI == lfdi


def test_d_a_restarted_server_shows_edited_controls_and_envelopes_as_before(gw: Gateway, tmp_path: Path) -> None:
    """Editions, cancellations and their times come from the log: a new process serves exactly the same events."""
    settings = dataclasses.replace(gw.settings, database_url=f"sqlite:///{tmp_path / 'edits.db'}")
    server = gw.ca.issue("localhost", server=True)
    issued = gw.ca.issue("edits-dev")
    tls = server_tls_options(str(server.cert), str(server.key), str(gw.ca.ca_file), require_client=True)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    resource = {
        "id": "edits-dev",
        "name": "e",
        "kind": "pv",
        "owner_id": "ann",
        "location_id": "site-ann",
        "ratings": {"max_kw": "10"},
        "identities": {"lfdi": lfdi_of_certificate(issued.der), "ieee2030_5-pin": str(PIN)},
    }

    def limit(
        control_id: str, value: str, mode: tuple[str, str, str] = ("limit", "real_power", "percent")
    ) -> dict[str, Any]:
        kind, signal, unit = mode  # different modes: neither supersedes the other
        return {
            "id": control_id,
            "targets": {"resource_ids": ["edits-dev"]},
            "kind": kind,
            "signal": signal,
            "unit": unit,
            "priority": 3,
            "periods": [{"span": {"start": start.isoformat(), "duration": "PT1H"}, "value": value}],
        }

    def doe(export_kw: str) -> dict[str, Any]:
        span = {"start": start.isoformat(), "duration": "PT30M"}
        return {
            "id": "doe-r",
            "location_id": "site-ann",
            "resource_id": "edits-dev",
            "periods": [{"span": span, "import_limit_kw": "5", "export_limit_kw": export_kw}],
        }

    with serve_in_thread(create_app(settings), **tls) as base:
        base = base.replace("127.0.0.1", "localhost")
        with (
            tls_client(gw.ca, issued, base) as api,
            Sep2Client(base, cert=issued.cert, key=issued.key, ca=gw.ca.ca_file) as client,
        ):
            ok(api.post("/v1/parties", json={"id": "ann", "name": "Ann", "roles": ["prosumer"]}))
            ok(api.post("/v1/locations", json={"id": "site-ann", "name": "Ann", "kind": "service_point"}))
            ok(api.post("/v1/resources", json=resource))
            for body in (limit("r-edit", "50"), limit("r-cancel", "1", ("connect", "connect", "boolean"))):
                ok(api.post("/v1/controls", json=body))
            ok(api.post("/v1/operating-envelopes", json=doe("2")))
            client.discover()
            time.sleep(1.1)  # the edits are stored in a later second than the first versions
            ok(api.post("/v1/controls", json=limit("r-edit", "20")))
            ok(api.post("/v1/operating-envelopes", json=doe("1")))
            ok(api.post("/v1/controls/r-cancel/cancel"))
            before = statuses(client.discover())
    assert len(before) == 5  # r-edit twice, r-cancel, doe-r twice
    expected = {
        mapper.control_mrid("r-edit", 0, PEN): 2,
        mapper.control_mrid("r-edit", 0, PEN, 1): 1,
        mapper.control_mrid("r-cancel", 0, PEN): 2,
        mapper.envelope_mrid("doe-r", 0, PEN): 2,
        mapper.envelope_mrid("doe-r", 0, PEN, 1): 1,
    }
    assert {mrid: status[0] for mrid, status in before.items()} == expected
    with serve_in_thread(create_app(settings), **tls) as base:
        base = base.replace("127.0.0.1", "localhost")
        with Sep2Client(base, cert=issued.cert, key=issued.key, ca=gw.ca.ca_file) as client:
            assert statuses(client.discover()) == before


def test_d_the_index_replays_editions_from_the_log_as_it_saw_them_live(tmp_path: Path) -> None:
    """The index's histories are a function of the log: one that followed every version live and one loaded
    afterwards (a restart) hold the same events, editions, creation and cancellation times."""
    store = Store(f"sqlite:///{tmp_path / 'index.db'}")
    now = datetime.now(UTC).replace(microsecond=0)
    stored = iter(range(100))

    def limit(control_id: str, value: str, start: datetime, **more: Any) -> Control:
        span = TimeSpan(start=start, duration=timedelta(hours=1))
        return Control(
            id=control_id,
            targets=ControlTargets(broadcast=True),
            kind="limit",
            signal="real_power",
            unit="percent",
            periods=[ControlPeriod(span=span, value=Decimal(value))],
            **{"created_at": now - timedelta(hours=4), **more},
        )

    def put(payload: Control) -> None:
        source = Source(protocol="test", peer="t", native_id=payload.id, version=str(next(stored)))
        store.append(Envelope(payload=payload, source=source))

    def seen(index: CanonicalIndex) -> dict[Any, list[tuple[Any, ...]]]:
        def events(history: History) -> list[tuple[Any, ...]]:
            return [(e.edition, e.fingerprint, e.version.revision) for e in history.shown()]

        return {key: events(history) for key, history in index.histories.items()}

    try:
        put(limit("gone", "50", now - timedelta(hours=3)))  # ended before the index loads: not in memory
        live = CanonicalIndex(store, None)
        live.catch_up()
        assert seen(live) == {}
        put(limit("c", "50", now))
        live.catch_up()
        put(limit("c", "50", now, revision=0, created_at=now))  # a re-post: new created_at, same content
        live.catch_up()
        put(limit("c", "30", now, revision=1))  # an edit
        live.catch_up()
        put(limit("c", "30", now, revision=2, status=ControlStatus.CANCELLED))
        live.catch_up()
        put(limit("c", "30", now, revision=3))  # reinstated: a new event, the cancelled one is not revived
        live.catch_up()
        put(limit("gone", "50", now + timedelta(hours=1), revision=1))  # edited back to life, not in memory
        live.catch_up()
        history = live.histories[(MessageKind.CONTROL, "c")]
        numbers = [(e.edition.number, e.edition.cancelled_at is not None) for e in history.shown()]
        assert numbers == [(0, True), (1, True), (2, False)]
        first, second, third = history.shown()
        assert first.edition.creation_time == int((now - timedelta(hours=4)).timestamp())  # the first created_at
        assert second.edition.creation_time == first.edition.cancelled_at  # replaced at once
        assert third.edition.creation_time == second.edition.cancelled_at
        assert live.cancelled_at["c"] == second.edition.cancelled_at
        [revived] = live.histories[(MessageKind.CONTROL, "gone")].shown()  # the old edition ended beyond the grace
        assert revived.edition.number == 1 and revived.edition.cancelled_at is None
        restarted = CanonicalIndex(store, None)
        restarted.catch_up()
        assert seen(restarted) == seen(live)
        assert restarted.cancelled_at == live.cancelled_at
    finally:
        store.close()


def test_d_devices_taken_off_and_put_back_see_one_event_each(tmp_path: Path) -> None:
    """Per device, one event per edition: live while targeted, else the cancelled copy from when it was last taken
    off; a content edit after that is not shown to a device no longer targeted. Replayed after a restart alike."""
    store = Store(f"sqlite:///{tmp_path / 'targets.db'}")
    now = datetime.now(UTC).replace(microsecond=0)
    stored = iter(range(100))
    a, b = (Device(f"{n:040X}", n, f"res-{n}", "ann", "site-ann", f"dev {n}", None, None, 0) for n in (1, 2))

    def put(value: str, *targets: Device) -> None:
        control = Control(
            id="c",
            targets=ControlTargets(resource_ids=[d.resource_id for d in targets]),
            kind="limit",
            signal="real_power",
            unit="percent",
            periods=[ControlPeriod(span=TimeSpan(start=now, duration=timedelta(hours=1)), value=Decimal(value))],
            created_at=now - timedelta(hours=1),
        )
        source = Source(protocol="test", peer="t", native_id="c", version=str(next(stored)))
        store.append(Envelope(payload=control, source=source))
        index.catch_up()

    def shown(index: CanonicalIndex, device: Device) -> list[tuple[int, bool]]:
        return sorted((e.edition.number, e.edition.cancelled_at is not None) for e in index.events_for(device))

    index = CanonicalIndex(store, None)
    try:
        put("50", a, b)
        assert shown(index, a) == shown(index, b) == [(0, False)]
        put("50", a)  # b taken off
        assert shown(index, a) == [(0, False)] and shown(index, b) == [(0, True)]
        put("50", a, b)  # put back: the live event again (2030.5 has no way to re-announce a cancelled one)
        assert shown(index, b) == [(0, False)]
        put("50", a)  # taken off again: still one event for b
        assert shown(index, b) == [(0, True)]
        put("30", a)  # an edit b is not targeted by: a sees edition 0 cancelled and 1 live, b nothing new
        assert shown(index, a) == [(0, True), (1, False)] and shown(index, b) == [(0, True)]
        restarted = CanonicalIndex(store, None)
        restarted.catch_up()
        for device in (a, b):
            assert shown(restarted, device) == shown(index, device)
    finally:
        store.close()


# -- e. settings, metering, paging, pricing ------------------------------------------------------------------


def test_e_a_kw_limit_is_a_share_of_the_setmaxw_the_device_reports(gw: Gateway) -> None:
    client, resource = gw.device(max_kw="10")
    with client:
        mrid = control(gw, "kw-limit", resource, unit="kW", value="3")
        assert find(client.discover(), mrid)[1].DERControlBase.opModMaxLimW == 3000  # 3 of 10 kW (rating)
        client.put_der_settings(der_settings(4000))
        assert find(client.discover(), mrid)[1].DERControlBase.opModMaxLimW == 7500  # 3 of 4 kW (setMaxW)


def test_e_mirrored_power_becomes_a_canonical_delivery(gw: Gateway) -> None:
    client, resource = gw.device()
    with client:
        client.discover()
        start = (int(time.time()) // 300 - 3) * 300
        mup = client.mirror_usage_point("00000000000000000000000000ABCDEF")
        readings = [average_power_reading("A1", start, 300, 2500), average_power_reading("A2", start + 300, 300, -1200)]
        client.mirror(mup, readings)
        deliveries = {d["interval"]["start"][:19]: d for d in canonical(gw, "deliveries", resource_id=resource)}
        first = deliveries[datetime.fromtimestamp(start, UTC).isoformat()[:19]]
        second = deliveries[datetime.fromtimestamp(start + 300, UTC).isoformat()[:19]]
        assert Decimal(first["quantity"]) == Decimal("2.5") and Decimal(second["quantity"]) == Decimal("-1.2")
        with pytest.raises(Sep2ClientError) as caught:  # 7 minutes is not a market interval
            client.mirror(mup, [average_power_reading("A3", start, 420, 100)])
        assert caught.value.status == 400 and "420" in (caught.value.reason or "")


def test_e_control_lists_page_with_s_and_l(gw: Gateway) -> None:
    client, resource = gw.device()
    with client:
        mrids = {control(gw, f"page-{i}", resource, priority=9, start=600 + i * 3600) for i in range(5)}
        view = client.discover()
        program, _found = find(view, next(iter(mrids)))
        href = program.DERControlListLink.href if program.DERControlListLink else ""
        pages = [client.get(href, m.DERControlList, params={"s": s, "l": 2}) for s in (0, 2, 4, 6)]
        assert [p.all for p in pages] == [5, 5, 5, 5] and [p.results for p in pages] == [2, 2, 1, 0]
        seen = [c.mRID for p in pages for c in p.DERControl or []]
        assert set(seen) == mrids and len(seen) == 5
        assert [c.interval.start for p in pages for c in p.DERControl or []] == sorted(
            c.interval.start for p in pages for c in p.DERControl or []
        )
        assert {c.mRID for _p, c in view.controls()} >= mrids  # the client paged through them all
        refused(client.http.get(client.url(href), params={"s": "x"}), 400)


def test_e_the_cleared_price_at_the_devices_site_is_a_time_tariff_interval(gw: Gateway) -> None:
    client, _resource = gw.device()
    with client:
        view = client.discover()
        [tariff] = view.tariffs
        assert tariff.profile.currency == 840 and tariff.profile.pricePowerOfTenMultiplier == -4
        assert client.prices(view) == [(int(HOUR.timestamp()), 3600, Decimal("0.1234"))]


# -- f. units -----------------------------------------------------------------------------------------------------


def test_f_sfdi_of_the_standards_example() -> None:
    lfdi = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
    assert sfdi_of_lfdi(lfdi) == 167261211391
    assert sfdi_is_valid(167261211391) and not sfdi_is_valid(167261211392)


def test_f_time_knows_daylight_saving_in_los_angeles() -> None:
    dst_start = int(datetime(2026, 3, 8, 10, tzinfo=UTC).timestamp())
    fields = time_fields(dst_start + 3600, "America/Los_Angeles")
    assert fields.dst_start == dst_start
    assert fields.tz_offset == -8 * 3600 and fields.dst_offset == 3600
    assert fields.local_time == dst_start + 3600 - 7 * 3600


def test_f_a_bad_mapping_entry_is_named(tmp_path: Path) -> None:
    text = (mappings_dir() / "ieee2030_5.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("encoding: signed_percent", "encoding: signed_percnt"), encoding="utf-8")
    with pytest.raises(TableError, match=r"bad\.yaml: controls\.2\.encoding"):
        load_table(bad)


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=3, allow_nan=False, allow_infinity=False))
def test_f_scaled_is_exact_whenever_16_bits_allow_it(value: Decimal) -> None:
    integer, power = mapper.scaled(value)
    assert -32768 <= integer <= 32767
    back = mapper.unscaled(integer, power)
    digits = value.normalize().as_tuple().digits
    if len(digits) <= 4 or abs(int("".join(map(str, digits)))) <= 32767:
        assert back == value
    else:
        assert abs(back - value) <= Decimal(10) ** power / 2


def tgw(*args: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args, "-"], input=data, capture_output=True, timeout=60, check=False
    )


def test_f_translate_a_der_control_to_canonical_and_back() -> None:
    now = 1_780_000_000
    der = m.DERControl(
        mRID="0123456789ABCDEF0123456789ABCDEF",
        description="curtail",
        creationTime=now,
        EventStatus=m.EventStatus(currentStatus=0, dateTime=now, potentiallySuperseded=False),
        interval=m.DateTimeInterval(start=now + 3600, duration=1800),
        DERControlBase=m.DERControlBase(opModFixedW=-2500),
    )
    there = tgw("translate", "--from", "ieee2030_5", "--to", "canonical", data=codec.encode(der))
    assert there.returncode == 0, there.stderr.decode()
    assert b"setpoint" in there.stdout and b"-25" in there.stdout
    back = tgw("translate", "--from", "canonical", "--to", "ieee2030_5", data=there.stdout)
    assert back.returncode == 0, back.stderr.decode()
    found = codec.decode(back.stdout)
    controls = found.DERControl if isinstance(found, m.DERControlList) else [found]
    [again] = [c for c in controls if isinstance(c, m.DERControl)]
    assert again.DERControlBase.opModFixedW == -2500
    assert (again.interval.start, again.interval.duration) == (now + 3600, 1800)
    refused_ = tgw(
        "translate", "--from", "ieee2030_5", "--to", "canonical", data=codec.encode(m.DeviceCapability(href="/dcap"))
    )
    assert refused_.returncode == 1 and refused_.stderr
