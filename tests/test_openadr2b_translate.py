"""`tgw translate` to and from OpenADR 2.0b, as a subprocess (the DESIGN command-line contract): the shared
fixtures become canonical objects, canonical controls become a schema-valid oadrDistributeEvent and come back
unchanged, and what cannot be translated fails with one line on stderr."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.protocols.openadr2b import codec

from cli_helpers import assert_clean_failure, tgw
from conftest import shared_path

CONTROL = {
    "object_type": "control",
    "id": "peak-1",
    "program_id": "default",
    "targets": {"party_ids": ["ven-a"]},
    "kind": "level",
    "signal": "dr_level",
    "unit": "level",
    "priority": 3,
    "revision": 4,
    "periods": [
        {"span": {"start": "2030-01-01T17:00:00Z", "duration": "PT15M"}, "value": "3"},
        {"span": {"start": "2030-01-01T17:15:00Z", "duration": "PT45M"}, "value": "1"},
    ],
}


def test_the_shared_distribute_event_becomes_controls() -> None:
    path = shared_path("fixtures", "openadr2b", "avob", "eievent", "oadrDistributeEvent.xml")
    done = tgw("translate", "--from", "openadr2b", "--to", "canonical", str(path))
    assert done.returncode == 0, done.stderr
    controls = [e["payload"] for e in json.loads(done.stdout)]
    assert [c["id"] for c in controls] == ["Event_939393.SIG_01", "Event_939393.SIG_02"]
    assert [p["value"] for p in controls[0]["periods"]] == ["3", "2"]
    assert [p["value"] for p in controls[1]["periods"]] == ["1.20", "1.30"]
    assert controls[0]["targets"]["group_ids"] == ["Group_123"]


def test_canonical_controls_round_trip_through_openadr(tmp_path: Path) -> None:
    source = tmp_path / "control.json"
    source.write_text(json.dumps({"payload": CONTROL}))
    out = tgw("translate", "--from", "canonical", "--to", "openadr2b", str(source))
    assert out.returncode == 0, out.stderr
    message = codec.decode(out.stdout.encode())  # validated against the 2.0b schema on the way in
    (event,) = message.events
    assert (event.event_id, event.modification_number, event.priority) == ("peak-1", 4, 4)
    assert [i.uid for i in event.signals[0].intervals] == [0, 1]
    xml = tmp_path / "event.xml"
    xml.write_bytes(out.stdout.encode())
    back = tgw("translate", "--from", "openadr2b", "--to", "canonical", str(xml))
    assert back.returncode == 0, back.stderr
    found = json.loads(back.stdout)
    (control,) = [e["payload"] for e in (found if isinstance(found, list) else [found])]
    assert [{"span": p["span"], "value": p["value"]} for p in control["periods"]] == CONTROL["periods"]
    assert control["priority"] == 3 and control["revision"] == 4


def test_what_cannot_be_translated_fails_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<oadr:oadrPoll xmlns:oadr='http://openadr.org/oadr-2.0b/2012/07'/>")
    assert_clean_failure(tgw("translate", "--from", "openadr2b", "--to", "canonical", str(bad)), "454")
    curve = {
        **CONTROL,
        "kind": "curve",
        "periods": [{"span": CONTROL["periods"][0]["span"], "curve": [{"x": "1", "y": "2"}, {"x": "2", "y": "3"}]}],
    }
    source = tmp_path / "curve.json"
    source.write_text(json.dumps({"payload": curve}))
    assert_clean_failure(tgw("translate", "--from", "canonical", "--to", "openadr2b", str(source)), "curve")


def test_a_refused_event_goes_back_out_with_its_code(tmp_path: Path) -> None:
    """A canonical 'rejected' Response is an oadrCreatedEvent carrying the VEN's error code, not an optOut, and reads
    back as the same status (460 deployment error: not applicable; 454 compliance error: invalid)."""
    answers = [
        {
            "object_type": "response",
            "id": f"r{n}",
            "subject": {"kind": "control", "id": f"peak-{n}"},
            "party_id": "ven-a",
            "status": status,
        }
        for n, status in enumerate(["rejected_not_applicable", "rejected_invalid", "opted_out"])
    ]
    source = tmp_path / "responses.json"
    source.write_text(json.dumps([{"payload": a} for a in answers]))
    out = tgw("translate", "--from", "canonical", "--to", "openadr2b", str(source))
    assert out.returncode == 0, out.stderr
    message = codec.decode(out.stdout.encode())
    assert [(r.code, r.opt_type.value) for r in message.event_responses] == [
        (460, "optIn"),
        (454, "optIn"),
        (200, "optOut"),
    ]
    xml = tmp_path / "created.xml"
    xml.write_bytes(out.stdout.encode())
    back = tgw("translate", "--from", "openadr2b", "--to", "canonical", str(xml))
    assert back.returncode == 0, back.stderr
    statuses = [e["payload"]["status"] for e in json.loads(back.stdout) if e["payload"]["object_type"] == "response"]
    assert statuses == ["rejected_not_applicable", "rejected_invalid", "opted_out"]
