"""Energy Interoperation XML (TeMIX profile): EI payloads <-> :class:`EiMessage` carrying canonical objects.

Structure. Element names, order and nesting follow the CTS restricted schemas of EI 1.0 / EMIX / WS-Calendar
(../shared/specs/ei-cts/xsd, rev 0.4), the only published XSDs for this profile. Two namespace sets
(:class:`Dialect`) share that structure: ``EI10`` (the default) uses the EI 1.0 namespace URIs
(``http://docs.oasis-open.org/ns/energyinterop/201110`` ...; WS-Calendar ``urn:ietf:params:xml:ns:icalendar-2.0``
and ``...:stream``), ``CTS`` the URIs the restricted XSDs declare (``.../cts.04``, ``min-xcal/2015/12``,
``streams/201606``). Only ``CTS`` output can be validated by a published schema: EI 1.0's own XSDs use other
element names (xCal's ``dtstart``/``date-time`` ...) for the same things, so ``EI10`` is the CTS structure
under EI 1.0 names. :func:`decode` accepts either set (and reports which, :func:`decode_with_dialect`).

A tender is ``ei:eiTender`` = ``ei:tenderID`` + one ``emix:product`` (``emix:emixOption`` for an option), which
is a WS-Calendar stream::

    emix:product
      xcal:dtStart/xcal:dateTime     start of the first row (UTC)
      xcal:duration                  the resolution (PT5M, PT1H, P1D ...)
      power:temixPower               stream payload: what holds for every interval
        power:serviceDeliveryPoint/power:node        location_id
        power:powerReal|powerReactive                quantity unit (siScaleCode k/M/none)
        power:energyReal|energyReactive              what the price is per (kWh ...)
      strm:intervals/strm:streamInterval*
        strm:uid                     interval number n: starts at dtStart + n x duration (streams.starts)
        power:temixPower             [power:transportInterface from/to] emix:price/emix:value, emix:quantity
      emix:uid                       the tender id again (the schema requires a product uid)
      emix:transactiveState          tender | transaction | publication (a quote)
      emix:expirationDate?           expires_at
      emix:integralOnly              all_or_none
      emix:currency, emix:marketContext (market_id), emix:side (buy/sell)

Numbers are written as plain decimals and read as :class:`~decimal.Decimal` from the text, never through float
(``emix:quantity`` is xs:float in the schema: its lexical space holds every decimal we write). Stream-level
``emix:price``/``emix:quantity`` are inherited by intervals that do not carry their own (WS-Calendar).

Where this differs from, or goes beyond, the CTS restriction (each on purpose):

* What the restriction has no slot for (a tender's own party and time zone, status and creation time; a
  transaction's counterparty, clearing, subscription and execution time; a delivery's party, resource and
  quality; query time ranges; cancel reasons; message parties a payload lacks) goes into one trailing
  ``gw:extension`` element, namespace :data:`GW_NS`. The CTS types have no wildcard, so the element carries
  ``xsi:type`` naming a type of ours derived *by extension* from the CTS type (XSD's own extension
  mechanism, allowed since no CTS type is final or blocked); :func:`extension_schema` is that schema.
  ``encode(..., extensions=False)`` leaves the extension out: strictly CTS output, and decoding such a message
  falls back on defaults (party = the message's party, time zone UTC, status open, created now).
* ``ei:eiRegistrationInfo`` is abstract in the restriction (markets are to extend it): party registration uses
  our ``gw:PartyRegistrationInfoType``. REGISTER_PARTY / REGISTERED_PARTY travel as the schema's
  ``eiCreatePartyRegistration`` / ``eiCreatedPartyRegistration`` (``eiRegisterParty`` is accepted on input).
* Positions (eiRequestPosition / eiReplyPosition) are CTS 1.0 messages with no XSD in rev 0.4: they are
  elements of :data:`GW_NS`, defined in :func:`extension_schema` (``pyld:`` spellings accepted on input).
* ``power:powerReal`` requires ``power:powerAttributes`` (hertz, voltage, ac) that the canonical model does not
  have: we write :data:`NOMINAL_POWER_ATTRIBUTES` there and ignore them when reading.
* Options use ``emix:emixOption``, whose restriction is not in ``emix:emixBase``'s substitution group (the same
  defect as erratum E2 for ``emix:product``): option tenders validate only with that fix extended to it.
* Transport ends are repeated in every interval (``power:transportInterface``): the stream-level payload has
  one interface, and it holds the tender's location.
* Times must carry an offset (naive times are refused, unlike xs:dateTime); the ``xcal:duration`` must be one
  of the market resolutions.

Errors: anything that is not a well-formed, schema-shaped message (not XML, DOCTYPE/entities, more than
:data:`MAX_BYTES`, unknown root or element, missing element, bad number or time) is an ``EiDecodeError`` with
code 400 and a one-line reason that names the element; a well-formed message whose content the canonical model
refuses (misaligned interval, negative quantity, unknown currency ...) is code 422 with pydantic's reason.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from itertools import islice
from typing import Any

from lxml import etree
from pydantic import ValidationError

from gateway.model import (
    Delivery,
    Interval,
    OptionProduct,
    Party,
    Position,
    Resolution,
    Tender,
    Transaction,
    TransportProduct,
)
from gateway.model.units import EnergyUnit, PowerUnit
from gateway.protocols.ei import streams
from gateway.protocols.ei.messages import (
    CancelReason,
    EiDecodeError,
    EiMessage,
    EiResponse,
    Payload,
    PositionQuery,
    ResponseCode,
)

__all__ = [
    "GW_NS",
    "MAX_BYTES",
    "NAMESPACES",
    "NOMINAL_POWER_ATTRIBUTES",
    "Dialect",
    "decode",
    "decode_with_dialect",
    "encode",
    "extension_schema",
]

MAX_BYTES = 4 * 1024 * 1024
"""Largest message :func:`decode` reads (a 10,000-row tender is about 2 MB)."""

NOMINAL_POWER_ATTRIBUTES = ("60", "120", "true")
"""hertz, voltage, ac written in ``power:powerAttributes`` (required by the schema with any power unit; the
canonical model has no such figures, so these are placeholders and are never read back)."""

_MAX_NUMBER_CHARS = 100


class Dialect(StrEnum):
    """Which namespace URIs a document uses; the element structure is the same (see the module docstring)."""

    EI10 = "ei10"
    CTS = "cts04"


GW_NS = "urn:transactive-gateway:ns:ei-extension:1"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_XSI_TYPE = f"{{{XSI_NS}}}type"

NAMESPACES: dict[Dialect, dict[str, str]] = {
    Dialect.EI10: {
        "pyld": "http://docs.oasis-open.org/ns/energyinterop/201110/payloads",
        "ei": "http://docs.oasis-open.org/ns/energyinterop/201110",
        "emix": "http://docs.oasis-open.org/ns/emix/2011/06",
        "power": "http://docs.oasis-open.org/ns/emix/2011/06/power",
        "scale": "http://docs.oasis-open.org/ns/emix/2011/06/siscale",
        "xcal": "urn:ietf:params:xml:ns:icalendar-2.0",
        "strm": "urn:ietf:params:xml:ns:icalendar-2.0:stream",
    },
    Dialect.CTS: {
        "pyld": "http://docs.oasis-open.org/ns/energyinterop/201110/payloads/cts.04",
        "ei": "http://docs.oasis-open.org/ns/energyinterop/201110/cts.04",
        "emix": "http://docs.oasis-open.org/ns/emix/2011/06/cts.04",
        "power": "http://docs.oasis-open.org/ns/emix/2011/06/power/cts.04",
        "scale": "http://docs.oasis-open.org/ns/emix/2011/06/siscale",
        "xcal": "http://docs.oasis-open.org/ws-calendar/ns/min-xcal/2015/12",
        "strm": "http://docs.oasis-open.org/ws-calendar/ns/streams/201606",
    },
}
"""Prefix -> namespace URI per dialect (``gw`` is :data:`GW_NS` in both)."""

_PREFIX_OF: dict[str, str] = {GW_NS: "gw"}
_DIALECT_OF: dict[str, Dialect] = {}
for _dialect, _table in NAMESPACES.items():
    for _prefix, _uri in _table.items():
        _PREFIX_OF[_uri] = _prefix
        if _prefix != "scale":
            _DIALECT_OF[_uri] = _dialect


class _Keys(dict[str, str]):
    """Clark tag ('{uri}local') -> 'prefix:local' with the dialect-neutral prefix; built on first sight."""

    def __missing__(self, tag: str) -> str:
        if tag[:1] == "{":
            uri, _, local = tag[1:].partition("}")
            key = f"{_PREFIX_OF.get(uri, '?')}:{local}"
        else:
            key = f":{tag}"
        if len(self) < 4096:  # hostile documents may invent any number of tags: do not cache them all
            self[tag] = key
        return key


_KEYS = _Keys()

# strm:intervals tag -> the tags of the common interval shape in that namespace set (see _fast_intervals).
_FAST_TAGS = {
    f"{{{ns['strm']}}}intervals": (
        f"{{{ns['strm']}}}streamInterval",
        f"{{{ns['strm']}}}uid",
        f"{{{ns['power']}}}temixPower",
        f"{{{ns['emix']}}}price",
        f"{{{ns['emix']}}}value",
        f"{{{ns['emix']}}}quantity",
    )
    for ns in NAMESPACES.values()
}

_ROOTS: dict[Payload, str] = {
    Payload.REGISTER_PARTY: "pyld:eiCreatePartyRegistration",
    Payload.REGISTERED_PARTY: "pyld:eiCreatedPartyRegistration",
    Payload.CREATE_TENDER: "pyld:eiCreateTender",
    Payload.CREATED_TENDER: "pyld:eiCreatedTender",
    Payload.CANCEL_TENDER: "pyld:eiCancelTender",
    Payload.CANCELED_TENDER: "pyld:eiCanceledTender",
    Payload.REQUEST_TENDER: "pyld:eiRequestTender",
    Payload.REPLY_TENDER: "pyld:eiReplyTender",
    Payload.DISTRIBUTE_TENDER: "pyld:eiDistributeTender",
    Payload.CREATE_QUOTE: "pyld:eiCreateQuote",
    Payload.CREATED_QUOTE: "pyld:eiCreatedQuote",
    Payload.CREATE_TRANSACTION: "pyld:eiCreateTransaction",
    Payload.CREATED_TRANSACTION: "pyld:eiCreatedTransaction",
    Payload.REQUEST_POSITION: "gw:eiRequestPosition",
    Payload.REPLY_POSITION: "gw:eiReplyPosition",
    Payload.CREATE_DELIVERY: "pyld:eiCreateDelivery",
    Payload.CREATED_DELIVERY: "pyld:eiCreatedDelivery",
}
_PAYLOAD_OF_ROOT: dict[str, Payload] = {
    **{root: payload for payload, root in _ROOTS.items()},
    "pyld:eiRegisterParty": Payload.REGISTER_PARTY,
    "pyld:eiRegisteredParty": Payload.REGISTERED_PARTY,
    "pyld:eiRequestPosition": Payload.REQUEST_POSITION,
    "pyld:eiReplyPosition": Payload.REPLY_POSITION,
}
# The fields of gw:extension, in schema order; all optional. tenderID may repeat; ei:eiTransaction* follows.
_EXT_FIELDS: tuple[tuple[str, str], ...] = (
    ("partyID", "xs:string"),
    ("counterPartyID", "xs:string"),
    ("tenderID", "xs:string"),
    ("cancelReason", "xs:string"),
    ("start", "xs:dateTime"),
    ("end", "xs:dateTime"),
    ("timeZone", "xs:string"),
    ("status", "xs:string"),
    ("createdDateTime", "xs:dateTime"),
    ("clearingID", "xs:string"),
    ("subscriptionID", "xs:string"),
    ("resourceID", "xs:string"),
    ("quality", "xs:string"),
    ("measuredDateTime", "xs:dateTime"),
    ("executedDateTime", "xs:dateTime"),
)
_EXT_KEYS = frozenset(f"gw:{name}" for name, _ in _EXT_FIELDS)

# Units: canonical unit <-> (EMIX item element, siScaleCode).
_POWER_ITEMS: dict[PowerUnit, tuple[str, str]] = {
    PowerUnit.W: ("power:powerReal", "none"),
    PowerUnit.KW: ("power:powerReal", "k"),
    PowerUnit.MW: ("power:powerReal", "M"),
    PowerUnit.VAR: ("power:powerReactive", "none"),
    PowerUnit.KVAR: ("power:powerReactive", "k"),
    PowerUnit.MVAR: ("power:powerReactive", "M"),
}
_ENERGY_ITEMS: dict[EnergyUnit, tuple[str, str]] = {
    EnergyUnit.WH: ("power:energyReal", "none"),
    EnergyUnit.KWH: ("power:energyReal", "k"),
    EnergyUnit.MWH: ("power:energyReal", "M"),
    EnergyUnit.VARH: ("power:energyReactive", "none"),
    EnergyUnit.KVARH: ("power:energyReactive", "k"),
    EnergyUnit.MVARH: ("power:energyReactive", "M"),
}
_ITEM_TEXT = {  # itemDescription, itemUnits (fixed by the schema)
    "power:powerReal": ("RealPower", "W"),
    "power:powerReactive": ("ReactivePower", "VAR"),
    "power:energyReal": ("RealEnergy", "Wh"),
    "power:energyReactive": ("ReactiveEnergy", "VARh"),
}
_POWER_OF = {item: unit for unit, item in _POWER_ITEMS.items()}
_ENERGY_OF = {item: unit for unit, item in _ENERGY_ITEMS.items()}
_POWER_ELEMENTS = frozenset(item for item, _ in _POWER_OF)
_ENERGY_ELEMENTS = frozenset(item for item, _ in _ENERGY_OF)
_NODE_INTERFACES = {
    "power:serviceDeliveryPoint": "power:node",
    "power:pnode": "power:node",
    "power:aggregatedPnode": "power:node",
    "power:meterAsset": "power:mrid",
    "power:endDeviceAsset": "power:mrid",
}
_TRANSACTIVE_STATES = frozenset(
    {"indicationOfInterest", "tender", "transaction", "exercise", "delivery", "transportCommitment", "publication"}
)
_RESOLUTIONS = {r.value: r for r in Resolution}
_SIDES = frozenset({"buy", "sell"})
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}

_DECIMAL = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)\s*", re.ASCII)
# xs:float lexical space, with the exponent held to two digits (1e999999999 would be a valid float, and a
# Decimal that prints as a billion digits).
_FLOAT = re.compile(r"\s*(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,2})?|[+-]?INF|NaN)\s*", re.ASCII)
_UID = re.compile(r"\s*\d{1,12}\s*", re.ASCII)
# The same, for many values joined by NUL (which XML text cannot hold): one regex call for a whole column.
_UIDS, _DECIMALS, _FLOATS = (re.compile(f"{p.pattern}(?:\x00{p.pattern})*", re.ASCII) for p in (_UID, _DECIMAL, _FLOAT))
_ROW = re.compile(r"\brow (\d{1,6}):")
_RESPONSE_CODE = re.compile(r"\s*\d{3}\s*", re.ASCII)
_INVALID_XML_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_E = etree._Element


# ================================================================================================ decoding


class _Bad(Exception):
    """A refusal found while walking the tree: the element at fault and why (turned into EiDecodeError)."""

    def __init__(self, element: _E | None, reason: str, code: ResponseCode = ResponseCode.BAD_REQUEST) -> None:
        super().__init__(reason)
        self.element = element
        self.reason = reason
        self.code = code


_local = threading.local()


def _parser() -> etree.XMLParser:
    parser = getattr(_local, "parser", None)
    if parser is None:  # lxml parsers must not be shared between threads
        parser = _local.parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
    return parser


def decode(data: bytes) -> EiMessage:
    """Parse one EI payload (either namespace set) into an :class:`EiMessage`; raises :class:`EiDecodeError`."""
    return decode_with_dialect(data)[0]


def decode_with_dialect(data: bytes) -> tuple[EiMessage, Dialect]:
    """:func:`decode`, also saying which namespace set the document used (answer a peer in its own)."""
    if not isinstance(data, bytes):
        if not isinstance(data, bytearray | memoryview):
            raise TypeError(f"decode() takes bytes, not {type(data).__name__}")
        data = bytes(data)
    size = len(data)
    if size > MAX_BYTES:
        raise EiDecodeError(f"message is {size:,} bytes, more than the {MAX_BYTES:,}-byte limit")
    if b"<!DOCTYPE" in data:  # entity declarations can only come inside one
        raise EiDecodeError("DOCTYPE and entity declarations are refused")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise EiDecodeError(f"not well-formed XML: {_one_line(str(exc))}") from None
    except (ValueError, TypeError) as exc:
        raise EiDecodeError(f"not well-formed XML: {_one_line(str(exc))}") from None
    if root.getroottree().docinfo.internalDTD is not None:  # a DOCTYPE the byte check missed (UTF-16)
        raise EiDecodeError("DOCTYPE and entity declarations are refused")
    try:
        key = _KEYS[root.tag]
        payload = _PAYLOAD_OF_ROOT.get(key)
        if payload is None:
            names = ", ".join(sorted({k.partition(":")[2] for k in _PAYLOAD_OF_ROOT}))
            raise _Bad(root, f"<{_show(key)}> is not an EI payload this gateway handles ({names})")
        dialect = _dialect_of(root)
        return _decode_message(root, payload), dialect
    except _Bad as bad:
        where = _path(bad.element) if bad.element is not None else ""
        raise EiDecodeError(_one_line(f"{where}: {bad.reason}" if where else bad.reason), bad.code) from None
    except EiDecodeError:
        raise
    except Exception as exc:  # a bug, not the input's fault: still answer in EI terms
        raise EiDecodeError(
            f"internal error decoding the message ({type(exc).__name__}: {_one_line(str(exc))})",
            ResponseCode.INTERNAL,
        ) from exc


def _dialect_of(root: _E) -> Dialect:
    uri = etree.QName(root).namespace or ""
    dialect = _DIALECT_OF.get(uri)
    if dialect is None:  # a gw: root (positions): go by the first child in an EI namespace
        for element in root.iter():
            dialect = _DIALECT_OF.get(etree.QName(element).namespace or "")
            if dialect is not None:
                break
    return dialect or Dialect.EI10


def _one_line(text: str, limit: int = 600) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(key: str) -> str:
    prefix, _, local = key.partition(":")
    return local if prefix in ("", "?") else key


def _path(element: _E) -> str:
    """'eiCreateTender/eiTender/product/intervals/streamInterval[3]/...' for error messages (local names)."""
    parts: list[str] = []
    current: _E | None = element
    while current is not None:
        parent = current.getparent()
        name = etree.QName(current).localname
        if parent is not None:
            same = [c for c in parent if c.tag == current.tag]
            if len(same) > 1:
                name += f"[{same.index(current) + 1}]"
        parts.append(name)
        current = parent
    return "/".join(reversed(parts))


def _text(element: _E) -> str:
    """Text of an id-like element (stripped); refuses an empty one."""
    text = element.text
    if text is None or not (text := text.strip()):
        raise _Bad(element, "is empty")
    if len(element):
        raise _Bad(element, "must hold text, not elements")
    return text


def _raw_text(element: _E) -> str:
    """Free text (names, descriptions), exactly as written."""
    if len(element):
        raise _Bad(element, "must hold text, not elements")
    return element.text or ""


def _opt_text(element: _E) -> str | None:
    text = element.text
    return text.strip() or None if text is not None else None


def _opt_id(element: _E) -> str | None:
    """An id slot the schema requires but the sender may leave empty (an error reply for an unknown party)."""
    if len(element):
        raise _Bad(element, "must hold text, not elements")
    return _opt_text(element)


def _decimal(element: _E, pattern: re.Pattern[str] = _DECIMAL) -> Decimal:
    text = element.text
    if text is None or pattern.fullmatch(text) is None or len(element) or len(text) > _MAX_NUMBER_CHARS:
        kind = "an xs:decimal" if pattern is _DECIMAL else "a number (xs:float)"
        if len(element):
            raise _Bad(element, "must hold text, not elements")
        if not text or not text.strip():
            raise _Bad(element, f"is empty; expected {kind}")
        if len(text) > _MAX_NUMBER_CHARS:
            raise _Bad(element, f"number longer than {_MAX_NUMBER_CHARS} characters")
        raise _Bad(element, f"{text.strip()[:40]!r} is not {kind}")
    return Decimal(text)


def _float_decimal(element: _E) -> Decimal:
    """An EMIX quantity (xs:float lexical space) read exactly as a Decimal."""
    return _decimal(element, _FLOAT)


def _datetime(element: _E) -> datetime:
    text = element.text
    if text is not None:
        text = text.strip()
    if not text or len(element):
        raise _Bad(element, "is empty; expected a date-time such as 2030-01-07T00:00:00Z")
    if len(text) < 19 or len(text) > 40 or text[10] != "T":
        raise _Bad(element, f"{text[:40]!r} is not an xs:dateTime such as 2030-01-07T00:00:00Z")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _Bad(element, f"{text!r} is not a valid xs:dateTime") from None
    if value.tzinfo is None:
        raise _Bad(element, f"{text!r} has no UTC offset; add Z or +hh:mm")
    return value


def _bool(element: _E) -> bool:
    text = (element.text or "").strip()
    value = _BOOLEANS.get(text)
    if value is None:
        raise _Bad(element, f"{text[:20]!r} is not an xs:boolean (true/false)")
    return value


def _unexpected(child: _E, parent: _E) -> _Bad:
    return _Bad(child, f"unexpected element <{_show(_KEYS[child.tag])}> in <{_show(_KEYS[parent.tag])}>")


def _children(element: _E, allowed: frozenset[str], repeated: frozenset[str] = frozenset()) -> dict[str, Any]:
    """One pass over the children: key -> element (or list of elements for ``repeated`` keys)."""
    out: dict[str, Any] = {}
    keys = _KEYS
    for child in element:
        key = keys[child.tag]
        if key in repeated:
            out.setdefault(key, []).append(child)
        elif key in allowed:
            if key in out:
                raise _Bad(child, f"<{_show(key)}> appears twice")
            out[key] = child
        else:
            raise _unexpected(child, element)
    return out


def _require(parts: dict[str, Any], key: str, parent: _E) -> Any:
    found = parts.get(key)
    if found is None:
        raise _Bad(parent, f"missing <{key}>")
    return found


def _refused(element: _E, what: str, exc: ValidationError, rows: _E | None = None) -> _Bad:
    """A 422: the canonical model refused what the element says. Row errors point at their interval."""
    reasons = []
    at = element
    for error in exc.errors(include_url=False)[:3]:
        loc = error.get("loc", ())
        if rows is not None and loc and loc[0] == "rows":
            # rows.3.quantity, or a strip error on rows as a whole that says "row 3: ..."
            index = loc[1] if len(loc) >= 2 else _row_of(str(error.get("msg", "")))
            if isinstance(index, int) and 0 <= index < len(rows):
                at = rows[index]
        where = ".".join(str(part) for part in loc)
        reasons.append(f"{where}: {error.get('msg', '')}" if where else str(error.get("msg", "")))
    return _Bad(at, f"{what} refused: {'; '.join(reasons)}", ResponseCode.UNPROCESSABLE)


def _row_of(text: str) -> int | None:
    found = _ROW.search(text)
    return int(found.group(1)) if found else None


def _validate(model: Any, data: dict[str, Any], element: _E, what: str, rows: _E | None = None) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _refused(element, what, exc, rows) from None


# -- message level ------------------------------------------------------------------------------------------

_PARTY_KEYS = {
    "ei:partyID": "party",
    "ei:publisherPartyID": "party",
    "ei:registreePartyID": "party",
    "ei:requestorPartyID": "requestor",
    "ei:counterPartyID": "counterparty",
    "ei:subscriberPartyID": "counterparty",
    "ei:registrarPartyID": "counterparty",
}

# Root children that may repeat (the others may appear once: where the schema allows several counterparties or
# market contexts in a request, this gateway handles one).
_REPEATABLE = frozenset(
    {
        "ei:tenderID",
        "ei:quoteID",
        "ei:transactionID",
        "ei:registrationID",
        "ei:eiTender",
        "ei:eiQuote",
        "ei:eiTransaction",
        "emix:delivery",
        "ei:eiDelivery",
        "gw:position",
    }
)

# Per root: which children it may have (CTS order is not enforced) and which it must have.
_REQUEST = ("pyld:requestID",)
_ALLOWED: dict[Payload, tuple[frozenset[str], frozenset[str]]] = {}


def _spec(payload: Payload, allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
    _ALLOWED[payload] = (frozenset((*allowed, "gw:extension")), frozenset(required))


_spec(Payload.REGISTER_PARTY, (*_REQUEST, "ei:registreePartyID", "ei:eiRegistrationInfo"), (*_REQUEST,))
_spec(
    Payload.REGISTERED_PARTY,
    ("ei:eiResponse", "ei:registrarPartyID", "ei:registrationID", "ei:registreePartyID"),
    ("ei:eiResponse",),
)
_spec(
    Payload.CREATE_TENDER,
    (*_REQUEST, "ei:partyID", "ei:counterPartyID", "ei:eiTender"),
    (*_REQUEST, "ei:partyID", "ei:counterPartyID", "ei:eiTender"),
)
_spec(
    Payload.CREATED_TENDER,
    ("ei:eiResponse", "ei:partyID", "ei:counterPartyID", "ei:tenderID"),
    ("ei:eiResponse", "ei:partyID"),
)
_spec(
    Payload.CANCEL_TENDER,
    (*_REQUEST, "ei:partyID", "ei:counterPartyID", "ei:tenderID"),
    (*_REQUEST, "ei:partyID", "ei:tenderID"),
)
_spec(Payload.CANCELED_TENDER, ("ei:eiResponse", "ei:partyID", "ei:counterPartyID"), ("ei:eiResponse", "ei:partyID"))
_spec(
    Payload.REQUEST_TENDER,
    (
        *_REQUEST,
        "ei:partyID",
        "ei:counterPartyID",
        "ei:requestorPartyID",
        "emix:marketContext",
        "ei:tenderID",
        "strm:intervals",
    ),
    (*_REQUEST, "ei:partyID", "ei:requestorPartyID"),
)
_spec(Payload.REPLY_TENDER, ("ei:eiResponse", "ei:eiTender"), ("ei:eiResponse",))
_spec(Payload.DISTRIBUTE_TENDER, (*_REQUEST, "ei:partyID", "ei:eiTender"), (*_REQUEST, "ei:partyID", "ei:eiTender"))
_spec(
    Payload.CREATE_QUOTE,
    (*_REQUEST, "ei:publisherPartyID", "ei:subscriberPartyID", "ei:eiQuote"),
    (*_REQUEST, "ei:publisherPartyID", "ei:subscriberPartyID", "ei:eiQuote"),
)
_spec(
    Payload.CREATED_QUOTE,
    ("ei:eiResponse", "ei:subscriberPartyID", "ei:publisherPartyID", "ei:quoteID"),
    ("ei:eiResponse", "ei:subscriberPartyID"),
)
_spec(
    Payload.CREATE_TRANSACTION,
    (*_REQUEST, "ei:partyID", "ei:counterPartyID", "ei:eiTransaction"),
    (*_REQUEST, "ei:partyID", "ei:counterPartyID", "ei:eiTransaction"),
)
_spec(
    Payload.CREATED_TRANSACTION,
    ("ei:counterPartyID", "ei:partyID", "ei:eiResponse", "ei:transactionID"),
    ("ei:counterPartyID", "ei:partyID", "ei:eiResponse"),
)
_spec(
    Payload.REQUEST_POSITION,
    (*_REQUEST, "gw:partyID", "gw:counterPartyID", "gw:marketContext", "gw:start", "gw:end"),
    (*_REQUEST,),
)
_spec(Payload.REPLY_POSITION, ("ei:eiResponse", "gw:partyID", "gw:counterPartyID", "gw:position"), ("ei:eiResponse",))
_spec(
    Payload.CREATE_DELIVERY,
    (*_REQUEST, "ei:requestorPartyID", "emix:delivery"),
    (*_REQUEST, "ei:requestorPartyID", "emix:delivery"),
)
_spec(Payload.CREATED_DELIVERY, ("ei:eiResponse", "ei:eiDelivery"), ("ei:eiResponse",))


@dataclass(slots=True)
class _Root:
    """What the root's children say, before the canonical objects are built."""

    request_id: str | None = None
    party: str | None = None
    requestor: str | None = None
    counterparty: str | None = None
    response: EiResponse | None = None
    tender_ids: list[str] = field(default_factory=list)
    market: str | None = None
    objects: list[_E] = field(default_factory=list)
    registration: _E | None = None
    ext: dict[str, Any] = field(default_factory=dict)


def _decode_message(root: _E, payload: Payload) -> EiMessage:
    allowed, required = _ALLOWED[payload]
    keys = _KEYS
    got = _Root()
    seen: set[str] = set()
    for child in root:
        key = keys[child.tag]
        if key not in allowed:
            raise _unexpected(child, root)
        if key in seen and key not in _REPEATABLE:
            raise _Bad(child, f"<{_show(key)}> appears twice")
        seen.add(key)
        if key == "pyld:requestID":
            got.request_id = _opt_text(child)
        elif key in _PARTY_KEYS:  # present as the schema says, but empty when the sender did not know it
            setattr(got, _PARTY_KEYS[key], _opt_id(child))
        elif key in ("ei:eiTender", "ei:eiQuote", "ei:eiTransaction", "emix:delivery", "ei:eiDelivery", "gw:position"):
            got.objects.append(child)
        elif key in ("ei:tenderID", "ei:quoteID"):
            got.tender_ids.append(_text(child))
        elif key == "ei:eiResponse":
            got.response = _response(child)
        elif key == "emix:marketContext":
            got.market = _text(child)
        elif key == "ei:eiRegistrationInfo":
            got.registration = child
        elif key == "gw:extension":
            got.ext = {**got.ext, **_extension(child)}
        elif key in _EXT_KEYS or key == "gw:marketContext":  # the fields of a gw: root
            _ext_field(got.ext, key, child)
        # ei:transactionID, ei:registrationID, strm:intervals: nothing canonical to put them in
    for key in required:
        if key not in seen:
            raise _Bad(root, f"missing <{key}>")

    ext = got.ext
    party = got.party or got.requestor or ext.get("partyID")
    counterparty = got.counterparty or ext.get("counterPartyID")
    request_id = got.request_id
    if got.response is not None and request_id is None:
        request_id = got.response.request_id
    message = EiMessage(payload=payload, request_id=request_id, party_id=party, counterparty_id=counterparty)
    message.response = got.response
    message.tender_ids = got.tender_ids or list(ext.get("tenderID", ()))
    reason = ext.get("cancelReason")
    if reason is not None:
        try:
            message.cancel_reason = CancelReason(reason)
        except ValueError:
            raise _Bad(ext["@cancelReason"], f"{reason!r} is not a cancel reason (REQUESTED, SUPERVISORY)") from None
    market = got.market or ext.get("marketContext")
    start, end = ext.get("start"), ext.get("end")
    if market is not None or start is not None or end is not None:
        message.query = PositionQuery(market_id=market, start=start, end=end)

    objects = got.objects
    if payload in (Payload.CREATE_TENDER, Payload.REPLY_TENDER, Payload.DISTRIBUTE_TENDER, Payload.CREATE_QUOTE):
        quote = payload is Payload.CREATE_QUOTE
        message.tenders = [_tender(el, party, quote) for el in objects]
    elif payload in (Payload.CREATE_TRANSACTION, Payload.CREATED_TRANSACTION):
        message.transactions = [_transaction(el, party, counterparty) for el in objects or ext.get("transactions", ())]
    elif payload in (Payload.CREATE_DELIVERY, Payload.CREATED_DELIVERY):
        message.deliveries = [_delivery(el, party) for el in objects]
    elif payload is Payload.REPLY_POSITION:
        message.positions = [_position(el) for el in objects]
    elif payload is Payload.REGISTER_PARTY:
        if got.registration is None:
            raise _Bad(root, "missing <ei:eiRegistrationInfo>")
        message.party = _party(got.registration, party)
    return message


def _response(element: _E) -> EiResponse:
    parts = _children(
        element,
        frozenset(
            {"ei:responseCode", "ei:responseDescription", "ei:refID", "ei:responseTermsViolated", "ei:createdDateTime"}
        ),
    )
    code_el = _require(parts, "ei:responseCode", element)
    text = code_el.text or ""
    if _RESPONSE_CODE.fullmatch(text) is None:
        raise _Bad(code_el, f"{text.strip()[:20]!r} is not a three-digit response code")
    number = int(text)
    try:
        code = ResponseCode(number)
    except ValueError:
        by_class = {2: ResponseCode.OK, 4: ResponseCode.BAD_REQUEST, 5: ResponseCode.INTERNAL}.get(number // 100)
        if by_class is None:
            raise _Bad(code_el, f"response code {number} has no equivalent here", ResponseCode.UNPROCESSABLE) from None
        code = by_class
    ref = _require(parts, "ei:refID", element)
    description = parts.get("ei:responseDescription")
    return EiResponse(
        code=code,
        description=(description.text or "") if description is not None else "",
        request_id=_opt_text(ref),
    )


def _ext_field(out: dict[str, Any], key: str, child: _E) -> None:
    name = key[3:]
    if name == "tenderID":
        out.setdefault("tenderID", []).append(_text(child))
        return
    if name in out:
        raise _Bad(child, f"<{_show(key)}> appears twice")
    if name in ("start", "end", "createdDateTime", "measuredDateTime", "executedDateTime"):
        out[name] = _datetime(child)
    elif name == "clearingID":  # free text, not an id: exactly as written
        out[name] = _raw_text(child)
    else:
        out[name] = _text(child)
    out["@" + name] = child


def _extension(element: _E) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys = _KEYS
    for child in element:
        key = keys[child.tag]
        if key in _EXT_KEYS:
            _ext_field(out, key, child)
        elif key == "ei:eiTransaction":
            out.setdefault("transactions", []).append(child)
        else:
            raise _unexpected(child, element)
    return out


# -- streams (tenders, transactions, deliveries) --------------------------------------------------------------

_STREAM_KEYS = ("xcal:dtStart", "xcal:duration", "power:temixPower", "strm:intervals", "emix:uid")
_PRODUCT_KEYS = frozenset(
    (
        *_STREAM_KEYS,
        "emix:transactiveState",
        "emix:expirationDate",
        "emix:integralOnly",
        "emix:currency",
        "emix:marketContext",
        "emix:side",
    )
)
_OPTION_KEYS = _PRODUCT_KEYS | {
    "emix:optionHolderSide",
    "emix:optionPremium",
    "emix:optionStrikePrice",
    "emix:optionType",
}
_DELIVERY_KEYS = frozenset((*_STREAM_KEYS, "emix:injection", "gw:extension"))
_EI_DELIVERY_KEYS = _DELIVERY_KEYS | {"ei:eiDeliveryID", "ei:createdDateTime"}


@dataclass(slots=True)
class _Stream:
    parts: dict[str, _E]
    resolution: Resolution
    starts: list[datetime]
    intervals: _E
    uids: list[int] = field(default_factory=list)
    prices: list[Decimal | None] = field(default_factory=list)
    quantities: list[Decimal | None] = field(default_factory=list)
    location: str | None = None
    quantity_unit: PowerUnit | None = None
    price_per: EnergyUnit | None = None
    transport: tuple[str, str] | None = None


def _stream(element: _E, allowed: frozenset[str], time_zone: str) -> _Stream:
    """A WS-Calendar stream: its head, its stream-level payload and its intervals, in one pass each."""
    parts: dict[str, _E] = {}
    keys = _KEYS
    for child in element:
        key = keys[child.tag]
        if key not in allowed:
            raise _unexpected(child, element)
        if key in parts:
            raise _Bad(child, f"<{_show(key)}> appears twice")
        parts[key] = child

    start_el = _require(parts, "xcal:dtStart", element)
    dt_start = _dt_start(start_el)
    duration_el = _require(parts, "xcal:duration", element)
    text = (duration_el.text or "").strip()
    resolution = _RESOLUTIONS.get(text)
    if resolution is None:
        raise _Bad(
            duration_el,
            f"duration {text[:20]!r} is not a market resolution ({', '.join(_RESOLUTIONS)})",
            ResponseCode.UNPROCESSABLE,
        )
    intervals_el = _require(parts, "strm:intervals", element)
    stream = _Stream(parts, resolution, [], intervals_el)
    payload = _require(parts, "power:temixPower", element)
    default_price, default_quantity = _stream_payload(payload, stream)

    if not _fast_intervals(intervals_el, stream):
        _intervals(intervals_el, stream, default_price, default_quantity)
    try:
        stream.starts = streams.starts(dt_start, resolution, time_zone, stream.uids)
    except (ValueError, OverflowError, ArithmeticError) as exc:
        raise _Bad(intervals_el, f"intervals out of range: {exc}", ResponseCode.UNPROCESSABLE) from None
    return stream


def _fast_intervals(intervals_el: _E, stream: _Stream) -> bool:
    """The common interval table, read in bulk: every interval exactly strm:uid + power:temixPower(emix:price/
    emix:value, emix:quantity) in schema order and the document's own namespaces, valid numbers, increasing uids.

    The table is walked as one flat run of descendants, six at a time: a preorder sequence of (tag, number of
    children) determines a tree, so checking both for each element proves the shape without nested loops.
    Each column is then checked by one regex over its joined texts and converted by ``map``. False: something
    is unusual or wrong, and :func:`_intervals` reads the table again, one interval at a time, and says what."""
    tags = _FAST_TAGS.get(intervals_el.tag)
    if tags is None:
        return False
    si_tag, uid_tag, body_tag, price_tag, value_tag, quantity_tag = tags
    uid_texts: list[str | None] = []
    price_texts: list[str | None] = []
    quantity_texts: list[str | None] = []
    run = intervals_el.iterdescendants()
    try:
        for interval, uid, body, price, value, quantity in zip(run, run, run, run, run, run, strict=True):
            if (
                interval.tag != si_tag
                or uid.tag != uid_tag
                or body.tag != body_tag
                or price.tag != price_tag
                or value.tag != value_tag
                or quantity.tag != quantity_tag
                or len(interval) != 2
                or len(uid)
                or len(body) != 2
                or len(price) != 1
                or len(value)
                or len(quantity)
            ):
                return False
            uid_texts.append(uid.text)
            price_texts.append(value.text)
            quantity_texts.append(quantity.text)
    except ValueError:  # zip(strict=True): the run is not a whole number of intervals
        return False
    if not uid_texts or None in uid_texts or None in price_texts or None in quantity_texts:
        return False
    texts: list[str] = [*price_texts, *quantity_texts]  # type: ignore[list-item]
    if (
        max(map(len, texts)) > _MAX_NUMBER_CHARS
        or _UIDS.fullmatch("\x00".join(uid_texts)) is None  # type: ignore[arg-type]
        or _DECIMALS.fullmatch("\x00".join(price_texts)) is None  # type: ignore[arg-type]
        or _FLOATS.fullmatch("\x00".join(quantity_texts)) is None  # type: ignore[arg-type]
    ):
        return False
    uids = list(map(int, uid_texts))  # type: ignore[arg-type]
    if len(uids) > 1 and not all(map(int.__lt__, uids, islice(uids, 1, None))):
        return False
    stream.uids = uids
    stream.prices = list(map(Decimal, price_texts))  # type: ignore[arg-type]
    stream.quantities = list(map(Decimal, quantity_texts))  # type: ignore[arg-type]
    return True


def _intervals(
    intervals_el: _E, stream: _Stream, default_price: Decimal | None, default_quantity: Decimal | None
) -> None:
    """The interval table, one interval at a time, any namespace set and layout; refusals name the element."""
    uids = stream.uids
    prices = stream.prices
    quantities = stream.quantities
    transport = None
    previous = -1
    is_uid = _UID.fullmatch
    for interval in intervals_el:
        uid_el, body, price, quantity, ends = _interval(interval, intervals_el, default_price, default_quantity)
        uid_text = uid_el.text
        if len(uid_el):
            raise _Bad(uid_el, "must hold text, not elements")
        if uid_text is None or is_uid(uid_text) is None:
            raise _Bad(uid_el, f"{(uid_text or '').strip()[:20]!r} is not an interval number (0, 1, 2 ...)")
        uid = int(uid_text)
        if uid <= previous:
            raise _Bad(
                uid_el,
                f"interval {uid} does not come after interval {previous}; intervals must be in order, none twice",
                ResponseCode.UNPROCESSABLE,
            )
        previous = uid
        uids.append(uid)
        prices.append(price)
        quantities.append(quantity)
        if ends is not None or transport is not None:
            if transport is None and len(uids) > 1:
                raise _Bad(body, "only some intervals name transport ends; name them in every interval")
            if ends is None:
                raise _Bad(body, "missing <power:transportInterface> (the other intervals name transport ends)")
            if transport is not None and ends != transport:
                reason = "transport ends differ between intervals (a tender is one product)"
                raise _Bad(body, reason, ResponseCode.UNPROCESSABLE)
            transport = ends
    if not uids:
        raise _Bad(intervals_el, "missing <strm:streamInterval>")
    stream.transport = transport


def _interval(
    interval: _E, intervals_el: _E, price: Decimal | None, quantity: Decimal | None
) -> tuple[_E, _E, Decimal | None, Decimal | None, tuple[str, str] | None]:
    """One strm:streamInterval, any namespace set: (uid element, payload, price, quantity, transport ends)."""
    keys = _KEYS
    if keys[interval.tag] != "strm:streamInterval":
        raise _unexpected(interval, intervals_el)
    uid_el = body = None
    for child in interval:
        key = keys[child.tag]
        if key == "strm:uid" and uid_el is None:
            uid_el = child
        elif key == "power:temixPower" and body is None:
            body = child
        else:
            raise _unexpected(child, interval)
    if uid_el is None:
        raise _Bad(interval, "missing <strm:uid>")
    if body is None:
        raise _Bad(interval, "missing <power:temixPower>")
    ends = None
    for child in body:
        key = keys[child.tag]
        if key == "emix:price":
            value = None
            for v in child:
                if keys[v.tag] != "emix:value" or value is not None:
                    raise _unexpected(v, child)
                value = _decimal(v)
            if value is None:
                raise _Bad(child, "missing <emix:value>")
            price = value
        elif key == "emix:quantity":
            quantity = _float_decimal(child)
        elif key == "power:transportInterface":
            ends = _transport(child)
        else:
            raise _unexpected(child, body)
    return uid_el, body, price, quantity, ends


def _dt_start(element: _E) -> datetime:
    inner = None
    for child in element:
        if inner is not None:
            raise _unexpected(child, element)
        inner = child
    if inner is None or _KEYS[inner.tag] != "xcal:dateTime":
        raise _Bad(
            inner if inner is not None else element,
            "dtStart needs an <xcal:dateTime> (a date or time alone is not an instant)",
        )
    return _datetime(inner)


def _stream_payload(payload: _E, stream: _Stream) -> tuple[Decimal | None, Decimal | None]:
    """The stream-level temixPower: location, units, and price/quantity the intervals inherit."""
    price = quantity = None
    keys = _KEYS
    for child in payload:
        key = keys[child.tag]
        if key in _NODE_INTERFACES:
            if stream.location is not None:
                raise _Bad(child, "a second interface; the stream-level interface is the location")
            inner = _children(child, frozenset({_NODE_INTERFACES[key]}))
            stream.location = _text(_require(inner, _NODE_INTERFACES[key], child))
        elif key in _POWER_ELEMENTS:
            stream.quantity_unit = _unit(child, key, _POWER_OF)
        elif key in _ENERGY_ELEMENTS:
            stream.price_per = _unit(child, key, _ENERGY_OF)
        elif key == "emix:price":
            inner = _children(child, frozenset({"emix:value"}))
            price = _decimal(_require(inner, "emix:value", child))
        elif key == "emix:quantity":
            quantity = _float_decimal(child)
        elif key == "power:transportInterface":
            raise _Bad(
                child,
                "transport ends belong in each interval; the stream-level interface is the tender's location",
                ResponseCode.UNPROCESSABLE,
            )
        elif key in ("power:powerApparent", "power:energyApparent"):
            raise _Bad(child, "apparent power (VA) is not a traded unit here", ResponseCode.UNPROCESSABLE)
        else:
            raise _unexpected(child, payload)
    return price, quantity


def _unit(element: _E, key: str, table: dict[tuple[str, str], Any]) -> Any:
    scale = None
    for child in element:
        k = _KEYS[child.tag]
        if k == "scale:siScaleCode":
            scale = (child.text or "").strip()
        elif k not in ("power:itemDescription", "power:itemUnits", "power:powerAttributes"):
            raise _unexpected(child, element)
    if scale is None:
        raise _Bad(element, "missing <scale:siScaleCode>")
    unit = table.get((key, scale))
    if unit is None:
        raise _Bad(element, f"scale {scale[:10]!r} is not supported here (none, k or M)", ResponseCode.UNPROCESSABLE)
    return unit


def _transport(element: _E) -> tuple[str, str]:
    parts = _children(element, frozenset({"power:pointOfReceipt", "power:pointOfDelivery"}))
    return (
        _text(_require(parts, "power:pointOfReceipt", element)),
        _text(_require(parts, "power:pointOfDelivery", element)),
    )


def _product_tail(stream: _Stream, element: _E, data: dict[str, Any]) -> None:
    """The emix:product / emix:emixOption fields after the stream: state, expiry, market, side, currency ..."""
    parts = stream.parts
    state = parts.get("emix:transactiveState")
    if state is None:
        raise _Bad(element, "missing <emix:transactiveState>")
    if (state.text or "").strip() not in _TRANSACTIVE_STATES:
        raise _Bad(state, f"{(state.text or '').strip()[:30]!r} is not a transactive state")
    data["market_id"] = _text(_require(parts, "emix:marketContext", element))
    side_el = _require(parts, "emix:side", element)
    side = (side_el.text or "").strip()
    if side not in _SIDES:
        raise _Bad(side_el, f"{side[:20]!r} is not a side (buy or sell)")
    data["side"] = side
    currency = parts.get("emix:currency")
    if currency is not None:
        data["currency"] = _text(currency)
    if stream.quantity_unit is not None:
        data["quantity_unit"] = stream.quantity_unit
    if stream.price_per is not None:
        data["price_per"] = stream.price_per
    if stream.location is None:
        raise _Bad(parts["power:temixPower"], "missing the location (<power:serviceDeliveryPoint>/<power:node>)")
    data["location_id"] = stream.location
    if "emix:optionHolderSide" in stream.parts or "emix:optionType" in stream.parts:
        data["product"] = _option(stream, element)
    elif stream.transport is not None:
        data["product"] = {
            "type": "transport",
            "from_location_id": stream.transport[0],
            "to_location_id": stream.transport[1],
        }
    elif (stream.quantity_unit is not None and stream.quantity_unit.is_reactive) or (
        stream.price_per is not None and stream.price_per.is_reactive
    ):
        data["product"] = {"type": "reactive_energy"}
    else:
        data["product"] = {"type": "energy"}


def _option(stream: _Stream, element: _E) -> dict[str, Any]:
    parts = stream.parts
    kind_el = parts.get("emix:optionType")
    kind = (kind_el.text or "").strip() if kind_el is not None else ""
    holder_el = _require(parts, "emix:optionHolderSide", element)
    holder = (holder_el.text or "").strip()
    if holder not in _SIDES:
        raise _Bad(holder_el, f"{holder[:20]!r} is not a side (buy or sell)")
    if kind not in ("call", "put"):
        kind = "call" if holder == "buy" else "put"
    elif (kind == "call") != (holder == "buy"):
        raise _Bad(holder_el, f"a {kind} option's holder side is {'buy' if kind == 'call' else 'sell'}")
    values = []
    for key in ("emix:optionStrikePrice", "emix:optionPremium"):
        price_el = _require(parts, key, element)
        inner = _children(price_el, frozenset({"emix:value"}))
        values.append(_decimal(_require(inner, "emix:value", price_el)))
    return {"type": "option", "option_kind": kind, "strike": values[0], "premium": values[1]}


def _object_parts(element: _E, id_key: str, extra: frozenset[str] = frozenset()) -> tuple[dict[str, Any], _E]:
    """ids, the one product and the gw:extension of an eiTender / eiQuote / eiTransaction."""
    out: dict[str, Any] = {}
    product = None
    keys = _KEYS
    for child in element:
        key = keys[child.tag]
        if key == id_key or key in extra:
            if key in out:
                raise _Bad(child, f"<{_show(key)}> appears twice")
            out[key] = _text(child)
        elif key in ("emix:product", "emix:emixOption"):
            if product is not None:
                raise _Bad(child, "more than one product; this gateway maps one product per tender")
            product = child
        elif key == "gw:extension":
            out["ext"] = _extension(child)
        else:
            raise _unexpected(child, element)
    if id_key not in out:
        raise _Bad(element, f"missing <{id_key}>")
    if product is None:
        raise _Bad(element, "missing <emix:product>")
    return out, product


def _tender(element: _E, message_party: str | None, quote: bool) -> Tender:
    ids, product = _object_parts(element, "ei:quoteID" if quote else "ei:tenderID")
    ext = ids.get("ext", {})
    time_zone = ext.get("timeZone", "UTC")
    option = _KEYS[product.tag] == "emix:emixOption"
    stream = _stream(product, _OPTION_KEYS if option else _PRODUCT_KEYS, time_zone)
    party = ext.get("partyID") or message_party
    if party is None:
        raise _Bad(element, "names no party (add gw:extension/gw:partyID; the payload has no party)")
    prices, quantities = stream.prices, stream.quantities
    if None in prices or None in quantities:
        index = next(i for i, (p, q) in enumerate(zip(prices, quantities, strict=True)) if p is None or q is None)
        missing = "emix:price" if prices[index] is None else "emix:quantity"
        raise _Bad(stream.intervals[index], f"missing <{missing}> (in the interval or the stream)")
    rows = [
        {"start": start, "quantity": quantity, "price": price}
        for start, quantity, price in zip(stream.starts, quantities, prices, strict=True)
    ]
    data: dict[str, Any] = {
        "id": ids["ei:quoteID" if quote else "ei:tenderID"],
        "party_id": party,
        "resolution": stream.resolution,
        "time_zone": time_zone,
        "rows": rows,
    }
    _product_tail(stream, product, data)
    parts = stream.parts
    expires = parts.get("emix:expirationDate")
    if expires is not None:
        data["expires_at"] = _datetime(expires)
    integral = parts.get("emix:integralOnly")
    if integral is not None:
        data["all_or_none"] = _bool(integral)
    if "status" in ext:
        data["status"] = ext["status"]
    if "createdDateTime" in ext:
        data["created_at"] = ext["createdDateTime"]
    what = f"{'quote' if quote else 'tender'} {data['id']!r}"
    return _validate(Tender, data, element, what, stream.intervals)


def _one_interval(stream: _Stream, time_zone: str) -> tuple[dict[str, Any], Decimal | None, Decimal | None]:
    if len(stream.starts) != 1:
        raise _Bad(
            stream.parts["strm:intervals"],
            f"has {len(stream.starts)} intervals; this object covers exactly one",
            ResponseCode.UNPROCESSABLE,
        )
    interval = {"start": stream.starts[0], "duration": stream.resolution, "time_zone": time_zone}
    return interval, stream.quantities[0], stream.prices[0]


def _transaction(element: _E, message_party: str | None, message_counterparty: str | None) -> Transaction:
    ids, product = _object_parts(element, "ei:transactionID", frozenset({"ei:tenderID"}))
    ext = ids.get("ext", {})
    time_zone = ext.get("timeZone", "UTC")
    option = _KEYS[product.tag] == "emix:emixOption"
    stream = _stream(product, _OPTION_KEYS if option else _PRODUCT_KEYS, time_zone)
    interval, quantity, price = _one_interval(stream, time_zone)
    if price is None or quantity is None:
        raise _Bad(stream.intervals[0], f"missing <emix:{'price' if price is None else 'quantity'}>")
    party = ext.get("partyID") or message_party
    counterparty = ext.get("counterPartyID") or message_counterparty
    if party is None or counterparty is None:
        raise _Bad(element, f"names no {'party' if party is None else 'counterparty'} (the payload names none either)")
    data: dict[str, Any] = {
        "id": ids["ei:transactionID"],
        "party_id": party,
        "counterparty_id": counterparty,
        "interval": interval,
        "quantity": quantity,
        "price": price,
    }
    for key, name in (("ei:tenderID", "tender_id"),):
        if key in ids:
            data[name] = ids[key]
    for key, name in (("clearingID", "clearing_id"), ("subscriptionID", "subscription_id")):
        if key in ext:
            data[name] = ext[key]
    if "executedDateTime" in ext:
        data["executed_at"] = ext["executedDateTime"]
    _product_tail(stream, product, data)
    return _validate(Transaction, data, element, f"transaction {data['id']!r}", stream.intervals)


def _delivery(element: _E, message_party: str | None) -> Delivery:
    ei = _KEYS[element.tag] == "ei:eiDelivery"
    ext: dict[str, Any] = {}
    for child in element:  # first: the time zone decides where calendar intervals start
        if _KEYS[child.tag] == "gw:extension":
            ext = _extension(child)
    time_zone = ext.get("timeZone", "UTC")
    stream = _stream(element, _EI_DELIVERY_KEYS if ei else _DELIVERY_KEYS, time_zone)
    interval, quantity, _price = _one_interval(stream, time_zone)
    if quantity is None:
        raise _Bad(stream.intervals[0], "missing <emix:quantity>")
    parts = stream.parts
    injection = _bool(_require(parts, "emix:injection", element))
    if ei:
        delivery_id = _text(_require(parts, "ei:eiDeliveryID", element))
        measured = _datetime(_require(parts, "ei:createdDateTime", element))
    else:
        delivery_id = _text(_require(parts, "emix:uid", element))
        measured = ext.get("measuredDateTime")
    if stream.location is None:
        raise _Bad(parts["power:temixPower"], "missing the location (<power:serviceDeliveryPoint>/<power:node>)")
    party = ext.get("partyID") or message_party
    if party is None:
        raise _Bad(element, "names no party (the payload names none either)")
    data: dict[str, Any] = {
        "id": delivery_id,
        "party_id": party,
        "location_id": stream.location,
        "interval": interval,
        "quantity": -quantity if injection else quantity,
    }
    if stream.quantity_unit is not None:
        data["quantity_unit"] = stream.quantity_unit
    if measured is not None:
        data["measured_at"] = measured
    for key, name in (("resourceID", "resource_id"), ("quality", "quality")):
        if key in ext:
            data[name] = ext[key]
    return _validate(Delivery, data, element, f"delivery {delivery_id!r}")


_POSITION_FIELDS = {
    "gw:partyID": ("party_id", _text),
    "gw:marketContext": ("market_id", _text),
    "gw:locationID": ("location_id", _text),
    "gw:productType": ("product_type", _text),
    "gw:dtStart": ("start", _datetime),
    "gw:duration": ("duration", _text),
    "gw:timeZone": ("time_zone", _text),
    "gw:quantity": ("quantity", _decimal),
    "gw:cost": ("cost", _decimal),
    "gw:currency": ("currency", _text),
    "gw:quantityUnit": ("quantity_unit", _text),
    "gw:pricePer": ("price_per", _text),
    "gw:asOf": ("as_of", _datetime),
}
_POSITION_REQUIRED = (
    "gw:partyID",
    "gw:marketContext",
    "gw:locationID",
    "gw:dtStart",
    "gw:duration",
    "gw:quantity",
    "gw:cost",
)


def _position(element: _E) -> Position:
    parts = _children(element, frozenset(_POSITION_FIELDS))
    for key in _POSITION_REQUIRED:
        _require(parts, key, element)
    data: dict[str, Any] = {}
    for key, child in parts.items():
        name, read = _POSITION_FIELDS[key]
        data[name] = read(child)
    interval = {
        "start": data.pop("start"),
        "duration": data.pop("duration"),
        "time_zone": data.pop("time_zone", "UTC"),
    }
    data["interval"] = interval
    return _validate(Position, data, element, "position")


def _party(element: _E, registree: str | None) -> Party:
    parts = _children(
        element,
        frozenset({"gw:partyID", "gw:name", "gw:createdDateTime"}),
        frozenset({"gw:role", "gw:identity"}),
    )
    party_el = parts.get("gw:partyID")
    data: dict[str, Any] = {
        "id": _text(party_el) if party_el is not None else registree,
        "name": _raw_text(_require(parts, "gw:name", element)),
        "roles": [_text(r) for r in parts.get("gw:role", ())],
    }
    identities = {}
    for identity in parts.get("gw:identity", ()):
        inner = _children(identity, frozenset({"gw:kind", "gw:value"}))
        kind = _text(_require(inner, "gw:kind", identity))
        if kind in identities:
            raise _Bad(identity, f"identity {kind!r} appears twice")
        identities[kind] = _raw_text(_require(inner, "gw:value", identity))
    data["identities"] = identities
    if "gw:createdDateTime" in parts:
        data["created_at"] = _datetime(parts["gw:createdDateTime"])
    return _validate(Party, data, element, f"party {data['id']!r}")


# ================================================================================================ encoding


class _Writer:
    def __init__(self, dialect: Dialect, extensions: bool, message: EiMessage) -> None:
        uris = {**NAMESPACES[dialect], "gw": GW_NS, "xsi": XSI_NS}
        self.uris = uris
        self.extensions = extensions
        self.tags: dict[str, str] = {}
        # An object's own party goes into its extension only when the message does not already say it.
        self.party = message.party_id
        self.counterparty = message.counterparty_id

    def tag(self, key: str) -> str:
        tag = self.tags.get(key)
        if tag is None:
            prefix, _, local = key.partition(":")
            tag = self.tags[key] = f"{{{self.uris[prefix]}}}{local}"
        return tag

    def root(self, key: str, uses_gw: bool) -> _E:
        nsmap = {p: u for p, u in self.uris.items() if p not in ("gw", "xsi")}
        if self.extensions or uses_gw:
            nsmap["gw"] = GW_NS
            nsmap["xsi"] = XSI_NS
        return etree.Element(self.tag(key), nsmap=nsmap)

    def sub(self, parent: _E, key: str, text: str | None = None) -> _E:
        element = etree.SubElement(parent, self.tag(key))
        if text is not None:
            element.text = text
        return element

    def extension(self, element: _E, fields: dict[str, Any], transactions: Sequence[Transaction] = ()) -> None:
        """Append gw:extension with the non-empty ``fields`` (schema order) and type ``element`` as ours."""
        if not self.extensions:
            return
        present = [
            (name, fields[name]) for name, _ in _EXT_FIELDS if fields.get(name) is not None and fields[name] != []
        ]
        if not present and not transactions:
            return
        local = etree.QName(element).localname
        element.set(_XSI_TYPE, f"gw:{local[0].upper()}{local[1:]}Type")
        ext = self.sub(element, "gw:extension")
        for name, value in present:
            for item in value if isinstance(value, list) else (value,):
                self.sub(ext, f"gw:{name}", _ts(item) if isinstance(item, datetime) else str(item))
        for transaction in transactions:
            _put_transaction(self, ext, transaction)


def encode(message: EiMessage, dialect: Dialect = Dialect.EI10, *, extensions: bool = True) -> bytes:
    """The EI payload for ``message`` as UTF-8 bytes.

    ``dialect`` picks the namespace URIs; ``extensions=False`` leaves out what only our extension can say
    (strict CTS). A party slot the schema requires but the message leaves empty (an error reply for a party
    not yet known) is written empty, and reads back as None. Raises ``ValueError`` for what a payload cannot
    go without: the objects of a create request, the response of a reply, aware times.
    """
    payload = Payload(message.payload)
    writer = _Writer(dialect, extensions, message)
    key = _ROOTS[payload]
    root = writer.root(key, uses_gw=key.startswith("gw:") or payload is Payload.REGISTER_PARTY)
    _ENCODERS[payload](writer, root, message)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _fmt(value: Decimal) -> str:
    """A decimal in plain notation (xs:decimal has no exponent): 1E+2 -> '100', trailing zeros kept."""
    return format(value, "f")


def _ts(value: datetime) -> str:
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"{value.isoformat()} has no time zone; EI times must be aware (UTC)")
    if offset != timedelta(0):
        value = value.astimezone(UTC)
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _free_text(text: str) -> str:
    """Descriptions and names may hold characters XML cannot carry; those become U+FFFD."""
    return _INVALID_XML_CHARS.sub("\ufffd", text)


def _need(value: Any, what: str, payload: Payload) -> Any:
    if value is None or value == []:
        raise ValueError(f"{payload.value} needs {what}")
    return value


def _put_request_id(w: _Writer, root: _E, message: EiMessage) -> None:
    w.sub(root, "pyld:requestID", message.request_id or "")


def _put_response(w: _Writer, parent: _E, message: EiMessage) -> None:
    response: EiResponse = _need(message.response, "a response (ei:eiResponse)", message.payload)
    element = w.sub(parent, "ei:eiResponse")
    w.sub(element, "ei:responseCode", f"{int(response.code):03d}")
    w.sub(element, "ei:responseDescription", _free_text(response.description))
    w.sub(element, "ei:refID", response.request_id or message.request_id or "")


def _put_stream_head(
    w: _Writer,
    element: _E,
    start: datetime,
    resolution: Resolution,
    location: str,
    quantity_unit: PowerUnit,
    price_per: EnergyUnit | None,
) -> None:
    w.sub(w.sub(element, "xcal:dtStart"), "xcal:dateTime", _ts(start))
    w.sub(element, "xcal:duration", resolution.value)
    payload = w.sub(element, "power:temixPower")
    w.sub(w.sub(payload, "power:serviceDeliveryPoint"), "power:node", location)
    item, scale = _POWER_ITEMS[quantity_unit]
    _put_item(w, payload, item, scale, power=True)
    if price_per is not None:
        item, scale = _ENERGY_ITEMS[price_per]
        _put_item(w, payload, item, scale, power=False)


def _put_item(w: _Writer, parent: _E, item: str, scale: str, *, power: bool) -> None:
    element = w.sub(parent, item)
    description, units = _ITEM_TEXT[item]
    w.sub(element, "power:itemDescription", description)
    w.sub(element, "power:itemUnits", units)
    w.sub(element, "scale:siScaleCode", scale)
    if power:
        attributes = w.sub(element, "power:powerAttributes")
        hertz, voltage, ac = NOMINAL_POWER_ATTRIBUTES
        w.sub(attributes, "power:hertz", hertz)
        w.sub(attributes, "power:voltage", voltage)
        w.sub(attributes, "power:ac", ac)


def _put_interval(
    w: _Writer,
    intervals: _E,
    uid: int,
    price: Decimal | None,
    quantity: Decimal,
    transport: TransportProduct | None,
) -> None:
    interval = w.sub(intervals, "strm:streamInterval")
    w.sub(interval, "strm:uid", str(uid))
    body = w.sub(interval, "power:temixPower")
    if transport is not None:
        ends = w.sub(body, "power:transportInterface")
        w.sub(ends, "power:pointOfReceipt", transport.from_location_id)
        w.sub(ends, "power:pointOfDelivery", transport.to_location_id)
    if price is not None:
        w.sub(w.sub(body, "emix:price"), "emix:value", _fmt(price))
    w.sub(body, "emix:quantity", _fmt(quantity))


def _put_product(
    w: _Writer,
    parent: _E,
    obj: Tender | Transaction,
    uid: str,
    state: str,
    rows: list[tuple[int, Decimal, Decimal]],
    start: datetime,
    resolution: Resolution,
) -> None:
    product = obj.product
    option = product if isinstance(product, OptionProduct) else None
    transport = product if isinstance(product, TransportProduct) else None
    element = w.sub(parent, "emix:emixOption" if option else "emix:product")
    _put_stream_head(w, element, start, resolution, obj.location_id, obj.quantity_unit, obj.price_per)
    intervals = w.sub(element, "strm:intervals")
    for n, price, quantity in rows:
        _put_interval(w, intervals, n, price, quantity, transport)
    w.sub(element, "emix:uid", uid)
    w.sub(element, "emix:transactiveState", state)
    expires = getattr(obj, "expires_at", None)
    if expires is not None:
        w.sub(element, "emix:expirationDate", _ts(expires))
    if isinstance(obj, Tender):
        w.sub(element, "emix:integralOnly", "true" if obj.all_or_none else "false")
    if option is not None:
        w.sub(element, "emix:optionHolderSide", "buy" if option.option_kind == "call" else "sell")
        w.sub(w.sub(element, "emix:optionPremium"), "emix:value", _fmt(option.premium))
        w.sub(w.sub(element, "emix:optionStrikePrice"), "emix:value", _fmt(option.strike))
        w.sub(element, "emix:optionType", str(option.option_kind.value))
        w.sub(element, "emix:side", obj.side.value)
        w.sub(element, "emix:marketContext", obj.market_id)
        w.sub(element, "emix:currency", obj.currency)
    else:
        w.sub(element, "emix:currency", obj.currency)
        w.sub(element, "emix:marketContext", obj.market_id)
        w.sub(element, "emix:side", obj.side.value)


def _put_tender(w: _Writer, parent: _E, tender: Tender, quote: bool) -> None:
    element = w.sub(parent, "ei:eiQuote" if quote else "ei:eiTender")
    w.sub(element, "ei:quoteID" if quote else "ei:tenderID", tender.id)
    starts = [row["start"] for row in tender.rows]
    uids = streams.offsets(starts, tender.resolution, tender.time_zone)
    rows = [(n, row["price"], row["quantity"]) for n, row in zip(uids, tender.rows, strict=True)]
    state = "publication" if quote else "tender"
    _put_product(w, element, tender, tender.id, state, rows, starts[0], tender.resolution)
    w.extension(
        element,
        {
            "partyID": None if tender.party_id == w.party else tender.party_id,
            "timeZone": None if tender.time_zone == "UTC" else tender.time_zone,
            "status": tender.status.value,
            "createdDateTime": tender.created_at,
        },
    )


def _put_transaction(w: _Writer, parent: _E, transaction: Transaction) -> None:
    element = w.sub(parent, "ei:eiTransaction")
    w.sub(element, "ei:transactionID", transaction.id)
    if transaction.tender_id is not None:
        w.sub(element, "ei:tenderID", transaction.tender_id)
    interval = transaction.interval
    rows = [(0, transaction.price, transaction.quantity)]
    _put_product(w, element, transaction, transaction.id, "transaction", rows, interval.start, interval.duration)
    w.extension(
        element,
        {
            "partyID": None if transaction.party_id == w.party else transaction.party_id,
            "counterPartyID": None if transaction.counterparty_id == w.counterparty else transaction.counterparty_id,
            "timeZone": None if interval.time_zone == "UTC" else interval.time_zone,
            "clearingID": transaction.clearing_id,
            "subscriptionID": transaction.subscription_id,
            "executedDateTime": transaction.executed_at,
        },
    )


def _put_delivery(w: _Writer, parent: _E, delivery: Delivery, ei: bool) -> None:
    element = w.sub(parent, "ei:eiDelivery" if ei else "emix:delivery")
    interval = delivery.interval
    _put_stream_head(w, element, interval.start, interval.duration, delivery.location_id, delivery.quantity_unit, None)
    intervals = w.sub(element, "strm:intervals")
    _put_interval(w, intervals, 0, None, abs(delivery.quantity), None)
    w.sub(element, "emix:uid", delivery.id)
    w.sub(element, "emix:injection", "true" if delivery.quantity < 0 else "false")
    if ei:
        w.sub(element, "ei:eiDeliveryID", delivery.id)
        w.sub(element, "ei:createdDateTime", _ts(delivery.measured_at))
    w.extension(
        element,
        {
            "partyID": None if delivery.party_id == w.party else delivery.party_id,
            "resourceID": delivery.resource_id,
            "quality": delivery.quality.value,
            "measuredDateTime": None if ei else delivery.measured_at,
            "timeZone": None if interval.time_zone == "UTC" else interval.time_zone,
        },
    )


def _put_position(w: _Writer, parent: _E, position: Position) -> None:
    element = w.sub(parent, "gw:position")
    interval: Interval = position.interval
    for key, value in (
        ("gw:partyID", position.party_id),
        ("gw:marketContext", position.market_id),
        ("gw:locationID", position.location_id),
        ("gw:productType", position.product_type),
        ("gw:dtStart", _ts(interval.start)),
        ("gw:duration", interval.duration.value),
        ("gw:timeZone", None if interval.time_zone == "UTC" else interval.time_zone),
        ("gw:quantity", _fmt(position.quantity)),
        ("gw:cost", _fmt(position.cost)),
        ("gw:currency", position.currency),
        ("gw:quantityUnit", position.quantity_unit.value),
        ("gw:pricePer", position.price_per.value),
        ("gw:asOf", _ts(position.as_of)),
    ):
        if value is not None:
            w.sub(element, key, value)


def _put_party(w: _Writer, parent: _E, party: Party) -> None:
    element = w.sub(parent, "ei:eiRegistrationInfo")
    element.set(_XSI_TYPE, "gw:PartyRegistrationInfoType")
    w.sub(element, "gw:partyID", party.id)
    w.sub(element, "gw:name", _free_text(party.name))
    for role in party.roles:
        w.sub(element, "gw:role", role.value)
    for kind, value in party.identities.items():
        identity = w.sub(element, "gw:identity")
        w.sub(identity, "gw:kind", kind)
        w.sub(identity, "gw:value", value)
    w.sub(element, "gw:createdDateTime", _ts(party.created_at))


def _opt(w: _Writer, parent: _E, key: str, value: str | None) -> None:
    if value is not None:
        w.sub(parent, key, value)


def _query_fields(message: EiMessage) -> dict[str, Any]:
    query = message.query
    return {"start": query.start, "end": query.end} if query is not None else {}


def _enc_register_party(w: _Writer, root: _E, m: EiMessage) -> None:
    _put_request_id(w, root, m)
    _opt(w, root, "ei:registreePartyID", m.party_id)
    _put_party(w, root, _need(m.party, "a party", m.payload))
    w.extension(root, {"counterPartyID": m.counterparty_id})


def _enc_registered_party(w: _Writer, root: _E, m: EiMessage) -> None:
    _put_response(w, root, m)
    _opt(w, root, "ei:registrarPartyID", m.counterparty_id)
    _opt(w, root, "ei:registreePartyID", m.party_id)


def _enc_create_tender(w: _Writer, root: _E, m: EiMessage) -> None:
    _put_request_id(w, root, m)
    w.sub(root, "ei:partyID", m.party_id or "")
    w.sub(root, "ei:counterPartyID", m.counterparty_id or "")
    for tender in _need(m.tenders, "a tender", m.payload):
        _put_tender(w, root, tender, quote=False)


def _enc_created_tender(w: _Writer, root: _E, m: EiMessage) -> None:
    _put_response(w, root, m)
    w.sub(root, "ei:partyID", m.party_id or "")
    _opt(w, root, "ei:counterPartyID", m.counterparty_id)
    for tender_id in m.tender_ids:
        w.sub(root, "ei:tenderID", tender_id)


def _enc_cancel_tender(w: _Writer, root: _E, m: EiMessage) -> None:
    _put_request_id(w, root, m)
    w.sub(root, "ei:partyID", m.party_id or "")
    _opt(w, root, "ei:counterPartyID", m.counterparty_id)
    for tender_id in _need(m.tender_ids, "tender_ids", m.payload):
        w.sub(root, "ei:tenderID", tender_id)
    w.extension(root, {"cancelReason": m.cancel_reason.value if m.cancel_reason else None})


def _enc_canceled_tender(w: _Writer, root: _E, m: EiMessage) -> None:
    _put_response(w, root, m)
    w.sub(root, "ei:partyID", m.party_id or "")
    _opt(w, root, "ei:counterPartyID", m.counterparty_id)
    w.extension(
        root, {"tenderID": list(m.tender_ids), "cancelReason": m.cancel_reason.value if m.cancel_reason else None}
    )


def _enc_request_tender(w: _Writer, root: _E, m: EiMessage) -> None:
    _put_request_id(w, root, m)
    party = m.party_id or ""
    w.sub(root, "ei:partyID", party)
    _opt(w, root, "ei:counterPartyID", m.counterparty_id)
    w.sub(root, "ei:requestorPartyID", party)
    _opt(w, root, "emix:marketContext", m.query.market_id if m.query else None)
    for tender_id in m.tender_ids:
        w.sub(root, "ei:tenderID", tender_id)
    w.extension(root, _query_fields(m))


def _enc_reply_tender(w: _Writer, root: _E, m: EiMessage) -> None:
    _put_response(w, root, m)
    for tender in m.tenders:
        _put_tender(w, root, tender, quote=False)
    w.extension(root, {"partyID": m.party_id, "counterPartyID": m.counterparty_id})


def _enc_distribute_tender(w: _Writer, root: _E, m: EiMessage) -> None:
    _put_request_id(w, root, m)
    w.sub(root, "ei:partyID", m.party_id or "")
    for tender in _need(m.tenders, "a tender", m.payload):
        _put_tender(w, root, tender, quote=False)
    w.extension(root, {"counterPartyID": m.counterparty_id})


def _enc_create_quote(w: _Writer, root: _E, m: EiMessage) -> None:
    _put_request_id(w, root, m)
    w.sub(root, "ei:publisherPartyID", m.party_id or "")
    w.sub(root, "ei:subscriberPartyID", m.counterparty_id or "")
    for tender in _need(m.tenders, "a tender (the quote)", m.payload):
        _put_tender(w, root, tender, quote=True)


def _enc_created_quote(w: _Writer, root: _E, m: EiMessage) -> None:
    _put_response(w, root, m)
    w.sub(root, "ei:subscriberPartyID", m.counterparty_id or "")
    _opt(w, root, "ei:publisherPartyID", m.party_id)
    for tender_id in m.tender_ids:
        w.sub(root, "ei:quoteID", tender_id)


def _enc_create_transaction(w: _Writer, root: _E, m: EiMessage) -> None:
    _put_request_id(w, root, m)
    w.sub(root, "ei:partyID", m.party_id or "")
    w.sub(root, "ei:counterPartyID", m.counterparty_id or "")
    for transaction in _need(m.transactions, "a transaction", m.payload):
        _put_transaction(w, root, transaction)


def _enc_created_transaction(w: _Writer, root: _E, m: EiMessage) -> None:
    w.sub(root, "ei:counterPartyID", m.counterparty_id or "")
    w.sub(root, "ei:partyID", m.party_id or "")
    _put_response(w, root, m)
    for transaction in m.transactions:
        w.sub(root, "ei:transactionID", transaction.id)
    w.extension(root, {}, m.transactions)


def _enc_request_position(w: _Writer, root: _E, m: EiMessage) -> None:
    _put_request_id(w, root, m)
    query = m.query or PositionQuery()
    _opt(w, root, "gw:partyID", m.party_id)
    _opt(w, root, "gw:counterPartyID", m.counterparty_id)
    _opt(w, root, "gw:marketContext", query.market_id)
    _opt(w, root, "gw:start", _ts(query.start) if query.start else None)
    _opt(w, root, "gw:end", _ts(query.end) if query.end else None)


def _enc_reply_position(w: _Writer, root: _E, m: EiMessage) -> None:
    _put_response(w, root, m)
    _opt(w, root, "gw:partyID", m.party_id)
    _opt(w, root, "gw:counterPartyID", m.counterparty_id)
    for position in m.positions:
        _put_position(w, root, position)


def _enc_create_delivery(w: _Writer, root: _E, m: EiMessage) -> None:
    _put_request_id(w, root, m)
    w.sub(root, "ei:requestorPartyID", m.party_id or "")
    for delivery in _need(m.deliveries, "a delivery", m.payload):
        _put_delivery(w, root, delivery, ei=False)
    w.extension(root, {"counterPartyID": m.counterparty_id})


def _enc_created_delivery(w: _Writer, root: _E, m: EiMessage) -> None:
    _put_response(w, root, m)
    for delivery in m.deliveries:
        _put_delivery(w, root, delivery, ei=True)
    w.extension(root, {"partyID": m.party_id, "counterPartyID": m.counterparty_id})


_ENCODERS: dict[Payload, Callable[[_Writer, _E, EiMessage], None]] = {
    Payload.REGISTER_PARTY: _enc_register_party,
    Payload.REGISTERED_PARTY: _enc_registered_party,
    Payload.CREATE_TENDER: _enc_create_tender,
    Payload.CREATED_TENDER: _enc_created_tender,
    Payload.CANCEL_TENDER: _enc_cancel_tender,
    Payload.CANCELED_TENDER: _enc_canceled_tender,
    Payload.REQUEST_TENDER: _enc_request_tender,
    Payload.REPLY_TENDER: _enc_reply_tender,
    Payload.DISTRIBUTE_TENDER: _enc_distribute_tender,
    Payload.CREATE_QUOTE: _enc_create_quote,
    Payload.CREATED_QUOTE: _enc_created_quote,
    Payload.CREATE_TRANSACTION: _enc_create_transaction,
    Payload.CREATED_TRANSACTION: _enc_created_transaction,
    Payload.REQUEST_POSITION: _enc_request_position,
    Payload.REPLY_POSITION: _enc_reply_position,
    Payload.CREATE_DELIVERY: _enc_create_delivery,
    Payload.CREATED_DELIVERY: _enc_created_delivery,
}


# ======================================================================================= extension schema

_EXTENDED_TYPES = (
    "ei:EiTenderType",
    "ei:EiQuoteType",
    "ei:EiTransactionType",
    "emix:DeliveryType",
    "ei:EiDeliveryType",
    *sorted({f"pyld:{r[5].upper()}{r[6:]}Type" for r in _ROOTS.values() if r.startswith("pyld:")}),
)


def extension_schema(dialect: Dialect = Dialect.EI10) -> bytes:
    """The XSD of :data:`GW_NS` for ``dialect``: the types our ``xsi:type`` names, the party registration info
    and the position payloads. It imports the EI, EI payload and EMIX namespaces without a location: load it
    after the CTS schemas (e.g. last in a driver schema that imports them)."""
    ns = NAMESPACES[dialect]
    unbounded = ' maxOccurs="unbounded"'
    ext_fields = "".join(
        f'<xs:element name="{name}" type="{kind}" minOccurs="0"{unbounded if name == "tenderID" else ""}/>'
        for name, kind in _EXT_FIELDS
    )
    extended = "".join(
        f'<xs:complexType name="{base.partition(":")[2]}"><xs:complexContent><xs:extension base="{base}">'
        f'<xs:sequence><xs:element ref="gw:extension" minOccurs="0"/></xs:sequence>'
        f"</xs:extension></xs:complexContent></xs:complexType>"
        for base in _EXTENDED_TYPES
    )
    opt = 'minOccurs="0"'
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:gw="{GW_NS}" xmlns:ei="{ns["ei"]}"
    xmlns:pyld="{ns["pyld"]}" xmlns:emix="{ns["emix"]}" targetNamespace="{GW_NS}" elementFormDefault="qualified">
  <xs:import namespace="{ns["ei"]}"/>
  <xs:import namespace="{ns["pyld"]}"/>
  <xs:import namespace="{ns["emix"]}"/>
  <xs:element name="extension">
    <xs:complexType><xs:sequence>{ext_fields}
      <xs:element ref="ei:eiTransaction" minOccurs="0" maxOccurs="unbounded"/>
    </xs:sequence></xs:complexType>
  </xs:element>
  {extended}
  <xs:complexType name="PartyRegistrationInfoType"><xs:complexContent>
    <xs:extension base="ei:EiRegistrationInfoType"><xs:sequence>
      <xs:element name="partyID" type="xs:string"/>
      <xs:element name="name" type="xs:string"/>
      <xs:element name="role" type="xs:string" maxOccurs="unbounded"/>
      <xs:element name="identity" minOccurs="0" maxOccurs="unbounded"><xs:complexType><xs:sequence>
        <xs:element name="kind" type="xs:string"/><xs:element name="value" type="xs:string"/>
      </xs:sequence></xs:complexType></xs:element>
      <xs:element name="createdDateTime" type="xs:dateTime"/>
    </xs:sequence></xs:extension>
  </xs:complexContent></xs:complexType>
  <xs:element name="eiRequestPosition"><xs:complexType><xs:sequence>
    <xs:element ref="pyld:requestID"/>
    <xs:element name="partyID" type="xs:string" {opt}/>
    <xs:element name="counterPartyID" type="xs:string" {opt}/>
    <xs:element name="marketContext" type="xs:string" {opt}/>
    <xs:element name="start" type="xs:dateTime" {opt}/>
    <xs:element name="end" type="xs:dateTime" {opt}/>
  </xs:sequence></xs:complexType></xs:element>
  <xs:element name="eiReplyPosition"><xs:complexType><xs:sequence>
    <xs:element ref="ei:eiResponse"/>
    <xs:element name="partyID" type="xs:string" {opt}/>
    <xs:element name="counterPartyID" type="xs:string" {opt}/>
    <xs:element name="position" minOccurs="0" maxOccurs="unbounded"><xs:complexType><xs:sequence>
      <xs:element name="partyID" type="xs:string"/>
      <xs:element name="marketContext" type="xs:string"/>
      <xs:element name="locationID" type="xs:string"/>
      <xs:element name="productType" type="xs:string"/>
      <xs:element name="dtStart" type="xs:dateTime"/>
      <xs:element name="duration" type="xs:string"/>
      <xs:element name="timeZone" type="xs:string" {opt}/>
      <xs:element name="quantity" type="xs:decimal"/>
      <xs:element name="cost" type="xs:decimal"/>
      <xs:element name="currency" type="xs:string"/>
      <xs:element name="quantityUnit" type="xs:string"/>
      <xs:element name="pricePer" type="xs:string"/>
      <xs:element name="asOf" type="xs:dateTime"/>
    </xs:sequence></xs:complexType></xs:element>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>
""".encode()
