"""The CIM RDF/XML reader on the reference feeders and CGMES sets, hand-made documents and hostile input.

The fixtures are read in place from ../shared (skipped with a message where it is absent); everything else is
written to tmp_path.
"""

from __future__ import annotations

import random
import shutil
import struct
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.protocols.cim.reader import CimModel, CimReadError, normalise_id, read_cim

from conftest import shared_path

CIMGRAPH = ("fixtures", "cim", "cimgraph")
CGMES = ("fixtures", "cim", "cgmes")
CGMES_SETS = ["microgrid-be-2.4.15", "microgrid-be-3.0"]
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"

HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<rdf:RDF xmlns:cim="http://iec.ch/TC57/CIM100#" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
)
TAIL = "</rdf:RDF>\n"


def doc(body: str) -> bytes:
    return (HEAD + body + TAIL).encode()


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def cgmes_files(version: str) -> list[Path]:
    return sorted(shared_path(*CGMES, version).iterdir())


def snapshot(model: CimModel) -> dict[str, tuple]:
    """What must not depend on how a model was handed over: ids, classes, merged properties."""
    return {
        ident: (obj.cls, obj.attrs, {prop: sorted(targets) for prop, targets in obj.refs.items()}, obj.defined)
        for ident, obj in model.objects.items()
    }


# -- reference feeders -----------------------------------------------------------------------------------


IEEE13_GOLDEN = {
    "ConnectivityNode": 22,
    "Terminal": 70,
    "ACLineSegment": 11,
    "EnergyConsumer": 16,
    "PowerElectronicsConnection": 5,
    "BatteryUnit": 3,
    "PhotovoltaicUnit": 2,
    "PowerTransformer": 4,
}


def test_ieee13_golden_counts() -> None:
    model = read_cim([shared_path(*CIMGRAPH, "ieee13.xml")])
    counts = model.class_counts
    assert {cls: counts[cls] for cls in IEEE13_GOLDEN} == IEEE13_GOLDEN
    assert len(model.objects) == 500 == sum(counts.values())
    assert model.warnings == []
    # Every terminal hangs on a node and a piece of equipment that are there.
    for terminal in model.of("Terminal"):
        assert model.follow(terminal, "Terminal.ConnectivityNode").cls == "ConnectivityNode"
        assert model.follow(terminal, "Terminal.ConductingEquipment") is not None


def test_ieee9500_object_count() -> None:
    model = read_cim([shared_path("fixtures", "cim", "ieee9500", "ieee9500bal_cim100.xml")])
    assert len(model.objects) == 69_307
    assert model.dangling_count == 0 and model.warnings == []
    assert all(obj.defined for obj in model.objects.values())


@pytest.mark.parametrize(
    "parts",
    [
        (*CIMGRAPH, "ieee13.xml"),
        (*CIMGRAPH, "IEEE123.xml"),
        (*CIMGRAPH, "ieee123_pv.xml"),
        (*CIMGRAPH, "IEEE118_CIM.xml"),
        (*CIMGRAPH, "maple10nodebreaker.xml"),
        (*CGMES, "microgrid-be-2.4.15"),
        (*CGMES, "microgrid-be-3.0"),
    ],
    ids=lambda parts: parts[-1],
)
def test_no_dangling_references_in_any_fixture(parts: tuple[str, ...]) -> None:
    """IEEE 9500 is checked in test_ieee9500_object_count, to read it once."""
    model = read_cim([shared_path(*parts)])
    assert model.dangling_count == 0, model.dangling[:5]
    assert model.dangling == []
    assert all(obj.defined for obj in model.objects.values())
    assert model.warnings == []


def test_ieee123_pv_keeps_every_pv_unit() -> None:
    model = read_cim([shared_path(*CIMGRAPH, "ieee123_pv.xml")])
    assert model.class_counts["PhotovoltaicUnit"] == 14
    assert len(model.objects) == 3408


# -- CGMES multi-file sets -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", CGMES_SETS)
def test_cgmes_folder_zip_and_reordered_files_agree(version: str, tmp_path: Path) -> None:
    folder = shared_path(*CGMES, version)
    files = cgmes_files(version)
    archive = tmp_path / f"{version}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            zf.write(path, path.name)
    shuffled = files[:]
    random.Random(7).shuffle(shuffled)

    from_folder = snapshot(read_cim([folder]))
    assert snapshot(read_cim([archive])) == from_folder
    assert snapshot(read_cim(list(reversed(files)))) == from_folder
    assert snapshot(read_cim(shuffled)) == from_folder
    assert snapshot(read_cim(str(p) for p in files)) == from_folder


@pytest.mark.parametrize("version", CGMES_SETS)
def test_cgmes_one_object_per_definition_and_no_phantoms(version: str) -> None:
    files = cgmes_files(version)
    model = read_cim(files)
    # Count the definitions independently of the reader: every rdf:ID of every file, once.
    defined: list[str] = []
    for path in files:
        for _, elem in etree.iterparse(str(path), events=("end",), tag=f"{{{RDF_NS}}}RDF"):
            defined += [child.get(f"{{{RDF_NS}}}ID")[1:].lower() for child in elem if child.get(f"{{{RDF_NS}}}ID")]
    assert len(defined) == len(set(defined)), "a fixture defines an object twice"
    assert set(model.objects) == set(defined)
    assert len(model.objects) == sum(model.class_counts.values())
    assert all(obj.defined for obj in model.objects.values())
    # Objects described through a superclass (CGMES 3 SSH: cim:Equipment) keep the class they are defined with.
    assert not set(model.class_counts) & {"Equipment", "IdentifiedObject", "ACDCTerminal"}
    assert len(model.headers) == len(files)
    assert model.dangling_count == 0 and model.warnings == []


def test_cgmes_2415_terminal_merges_eq_tp_and_ssh() -> None:
    model = read_cim([shared_path(*CGMES, "microgrid-be-2.4.15")])
    terminal = model.objects["57ae9251-c022-4c67-a8eb-611ad54c963c"]
    assert terminal.cls == "Terminal" and terminal.defined
    assert terminal.source.endswith("MicroGridTestConfiguration_BC_BE_EQ_V2.xml") and terminal.line == 2012
    assert terminal.attrs["IdentifiedObject.name"] == "BE-Line_7 - T1"  # EQ
    assert terminal.attrs["Terminal.phases"] == "PhaseCode.ABC"  # EQ, an enumeration kept as its literal
    assert terminal.attrs["ACDCTerminal.connected"] == "true"  # SSH
    assert model.follow(terminal, "Terminal.ConductingEquipment").cls == "ACLineSegment"  # EQ
    node = model.follow(terminal, "Terminal.TopologicalNode")  # TP -> a boundary node of TP_BD
    assert node.cls == "TopologicalNode" and node.attrs["IdentifiedObject.name"] == "TN_Border_ST24"
    assert node.source.endswith("MicroGridTestConfiguration_TP_BD.xml")


def test_cgmes_30_terminal_node_and_equipment_merge_across_profiles() -> None:
    model = read_cim([shared_path(*CGMES, "microgrid-be-3.0")])
    terminal = model.objects["62fc0a4e-00aa-4bf7-b1a0-3a5b2c0b5492"]
    assert terminal.source.endswith("_BE_EQ_001.xml") and terminal.defined
    assert terminal.attrs["ACDCTerminal.connected"] == "true"  # SSH
    node = model.follow(terminal, "Terminal.ConnectivityNode")  # EQ
    assert node.cls == "ConnectivityNode" and node.attrs["IdentifiedObject.name"] == "BE-Busbar_3"
    topological = model.follow(node, "ConnectivityNode.TopologicalNode")  # TP describes the EQ node
    assert topological.cls == "TopologicalNode" and topological.source.endswith("_BE_TP_001.xml")
    assert terminal.ref("Terminal.TopologicalNode") == topological.id  # TP describes the EQ terminal
    # SSH sets Equipment.inService on a busbar through the Equipment superclass: still one BusbarSection.
    busbar = model.follow(terminal, "Terminal.ConductingEquipment")
    assert busbar.cls == "BusbarSection" and busbar.attrs["Equipment.inService"] == "true"
    # SV state points at TP nodes.
    voltage = model.objects["0af74e47-59f5-4099-b613-29c1f9148cae"]
    assert voltage.cls == "SvVoltage" and voltage.attrs["SvVoltage.v"] == "115.5"
    assert model.follow(voltage, "SvVoltage.TopologicalNode").cls == "TopologicalNode"


@pytest.mark.parametrize("version", CGMES_SETS)
def test_cgmes_without_boundary_warns_and_reports_dangling(version: str) -> None:
    files = cgmes_files(version)
    boundary_ids = {h.id for h in read_cim(files).headers if "Boundary" in " ".join(h.profiles)}
    assert boundary_ids
    model = read_cim([p for p in files if "_BD" not in p.name])
    assert any(any(b in w for b in boundary_ids) and "not among the inputs" in w for w in model.warnings)
    assert model.dangling_count > 0
    first = model.dangling[0]
    assert Path(first.file).name in {p.name for p in files} and first.line > 0


@pytest.mark.parametrize("version", CGMES_SETS)
def test_cgmes_without_eq_warns_and_reports_dangling(version: str) -> None:
    files = cgmes_files(version)
    full = read_cim(files)
    eq = [h for h in full.headers if any("Equipment" in p and "Boundary" not in p for p in h.profiles)]
    assert len(eq) == 1
    model = read_cim([p for p in files if p.name != Path(eq[0].file).name])
    assert any(eq[0].id in w and "not among the inputs" in w for w in model.warnings)
    assert any("defined in no file" in w for w in model.warnings)  # SSH/TP descriptions of EQ objects
    assert model.dangling_count > 0


# -- identifiers and class spellings ---------------------------------------------------------------------


def test_normalise_id_spellings() -> None:
    spellings = ["urn:uuid:ABC-1", "#_abc-1", "_ABC-1", "abc-1", " #_Abc-1 ", "urn:uuid:_abc-1"]
    assert {normalise_id(s) for s in spellings} == {"abc-1"}


def test_rdf_id_about_and_resource_spellings_meet(tmp_path: Path) -> None:
    defining = write(
        tmp_path / "eq.xml",
        doc(
            '<cim:ConnectivityNode rdf:ID="_ABC"><cim:IdentifiedObject.name>n1</cim:IdentifiedObject.name>'
            "</cim:ConnectivityNode>\n"
            '<cim:Terminal rdf:ID="_T1"><cim:Terminal.ConnectivityNode rdf:resource="urn:uuid:ABC"/></cim:Terminal>\n'
            '<cim:Terminal rdf:about="urn:uuid:t2"><cim:Terminal.ConnectivityNode rdf:resource="#_abc"/></cim:Terminal>'
        ),
    )
    describing = write(
        tmp_path / "ssh.xml",
        doc(
            '<cim:ConnectivityNode rdf:about="urn:uuid:abc"><cim:IdentifiedObject.description>d</cim:IdentifiedObject'
            ".description></cim:ConnectivityNode>\n"
            '<cim:Terminal rdf:about="#_t1"><cim:ACDCTerminal.connected>true</cim:ACDCTerminal.connected>'
            "</cim:Terminal>\n"
            '<cim:Terminal rdf:about="_T2"><cim:ACDCTerminal.connected>false</cim:ACDCTerminal.connected>'
            "</cim:Terminal>"
        ),
    )
    model = read_cim([defining, describing])
    assert sorted(model.objects) == ["abc", "t1", "t2"]
    node = model.objects["abc"]
    assert node.attrs == {"IdentifiedObject.name": "n1", "IdentifiedObject.description": "d"}
    assert model.objects["t1"].attrs == {"ACDCTerminal.connected": "true"}
    assert model.objects["t2"].attrs == {"ACDCTerminal.connected": "false"}
    for terminal in ("t1", "t2"):
        assert model.follow(model.objects[terminal], "Terminal.ConnectivityNode") is node
    assert model.dangling_count == 0


@pytest.mark.parametrize("spelling", ["PhotoVoltaicUnit", "PhotovoltaicUnit"])
def test_both_pv_spellings_count_as_photovoltaic_unit(spelling: str, tmp_path: Path) -> None:
    path = write(
        tmp_path / "pv.xml",
        doc(
            f'<cim:{spelling} rdf:about="urn:uuid:pv1"><cim:IdentifiedObject.name>pv</cim:IdentifiedObject.name>'
            f'<cim:PowerElectronicsUnit.PowerElectronicsConnection rdf:resource="urn:uuid:pec1"/></cim:{spelling}>\n'
            '<cim:PowerElectronicsConnection rdf:about="urn:uuid:pec1"/>'
        ),
    )
    model = read_cim([path])
    assert model.class_counts["PhotovoltaicUnit"] == 1
    assert "PhotoVoltaicUnit" not in model.class_counts
    assert model.of("PhotovoltaicUnit")[0].attrs["IdentifiedObject.name"] == "pv"
    assert model.class_spellings[spelling] == 1  # what the file said is still known
    assert model.dangling_count == 0


def test_values_stay_text_float_in_integer_field_and_garbage(tmp_path: Path) -> None:
    path = write(
        tmp_path / "odd.xml",
        doc(
            '<cim:Terminal rdf:about="urn:uuid:t1"><cim:ACDCTerminal.sequenceNumber>1.0</cim:ACDCTerminal'
            ".sequenceNumber></cim:Terminal>\n"
            '<cim:PowerTransformerEnd rdf:about="urn:uuid:e1"><cim:TransformerEnd.endNumber>2.5e0</cim:TransformerEnd'
            ".endNumber><cim:PowerTransformerEnd.ratedS>lots</cim:PowerTransformerEnd.ratedS>"
            "<cim:PowerTransformerEnd.ratedU></cim:PowerTransformerEnd.ratedU></cim:PowerTransformerEnd>\n"
            '<cim:ACLineSegment rdf:about="urn:uuid:l1"><cim:Conductor.length>  NaN  </cim:Conductor.length>'
            "<cim:ACLineSegment.r>1,5</cim:ACLineSegment.r><cim:ACLineSegment.x>&lt;x&gt;</cim:ACLineSegment.x>"
            "</cim:ACLineSegment>"
        ),
    )
    model = read_cim([path])
    assert model.objects["t1"].attrs["ACDCTerminal.sequenceNumber"] == "1.0"
    end = model.objects["e1"].attrs
    assert end == {
        "TransformerEnd.endNumber": "2.5e0",
        "PowerTransformerEnd.ratedS": "lots",
        "PowerTransformerEnd.ratedU": "",
    }
    line = model.objects["l1"].attrs
    assert line == {"Conductor.length": "NaN", "ACLineSegment.r": "1,5", "ACLineSegment.x": "<x>"}


# -- bad input -------------------------------------------------------------------------------------------


def read_error(*paths: Path) -> CimReadError:
    with pytest.raises(CimReadError) as caught:
        read_cim(list(paths))
    return caught.value


def assert_names(error: CimReadError, path: Path | str, *, line: bool) -> None:
    assert str(error).startswith(str(path)), str(error)
    if line:
        assert error.line and error.line > 0 and f"{path}:{error.line}:" in str(error), str(error)


@pytest.mark.parametrize(
    ("name", "data", "has_line", "reason"),
    [
        ("not_xml.xml", b"this is not XML at all\n", True, "broken XML"),
        ("html.xml", b"<!doctype html>\n<html><body><p>Moved</body></html>", True, "broken XML"),
        ("xhtml.xml", b"<html>\n<body><p>Moved</p></body></html>", True, "not an RDF/XML document"),
        ("other.xml", b'<?xml version="1.0"?>\n<feed xmlns="http://www.w3.org/2005/Atom"><id>x</id></feed>', True, "<"),
        ("empty.xml", b"", False, "XML"),
        ("blank.xml", b"  \n\n", False, "XML"),
        ("binary.xml", bytes(range(256)) * 4, False, "XML"),
    ],
)
def test_unreadable_documents(name: str, data: bytes, has_line: bool, reason: str, tmp_path: Path) -> None:
    path = write(tmp_path / name, data)
    error = read_error(path)
    assert_names(error, path, line=has_line)
    assert reason in error.reason


def test_xml_that_is_not_rdf_names_its_root(tmp_path: Path) -> None:
    path = write(tmp_path / "atom.xml", b'<?xml version="1.0"?>\n<feed xmlns="http://www.w3.org/2005/Atom"/>')
    error = read_error(path)
    assert "not an RDF/XML document" in error.reason and "feed" in error.reason
    assert error.line == 2


def test_truncated_fixture(tmp_path: Path) -> None:
    data = shared_path(*CIMGRAPH, "ieee13.xml").read_bytes()
    path = write(tmp_path / "ieee13_half.xml", data[: len(data) // 2])
    error = read_error(path)
    assert_names(error, path, line=True)
    assert error.line >= data[: len(data) // 2].count(b"\n")  # where the text ran out


def billion_laughs(encoding: str = "utf-8", padding: str = "") -> bytes:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    )
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n{padding}<!DOCTYPE rdf:RDF [{entities}]>\n'
        + HEAD.split("\n", 1)[1]
        + '<cim:Terminal rdf:about="urn:uuid:t1"><cim:IdentifiedObject.name>&lol9;</cim:IdentifiedObject.name>'
        + "</cim:Terminal>\n"
        + TAIL
    )
    return text.encode(encoding)


def external_entity(target: Path, encoding: str = "utf-8", padding: str = "") -> bytes:
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n{padding}'
        f'<!DOCTYPE rdf:RDF [<!ENTITY xxe SYSTEM "{target.as_uri()}">]>\n'
        + HEAD.split("\n", 1)[1]
        + '<cim:Terminal rdf:about="urn:uuid:t1"><cim:IdentifiedObject.name>&xxe;</cim:IdentifiedObject.name>'
        + "</cim:Terminal>\n"
        + TAIL
    )
    return text.encode(encoding)


# A DOCTYPE past the reader's first look (a long comment before it) or in UTF-16 must be refused as well.
EVASIONS = {
    "plain": {},
    "after_70kb_comment": {"padding": "<!--" + "x" * 70_000 + "-->\n"},
    "utf16": {"encoding": "utf-16"},
}


@pytest.mark.parametrize("variant", EVASIONS)
def test_entity_bomb_is_refused_quickly(variant: str, tmp_path: Path) -> None:
    path = write(tmp_path / "bomb.xml", billion_laughs(**EVASIONS[variant]))
    started = time.perf_counter()
    error = read_error(path)
    assert time.perf_counter() - started < 1.0
    assert_names(error, path, line=False)
    assert "DTD" in error.reason


@pytest.mark.parametrize("variant", EVASIONS)
def test_external_entity_is_refused_without_reading_the_file(variant: str, tmp_path: Path) -> None:
    secret = write(tmp_path / "secret.txt", "TOP-SECRET-CONTENT")
    path = write(tmp_path / "xxe.xml", external_entity(secret, **EVASIONS[variant]))
    error = read_error(path)
    assert_names(error, path, line=False)
    assert "DTD" in error.reason and "TOP-SECRET" not in str(error)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "model.xml"
    error = read_error(path)
    assert_names(error, path, line=False)
    assert "no such file" in error.reason


def test_folder_without_xml(tmp_path: Path) -> None:
    write(tmp_path / "notes.txt", "not a model")
    error = read_error(tmp_path)
    assert_names(error, tmp_path, line=False)
    assert ".xml" in error.reason


def cgmes_zip(tmp_path: Path, method: int = zipfile.ZIP_DEFLATED) -> tuple[Path, zipfile.ZipInfo]:
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w", method) as zf:
        for path in cgmes_files("microgrid-be-2.4.15"):
            zf.write(path, path.name)
    with zipfile.ZipFile(archive) as zf:
        first = sorted(zf.infolist(), key=lambda i: i.filename)[0]
    return archive, first


def member_data_offset(data: bytes, info: zipfile.ZipInfo) -> int:
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    return info.header_offset + 30 + name_length + extra_length


@pytest.mark.parametrize("where", ["deflate_start", "deflate_end", "local_header", "compression_method"])
def test_zip_with_a_damaged_member(where: str, tmp_path: Path) -> None:
    archive, member = cgmes_zip(tmp_path)
    data = bytearray(archive.read_bytes())
    start = member_data_offset(data, member)
    if where == "deflate_start":  # zlib.error from the decompressor
        data[start + 2 : start + 10] = bytes(b ^ 0xFF for b in data[start + 2 : start + 10])
    elif where == "deflate_end":  # decompresses, but the CRC does not match
        end = start + member.compress_size
        data[end - 6 : end - 2] = bytes(b ^ 0xFF for b in data[end - 6 : end - 2])
    elif where == "local_header":
        data[member.header_offset : member.header_offset + 4] = b"XXXX"
    else:  # an unknown compression method in the central directory
        central = data.find(b"PK\x01\x02")
        data[central + 10 : central + 12] = struct.pack("<H", 99)
    archive.write_bytes(bytes(data))
    error = read_error(archive)
    assert str(error).startswith(f"{archive}!{member.filename}"), str(error)


def test_zip_with_a_damaged_directory(tmp_path: Path) -> None:
    archive, _ = cgmes_zip(tmp_path)
    data = bytearray(archive.read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central : central + 4] = b"XXXX"
    archive.write_bytes(bytes(data))
    error = read_error(archive)
    assert_names(error, archive, line=False)
    assert "zip" in error.reason


def test_stored_zip_with_flipped_bytes(tmp_path: Path) -> None:
    archive, member = cgmes_zip(tmp_path, zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    start = member_data_offset(data, member)
    data[start + 3000] ^= 0xFF
    archive.write_bytes(bytes(data))
    error = read_error(archive)
    assert str(error).startswith(f"{archive}!{member.filename}"), str(error)


def test_zip_without_xml(tmp_path: Path) -> None:
    archive = tmp_path / "empty.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    error = read_error(archive)
    assert_names(error, archive, line=False)


def test_one_bad_file_of_a_set_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    shutil.copytree(shared_path(*CGMES, "microgrid-be-3.0"), folder)
    victim = sorted(folder.glob("*_SSH_*.xml"))[0]
    victim.chmod(0o644)
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) * 2 // 3])
    error = read_error(folder)
    assert_names(error, victim, line=True)


# -- fuzz ------------------------------------------------------------------------------------------------

SMALL = doc(
    '<cim:Feeder rdf:about="urn:uuid:F1"><cim:IdentifiedObject.name>f</cim:IdentifiedObject.name></cim:Feeder>\n'
    '<cim:ConnectivityNode rdf:about="urn:uuid:N1"><cim:ConnectivityNode.ConnectivityNodeContainer '
    'rdf:resource="urn:uuid:F1"/></cim:ConnectivityNode>\n'
    '<cim:ACLineSegment rdf:about="urn:uuid:L1"><cim:Conductor.length>12.5</cim:Conductor.length>'
    '<cim:Equipment.EquipmentContainer rdf:resource="urn:uuid:F1"/></cim:ACLineSegment>\n'
    '<cim:Terminal rdf:about="urn:uuid:T1"><cim:ACDCTerminal.sequenceNumber>1</cim:ACDCTerminal.sequenceNumber>'
    '<cim:Terminal.ConductingEquipment rdf:resource="urn:uuid:L1"/>'
    '<cim:Terminal.ConnectivityNode rdf:resource="urn:uuid:N1"/>'
    '<cim:Terminal.phases rdf:resource="http://iec.ch/TC57/CIM100#PhaseCode.ABC"/></cim:Terminal>\n'
    '<cim:PhotoVoltaicUnit rdf:ID="_PV1"><cim:IdentifiedObject.name>pv &amp; co</cim:IdentifiedObject.name>'
    "</cim:PhotoVoltaicUnit>\n"
)

TAGS = [
    "<cim:Terminal>",
    "</cim:Terminal>",
    '<cim:Terminal rdf:about="urn:uuid:N1">',
    '<cim:X rdf:resource="#_nowhere"/>',
    '<cim:Y rdf:resource=""/>',
    "<rdf:RDF>",
    "</rdf:RDF>",
    '<rdf:RDF xmlns:rdf="urn:not-rdf">',
    '<md:FullModel rdf:about="urn:uuid:m1"><md:Model.DependentOn rdf:resource="urn:uuid:m0"/></md:FullModel>',
    '<!DOCTYPE r [<!ENTITY e "x">]>',
    "&e;",
    "&amp;",
    "&#0;",
    "<![CDATA[<cim:Z/>]]>",
    "<?pi data?>",
    "<!-- c -->",
    '<a:b xmlns:a="urn:x"><a:c/></a:b>',
    "<",
    ">",
    '"',
    "\x00",
    "\ufeff",
]


def mutate(data: bytes, operations: list[tuple[str, int, object]]) -> bytes:
    out = bytearray(data)
    for kind, position, payload in operations:
        at = position % (len(out) + 1)
        if kind == "truncate":
            del out[at:]
        elif kind == "replace" and out:
            out[min(at, len(out) - 1)] = int(payload)  # type: ignore[call-overload]
        elif kind == "insert_tag":
            out[at:at] = TAGS[int(payload) % len(TAGS)].encode()  # type: ignore[call-overload]
        elif kind == "insert_bytes":
            out[at:at] = payload  # type: ignore[assignment]
    return bytes(out)


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("truncate"), st.integers(0, len(SMALL)), st.none()),
        st.tuples(st.just("replace"), st.integers(0, len(SMALL)), st.integers(0, 255)),
        st.tuples(st.just("insert_tag"), st.integers(0, len(SMALL)), st.integers(0, len(TAGS) - 1)),
        st.tuples(st.just("insert_bytes"), st.integers(0, len(SMALL)), st.binary(min_size=1, max_size=8)),
    ),
    min_size=1,
    max_size=4,
)


def test_small_document_is_valid(tmp_path: Path) -> None:
    model = read_cim([write(tmp_path / "small.xml", SMALL)])
    assert len(model.objects) == 5 and model.dangling_count == 0 and model.warnings == []
    assert model.objects["pv1"].attrs["IdentifiedObject.name"] == "pv & co"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_fuzzed_documents_read_or_raise_cim_read_error(operations: list, tmp_path: Path) -> None:
    path = write(tmp_path / "fuzz.xml", mutate(SMALL, operations))
    try:
        model = read_cim([path])
    except CimReadError as error:
        assert str(error).startswith(str(path))
    else:
        assert isinstance(model, CimModel)
        for obj in model.objects.values():
            assert isinstance(obj.cls, str) and all(isinstance(v, str) for v in obj.attrs.values())


# -- progress --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("parts", [(*CIMGRAPH, "ieee123_pv.xml"), (*CGMES, "microgrid-be-2.4.15")], ids=str)
def test_progress_counts_bytes_up_to_the_total(parts: tuple[str, ...]) -> None:
    path = shared_path(*parts)
    total = sum(p.stat().st_size for p in ([path] if path.is_file() else path.glob("*.xml")))
    calls: list[tuple[int, int]] = []
    read_cim([path], progress=lambda done, of: calls.append((done, of)))
    assert calls, "progress was never called"
    done = [c[0] for c in calls]
    assert all(of == total for _, of in calls)
    assert done == sorted(done) and done[-1] == total
    assert len(set(done)) >= 2
