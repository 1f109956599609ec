"""The CIM network view: feeders, serving transformers, ratings, points of use, DER, and the canonical tree.

Reference models come from ../shared (skipped with a message where it is absent); the edge cases (bad numbers,
usage points, end devices, open switches, awkward names) use a small model written here.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.config import Settings
from gateway.model import Envelope, LocationKind, LocationTree, Party, ResourceKind, Role, Source, content_version
from gateway.protocols.cim.mapper import to_canonical, transport_limits
from gateway.protocols.cim.network import build_network
from gateway.protocols.cim.reader import CimModel, read_cim
from gateway.protocols.cim.view import NetworkView, summary_of
from gateway.store import Store

from conftest import shared_path

CONSUMERS = ("EnergyConsumer", "ConformLoad", "NonConformLoad")


def load(*parts: str) -> tuple[CimModel, NetworkView]:
    model = read_cim([shared_path("fixtures", "cim", *parts)])
    return model, build_network(model)


@pytest.fixture(scope="module")
def ieee13() -> tuple[CimModel, NetworkView]:
    return load("cimgraph", "ieee13.xml")


def points_of(view: NetworkView, *classes: str) -> list:
    return [p for p in view.points if p.cls in classes]


# -- IEEE 13 ---------------------------------------------------------------------------------------------


def test_ieee13_every_consumer_and_connection_has_a_feeder_and_a_transformer(ieee13) -> None:
    model, view = ieee13
    assert [f.name for f in view.feeders] == ["ieee13nodeckt"]
    feeder = view.feeders[0]
    assert feeder.substation_id == model.of("Substation")[0].id and not feeder.pseudo
    consumers, connections = points_of(view, "EnergyConsumer"), points_of(view, "PowerElectronicsConnection")
    assert (len(consumers), len(connections)) == (16, 5)
    for point in consumers + connections:
        assert point.feeder_id == feeder.id, point
        assert point.transformer_id is not None, point
    assert view.warnings == []


def test_ieee13_transformer_ratings_and_regulators(ieee13) -> None:
    _, view = ieee13
    by_name = {t.name: t for t in view.transformers}
    assert all(t.rated_kva is not None and t.rated_kva > 0 for t in view.transformers)
    assert by_name["sub3"].rated_kva == 5000 and by_name["xfm1"].rated_kva == 500
    assert by_name["Reg"].rated_kva == Decimal("4998")  # three 1666 kVA tanks, from their datasheets
    assert by_name["tpoletop"].rated_kva == 5  # a tank rated through TransformerTankInfo/TransformerEndInfo
    regulators = {t.id for t in view.transformers if t.is_regulator}
    assert regulators == {by_name["Reg"].id}
    assert not any(p.transformer_id in regulators for p in view.points)
    # the regulator is on the path of the primary loads, but not their serving transformer
    load_671 = next(p for p in view.points if p.name == "671")
    assert load_671.transformer_id == by_name["sub3"].id
    assert load_671.transformer_path == (by_name["sub3"].id, by_name["Reg"].id)
    house = [p for p in view.points if p.name == "house"]
    assert {p.transformer_id for p in house} == {by_name["tpoletop"].id}


def test_ieee13_der_inventory(ieee13) -> None:
    _, view = ieee13
    kinds = sorted(d.kind for d in view.der)
    assert kinds == ["battery", "battery", "battery", "pv", "pv"]
    connections = {p.id for p in points_of(view, "PowerElectronicsConnection")}
    for der in view.der:
        assert der.point_id in connections
        assert der.rated_kva is not None and der.rated_kva > 0
        assert der.max_kw is not None and der.max_kw > 0
    assert all(d.energy_kwh and d.energy_kwh > 0 for d in view.der if d.kind == "battery")
    inventory = {entry["kind"]: entry for entry in summary_of(view)["der"]}
    assert (inventory["battery"]["count"], inventory["pv"]["count"]) == (3, 2)
    assert inventory["pv"]["rated_kva"] == 305


def test_ieee13_line_ratings_wherever_the_file_has_current_limits(ieee13) -> None:
    model, view = ieee13
    sets_with_current = {
        s for limit in model.of("CurrentLimit") for s in limit.refs.get("OperationalLimit.OperationalLimitSet", ())
    }
    limited = {
        t.ref("Terminal.ConductingEquipment")
        for t in model.of("Terminal")
        if sets_with_current & set(t.refs.get("ACDCTerminal.OperationalLimitSet", ()))
    }
    lines = [line for line in view.lines if line.id in limited]
    assert len(lines) == len(view.lines) == 11
    for line in lines:
        assert line.rated_amps is not None and line.rated_amps > 0, line
        assert line.rated_kva is not None and line.rated_kva > 0, line
    coverage = view.coverage
    assert (coverage.lines_rated, coverage.transformers_rated) == (11, 4)


def test_ieee13_normal_limit_not_emergency(ieee13) -> None:
    _, view = ieee13
    line = next(line for line in view.lines if line.name == "650632")
    assert line.rated_amps == 730 and line.nominal_kv == Decimal("4.16") and line.phases == 3
    assert line.rated_kva == (Decimal(3).sqrt() * Decimal("4.16") * 730).quantize(Decimal("0.001"))


def test_ieee13_canonical_tree_validates_and_posts(ieee13, tmp_path: Path) -> None:
    _, view = ieee13
    locations, resources = to_canonical(view, owner_id="utility-1", prefix="ieee13.")
    tree = LocationTree(locations)
    service_points = [loc for loc in locations if loc.kind is LocationKind.SERVICE_POINT]
    assert len(service_points) == 21  # one per point of use
    assert {loc.kind for loc in tree.path(service_points[0].id)} >= {LocationKind.SUBSTATION, LocationKind.FEEDER}
    transformers = [loc for loc in locations if loc.kind is LocationKind.TRANSFORMER]
    assert len(transformers) == 3 and all(loc.rating_kva and loc.rating_kva > 0 for loc in transformers)
    feeder = next(loc for loc in locations if loc.kind is LocationKind.FEEDER)
    assert feeder.rating_kva == 5000 and feeder.network_ref == view.feeders[0].id
    assert all(loc.id.startswith("ieee13.") and " " not in loc.id and "/" not in loc.id for loc in locations)
    assert len({loc.network_ref for loc in locations}) == len(locations)
    kinds = sorted(r.kind.value for r in resources)
    assert kinds.count("load") == 16 and kinds.count("battery") == 3 and kinds.count("pv") == 2
    assert all(r.owner_id == "utility-1" and r.location_id in tree for r in resources)

    store = Store(f"sqlite:///{tmp_path / 'cim.db'}")
    try:
        app = create_app(Settings(), store=store)
        with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
            operator = Party(id="utility-1", name="Utility", roles=[Role.DSO])
            for path, obj in (
                [("parties", operator)]
                + [("locations", loc) for loc in locations]
                + [("resources", r) for r in resources]
            ):
                response = http.post(f"/v1/{path}", json=obj.model_dump(mode="json", exclude_none=True))
                assert response.status_code == 201, (path, obj.id, response.text)
    finally:
        store.close()
    for obj in [*locations, *resources]:
        native = getattr(obj, "network_ref", None) or obj.id
        source = Source(protocol="cim", peer="ieee13.xml", native_id=native, version=content_version(obj))
        Envelope.model_validate_json(Envelope(payload=obj, source=source).model_dump_json())


def test_ieee13_transport_limits(ieee13) -> None:
    _, view = ieee13
    limits = transport_limits(view, prefix="ieee13.")
    locations, _ = to_canonical(view, owner_id="utility-1", prefix="ieee13.")
    rated = {loc.id: loc.rating_kva for loc in locations if loc.rating_kva is not None}
    assert limits == rated
    assert limits["ieee13.xf-xfm1"] == 500 and limits["ieee13.fdr-ieee13nodeckt"] == 5000


# -- IEEE 123 with PV ------------------------------------------------------------------------------------


def test_ieee123_pv_every_consumer_and_der_mapped() -> None:
    _, view = load("cimgraph", "ieee123_pv.xml")
    regulators = {t.id for t in view.transformers if t.is_regulator}
    consumers, connections = points_of(view, "EnergyConsumer"), points_of(view, "PowerElectronicsConnection")
    assert (len(consumers), len(connections)) == (91, 14)
    assert len(view.der) == 14 and all(d.kind == "pv" and d.rated_kva for d in view.der)
    for point in consumers + connections:
        assert point.feeder_id == view.feeders[0].id
        # a point with no serving transformer is fed from the 4.16 kV source through regulators only
        if point.transformer_id is None:
            assert point.transformer_path and set(point.transformer_path) <= regulators, point
        else:
            assert point.transformer_id not in regulators
    assert sum(1 for p in consumers + connections if p.transformer_id) == 82
    assert view.coverage.lines_rated == view.coverage.lines == 118
    LocationTree(to_canonical(view, owner_id="dso")[0])


# -- CGMES ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["microgrid-be-2.4.15", "microgrid-be-3.0"])
def test_cgmes_builds_with_ratings(folder: str) -> None:
    _, view = load("cgmes", folder)
    assert "CGMES" in view.units
    assert view.transformers and all(t.rated_kva and t.rated_kva > 0 for t in view.transformers)
    # ratedS is in MVA: a 650 MVA transformer is 650000 kVA, not 0.65
    assert max(t.rated_kva for t in view.transformers) == 650000
    assert view.lines and all(line.rated_amps and line.rated_amps > 0 for line in view.lines)
    assert all(line.rated_kva and line.rated_kva > 0 for line in view.lines)
    assert all(p.feeder_id for p in view.points)
    assert any(f.pseudo for f in view.feeders) and any("pseudo-feeder" in note for note in view.notes)
    assert len(points_of(view, *CONSUMERS)) == 3 and len(points_of(view, "SynchronousMachine")) == 2
    locations, resources = to_canonical(view, owner_id="tso", prefix=f"{folder}:")
    LocationTree(locations)
    assert len(resources) == 5


def test_cgmes_limit_sets_tied_by_equipment_are_read(tmp_path: Path) -> None:
    """CGMES may tie a limit set to its equipment instead of a terminal, and a limit may be listed by its set."""
    path = write_model(tmp_path, LIMITS_BY_EQUIPMENT)
    view = build_network(read_cim([path]))
    line = view.lines[0]
    assert line.rated_amps == 150  # 200 A is the emergency (TATL) limit; 150 A listed from the set side
    assert line.rated_kva == (Decimal(3).sqrt() * Decimal("0.48") * 150).quantize(Decimal("0.001"))


# -- other reference models ------------------------------------------------------------------------------


def test_node_breaker_and_bus_branch_models_place_every_point() -> None:
    _, maple = load("cimgraph", "maple10nodebreaker.xml")
    assert sum(1 for f in maple.feeders if not f.pseudo) == 11
    assert all(p.feeder_id for p in maple.points) and maple.coverage.points == 25
    _, ieee118 = load("cimgraph", "IEEE118_CIM.xml")
    assert [f.pseudo for f in ieee118.feeders] == [True]
    assert all(p.feeder_id for p in ieee118.points)
    assert {d.kind for d in ieee118.der} == {"generator", "pv", "wind"}
    for view in (maple, ieee118):
        LocationTree(to_canonical(view, owner_id="op")[0])


def test_ieee9500_every_point_mapped() -> None:
    model = read_cim([shared_path("fixtures", "cim", "ieee9500", "ieee9500bal_cim100.xml")])
    started = time.perf_counter()
    view = build_network(model)
    elapsed = time.perf_counter() - started
    print(f"\nbuild_network on IEEE 9500: {elapsed * 1000:.0f} ms")  # reported, not asserted
    consumers = points_of(view, "EnergyConsumer")
    connections = points_of(view, "PowerElectronicsConnection")
    machines = points_of(view, "SynchronousMachine")
    assert (len(consumers), len(connections), len(machines)) == (1275, 180, 12)
    regulators = {t.id for t in view.transformers if t.is_regulator}
    assert len(regulators) == 18
    for point in view.points:
        assert point.feeder_id and point.transformer_id and point.transformer_id not in regulators, point
    assert len(view.open_switches) == 9
    kinds = sorted(d.kind for d in view.der)
    assert kinds.count("pv") == 178 and kinds.count("battery") == 2 and kinds.count("generator") == 12
    assert view.coverage.transformers_rated == view.coverage.transformers == 1305
    assert view.coverage.lines_rated == view.coverage.lines == 3912
    locations, resources = to_canonical(view, owner_id="dso")
    LocationTree(locations)
    assert len(resources) == 1275 + 180 + 12


# -- edge cases on a small model written here ------------------------------------------------------------

HEADER = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<rdf:RDF xmlns:cim="http://iec.ch/TC57/CIM100#" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
)


def obj(cls: str, ident: str, **props: str) -> str:
    """One object (its name defaults to its id); a value starting with '#' is a reference."""
    children = []
    named = {"IdentifiedObject.name": ident, **{k.replace("__", "."): v for k, v in props.items()}}
    for name, value in named.items():
        if value.startswith("#"):
            children.append(f'<cim:{name} rdf:resource="{value}"/>')
        else:
            children.append(f"<cim:{name}>{value}</cim:{name}>")
    return f'<cim:{cls} rdf:ID="{ident}">{"".join(children)}</cim:{cls}>\n'


def terminal(equipment: str, node: str, sequence: str) -> str:
    return obj(
        "Terminal",
        f"{equipment}_t{sequence}",
        Terminal__ConductingEquipment=f"#{equipment}",
        Terminal__ConnectivityNode=f"#{node}",
        ACDCTerminal__sequenceNumber=sequence,
    )


def write_model(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "model.xml"
    path.write_text(HEADER + body + "</rdf:RDF>\n")
    return path


FEEDER = "".join(
    [
        obj("Substation", "S1", IdentifiedObject__name="Main St / North"),
        obj("Feeder", "F1", Feeder__NormalEnergizingSubstation="#S1"),
        obj("BaseVoltage", "BV480", BaseVoltage__nominalVoltage="480.0"),
        *[obj("ConnectivityNode", n, ConnectivityNode__ConnectivityNodeContainer="#F1") for n in ("n0", "n1", "n2")],
        obj("ConnectivityNode", "n3", ConnectivityNode__ConnectivityNodeContainer="#F1"),
        obj("EnergySource", "src", Equipment__EquipmentContainer="#F1"),
        terminal("src", "n0", "1"),
        obj("PowerTransformer", "T1", Equipment__EquipmentContainer="#F1"),
        terminal("T1", "n0", "1.0"),  # a float in an integer field: fine
        terminal("T1", "n1", "2.0"),
        obj(
            "PowerTransformerEnd",
            "T1e1",
            PowerTransformerEnd__PowerTransformer="#T1",
            PowerTransformerEnd__ratedS="5E6",
            PowerTransformerEnd__ratedU="12470",
            TransformerEnd__endNumber="1.0",
            TransformerEnd__Terminal="#T1_t1.0",
        ),
        obj(
            "PowerTransformerEnd",
            "T1e2",
            PowerTransformerEnd__PowerTransformer="#T1",
            PowerTransformerEnd__ratedS="5E6",
            PowerTransformerEnd__ratedU="480",
            TransformerEnd__endNumber="2",
            TransformerEnd__Terminal="#T1_t2.0",
        ),
        obj("ACLineSegment", "L1", ConductingEquipment__BaseVoltage="#BV480", Equipment__EquipmentContainer="#F1"),
        terminal("L1", "n1", "1"),
        terminal("L1", "n2", "2"),
        obj("OperationalLimitSet", "ols1", OperationalLimitSet__Terminal="#L1_t1"),
        obj("CurrentLimit", "cl1", CurrentLimit__value="twelve", OperationalLimit__OperationalLimitSet="#ols1"),
        obj("CurrentLimit", "cl2", CurrentLimit__value="200.0", OperationalLimit__OperationalLimitSet="#ols1"),
        obj(
            "EnergyConsumer",
            "C1",
            EnergyConsumer__p="abc",
            Equipment__EquipmentContainer="#F1",
            Equipment__UsagePoints="#UP1",
        ),
        terminal("C1", "n2", "1"),
        obj("UsagePoint", "UP1"),
        obj("Meter", "M1", EndDevice__UsagePoint="#UP1", EndDevice__isSmartInverter="true"),
        obj(
            "PowerElectronicsConnection",
            "P1",
            PowerElectronicsConnection__ratedS="10000.0",
            Equipment__EquipmentContainer="#F1",
        ),
        terminal("P1", "n2", "1"),
        obj(
            "BatteryUnit",
            "B1",
            PowerElectronicsUnit__PowerElectronicsConnection="#P1",
            BatteryUnit__ratedE="20000",
            PowerElectronicsUnit__maxP="5000",
            PowerElectronicsUnit__minP="-5000",
        ),
        obj(
            "LoadBreakSwitch",
            "SW1",
            Switch__normalOpen="true",
            Switch__open="true",
            Equipment__EquipmentContainer="#F1",
        ),
        terminal("SW1", "n2", "1"),
        terminal("SW1", "n3", "2"),
        obj(
            "EnergyConsumer",
            "C2",
            IdentifiedObject__name="C 2/b",
            EnergyConsumer__p="1500.5",
            Equipment__EquipmentContainer="#F1",
        ),
        terminal("C2", "n3", "3.5"),  # not a whole number: a warning, the terminal still counts
    ]
)

LIMITS_BY_EQUIPMENT = "".join(
    [
        obj("BaseVoltage", "BV", BaseVoltage__nominalVoltage="480"),
        obj("ConnectivityNode", "a"),
        obj("ConnectivityNode", "b"),
        obj("EnergySource", "src"),
        terminal("src", "a", "1"),
        obj("ACLineSegment", "L", ConductingEquipment__BaseVoltage="#BV"),
        terminal("L", "a", "1"),
        terminal("L", "b", "2"),
        obj("OperationalLimitType", "patl", OperationalLimitType__limitType="LimitTypeKind.patl"),
        obj("OperationalLimitType", "tatl", OperationalLimitType__limitType="LimitTypeKind.tatl"),
        obj(
            "OperationalLimitSet",
            "set",
            OperationalLimitSet__Equipment="#L",
            OperationalLimitSet__OperationalLimitValue="#normal",
        ),
        obj("CurrentLimit", "normal", CurrentLimit__normalValue="150", OperationalLimit__OperationalLimitType="#patl"),
        obj(
            "CurrentLimit",
            "emergency",
            CurrentLimit__normalValue="200",
            CurrentLimit__OperationalLimitSet="#set",
            OperationalLimit__OperationalLimitType="#tatl",
        ),
    ]
)


@pytest.fixture
def small(tmp_path: Path) -> NetworkView:
    warnings: list[str] = []
    view = build_network(read_cim([write_model(tmp_path, FEEDER)]), warnings=warnings)
    assert warnings == view.warnings
    return view


def test_bad_numbers_are_warnings_not_exceptions(small: NetworkView) -> None:
    text = "\n".join(small.warnings)
    assert "EnergyConsumer 'C1' (c1): EnergyConsumer.p = 'abc' is not a number" in text
    assert "CurrentLimit 'cl1' (cl1): CurrentLimit.value = 'twelve' is not a number" in text
    assert "ACDCTerminal.sequenceNumber = '3.5' is not a whole number" in text
    assert "'1.0'" not in text and "'2.0'" not in text  # floats in integer fields are read as integers
    assert next(p for p in small.points if p.id == "c1").p_kw is None
    assert next(p for p in small.points if p.id == "c2").p_kw == Decimal("1.5005")
    transformer = small.transformers[0]
    assert transformer.rated_kva == 5000 and transformer.rated_kv == (Decimal("12.47"), Decimal("0.48"))
    assert small.lines[0].rated_amps == 200  # the garbage limit is skipped, the good one kept


def test_open_switch_breaks_connectivity(small: NetworkView) -> None:
    assert small.open_switches == ["sw1"]
    behind = next(p for p in small.points if p.id == "c2")
    assert behind.feeder_id == "f1"  # its Feeder container still places it
    assert behind.transformer_id is None  # not fed through the open switch
    assert any("fed by no source" in note for note in small.notes)
    assert any("open switch" in note for note in small.notes)


def test_usage_points_end_devices_and_both_directions_of_der_links(small: NetworkView) -> None:
    by_id = {p.id: p for p in small.points}
    assert by_id["c1"].usage_point_id == "up1"
    assert (by_id["up1"].feeder_id, by_id["up1"].transformer_id) == ("f1", "t1")
    assert (by_id["m1"].kind, by_id["m1"].usage_point_id, by_id["m1"].transformer_id) == ("smart_inverter", "up1", "t1")
    battery = next(d for d in small.der if d.kind == "battery")  # linked from the unit's side only
    assert (battery.point_id, battery.rated_kva, battery.energy_kwh, battery.max_kw) == ("p1", 10, 20, 5)
    assert any(d.kind == "smart_inverter" and d.id == "m1" for d in small.der)


def test_small_model_canonical_ids_and_sharing(small: NetworkView) -> None:
    locations, resources = to_canonical(small, owner_id="dso-1", prefix="demo ")
    tree = LocationTree(locations)
    ids = {loc.network_ref: loc.id for loc in locations}
    assert ids["s1"] == "demo_sub-Main_St_North"
    assert all(" " not in i and "/" not in i for i in [*ids.values(), *(r.id for r in resources)])
    # the load and the smart inverter share the UsagePoint's service point; the meter has none of its own
    assert "c1" not in ids and "m1" not in ids and "up1" in ids
    located = {r.identities["cim"]: r for r in resources}
    assert located["c1"].location_id == located["m1"].location_id == ids["up1"]
    assert located["m1"].kind is ResourceKind.OTHER
    assert located["b1"].ratings.energy_kwh == 20 and located["b1"].ratings.max_charge_kw == 5
    assert tree[ids["up1"]].parent_id == ids["t1"]
    assert tree[ids["c2"]].parent_id == ids["f1"]  # no serving transformer: directly under the feeder
    assert transport_limits(small, prefix="demo ") == {ids["f1"]: 5000, ids["t1"]: 5000}  # feeder: its head


def test_summary_is_plain_data(ieee13) -> None:
    _, view = ieee13
    summary = summary_of(view)
    assert summary["nodes"] == 22 and summary["feeders"][0]["name"] == "ieee13nodeckt"
    assert summary["feeders"][0]["substation"] == "IEEE13" and summary["feeders"][0]["points"] == 21
    assert summary["coverage"]["lines_rated"] == 11
    assert not any(isinstance(v, Decimal) for entry in summary["der"] for v in entry.values())


def test_without_sources_the_walk_starts_on_the_high_side_of_substation_transformers(tmp_path: Path) -> None:
    body = "".join(
        [
            obj("Substation", "S"),
            obj("VoltageLevel", "HV", VoltageLevel__Substation="#S"),
            obj("VoltageLevel", "LV", VoltageLevel__Substation="#S"),
            obj("ConnectivityNode", "hv", ConnectivityNode__ConnectivityNodeContainer="#HV"),
            obj("ConnectivityNode", "lv", ConnectivityNode__ConnectivityNodeContainer="#LV"),
            obj("ConnectivityNode", "far"),
            obj("PowerTransformer", "T", Equipment__EquipmentContainer="#S"),
            terminal("T", "lv", "1"),  # the low-voltage terminal first: the walk must still start at hv
            terminal("T", "hv", "2"),
            obj(
                "PowerTransformerEnd",
                "e1",
                PowerTransformerEnd__PowerTransformer="#T",
                PowerTransformerEnd__ratedU="12470",
                TransformerEnd__Terminal="#T_t1",
            ),
            obj(
                "PowerTransformerEnd",
                "e2",
                PowerTransformerEnd__PowerTransformer="#T",
                PowerTransformerEnd__ratedU="115000",
                TransformerEnd__Terminal="#T_t2",
            ),
            obj("ACLineSegment", "L"),
            terminal("L", "lv", "1"),
            terminal("L", "far", "2"),
            obj("EnergyConsumer", "C"),
            terminal("C", "far", "1"),
        ]
    )
    view = build_network(read_cim([write_model(tmp_path, body)]))
    assert view.sources == ["t"]
    load_point = next(p for p in view.points if p.id == "c")
    assert load_point.transformer_id == "t"
    feeder = next(f for f in view.feeders if f.id == load_point.feeder_id)
    assert feeder.pseudo and feeder.substation_id == "s" and feeder.name == "S (substation buses)"
    assert view.transformers[0].rated_kva is None and view.coverage.transformers_rated == 0
    LocationTree(to_canonical(view, owner_id="dso")[0])


NUMERIC_FIELDS = [
    "EnergyConsumer.p>abc<",
    "ratedS>5E6<",
    "CurrentLimit.value>200.0<",
    "BatteryUnit.ratedE>20000<",
    "PowerElectronicsConnection.ratedS>10000.0<",
    "BaseVoltage.nominalVoltage>480.0<",
]
XML_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn")), max_size=12)  # what XML can carry


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(XML_TEXT, min_size=len(NUMERIC_FIELDS), max_size=len(NUMERIC_FIELDS)))
def test_any_text_in_numeric_fields_is_never_an_exception(tmp_path: Path, values: list[str]) -> None:
    body = FEEDER
    for placeholder, value in zip(NUMERIC_FIELDS, values, strict=True):
        tag = placeholder.split(">")[0]
        body = body.replace(placeholder, f"{tag}>{escape(value)}<")
    view = build_network(read_cim([write_model(tmp_path, body)]))
    locations, resources = to_canonical(view, owner_id="dso")
    LocationTree(locations)
    assert all(r.ratings.max_kw is None or r.ratings.max_kw > 0 for r in resources)
    summary_of(view)
