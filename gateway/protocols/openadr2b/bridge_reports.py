"""The northbound bridge's telemetry: a TELEMETRY_USAGE report offering each of the party's resources to the utility.

openleadr's client registers the report, answers the VTN's report requests and sends the data on its own schedule;
it calls back here for each value, which is the resource's latest canonical Delivery (whoever metered it: a
2030.5 mirror, a legacy VEN's report, the REST API). Deliveries are kW averages; 2.0b powerReal is in W, so the
value is converted with the delivery's own unit. The item is built here rather than taken from openleadr's
MEASUREMENTS table because openleadr sets the scale on the shared table entry, and because the power attributes
must be the grid's (the mapping table's), not openleadr's 50 Hz / 230 V.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from openleadr import OpenADRClient
from openleadr import objects as oadr_objects

from gateway.model import Delivery, MessageKind, Resource, utc_now
from gateway.protocols.openadr2b.table import VtnSettings
from gateway.store import Store

REPORT_DURATION = timedelta(hours=1)
STALE_AFTER = timedelta(days=1)


def _number(value: Decimal) -> int | float:
    return int(value) if value == int(value) else float(value)


def offer_telemetry(
    client: OpenADRClient, store: Store, party_id: str, resources: list[Resource], grid: VtnSettings
) -> None:
    """One data point per resource, rID = resource id, in one report per party (its specifier id is stable so a
    VTN that keeps report requests across a restart finds it again)."""
    for resource in resources:
        measurement = oadr_objects.Measurement(
            name="powerReal",
            description="RealPower",
            unit="W",
            acceptable_units=["W"],
            scale="none",
            power_attributes=oadr_objects.PowerAttributes(
                hertz=_number(grid.grid_hertz), voltage=_number(grid.grid_voltage), ac=True
            ),
        )
        client.add_report(
            partial(latest_watts, store, party_id, resource.id),
            resource.id,
            measurement=measurement,
            report_specifier_id=f"{party_id}.telemetry",
            r_id=resource.id,
            report_duration=REPORT_DURATION,
            sampling_rate=oadr_objects.SamplingRate(
                min_period=timedelta(seconds=10), max_period=timedelta(hours=1), on_change=False
            ),
        )


async def latest_watts(store: Store, party_id: str, resource_id: str) -> list[tuple[datetime, float]]:
    """The resource's latest metered rate in W, stamped with its interval's start; nothing when the latest delivery
    is more than a day old (stale data is no telemetry). A float because openleadr writes payloadFloat from it."""
    delivery = await asyncio.to_thread(latest_delivery, store, party_id, resource_id)
    if delivery is None:
        return []
    return [(delivery.interval.start, float(delivery.quantity * delivery.quantity_unit.watts_per_unit))]


def latest_delivery(store: Store, party_id: str, resource_id: str) -> Delivery | None:
    since = (utc_now() - STALE_AFTER).isoformat()
    found = store.list(
        MessageKind.DELIVERY, filters={"party_id": party_id}, ranges={"interval_start": (since, None)}, limit=None
    )
    mine = [d for d in found if isinstance(d, Delivery) and d.resource_id == resource_id]
    return max(mine, key=lambda d: (d.interval.start, d.measured_at), default=None)
