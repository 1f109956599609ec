"""The IEEE 13-node test feeder as a CIM100 RDF/XML document, generated for the demo.

The demo must run on a machine that has nothing but the installed package, so it cannot read a fixture
file; it writes its own CIM serialisation of the feeder from the published IEEE 13 data (bus names, line
lengths, transformer sizes, spot loads) and then reads it back through the real CIM reader and network
view, as a user's model would be. Ratings on lines are the conductors' ampacities (ACSR 556,500 26/7 on
the main line, 1/0 and #4/0 on laterals), sized from the public line configurations.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

CIM = "http://iec.ch/TC57/CIM100#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_NAMESPACE = uuid.UUID("6f1c2c1e-54a8-4f39-9b7e-13a0de0c0013")

FEET = 0.3048


@dataclass(frozen=True)
class Line:
    name: str
    bus1: str
    bus2: str
    length_ft: float
    ampacity_a: int


@dataclass(frozen=True)
class Load:
    bus: str
    p_kw: int
    q_kvar: int


LINES = [
    Line("650632", "rg60", "632", 2000, 730),
    Line("632670", "632", "670", 667, 730),
    Line("670671", "670", "671", 1333, 730),
    Line("671680", "671", "680", 1000, 730),
    Line("632633", "632", "633", 500, 340),
    Line("632645", "632", "645", 500, 230),
    Line("645646", "645", "646", 300, 230),
    Line("692675", "692", "675", 500, 329),
    Line("671684", "671", "684", 300, 230),
    Line("684611", "684", "611", 300, 230),
    Line("684652", "684", "652", 800, 165),
]
LOADS = [
    Load("634", 400, 290),
    Load("645", 170, 125),
    Load("646", 230, 132),
    Load("652", 128, 86),
    Load("671", 1155, 660),
    Load("675", 843, 462),
    Load("692", 170, 151),
    Load("611", 170, 80),
    Load("670", 200, 116),
]
# (name, from bus, to bus, kVA, high kV, low kV, voltage regulator?)
TRANSFORMERS = [
    ("sub", "sourcebus", "650", 5000, 115.0, 4.16, False),
    ("reg", "650", "rg60", 5000, 4.16, 4.16, True),
    ("xfm1", "633", "634", 500, 4.16, 0.48, False),
]
SWITCH = ("671692", "671", "692")


def _id(kind: str, name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{kind}:{name}')}".upper().replace("URN:UUID:", "urn:uuid:")


class _Writer:
    def __init__(self) -> None:
        self.root = etree.Element(f"{{{RDF}}}RDF", nsmap={"cim": CIM, "rdf": RDF})

    def obj(self, cls: str, kind: str, name: str, **props: object) -> str:
        ident = _id(kind, name)
        elem = etree.SubElement(self.root, f"{{{CIM}}}{cls}", {f"{{{RDF}}}about": ident})
        etree.SubElement(elem, f"{{{CIM}}}IdentifiedObject.mRID").text = ident.removeprefix("urn:uuid:")
        etree.SubElement(elem, f"{{{CIM}}}IdentifiedObject.name").text = name
        for prop, value in props.items():
            prop_name = prop.replace("__", ".")
            if isinstance(value, tuple):  # a reference: (kind, name)
                etree.SubElement(elem, f"{{{CIM}}}{prop_name}", {f"{{{RDF}}}resource": _id(*value)})
            else:
                etree.SubElement(elem, f"{{{CIM}}}{prop_name}").text = str(value)
        return ident

    def terminal(self, equipment: tuple[str, str], bus: str, sequence: int) -> None:
        kind, name = equipment
        self.obj(
            "Terminal",
            "terminal",
            f"{name}_T{sequence}",
            Terminal__ConductingEquipment=(kind, name),
            Terminal__ConnectivityNode=("node", bus),
            ACDCTerminal__sequenceNumber=sequence,
        )


def ieee13_document() -> bytes:
    """The feeder as CIM100 RDF/XML (CIMHub conventions: urn:uuid ids, Feeder container, CurrentLimits)."""
    w = _Writer()
    w.obj("BaseVoltage", "bv", "BV_115", BaseVoltage__nominalVoltage=115000)
    w.obj("BaseVoltage", "bv", "BV_4.16", BaseVoltage__nominalVoltage=4160)
    w.obj("BaseVoltage", "bv", "BV_0.48", BaseVoltage__nominalVoltage=480)
    w.obj("GeographicalRegion", "region", "IEEE")
    w.obj("SubGeographicalRegion", "subregion", "Small", SubGeographicalRegion__Region=("region", "IEEE"))
    w.obj("Substation", "substation", "sub1", Substation__Region=("subregion", "Small"))
    w.obj("Feeder", "feeder", "ieee13nodeckt", Feeder__NormalEnergizingSubstation=("substation", "sub1"))
    container = {"Equipment__EquipmentContainer": ("feeder", "ieee13nodeckt")}
    buses = {"sourcebus", "650", "rg60"} | {b for line in LINES for b in (line.bus1, line.bus2)}
    buses |= {"634", "692"}
    for bus in sorted(buses):
        w.obj("ConnectivityNode", "node", bus, ConnectivityNode__ConnectivityNodeContainer=("feeder", "ieee13nodeckt"))
    w.obj("EnergySource", "source", "source", EnergySource__nominalVoltage=115000, **container)
    w.terminal(("source", "source"), "sourcebus", 1)
    for line in LINES:
        w.obj(
            "ACLineSegment",
            "line",
            line.name,
            Conductor__length=round(line.length_ft * FEET, 3),
            ConductingEquipment__BaseVoltage=("bv", "BV_4.16"),
            **container,
        )
        w.terminal(("line", line.name), line.bus1, 1)
        w.terminal(("line", line.name), line.bus2, 2)
        w.obj("OperationalLimitSet", "ols", line.name, OperationalLimitSet__Terminal=("terminal", f"{line.name}_T1"))
        w.obj(
            "CurrentLimit",
            "cl",
            line.name,
            CurrentLimit__value=line.ampacity_a,
            OperationalLimit__OperationalLimitSet=("ols", line.name),
        )
    for name, bus1, bus2, kva, kv_high, kv_low, _regulator in TRANSFORMERS:
        w.obj("PowerTransformer", "xf", name, **container)
        for end, (bus, kv) in enumerate(((bus1, kv_high), (bus2, kv_low)), start=1):
            w.terminal(("xf", name), bus, end)
            w.obj(
                "PowerTransformerEnd",
                "xfend",
                f"{name}_{end}",
                PowerTransformerEnd__PowerTransformer=("xf", name),
                PowerTransformerEnd__ratedS=kva * 1000,
                PowerTransformerEnd__ratedU=int(kv * 1000),
                TransformerEnd__endNumber=end,
                TransformerEnd__Terminal=("terminal", f"{name}_T{end}"),
            )
    w.obj("TapChangerControl", "tapctl", "reg", RegulatingControl__mode="voltage")
    w.obj(
        "RatioTapChanger",
        "tap",
        "reg",
        RatioTapChanger__TransformerEnd=("xfend", "reg_2"),
        TapChanger__TapChangerControl=("tapctl", "reg"),
    )
    name, bus1, bus2 = SWITCH
    w.obj("LoadBreakSwitch", "switch", name, Switch__normalOpen="false", **container)
    w.terminal(("switch", name), bus1, 1)
    w.terminal(("switch", name), bus2, 2)
    for load in LOADS:
        voltage = ("bv", "BV_0.48") if load.bus == "634" else ("bv", "BV_4.16")
        w.obj(
            "EnergyConsumer",
            "load",
            f"load_{load.bus}",
            EnergyConsumer__p=load.p_kw * 1000,
            EnergyConsumer__q=load.q_kvar * 1000,
            ConductingEquipment__BaseVoltage=voltage,
            **container,
        )
        w.terminal(("load", f"load_{load.bus}"), load.bus, 1)
    return etree.tostring(w.root, xml_declaration=True, encoding="utf-8", pretty_print=True)


def write_ieee13(path: Path) -> Path:
    path.write_bytes(ieee13_document())
    return path
