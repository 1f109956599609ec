"""Turtle input (through rdflib) reads into the same objects as the RDF/XML of the same model."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.protocols.cim import CimReadError, read_cim

from conftest import shared_path

pytest.importorskip("rdflib", reason="Turtle input needs rdflib (the `cim` extra)")


def test_ieee13_turtle_equals_its_rdf_xml() -> None:
    turtle = read_cim([shared_path("fixtures", "cim", "cimgraph", "IEEE13.ttl")])
    xml = read_cim([shared_path("fixtures", "cim", "cimgraph", "ieee13.xml")])
    assert turtle.class_counts == xml.class_counts and len(turtle.objects) == 500
    assert turtle.dangling_count == 0
    for ident, obj in xml.objects.items():
        other = turtle.objects[ident]
        assert other.cls == obj.cls
        assert other.attrs == obj.attrs, ident
        assert {k: sorted(v) for k, v in other.refs.items()} == {k: sorted(v) for k, v in obj.refs.items()}, ident


def test_broken_turtle_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ttl"
    bad.write_text("@prefix cim: <http://iec.ch/TC57/CIM100#> .\n<urn:uuid:1> a cim:Terminal ;\n   cim:x ")
    with pytest.raises(CimReadError, match=r"bad\.ttl: not readable as turtle"):
        read_cim([bad])
