"""A streaming, strict reader for CIM RDF/XML: CIMHub single-file feeders and CGMES multi-file models.

Why our own reader: cim-graph takes ~9 s and ~400 MB for the IEEE 9500 feeder, drops CIMHub PV units under
its default profile and invents terminals when merging CGMES TP files; cimpy crashes on a float in an
integer field. CIM XML is regular enough (one element per object, one child per property) that lxml's
iterparse with an id index reads it in a fraction of that time and memory, and keeps every object.

What it guarantees:
* every object of every file is kept (unknown classes are counted and reported, never dropped);
* ids are normalised (``urn:uuid:``, ``#``, a leading ``_``, case) so rdf:ID, rdf:about and rdf:resource
  spellings meet; an object described in several files (CGMES EQ/TP/SSH/SV) is one object with merged
  properties, and one only described (rdf:about) but defined nowhere is reported, not invented;
* references to objects that are not there are reported with the file and line that made them;
* values stay text: typing happens where they are used, so a float in an integer field is a warning
  there, not a crash here;
* hostile or broken input is an error naming the file and line: no DTDs or entities (no expansion
  bombs), no network access, truncated XML, something that is not RDF.
"""

from __future__ import annotations

import io
import sys
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lxml import etree

from gateway.gcpause import gc_paused

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDF_RDF = f"{{{RDF}}}RDF"
RDF_ABOUT = f"{{{RDF}}}about"
RDF_ID = f"{{{RDF}}}ID"
RDF_RESOURCE = f"{{{RDF}}}resource"
MD_FULL_MODEL = "FullModel"

# Newer CIM profiles spell the PV class PhotoVoltaicUnit; CIMHub files spell it PhotovoltaicUnit.
CLASS_ALIASES = {"PhotoVoltaicUnit": "PhotovoltaicUnit"}

# Superclasses through which a profile may describe an object defined elsewhere (CGMES 3 SSH sets
# Equipment.inService on busbars, switches...); describing an object by one of these is not a conflict.
ABSTRACT_CLASSES = frozenset(
    {
        "IdentifiedObject",
        "PowerSystemResource",
        "Equipment",
        "ConductingEquipment",
        "EnergyConnection",
        "RegulatingCondEq",
        "RotatingMachine",
        "Conductor",
        "Switch",
        "ProtectedSwitch",
        "EquipmentContainer",
        "ConnectivityNodeContainer",
        "ACDCTerminal",
        "OperationalLimit",
        "TransformerEnd",
        "ShuntCompensator",
        "TapChanger",
        "PowerElectronicsUnit",
    }
)

GRAPH_SUFFIXES = frozenset({".ttl", ".nt", ".jsonld"})  # other RDF serialisations, read through rdflib

_PROLOGUE_BYTES = 64 * 1024
_MAX_DANGLING_LISTED = 50

Progress = Callable[[int, int], None]
"""Called with (bytes read so far, total bytes) as files are read."""


class CimReadError(Exception):
    """Input that cannot be read as CIM RDF/XML. ``str()`` names the file and, where known, the line."""

    def __init__(self, source: str, reason: str, line: int | None = None) -> None:
        self.source = source
        self.reason = reason
        self.line = line
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {reason}")


@dataclass(slots=True)
class CimObject:
    """One CIM object: its class, literal properties and references, keyed by property name.

    Property names keep their CIM form (``ACLineSegment.length``, ``Terminal.ConnectivityNode``);
    reference targets are normalised ids.
    """

    id: str
    cls: str
    attrs: dict[str, str] = field(default_factory=dict)
    refs: dict[str, list[str]] = field(default_factory=dict)
    defined: bool = False  # rdf:ID, or a CIMHub/rdf:about file that is not a CGMES difference profile
    source: str = ""
    line: int = 0

    def ref(self, name: str) -> str | None:
        """The single target of a reference property, or None."""
        targets = self.refs.get(name)
        return targets[0] if targets else None

    def value(self, name: str) -> str | None:
        return self.attrs.get(name)


@dataclass(frozen=True, slots=True)
class Dangling:
    """A reference to an object that none of the files defines."""

    source_id: str
    prop: str
    target: str
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class ModelHeader:
    """A CGMES ``md:FullModel`` header: which model a file is, its profiles and what it depends on."""

    id: str
    file: str
    profiles: tuple[str, ...]
    depends_on: tuple[str, ...]


@dataclass
class CimModel:
    """Everything read from one model (one file, or a multi-file set), with what is wrong with it."""

    objects: dict[str, CimObject] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    headers: list[ModelHeader] = field(default_factory=list)
    namespaces: dict[str, str] = field(default_factory=dict)
    class_spellings: Counter[str] = field(default_factory=Counter)
    dangling: list[Dangling] = field(default_factory=list)
    dangling_count: int = 0
    warnings: list[str] = field(default_factory=list)
    _by_class: dict[str, list[CimObject]] | None = None

    @property
    def class_counts(self) -> Counter[str]:
        return Counter({cls: len(objs) for cls, objs in self.by_class().items()})

    def by_class(self) -> dict[str, list[CimObject]]:
        if self._by_class is None:
            index: dict[str, list[CimObject]] = {}
            for obj in self.objects.values():
                index.setdefault(obj.cls, []).append(obj)
            self._by_class = index
        return self._by_class

    def of(self, *classes: str) -> list[CimObject]:
        """Objects of the given classes (exact class names, aliases already applied)."""
        index = self.by_class()
        return [obj for cls in classes for obj in index.get(cls, ())]

    def get(self, object_id: str | None) -> CimObject | None:
        return None if object_id is None else self.objects.get(object_id)

    def follow(self, obj: CimObject, prop: str) -> CimObject | None:
        """The object a single-valued reference points at, if it exists."""
        return self.get(obj.ref(prop))

    def referrers(self, prop: str) -> dict[str, list[CimObject]]:
        """Reverse index of one reference property: target id -> objects that point at it."""
        index: dict[str, list[CimObject]] = {}
        for obj in self.objects.values():
            for target in obj.refs.get(prop, ()):
                index.setdefault(target, []).append(obj)
        return index


def normalise_id(raw: str) -> str:
    """One spelling for every way CIM files write an id: urn:uuid:X, #_X, _X, X, in any case."""
    value = raw.strip()
    if value.startswith("urn:uuid:"):
        value = value[9:]
    elif value.startswith("#"):
        value = value[1:]
    if value.startswith("_"):
        value = value[1:]
    return value.lower()


# -- sources ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    name: str
    size: int
    open: Callable[[], AbstractContextManager[IO[bytes]]]  # the stream, closed (with all it holds) on exit


def expand_sources(paths: Iterable[Path]) -> list[_Source]:
    """Files, folders (their *.xml / *.rdf) and zips (their members), in a stable order."""
    sources: list[_Source] = []
    for path in paths:
        if not path.exists():
            raise CimReadError(str(path), "no such file or folder")
        if path.is_dir():
            members = sorted(p for p in path.iterdir() if p.suffix.lower() in (".xml", ".rdf"))
            if not members:
                raise CimReadError(str(path), "the folder holds no .xml or .rdf file")
            sources += [_file_source(p) for p in members]
        elif zipfile.is_zipfile(path):
            sources += _zip_sources(path)
        else:
            sources.append(_file_source(path))
    return sources


def _file_source(path: Path) -> _Source:
    return _Source(str(path), path.stat().st_size, lambda: path.open("rb"))


def _zip_sources(path: Path) -> list[_Source]:
    try:
        with zipfile.ZipFile(path) as archive:
            listed = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CimReadError(str(path), f"damaged zip: {exc}") from None
    members = sorted((i for i in listed if i.filename.lower().endswith((".xml", ".rdf"))), key=lambda i: i.filename)
    if not members:
        raise CimReadError(str(path), "the zip holds no .xml or .rdf file")
    return [_Source(f"{path}!{m.filename}", m.file_size, lambda m=m: _zip_member(path, m)) for m in members]


@contextmanager
def _zip_member(path: Path, member: zipfile.ZipInfo) -> Iterator[IO[bytes]]:
    """One member through its own handle on the archive, closed when the member has been read: a handle
    opened while listing and kept for the openers stays open until nothing refers to the sources any more
    (on an error in a later input, as long as the traceback lives)."""
    with zipfile.ZipFile(path) as archive, archive.open(member) as stream:
        yield stream


class _Counting(io.RawIOBase):
    """Counts bytes as lxml reads them, for progress bars."""

    def __init__(self, raw: IO[bytes], on_read: Callable[[int], None]) -> None:
        self.raw = raw
        self.on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.on_read(len(data))
        return len(data)


_DTD_REFUSED = "DTDs and entity declarations are not allowed in CIM files (possible XML bomb)"


def _check_prologue(name: str, head: bytes) -> None:
    """Refuse DTDs and entity declarations before lxml sees them: CIM never needs them, attacks do."""
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise CimReadError(name, _DTD_REFUSED)


# -- reading ---------------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, model: CimModel, progress: Progress | None, total: int) -> None:
        self.model = model
        self.progress = progress
        self.total = total
        self.done = 0
        self.names: dict[str, tuple[str, str]] = {}  # element tag -> (namespace, local name)
        self.pending_refs: list[tuple[str, str, str, str, int]] = []

    def _split(self, tag: str) -> tuple[str, str]:
        cached = self.names.get(tag)
        if cached is None:
            namespace, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
            cached = (sys.intern(namespace), sys.intern(CLASS_ALIASES.get(local, local)))
            self.names[tag] = cached
        return cached

    def _advance(self, count: int) -> None:
        self.done += count
        if self.progress is not None:
            self.progress(self.done, self.total)

    def read(self, source: _Source) -> None:
        suffix = Path(source.name).suffix.lower()
        if suffix in GRAPH_SUFFIXES:
            self._read_graph(source, suffix)
            return
        with source.open() as raw:
            head = raw.read(_PROLOGUE_BYTES)
            _check_prologue(source.name, head)
            rest = _Counting(raw, self._advance)
            self._advance(len(head))
            stream = io.BufferedReader(rest) if head else rest
            self._parse(source.name, _Chain(head, stream))

    def _read_graph(self, source: _Source, suffix: str) -> None:
        """Turtle, N-Triples or JSON-LD, through rdflib (see turtle.py); these files are small and read whole."""
        from gateway.protocols.cim.turtle import read_rdf_graph

        with source.open() as raw:
            data = raw.read()
        self._advance(len(data))
        read_rdf_graph(source.name, data, suffix, self.model, self.pending_refs)

    def _parse(self, name: str, stream: IO[bytes]) -> None:
        events = etree.iterparse(
            stream,
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        depth = 0
        root = None
        model = self.model
        objects = model.objects
        saw_header = False
        try:
            for event, elem in events:
                if event == "start":
                    depth += 1
                    if depth == 1:
                        root = elem
                        if elem.tag != RDF_RDF:
                            raise CimReadError(
                                name, f"not an RDF/XML document: the root element is <{elem.tag}>", elem.sourceline
                            )
                        if elem.getroottree().docinfo.internalDTD is not None:
                            # A DOCTYPE the byte check missed (past the prologue, or UTF-16): refuse it
                            # before any entity in the content is reached.
                            raise CimReadError(name, _DTD_REFUSED, elem.sourceline)
                        model.namespaces.update({k or "": v for k, v in elem.nsmap.items()})
                    continue
                depth -= 1
                if depth != 1:
                    continue
                namespace, local = self._split(elem.tag)
                ident = elem.get(RDF_ID)
                defined = ident is not None
                if ident is None:
                    ident = elem.get(RDF_ABOUT)
                if ident is None:
                    model.warnings.append(
                        f"{name}:{elem.sourceline}: <{local}> has neither rdf:ID nor rdf:about; skipped"
                    )
                elif local == MD_FULL_MODEL:
                    saw_header = True
                    self._header(name, elem, ident)
                else:
                    self._object(name, elem, normalise_id(ident), namespace, local, defined, objects)
                elem.clear()
                if root is not None:
                    while elem.getprevious() is not None:
                        del root[0]
        except etree.XMLSyntaxError as exc:
            line = exc.position[0] if exc.position else None
            raise CimReadError(name, f"broken XML: {exc.msg}", line) from None
        if root is None:
            raise CimReadError(name, "empty document")
        if not saw_header and any(h.file != name for h in model.headers):
            model.warnings.append(f"{name}: no md:FullModel header, unlike the other files of this set")

    def _header(self, name: str, elem: etree._Element, ident: str) -> None:
        profiles, depends = [], []
        for child in elem:
            _, local = self._split(child.tag)
            if local == "Model.profile" and child.text:
                profiles.append(child.text.strip())
            elif local == "Model.DependentOn":
                target = child.get(RDF_RESOURCE)
                if target:
                    depends.append(normalise_id(target))
        self.model.headers.append(ModelHeader(normalise_id(ident), name, tuple(profiles), tuple(depends)))

    def _object(
        self,
        name: str,
        elem: etree._Element,
        ident: str,
        namespace: str,
        local: str,
        defined: bool,
        objects: dict[str, CimObject],
    ) -> None:
        self.model.class_spellings[elem.tag.rpartition("}")[2]] += 1
        obj = objects.get(ident)
        if obj is None:
            obj = CimObject(ident, local, source=name, line=elem.sourceline or 0)
            objects[ident] = obj
        elif obj.cls != local:
            if defined and not obj.defined and obj.cls in ABSTRACT_CLASSES:
                obj.cls = local  # described through a superclass first (SSH: Equipment), defined here
            elif local not in ABSTRACT_CLASSES:
                self.model.warnings.append(
                    f"{name}:{elem.sourceline}: object {ident} is a {local} here but a {obj.cls} in {obj.source};"
                    f" kept as {obj.cls}"
                )
        if defined or not obj.defined:
            obj.defined = obj.defined or defined
            if defined:
                obj.source, obj.line = name, elem.sourceline or 0
        attrs, refs = obj.attrs, obj.refs
        for child in elem:
            _, prop = self._split(child.tag)
            target = child.get(RDF_RESOURCE)
            if target is not None and target.startswith(("http://", "https://")):
                # An enumeration value (…CIM100#WindingConnection.Y) is a literal, not an object.
                attrs[prop] = target.rpartition("#")[2]
            elif target is not None:
                target_id = normalise_id(target)
                targets = refs.get(prop)
                if targets is None:
                    refs[prop] = [target_id]
                elif target_id not in targets:
                    targets.append(target_id)
                self.pending_refs.append((ident, prop, target_id, name, child.sourceline or 0))
            else:
                text = child.text
                attrs[prop] = text.strip() if text else ""


class _Chain(io.RawIOBase):
    """The prologue bytes already read, then the rest of the stream."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head = memoryview(head)
        self.rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.head:
            count = min(len(buffer), len(self.head))
            buffer[:count] = self.head[:count]
            self.head = self.head[count:]
            return count
        data = self.rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def read_cim(paths: Iterable[Path | str], *, progress: Progress | None = None) -> CimModel:
    """Read one model from files, folders and zips; raises :class:`CimReadError` on unreadable input."""
    with gc_paused():
        return _read_cim(paths, progress)


def _read_cim(paths: Iterable[Path | str], progress: Progress | None) -> CimModel:
    sources = expand_sources(Path(p) for p in paths)
    model = CimModel(files=[s.name for s in sources])
    reader = _Reader(model, progress, sum(s.size for s in sources))
    for source in sources:
        try:
            reader.read(source)
        except OSError as exc:
            raise CimReadError(source.name, f"cannot read: {exc}") from None
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            # zipfile reports a corrupt deflate stream as zlib.error, a cut one as EOFError and an unknown
            # compression method as NotImplementedError.
            raise CimReadError(source.name, f"damaged zip member: {exc}") from None
    _resolve(model, reader.pending_refs)
    _check_headers(model)
    return model


def _resolve(model: CimModel, pending: list[tuple[str, str, str, str, int]]) -> None:
    objects = model.objects
    for source_id, prop, target, file, line in pending:
        if target not in objects:
            model.dangling_count += 1
            if len(model.dangling) < _MAX_DANGLING_LISTED:
                model.dangling.append(Dangling(source_id, prop, target, file, line))
    undefined = [o for o in objects.values() if not o.defined]
    if model.headers and undefined:
        # CGMES: rdf:about adds to an object defined (rdf:ID) elsewhere; one defined nowhere is not invented.
        for obj in undefined[:_MAX_DANGLING_LISTED]:
            model.warnings.append(f"{obj.source}:{obj.line}: {obj.cls} {obj.id} is described but defined in no file")
        if len(undefined) > _MAX_DANGLING_LISTED:
            model.warnings.append(f"... and {len(undefined) - _MAX_DANGLING_LISTED} more objects defined in no file")
    if not model.headers:
        for obj in undefined:  # CIMHub files define objects with rdf:about
            obj.defined = True


def _check_headers(model: CimModel) -> None:
    present = {h.id for h in model.headers}
    for header in model.headers:
        for dependency in header.depends_on:
            if dependency not in present:
                model.warnings.append(
                    f"{header.file}: depends on model {dependency}, which is not among the inputs"
                    " (a missing file of the set, e.g. the boundary or the EQ profile?)"
                )
