"""What the cim-model suite knows about the model under test, computed once per run and shared by its cases.

The DUT is a file, so there is nothing to talk to: the harness reads it with the gateway's own reader
(:func:`~gateway.protocols.cim.reader.read_cim`) and network view
(:func:`~gateway.protocols.cim.network.build_network`) and keeps what the cases check. Reusing them is the
point: a model passes this suite exactly when the gateway can import it without guessing, and the suite never
disagrees with ``tgw cim summary``. The one thing the reader cannot say is whether an id was written twice
with different content (it merges descriptions, as CGMES requires), so :func:`duplicate_definitions` takes a
second look at the XML for that alone: a byte scan of the ids, then a parse of only the files where an id
recurs (a CIMHub feeder writes each id once, so IEEE 9500 costs a regex pass, not a second parse).

Evidence is recorded as :class:`~conformance.framework.Exchange` entries (method ``CHECK``, the path as url)
so the JSON and HTML reports show counts and the first offending ids, with file:line where the reader has them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from lxml import etree

from conformance.framework import Exchange, Target, truncate
from gateway.gcpause import gc_paused
from gateway.protocols.cim.network import build_network
from gateway.protocols.cim.numbers import Numbers
from gateway.protocols.cim.reader import (
    GRAPH_SUFFIXES,
    MD_FULL_MODEL,
    RDF,
    RDF_ABOUT,
    RDF_ID,
    RDF_RESOURCE,
    CimModel,
    CimObject,
    CimReadError,
    expand_sources,
    normalise_id,
    read_cim,
)
from gateway.protocols.cim.topology import Topology, components, topology_of
from gateway.protocols.cim.view import NetworkView

SHOWN = 5  # offending ids quoted in a reason; the evidence lists up to EVIDENCE_LISTED
EVIDENCE_LISTED = 50


@dataclass(slots=True)
class CimDut:
    """The model under test and everything derived from it (``error`` instead when it cannot be read)."""

    path: Path
    model: CimModel | None = None
    view: NetworkView | None = None
    topo: Topology | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    _boundary_files: frozenset[str] | None = None

    def where(self, obj: CimObject | None) -> str:
        """``file:line`` of an object's definition, the file shortened to its name (reports stay readable)."""
        if obj is None or not obj.source:
            return "?"
        return f"{Path(obj.source.split('!')[-1]).name}:{obj.line}"

    def in_boundary_set(self, object_id: str) -> bool:
        """Defined in a CGMES boundary file (EQ_BD/TP_BD): reference data shared by every TSO, not the DUT's own
        network. Its Junctions are markers whose terminals the 2.4.15 boundary set leaves on no node."""
        assert self.model is not None
        if self._boundary_files is None:
            self._boundary_files = frozenset(
                h.file for h in self.model.headers if any("Boundary" in p for p in h.profiles)
            )
        obj = self.model.get(object_id)
        return obj is not None and obj.source in self._boundary_files

    def describe(self, object_id: str) -> str:
        """An offending object as a reader finds it in the file: class, id, name and where it is defined."""
        assert self.model is not None
        obj = self.model.get(object_id)
        if obj is None:
            return object_id
        name = obj.attrs.get("IdentifiedObject.name")
        label = f" '{name}'" if name else ""
        return f"{obj.cls} {obj.id}{label} ({self.where(obj)})"


def path_of(target: Target) -> Path:
    """``--target`` as a path: a plain path or a ``file://`` URL (percent-escapes decoded)."""
    url = target.url.strip()
    if url.lower().startswith("file:"):
        parsed = urlparse(url)
        return Path(
            unquote(parsed.netloc + parsed.path) if parsed.netloc not in ("", "localhost") else unquote(parsed.path)
        )
    return Path(url).expanduser()


def load(target: Target) -> CimDut:
    """Read and analyse the model; an unreadable model is recorded as ``error`` so each case can fail with it."""
    dut = CimDut(path_of(target))
    try:
        model = read_cim([dut.path])
    except CimReadError as exc:
        dut.error = str(exc)
        return dut
    except (OSError, ValueError, etree.LxmlError) as exc:  # e.g. a folder we may not list, an rdflib failure
        dut.error = f"{dut.path}: cannot be read as CIM: {exc}"
        return dut
    dut.model = model
    dut.warnings = list(model.warnings)
    dut.view = build_network(model, warnings=dut.warnings)
    dut.topo = topology_of(model, Numbers([]))
    return dut


def record(log: list[Exchange], dut: CimDut, check: str, evidence: Iterable[str], note: str | None = None) -> None:
    """One evidence entry: what was checked and what was found (counts first, then offending items)."""
    log.append(Exchange("CHECK", str(dut.path), check, response=truncate("\n".join(evidence)), note=note))


def fail_with(problems: list[str], what: str) -> None:
    """Fail the case naming how many items offend and the first few, so the reason alone is actionable."""
    if problems:
        more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
        pytest.fail(f"{len(problems)} {what}: " + "; ".join(problems[:SHOWN]) + more, pytrace=False)


# -- checks the reader and the view do not make themselves -------------------------------------------------


@dataclass(frozen=True, slots=True)
class DuplicateScan:
    """What :func:`duplicate_definitions` found and how much it had to look at."""

    problems: list[str]
    files: int  # XML files of the model (Turtle and other graphs are not scanned)
    recurring: int  # ids written more than once, conflicting or not (CGMES profiles legitimately repeat ids)
    parsed: int  # files parsed to compare the content of those ids


def duplicate_definitions(dut: CimDut) -> DuplicateScan:
    """Ids written more than once with conflicting content: defined twice with rdf:ID, or two descriptions
    giving one property different values. Turtle and other graph files are not scanned (a graph has no second
    copy of a subject, only extra triples, which the reader merges).

    First a byte scan lists the ids each file writes; only files holding an id written more than once are then
    parsed, and only those ids' elements compared. Where a byte scan cannot be trusted (UTF-16, no rdf
    namespace declaration found, a character reference inside an id) every file is parsed, every id compared."""
    sources = [s for s in expand_sources([dut.path]) if Path(s.name).suffix.lower() not in GRAPH_SUFFIXES]
    written: dict[str, set[str] | None] = {}
    counts: Counter[str] = Counter()
    with gc_paused():
        for source in sources:
            with source.open() as stream:
                ids = _ids_written(stream.read())
            written[source.name] = None if ids is None else set(ids)
            counts.update(ids or ())
        exact = all(ids is not None for ids in written.values())
        recurring = {i for i, n in counts.items() if n > 1} if exact else None
        problems: list[str] = []
        parsed = 0
        seen: dict[str, tuple[str, bool, dict[str, frozenset[str]]]] = {}
        for source in sources:
            ids = written[source.name]
            if recurring is not None and (ids is None or ids.isdisjoint(recurring)):
                continue
            parsed += 1
            with source.open() as stream:
                _compare(Path(source.name.split("!")[-1]).name, _top_level(stream, recurring), seen, problems)
    return DuplicateScan(problems, len(sources), len(recurring) if recurring is not None else -1, parsed)


def _compare(
    short: str,
    elements: Iterable[tuple[etree._Element, bool, str]],
    seen: dict[str, tuple[str, bool, dict[str, frozenset[str]]]],
    problems: list[str],
) -> None:
    """Compare each element with the earlier elements of its id (``seen``, shared over the files)."""
    for elem, defined, ident in elements:
        props: dict[str, set[str]] = {}
        for child in elem:
            value = child.get(RDF_RESOURCE)
            value = normalise_id(value) if value is not None else (child.text or "").strip()
            props.setdefault(etree.QName(child).localname, set()).add(value)
        frozen = {k: frozenset(v) for k, v in props.items()}
        cls = etree.QName(elem).localname
        here = f"{short}:{elem.sourceline}"
        first = seen.get(ident)
        if first is None:
            seen[ident] = (here, defined, frozen)
            continue
        place, was_defined, earlier = first
        clash = [k for k, v in frozen.items() if k in earlier and earlier[k] != v]
        if defined and was_defined:
            problems.append(f"{cls} {ident} defined twice with rdf:ID ({place}, {here})")
        elif clash:
            shown = ", ".join(f"{k} {sorted(earlier[k])[0]!r} vs {sorted(frozen[k])[0]!r}" for k in clash[:2])
            problems.append(f"{cls} {ident} at {place} and {here} differ: {shown}")
        if defined and not was_defined:
            seen[ident] = (here, True, earlier)
        for k, v in frozen.items():
            earlier.setdefault(k, v)


_RDF_PREFIX = re.compile(rb"""xmlns:([A-Za-z_][\w.-]*)\s*=\s*["']""" + re.escape(RDF.encode()) + rb"""["']""")


def _ids_written(data: bytes) -> list[str] | None:
    """The normalised id of every rdf:ID and rdf:about in raw RDF/XML bytes (top-level or not), or None where a
    byte scan cannot be trusted to find them all. Only repeats matter: a false one costs a parse, never a verdict."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:1024]:
        return None  # UTF-16/32: the XML parser reads it, a byte pattern would not
    prefixes = sorted(set(_RDF_PREFIX.findall(data)))
    if not prefixes:
        return None
    ids = []
    for prefix in prefixes:  # one pattern per prefix: a literal start keeps the scan at memchr speed
        pattern = re.compile(re.escape(prefix) + rb""":(?:ID|about)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
        for double, single in pattern.findall(data):
            raw = double or single
            if b"&" in raw:
                return None  # a character or entity reference: leave spelling to the parser
            ids.append(normalise_id(raw.decode("utf-8", errors="replace")))
    return ids


def _top_level(stream: object, wanted: set[str] | None) -> Iterable[tuple[etree._Element, bool, str]]:
    """Each object element of an RDF/XML document whose normalised id is ``wanted`` (every one for None), with
    whether it is an rdf:ID definition; the file has already passed the reader, which refuses DTDs, so only the
    safe parser options matter."""
    depth = 0
    for event, elem in etree.iterparse(
        stream, events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True
    ):
        if event == "start":
            depth += 1
            continue
        depth -= 1
        if depth == 1:
            ident = elem.get(RDF_ID)
            about = elem.get(RDF_ABOUT)
            if etree.QName(elem).localname != MD_FULL_MODEL and (ident or about):
                key = normalise_id(ident or about or "")
                if wanted is None or key in wanted:
                    yield elem, ident is not None, key
            elem.clear()
            parent = elem.getparent()
            if parent is not None:
                while elem.getprevious() is not None:
                    del parent[0]


def shared_mrids(dut: CimDut) -> list[str]:
    """Distinct objects declaring the same ``IdentifiedObject.mRID`` (the mRID is meant to be unique), each
    flagged where all of them are boundary-set reference data."""
    assert dut.model is not None
    first: dict[str, CimObject] = {}
    shared: dict[str, list[CimObject]] = {}
    with gc_paused():
        for obj in dut.model.objects.values():
            mrid = obj.attrs.get("IdentifiedObject.mRID")
            if mrid:
                key = normalise_id(mrid)
                owner = first.setdefault(key, obj)
                if owner is not obj:
                    shared.setdefault(key, [owner]).append(obj)
    found = []
    for mrid, objs in shared.items():
        owners = ", ".join(dut.describe(o.id) for o in objs[:3])
        boundary = " [boundary set]" if all(dut.in_boundary_set(o.id) for o in objs) else ""
        found.append(f"mRID {mrid} on {owners}{boundary}")
    return found


def class_conflicts(dut: CimDut) -> list[str]:
    """The reader's own complaint about one id used for two concrete classes."""
    return [w for w in dut.warnings if " here but a " in w]


def unfed_islands(dut: CimDut) -> tuple[list[list[str]], int]:
    """Islands (every switch closed, so only missing connections count) that hold no source, and how many
    islands there are. A node behind a normally open switch is fine; one no switching could energise is not."""
    assert dut.topo is not None and dut.view is not None
    island = components(dut.topo, set())
    fed = {island[n] for s in dut.view.sources for n in dut.topo.equipment_nodes.get(s, ()) if n in island}
    unfed: dict[int, list[str]] = {}
    for node, number in island.items():
        if number not in fed:
            unfed.setdefault(number, []).append(node)
    return list(unfed.values()), len(set(island.values()))


def normal_state_islands(dut: CimDut) -> int:
    """Islands with normally open switches open: evidence of how the feeder is sectioned, not a verdict."""
    assert dut.topo is not None and dut.view is not None
    return len(set(components(dut.topo, set(dut.view.open_switches)).values()))


BASE_VOLTAGE_SKIPPED = frozenset({"Ground", "GroundDisconnector", "Clamp", "Cut"})


def without_base_voltage(dut: CimDut) -> tuple[list[str], int]:
    """Conducting equipment with no voltage by any path CIM allows: its own ``ConductingEquipment.BaseVoltage``,
    its ends' ``TransformerEnd.BaseVoltage``, a rated voltage of its own (CIMHub writes only
    ``PowerElectronicsConnection.ratedU`` on inverters), its VoltageLevel container, or (bus-branch) a
    TopologicalNode it connects to. Returns (offenders, equipment checked)."""
    model, topo = dut.model, dut.topo
    assert model is not None and topo is not None
    end_voltage: set[str] = set()
    for end in model.of("PowerTransformerEnd", "TransformerTankEnd"):
        if end.ref("TransformerEnd.BaseVoltage"):
            owner = end.ref("PowerTransformerEnd.PowerTransformer")
            tank = model.get(end.ref("TransformerTankEnd.TransformerTank"))
            end_voltage.update(
                x for x in (owner, tank and tank.id, tank and tank.ref("TransformerTank.PowerTransformer")) if x
            )
    offenders, checked = [], 0
    for equipment_id in topo.equipment_nodes:
        obj = model.get(equipment_id)
        if obj is None or obj.cls in BASE_VOLTAGE_SKIPPED or dut.in_boundary_set(equipment_id):
            continue
        checked += 1
        if obj.ref("ConductingEquipment.BaseVoltage") or equipment_id in end_voltage or _rated_voltage(obj):
            continue
        container = model.get(obj.ref("Equipment.EquipmentContainer"))
        if container is not None and container.cls == "Bay":
            container = model.get(container.ref("Bay.VoltageLevel"))
        if container is not None and container.ref("VoltageLevel.BaseVoltage"):
            continue
        nodes = (model.get(n) for n in topo.equipment_nodes[equipment_id])
        if any(n is not None and n.ref("TopologicalNode.BaseVoltage") for n in nodes):
            continue
        offenders.append(dut.describe(equipment_id))
    return offenders, checked


def _rated_voltage(obj: CimObject) -> bool:
    """A positive-looking rated or nominal voltage literal (``*.ratedU``, ``*.nominalVoltage``)."""
    return any(k.endswith((".ratedU", ".nominalVoltage")) and v not in ("", "0", "0.0") for k, v in obj.attrs.items())


def asset_datasheet_ratings(model: CimModel) -> dict[str, float]:
    """Transformer or tank id -> the largest ``TransformerEndInfo.ratedS`` (VA, as written) of a datasheet linked
    to it only through an Asset (``Asset.AssetInfo`` with ``Asset.PowerSystemResources`` or, from the other
    side, ``PowerSystemResource.Assets``), the way older CIMHub exports (IEEE123.xml) tie tanks to their
    TransformerTankInfo. The gateway's ratings follow ``TransformerTank.TransformerTankInfo`` and
    ``PowerSystemResource.AssetDatasheet`` only, so a rating found here is in the file but not imported:
    evidence for the report, never a verdict."""
    end_infos: dict[str, list[float]] = {}
    for info in model.of("TransformerEndInfo"):
        rated = _number(info.attrs.get("TransformerEndInfo.ratedS"))
        if rated:
            for tank_info in info.refs.get("TransformerEndInfo.TransformerTankInfo", ()):
                end_infos.setdefault(tank_info, []).append(rated)
    resources: dict[str, set[str]] = {}
    for asset in model.of("Asset"):
        resources.setdefault(asset.id, set()).update(asset.refs.get("Asset.PowerSystemResources", ()))
    for tank in model.of("TransformerTank", "PowerTransformer"):
        for asset_id in tank.refs.get("PowerSystemResource.Assets", ()):
            resources.setdefault(asset_id, set()).add(tank.id)
    found: dict[str, float] = {}
    for asset_id, linked in resources.items():
        asset = model.get(asset_id)
        rated = end_infos.get((asset.ref("Asset.AssetInfo") if asset else None) or "")
        if not rated:
            continue
        for resource in linked:
            tank = model.get(resource)
            owner = tank.ref("TransformerTank.PowerTransformer") if tank is not None else None
            for key in filter(None, (resource, owner)):
                found[key] = max(found.get(key, 0.0), *rated)
    return found


def _number(text: str | None) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if value > 0 and value != float("inf") else None
