"""Decoding an EI XML message: the hardened parse, the payload the root names, and the root's children (request
id, parties, response, the objects it carries) into an :class:`EiMessage`.

This is where refusals become :class:`EiDecodeError`: 400 for a document that is not a schema-shaped message,
422 for content the canonical model refuses, 500 (still in EI terms) for a bug. The objects themselves are read by
:mod:`~gateway.protocols.ei.xml_read_objects`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from gateway.protocols.ei.messages import (
    CancelReason,
    EiDecodeError,
    EiMessage,
    EiResponse,
    Payload,
    PositionQuery,
    ResponseCode,
    indicative_quotes,
)
from gateway.protocols.ei.xml_names import (
    _DIALECT_OF,
    _E,
    _EXT_KEYS,
    _KEYS,
    _PAYLOAD_OF_ROOT,
    MAX_BYTES,
    Dialect,
)
from gateway.protocols.ei.xml_read_objects import (
    _delivery,
    _ext_field,
    _extension,
    _party,
    _position,
    _tender,
    _transaction,
)
from gateway.protocols.ei.xml_read_values import (
    _RESPONSE_CODE,
    _Bad,
    _children,
    _one_line,
    _opt_id,
    _opt_text,
    _path,
    _require,
    _show,
    _text,
    _unexpected,
)

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
        return indicative_quotes(_decode_message(root, payload)), dialect
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
