"""EI XML codec throughput: decode + map of an eiCreateTender (24 hourly intervals) per second on one core.

The message is what a TeMIX day-ahead client sends: one tender, 24 hourly intervals, each with a price and a
quantity. ``xml_codec.decode`` parses it (lxml, hardened parser), checks it against the CTS structure and maps
it to a canonical ``Tender`` (pydantic validation with every rule: aligned, ordered intervals, units, currency,
expiry). Measured side by side in the same run with
  * a plain ``lxml.etree.fromstring`` of the same bytes: parsing alone, the ceiling any decoder sits under;
  * the same message in the CTS namespaces without our extension (what a strict CTS peer sends);
  * ``Tender.model_validate`` of the equivalent dict: the canonical model's own share of the decode;
  * ``xml_codec.encode`` of the decoded message, for information.

Run: ``.venv/bin/python benchmarks/bench_ei.py [--quick]``. Not a test: it prints its figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import lxml
import pydantic
from lxml import etree

from gateway.model import Tender
from gateway.protocols.ei import json_codec
from gateway.protocols.ei.messages import EiMessage, Payload
from gateway.protocols.ei.xml_codec import Dialect, decode, encode

from harness import compare, pin_to_one_core

TARGET_OPS = 5_000


def create_tender_message() -> EiMessage:
    start = datetime(2025, 7, 1, tzinfo=UTC)
    tender = Tender(
        id="tender-2025-07-01-p17",
        market_id="day-ahead-feeder-12",
        party_id="prosumer-0017",
        side="sell",
        location_id="sp-0017",
        resolution="PT1H",
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
    return EiMessage(
        payload=Payload.CREATE_TENDER,
        request_id="req-2025-06-30-0001",
        party_id="prosumer-0017",
        counterparty_id="market-operator",
        tenders=[tender],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repetitions (a smoke run)")
    args = parser.parse_args()
    repetitions, seconds = (5, 0.15) if args.quick else (7, 0.5)

    core = pin_to_one_core()
    print(
        f"bench_ei: Python {platform.python_version()}, lxml {lxml.__version__} (libxml2"
        f" {'.'.join(map(str, etree.LIBXML_VERSION))}), pydantic {pydantic.VERSION}, pinned to core {core}"
    )
    print(f"{repetitions} repetitions of ~{seconds}s each per contender, interleaved; medians reported")

    sent = create_tender_message()
    data = encode(sent)
    strict = encode(sent, Dialect.CTS, extensions=False)
    tender_dict = sent.tenders[0].model_dump()
    cts_json = json_codec.encode(sent)
    print(f"eiCreateTender: 24 hourly intervals, {len(data):,} bytes (EI 1.0 names); strict CTS: {len(strict):,} bytes")

    # every contender must understand the message the same way before it is timed
    assert decode(data) == sent
    strict_tender = decode(strict).tenders[0]
    assert strict_tender.rows == sent.tenders[0].rows and strict_tender.side is sent.tenders[0].side
    assert len(etree.fromstring(data)[3][1][3]) == 24
    assert Tender.model_validate(tender_dict) == sent.tenders[0]
    assert json_codec.decode(cts_json).tenders == sent.tenders

    medians = compare(
        "eiCreateTender (24 intervals): bytes -> canonical message",
        {
            "xml_codec.decode (parse + check + map to Tender)": lambda: decode(data),
            "xml_codec.decode, strict CTS message (no extension)": lambda: decode(strict),
            "lxml.etree.fromstring of the same bytes (ceiling)": lambda: etree.fromstring(data),
            "json_codec.decode, the same message in CTS JSON": lambda: json_codec.decode(cts_json),
            "json.loads of the CTS JSON bytes (its ceiling)": lambda: json.loads(cts_json),
            "Tender.model_validate of the same tender (model's share)": lambda: Tender.model_validate(tender_dict),
            "xml_codec.encode of the message (info)": lambda: encode(sent),
        },
        repetitions,
        seconds,
        unit="msgs/s",
        versus="decode",
    )
    ours = medians["xml_codec.decode (parse + check + map to Tender)"]
    ceiling = medians["lxml.etree.fromstring of the same bytes (ceiling)"]
    print()
    verdict = "PASS" if ours >= TARGET_OPS else "FAIL"
    print(
        f"{verdict}: decode + map of a 24-interval eiCreateTender: {ours:,.0f} msgs/s on one core"
        f" (target >= {TARGET_OPS:,}); plain lxml parse {ceiling:,.0f}/s; ratio {ours / ceiling:.2f}"
    )
    return 0 if ours >= TARGET_OPS else 1


if __name__ == "__main__":
    sys.exit(main())
