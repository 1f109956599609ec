"""Tenders, transactions, positions, metered deliveries and settlement lines.

Sign conventions, used by every adapter and by the market: tender and transaction quantities are
non-negative rates with a ``side``; positions and deliveries are signed from the party's point of view,
positive = the party buys / imports, negative = it sells / exports. Money on a settlement line is positive
when the party pays.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Self

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator
from typing_extensions import TypedDict

from gateway.model.base import (
    CanonicalModel,
    Currency,
    ExactDecimal,
    Identifier,
    NonNegativeDecimal,
    UtcDatetime,
    new_id,
    utc_now,
)
from gateway.model.intervals import Interval, Resolution, TimeZoneName, check_strip, interval_end
from gateway.model.products import EnergyProduct, Product, ReactiveEnergyProduct
from gateway.model.units import EnergyUnit, PowerUnit


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class TenderStatus(StrEnum):
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    INDICATIVE = "indicative"
    """A quote (EI eiCreateQuote): a price indication that nobody can accept and no market clears."""


class TenderRow(TypedDict):
    """One interval of a tender: deliver ``quantity`` (a rate) from ``start`` for one resolution, at ``price``.

    A typed dict rather than a model: a tender may carry thousands of rows, and a model instance per row
    cost a third of a 24-row tender's validation. It is still validated field by field (and strictly:
    unknown keys are refused); read it as ``row["price"]``.
    """

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    start: UtcDatetime
    quantity: NonNegativeDecimal
    price: ExactDecimal


class _Priced(CanonicalModel):
    """Units shared by everything that carries a quantity and a price."""

    currency: Currency = "USD"
    quantity_unit: PowerUnit = PowerUnit.KW
    price_per: EnergyUnit = EnergyUnit.KWH

    def _check_units(self, product: Product) -> None:
        reactive = isinstance(product, ReactiveEnergyProduct)
        if self.quantity_unit.is_reactive != reactive or self.price_per.is_reactive != reactive:
            kind = "reactive" if reactive else "real"
            raise ValueError(
                f"a {product.type} product needs {kind} units, got {self.quantity_unit} priced per {self.price_per}"
            )


class Tender(_Priced):
    """A buy or sell offer for a strip of uniform intervals; accepting it makes binding :class:`Transaction` s.

    A tender is a strip: one ``resolution`` (and market ``time_zone``) for all its rows, each row a start,
    a rate and a price, in strictly increasing time order. That is how TeMIX tenders are shaped, it rules
    out overlapping rows by construction, and it keeps a 24-row tender small and fast to validate.
    """

    object_type: Literal["tender"] = "tender"
    id: Identifier = Field(default_factory=new_id)
    market_id: Identifier
    party_id: Identifier
    side: Side
    product: Product = Field(default_factory=EnergyProduct)
    location_id: Identifier
    resolution: Resolution = Resolution.HOUR
    time_zone: TimeZoneName = "UTC"
    rows: list[TenderRow] = Field(min_length=1, max_length=10_000)
    expires_at: UtcDatetime | None = None
    all_or_none: bool = False
    status: TenderStatus = TenderStatus.OPEN
    created_at: UtcDatetime = Field(default_factory=utc_now)

    @field_validator("rows")
    @classmethod
    def _rows_form_a_strip(cls, rows: list[TenderRow], info: ValidationInfo) -> list[TenderRow]:
        resolution = info.data.get("resolution")
        time_zone = info.data.get("time_zone")
        if resolution is None or time_zone is None:  # already reported on those fields
            return rows

        check_strip([row["start"] for row in rows], resolution, time_zone)
        return rows

    @field_validator("expires_at")
    @classmethod
    def _expires_in_time(cls, expires_at: datetime | None, info: ValidationInfo) -> datetime | None:
        rows, resolution, time_zone = (info.data.get(k) for k in ("rows", "resolution", "time_zone"))
        if expires_at is None or not rows or resolution is None or time_zone is None:
            return expires_at
        last_end = interval_end(rows[-1]["start"], resolution, time_zone)
        if expires_at > last_end:
            # A tender may stay open into its intervals (spot), never past the end of the last one.
            raise ValueError(
                f"expires_at {expires_at.isoformat()} is after the end of the tender's last interval"
                f" ({last_end.isoformat()})"
            )
        return expires_at

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        self._check_units(self.product)
        return self

    def interval(self, row: TenderRow) -> Interval:
        """The uniform interval of one row."""
        return Interval.model_construct(start=row["start"], duration=self.resolution, time_zone=self.time_zone)

    @property
    def intervals(self) -> list[Interval]:
        return [self.interval(row) for row in self.rows]


class Transaction(_Priced):
    """A binding trade for one interval, made when a tender was accepted (by a counterparty or a clearing)."""

    object_type: Literal["transaction"] = "transaction"
    id: Identifier = Field(default_factory=new_id)
    market_id: Identifier
    party_id: Identifier
    counterparty_id: Identifier
    side: Side
    tender_id: Identifier | None = None
    clearing_id: str | None = Field(default=None, max_length=400)
    subscription_id: Identifier | None = None
    product: Product = Field(default_factory=EnergyProduct)
    location_id: Identifier
    interval: Interval
    quantity: NonNegativeDecimal
    price: ExactDecimal
    executed_at: UtcDatetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        self._check_units(self.product)
        if self.party_id == self.counterparty_id:
            raise ValueError("a party cannot trade with itself")
        return self

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side is Side.BUY else -self.quantity


def position_id(party_id: str, market_id: str, location_id: str, interval: Interval, product_type: str) -> str:
    """Positions are keyed by what they sum over, so the same key always names the same position."""
    return f"{party_id}:{market_id}:{location_id}:{product_type}:{interval.start.isoformat()}:{interval.duration.value}"


class Position(_Priced):
    """A party's net forward position per (market, product, interval, location): the sum of its transactions."""

    object_type: Literal["position"] = "position"
    id: str = ""
    party_id: Identifier
    market_id: Identifier
    location_id: Identifier
    product_type: Literal["energy", "reactive_energy", "transport", "option"] = "energy"
    interval: Interval
    quantity: ExactDecimal = Field(description="net rate, positive = bought")
    cost: ExactDecimal = Field(description="net money paid for the position, positive = paid")
    as_of: UtcDatetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _derive_id(self) -> Self:
        expected = position_id(self.party_id, self.market_id, self.location_id, self.interval, self.product_type)
        if not self.id:
            object.__setattr__(self, "id", expected)
        elif self.id != expected:
            raise ValueError(f"position id must be '{expected}' (derived from its key)")
        return self


class DeliveryQuality(StrEnum):
    MEASURED = "measured"
    ESTIMATED = "estimated"
    SUBSTITUTED = "substituted"


class Delivery(CanonicalModel):
    """Metered delivery for one interval as the average rate over it (positive = imported/consumed)."""

    object_type: Literal["delivery"] = "delivery"
    id: Identifier = Field(default_factory=new_id)
    party_id: Identifier
    location_id: Identifier
    resource_id: Identifier | None = None
    interval: Interval
    quantity: ExactDecimal
    quantity_unit: PowerUnit = PowerUnit.KW
    quality: DeliveryQuality = DeliveryQuality.MEASURED
    measured_at: UtcDatetime = Field(default_factory=utc_now)

    @property
    def energy(self) -> Decimal:
        """Energy over the interval in ``quantity_unit``-hours (kW over 15 min -> kWh)."""
        return self.quantity * Decimal(int(self.interval.length.total_seconds())) / Decimal(3600)


class SettlementKind(StrEnum):
    SUBSCRIPTION = "subscription"
    TRANSACTION = "transaction"
    DEVIATION = "deviation"
    PENALTY = "penalty"


class SettlementLine(_Priced):
    """One line of a party's bill: ``amount`` = energy x price, positive when the party pays."""

    object_type: Literal["settlement_line"] = "settlement_line"
    id: Identifier = Field(default_factory=new_id)
    party_id: Identifier
    market_id: Identifier
    location_id: Identifier
    interval: Interval
    kind: SettlementKind
    quantity: ExactDecimal
    price: ExactDecimal
    amount: ExactDecimal
    reference_ids: list[Identifier] = Field(default_factory=list)
    settled_at: UtcDatetime = Field(default_factory=utc_now)
