"""Encoding an :class:`EiMessage` as EI XML: the root element of its payload and, per payload, which children it
holds and in what order (the CTS sequence), with what the CTS structure cannot say put in ``gw:extension``.

The objects inside are written by :mod:`~gateway.protocols.ei.xml_write_objects`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxml import etree

from gateway.protocols.ei.messages import EiMessage, EiResponse, Payload, PositionQuery
from gateway.protocols.ei.xml_names import _E, _ROOTS, Dialect
from gateway.protocols.ei.xml_write_objects import (
    _free_text,
    _put_delivery,
    _put_party,
    _put_position,
    _put_tender,
    _put_transaction,
    _ts,
    _Writer,
)


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
