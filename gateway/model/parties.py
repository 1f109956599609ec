"""Who takes part (parties), where on the grid they sit (locations) and what they own (resources)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from gateway.model.base import CanonicalModel, Identifier, NonNegativeDecimal, UtcDatetime, utc_now


class Role(StrEnum):
    CONSUMER = "consumer"
    PRODUCER = "producer"
    PROSUMER = "prosumer"
    AGGREGATOR = "aggregator"
    UTILITY = "utility"
    DSO = "dso"
    DMO = "dmo"
    ISO = "iso"
    GRID_OPERATOR = "grid_operator"


class Party(CanonicalModel):
    """A market participant or operator.

    ``identities`` holds the party's names on each protocol edge (an OpenADR venID, a 2030.5 LFDI, a TLS
    certificate fingerprint, an EI party id) so that an adapter can tell who sent a message.
    """

    object_type: Literal["party"] = "party"
    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    roles: list[Role] = Field(min_length=1)
    identities: dict[str, str] = Field(default_factory=dict)
    created_at: UtcDatetime = Field(default_factory=utc_now)


class LocationKind(StrEnum):
    """Levels of the grid hierarchy, from the pricing node down to the customer's meter."""

    PNODE = "pnode"
    SUBSTATION = "substation"
    FEEDER = "feeder"
    TRANSFORMER = "transformer"
    SERVICE_POINT = "service_point"

    @property
    def depth(self) -> int:
        return list(LocationKind).index(self)


class Location(CanonicalModel):
    """A node of the location tree. ``rating_kva`` is the transport limit the market must respect there."""

    object_type: Literal["location"] = "location"
    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    kind: LocationKind
    parent_id: Identifier | None = None
    rating_kva: NonNegativeDecimal | None = None
    network_ref: str | None = Field(default=None, description="mRID of the CIM object this location stands for")


class LocationTreeError(ValueError):
    """A location refers to a missing parent, sits under a lower level than itself, or forms a cycle."""


class LocationTree:
    """Checks and walks a set of locations as a tree (pnode > substation > feeder > transformer > service point).

    Levels may be skipped (a service point directly under a feeder is common in simplified models) but a
    child always sits strictly below its parent.
    """

    def __init__(self, locations: Iterable[Location]) -> None:
        self._by_id: dict[str, Location] = {}
        for location in locations:
            if location.id in self._by_id:
                raise LocationTreeError(f"location '{location.id}' appears twice")
            self._by_id[location.id] = location
        for location in self._by_id.values():
            check_parent(location, self._by_id.get(location.parent_id) if location.parent_id else None)
        for location in self._by_id.values():
            list(self.ancestors(location.id))  # raises on cycles

    def __contains__(self, location_id: object) -> bool:
        return location_id in self._by_id

    def __getitem__(self, location_id: str) -> Location:
        return self._by_id[location_id]

    def ancestors(self, location_id: str) -> Iterator[Location]:
        """Parents from the nearest up to the root."""
        seen = {location_id}
        current = self._by_id[location_id]
        while current.parent_id is not None:
            current = self._by_id[current.parent_id]
            if current.id in seen:
                raise LocationTreeError(f"location '{location_id}' is part of a cycle")
            seen.add(current.id)
            yield current

    def path(self, location_id: str) -> list[Location]:
        """Root-first path to ``location_id``: every limit a flow to this location must pass."""
        return [*reversed(list(self.ancestors(location_id))), self._by_id[location_id]]

    def children(self, location_id: str) -> list[Location]:
        return [loc for loc in self._by_id.values() if loc.parent_id == location_id]


def check_parent(location: Location, parent: Location | None) -> None:
    """Raise :class:`LocationTreeError` unless ``parent`` may hold ``location``."""
    if location.parent_id is None:
        return
    if parent is None:
        raise LocationTreeError(f"location '{location.id}' refers to unknown parent '{location.parent_id}'")
    if parent.kind.depth >= location.kind.depth:
        raise LocationTreeError(
            f"a {location.kind.value} ('{location.id}') cannot sit under a {parent.kind.value} ('{parent.id}')"
        )


class ResourceKind(StrEnum):
    PV = "pv"
    BATTERY = "battery"
    EV_CHARGER = "ev_charger"
    LOAD = "load"
    GENERATOR = "generator"
    HEAT_PUMP = "heat_pump"
    WATER_HEATER = "water_heater"
    HVAC = "hvac"
    OTHER = "other"


Kilowatts = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]


class Ratings(CanonicalModel):
    """Nameplate ratings in kW, kvar, kVA and kWh; whatever the device declares."""

    max_kw: Kilowatts | None = None
    max_kvar: Kilowatts | None = None
    max_kva: Kilowatts | None = None
    max_charge_kw: Kilowatts | None = None
    max_discharge_kw: Kilowatts | None = None
    energy_kwh: Kilowatts | None = None


class Resource(CanonicalModel):
    """A DER or a controllable load, owned by a party and connected at a location."""

    object_type: Literal["resource"] = "resource"
    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    kind: ResourceKind
    owner_id: Identifier
    location_id: Identifier
    ratings: Ratings = Field(default_factory=Ratings)
    identities: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _storage_needs_energy(self) -> Self:
        if self.kind is ResourceKind.BATTERY and self.ratings.energy_kwh == 0:
            raise ValueError("a battery with an energy rating of 0 kWh cannot store anything")
        return self
