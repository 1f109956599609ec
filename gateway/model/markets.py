"""Markets, standing subscriptions and clearing results: what the reference clearing service is configured
with and what it leaves behind.

A :class:`Market` is the contract every tender in it must honour (currency, interval grid, price limits,
network); a :class:`Subscription` is a standing block of forward energy at a fixed price (the retail half of a
transactive tariff); a :class:`Clearing` is the record of one call auction, kept whole (prices per location,
binding limits, supply and demand curves) so that a dashboard or an auditor can replay what happened.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Self

from pydantic import Field, model_validator

from gateway.model.base import ExactDecimal, Identifier, NonNegativeDecimal, UtcDatetime, new_id, utc_now
from gateway.model.intervals import Interval, Resolution, TimeZoneName, is_aligned
from gateway.model.market import Side, _Priced

DEFAULT_PRICE_CAP = Decimal(9999)
"""GridLAB-D's default price cap; unresponsive (price-taking) buys bid at the cap."""


class Market(_Priced):
    """A market the gateway clears: one interval grid, one currency, one price range, optionally one network.

    ``operator_id`` is the party on the other side of every cleared trade (a pool clears buyers against sellers
    through its operator, so each party's transactions and settlement stay its own). ``network_root_id`` names
    the location whose subtree is the market's network: tenders must sit inside it and its transport limits
    (location ``rating_kva``) constrain the clearing; without one the market is a copper plate. The call
    auction for an interval runs ``gate_closure`` before the interval starts, by itself under ``tgw serve``
    when ``auto_clear`` is on.
    """

    object_type: Literal["market"] = "market"
    id: str = Field(min_length=1, max_length=100, pattern=r"^[^\s/]+$", description="short: clearing ids embed it")
    name: str = Field(default="", max_length=200)
    operator_id: Identifier
    resolution: Resolution = Resolution.HOUR
    time_zone: TimeZoneName = "UTC"
    price_cap: ExactDecimal = DEFAULT_PRICE_CAP
    price_floor: ExactDecimal = -DEFAULT_PRICE_CAP
    k: Decimal = Field(default=Decimal("0.5"), ge=0, le=1, description="where in the gap an exact match prices")
    network_root_id: Identifier | None = None
    gate_closure: timedelta = Field(default=timedelta(minutes=5), description="how long before an interval it clears")
    auto_clear: bool = True
    active: bool = True
    created_at: UtcDatetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.price_floor >= self.price_cap:
            raise ValueError(f"price_floor ({self.price_floor}) must be below price_cap ({self.price_cap})")
        if self.gate_closure < timedelta(0):
            raise ValueError("gate_closure must not be negative")
        if self.quantity_unit.is_reactive or self.price_per.is_reactive:
            raise ValueError("a market clears real energy: use W/kW/MW and Wh/kWh/MWh")
        return self


class Subscription(_Priced):
    """A standing block of forward energy at a fixed price, from ``start`` to ``end`` (exclusive).

    In a transactive retail tariff (the TeMIX subscription) the customer buys a block, say 1.2 kW around the
    clock at a fixed price, and settles only its deviation from the block at the spot price. The clearing
    service turns the block into one Transaction per interval when it clears that interval.
    """

    object_type: Literal["subscription"] = "subscription"
    id: Identifier = Field(default_factory=new_id)
    market_id: Identifier
    party_id: Identifier
    counterparty_id: Identifier
    location_id: Identifier
    side: Side = Side.BUY
    quantity: NonNegativeDecimal
    price: ExactDecimal
    start: UtcDatetime
    end: UtcDatetime
    active: bool = True
    created_at: UtcDatetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.party_id == self.counterparty_id:
            raise ValueError("a party cannot subscribe with itself")
        return self

    def covers(self, interval: Interval) -> bool:
        return self.active and self.start <= interval.start and interval.end <= self.end

    def aligned_to(self, resolution: Resolution, time_zone: str) -> bool:
        return is_aligned(self.start, resolution, time_zone) and is_aligned(self.end, resolution, time_zone)


class ClearingType(StrEnum):
    """How an interval cleared: GridLAB-D's ``current_market.clearing_type`` keywords (auction.cpp); see
    ``gateway.market.auction`` for what each means here."""

    NULL = "NULL"
    EXACT = "EXACT"
    MARGINAL_SELLER = "MARGINAL_SELLER"
    MARGINAL_BUYER = "MARGINAL_BUYER"
    MARGINAL_PRICE = "MARGINAL_PRICE"
    FAILURE = "FAILURE"


class ClearingMethod(StrEnum):
    UNIFORM = "uniform"
    NETWORK = "network"


CurvePoint = tuple[Decimal, Decimal]
"""(cumulative quantity, price) at the end of one price level."""


def clearing_id(market_id: str, interval: Interval) -> str:
    """One call auction per market interval, so the clearing's id is its key and a rerun finds it."""
    return f"{market_id}:{interval.start.isoformat()}:{interval.duration.value}"


class Clearing(_Priced):
    """The result of one interval's call auction.

    ``price`` is the uniform clearing price (the price at the network root when the network bound);
    ``prices`` holds the price of every location of the network, and equals ``price`` everywhere unless a
    limit in ``binding_location_ids`` separated them. ``type`` is the plain auction's outcome in GridLAB-D's
    terms; with ``method`` "network" the awards and prices are the network LP's. Curves are aggregated by price
    level: demand in descending price order, supply ascending.
    """

    object_type: Literal["clearing"] = "clearing"
    id: str = ""
    market_id: Identifier
    interval: Interval
    method: ClearingMethod = ClearingMethod.UNIFORM
    type: ClearingType
    price: ExactDecimal
    cleared_quantity: NonNegativeDecimal
    prices: dict[Identifier, ExactDecimal] = Field(default_factory=dict)
    binding_location_ids: list[Identifier] = Field(default_factory=list)
    flows: dict[Identifier, ExactDecimal] = Field(
        default_factory=dict, description="kW out of each constrained subtree"
    )
    tender_count: int = Field(default=0, ge=0)
    transaction_count: int = Field(default=0, ge=0)
    excluded_tender_ids: list[Identifier] = Field(default_factory=list, description="all-or-none tenders left out")
    supply_curve: list[CurvePoint] = Field(default_factory=list)
    demand_curve: list[CurvePoint] = Field(default_factory=list)
    gate_closed_at: UtcDatetime
    cleared_at: UtcDatetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _derive_id(self) -> Self:
        expected = clearing_id(self.market_id, self.interval)
        if not self.id:
            object.__setattr__(self, "id", expected)
        elif self.id != expected:
            raise ValueError(f"clearing id must be '{expected}' (derived from its market and interval)")
        return self

    def price_at(self, location_id: str) -> Decimal:
        """The spot price at a location: its own when the network priced it, else the uniform price."""
        return self.prices.get(location_id, self.price)


def gate_closure_time(market: Market, interval: Interval) -> datetime:
    return interval.start - market.gate_closure
