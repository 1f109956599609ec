"""IEEE 2030.5 wire bytes (``application/sep+xml``) <-> the pydantic models of :mod:`models`.

Inbound, :func:`decode` is the whole edge check, strict as the schema is:

- size bound (``max_bytes``), then a hardened lxml parse: no entity substitution, no network, no DTD loading,
  no huge trees; a document with a DOCTYPE (internal subset or not) is refused before and after parsing, which
  closes XXE and entity expansion ("billion laughs") at once;
- the root must be in the 2030.5 namespace; its name selects the model class (``models.ELEMENTS``), or must be
  ``expected`` (or a subclass of it, e.g. a DERControlResponse where a Response is expected);
- each element's children must be known 2030.5 elements, in XSD sequence order, each at most once unless
  repeatable, with every required one present; attributes must be known; complex elements hold no text;
- values are converted by their XSD lexical rules (integers, ``true``/``false``/``1``/``0``), then the model
  checks their facets (ranges, lengths, hex) - pydantic is the one place those rules live.

Elements in other namespaces are vendor or profile extensions: they are tolerated and skipped, with one
exception: the CSIP-AUS dynamic operating envelope limits of DERControlBase (opModImpLimW, opModExpLimW,
opModGenLimW, opModLoadLimW) are understood and kept (see :mod:`models_der`). Attributes in other namespaces are
skipped too, except ``xsi:type``, which selects a subclass where the schema declares a base type (a
Notification's ``Resource``; see :mod:`models_response`).

Every failure raises :class:`Sep2DecodeError`, a ``ValueError`` carrying one line: where (element path and line
number) and why, e.g. ``DERControl/DERControlBase/opModMaxLimW line 7: 'abc' is not an integer``. The server
answers it with HTTP 400 and an Error body. No other exception escapes for any input (the tests fuzz this).

Outbound, :func:`encode` writes UTF-8 with the 2030.5 namespace as the default (``xmlns=...``), no XML
declaration unless asked, None fields omitted, elements in XSD order. It runs generated per-class code
(:mod:`xmlbind`), because list pages are encoded per request.

Why not envoy_schema (installed only for the benchmark's comparison): measured with 2.7.0, it refuses the IEEE
tariffprofile, timetariffintervallist and usagepointlist examples for lack of envoy / CSIP-AUS specific fields,
has no ReadingSetList or DERCurve / CurveData, fills absent defaults in on the way back out, and is 2-4x slower to
decode and 30-50x slower to encode (details in :mod:`models` and the benchmark).
"""

from __future__ import annotations

import re
import threading
from typing import Any, TypeVar, overload

from lxml import etree
from lxml.etree import _Element
from pydantic import ValidationError

from gateway.protocols.ieee2030_5.models import ELEMENTS
from gateway.protocols.ieee2030_5.xmlbind import (
    NS,
    XSI_TYPE,
    Binding,
    FieldBinding,
    Kind,
    Sep2Model,
    binding,
    encoder_for,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MEDIA_TYPE",
    "NS",
    "Sep2DecodeError",
    "decode",
    "decode_element",
    "encode",
    "encode_element",
]

MEDIA_TYPE = "application/sep+xml"
DEFAULT_MAX_BYTES = 1 << 20
"""1 MiB: far above any CSIP resource page, far below what would hurt the process."""

T = TypeVar("T", bound=Sep2Model)

_NSB = f"{{{NS}}}"
_NSLEN = len(_NSB)
_INTEGER = re.compile("[+-]?[0-9]+")
_MAX_DIGITS = 40  # more digits than any 2030.5 integer type can hold: refused before int() sees them
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
# Refused before parsing, in UTF-8 and in both UTF-16 byte orders; any other encoding is caught after parsing
# (entities are never substituted, and libxml2 refuses amplification on its own).
_DTD_MARKERS = re.compile(
    b"|".join(
        re.escape(marker.encode(codec))
        for marker in ("<!DOCTYPE", "<!ENTITY")
        for codec in ("utf-8", "utf-16-le", "utf-16-be")
    )
)


class Sep2DecodeError(ValueError):
    """A document the codec refuses, with a one-line human reason naming the element and its line."""


# -- parsing ----------------------------------------------------------------------------------------------------

_parsers = threading.local()


def _parser() -> etree.XMLParser:
    """One hardened parser per thread (an lxml parser must not be used by two threads at once)."""
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
    return parser


def _parse(data: bytes | bytearray | memoryview, max_bytes: int) -> _Element:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise Sep2DecodeError(f"expected the document as bytes, got {type(data).__name__}")
    raw = bytes(data)
    if len(raw) > max_bytes:
        raise Sep2DecodeError(f"document is {len(raw):,} bytes, over the limit of {max_bytes:,}")
    if not raw or raw.isspace():
        raise Sep2DecodeError("empty document")
    if (b"<!" in raw or b"<\x00!" in raw or b"\x00<\x00!" in raw) and _DTD_MARKERS.search(raw) is not None:
        raise Sep2DecodeError("DOCTYPE: document type declarations (and their entities) are refused")
    try:
        root = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError as exc:
        raise Sep2DecodeError(f"line {exc.lineno}: not well-formed XML: {_one_line(exc.msg)}") from None
    except (etree.LxmlError, ValueError) as exc:
        raise Sep2DecodeError(f"not well-formed XML: {_one_line(str(exc))}") from None
    if root is None:
        raise Sep2DecodeError("not well-formed XML: no document element")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # a DOCTYPE in an encoding the byte scan cannot see
        raise Sep2DecodeError("DOCTYPE: document type declarations (and their entities) are refused")
    return root


# -- errors ------------------------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _path(element: _Element) -> str:
    names: list[str] = []
    node: _Element | None = element
    while node is not None:
        tag = node.tag
        names.append(_local(tag) if isinstance(tag, str) else "?")
        node = node.getparent()
    return "/".join(reversed(names))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _error(element: _Element, reason: str, attribute: str | None = None) -> Sep2DecodeError:
    where = _path(element) + (f"/@{attribute}" if attribute else "")
    return Sep2DecodeError(f"{where} line {element.sourceline}: {_one_line(reason)}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- reading ----------------------------------------------------------------------------------------------------


def _scalar(field: FieldBinding, text: str, element: _Element, attribute: str | None = None) -> Any:
    """A simple value by its XSD lexical rules; facets (ranges, lengths, hex) are pydantic's to check."""
    kind = field.kind
    if kind == Kind.INT:
        if text.isdigit() and text.isascii() and len(text) <= _MAX_DIGITS:  # the common case, no sign or spaces
            return int(text)
        digits = text.strip(" \t\n\r")
        if _INTEGER.fullmatch(digits) is None:
            raise _error(element, f"{_shown(text)} is not an integer", attribute)
        if len(digits) > _MAX_DIGITS:
            raise _error(element, f"{_shown(text)} is out of range", attribute)
        return int(digits)
    if kind == Kind.BOOL:
        value = _BOOLEANS.get(text.strip(" \t\n\r"))
        if value is None:
            raise _error(element, f"{_shown(text)} is not a boolean (true, false, 1 or 0)", attribute)
        return value
    return text


_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def _not_a_leaf(element: _Element) -> None:
    """Raises for a simple-valued element that has child elements or attributes of its own."""
    if len(element):
        raise _error(element, "holds child elements where a value is expected")
    for key in element.keys():  # noqa: SIM118 - an lxml element iterates its children, not its keys
        if key[0] != "{":
            raise _error(element, f"unexpected attribute '{key}'")


def _subtype(element: _Element, declared: type[Sep2Model], named: str) -> type[Sep2Model]:
    """The class an ``xsi:type`` names, which must be ``declared`` or a subclass of it."""
    prefix, _, local = named.strip().rpartition(":")
    if prefix and element.nsmap.get(prefix) != NS:
        raise _error(element, f"xsi:type {named!r} is not a 2030.5 type")
    cls = ELEMENTS.get(local)
    if cls is None or not issubclass(cls, declared):
        raise _error(element, f"xsi:type {named!r} is not a kind of {declared.__name__}")
    return cls


def _read(element: _Element, bound: Binding) -> dict[str, Any]:
    """The element's attributes and children as field values (nested models as dicts, validated with the root).

    This is the decoder's hot loop, so simple values are converted inline; the rare cases (signs, whitespace,
    booleans, errors) go through :func:`_scalar`."""
    values: dict[str, Any] = {}
    for key, raw in element.items():
        attribute = bound.attributes.get(key)
        if attribute is None:
            if key[0] == "{":  # xsi:type (read by the caller), xml:lang, vendor attributes
                continue
            raise _error(element, f"unknown attribute '{key}'")
        values[key] = _scalar(attribute, raw, element, key)
    text = element.text
    if text is not None and not text.isspace():
        raise _error(element, f"unexpected text {_shown(text.strip())}")
    position = -1
    slots = bound.slots
    for child in element:
        tag = child.tag
        tail = child.tail
        if tail is not None and not tail.isspace():
            raise _error(element, f"unexpected text {_shown(tail.strip())}")
        slot = slots.get(tag)
        if slot is None:
            if tag.__class__ is not str:  # a comment or PI (in a tree from another parser), or an entity reference
                if tag is etree.Comment or tag is etree.ProcessingInstruction:
                    continue
                raise _error(element, "holds an entity reference")
            if tag[:_NSLEN] == _NSB:
                raise _error(child, f"is not an element of {bound.element}")
            continue  # an extension in another namespace: tolerated, skipped
        index, name, kind, repeated, model = slot
        if index <= position:
            if index < position:
                after = bound.elements[position].qualified
                raise _error(child, f"is out of order: it comes before {after} in {bound.element}")
            if not repeated:
                raise _error(child, "appears more than once")
        position = index
        value: Any
        if kind == Kind.MODEL:
            value = _model(child, model)  # type: ignore[arg-type]
        else:
            if len(child) or child.keys():
                _not_a_leaf(child)
            value = child.text or ""
            if kind == Kind.INT:
                if len(value) <= _MAX_DIGITS and value.isdigit() and value.isascii():
                    value = int(value)
                else:
                    value = _scalar(bound.elements[index], value, child)
            elif kind == Kind.BOOL:
                value = _scalar(bound.elements[index], value, child)
        if repeated:
            values.setdefault(name, []).append(value)
        else:
            values[name] = value
    for field in bound.required:
        if field.name not in values:
            what = "attribute" if field.attribute else "element"
            raise _error(element, f"missing required {what} '{field.qualified}'")
    return values


def _model(element: _Element, declared: type[Sep2Model]) -> Any:
    """A nested element: a dict for pydantic to validate with its parent, or - when ``xsi:type`` names a
    subclass - an instance validated here, which pydantic keeps as it is."""
    named = element.get(XSI_TYPE)
    if named is None:
        return _read(element, binding(declared))
    cls = _subtype(element, declared, named)
    values = _read(element, binding(cls))
    return values if cls is declared else _validate(cls, values, element)


def _validate(cls: type[T], values: dict[str, Any], element: _Element) -> T:
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        target, attribute = _locate(element, cls, error["loc"])
        reason = error["msg"].removeprefix("Value error, ")
        raise _error(target, f"{_shown(error.get('input'))} is invalid: {reason}", attribute) from None


def _locate(element: _Element, cls: type[Sep2Model], loc: tuple[int | str, ...]) -> tuple[_Element, str | None]:
    """The element (and attribute) a pydantic error location points at: field names are element names, list
    indexes count same-named children."""
    bound = binding(cls)
    parts = list(loc)
    while parts:
        name = parts.pop(0)
        field = bound.by_name.get(name) if isinstance(name, str) else None
        if field is None:
            break
        if field.attribute:
            return element, field.name
        nth = parts.pop(0) if field.repeated and parts and isinstance(parts[0], int) else 0
        matches = [child for child in element if bound.by_tag.get(child.tag) is field]
        if not matches:
            break
        element = matches[min(nth, len(matches) - 1)]
        if field.model is None:
            break
        bound = binding(field.model)
    return element, None


@overload
def decode(data: bytes, expected: None = None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Sep2Model: ...
@overload
def decode(data: bytes, expected: type[T], *, max_bytes: int = DEFAULT_MAX_BYTES) -> T: ...
def decode(data: bytes, expected: type[Sep2Model] | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Sep2Model:
    """Bytes of one 2030.5 resource as its model; raises :class:`Sep2DecodeError` with the reason."""
    return decode_element(_parse(data, max_bytes), expected)


@overload
def decode_element(element: _Element, expected: None = None) -> Sep2Model: ...
@overload
def decode_element(element: _Element, expected: type[T]) -> T: ...
def decode_element(element: _Element, expected: type[Sep2Model] | None = None) -> Sep2Model:
    """An already parsed element (e.g. one embedded in a larger tree) as its model, with the same checks as
    :func:`decode` except those on bytes and DOCTYPE."""
    tag = element.tag
    if not isinstance(tag, str):
        raise Sep2DecodeError("not an element")
    if tag[:_NSLEN] != _NSB:
        namespace = tag[1:].partition("}")[0] if tag[0] == "{" else "no namespace"
        raise _error(element, f"not in the IEEE 2030.5 namespace {NS} (it is in {namespace})")
    name = tag[_NSLEN:]
    cls = ELEMENTS.get(name)
    if cls is None:
        raise _error(element, f"{name} is not an IEEE 2030.5 resource this gateway knows")
    named = element.get(XSI_TYPE)
    if named is not None:
        cls = _subtype(element, cls, named)
    if expected is not None and not issubclass(cls, expected):
        raise _error(element, f"expected {expected.__name__}, got {cls.__name__}")
    return _validate(cls, _read(element, binding(cls)), element)


# -- writing ----------------------------------------------------------------------------------------------------


def encode(obj: Sep2Model, *, xml_declaration: bool = False) -> bytes:
    """A model as a 2030.5 document: UTF-8, default namespace 2030.5, elements in schema order."""
    bound = binding(type(obj))
    parts: list[str] = []
    encoder_for(type(obj))(obj, parts.append, bound.root_open, bound.root_close)
    body = "".join(parts).encode()
    return _XML_DECLARATION + body if xml_declaration else body


def encode_element(obj: Sep2Model, tag: str | None = None) -> _Element:
    """A model as an lxml element named ``tag`` (default: its class name) in the 2030.5 namespace, for callers
    that assemble or sign trees."""
    bound = binding(type(obj))
    name = tag or bound.element
    parts: list[str] = []
    encoder_for(type(obj))(obj, parts.append, f'<{name} xmlns="{NS}"', f"</{name}>")
    return etree.fromstring("".join(parts).encode(), _parser())
