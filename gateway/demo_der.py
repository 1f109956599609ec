"""The demo's smart inverter: Ana's PV inverter speaks IEEE 2030.5 (CSIP), over mutual TLS with its own device
certificate, like a field device. It finds its programs by following links from /dcap, and receives the utility's
export curtailment for it, the operating envelope of its connection point and the transactive price the market
cleared at its site, and answers each control "received" as CSIP requires.

The demo makes a throwaway PKI (gateway.pki) and serves the 2030.5 face from a second gateway app on the same
database, as a deployment runs several identical gateways behind a load balancer: the second one catches up from
the shared log, so what the first stored (the controls, the clearing) reaches the inverter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console
from rich.table import Table

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.api.tls import server_tls_options
from gateway.config import Settings
from gateway.pki import CertificateAuthority
from gateway.protocols.ieee2030_5.identity import lfdi_of_certificate, sfdi_of_lfdi
from gateway.resources import mappings_dir

INVERTER_RESOURCE = "ana-pv"
PIN = "111115"


def write_der_mapping(workdir: Path, market_id: str) -> Path:
    """The installed 2030.5 table with one tariff: the market's cleared price at each device's own site."""
    base = (mappings_dir() / "ieee2030_5.yaml").read_text(encoding="utf-8").split("\ntariffs:")[0]
    tariff = (
        "\ntariffs:\n"
        "  - tariff_id: maple-price\n"
        "    description: Maple transactive price\n"
        f"    market_id: {market_id}\n"
        "    currency: 840\n"
        "    price_power_of_ten: -4\n"
    )
    path = workdir / "ieee2030_5.yaml"
    path.write_text(base + tariff, encoding="utf-8")
    return path


def smart_inverter(
    console: Console, workdir: Path, database_url: str, http: httpx.Client, market_id: str, zone: str
) -> None:
    from gateway.protocols.ieee2030_5.client import Sep2Client

    (workdir / "pki").mkdir(exist_ok=True)
    pki = CertificateAuthority(workdir / "pki")
    server = pki.issue("localhost", server=True)
    device = pki.issue("ana-inverter")
    lfdi = lfdi_of_certificate(device.der)
    resource = http.get(f"/v1/resources/{INVERTER_RESOURCE}").json()
    resource["identities"] = {**resource.get("identities", {}), "lfdi": lfdi, "ieee2030_5-pin": PIN}
    http.post("/v1/resources", json=resource).raise_for_status()
    console.print(
        f"\n[bold]Ana's smart inverter (IEEE 2030.5 / CSIP over mutual TLS)[/]  LFDI {lfdi[:12]}..."
        f"  SFDI {sfdi_of_lfdi(lfdi)}  (provisioned on resource {INVERTER_RESOURCE}, PIN {PIN})"
    )
    settings = Settings(
        database_url=database_url, market_tick_seconds=0, ieee2030_5_mappings=str(write_der_mapping(workdir, market_id))
    )
    tls = server_tls_options(str(server.cert), str(server.key), str(pki.ca_file), require_client=True)
    with serve_in_thread(create_app(settings), **tls) as base_url:
        client = Sep2Client(base_url, cert=device.cert, key=device.key, ca=pki.ca_file, pin=int(PIN))
        try:
            view = client.discover()
            _show_controls(console, view, zone)
            answered = client.acknowledge(view)
            prices = client.prices(view)
        finally:
            client.close()
    console.print(
        f"  it answered {answered} control(s) [italic]received[/] (Response 1), stored as canonical responses"
    )
    _show_prices(console, prices, zone)


def _local(epoch: int, zone: str) -> str:
    return datetime.fromtimestamp(epoch, UTC).astimezone(ZoneInfo(zone)).strftime("%H:%M")


def _show_controls(console: Console, view: Any, zone: str) -> None:
    table = Table(title="DERControls the inverter found by following links from /dcap", title_justify="left")
    for column in ("program (primacy)", "starts", "minutes", "control", "status"):
        table.add_column(column)
    statuses = {0: "scheduled", 1: "active", 2: "cancelled", 3: "cancelled", 4: "superseded"}
    for program, control in view.controls():
        modes = ", ".join(_mode(name, value) for name, value in control.DERControlBase if value is not None)
        table.add_row(
            f"{program.description} ({program.primacy})",
            _local(control.interval.start, zone),
            str(control.interval.duration // 60),
            modes,
            statuses.get(control.EventStatus.currentStatus, "?"),
        )
    console.print(table)


def _mode(name: str, value: Any) -> str:
    if hasattr(value, "multiplier"):
        watts = Decimal(value.value).scaleb(value.multiplier)
        return f"{name} {watts / 1000:g} kW"
    if name == "opModMaxLimW":
        return f"{name} {Decimal(value) / 100:g}% of setMaxW"
    return f"{name} {value}"


def _show_prices(console: Console, prices: list[tuple[int, int, Decimal]], zone: str) -> None:
    if not prices:
        console.print("  no priced interval at its site yet")
        return
    shown = ", ".join(f"{_local(start, zone)} {price:.4f}" for start, _duration, price in prices[:6])
    console.print(f"  TimeTariffIntervals at its site (USD/kWh, the market's cleared price): {shown}")
