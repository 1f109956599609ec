"""OpenADR 2.0b codec throughput: decode (+ map) of an oadrDistributeEvent per second on one core, against openleadr.

The message is the shared reference fixture ``fixtures/openadr2b/avob/eievent/oadrDistributeEvent.xml`` (one event,
a SIMPLE level and an ELECTRICITY_PRICE signal of two 15-minute intervals each, targets, a unit), a bare payload
that this script wraps into oadrPayload / oadrSignedObject so that every contender reads the same bytes, the form
a VTN or VEN puts on the wire. Measured side by side in one run:
  * openleadr 0.5.36 ``messaging.parse_message``: xmltodict + its dict normalisation, no schema check (the
    reference every ratio is against);
  * openleadr's whole inbound step as its VTN service does it: ``validate_xml_schema`` then ``parse_message``;
  * a bare lxml parse with a schema-bound parser on the same XSD: parsing and validation alone, the ceiling any
    validating decoder sits under;
  * ours: ``codec.decode`` (size bound, hardened parse, DOCTYPE refusal, XSD validation, message objects);
  * ours: ``codec.decode`` + ``mapper.to_canonical`` (canonical Controls), when the mapper is present;
  * ``codec.encode`` of the decoded message, for information.
The target is decode + validate + map at >= 5x openleadr's parse_message.

Run: ``.venv/bin/python benchmarks/bench_openadr2b.py [--quick]``. Not a test: it prints its figures.
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import lxml
from lxml import etree
from openleadr import messaging

from gateway.protocols.openadr2b import codec
from gateway.protocols.openadr2b.messages import OadrMessage

from harness import compare, pin_to_one_core

TARGET_RATIO = 5.0
FIXTURE = (
    Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "openadr2b" / "avob" / "eievent"
) / "oadrDistributeEvent.xml"
OADR = "{http://openadr.org/oadr-2.0b/2012/07}"


def enveloped(bare: bytes) -> bytes:
    """The bare payload inside oadrPayload / oadrSignedObject, as it travels."""
    payload = etree.fromstring(bare)
    root = etree.Element(OADR + "oadrPayload", nsmap={"oadr": OADR[1:-1]})
    signed = etree.SubElement(root, OADR + "oadrSignedObject", {OADR + "Id": "oadrSignedObject"})
    signed.append(copy.deepcopy(payload))
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def mapper() -> Callable[[OadrMessage], list] | None:
    """mapper.to_canonical if the mapper exists (it is written in parallel with the codec)."""
    try:
        from gateway.protocols.openadr2b.mapper import to_canonical
    except ImportError:
        return None
    return to_canonical


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repetitions (a smoke run)")
    args = parser.parse_args()
    repetitions, seconds = (5, 0.15) if args.quick else (7, 0.5)
    if not FIXTURE.exists():
        print(f"bench_openadr2b: {FIXTURE} is absent (the shared reference fixtures live beside the repo)")
        return 2

    core = pin_to_one_core()
    print(
        f"bench_openadr2b: Python {platform.python_version()}, lxml {lxml.__version__} (libxml2"
        f" {'.'.join(map(str, etree.LIBXML_VERSION))}), openleadr {version('openleadr')}, pinned to core {core}"
    )
    print(f"{repetitions} repetitions of ~{seconds}s each per contender, interleaved; medians reported")

    data = enveloped(FIXTURE.read_bytes())
    schema_bound = etree.XMLParser(schema=codec.schema(), resolve_entities=False, no_network=True)
    to_canonical = mapper()
    print(f"oadrDistributeEvent (1 event, 2 signals x 2 intervals), {len(data):,} bytes in its oadrPayload envelope")

    # every contender must read the message the same way before it is timed
    message = codec.decode(data)
    kind, theirs = messaging.parse_message(data)
    assert kind == message.payload.value == "oadrDistributeEvent"
    [event] = theirs["events"]
    assert event["event_descriptor"]["event_id"] == message.events[0].event_id
    assert [[i["signal_payload"] for i in s["intervals"]] for s in event["event_signals"]] == [
        [float(i.value) for i in signal.intervals] for signal in message.events[0].signals
    ]
    assert etree.fromstring(data, schema_bound) is not None
    assert codec.decode(codec.encode(message)) == message

    contenders: dict[str, Callable[[], object]] = {
        "openleadr parse_message (no validation)": lambda: messaging.parse_message(data),
        "openleadr validate_xml_schema + parse_message": lambda: (
            messaging.validate_xml_schema(data),
            messaging.parse_message(data),
        ),
        "lxml schema-bound parse alone (ceiling)": lambda: etree.fromstring(data, schema_bound),
        "codec.decode (validated, to OadrMessage)": lambda: codec.decode(data),
    }
    mapped = "codec.decode + mapper.to_canonical"
    if to_canonical is not None:
        controls = to_canonical(message)
        print(
            f"mapper.to_canonical: {len(controls)} canonical objects ({', '.join(type(c).__name__ for c in controls)})"
        )
        contenders[mapped] = lambda: to_canonical(codec.decode(data))
    else:
        print("mapper.to_canonical: not present; decode alone is measured")
    contenders["codec.encode of the decoded message (info)"] = lambda: codec.encode(message)

    medians = compare(
        "oadrDistributeEvent: bytes -> message objects (-> canonical)",
        contenders,
        repetitions,
        seconds,
        unit="msgs/s",
        versus="openleadr",
    )
    reference = medians["openleadr parse_message (no validation)"]
    ours = medians.get(mapped, medians["codec.decode (validated, to OadrMessage)"])
    ceiling = medians["lxml schema-bound parse alone (ceiling)"]
    ratio = ours / reference
    what = "decode + validate + map" if to_canonical is not None else "decode + validate (no mapper yet)"
    print()
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print(
        f"{verdict}: {what}: {ours:,.0f} msgs/s on one core = {ratio:.1f}x openleadr's parse_message"
        f" ({reference:,.0f}/s; target >= {TARGET_RATIO:.0f}x); validated-parse ceiling {ceiling:,.0f}/s,"
        f" ours at {ours / ceiling:.2f} of it"
    )
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
