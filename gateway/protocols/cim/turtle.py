"""Turtle (and other RDF serialisations rdflib parses) into the same objects the RDF/XML reader builds.

Some tools export CIM as Turtle; rdflib parses it well, so it is used here rather than a parser of our
own. rdflib comes with the `cim` extra; without it the reader says how to get it. Triples are folded into
objects exactly as XML elements are: ids normalised, enumeration URIs kept as literals, references
collected for the dangling check.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from gateway.protocols.cim.reader import CLASS_ALIASES, CimModel, CimObject, CimReadError, normalise_id

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
FORMATS = {".ttl": "turtle", ".nt": "nt", ".jsonld": "json-ld"}  # keyed like reader.GRAPH_SUFFIXES

PendingRef = tuple[str, str, str, str, int]


def read_rdf_graph(name: str, data: bytes, suffix: str, model: CimModel, pending: list[PendingRef]) -> None:
    """Add the objects of one Turtle / N-Triples / JSON-LD document to ``model``."""
    try:
        import rdflib
    except ImportError:
        raise CimReadError(
            name, "reading Turtle/JSON-LD needs rdflib: pip install 'transactive-gateway[cim]', or export RDF/XML"
        ) from None
    graph = rdflib.Graph()
    try:
        graph.parse(data=data, format=FORMATS[suffix])
    except Exception as exc:  # rdflib raises many parser-specific types; all mean "not readable"
        raise CimReadError(name, f"not readable as {FORMATS[suffix]}: {exc}") from None
    local: Callable[[str], str] = lambda uri: sys.intern(uri.rpartition("#")[2] or uri.rpartition("/")[2])  # noqa: E731
    objects = model.objects
    for subject, predicate, value in graph:
        ident = normalise_id(str(subject))
        obj = objects.get(ident)
        if obj is None:
            obj = CimObject(ident, "", defined=True, source=name)
            objects[ident] = obj
        if str(predicate) == RDF_TYPE:
            cls = local(str(value))
            obj.cls = CLASS_ALIASES.get(cls, cls)
            model.class_spellings[cls] += 1
            continue
        prop = local(str(predicate))
        if isinstance(value, rdflib.URIRef):
            target = str(value)
            if target.startswith(("http://", "https://")):
                obj.attrs[prop] = target.rpartition("#")[2]
            else:
                target_id = normalise_id(target)
                obj.refs.setdefault(prop, []).append(target_id)
                pending.append((ident, prop, target_id, name, 0))
        else:
            obj.attrs[prop] = str(value).strip()
    for obj in objects.values():
        if obj.source == name and not obj.cls:
            obj.cls = "Unknown"
            model.warnings.append(f"{name}: {obj.id} has properties but no rdf:type; counted as Unknown")
