"""The binding between the IEEE 2030.5 pydantic models and their XML: markers, primitive value types, per-class
bindings, and the generated encoders.

The models are plain pydantic classes whose field names are the XML local names, declared in XSD sequence order
(inherited fields first, as an XSD extension appends to its base's sequence). This module reads each class once
into a :class:`Binding` (which fields are attributes, which are elements, in which namespace, of which kind, and
their facets) that both directions use:

- ``codec.decode`` walks a parsed tree against the binding (order, required elements, unknown elements) and
  leaves value facets (ranges, lengths, hex) to pydantic, the single source of truth for them;
- :func:`encoder_for` turns the binding into one small Python function per class, generated once and cached.
  Generated code is used rather than a loop over field descriptors because list pages are encoded per request:
  with straight-line attribute reads and no per-field dispatch, a 10-item DERControlList page took 29 us against
  83 us for a generic loop over the same bindings (one core, measured when this was written; the codec's own
  figures are in ``benchmarks/bench_ieee2030_5_codec.py``).

Markers (``Annotated`` metadata): :class:`XmlAttr` makes a field an XML attribute; :class:`XmlNs` puts an
element in another namespace (the CSIP-AUS extension elements). Value types: :class:`Hex` (xs:hexBinary with at
most N octets, normalised to upper case), :class:`Text` (xs:string with a maximum length, XML characters only),
:class:`AnyUri` (xs:anyURI: surrounding whitespace collapsed, XML characters only). Integer ranges are ordinary
``Field(ge=..., le=...)`` constraints.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Union

import annotated_types
from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler
from pydantic_core import core_schema

__all__ = [
    "CSIPAUS_NS",
    "CSIPAUS_NS_ALIASES",
    "NS",
    "XSI_NS",
    "XSI_TYPE",
    "AnyUri",
    "Binding",
    "FieldBinding",
    "Hex",
    "Kind",
    "Sep2Model",
    "Text",
    "XmlAttr",
    "XmlNs",
    "binding",
    "encoder_for",
]

NS = "urn:ieee:std:2030.5:ns"
"""The IEEE 2030.5 namespace: every element of a 2030.5 document is in it, unless it is an extension."""
CSIPAUS_NS = "https://csipaus.org/ns"
"""The CSIP-AUS extension namespace the encoder writes (the one the CSIP-AUS schema's import declares)."""
CSIPAUS_NS_ALIASES = (CSIPAUS_NS, "https://csipaus.org/ns/v1.3", "https://csipaus.org/ns/v1.3-beta/storage")
"""Namespaces the decoder reads the CSIP-AUS extension elements from: later CSIP-AUS drafts and envoy moved them
under versioned URIs with the same element names and types."""
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XSI_TYPE = f"{{{XSI_NS}}}type"

# Characters XML 1.0 cannot carry: a model holding one could not be written as a well-formed document.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_HEX = re.compile("[0-9A-Fa-f]*")
_XML_SPACE = " \t\n\r"


class Sep2Model(BaseModel):
    """Base of every IEEE 2030.5 model: unknown keyword arguments are refused, so a misspelt element name in
    server code fails at construction instead of vanishing from the XML."""

    model_config = ConfigDict(extra="forbid")


# -- markers and value types -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class XmlAttr:
    """The field is an XML attribute of its element (``href``, ``all``, ``results``, ``subscribable``, ...)."""


@dataclass(frozen=True, slots=True)
class XmlNs:
    """The element lives in another namespace, written with ``prefix`` (declared on the element itself) and read
    from any of ``read_from``."""

    uri: str
    prefix: str
    read_from: tuple[str, ...] = ()


def _not_xml(value: str) -> ValueError | None:
    bad = _NOT_XML.search(value)
    if bad is None:
        return None
    return ValueError(f"character U+{ord(bad.group()):04X} is not allowed in XML")


@dataclass(frozen=True, slots=True)
class Hex:
    """xs:hexBinary of at most ``max_bytes`` octets (an even number of hex digits), held in upper case."""

    max_bytes: int

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, core_schema.str_schema())

    def check(self, value: str) -> str:
        digits = value.strip(_XML_SPACE)
        if _HEX.fullmatch(digits) is None:
            raise ValueError("not a hexadecimal string")
        if len(digits) % 2:
            raise ValueError("an odd number of hex digits (hexBinary needs whole octets)")
        if len(digits) > 2 * self.max_bytes:
            raise ValueError(f"longer than {self.max_bytes} octets ({2 * self.max_bytes} hex digits)")
        return digits.upper()


@dataclass(frozen=True, slots=True)
class Text:
    """xs:string of at most ``max_length`` characters (``None``: unbounded), XML characters only. Whitespace is
    kept as written: xs:string preserves it."""

    max_length: int | None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            self.check, core_schema.str_schema(max_length=self.max_length)
        )

    def check(self, value: str) -> str:
        error = _not_xml(value)
        if error is not None:
            raise error
        return value


@dataclass(frozen=True, slots=True)
class AnyUri:
    """xs:anyURI: leading and trailing XML whitespace dropped (its whitespace facet is collapse), XML characters
    only, at most ``max_length`` characters (a bound the XSD does not set, so that one attribute cannot hold the
    whole document)."""

    max_length: int = 2048

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, core_schema.str_schema())

    def check(self, value: str) -> str:
        value = value.strip(_XML_SPACE)
        if len(value) > self.max_length:
            raise ValueError(f"longer than {self.max_length} characters")
        error = _not_xml(value)
        if error is not None:
            raise error
        return value


# -- bindings --------------------------------------------------------------------------------------------------


class Kind:
    """What a field holds on the wire (plain strings: cheap to compare in the generated code and the reader)."""

    INT = "int"
    BOOL = "bool"
    TEXT = "text"  # xs:string and xs:anyURI: escaped on output
    HEX = "hex"  # xs:hexBinary: validated hex digits, written as they are
    MODEL = "model"


@dataclass(slots=True)
class FieldBinding:
    """One field as XML: its name (the XML local name), place and kind, and the facets its type sets."""

    name: str
    index: int
    attribute: bool
    kind: str
    model: type[Sep2Model] | None
    repeated: bool
    required: bool
    namespace: str = NS
    prefix: str | None = None
    read_from: tuple[str, ...] = (NS,)
    ge: int | None = None
    le: int | None = None
    max_length: int | None = None
    hex_bytes: int | None = None
    min_items: int | None = None
    max_items: int | None = None

    @property
    def qualified(self) -> str:
        """The name as written: ``csipaus:opModImpLimW`` for an extension element, else the local name."""
        return f"{self.prefix}:{self.name}" if self.prefix else self.name

    @property
    def clark_tags(self) -> tuple[str, ...]:
        """Every ``{namespace}local`` tag this field is read from."""
        return tuple(f"{{{uri}}}{self.name}" for uri in self.read_from)


@dataclass(slots=True)
class Binding:
    """A model class as XML: attributes by name, elements in sequence order, and lookups the reader uses."""

    cls: type[Sep2Model]
    element: str
    attributes: dict[str, FieldBinding]
    elements: tuple[FieldBinding, ...]
    by_tag: dict[str, FieldBinding]
    """``{namespace}local`` -> element field, for every namespace the field is read from."""
    slots: dict[str, tuple[int, str, str, bool, type[Sep2Model] | None]]
    """The same keys -> (index, name, kind, repeated, model): the reader's hot loop unpacks one tuple."""
    by_name: dict[str, FieldBinding]
    required: tuple[FieldBinding, ...]
    root_open: str = field(init=False)
    root_close: str = field(init=False)

    def __post_init__(self) -> None:
        self.root_open = f'<{self.element} xmlns="{NS}"'
        self.root_close = f"</{self.element}>"


_BINDINGS: dict[type[Sep2Model], Binding] = {}


def binding(cls: type[Sep2Model]) -> Binding:
    """The (cached) binding of a model class."""
    found = _BINDINGS.get(cls)
    if found is None:
        found = _BINDINGS[cls] = _bind(cls)
    return found


def _unwrap(annotation: Any) -> tuple[Any, list[Any], bool, bool]:
    """(base type, metadata, optional, repeated) of a field annotation: Optional, list[...] and nested Annotated
    are peeled off and their metadata collected."""
    metadata: list[Any] = []
    optional = repeated = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation, *extra = typing.get_args(annotation)
            metadata.extend(extra)
        elif origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                raise TypeError(f"only Optional unions are supported, not {annotation}")
            optional = True
            annotation = members[0]
        elif origin is list:
            repeated = True
            (annotation,) = typing.get_args(annotation)
        else:
            return annotation, metadata, optional, repeated


def _facets(target: FieldBinding, metadata: list[Any]) -> None:
    for item in metadata:
        for constraint in getattr(item, "metadata", ()):  # a FieldInfo nested in an Annotated alias
            _facets(target, [constraint])
        if isinstance(item, annotated_types.Ge):
            target.ge = int(item.ge)  # type: ignore[call-overload]
        elif isinstance(item, annotated_types.Le):
            target.le = int(item.le)  # type: ignore[call-overload]
        elif isinstance(item, annotated_types.MinLen):
            target.min_items = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            target.max_items = item.max_length
        elif isinstance(item, Hex):
            target.hex_bytes = item.max_bytes
        elif isinstance(item, (Text, AnyUri)):
            target.max_length = item.max_length


def _bind(cls: type[Sep2Model]) -> Binding:
    attributes: dict[str, FieldBinding] = {}
    elements: list[FieldBinding] = []
    for name, info in cls.model_fields.items():
        base, metadata, _optional, repeated = _unwrap(info.annotation)
        metadata = [*info.metadata, *metadata]
        model: type[Sep2Model] | None = None
        if isinstance(base, type) and issubclass(base, Sep2Model):
            kind, model = Kind.MODEL, base
        elif base is bool:
            kind = Kind.BOOL
        elif base is int:
            kind = Kind.INT
        elif base is str:
            kind = Kind.HEX if any(isinstance(m, Hex) for m in metadata) else Kind.TEXT
        else:
            raise TypeError(f"{cls.__name__}.{name}: no XML binding for {base!r}")
        is_attribute = any(isinstance(m, XmlAttr) for m in metadata)
        if is_attribute and (kind is Kind.MODEL or repeated):
            raise TypeError(f"{cls.__name__}.{name}: an attribute holds a simple value")
        bound = FieldBinding(
            name=name,
            index=len(elements),
            attribute=is_attribute,
            kind=kind,
            model=model,
            repeated=repeated,
            required=info.is_required(),
        )
        for marker in metadata:
            if isinstance(marker, XmlNs):
                bound.namespace, bound.prefix = marker.uri, marker.prefix
                bound.read_from = marker.read_from or (marker.uri,)
        _facets(bound, metadata)
        if is_attribute:
            attributes[name] = bound
        else:
            elements.append(bound)
    by_tag = {tag: f for f in elements for tag in f.clark_tags}
    return Binding(
        cls=cls,
        element=cls.__name__,
        attributes=attributes,
        elements=tuple(elements),
        by_tag=by_tag,
        slots={tag: (f.index, f.name, f.kind, f.repeated, f.model) for tag, f in by_tag.items()},
        by_name={**attributes, **{f.name: f for f in elements}},
        required=tuple(f for f in (*attributes.values(), *elements) if f.required),
    )


# -- encoders --------------------------------------------------------------------------------------------------

Encoder = Callable[[Any, Callable[[str], None], str, str], None]
"""``encoder(obj, append, open_tag, close_tag)``: appends obj's element, opened by ``open_tag`` (``<name`` plus any
namespace declarations, without the closing ``>``) and closed by ``close_tag``."""

_ENCODERS: dict[type[Sep2Model], Encoder] = {}


def escape_text(value: str) -> str:
    """Character data as XML text; a carriage return is written as a reference, or a parser would turn it into
    a line feed."""
    if "&" in value or "<" in value or ">" in value or "\r" in value:
        return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    return value


_ATTRIBUTE_SPECIAL = re.compile('[&<>"\t\n\r]')


def escape_attribute(value: str) -> str:
    """Character data as a double-quoted attribute value; tab, line feed and carriage return as references, or
    attribute-value normalisation would turn them into spaces."""
    if _ATTRIBUTE_SPECIAL.search(value) is None:
        return value
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\t", "&#9;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
    )


def _polymorphic(value: Sep2Model, append: Callable[[str], None], open_tag: str, close_tag: str) -> None:
    """A subclass instance where its base is declared (a Notification's Resource, a ResponseList's Response):
    written with its own fields and ``xsi:type`` naming its type."""
    name = type(value).__name__
    encoder_for(type(value))(value, append, f'{open_tag} xmlns:xsi="{XSI_NS}" xsi:type="{name}"', close_tag)


def encoder_for(cls: type[Sep2Model]) -> Encoder:
    """The (cached) generated encoder of a model class."""
    found = _ENCODERS.get(cls)
    if found is not None:
        return found

    def trampoline(obj: Any, append: Callable[[str], None], open_tag: str, close_tag: str) -> None:
        _ENCODERS[cls](obj, append, open_tag, close_tag)

    _ENCODERS[cls] = trampoline  # a class that (indirectly) contains itself reaches its encoder through this
    _ENCODERS[cls] = _generate(binding(cls))
    return _ENCODERS[cls]


def _generate(bound: Binding) -> Encoder:
    """Python source for one class's encoder, compiled once: straight-line reads of each field in order."""
    names: dict[str, Any] = {"_esc": escape_text, "_esca": escape_attribute, "_poly": _polymorphic}
    lines = ["def encode(o, a, open_tag, close_tag):", "    a(open_tag)"]
    for f in bound.attributes.values():
        value = {Kind.INT: "{v}", Kind.BOOL: '{"true" if v else "false"}', Kind.HEX: "{v}", Kind.TEXT: "{_esca(v)}"}
        lines.append(f"    v = o.{f.name}")
        lines.append("    if v is not None:")
        lines.append(f"        a(f' {f.name}=\"{value[f.kind]}\"')")
    if not bound.elements:
        lines.append("    a('/>')")
    else:
        lines.append("    a('>')")
        for f in bound.elements:
            declare = f' xmlns:{f.prefix}="{f.namespace}"' if f.prefix else ""
            start, end = f"<{f.qualified}{declare}", f"</{f.qualified}>"
            indent = "        "
            if f.repeated:
                lines.append(f"    for v in o.{f.name}:")
            else:
                lines.append(f"    v = o.{f.name}")
                lines.append("    if v is not None:")
            if f.kind == Kind.MODEL:
                assert f.model is not None
                declared = f"_t{f.index}"
                names[declared] = f.model
                names[f"_e{f.index}"] = encoder_for(f.model)
                lines.append(f"{indent}if v.__class__ is {declared}:")
                lines.append(f"{indent}    _e{f.index}(v, a, {start!r}, {end!r})")
                lines.append(f"{indent}else:")
                lines.append(f"{indent}    _poly(v, a, {start!r}, {end!r})")
            elif f.kind == Kind.BOOL:
                yes, no = f"{start}>true{end}", f"{start}>false{end}"
                lines.append(f"{indent}a({yes!r} if v else {no!r})")
            else:
                value = "{_esc(v)}" if f.kind == Kind.TEXT else "{v}"
                lines.append(f"{indent}a(f'{start}>{value}{end}')")
        lines.append("    a(close_tag)")
    source = "\n".join(lines)
    exec(compile(source, f"<sep2 encoder {bound.element}>", "exec"), names)
    return names["encode"]  # type: ignore[no-any-return]
