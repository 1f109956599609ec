"""CTS JSON: Energy Interoperation / CTS messages as JSON, to and from :class:`messages.EiMessage`.

Why not ``json/EIPayloads.json``: the published CTS JSON schema (draft-04) resolves, but under ``ei:eiTender`` it
admits only ``emix:emixBase`` ``{uid, dtStart, duration, intervals, streamPayloadBase}`` with
``additionalProperties: false`` and an empty stream payload, so side, market, currency, expiry, prices and
quantities cannot be written at all (see ../shared/specs/ei-cts/ERRATA.md). This codec therefore follows the
CTS 1.0 *message model* instead: the EI payload names, and prices and quantities as integers with a power-of-ten
scale. Names come from the EI/CTS vocabulary (``requestId``, ``partyId``, ``counterPartyId``, ``tenderId``,
``marketId``, ``side``, ``expirationTime``, ``allOrNone``, ``resourceDesignator``, ``priceScale``,
``quantityScale``, ``dtStart``, ``duration``, ``uid``, ``responseCode``, ``responseDescription``), written in
camelCase throughout.

Public API: :func:`decode` (bytes -> EiMessage, or :class:`EiDecodeError`) and :func:`encode` (EiMessage -> bytes,
UTF-8 JSON, ASCII only).

Message
-------
One JSON object per message::

    {"type": "eiCreateTender",          # the EI payload name, one of messages.Payload
     "requestId": "r-17",               # optional; ties a response to its request
     "partyId": "alice",                # optional; the sender (the service checks it against the caller)
     "counterPartyId": "exchange",      # optional
     ...the payload's members, below...}

Members by payload (R = required, O = optional; a member not listed for the payload is refused)::

    eiRegisterParty      party R                 eiRegisteredParty    response R, party O
    eiCreateTender       tender R                eiCreatedTender      response R, tenderIds O
    eiCreateQuote        tender R                eiCreatedQuote       response R, quoteIds O
    eiCancelTender       tenderIds R, reason O   eiCanceledTender     response R, tenderIds O, reason O
    eiRequestTender      query O, tenderIds O    eiReplyTender        response R, tenders O
    eiDistributeTender   tenders R
    eiCreateTransaction  transactions R          eiCreatedTransaction response R, transactions O
    eiRequestPosition    query O                 eiReplyPosition      response R, positions O
    eiCreateDelivery     deliveries R            eiCreatedDelivery    response R, deliveries O

A required array holds at least one item; arrays hold at most 10,000. ``reason`` is ``"REQUESTED"`` or
``"SUPERVISORY"``; ``tenderIds`` is an array of ids. Optional members may be absent or ``null``.

    response  {"responseCode": 200, "responseDescription": "OK", "requestId": "r-17"}   (requestId optional;
              responseCode one of 200, 400, 403, 404, 409, 410, 422, 500)
    query     {"marketId": "m1", "start": "2030-01-07T00:00:00Z", "end": "2030-01-08T00:00:00Z"}  (all optional;
              end exclusive and after start)
    party     {"partyId": "alice", "partyName": "Alice", "roles": ["PROSUMER"], "identities": {"k": "v"},
               "createdDateTime": "..."}   (identities and createdDateTime optional)

Tender (``tender`` / each of ``tenders``)::

    {"tenderId": "t-1", "partyId": "alice", "marketId": "m1", "side": "BUY",
     "resourceDesignator": "ENERGY", "location": "sp-1",
     "currency": "USD", "quantityUnit": "kW", "pricePer": "kWh",
     "expirationTime": "2030-01-07T00:00:00Z", "allOrNone": false, "createdDateTime": "2030-01-06T12:00:00Z",
     "priceScale": -4, "quantityScale": 0,
     "stream": {"dtStart": "2030-01-07T00:00:00Z", "duration": "PT1H", "timeZone": "UTC",
                "intervals": [{"uid": 0, "price": 1250, "quantity": 5}, {"uid": 2, "price": 1300, "quantity": 5}]}}

- Interval ``uid`` n starts at ``dtStart`` + n x ``duration`` (calendar durations follow ``timeZone``: a day in
  America/Los_Angeles is 23, 24 or 25 hours); uids strictly increase, gaps are allowed. ``dtStart`` must be on a
  ``duration`` boundary in ``timeZone`` (default ``"UTC"``). Durations: PT4S, PT5M, PT15M, PT1H, P1D, P1M, P1Y.
  A uid is at most 10,000,000 (40,000 for P1D, P1M, P1Y), and the calendar streams of one message span at most
  200,000 intervals in all (calendar intervals are counted one by one).
- ``price`` (per ``pricePer``, in ``currency``) = price x 10^priceScale; ``quantity`` (a rate, in
  ``quantityUnit``, never negative in a tender) = quantity x 10^quantityScale.
- ``partyId`` may be omitted when it is the message's ``partyId``. ``expirationTime`` is optional (no expiry),
  ``allOrNone`` defaults to false, ``createdDateTime`` to the time of decoding. ``status`` (``"OPEN"``,
  ``"PARTIALLY_FILLED"``, ``"FILLED"``, ``"CANCELLED"``, ``"EXPIRED"``, ``"REJECTED"``; default ``"OPEN"``) is
  written only when not OPEN (replies).

Transaction (each of ``transactions``): one interval of one trade::

    {"transactionId": "x-1", "tenderId": "t-1", "marketId": "m1", "partyId": "alice", "counterPartyId": "bob",
     "side": "BUY", "resourceDesignator": "ENERGY", "location": "sp-1", "currency": "USD", "quantityUnit": "kW",
     "pricePer": "kWh", "interval": {"dtStart": "2030-01-07T00:00:00Z", "duration": "PT1H", "timeZone": "UTC"},
     "price": 1250, "priceScale": -4, "quantity": 5, "quantityScale": 0, "executionTime": "...",
     "clearingId": "...", "subscriptionId": "..."}

``tenderId``, ``clearingId``, ``subscriptionId`` and ``executionTime`` are optional; ``partyId`` and
``counterPartyId`` default to the message's.

Position (each of ``positions``): a party's net position for one interval, signed from its point of view::

    {"partyId": "alice", "marketId": "m1", "resourceDesignator": "ENERGY", "location": "sp-1",
     "currency": "USD", "quantityUnit": "kW", "pricePer": "kWh", "interval": {...},
     "quantity": -25, "quantityScale": -1, "cost": -31, "costScale": -2, "asOfTime": "..."}

``quantity`` > 0: net bought (rate); ``cost`` > 0: net paid (money in ``currency``). ``isOption``: true for a
position in options (optional, default false).

Delivery (each of ``deliveries``): metered average rate over one interval, positive = imported::

    {"deliveryId": "d-1", "partyId": "alice", "location": "sp-1", "resourceId": "pv-1", "interval": {...},
     "quantity": -32, "quantityScale": -1, "quantityUnit": "kW", "quality": "MEASURED",
     "measurementTime": "..."}

(``resourceId``, ``quality``: MEASURED / ESTIMATED / SUBSTITUTED, default MEASURED, and ``measurementTime`` are
optional.)

Products. ``resourceDesignator`` ``"ENERGY"`` is canonical energy, real or reactive: the units decide (kW/kWh
real; var, kvar, Mvar with varh, kvarh, Mvarh reactive). ``"POWER"`` is accepted as a synonym of ENERGY on input
(our quantity is always a rate of delivery) and never written. ``"TRANSPORT"`` is canonical transport and needs
``"fromLocation"`` and ``"toLocation"`` (tenders and transactions; ``location`` is where it is traded). An option
on energy is ENERGY with ``"option": {"optionType": "CALL" | "PUT", "strikePrice": n, "premium": n}``, strike and
premium scaled by ``priceScale`` like the prices.

Numbers. Prices, quantities, costs, strikes and premiums are JSON integers; a number with a fraction or exponent
(1.5, 1e3, 2.0) is refused: floats lose digits, CTS is integer + scale. Scales are integers in -18..18, and a
value (integer x 10^scale) must be below 10^30 in magnitude. :func:`encode` picks for each stream / object the
largest scale <= 0 that keeps every digit (``streams.common_scale``), so no digit is ever lost, and refuses
(ValueError) a value it cannot write within these bounds (more than 18 fractional digits, or >= 10^30).

Times are RFC 3339 / ISO 8601 with an offset (``Z`` or ``+hh:mm``; converted to UTC) and at most microsecond
precision; a time without an offset is refused. Ids are 1-200 characters without whitespace or ``/``
(``requestId`` is any text of 1-200 characters). Enumerated values are upper case; units are spelt as SI
(``kW``, ``MWh``, ``kvar``). Members may come in any order; a key twice in one object is refused.

Errors. :func:`decode` raises :class:`EiDecodeError` with a one-line reason that starts with the member's path
(``tender.stream.intervals[3].price: ...``) and the EI response code to answer with: 400 when the document is not
a message of this format (not JSON, over 4 MiB, wrong JSON type, missing or unknown member, duplicate key, a
float where an integer belongs, a bad time, an unknown enumerated value, a scale or value out of range); 422 when
it is well formed but the canonical model refuses it (interval not on its boundary, uids not increasing, negative
tender quantity, expiry after the last interval, unknown currency or time zone, real/reactive unit mismatch, a
malformed id, a party trading with itself...).
"""

# The codec lives in modules with one job each; this one is its public face (and the format's description, above).
#   json_values          bounds, vocabularies, refusals (400/422), readers of single JSON values
#   json_validate        canonical validation, pydantic locations -> wire paths
#   json_read_objects    tender, transaction, position, delivery ... -> canonical objects
#   json_write_objects   canonical objects -> JSON objects (integer + scale)
#   json_payloads        the members of each payload; decode and encode

from __future__ import annotations

from gateway.protocols.ei.json_payloads import _MEMBERS as _MEMBERS
from gateway.protocols.ei.json_payloads import decode, encode
from gateway.protocols.ei.json_values import _LIMITS as _LIMITS
from gateway.protocols.ei.json_values import MAX_DOCUMENT_BYTES, MAX_ITEMS, MAX_SCALE, MAX_VALUE_DIGITS
from gateway.protocols.ei.json_values import _scaled as _scaled

__all__ = ["MAX_DOCUMENT_BYTES", "MAX_ITEMS", "MAX_SCALE", "MAX_VALUE_DIGITS", "decode", "encode"]
