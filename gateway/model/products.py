"""What is traded: energy, reactive energy, transport between locations, and options on energy.

Every product is a constant rate of delivery over an interval at a location; the tender row carries the
rate and the price, the product says what the rate is of.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from gateway.model.base import CanonicalModel, Identifier, NonNegativeDecimal


class EnergyProduct(CanonicalModel):
    type: Literal["energy"] = "energy"


class ReactiveEnergyProduct(CanonicalModel):
    type: Literal["reactive_energy"] = "reactive_energy"


class TransportProduct(CanonicalModel):
    """The right to move energy from one location to another (a share of a line's or transformer's capacity)."""

    type: Literal["transport"] = "transport"
    from_location_id: Identifier
    to_location_id: Identifier

    @model_validator(mode="after")
    def _distinct_ends(self) -> Self:
        if self.from_location_id == self.to_location_id:
            raise ValueError("transport needs two different locations")
        return self


class OptionKind(StrEnum):
    CALL = "call"
    PUT = "put"


class OptionProduct(CanonicalModel):
    """A call (right to buy) or put (right to sell) energy at ``strike``, for ``premium``; both per kWh.

    Options are how reserves are bought: the premium pays for availability, the strike for the energy.
    """

    type: Literal["option"] = "option"
    option_kind: OptionKind
    strike: NonNegativeDecimal
    premium: NonNegativeDecimal


Product = Annotated[
    EnergyProduct | ReactiveEnergyProduct | TransportProduct | OptionProduct, Field(discriminator="type")
]
