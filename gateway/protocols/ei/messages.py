"""Energy Interoperation (TeMIX profile) and CTS messages as the adapter handles them, between the wire codecs
(``xml_codec``: EI 1.0 XML; ``json_codec``: CTS JSON) and the service.

A message is its EI payload name, the request id that ties a response to it, the sending party, and what it
carries already mapped to the canonical model (tenders, transactions, positions, deliveries), so the service
never sees a wire shape and the two encodings cannot drift apart in meaning: each codec maps straight to and
from these objects, sharing the arithmetic in ``gateway.protocols.ei.streams``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum

from gateway.model import Delivery, Party, Position, Tender, TenderStatus, Transaction


class Payload(StrEnum):
    """The EI payloads the TeMIX profile uses (CTS adds positions), by their EI 1.0 element names."""

    REGISTER_PARTY = "eiRegisterParty"
    REGISTERED_PARTY = "eiRegisteredParty"
    CREATE_TENDER = "eiCreateTender"
    CREATED_TENDER = "eiCreatedTender"
    CANCEL_TENDER = "eiCancelTender"
    CANCELED_TENDER = "eiCanceledTender"
    REQUEST_TENDER = "eiRequestTender"
    REPLY_TENDER = "eiReplyTender"
    DISTRIBUTE_TENDER = "eiDistributeTender"
    CREATE_QUOTE = "eiCreateQuote"
    CREATED_QUOTE = "eiCreatedQuote"
    CREATE_TRANSACTION = "eiCreateTransaction"
    CREATED_TRANSACTION = "eiCreatedTransaction"
    REQUEST_POSITION = "eiRequestPosition"
    REPLY_POSITION = "eiReplyPosition"
    CREATE_DELIVERY = "eiCreateDelivery"
    CREATED_DELIVERY = "eiCreatedDelivery"


class ResponseCode(IntEnum):
    """EI response codes (EI 1.0 uses HTTP-like three-digit codes in eiResponse/responseCode)."""

    OK = 200
    BAD_REQUEST = 400  # malformed or schema-invalid
    NOT_AUTHORIZED = 403  # the party may not act on that object
    NOT_FOUND = 404  # unknown tender, party or market
    CONFLICT = 409  # e.g. cancelling a tender that is no longer open
    EXPIRED = 410  # the tender expired or its interval's gate closed
    UNPROCESSABLE = 422  # well-formed but refused by a rule (currency, interval grid, price range, quantity)
    INTERNAL = 500


class CancelReason(StrEnum):
    """CTS cancel reasons."""

    REQUESTED = "REQUESTED"
    SUPERVISORY = "SUPERVISORY"


@dataclass(frozen=True, slots=True)
class EiResponse:
    code: ResponseCode = ResponseCode.OK
    description: str = "OK"
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class PositionQuery:
    """What an eiRequestPosition / eiRequestTender asks for: a market and a time range (end exclusive)."""

    market_id: str | None = None
    start: datetime | None = None
    end: datetime | None = None


@dataclass(slots=True)
class EiMessage:
    """One EI/CTS message. Fields that a payload does not use stay empty.

    - ``party_id``: the sender as the message names it (the service checks it against the authenticated party).
    - ``tenders``: eiCreateTender / eiCreateQuote (one), eiReplyTender / eiDistributeTender (many).
    - ``transactions``: eiCreateTransaction, eiCreatedTransaction; ``positions``: eiReplyPosition;
      ``deliveries``: eiCreateDelivery; ``party``: eiRegisterParty.
    - ``tender_ids`` + ``cancel_reason``: eiCancelTender / eiCanceledTender; eiCreatedTender names its tender here.
    - ``query``: eiRequestPosition / eiRequestTender. ``response``: every eiCreated*/eiReply*/eiCanceled*.
    """

    payload: Payload
    request_id: str | None = None
    party_id: str | None = None
    counterparty_id: str | None = None
    tenders: list[Tender] = field(default_factory=list)
    transactions: list[Transaction] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    party: Party | None = None
    tender_ids: list[str] = field(default_factory=list)
    cancel_reason: CancelReason | None = None
    query: PositionQuery | None = None
    response: EiResponse | None = None


class EiDecodeError(ValueError):
    """Input that is not a valid EI/CTS message; ``code`` is the EI response code to answer with."""

    def __init__(self, message: str, code: ResponseCode = ResponseCode.BAD_REQUEST) -> None:
        super().__init__(message)
        self.code = code


def indicative_quotes(message: EiMessage) -> EiMessage:
    """An eiCreateQuote's tender is a quote: status indicative unless it says otherwise (both codecs call this)."""
    if message.payload is Payload.CREATE_QUOTE:
        message.tenders = [
            t.model_copy(update={"status": TenderStatus.INDICATIVE}) if t.status is TenderStatus.OPEN else t
            for t in message.tenders
        ]
    return message
