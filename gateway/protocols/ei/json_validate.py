"""Validation of decoded CTS JSON objects by the canonical model, with pydantic's error locations
(``rows.3.quantity``) turned back into wire paths (``tender.stream.intervals[3].quantity``) and answered with 422.

A refusal must name the member the sender wrote, not the canonical field it became; the tables here are the
reverse of the mapping the object readers apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gateway.protocols.ei.json_values import _at, _refused

# Canonical field -> wire member, per object kind (top level), then for nested locations.
_TENDER_NAMES = {
    "id": "tenderId",
    "rows": "stream.intervals",
    "resolution": "stream.duration",
    "time_zone": "stream.timeZone",
}
_TRANSACTION_NAMES = {"id": "transactionId"}
_DELIVERY_NAMES = {"id": "deliveryId"}
_PARTY_NAMES = {"id": "partyId", "name": "partyName"}
_POSITION_NAMES = {"product_type": "resourceDesignator"}
_NAMES = {
    "market_id": "marketId",
    "party_id": "partyId",
    "counterparty_id": "counterPartyId",
    "location_id": "location",
    "tender_id": "tenderId",
    "clearing_id": "clearingId",
    "subscription_id": "subscriptionId",
    "resource_id": "resourceId",
    "quantity_unit": "quantityUnit",
    "price_per": "pricePer",
    "expires_at": "expirationTime",
    "all_or_none": "allOrNone",
    "created_at": "createdDateTime",
    "executed_at": "executionTime",
    "as_of": "asOfTime",
    "measured_at": "measurementTime",
    "start": "dtStart",
    "time_zone": "timeZone",
    "from_location_id": "fromLocation",
    "to_location_id": "toLocation",
    "option_kind": "option.optionType",
    "strike": "option.strikePrice",
    "premium": "option.premium",
    "product": "",  # its members are written at the object's top level
}
_PRODUCT_TAGS = frozenset({"energy", "reactive_energy", "transport", "option"})

_M = TypeVar("_M", bound=BaseModel)


def _wire_path(path: str, loc: tuple[int | str, ...], top: Mapping[str, str]) -> str:
    out = path
    after_product = False
    for depth, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        if after_product and part in _PRODUCT_TAGS:
            after_product = False
            continue
        after_product = part == "product"
        name = top.get(part) if depth == 0 else None
        if name is None:
            name = _NAMES.get(part, part)
        if name:
            out = _at(out, name)
    return out


def _validated(model: type[_M], data: dict[str, Any], path: str, top: Mapping[str, str]) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        first = errors[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
        raise _refused(_wire_path(path, tuple(first["loc"]), top), message) from None
