"""Canonical model throughput: JSON -> model -> JSON round trips per second on one core.

A 24-row hourly tender (a day-ahead strip, the shape TeMIX tenders have) is parsed and serialised again,
side by side in the same run with
  * stdlib ``json.loads`` + ``json.dumps`` of the same bytes: what any JSON handling costs (the ceiling), and
  * a bare pydantic model with the same field types and no custom validators: pydantic's own floor for
    validating this shape, so the ratio shows what the canonical model's checks (interval alignment, strip
    order, units, currencies, expiry) add on top.
The same is then done for an Envelope carrying that tender.

Run: ``.venv/bin/python benchmarks/bench_model.py [--quick]``. Not a test: it prints its figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

import pydantic
from pydantic import AwareDatetime, BaseModel, Field

from gateway.model import Envelope, Source, Tender
from gateway.model.intervals import Resolution
from gateway.model.market import Side, TenderStatus
from gateway.model.products import OptionKind
from gateway.model.units import EnergyUnit, PowerUnit

from harness import compare, pin_to_one_core

TARGET_OPS = 20_000


# -- the payloads ----------------------------------------------------------------------------------------


def canonical_tender(time_zone: str = "UTC") -> Tender:
    start = datetime(2025, 7, 1, 4, tzinfo=UTC) if time_zone == "America/New_York" else datetime(2025, 7, 1, tzinfo=UTC)
    return Tender(
        id="tender-2025-07-01-p17",
        market_id="day-ahead-feeder-12",
        party_id="prosumer-0017",
        side="sell",
        location_id="sp-0017",
        resolution="PT1H",
        time_zone=time_zone,
        currency="USD",
        rows=[
            {
                "start": start + timedelta(hours=h),
                "quantity": Decimal("3.250") + Decimal(h) / 8,
                "price": Decimal("0.08125") + Decimal(h % 7) / 1000,
            }
            for h in range(24)
        ],
        expires_at=start,
        created_at=start - timedelta(hours=12),
    )


# -- a bare pydantic twin: same field types, no custom validators -----------------------------------------


class BareRow(BaseModel):
    start: AwareDatetime
    quantity: Decimal
    price: Decimal


class BareEnergy(BaseModel):
    type: Literal["energy"] = "energy"


class BareReactive(BaseModel):
    type: Literal["reactive_energy"] = "reactive_energy"


class BareTransport(BaseModel):
    type: Literal["transport"] = "transport"
    from_location_id: str
    to_location_id: str


class BareOption(BaseModel):
    type: Literal["option"] = "option"
    option_kind: OptionKind
    strike: Decimal
    premium: Decimal


class BareTender(BaseModel):
    currency: str = "USD"
    quantity_unit: PowerUnit = PowerUnit.KW
    price_per: EnergyUnit = EnergyUnit.KWH
    object_type: Literal["tender"] = "tender"
    id: str
    market_id: str
    party_id: str
    side: Side
    product: Annotated[BareEnergy | BareReactive | BareTransport | BareOption, Field(discriminator="type")]
    location_id: str
    resolution: Resolution = Resolution.HOUR
    time_zone: str = "UTC"
    rows: list[BareRow]
    expires_at: AwareDatetime | None = None
    all_or_none: bool = False
    status: TenderStatus = TenderStatus.OPEN
    created_at: AwareDatetime


class BareSource(BaseModel):
    protocol: str
    peer: str
    native_id: str
    version: str = "0"


class BareEnvelope(BaseModel):
    message_id: str
    kind: str | None = None
    source: BareSource | None = None
    correlation_id: str | None = None
    created_at: AwareDatetime
    received_at: AwareDatetime
    payload: BareTender


# -- timing ------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repetitions (a smoke run)")
    args = parser.parse_args()
    repetitions, seconds = (5, 0.15) if args.quick else (7, 0.5)

    core = pin_to_one_core()
    print(f"bench_model: Python {platform.python_version()}, pydantic {pydantic.VERSION}, pinned to core {core}")
    print(f"{repetitions} repetitions of ~{seconds}s each per contender, interleaved; medians reported")

    tender_json = canonical_tender().model_dump_json().encode()
    zoned_json = canonical_tender("America/New_York").model_dump_json().encode()
    envelope = Envelope(
        message_id="msg-0001",
        payload=Tender.model_validate_json(tender_json),
        source=Source(protocol="ei", peer="vtn.example", native_id="tender-2025-07-01-p17", version="3"),
        correlation_id="corr-42",
        created_at=datetime(2025, 6, 30, 12, tzinfo=UTC),
        received_at=datetime(2025, 6, 30, 12, 0, 1, tzinfo=UTC),
    )
    envelope_json = envelope.model_dump_json().encode()
    print(f"tender: 24 hourly rows, UTC market, {len(tender_json)} bytes; envelope: {len(envelope_json)} bytes")

    # every contender must understand the payload the same way before it is timed
    assert Tender.model_validate_json(Tender.model_validate_json(tender_json).model_dump_json()).model_dump_json() == (
        tender_json.decode()
    )
    assert (
        BareTender.model_validate_json(tender_json).rows[5].price
        == Tender.model_validate_json(tender_json).rows[5]["price"]
    )
    assert BareEnvelope.model_validate_json(envelope_json).payload.id == envelope.payload.id
    assert json.loads(json.dumps(json.loads(tender_json))) == json.loads(tender_json)

    canonical = compare(
        "Tender (24 rows): JSON -> model -> JSON",
        {
            "canonical Tender": lambda: Tender.model_validate_json(tender_json).model_dump_json(),
            "canonical Tender, time_zone America/New_York": lambda: Tender.model_validate_json(
                zoned_json
            ).model_dump_json(),
            "stdlib json.loads + json.dumps (ceiling)": lambda: json.dumps(json.loads(tender_json)),
            "bare pydantic model, no custom validators": lambda: BareTender.model_validate_json(
                tender_json
            ).model_dump_json(),
        },
        repetitions,
        seconds,
        versus="canonical",
    )["canonical Tender"]
    envelope_ops = compare(
        "Envelope carrying that tender: JSON -> model -> JSON",
        {
            "canonical Envelope": lambda: Envelope.model_validate_json(envelope_json).model_dump_json(),
            "stdlib json.loads + json.dumps (ceiling)": lambda: json.dumps(json.loads(envelope_json)),
            "bare pydantic model, no custom validators": lambda: BareEnvelope.model_validate_json(
                envelope_json
            ).model_dump_json(),
        },
        repetitions,
        seconds,
        versus="canonical",
    )["canonical Envelope"]
    print()
    # The target is for the Tender; the envelope (what the store and the bus carry) is reported
    # for information, as the cost of provenance on top of the payload.
    verdict = "PASS" if canonical >= TARGET_OPS else "FAIL"
    print(
        f"{verdict}: canonical Tender (UTC market): {canonical:,.0f} round trips/s on one core"
        f" (target >= {TARGET_OPS:,})"
    )
    print(f"info: canonical Envelope carrying it: {envelope_ops:,.0f} round trips/s on one core (no target)")
    return 0 if canonical >= TARGET_OPS else 1


if __name__ == "__main__":
    sys.exit(main())
