"""The northbound VEN bridge against a real utility VTN: openleadr's OpenADRServer on loopback, with the bridge
(openleadr's OpenADRClient inside) registered to it as the VEN of party "ann".

Events added on the utility's side arrive as canonical Controls (or, for a price_adder program, a price Tender);
the bridge's optIn/optOut are what the utility's server receives in oadrCreatedEvent; cancelling on the utility's
side (explicitly, or by leaving an event out of the event list) cancels the canonical object; an override made
later reaches the utility as an oadrCreateOpt; the party's deliveries are its telemetry reports.

openleadr's VTN does not route EiOpt at all (its OptService exists, is not mounted, and its handler is a stub), so
the utility here mounts that service itself and supplies the handler: the oadrCreateOpt still goes through
openleadr's VTN request handling (schema validation, parsing) before the test sees it.

The tests poll explicitly (the client's ``_poll``) and the utility asks for an hourly poll, so nothing depends on
the scheduler's timing.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from certs import TestCa
from openleadr import OpenADRServer
from openleadr import utils as oadr_utils
from openleadr.messaging import parse_message
from openleadr.service import OptService, VTNService
from typer.testing import CliRunner

from gateway.bus import Bus
from gateway.cli_bridge import bridge_app
from gateway.ingest import Ingestor
from gateway.model import (
    Control,
    ControlKind,
    ControlSignal,
    ControlStatus,
    ControlUnit,
    Envelope,
    MessageKind,
    Tender,
    TenderStatus,
)
from gateway.protocols.openadr2b import codec
from gateway.protocols.openadr2b.bridge import Received, VenBridge
from gateway.protocols.openadr2b.from_openleadr import event_from_openleadr, is_test_event
from gateway.protocols.openadr2b.messages import (
    EiResponse,
    Event,
    EventSignal,
    EventStatus,
    OadrMessage,
    Payload,
    SignalInterval,
    Target,
)
from gateway.protocols.openadr2b.table import MappingTable, TableError, default_table, load_table
from gateway.protocols.openadr2b.vens import short_fingerprint
from gateway.store import Store

VEN_ID = "ven-gw"
PEAK = "http://utility.example.com/programs/peak"
PRICE = "http://utility.example.com/programs/price"
CURTAIL = "http://utility.example.com/programs/curtail"
NOW = datetime.now(UTC)
START = NOW.replace(minute=NOW.minute - NOW.minute % 15, second=0, microsecond=0) + timedelta(hours=2)
M15 = timedelta(minutes=15)


def env(object_type: str, /, **payload: Any) -> Envelope:
    return Envelope.model_validate({"payload": {"object_type": object_type, **payload}})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bridge_table() -> MappingTable:
    raw = default_table().model_dump(mode="json")
    raw["programs"] = [
        {"program_id": "peak", "market_context": PEAK},
        {
            "program_id": "price",
            "market_context": PRICE,
            "market_id": "retail",
            "utility_party_id": "utility",
            "location_id": "feeder",
            "simple_levels": {
                "mode": "price_adder",
                "base_price": "0.12",
                "adder": {1: "0.05", 2: "0.15", 3: "0.40"},
                "tender_quantity_kw": "1000",
            },
        },
        {
            "program_id": "curtail",
            "market_context": CURTAIL,
            "simple_levels": {
                "mode": "curtailment",
                "site_import_kw": "10",
                "curtailment_kw": {1: "2", 2: "5", 3: "10"},
            },
        },
    ]
    return MappingTable.model_validate(raw)


@pytest.fixture(autouse=True)
def _openleadr_globals() -> Iterator[None]:
    """OpenADRServer configures signing and VEN lookup on the VTNService *class*: put back what was there."""
    names = ("verify_message_signatures", "_create_message", "ven_lookup", "fingerprint_lookup")
    saved = {name: VTNService.__dict__[name] for name in names if name in VTNService.__dict__}
    yield
    for name in names:
        if name in VTNService.__dict__:
            delattr(VTNService, name)
    for name, value in saved.items():
        setattr(VTNService, name, value)


@pytest.fixture
def seeded(store: Store) -> Store:
    Ingestor(store).ingest_sync(
        [
            env("party", id="ann", name="Ann", roles=["prosumer"]),
            env("party", id="utility", name="Valley Power", roles=["utility"]),
            env("party", id="operator", name="Market operator", roles=["dmo"]),
            env("location", id="feeder", name="Feeder 7", kind="feeder"),
            env("location", id="sp-ann", name="Ann's meter", kind="service_point", parent_id="feeder"),
            env("resource", id="ann-hvac", name="Heat pump", kind="heat_pump", owner_id="ann", location_id="sp-ann"),
            env("resource", id="ann-ev", name="EV charger", kind="ev_charger", owner_id="ann", location_id="sp-ann"),
            env(
                "market",
                id="retail",
                operator_id="operator",
                resolution="PT15M",
                network_root_id="feeder",
                auto_clear=False,
            ),
        ],
        protocol="test",
        peer="seed",
    )
    return store


class Utility:
    """openleadr's OpenADRServer as the utility's VTN, recording what our VEN tells it."""

    def __init__(self, fingerprint: str | None = None, **tls: Any) -> None:
        self.port = free_port()
        self.fingerprint = fingerprint
        self.server = OpenADRServer(
            vtn_id="UTILITY",
            http_host="127.0.0.1",
            http_port=self.port,
            requested_poll_freq=timedelta(hours=1),
            ven_lookup=self._lookup,
            show_fingerprint=False,
            **tls,
        )
        self.server.add_handler("on_create_party_registration", lambda payload: (VEN_ID, "reg-1"))
        self.callbacks: list[tuple[str, str, str]] = []  # what add_event's callback was told (first answer only)
        self.answers: list[tuple[str, int, str]] = []  # every eventResponse of every oadrCreatedEvent
        self.opts: list[dict[str, Any]] = []
        events = self.server.services["event_service"]
        created = events.handlers["oadrCreatedEvent"]

        async def recording(payload: dict[str, Any]) -> Any:
            for response in payload.get("event_responses", []):
                self.answers.append((str(response["event_id"]), response["modification_number"], response["opt_type"]))
            return await created(payload)

        events.handlers["oadrCreatedEvent"] = recording
        opt_service = OptService("UTILITY")
        opt_service.handlers["oadrCreateOpt"] = self._create_opt
        self.server.app.router.add_post(f"{self.server.http_path_prefix}/EiOpt", opt_service.handler)
        self.scheme = "https" if tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/OpenADR2/Simple/2.0b"

    def _lookup(self, ven_id: str) -> dict[str, Any] | None:
        if ven_id != VEN_ID:
            return None
        return {"ven_id": VEN_ID, "ven_name": "gateway", "fingerprint": self.fingerprint, "registration_id": "reg-1"}

    async def _create_opt(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.opts.append(payload)
        return "oadrCreatedOpt", {"opt_id": payload["opt_id"]}

    def _callback(self, ven_id: str, event_id: str, opt_type: str) -> None:
        self.callbacks.append((ven_id, event_id, opt_type))

    def event(
        self, event_id: str, levels: list[tuple[int, int]], *, context: str = PEAK, start: datetime = START
    ) -> None:
        """A SIMPLE event of (minutes, level) intervals, back to back from ``start``."""
        intervals, at = [], start
        for minutes, level in levels:
            intervals.append({"dtstart": at, "duration": timedelta(minutes=minutes), "signal_payload": level})
            at += timedelta(minutes=minutes)
        self.server.add_event(
            ven_id=VEN_ID,
            signal_name="simple",  # lowercase, as openleadr's own examples send it
            signal_type="level",
            intervals=intervals,
            callback=self._callback,
            event_id=event_id,
            market_context=context,
        )

    def held(self, event_id: str) -> Any:
        return oadr_utils.find_by(self.server.events[VEN_ID], "event_descriptor.event_id", event_id)

    def changed(self) -> None:
        self.server.events_updated[VEN_ID] = True


Scenario = Callable[[Utility, VenBridge], Awaitable[None]]


def run(
    store: Store,
    scenario: Scenario,
    *,
    bus: Bus | None = None,
    utility: Callable[[], Utility] = Utility,
    **bridge: Any,
) -> list[Received]:
    """Start the utility's VTN and the bridge, play ``scenario``, stop both; returns what the bridge reported."""
    notices: list[Received] = []

    async def main() -> None:
        vtn = utility()
        await vtn.server.run()
        options: dict[str, Any] = {"table": bridge_table(), "override_check_seconds": None, **bridge}
        ven = VenBridge(store, Ingestor(store, bus), vtn_url=vtn.url, ven_name="gateway", party_id="ann", **options)
        ven.listeners.append(notices.append)
        try:
            await ven.start()
            assert ven.client.ven_id == VEN_ID and ven.vtn_id == "UTILITY"
            await scenario(vtn, ven)
        finally:
            await ven.stop()
            await vtn.server.stop()
            if bus is not None:
                await bus.close()

    asyncio.run(main())
    return notices


def control(store: Store, event_id: str) -> Control:
    found = store.get(MessageKind.CONTROL, f"ann.UTILITY.{event_id}")
    assert isinstance(found, Control), f"no control for event {event_id}"
    return found


def periods(found: Control) -> list[tuple[datetime, timedelta, Decimal | None]]:
    return [(p.span.start, p.span.duration, p.value) for p in found.periods]


# --- (a) an event arrives as a canonical control ----------------------------------------------------------------


def test_an_event_on_the_utility_vtn_arrives_as_a_canonical_control(seeded: Store) -> None:
    async def scenario(utility: Utility, bridge: VenBridge) -> None:
        utility.event("ev-1", [(15, 2), (15, 1)])
        await bridge.client._poll()

    notices = run(seeded, scenario)
    made = control(seeded, "ev-1")
    assert (made.kind, made.signal, made.unit) == (ControlKind.LEVEL, ControlSignal.DR_LEVEL, ControlUnit.LEVEL)
    assert periods(made) == [(START, M15, Decimal(2)), (START + M15, M15, Decimal(1))]
    assert made.status is ControlStatus.SCHEDULED and made.revision == 0 and made.program_id == "peak"
    assert made.targets.party_ids == ["ann"] and not made.targets.broadcast
    [stored] = seeded.query_messages(entity_id=made.id)
    assert stored.envelope.source is not None
    assert (stored.envelope.source.protocol, stored.envelope.source.peer) == ("openadr2b", "UTILITY")
    assert [(n.event_id, n.answer.value) for n in notices] == [("ev-1", "optIn")]


def test_a_curtailment_program_makes_an_import_limit(seeded: Store) -> None:
    async def scenario(utility: Utility, bridge: VenBridge) -> None:
        utility.event("cut-1", [(15, 2), (15, 3)], context=CURTAIL)
        await bridge.client._poll()

    run(seeded, scenario)
    made = control(seeded, "cut-1")
    assert (made.kind, made.signal, made.unit) == (ControlKind.LIMIT, ControlSignal.IMPORT_POWER, ControlUnit.KW)
    assert periods(made) == [(START, M15, Decimal(5)), (START + M15, M15, Decimal(0))]  # 10 kW less 5, less 10


def test_a_test_event_is_acknowledged_and_makes_nothing(seeded: Store) -> None:
    async def scenario(utility: Utility, bridge: VenBridge) -> None:
        utility.event("drill", [(30, 3)])
        utility.held("drill").event_descriptor.test_event = True
        await bridge.client._poll()
        assert utility.callbacks == [(VEN_ID, "drill", "optIn")]

    notices = run(seeded, scenario)
    assert seeded.get(MessageKind.CONTROL, "ann.UTILITY.drill") is None
    assert [(n.event_id, n.object_ids, n.note) for n in notices] == [
        ("drill", [], "test event: acknowledged, nothing made")
    ]


# --- (b) the answer follows the party's overrides -------------------------------------------------------------


def test_the_answer_is_opt_out_when_the_party_has_an_override_and_opt_in_otherwise(seeded: Store) -> None:
    later = START + timedelta(hours=1)
    Ingestor(seeded).ingest_sync(
        [
            env(
                "override",
                id="ev-away",
                party_id="ann",
                subject={"kind": "resource", "id": "ann-ev"},
                resource_id="ann-ev",
                mode="opt_out",
                span={"start": later.isoformat(), "duration": "PT2H"},
            )
        ],
        protocol="test",
        peer="seed",
    )

    async def scenario(utility: Utility, bridge: VenBridge) -> None:
        utility.event("ev-1", [(30, 2)])  # before the override's span: optIn
        utility.event("ev-2", [(30, 2)], start=later)  # during it: optOut
        await bridge.client._poll()
        assert sorted(utility.callbacks) == [(VEN_ID, "ev-1", "optIn"), (VEN_ID, "ev-2", "optOut")]
        await bridge.ingestor.ingest(
            [
                env(
                    "override",
                    id="skip-ev-1",
                    party_id="ann",
                    subject={"kind": "control", "id": "ann.UTILITY.ev-1"},
                    mode="opt_out",
                    span={"start": START.isoformat(), "duration": "PT30M"},
                )
            ],
            protocol="test",
            peer="seed",
        )
        event = utility.held("ev-1")  # the utility changes ev-1: the answer to the new version is optOut
        event.event_signals[0].intervals[0]["signal_payload"] = 3
        oadr_utils.increment_event_modification_number(event)
        utility.changed()
        await bridge.client._poll()
        assert sorted(utility.answers) == [
            ("ev-1", 0, "optIn"),
            ("ev-1", 1, "optOut"),
            ("ev-2", 0, "optOut"),
            ("ev-2", 0, "optOut"),  # unchanged, listed again with ev-1's new version: the same answer
        ]

    run(seeded, scenario)
    updated = control(seeded, "ev-1")
    assert updated.revision == 1 and periods(updated)[0][2] == Decimal(3)


# --- (c) price_adder: a price tender -------------------------------------------------------------------------


def test_a_price_adder_program_makes_a_tender_at_base_plus_adder(seeded: Store) -> None:
    async def scenario(utility: Utility, bridge: VenBridge) -> None:
        utility.event("price-1", [(30, 1), (15, 3)], context=PRICE)
        utility.event("price-2", [(15, 2)], context=PRICE, start=START + timedelta(hours=3, minutes=7))
        await bridge.client._poll()

    notices = run(seeded, scenario)
    tender = seeded.get(MessageKind.TENDER, "ann.UTILITY.price-1")
    assert isinstance(tender, Tender)
    assert (tender.market_id, tender.party_id, tender.location_id, tender.side.value) == (
        "retail",
        "utility",
        "feeder",
        "sell",
    )
    assert tender.resolution.value == "PT15M" and tender.currency == "USD" and tender.status is TenderStatus.OPEN
    assert [(r["start"], r["quantity"], r["price"]) for r in tender.rows] == [
        (START, Decimal(1000), Decimal("0.17")),
        (START + M15, Decimal(1000), Decimal("0.17")),
        (START + 2 * M15, Decimal(1000), Decimal("0.52")),
    ]
    assert seeded.get(MessageKind.CONTROL, "ann.UTILITY.price-1") is None
    # off the market's 15-minute grid: refused, answered optOut, nothing stored
    assert seeded.get(MessageKind.TENDER, "ann.UTILITY.price-2") is None
    answers = {n.event_id: n for n in notices}
    assert answers["price-1"].answer.value == "optIn"
    assert answers["price-2"].answer.value == "optOut" and "not the start of a PT15M interval" in (
        answers["price-2"].note or ""
    )


# --- (d) cancellations -----------------------------------------------------------------------------------------


def test_cancelling_on_the_utility_side_cancels_the_canonical_objects(seeded: Store) -> None:
    async def scenario(utility: Utility, bridge: VenBridge) -> None:
        utility.event("ev-1", [(30, 2)])
        utility.event("ev-2", [(30, 1)], start=START + timedelta(hours=1))
        utility.event("price-1", [(15, 2)], context=PRICE)
        await bridge.client._poll()
        assert control(seeded, "ev-1").status is ControlStatus.SCHEDULED

        utility.server.cancel_event(VEN_ID, "ev-1")  # explicit: status cancelled, modificationNumber + 1
        await bridge.client._poll()
        assert control(seeded, "ev-1").status is ControlStatus.CANCELLED

        assert not utility.held("ev-1")  # openleadr's VTN drops an event once the VEN confirmed its cancellation
        oadr_utils.pop_by(utility.server.events[VEN_ID], "event_descriptor.event_id", "ev-2")  # implied
        utility.changed()
        await bridge.client._poll()
        assert control(seeded, "ev-2").status is ControlStatus.CANCELLED

        # an error answer shaped as an event list (openleadr's VTN sends those) cancels nothing
        await bridge._after_parse("oadrDistributeEvent", {"response": {"response_code": 463}, "vtn_id": "UTILITY"})
        tender = seeded.get(MessageKind.TENDER, "ann.UTILITY.price-1")
        assert isinstance(tender, Tender) and tender.status is TenderStatus.OPEN

        utility.server.cancel_event(VEN_ID, "price-1")
        await bridge.client._poll()

    run(seeded, scenario)
    first, second = control(seeded, "ev-1"), control(seeded, "ev-2")
    assert first.revision == 1 and second.revision == 1  # the utility's modificationNumber; the gateway's bump
    tender = seeded.get(MessageKind.TENDER, "ann.UTILITY.price-1")
    assert isinstance(tender, Tender) and tender.status is TenderStatus.CANCELLED


def test_a_cancelled_event_listed_again_does_not_make_openleadr_opt_out_of_everything(seeded: Store) -> None:
    """A VTN lists a cancelled event until it ends (the gateway's own VTN does); openleadr's client then looks up an
    answer it has forgotten and opts out of every event in the message. The bridge gives it the answer back."""

    async def scenario(utility: Utility, bridge: VenBridge) -> None:
        utility.event("ev-1", [(30, 2)])
        await bridge.client._poll()
        utility.server.cancel_event(VEN_ID, "ev-1")
        cancelled = utility.held("ev-1")
        await bridge.client._poll()  # the VEN confirms; openleadr's VTN forgets the event
        utility.server.events[VEN_ID].append(cancelled)  # ...which a VTN that keeps listing it would not
        utility.event("ev-2", [(30, 1)], start=START + timedelta(hours=1))
        await bridge.client._poll()
        assert ("ev-2", 0, "optIn") in utility.answers

    run(seeded, scenario)
    assert control(seeded, "ev-1").status is ControlStatus.CANCELLED
    assert control(seeded, "ev-2").status is ControlStatus.SCHEDULED


# --- (e) an override made later: oadrCreateOpt -----------------------------------------------------------------


def test_an_override_made_after_the_event_is_sent_as_an_opt(seeded: Store) -> None:
    override = {
        "id": "skip-ev-1",
        "party_id": "ann",
        "subject": {"kind": "control", "id": "ann.UTILITY.ev-1"},
        "mode": "opt_out",
        "reason": "economic",
        "span": {"start": START.isoformat(), "duration": "PT30M"},
    }

    async def until(condition: Callable[[], bool]) -> None:
        for _ in range(200):
            if condition():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("timed out")

    async def scenario(utility: Utility, bridge: VenBridge) -> None:
        utility.event("ev-1", [(30, 2)])
        await bridge.client._poll()
        assert utility.callbacks == [(VEN_ID, "ev-1", "optIn")]
        await bridge.ingestor.ingest([env("override", **override)], protocol="api", peer="ann")  # on the bus
        await until(lambda: len(utility.opts) == 1)
        assert await bridge.sync_opts() == []  # already told
        withdrawn = {**override, "status": "withdrawn"}
        Ingestor(seeded).ingest_sync([env("override", **withdrawn)], protocol="api", peer="ann")  # not on the bus
        assert await bridge.sync_opts() == [("ev-1", "optIn")]
        assert [(o["event_id"], o["opt_type"], o["opt_reason"]) for o in utility.opts] == [
            ("ev-1", "optOut", "economic"),
            ("ev-1", "optIn", "participating"),
        ]

    run(seeded, scenario, bus=Bus())


def test_opts_reach_the_utility_with_the_event_and_reason(seeded: Store) -> None:
    async def scenario(utility: Utility, bridge: VenBridge) -> None:
        utility.event("ev-1", [(30, 2)])
        await bridge.client._poll()
        Ingestor(seeded).ingest_sync(
            [
                env(
                    "override",
                    id="away",
                    party_id="ann",
                    subject={"kind": "resource", "id": "ann-hvac"},
                    mode="opt_out",
                    reason="schedule",
                    span={"start": (START + M15).isoformat(), "duration": "PT1H"},
                )
            ],
            protocol="api",
            peer="ann",
        )
        await bridge.sync_opts()
        [opt] = utility.opts
        assert (opt["opt_type"], opt["opt_reason"], opt["event_id"], opt["modification_number"]) == (
            "optOut",
            "x-schedule",
            "ev-1",
            0,
        )
        assert opt["ven_id"] == VEN_ID

    run(seeded, scenario)


# --- reports ---------------------------------------------------------------------------------------------------


def test_telemetry_reports_carry_the_latest_delivery_in_watts(seeded: Store) -> None:
    metered = NOW.replace(minute=NOW.minute - NOW.minute % 15, second=0, microsecond=0) - M15
    Ingestor(seeded).ingest_sync(
        [
            env(
                "delivery",
                id="d1",
                party_id="ann",
                location_id="sp-ann",
                resource_id="ann-hvac",
                interval={"start": metered.isoformat(), "duration": "PT15M"},
                quantity="1.5",
            )
        ],
        protocol="test",
        peer="seed",
    )
    values: dict[str, list[tuple[datetime, float]]] = {}
    offered: list[tuple[str, str, str]] = []

    def utility() -> Utility:
        vtn = Utility()

        def on_register_report(
            ven_id: str,
            resource_id: str,
            measurement: str,
            unit: str,
            scale: str,
            min_sampling_interval: timedelta,
            max_sampling_interval: timedelta,
        ) -> tuple[Callable[[list[tuple[datetime, float]]], None], timedelta]:
            offered.append((resource_id, measurement, unit))
            return (lambda data: values.setdefault(resource_id, []).extend(data)), timedelta(seconds=10)

        vtn.server.add_handler("on_register_report", on_register_report)
        return vtn

    async def scenario(vtn: Utility, bridge: VenBridge) -> None:
        for request in bridge.client.report_requests:
            await bridge.client.update_report(request["report_request_id"])
        for _ in range(200):
            if values:
                break
            await asyncio.sleep(0.05)

    run(seeded, scenario, utility=utility)
    assert sorted(offered) == [("ann-ev", "RealPower", "W"), ("ann-hvac", "RealPower", "W")]
    assert values == {"ann-hvac": [(metered, 1500.0)]}


# --- mutual TLS and signed messages ------------------------------------------------------------------------------


def test_the_bridge_works_over_mutual_tls_with_signed_messages(seeded: Store, tmp_path: Path) -> None:
    ca = TestCa(tmp_path, kind="rsa")
    vtn_cert, ven_cert = ca.issue("utility-vtn", server=True), ca.issue("gateway-ven")

    def utility() -> Utility:
        return Utility(
            fingerprint=short_fingerprint(ven_cert.der),
            cert=str(vtn_cert.cert),
            key=str(vtn_cert.key),
            http_cert=str(vtn_cert.cert),
            http_key=str(vtn_cert.key),
            http_ca_file=str(ca.ca_file),
        )

    async def scenario(vtn: Utility, bridge: VenBridge) -> None:
        vtn.event("ev-1", [(30, 2)])
        await bridge.client._poll()
        assert vtn.callbacks == [(VEN_ID, "ev-1", "optIn")]  # the signed oadrCreatedEvent passed the VTN's checks

    run(
        seeded,
        scenario,
        utility=utility,
        cert=str(ven_cert.cert),
        key=str(ven_cert.key),
        ca_file=str(ca.ca_file),
        vtn_fingerprint=short_fingerprint(vtn_cert.der),
    )
    assert control(seeded, "ev-1").status is ControlStatus.SCHEDULED


# --- openleadr's event dicts, the table, the command line ------------------------------------------------------


def test_openleadrs_reading_of_an_event_converts_back_exactly() -> None:
    """Our codec writes an event, openleadr parses it (floats, renamed keys), and the conversion gets it back."""
    event = Event(
        event_id="42",
        modification_number=3,
        market_context=PRICE,
        created=START - timedelta(hours=1),
        status=EventStatus.FAR,
        start=START,
        duration=timedelta(hours=1),
        signals=[
            EventSignal(
                name="SIMPLE",
                type="level",
                id="s0",
                intervals=[
                    SignalInterval(uid=0, duration=timedelta(minutes=30), value=Decimal(2)),
                    SignalInterval(uid=1, duration=timedelta(minutes=30), value=Decimal(1)),
                ],
                current_value=Decimal(0),
            ),
            EventSignal(
                name="ELECTRICITY_PRICE",
                type="price",
                id="s1",
                intervals=[SignalInterval(uid=0, duration=timedelta(hours=1), value=Decimal("0.1234"))],
                current_value=Decimal(0),
            ),
        ],
        target=Target(ven_ids=[VEN_ID], resource_ids=["ann-hvac"], meter_assets=["m-1"]),
        priority=2,
        test_event="true",
        start_after=timedelta(minutes=5),
        ramp_up=timedelta(minutes=10),
        recovery=timedelta(minutes=2),
    )
    wire = codec.encode(
        OadrMessage(
            payload=Payload.DISTRIBUTE_EVENT, request_id="r", vtn_id="UTILITY", response=EiResponse(), events=[event]
        )
    )
    _, payload = parse_message(wire)
    [raw_event] = payload["events"]
    assert raw_event["event_descriptor"]["event_id"] == 42  # openleadr made the id a number
    back = event_from_openleadr(raw_event)
    assert back.event_id == "42" and back.modification_number == 3 and back.priority == 2
    assert back.signals[1].intervals[0].value == Decimal("0.1234")
    assert [i.value for i in back.signals[0].intervals] == [Decimal(2), Decimal(1)]
    assert (back.start_after, back.ramp_up, back.recovery) == (event.start_after, event.ramp_up, event.recovery)
    assert back.target.ven_ids == [VEN_ID] and back.target.resource_ids == ["ann-hvac"]
    assert back.target.meter_assets == ["m-1"]
    assert is_test_event(back)


def test_the_table_refuses_a_bridge_mode_without_what_it_needs(tmp_path: Path) -> None:
    raw, path = default_table().model_dump(mode="json"), tmp_path / "t.yaml"
    raw["programs"] = [{"program_id": "p", "market_context": "x", "simple_levels": {"mode": "price_adder"}}]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(TableError, match="tender_quantity_kw"):
        load_table(path)
    raw["programs"][0]["simple_levels"]["tender_quantity_kw"] = 5
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(TableError, match="market_id, utility_party_id, location_id"):
        load_table(path)
    raw["programs"][0]["simple_levels"] = {"mode": "curtailment"}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(TableError, match="site_import_kw"):
        load_table(path)


def test_the_command_line_explains_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    store = Store(url)
    Ingestor(store).ingest_sync([env("party", id="ann", name="Ann", roles=["prosumer"])], protocol="t", peer="t")
    store.close()
    runner = CliRunner()
    base = ["openadr2b", "--vtn-url", f"http://127.0.0.1:{free_port()}/OpenADR2/Simple/2.0b", "--ven-name", "gw"]

    unknown = runner.invoke(bridge_app, [*base, "--party", "nobody", "--database-url", url])
    assert unknown.exit_code == 2 and "unknown party 'nobody'" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1

    half = runner.invoke(bridge_app, [*base, "--party", "ann", "--database-url", url, "--cert", str(tmp_path)])
    assert half.exit_code == 2 and "--cert and --key" in half.stderr

    unreachable = runner.invoke(bridge_app, [*base, "--party", "ann", "--database-url", url])
    assert unreachable.exit_code == 1 and "did not register" in unreachable.stderr
