"""`tgw demo`: a guided scenario on the embedded default (SQLite, no broker).

It starts the real gateway on a loopback port and drives it over HTTP as a client would: a utility, an
aggregator and three households on one feeder, their DER, a day of tenders and two controls. It shows the
house rules at work (duplicates recognised, bad input refused with reasons and recorded) and ends with a
summary of what was stored and published. Later issues extend this scenario with the protocol adapters.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.tree import Tree

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.config import Settings
from gateway.demo_der import smart_inverter
from gateway.demo_ei import IDENTITIES as EI_IDENTITIES
from gateway.demo_ei import report_position, tender_peak
from gateway.demo_ieee13 import write_ieee13
from gateway.demo_market import DEPOT, OPERATOR, clear_and_settle, depot_tender, market, subscription
from gateway.demo_openadr import legacy_ven, write_mapping
from gateway.demo_overrides import override_cost, write_policy
from gateway.model import LocationKind

MARKET = "maple-dam"
MARKET_ZONE = "America/Los_Angeles"

PARTIES = [
    {"id": "valley-power", "name": "Valley Power & Light", "roles": ["utility", "dso"]},
    {"id": "gridshare", "name": "GridShare Aggregation", "roles": ["aggregator"]},
    {"id": "ana", "name": "Ana Lima (rooftop PV + battery)", "roles": ["prosumer"]},
    {"id": "ben", "name": "Ben Okafor (EV)", "roles": ["consumer"]},
    {"id": "chen", "name": "Chen Wei (heat pump)", "roles": ["consumer"]},
    {"id": "maple-solar", "name": "Maple Community Solar", "roles": ["producer"], "identities": EI_IDENTITIES},
    OPERATOR,
]

FEEDER = "fdr-ieee13nodeckt"
SMALL_TRANSFORMER = "xf-xfm1"  # IEEE 13's 500 kVA 4.16/0.48 kV transformer at bus 634
SUBSTATION_TRANSFORMER = "xf-sub"

# The households and the solar array join the IEEE 13 feeder as service points of their own.
HOUSEHOLD_POINTS = [
    {"id": "SP-ana", "name": "12 Maple St", "kind": "service_point", "parent_id": SMALL_TRANSFORMER, "rating_kva": 24},
    {"id": "SP-ben", "name": "14 Maple St", "kind": "service_point", "parent_id": SMALL_TRANSFORMER, "rating_kva": 24},
    {
        "id": "SP-chen",
        "name": "3 Birch Ave",
        "kind": "service_point",
        "parent_id": SUBSTATION_TRANSFORMER,
        "rating_kva": 24,
    },
    {
        "id": "SP-solar",
        "name": "Community solar array",
        "kind": "service_point",
        "parent_id": SUBSTATION_TRANSFORMER,
        "rating_kva": 100,
    },
    DEPOT,
]

RESOURCES = [
    {
        "id": "ana-pv",
        "name": "Ana's rooftop PV",
        "kind": "pv",
        "owner_id": "ana",
        "location_id": "SP-ana",
        "ratings": {"max_kw": 7.6},
    },
    {
        "id": "ana-battery",
        "name": "Ana's home battery",
        "kind": "battery",
        "owner_id": "ana",
        "location_id": "SP-ana",
        "ratings": {"max_charge_kw": 5, "max_discharge_kw": 5, "energy_kwh": 13.5},
    },
    {
        "id": "ben-ev",
        "name": "Ben's EV charger",
        "kind": "ev_charger",
        "owner_id": "ben",
        "location_id": "SP-ben",
        "ratings": {"max_kw": 11},
    },
    {
        "id": "chen-hp",
        "name": "Chen's heat pump",
        "kind": "heat_pump",
        "owner_id": "chen",
        "location_id": "SP-chen",
        "ratings": {"max_kw": 4},
    },
    {
        "id": "solar-array",
        "name": "Maple community array",
        "kind": "pv",
        "owner_id": "maple-solar",
        "location_id": "SP-solar",
        "ratings": {"max_kw": 90},
    },
]


def tomorrow_hours() -> list[datetime]:
    """The 23, 24 or 25 hour starts of tomorrow in the market's time zone, as UTC."""
    zone = ZoneInfo(MARKET_ZONE)
    today = datetime.now(zone).date()
    start = datetime.combine(today + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)
    end = datetime.combine(today + timedelta(days=2), datetime.min.time(), zone).astimezone(UTC)
    hours = []
    while start < end:
        hours.append(start)
        start += timedelta(hours=1)
    return hours


def local_hour(instant: datetime) -> int:
    return instant.astimezone(ZoneInfo(MARKET_ZONE)).hour


def tenders(hours: list[datetime]) -> list[dict[str, Any]]:
    def strip(
        tender_id: str, party: str, side: str, location: str, pick: Any, quantity: str, price: Any
    ) -> dict[str, Any]:
        rows = [
            {"start": h.isoformat(), "quantity": quantity, "price": price(local_hour(h)) if callable(price) else price}
            for h in hours
            if pick(local_hour(h))
        ]
        return {
            "id": tender_id,
            "market_id": MARKET,
            "party_id": party,
            "side": side,
            "location_id": location,
            "resolution": "PT1H",
            "time_zone": MARKET_ZONE,
            "currency": "USD",
            "rows": rows,
        }

    def tou(hour: int) -> str:
        return "0.34" if 16 <= hour < 21 else "0.19"

    return [
        strip("vp-tariff", "valley-power", "sell", FEEDER, lambda h: True, "1000", tou),
        strip("solar-midday", "maple-solar", "sell", "SP-solar", lambda h: 9 <= h < 16, "60", "0.055"),
        strip("ana-evening", "ana", "sell", "SP-ana", lambda h: 17 <= h < 20, "5", "0.28"),
        strip("ben-overnight", "ben", "buy", "SP-ben", lambda h: 0 <= h < 5, "11", "0.16"),
        strip("chen-morning", "chen", "buy", "SP-chen", lambda h: 6 <= h < 9, "3", "0.24"),
    ]


def controls(hours: list[datetime]) -> list[dict[str, Any]]:
    at = {local_hour(h): h for h in hours}
    return [
        {
            "id": "dr-evening-peak",
            "program_id": "valley-summer-dr",
            "targets": {"location_ids": [SMALL_TRANSFORMER]},
            "kind": "level",
            "signal": "dr_level",
            "unit": "level",
            "periods": [
                {"span": {"start": at[17].isoformat(), "duration": "PT1H"}, "value": 1},
                {"span": {"start": at[18].isoformat(), "duration": "PT1H"}, "value": 2},
            ],
            "priority": 1,
            "randomize_start": "PT5M",
        },
        {
            "id": "ana-pv-export-cap",
            "targets": {"resource_ids": ["ana-pv"]},
            "kind": "limit",
            "signal": "export_power",
            "unit": "kW",
            "periods": [{"span": {"start": at[11].isoformat(), "duration": "PT3H"}, "value": 5}],
        },
    ]


def envelope_message(hours: list[datetime]) -> dict[str, Any]:
    noon = next(h for h in hours if local_hour(h) == 12)
    periods = [
        {
            "span": {"start": (noon + timedelta(minutes=30 * i)).isoformat(), "duration": "PT30M"},
            "import_limit_kw": 15,
            "export_limit_kw": 5 + i,
        }
        for i in range(4)
    ]
    return {
        "correlation_id": "doe-2026-feeder12",
        "payload": {
            "object_type": "operating_envelope",
            "id": "doe-SP-ana",
            "location_id": "SP-ana",
            "periods": periods,
            "source": "computed",
        },
    }


def ieee13_batch(workdir: Path) -> tuple[str, list[dict[str, Any]]]:
    """Write the IEEE 13 feeder as CIM, read it through the reader and network view, and envelope the result."""
    from gateway.protocols.cim.envelopes import network_envelopes
    from gateway.protocols.cim.mapper import to_canonical
    from gateway.protocols.cim.network import build_network
    from gateway.protocols.cim.reader import read_cim

    path = write_ieee13(workdir / "ieee13.xml")
    started = time.perf_counter()
    model = read_cim([path])
    view = build_network(model)
    locations, resources = to_canonical(view, owner_id="valley-power")
    took = (time.perf_counter() - started) * 1000
    coverage = view.coverage
    story = (
        f"IEEE 13 feeder read from CIM ({len(model.objects)} objects, {took:.0f} ms): {len(view.feeders)} feeder,"
        f" {coverage.transformers} transformers ({coverage.regulators} a regulator),"
        f" {coverage.lines_rated}/{coverage.lines} lines rated, {coverage.points} loads placed"
    )
    envelopes = network_envelopes([*locations, *resources], peer=path.name, correlation_id="ieee13-import")
    return story, [envelope.model_dump(mode="json") for envelope in envelopes]


def post(http: httpx.Client, path: str, body: Any) -> httpx.Response:
    """POST and insist on an answer the scenario expects (2xx, or 422 where it sends bad input on purpose)."""
    response = http.post(path, json=body)
    if response.status_code >= 400 and response.status_code != 422:
        raise RuntimeError(f"POST {path} failed with {response.status_code}: {response.text}")
    return response


def run_demo(console: Console, directory: Path | None = None) -> None:
    workdir = directory or Path(tempfile.mkdtemp(prefix="tgw-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "tgw-demo.db"
    if db_path.exists():
        db_path.unlink()
    database_url = f"sqlite:///{db_path}"
    console.print(
        Panel.fit(
            "[bold]Transactive Gateway demo[/]\n"
            "The IEEE 13-node feeder of Valley Power: a utility, an aggregator, three households, a solar array.\n"
            f"Embedded store: {db_path}  ·  no MQTT broker",
            border_style="cyan",
        )
    )
    hours = tomorrow_hours()
    peak = next(h for h in hours if local_hour(h) == 18)
    started = time.perf_counter()
    # No periodic call auction in the demo: it clears tomorrow's peak hour on purpose, below.
    mapping = write_mapping(workdir, MARKET)
    settings = Settings(
        database_url=database_url,
        market_tick_seconds=0,
        openadr_insecure=True,
        openadr_mappings=str(mapping),
        override_mappings=str(write_policy(workdir, MARKET)),
    )
    app = create_app(settings)
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        console.print(f"gateway listening on {base_url}  (OpenAPI docs at {base_url}/docs while it runs)\n")
        story, feeder = ieee13_batch(workdir)
        console.print(f"[green]✓[/] {story}")
        steps: list[tuple[str, str, list[Any]]] = [
            ("parties", "/v1/parties", PARTIES),
            (
                f"batch: the feeder's {len(feeder)} locations and loads, stored atomically",
                "/v1/messages/batch",
                [feeder],
            ),
            ("household and solar service points on the feeder's transformers", "/v1/locations", HOUSEHOLD_POINTS),
            ("resources (DER and flexible loads)", "/v1/resources", RESOURCES),
            (
                f"market {MARKET}: hourly, USD, network = the feeder, gate 1 h",
                "/v1/markets",
                [market(MARKET, MARKET_ZONE, FEEDER)],
            ),
            (
                "a transactive tariff: Ben's 2 kW subscription",
                "/v1/subscriptions",
                [subscription(MARKET, hours[0], hours[-1] + timedelta(hours=1))],
            ),
            (
                f"tenders for tomorrow in {MARKET} ({len(hours)} hourly intervals, {MARKET_ZONE})",
                "/v1/tenders",
                [*tenders(hours), depot_tender(MARKET, MARKET_ZONE, peak)],
            ),
            ("controls (a DR event and a PV export cap)", "/v1/controls", controls(hours)),
            ("an operating envelope, as a raw canonical message", "/v1/messages", [envelope_message(hours)]),
        ]
        with console.status("posting") as status:
            for title, path, bodies in steps:
                status.update(f"posting {title}")
                for body in bodies:
                    response = post(http, path, body)
                    if response.status_code != 201:
                        raise RuntimeError(f"POST {path} was refused: {response.text}")
                console.print(f"[green]✓[/] {len(bodies):>2} {title}")

        console.print("\n[bold]House rules at work[/]")
        again = post(http, "/v1/tenders", tenders(hours)[1])
        console.print(
            f"  resend the solar tender            → HTTP {again.status_code}, duplicate={again.json()['duplicate']},"
            f" same log seq {again.json()['seq']} (stored once)"
        )
        cancelled = post(http, "/v1/tenders/chen-morning/cancel", None)
        status_now = cancelled.json()["envelope"]["payload"]["status"]
        console.print(f"  Chen cancels his morning tender    → HTTP {cancelled.status_code}, status {status_now}")
        bad = dict(tenders(hours)[3], id="bad-tender", party_id="mallory")
        bad["rows"] = [dict(bad["rows"][0], start=(hours[0] + timedelta(minutes=20)).isoformat())]
        refused = post(http, "/v1/tenders", bad)
        console.print(f"  a misaligned tender                → HTTP {refused.status_code}:")
        for error in refused.json()["detail"]:
            console.print(f"      {'.'.join(map(str, error['loc']))}: {error['msg']}", highlight=False)
        bad["rows"] = tenders(hours)[3]["rows"]
        refused = post(http, "/v1/tenders", bad)
        console.print(f"  a tender from an unknown party     → HTTP {refused.status_code}:")
        for error in refused.json()["detail"]:
            console.print(f"      {'.'.join(map(str, error['loc']))}: {error['msg']}", highlight=False)

        the_market = market(MARKET, MARKET_ZONE, FEEDER)
        console.print()
        tender_peak(http, console, the_market, peak)
        clear_and_settle(http, console, MARKET, MARKET_ZONE, peak, [FEEDER, SUBSTATION_TRANSFORMER, SMALL_TRANSFORMER])
        report_position(http, console, the_market, peak)
        legacy_ven(console, base_url, http)
        override_cost(http, console, MARKET, MARKET_ZONE, next(h for h in hours if local_hour(h) == 17))
        smart_inverter(console, workdir, database_url, http, MARKET, MARKET_ZONE)

        health = http.get("/health").json()
        stored_locations = http.get("/v1/locations", params={"limit": 1000}).json()
        stored_resources = http.get("/v1/resources", params={"limit": 1000}).json()
        stored_tenders = http.get("/v1/tenders", params={"market_id": MARKET}).json()
        stored_controls = http.get("/v1/controls").json()
        log = http.get("/v1/messages", params={"limit": 1000}).json()["items"]
        rejections = http.get("/v1/rejections").json()
    elapsed = time.perf_counter() - started
    _summary(
        console,
        hours,
        stored_locations,
        stored_resources,
        stored_tenders,
        stored_controls,
        log,
        rejections,
        health,
        elapsed,
        db_path,
    )


def _summary(
    console: Console,
    hours: list[datetime],
    stored_locations: list[dict[str, Any]],
    stored_resources: list[dict[str, Any]],
    stored_tenders: list[dict[str, Any]],
    stored_controls: list[dict[str, Any]],
    log: list[dict[str, Any]],
    rejections: list[dict[str, Any]],
    health: dict[str, Any],
    elapsed: float,
    db_path: Path,
) -> None:
    console.print()
    tree = Tree("[bold]Feeder model[/] as stored (rating)")
    nodes: dict[str | None, Tree] = {None: tree}
    resources_at: dict[str, list[str]] = {}
    for resource in stored_resources:
        resources_at.setdefault(resource["location_id"], []).append(f"{resource['id']} ({resource['kind']})")
    levels = [kind.value for kind in LocationKind]
    for location in sorted(stored_locations, key=lambda loc: (levels.index(loc["kind"]), loc["id"])):
        rating = f" {Decimal(location['rating_kva']):,f} kVA" if location.get("rating_kva") else ""
        der = f"  [dim]{', '.join(resources_at[location['id']])}[/]" if location["id"] in resources_at else ""
        nodes[location["id"]] = nodes[location.get("parent_id")].add(
            f"{location['kind']} [cyan]{location['id']}[/]{rating}{der}"
        )
    console.print(tree)

    table = Table(
        title=f"Tenders in {MARKET} for {hours[0].astimezone(ZoneInfo(MARKET_ZONE)).date()}", title_justify="left"
    )
    for column in ("tender", "party", "side", "at", "hours", "kW", "price USD/kWh", "status"):
        table.add_column(column)
    for tender in stored_tenders:
        prices = sorted({Decimal(row["price"]) for row in tender["rows"]})
        price = f"{prices[0]}" if len(prices) == 1 else f"{prices[0]} - {prices[-1]}"
        first, last = (local_hour(datetime.fromisoformat(tender["rows"][i]["start"])) for i in (0, -1))
        table.add_row(
            tender["id"],
            tender["party_id"],
            tender["side"],
            tender["location_id"],
            f"{first:02d}-{last + 1:02d}",
            tender["rows"][0]["quantity"],
            price,
            tender["status"],
        )
    console.print(table)

    table = Table(title="Controls", title_justify="left")
    for column in ("control", "kind", "signal", "targets", "periods", "values"):
        table.add_column(column)
    for control in stored_controls:
        targets = ", ".join(v for key, values in control["targets"].items() if isinstance(values, list) for v in values)
        values = ", ".join(f"{p['value']} {control['unit']}" for p in control["periods"])
        table.add_row(control["id"], control["kind"], control["signal"], targets, str(len(control["periods"])), values)
    console.print(table)

    kinds = Counter(item["kind"] for item in log)
    table = Table(title="Message log (append-only, idempotent)", title_justify="left")
    table.add_column("kind")
    table.add_column("messages", justify="right")
    for kind, count in sorted(kinds.items()):
        table.add_row(kind, str(count))
    console.print(table)
    console.print(
        f"[bold]{len(log)}[/] messages stored and [bold]{health['bus_published']}[/] published on the bus"
        f" in {elapsed:.1f} s; {len(rejections)} refused inputs recorded with their reasons (GET /v1/rejections)."
    )
    console.print(
        f"\nDatabase kept at [cyan]{db_path}[/]. Next: [bold]tgw serve --database-url sqlite:///{db_path}[/] and open"
        " http://127.0.0.1:8080/docs"
    )
