"""CTS JSON at the message level: which members each EI payload carries (one table, :data:`_BODIES` and
:data:`_MEMBERS`), and :func:`decode` / :func:`encode`, which walk that table.

Reading and writing share the table, so a payload cannot accept a member it would not write or write one it would
refuse. The objects inside are read by :mod:`~gateway.protocols.ei.json_read_objects` and written by
:mod:`~gateway.protocols.ei.json_write_objects`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from gateway.protocols.ei.json_read_objects import (
    _Context,
    _delivery,
    _party,
    _position,
    _query,
    _reason,
    _response,
    _tender,
    _tender_ids,
    _transaction,
)
from gateway.protocols.ei.json_values import (
    _PAYLOADS,
    MAX_DOCUMENT_BYTES,
    MAX_ITEMS,
    _array,
    _bad,
    _kind,
    _members,
    _opt_id,
    _show,
    _text,
)
from gateway.protocols.ei.json_write_objects import (
    _encode_delivery,
    _encode_party,
    _encode_position,
    _encode_query,
    _encode_response,
    _encode_tender,
    _encode_transaction,
)
from gateway.protocols.ei.messages import CancelReason, EiDecodeError, EiMessage, Payload, indicative_quotes

# --------------------------------------------------------------------------------------------------------------
# Payload table: wire member -> (EiMessage attribute, how it is decoded, how it is encoded, cardinality)

_ONE, _MANY, _VALUE = "one", "many", "value"


class _Member:
    __slots__ = ("attribute", "cardinality", "decode", "encode")

    def __init__(
        self,
        attribute: str,
        cardinality: str,
        decode: Callable[[object, str, _Context], Any],
        encode: Callable[[Any, EiMessage], Any],
    ) -> None:
        self.attribute = attribute
        self.cardinality = cardinality  # one: a single object held in a list attribute; many: an array; value
        self.decode = decode
        self.encode = encode


_COMMON = frozenset({"type", "requestId", "partyId", "counterPartyId"})


def _body(required: Iterable[str], optional: Iterable[str] = ()) -> tuple[frozenset[str], frozenset[str]]:
    required = frozenset(required)
    return required, required | frozenset(optional)


_BODIES: dict[Payload, tuple[frozenset[str], frozenset[str]]] = {
    Payload.REGISTER_PARTY: _body(["party"]),
    Payload.REGISTERED_PARTY: _body(["response"], ["party"]),
    Payload.CREATE_TENDER: _body(["tender"]),
    Payload.CREATED_TENDER: _body(["response"], ["tenderIds"]),
    Payload.CANCEL_TENDER: _body(["tenderIds"], ["reason"]),
    Payload.CANCELED_TENDER: _body(["response"], ["tenderIds", "reason"]),
    Payload.REQUEST_TENDER: _body([], ["query", "tenderIds"]),
    Payload.REPLY_TENDER: _body(["response"], ["tenders"]),
    Payload.DISTRIBUTE_TENDER: _body(["tenders"]),
    Payload.CREATE_QUOTE: _body(["tender"]),
    Payload.CREATED_QUOTE: _body(["response"], ["quoteIds"]),
    Payload.CREATE_TRANSACTION: _body(["transactions"]),
    Payload.CREATED_TRANSACTION: _body(["response"], ["transactions"]),
    Payload.REQUEST_POSITION: _body([], ["query"]),
    Payload.REPLY_POSITION: _body(["response"], ["positions"]),
    Payload.CREATE_DELIVERY: _body(["deliveries"]),
    Payload.CREATED_DELIVERY: _body(["response"], ["deliveries"]),
}
_ALLOWED = {payload: _COMMON | allowed for payload, (_, allowed) in _BODIES.items()}
_ORDER = (  # the order members are written (and checked) in
    "response",
    "party",
    "tender",
    "tenders",
    "tenderIds",
    "quoteIds",
    "reason",
    "query",
    "transactions",
    "positions",
    "deliveries",
)
_KEYS = {payload: tuple(key for key in _ORDER if key in allowed) for payload, (_, allowed) in _BODIES.items()}
_REQUIRED = {payload: frozenset({"type"}) | required for payload, (required, _) in _BODIES.items()}
assert set(_BODIES) == set(Payload)


def decode(data: bytes | bytearray | memoryview | str) -> EiMessage:
    """Parse one CTS JSON message (see the module docstring) into an :class:`EiMessage`.

    Raises :class:`EiDecodeError` (code 400 or 422, one-line reason naming the member) for anything else.
    """
    if isinstance(data, memoryview):
        data = data.tobytes()
    if not isinstance(data, bytes | bytearray | str):
        raise _bad("", f"must be bytes, got {type(data).__name__}")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise _bad("", f"the message has {len(data)} bytes; at most {MAX_DOCUMENT_BYTES} are accepted")
    try:
        document = json.loads(data, parse_float=Decimal, parse_constant=_no_constant, object_pairs_hook=_object)
    except EiDecodeError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _bad("", f"not JSON: {exc}") from None
    if type(document) is not dict:
        raise _bad("", f"must be a JSON object with a 'type', got {_kind(document)}")
    kind = document.get("type")
    payload = _PAYLOADS.get(kind) if type(kind) is str else None
    if payload is None:
        if "type" not in document:
            raise _bad("type", "missing (the EI payload name, e.g. eiCreateTender)")
        raise _bad("type", f"must be one of {', '.join(_PAYLOADS)}; got {_show(kind)}")
    _members(document, "", _REQUIRED[payload], _ALLOWED[payload])
    request_id = document.get("requestId")
    message = EiMessage(
        payload=payload,
        request_id=None if request_id is None else _text(request_id, "requestId"),
        party_id=_opt_id(document.get("partyId"), "partyId"),
        counterparty_id=_opt_id(document.get("counterPartyId"), "counterPartyId"),
    )
    ctx = _Context(message.party_id, message.counterparty_id)
    required = _BODIES[payload][0]
    for key in _KEYS[payload]:
        value = document.get(key)
        if value is None:
            if key in required:
                raise _bad(key, "missing (null)")
            continue
        member = _MEMBERS[key]
        if member.cardinality == _MANY:
            items = _array(value, key, non_empty=key in required)
            decoded: Any = [member.decode(item, f"{key}[{i}]", ctx) for i, item in enumerate(items)]
        elif member.cardinality == _ONE:
            decoded = [member.decode(value, key, ctx)]
        else:
            decoded = member.decode(value, key, ctx)
            if decoded == [] and key in required:
                raise _bad(key, "must hold at least one item")
        setattr(message, member.attribute, decoded)
    return indicative_quotes(message)


def _no_constant(name: str) -> Any:
    raise _bad("", f"not JSON: {name} is not a JSON number")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _bad("", f"duplicate member {_show(key)} in an object")
            seen.add(key)
    return obj


_MEMBERS: dict[str, _Member] = {
    "party": _Member("party", _VALUE, _party, _encode_party),
    "response": _Member("response", _VALUE, _response, _encode_response),
    "tender": _Member("tenders", _ONE, _tender, _encode_tender),
    "tenders": _Member("tenders", _MANY, _tender, _encode_tender),
    "tenderIds": _Member("tender_ids", _VALUE, _tender_ids, lambda ids, _: list(ids)),
    "quoteIds": _Member("tender_ids", _VALUE, _tender_ids, lambda ids, _: list(ids)),  # a quote is a tender here
    "reason": _Member("cancel_reason", _VALUE, _reason, lambda reason, _: CancelReason(reason).value),
    "query": _Member("query", _VALUE, _query, _encode_query),
    "transactions": _Member("transactions", _MANY, _transaction, _encode_transaction),
    "positions": _Member("positions", _MANY, _position, _encode_position),
    "deliveries": _Member("deliveries", _MANY, _delivery, _encode_delivery),
}
_BODY_ATTRIBUTES = frozenset(member.attribute for member in _MEMBERS.values())


def encode(message: EiMessage) -> bytes:
    """Write ``message`` as CTS JSON (see the module docstring); :func:`decode` reads it back to an equal message.

    Raises ValueError when the message cannot be written: it carries something its payload does not (a tender on
    an eiCancelTender), lacks what its payload requires, or holds a value outside the format's bounds.
    """
    payload = Payload(message.payload)
    required = _BODIES[payload][0]
    used = {_MEMBERS[key].attribute for key in _KEYS[payload]}
    for attribute in _BODY_ATTRIBUTES - used:
        if getattr(message, attribute) not in (None, []):
            raise ValueError(f"{payload.value} carries no {attribute}")
    out: dict[str, Any] = {"type": payload.value}
    for key, value in (
        ("requestId", message.request_id),
        ("partyId", message.party_id),
        ("counterPartyId", message.counterparty_id),
    ):
        if value is not None:
            out[key] = value
    for key in _KEYS[payload]:
        member = _MEMBERS[key]
        value = getattr(message, member.attribute)
        if value is None or value == []:
            if key in required:
                raise ValueError(f"{payload.value} needs {member.attribute}")
            continue
        if len(value) > MAX_ITEMS if isinstance(value, list) else False:
            raise ValueError(f"{payload.value}: at most {MAX_ITEMS} {key} per message")
        if member.cardinality == _ONE:
            if len(value) != 1:
                raise ValueError(f"{payload.value} carries exactly one tender, not {len(value)}")
            out[key] = member.encode(value[0], message)
        elif member.cardinality == _MANY:
            out[key] = [member.encode(item, message) for item in value]
        else:
            out[key] = member.encode(value, message)
    return json.dumps(out, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")
