"""Encoding canonical objects as CTS JSON objects: prices, quantities and costs as integers with the largest
scale that keeps every digit, times in UTC, enumerated values upper case.

A value that cannot be written within the format's bounds is a ``ValueError``, never a rounded number: what
:mod:`~gateway.protocols.ei.json_read_objects` reads back is what was written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

from gateway.model import (
    Delivery,
    Interval,
    OptionProduct,
    Party,
    Position,
    Tender,
    TenderStatus,
    Transaction,
    TransportProduct,
)
from gateway.protocols.ei import streams
from gateway.protocols.ei.json_values import _LIMITS, MAX_SCALE, MAX_VALUE_DIGITS
from gateway.protocols.ei.messages import EiMessage, EiResponse, PositionQuery


def _time_text(value: datetime) -> str:
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _scale_of(values: list[Decimal], what: str) -> int:
    """The scale for ``values`` (streams.common_scale, in a context wide enough not to round) within bounds."""
    digits = max((len(v.as_tuple().digits) for v in values), default=1)
    with localcontext(prec=max(28, digits + 2)):
        scale = streams.common_scale(values)
    if scale < -MAX_SCALE:
        raise ValueError(f"{what}: a value has more than {MAX_SCALE} fractional digits and cannot be written")
    return scale


def _integers(values: list[Decimal], scale: int, what: str) -> list[int]:
    limit = _LIMITS[scale]
    out = [streams.to_scaled(v, scale) for v in values]
    if any(not -limit < i < limit for i in out):
        raise ValueError(f"{what}: a value has {MAX_VALUE_DIGITS} or more digits before the point")
    return out


def _encode_product(product: Any, out: dict[str, Any], strike_premium: tuple[int, int] | None) -> None:
    if isinstance(product, TransportProduct):
        out["resourceDesignator"] = "TRANSPORT"
        out["fromLocation"] = product.from_location_id
        out["toLocation"] = product.to_location_id
        return
    out["resourceDesignator"] = "ENERGY"
    if isinstance(product, OptionProduct):
        assert strike_premium is not None
        out["option"] = {
            "optionType": product.option_kind.name,
            "strikePrice": strike_premium[0],
            "premium": strike_premium[1],
        }


def _option_terms(product: Any) -> list[Decimal]:
    return [product.strike, product.premium] if isinstance(product, OptionProduct) else []


def _encode_interval(interval: Interval) -> dict[str, Any]:
    return {"dtStart": _time_text(interval.start), "duration": interval.duration.value, "timeZone": interval.time_zone}


def _encode_tender(tender: Tender, message: EiMessage) -> dict[str, Any]:
    what = f"tender {tender.id}"
    terms = _option_terms(tender.product)
    prices = [row["price"] for row in tender.rows]
    quantities = [row["quantity"] for row in tender.rows]
    price_scale = _scale_of(prices + terms, what)
    quantity_scale = _scale_of(quantities, what)
    price_ints = _integers(prices + terms, price_scale, what)
    quantity_ints = _integers(quantities, quantity_scale, what)
    starts = [row["start"] for row in tender.rows]
    uids = streams.offsets(starts, tender.resolution, tender.time_zone)
    out: dict[str, Any] = {
        "tenderId": tender.id,
        "partyId": tender.party_id,
        "marketId": tender.market_id,
        "side": tender.side.name,
    }
    _encode_product(tender.product, out, (price_ints[-2], price_ints[-1]) if terms else None)
    out |= {
        "location": tender.location_id,
        "currency": tender.currency,
        "quantityUnit": tender.quantity_unit.value,
        "pricePer": tender.price_per.value,
    }
    if tender.expires_at is not None:
        out["expirationTime"] = _time_text(tender.expires_at)
    out |= {
        "allOrNone": tender.all_or_none,
        "createdDateTime": _time_text(tender.created_at),
        "priceScale": price_scale,
        "quantityScale": quantity_scale,
        "stream": {
            "dtStart": _time_text(starts[0]),
            "duration": tender.resolution.value,
            "timeZone": tender.time_zone,
            "intervals": [
                {"uid": uid, "price": price, "quantity": quantity}
                for uid, price, quantity in zip(uids, price_ints, quantity_ints, strict=False)
            ],
        },
    }
    if tender.status is not TenderStatus.OPEN:
        out["status"] = tender.status.name
    return out


def _encode_transaction(transaction: Transaction, message: EiMessage) -> dict[str, Any]:
    what = f"transaction {transaction.id}"
    terms = _option_terms(transaction.product)
    prices = [transaction.price, *terms]
    price_scale = _scale_of(prices, what)
    quantity_scale = _scale_of([transaction.quantity], what)
    price_ints = _integers(prices, price_scale, what)
    out: dict[str, Any] = {"transactionId": transaction.id}
    if transaction.tender_id is not None:
        out["tenderId"] = transaction.tender_id
    out |= {
        "marketId": transaction.market_id,
        "partyId": transaction.party_id,
        "counterPartyId": transaction.counterparty_id,
        "side": transaction.side.name,
    }
    _encode_product(transaction.product, out, (price_ints[1], price_ints[2]) if terms else None)
    out |= {
        "location": transaction.location_id,
        "currency": transaction.currency,
        "quantityUnit": transaction.quantity_unit.value,
        "pricePer": transaction.price_per.value,
        "interval": _encode_interval(transaction.interval),
        "price": price_ints[0],
        "priceScale": price_scale,
        "quantity": _integers([transaction.quantity], quantity_scale, what)[0],
        "quantityScale": quantity_scale,
        "executionTime": _time_text(transaction.executed_at),
    }
    if transaction.clearing_id is not None:
        out["clearingId"] = transaction.clearing_id
    if transaction.subscription_id is not None:
        out["subscriptionId"] = transaction.subscription_id
    return out


def _encode_position(position: Position, message: EiMessage) -> dict[str, Any]:
    what = f"position {position.id}"
    reactive = position.quantity_unit.is_reactive
    if reactive != (position.product_type == "reactive_energy"):
        raise ValueError(f"{what}: a {position.product_type} position in {position.quantity_unit} cannot be written")
    quantity_scale = _scale_of([position.quantity], what)
    cost_scale = _scale_of([position.cost], what)
    out: dict[str, Any] = {
        "partyId": position.party_id,
        "marketId": position.market_id,
        "resourceDesignator": "TRANSPORT" if position.product_type == "transport" else "ENERGY",
    }
    if position.product_type == "option":
        out["isOption"] = True
    out |= {
        "location": position.location_id,
        "currency": position.currency,
        "quantityUnit": position.quantity_unit.value,
        "pricePer": position.price_per.value,
        "interval": _encode_interval(position.interval),
        "quantity": _integers([position.quantity], quantity_scale, what)[0],
        "quantityScale": quantity_scale,
        "cost": _integers([position.cost], cost_scale, what)[0],
        "costScale": cost_scale,
        "asOfTime": _time_text(position.as_of),
    }
    return out


def _encode_delivery(delivery: Delivery, message: EiMessage) -> dict[str, Any]:
    what = f"delivery {delivery.id}"
    scale = _scale_of([delivery.quantity], what)
    out: dict[str, Any] = {"deliveryId": delivery.id, "partyId": delivery.party_id, "location": delivery.location_id}
    if delivery.resource_id is not None:
        out["resourceId"] = delivery.resource_id
    out |= {
        "interval": _encode_interval(delivery.interval),
        "quantity": _integers([delivery.quantity], scale, what)[0],
        "quantityScale": scale,
        "quantityUnit": delivery.quantity_unit.value,
        "quality": delivery.quality.name,
        "measurementTime": _time_text(delivery.measured_at),
    }
    return out


def _encode_party(party: Party, message: EiMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"partyId": party.id, "partyName": party.name, "roles": [role.name for role in party.roles]}
    if party.identities:
        out["identities"] = dict(party.identities)
    out["createdDateTime"] = _time_text(party.created_at)
    return out


def _encode_response(response: EiResponse, message: EiMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"responseCode": int(response.code), "responseDescription": response.description}
    if response.request_id is not None:
        out["requestId"] = response.request_id
    return out


def _encode_query(query: PositionQuery, message: EiMessage) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if query.market_id is not None:
        out["marketId"] = query.market_id
    if query.start is not None:
        out["start"] = _time_text(query.start)
    if query.end is not None:
        out["end"] = _time_text(query.end)
    return out
