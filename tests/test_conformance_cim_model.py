"""The cim-model conformance suite against the shared reference models (read in place from ../shared, skipped
with a message where it is absent), against deliberately broken copies of IEEE 13 (each must fail the named
case and only the cases it should) and against input that is not a model at all (every case fails with the
reader's reason; the run completes)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from conformance.framework import Outcome, Severity, SuiteResult, Target, get_suite
from conformance.runner import run_suite

from cli_helpers import tgw
from conftest import shared_path

SUITE = "cim-model"
CIMGRAPH = ("fixtures", "cim", "cimgraph")
CGMES = ("fixtures", "cim", "cgmes")
CIM = "http://iec.ch/TC57/CIM100#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
ABOUT, ID, RESOURCE = f"{{{RDF}}}about", f"{{{RDF}}}ID", f"{{{RDF}}}resource"
ALL = frozenset(c.id for c in get_suite(SUITE).cases())


def run(path: Path | str, report_dir: Path) -> SuiteResult:
    result = run_suite(SUITE, Target(str(path)), report_dir)
    assert result.exit_code in (0, 1), f"pytest exit {result.exit_code}: the harness itself broke"
    assert {c.id for c in result.cases} == ALL  # every case ran and reported, whatever the model
    return result


def failed(result: SuiteResult) -> dict[str, str]:
    return {c.id: c.reason for c in result.cases if c.outcome is not Outcome.PASSED}


# -- the shared reference models --------------------------------------------------------------------------------

# model -> the cases it fails (all recommended: each model passes the suite). See docs/conformance-cim-model.md.
REFERENCE = {
    (*CIMGRAPH, "ieee13.xml"): {},
    (*CIMGRAPH, "IEEE13.ttl"): {},
    (*CIMGRAPH, "maple10nodebreaker.xml"): {},
    (*CIMGRAPH, "IEEE123.xml"): {},
    (*CIMGRAPH, "ieee123_pv.xml"): {},
    # a transmission test case: no CurrentLimit at all, and neither a header nor an IEC61970CIMVersion
    (*CIMGRAPH, "IEEE118_CIM.xml"): {"CIM-MODEL-007": "170 line(s) without", "CIM-MODEL-010": "does not say"},
    (*CGMES, "microgrid-be-2.4.15"): {},
    # the ENTSO-E boundary set gives TieLine_XZE_ST24 the mRID of TieLine_XKA_MA11
    (*CGMES, "microgrid-be-3.0"): {"CIM-MODEL-012": "TieLine_XZE_ST24"},
}


@pytest.mark.parametrize("parts", list(REFERENCE), ids=lambda parts: parts[-1])
def test_reference_models_pass(parts: tuple[str, ...], tmp_path: Path) -> None:
    result = run(shared_path(*parts), tmp_path)
    expected = REFERENCE[parts]
    assert set(failed(result)) == set(expected), failed(result)
    for case_id, fragment in expected.items():
        assert fragment in failed(result)[case_id]
    assert result.ok and not result.required_failures


def test_ieee123_regulators_are_listed_not_failed(tmp_path: Path) -> None:
    """reg2..reg4 are unrated as imported (their tanks' datasheets hang off Assets the importer does not follow);
    as in-line regulators they are no transport limit, so CIM-MODEL-006 passes and says why in its evidence."""
    result = run(shared_path(*CIMGRAPH, "IEEE123.xml"), tmp_path)
    case = next(c for c in result.cases if c.id == "CIM-MODEL-006")
    evidence = case.exchanges[0].response
    assert case.outcome is Outcome.PASSED
    assert "3 unrated in-line regulator(s)" in evidence and "'reg2'" in evidence
    assert "ratedS 2000 kVA linked only through an Asset" in evidence


def test_boundary_set_junction_is_exempt_and_said_so(tmp_path: Path) -> None:
    result = run(shared_path(*CGMES, "microgrid-be-2.4.15"), tmp_path)
    case = next(c for c in result.cases if c.id == "CIM-MODEL-004")
    assert case.outcome is Outcome.PASSED
    assert "1 boundary-set object(s) exempt" in case.exchanges[0].response


def test_ieee9500_in_a_few_seconds(tmp_path: Path) -> None:
    path = shared_path("fixtures", "cim", "ieee9500", "ieee9500bal_cim100.xml")
    clock = time.monotonic()
    result = run(path, tmp_path)
    elapsed = time.monotonic() - clock
    assert failed(result) == {} and result.ok
    assert elapsed < 15, f"{elapsed:.1f} s for IEEE 9500 (about 2 s expected)"


# -- broken copies of IEEE 13 -------------------------------------------------------------------------------------


class Ieee13:
    """An editable copy of ieee13.xml (CIMHub: objects by rdf:about="urn:uuid:...", references to the same)."""

    def __init__(self) -> None:
        self.tree = etree.parse(str(shared_path(*CIMGRAPH, "ieee13.xml")))
        self.root = self.tree.getroot()

    def objects(self, cls: str) -> list[etree._Element]:
        return self.root.findall(f"{{{CIM}}}{cls}")

    def named(self, cls: str, name: str) -> etree._Element:
        found = [o for o in self.objects(cls) if o.findtext(f"{{{CIM}}}IdentifiedObject.name") == name]
        assert len(found) == 1, f"{len(found)} {cls} named {name}"
        return found[0]

    def referring(self, cls: str, prop: str, target: etree._Element) -> list[etree._Element]:
        """Objects of ``cls`` whose ``prop`` points at ``target``."""
        about = target.get(ABOUT)
        return [o for o in self.objects(cls) if any(c.get(RESOURCE) == about for c in o.findall(f"{{{CIM}}}{prop}"))]

    def drop(self, elem: etree._Element, prop: str | None = None) -> None:
        """Remove an object, or (with ``prop``) every ``prop`` of it."""
        targets = [elem] if prop is None else elem.findall(f"{{{CIM}}}{prop}")
        assert targets, f"nothing to drop: {prop}"
        for target in targets:
            target.getparent().remove(target)

    def set(self, elem: etree._Element, prop: str, text: str | None = None, resource: str | None = None) -> None:
        child = elem.find(f"{{{CIM}}}{prop}")
        if child is None:
            child = etree.SubElement(elem, f"{{{CIM}}}{prop}")
        if resource is not None:
            child.set(RESOURCE, resource)
        else:
            child.text = text

    def add(self, cls: str, about: str, **props: str) -> etree._Element:
        """A new object; a property value starting with ``urn:`` is a reference."""
        elem = etree.SubElement(self.root, f"{{{CIM}}}{cls}", {ABOUT: about})
        for prop, value in props.items():
            self.set(
                elem, prop.replace("__", "."), **({"resource": value} if value.startswith("urn:") else {"text": value})
            )
        return elem

    def save(self, folder: Path) -> Path:
        path = folder / "broken.xml"
        self.tree.write(str(path), xml_declaration=True, encoding="utf-8")
        return path


def dangling_reference(m: Ieee13) -> None:
    m.set(
        m.named("ACLineSegment", "684652"),
        "PowerSystemResource.Location",
        resource="urn:uuid:0BAD0000-0000-0000-0000-000000000000",
    )


def defined_twice(m: Ieee13) -> None:
    """A load written twice with rdf:ID, the copy saying something else."""
    load = m.named("EnergyConsumer", "652")
    load.set(ID, "_" + load.attrib.pop(ABOUT).removeprefix("urn:uuid:"))
    copy = etree.fromstring(etree.tostring(load))
    copy.find(f"{{{CIM}}}EnergyConsumer.p").text = "999999"
    load.addnext(copy)


def shared_mrid(m: Ieee13) -> None:
    other = m.named("ACLineSegment", "632670").findtext(f"{{{CIM}}}IdentifiedObject.mRID")
    m.set(m.named("ACLineSegment", "684652"), "IdentifiedObject.mRID", other)


def terminal_removed(m: Ieee13) -> None:
    (terminal,) = m.referring("Terminal", "Terminal.ConductingEquipment", m.named("EnergyConsumer", "652"))
    m.drop(terminal)


def node_reference_removed(m: Ieee13) -> None:
    m.drop(m.named("Terminal", "684652_T2"), "Terminal.ConnectivityNode")


def line_end_removed(m: Ieee13) -> None:
    m.drop(m.named("Terminal", "684652_T2"))


def island_without_source(m: Ieee13) -> None:
    """Line 684-652 now ends on a node of its own: bus 652 and its load are cut off from the source."""
    node = "urn:uuid:15A4D000-0000-0000-0000-000000000652"
    m.add("ConnectivityNode", node, IdentifiedObject__name="652cut")
    m.set(m.named("Terminal", "684652_T2"), "Terminal.ConnectivityNode", resource=node)


def transformer_unrated(m: Ieee13) -> None:
    for end in m.referring(
        "PowerTransformerEnd", "PowerTransformerEnd.PowerTransformer", m.named("PowerTransformer", "xfm1")
    ):
        m.drop(end, "PowerTransformerEnd.ratedS")


def line_limit_removed(m: Ieee13) -> None:
    """CIMHub hangs a line's limit set from its first terminal (ACDCTerminal.OperationalLimitSet)."""
    for terminal in m.referring("Terminal", "Terminal.ConductingEquipment", m.named("ACLineSegment", "684652")):
        for link in terminal.findall(f"{{{CIM}}}ACDCTerminal.OperationalLimitSet"):
            terminal.remove(link)


def inverter_off_feeder(m: Ieee13) -> None:
    """A battery inverter with neither a container nor a terminal: nothing places it."""
    pec = m.named("PowerElectronicsConnection", "batidle")
    m.drop(pec, "Equipment.EquipmentContainer")
    for terminal in m.referring("Terminal", "Terminal.ConductingEquipment", pec):
        m.drop(terminal)


def base_voltage_removed(m: Ieee13) -> None:
    m.drop(m.named("EnergyConsumer", "652"), "ConductingEquipment.BaseVoltage")


def header_removed(m: Ieee13) -> None:
    (version,) = m.objects("IEC61970CIMVersion")
    m.drop(version)


def not_a_number(m: Ieee13) -> None:
    m.set(m.named("EnergyConsumer", "652"), "EnergyConsumer.p", "lots")


# variant -> (the cases it must fail, and only those; whether the suite still passes)
BROKEN: dict[Callable[[Ieee13], None], tuple[set[str], bool]] = {
    dangling_reference: ({"CIM-MODEL-002"}, False),
    defined_twice: ({"CIM-MODEL-003"}, False),
    shared_mrid: ({"CIM-MODEL-012"}, True),
    terminal_removed: ({"CIM-MODEL-004"}, False),
    # the line's far end is on no node, so bus 652 is also an island no source reaches
    node_reference_removed: ({"CIM-MODEL-004", "CIM-MODEL-005"}, False),
    line_end_removed: ({"CIM-MODEL-004", "CIM-MODEL-005"}, False),
    island_without_source: ({"CIM-MODEL-005"}, False),
    transformer_unrated: ({"CIM-MODEL-006"}, False),
    line_limit_removed: ({"CIM-MODEL-007"}, True),
    # placed through neither a container nor a terminal: no terminal (004), and the view warns it is unplaced (011)
    inverter_off_feeder: ({"CIM-MODEL-004", "CIM-MODEL-008", "CIM-MODEL-011"}, False),
    base_voltage_removed: ({"CIM-MODEL-009"}, False),
    header_removed: ({"CIM-MODEL-010"}, True),
    not_a_number: ({"CIM-MODEL-011"}, True),
}


@pytest.mark.parametrize("variant", list(BROKEN), ids=lambda f: f.__name__)
def test_broken_variant_fails_the_named_case(variant: Callable[[Ieee13], None], tmp_path: Path) -> None:
    model = Ieee13()
    variant(model)
    result = run(model.save(tmp_path), tmp_path / "reports")
    expected, still_ok = BROKEN[variant]
    assert set(failed(result)) == expected, failed(result)
    assert result.ok is still_ok
    assert all(failed(result)[i] for i in expected)  # every failure says why


def test_a_smart_inverter_placed_through_its_usage_point_passes(tmp_path: Path) -> None:
    """An EndDevice smart inverter is a DER whose point is the device itself (no terminal): placed through the
    UsagePoint of load 652, it is on the feeder and no case complains."""
    model = Ieee13()
    load = model.named("EnergyConsumer", "652")
    usage_point = "urn:uuid:05A6E000-0000-0000-0000-000000000652"
    model.add("UsagePoint", usage_point, IdentifiedObject__name="up652", UsagePoint__Equipments=load.get(ABOUT))
    model.add(
        "EndDevice",
        "urn:uuid:05A6E000-0000-0000-0000-00000000051f",
        IdentifiedObject__name="inv652",
        EndDevice__isSmartInverter="true",
        EndDevice__UsagePoint=usage_point,
    )
    result = run(model.save(tmp_path), tmp_path / "reports")
    assert failed(result) == {}
    evidence = next(c for c in result.cases if c.id == "CIM-MODEL-008").exchanges[0].response
    assert "smart_inverter" in evidence


def test_failure_reasons_name_the_offender(tmp_path: Path) -> None:
    model = Ieee13()
    dangling_reference(model)
    transformer_unrated(model)
    reasons = failed(run(model.save(tmp_path), tmp_path / "reports"))
    assert (
        "0bad0000-0000-0000-0000-000000000000" in reasons["CIM-MODEL-002"] and "broken.xml:" in reasons["CIM-MODEL-002"]
    )
    assert "'xfm1'" in reasons["CIM-MODEL-006"]


# -- not a model at all -----------------------------------------------------------------------------------------


def unreadable(tmp_path: Path) -> tuple[Path, str]:
    if os.geteuid() == 0:
        pytest.skip("running as root: a file without read permission is still readable")
    path = tmp_path / "locked.xml"
    path.write_bytes((shared_path(*CIMGRAPH, "ieee13.xml")).read_bytes())
    path.chmod(0)
    return path, "Permission denied"


def unreadable_member(tmp_path: Path) -> tuple[Path, str]:
    """A folder whose model.xml is a directory: unreadable for anyone, root included."""
    folder = tmp_path / "set"
    (folder / "model.xml").mkdir(parents=True)
    return folder, "cannot read"


def nonexistent(tmp_path: Path) -> tuple[Path, str]:
    return tmp_path / "no-such-model.xml", "no such file or folder"


def empty_folder(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder, "holds no .xml or .rdf file"


def not_xml(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "model.xml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    return path, "broken XML"


def not_rdf(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "model.xml"
    path.write_text("<html><body>not a model</body></html>")
    return path, "not an RDF/XML document"


def truncated(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "model.xml"
    path.write_bytes(shared_path(*CIMGRAPH, "ieee13.xml").read_bytes()[:50_000])
    return path, "broken XML"


@pytest.mark.parametrize(
    "make",
    [unreadable, unreadable_member, nonexistent, empty_folder, not_xml, not_rdf, truncated],
    ids=lambda f: f.__name__,
)
def test_input_that_is_no_model_fails_every_case(make: Callable[[Path], tuple[Path, str]], tmp_path: Path) -> None:
    path, why = make(tmp_path)
    result = run(path, tmp_path / "reports")
    reasons = failed(result)
    assert set(reasons) == ALL and not result.ok
    assert all(why in reason and reason.startswith("the model cannot be read") for reason in reasons.values()), reasons
    assert len(set(reasons.values())) == 1  # one reason, the reader's, in every case
    assert all(c.exchanges for c in result.cases)  # and in every case's evidence


def test_file_url_target(tmp_path: Path) -> None:
    source = shared_path(*CIMGRAPH, "maple10nodebreaker.xml")
    folder = tmp_path / "a model folder"
    folder.mkdir()
    copy = folder / "maple 10.xml"
    copy.write_bytes(source.read_bytes())
    result = run(copy.as_uri(), tmp_path / "reports")
    assert failed(result) == {} and result.ok


def test_severities_and_ids_are_stable() -> None:
    cases = {c.id: c for c in get_suite(SUITE).cases()}
    assert sorted(cases) == [f"CIM-MODEL-{n:03d}" for n in range(1, 13)]
    recommended = {i for i, c in cases.items() if c.severity is Severity.RECOMMENDED}
    assert recommended == {"CIM-MODEL-007", "CIM-MODEL-010", "CIM-MODEL-011", "CIM-MODEL-012"}


# -- the command --------------------------------------------------------------------------------------------------


def test_cli_exit_status_and_reports(tmp_path: Path) -> None:
    good = tgw(
        "conformance",
        "run",
        SUITE,
        "--target",
        str(shared_path(*CIMGRAPH, "ieee13.xml")),
        "--report-dir",
        str(tmp_path / "good"),
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert "PASS" in good.stdout and "Traceback" not in good.stdout + good.stderr
    data = json.loads((tmp_path / "good" / f"{SUITE}.json").read_text())
    assert data["ok"] is True and {c["id"] for c in data["cases"]} == ALL

    model = Ieee13()
    transformer_unrated(model)
    broken = tgw(
        "conformance", "run", SUITE, "--target", str(model.save(tmp_path)), "--report-dir", str(tmp_path / "bad")
    )
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "CIM-MODEL-006" in broken.stdout and "xfm1" in broken.stdout and "FAIL" in broken.stdout
    assert {p.name for p in (tmp_path / "bad").iterdir()} >= {f"{SUITE}.xml", f"{SUITE}.json", f"{SUITE}.html"}
    assert "CIM-MODEL-006" in (tmp_path / "bad" / f"{SUITE}.html").read_text()
