"""IEEE 2030.5 codec throughput on one core: decode and encode of a DERControlList and a DERControlResponse,
side by side with envoy_schema 2.7.0 (pydantic-xml), the library the gateway chose not to use.

The messages:
  * ``fixtures/ieee2030_5/envoy/does/dercontrollist.xml``: the IEEE example (Table C.11) of a DERControlList page
    with one DERControl (event status, interval, randomisation, a volt-watt curve link);
  * a DERControlResponse as a client posts it (createdDateTime, endDeviceLFDI, status, subject);
  * a 10-item DERControlList page (the fixture's control ten times, distinct mRIDs): the server encodes list
    pages per request, and the target is one such page well under 100 us (>= 10,000 pages/s) on one core.
Measured side by side in one run: ``codec.decode`` (size bound, hardened parse, schema order and facets, models)
against envoy_schema's ``from_xml``, and ``codec.encode`` against its ``to_xml``. envoy_schema is optional: when
it is not importable its column is skipped with a note. Both sides must read the same values before anything is
timed.

Run: ``.venv/bin/python benchmarks/bench_ieee2030_5_codec.py [--quick]``. Not a test: it prints its figures.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import lxml
import pydantic
from lxml import etree

from gateway.protocols.ieee2030_5 import codec
from gateway.protocols.ieee2030_5 import models as m

from harness import compare, pin_to_one_core

PAGE_TARGET_US = 100.0
FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "ieee2030_5" / "envoy" / "does"
CONTROL_LIST = FIXTURE / "dercontrollist.xml"


def envoy() -> dict[str, Any] | None:
    """envoy_schema's model classes for the same resources, if it is installed (it is only for comparison)."""
    try:
        from envoy_schema.server.schema.sep2.der import DERControlListResponse
        from envoy_schema.server.schema.sep2.response import DERControlResponse
    except ImportError:
        return None
    return {"DERControlList": DERControlListResponse, "DERControlResponse": DERControlResponse}


def response() -> m.DERControlResponse:
    return m.DERControlResponse(
        href="/rsps/1/rsp/7",
        createdDateTime=1700000123,
        endDeviceLFDI="3E4F45AB31EDFE5B67E343E5E4562E31984E23E5",
        status=1,
        subject="02BE7A7E57",
    )


def page_of_ten(single: m.DERControlList) -> m.DERControlList:
    [control] = single.DERControl
    controls = [
        control.model_copy(update={"mRID": f"{index:02X}BE7A7E570000000000000000000000"}) for index in range(10)
    ]
    return m.DERControlList(href=single.href, all=10, results=10, subscribable=1, DERControl=controls)


def side_by_side(
    title: str, ours: Callable[[], object], theirs: Callable[[], object] | None, repetitions: int, seconds: float
) -> dict[str, float]:
    contenders: dict[str, Callable[[], object]] = {}
    if theirs is not None:
        contenders["envoy_schema"] = theirs
    contenders["ours"] = ours
    return compare(title, contenders, repetitions, seconds, unit="ops/s", versus="envoy" if theirs else "ours")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repetitions (a smoke run)")
    args = parser.parse_args()
    repetitions, seconds = (3, 0.1) if args.quick else (7, 0.4)
    if not CONTROL_LIST.exists():
        print(f"bench_ieee2030_5_codec: {CONTROL_LIST} is absent (the shared reference fixtures live beside the repo)")
        return 2

    core = pin_to_one_core()
    theirs = envoy()
    try:
        envoy_version = version("envoy_schema")
    except PackageNotFoundError:
        envoy_version = "absent"
    print(
        f"bench_ieee2030_5_codec: Python {platform.python_version()}, pydantic {pydantic.VERSION}, lxml"
        f" {lxml.__version__} (libxml2 {'.'.join(map(str, etree.LIBXML_VERSION))}), envoy_schema {envoy_version},"
        f" pinned to core {core}"
    )
    print(f"{repetitions} repetitions of ~{seconds}s each per contender, interleaved; medians reported")
    if theirs is None:
        print("envoy_schema is not importable: its column is skipped, ours is measured alone")

    list_bytes = CONTROL_LIST.read_bytes()
    controls = codec.decode(list_bytes, m.DERControlList)
    answer = response()
    answer_bytes = codec.encode(answer)
    page = page_of_ten(controls)
    page_bytes = codec.encode(page)
    print(
        f"DERControlList fixture {len(list_bytes):,} bytes; DERControlResponse {len(answer_bytes):,} bytes;"
        f" 10-item page {len(page_bytes):,} bytes"
    )

    # both sides must read the same thing before anything is timed
    assert codec.decode(codec.encode(controls)) == controls and codec.decode(answer_bytes) == answer
    envoy_list = envoy_answer = envoy_page = None
    if theirs is not None:
        envoy_list = theirs["DERControlList"].from_xml(list_bytes)
        [theirs_control] = envoy_list.DERControl
        assert theirs_control.mRID.upper() == controls.DERControl[0].mRID
        assert theirs_control.interval.start == controls.DERControl[0].interval.start
        assert (
            theirs_control.DERControlBase_.opModVoltWatt.href
            == controls.DERControl[0].DERControlBase.opModVoltWatt.href
        )
        envoy_answer = theirs["DERControlResponse"].from_xml(answer_bytes)
        assert (envoy_answer.endDeviceLFDI, int(envoy_answer.status)) == (answer.endDeviceLFDI, answer.status)
        envoy_page = theirs["DERControlList"].from_xml(page_bytes)
        assert len(envoy_page.DERControl) == 10

    def envoy_call(make: Callable[[], object]) -> Callable[[], object] | None:
        return make if theirs is not None else None

    side_by_side(
        "decode: DERControlList fixture (bytes -> model)",
        lambda: codec.decode(list_bytes),
        envoy_call(lambda: theirs["DERControlList"].from_xml(list_bytes)),  # type: ignore[index]
        repetitions,
        seconds,
    )
    side_by_side(
        "encode: DERControlList fixture (model -> bytes)",
        lambda: codec.encode(controls),
        envoy_call(lambda: envoy_list.to_xml()),  # type: ignore[union-attr]
        repetitions,
        seconds,
    )
    side_by_side(
        "decode: DERControlResponse",
        lambda: codec.decode(answer_bytes),
        envoy_call(lambda: theirs["DERControlResponse"].from_xml(answer_bytes)),  # type: ignore[index]
        repetitions,
        seconds,
    )
    side_by_side(
        "encode: DERControlResponse",
        lambda: codec.encode(answer),
        envoy_call(lambda: envoy_answer.to_xml()),  # type: ignore[union-attr]
        repetitions,
        seconds,
    )
    side_by_side(
        "decode: 10-item DERControlList page",
        lambda: codec.decode(page_bytes),
        envoy_call(lambda: theirs["DERControlList"].from_xml(page_bytes)),  # type: ignore[index]
        repetitions,
        seconds,
    )
    encoded = side_by_side(
        "encode: 10-item DERControlList page (the per-request cost of a list GET)",
        lambda: codec.encode(page),
        envoy_call(lambda: envoy_page.to_xml()),  # type: ignore[union-attr]
        repetitions,
        seconds,
    )
    per_page_us = 1e6 / encoded["ours"]
    verdict = "PASS" if per_page_us < PAGE_TARGET_US else "FAIL"
    print()
    print(
        f"{verdict}: a 10-item DERControlList page encodes in {per_page_us:.1f} us on one core"
        f" ({encoded['ours']:,.0f} pages/s; target < {PAGE_TARGET_US:.0f} us)"
        + (f", {encoded['ours'] / encoded['envoy_schema']:.0f}x envoy_schema's to_xml" if theirs is not None else "")
    )
    return 0 if per_page_us < PAGE_TARGET_US else 1


if __name__ == "__main__":
    sys.exit(main())
