"""`tgw translate --from ei|cts ...`: EI 1.0 XML (``ei``) and CTS JSON (``cts``) to and from canonical envelopes.

Decoding either name accepts either encoding (the first byte tells XML from JSON), so a file from any TeMIX party
translates whatever it holds. Encoding groups the canonical objects into the EI message that carries them: one
tender -> eiCreateTender, several -> eiDistributeTender; transactions -> eiCreateTransaction; positions ->
eiReplyPosition; deliveries -> eiCreateDelivery. Kinds EI has no message for are refused with a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from gateway.model import Delivery, Envelope, Position, Source, Tender, TenderStatus, Transaction, content_version
from gateway.protocols.ei import json_codec, xml_codec
from gateway.protocols.ei.messages import EiDecodeError, EiMessage, EiResponse, Payload
from gateway.translation import TranslationError, Translator, register

PROTOCOL = "ei"


def _codec_for(data: bytes) -> ModuleType:
    head = data.lstrip()[:1]
    if head == b"<":
        return xml_codec
    if head in (b"{", b"["):
        return json_codec
    raise TranslationError("not EI: expected EI 1.0 XML (starting with '<') or CTS JSON (starting with '{')")


def decode(data: bytes) -> list[Envelope]:
    try:
        message = _codec_for(data).decode(data)
    except EiDecodeError as exc:
        raise TranslationError(str(exc)) from None
    objects = [
        *message.tenders,
        *message.transactions,
        *message.positions,
        *message.deliveries,
        *([message.party] if message.party is not None else []),
    ]
    peer = message.party_id or "file"
    return [
        Envelope(
            payload=obj,  # type: ignore[arg-type]
            source=Source(protocol=PROTOCOL, peer=peer, native_id=obj.id, version=content_version(obj)),
            correlation_id=message.request_id,
        )
        for obj in objects
    ]


def to_message(envelopes: list[Envelope]) -> EiMessage:
    """The one EI message that carries these canonical objects (all of one kind)."""
    payloads = [e.payload for e in envelopes]
    kinds = {type(p) for p in payloads}
    if len(kinds) != 1:
        raise TranslationError("EI carries one kind of object per message; split the input by kind")
    [kind] = kinds
    first = payloads[0]
    party = getattr(first, "party_id", None)
    if kind is Tender and len(payloads) == 1 and first.status is TenderStatus.INDICATIVE:  # type: ignore[union-attr]
        return EiMessage(payload=Payload.CREATE_QUOTE, party_id=party, tenders=payloads)  # type: ignore[arg-type]
    if kind is Tender:
        payload = Payload.CREATE_TENDER if len(payloads) == 1 else Payload.DISTRIBUTE_TENDER
        return EiMessage(payload=payload, party_id=party if len(payloads) == 1 else None, tenders=payloads)  # type: ignore[arg-type]
    if kind is Transaction:
        return EiMessage(payload=Payload.CREATE_TRANSACTION, party_id=party, transactions=payloads)  # type: ignore[arg-type]
    if kind is Position:
        return EiMessage(payload=Payload.REPLY_POSITION, party_id=party, positions=payloads, response=EiResponse())  # type: ignore[arg-type]
    if kind is Delivery:
        return EiMessage(payload=Payload.CREATE_DELIVERY, party_id=party, deliveries=payloads)  # type: ignore[arg-type]
    raise TranslationError(f"EI has no message for a {first.object_type}")


def _encoder(codec: ModuleType) -> Callable[[list[Envelope]], bytes]:
    def encode(envelopes: list[Envelope]) -> bytes:
        return codec.encode(to_message(envelopes))  # type: ignore[no-any-return]

    return encode


register(
    Translator(
        name="ei",
        description="OASIS Energy Interoperation 1.0, TeMIX profile (XML); decodes CTS JSON too",
        decode=decode,
        encode=_encoder(xml_codec),
    )
)
register(
    Translator(
        name="cts",
        description="OASIS EI CTS 1.0 JSON (integer price and quantity with a scale); decodes EI XML too",
        decode=decode,
        encode=_encoder(json_codec),
    )
)
