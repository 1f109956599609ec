"""What a market asks of the tenders, subscriptions and trades sent to it, checked on the way in.

The ingest path calls these before anything is stored, so a tender for the wrong interval grid, in the wrong
currency, priced outside the market's range or placed outside its network is refused with a reason instead of
sitting in a book that will never clear it. Each check names the field at fault.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from gateway.model import (
    Location,
    Market,
    Subscription,
    Tender,
    Transaction,
    TransportProduct,
    convert_price,
)
from gateway.model.intervals import is_aligned
from gateway.model.market import Side

Finding = tuple[tuple[str | int, ...], str]
"""(field path inside the payload, reason)"""

LocationLookup = Callable[[str], Location | None]


def network_path(location_id: str, locate: LocationLookup) -> list[str]:
    """The location and its ancestors up to the root (stops at an unknown id; a tree is checked on its way in)."""
    path: list[str] = []
    current: str | None = location_id
    while current is not None and len(path) < 64:
        path.append(current)
        location = locate(current)
        current = None if location is None else location.parent_id
    return path


def _outside_network(market: Market, location_id: str, locate: LocationLookup) -> str | None:
    if market.network_root_id is None or market.network_root_id in network_path(location_id, locate):
        return None
    return f"location '{location_id}' is not inside market '{market.id}''s network (root '{market.network_root_id}')"


def tender_findings(tender: Tender, market: Market, locate: LocationLookup, now: datetime) -> list[Finding]:
    """Why ``market`` cannot take ``tender`` (empty when it can)."""
    found: list[Finding] = []
    if not market.active:
        found.append((("market_id",), f"market '{market.id}' is not active"))
    if tender.party_id == market.operator_id:
        found.append(
            (
                ("party_id",),
                f"'{tender.party_id}' operates market '{market.id}' and is the counterparty of every "
                "cleared trade; it cannot also tender in it",
            )
        )
    if tender.currency != market.currency:
        found.append(
            (("currency",), f"market '{market.id}' trades in {market.currency}, the tender is in {tender.currency}")
        )
    if tender.resolution is not market.resolution:
        found.append(
            (
                ("resolution",),
                f"market '{market.id}' clears {market.resolution.value} intervals, the tender's resolution is "
                f"{tender.resolution.value}",
            )
        )
    elif not is_aligned(tender.rows[0]["start"], market.resolution, market.time_zone):
        found.append(
            (
                ("rows", 0, "start"),
                f"{tender.rows[0]['start'].isoformat()} is not the start of a {market.resolution.value} interval "
                f"in the market's time zone {market.time_zone}",
            )
        )
    if tender.expires_at is not None and tender.expires_at <= now:
        found.append((("expires_at",), f"the tender expired at {tender.expires_at.isoformat()}"))
    product = tender.product
    if isinstance(product, TransportProduct):
        if market.network_root_id is None:
            found.append((("product",), f"market '{market.id}' has no network, so it cannot clear transport"))
        elif tender.side is not Side.SELL:
            found.append((("side",), "transport is offered (sold) to the clearing; a buy of transport has no place"))
        for end in ("from_location_id", "to_location_id"):
            reason = _outside_network(market, getattr(product, end), locate)
            if reason:
                found.append((("product", end), reason))
    elif product.type != "energy":
        found.append((("product", "type"), f"market '{market.id}' clears energy and transport, not {product.type}"))
    reason = _outside_network(market, tender.location_id, locate)
    if reason:
        found.append((("location_id",), reason))
    found.extend(_price_findings(tender, market))
    return found


def _price_findings(tender: Tender, market: Market) -> list[Finding]:
    found: list[Finding] = []
    for index, row in enumerate(tender.rows):
        price = row["price"]
        if tender.price_per is not market.price_per:
            price = convert_price(price, tender.price_per, market.price_per)
        if price > market.price_cap or price < market.price_floor:
            limit = "above the cap" if price > market.price_cap else "below the floor"
            found.append(
                (
                    ("rows", index, "price"),
                    f"price {row['price']} per {tender.price_per.value} is {limit} of market '{market.id}' "
                    f"([{market.price_floor}, {market.price_cap}] per {market.price_per.value})",
                )
            )
            if len(found) >= 5:  # enough to act on; a strip of 10,000 bad rows needs no 10,000 reasons
                break
    return found


def subscription_findings(subscription: Subscription, market: Market, locate: LocationLookup) -> list[Finding]:
    found: list[Finding] = []
    if subscription.currency != market.currency:
        found.append(
            (
                ("currency",),
                f"market '{market.id}' trades in {market.currency}, the subscription is in {subscription.currency}",
            )
        )
    for name in ("start", "end"):
        instant = getattr(subscription, name)
        if not is_aligned(instant, market.resolution, market.time_zone):
            found.append(
                ((name,), f"{instant.isoformat()} is not a {market.resolution.value} boundary of market '{market.id}'")
            )
    price = convert_price(subscription.price, subscription.price_per, market.price_per)
    if not market.price_floor <= price <= market.price_cap:
        found.append((("price",), f"price {subscription.price} is outside market '{market.id}''s price range"))
    reason = _outside_network(market, subscription.location_id, locate)
    if reason:
        found.append((("location_id",), reason))
    return found


def transaction_findings(transaction: Transaction, market: Market, locate: LocationLookup) -> list[Finding]:
    """A trade reported into a market (bilateral, or from another venue) must at least be in its money and place."""
    found: list[Finding] = []
    if transaction.currency != market.currency:
        found.append(
            (
                ("currency",),
                f"market '{market.id}' trades in {market.currency}, the transaction is in {transaction.currency}",
            )
        )
    reason = _outside_network(market, transaction.location_id, locate)
    if reason:
        found.append((("location_id",), reason))
    return found
