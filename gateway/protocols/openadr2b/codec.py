"""OpenADR 2.0b wire bytes <-> :class:`~gateway.protocols.openadr2b.messages.OadrMessage`.

Inbound, ``decode`` is the whole edge check: size bound, hardened parse, no DOCTYPE, the 2.0b XSD (the copy
openleadr ships), then one pass over the tree into message objects. Anything that fails raises
:class:`OadrDecodeError` with a one-line reason and the response code to answer with:

- 454 (invalid data): not XML, too large, a DOCTYPE, a schema violation (the reason has the line and lxml's
  message), or a valid document the gateway cannot hold exactly (a duration in months, NaN, a signal interval
  without a uid);
- 453 (not recognised): a well-formed document that is not a 2.0b message (a 2.0a payload, an eiResponse on
  its own, anything else), or a valid 2.0b construct the message objects have no place for (GML targets, the
  Green Button unit);
- 460 / 461 (signal / report not supported): a resource-status payload where a number is expected.

``decode_tree`` returns the parsed tree beside the message, so a signature check works on the same elements
instead of parsing the bytes again (the house rule: nothing re-parses what was already parsed).

Outbound, ``encode`` writes the full envelope; ``encode_tree`` / ``encode_signed_object`` give the lxml
elements so a signer can insert its ds:Signature before the signed object and then serialise with
``to_bytes``. Output always passes the same XSD (the tests check every payload).
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree
from lxml.etree import _Element

from gateway.protocols.openadr2b.codec_read import read_envelope, read_payload
from gateway.protocols.openadr2b.codec_schema import MAX_MESSAGE_BYTES, parse, schema
from gateway.protocols.openadr2b.codec_values import OadrEncodeError
from gateway.protocols.openadr2b.codec_write import SIGNED_OBJECT_ID, build
from gateway.protocols.openadr2b.messages import OadrDecodeError, OadrMessage, Payload, ResponseCode

__all__ = [
    "MAX_MESSAGE_BYTES",
    "SIGNED_OBJECT_ID",
    "Decoded",
    "OadrDecodeError",
    "OadrEncodeError",
    "decode",
    "decode_tree",
    "encode",
    "encode_signed_object",
    "encode_tree",
    "schema",
    "to_bytes",
]

# Errors a reader can hit on a schema-valid document that still makes no sense as a message (a uid that is not a
# number, an enumeration the schema's union lets through); they become 454s, never an unhandled exception.
_READ_ERRORS = (ValueError, TypeError, AttributeError, IndexError, KeyError, ArithmeticError)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded message with the tree it came from.

    ``root`` is the document element; ``signed_object`` the oadrSignedObject and ``signature`` the ds:Signature
    beside it, when the message came in its envelope and was signed (None otherwise; a bare payload has
    neither). ``payload`` is the payload element itself (oadrDistributeEvent, ...).
    """

    message: OadrMessage
    root: _Element
    payload: _Element
    signed_object: _Element | None
    signature: _Element | None


def decode(data: bytes) -> OadrMessage:
    """The message in ``data`` (an oadrPayload envelope, or a bare payload element)."""
    return decode_tree(data).message


def decode_tree(data: bytes) -> Decoded:
    """The message in ``data`` and the validated lxml elements it was read from."""
    root = parse(data)
    payload, signed_object, signature = read_envelope(root)
    try:
        message = read_payload(payload)
    except OadrDecodeError:
        raise
    except _READ_ERRORS as exc:
        raise OadrDecodeError(f"{etree.QName(payload).localname}: {exc}") from None
    _check_profile(message)
    return Decoded(message, root, payload, signed_object, signature)


def _check_profile(message: OadrMessage) -> None:
    """Rules of the 2.0b profile the schema leaves optional: a successful answer must say what it answers.

    An oadrCreatedEvent whose eiResponse is 200 carries the VEN's eventResponses (a VEN reporting a problem with
    the whole oadrDistributeEvent answers with an error code and may carry none); an oadrCanceledPartyRegistration
    that succeeded names the registration it cancelled. avob's negative samples are exactly these two cases.
    """
    ok = message.response is not None and message.response.code == ResponseCode.OK
    if message.payload is Payload.CREATED_EVENT and ok and not message.event_responses:
        raise OadrDecodeError(
            "oadrCreatedEvent: a 200 answer must carry an eventResponse for each event it answers (2.0b profile)"
        )
    if message.payload is Payload.CANCELED_PARTY_REGISTRATION and ok and not message.registration_id:
        raise OadrDecodeError(
            "oadrCanceledPartyRegistration: a 200 answer names the registrationID it cancelled (2.0b profile)"
        )


def encode_tree(message: OadrMessage) -> _Element:
    """The oadrPayload element of ``message``: oadrPayload / oadrSignedObject / the payload."""
    return build(message)


def encode_signed_object(message: OadrMessage) -> _Element:
    """The oadrSignedObject of ``message``, already inside its oadrPayload: a signer signs it (its
    ``oadr:Id`` is ``SIGNED_OBJECT_ID``), calls ``addprevious(signature)`` on it, and serialises with
    ``to_bytes``."""
    return build(message)[0]


def to_bytes(element: _Element) -> bytes:
    """The whole document ``element`` belongs to, as UTF-8 with an XML declaration."""
    return etree.tostring(element.getroottree(), encoding="UTF-8", xml_declaration=True)


def encode(message: OadrMessage) -> bytes:
    """``message`` as the bytes of an unsigned oadrPayload."""
    return etree.tostring(build(message), encoding="UTF-8", xml_declaration=True)
