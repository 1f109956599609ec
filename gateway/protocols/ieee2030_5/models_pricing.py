"""IEEE 2030.5-2018 Pricing function set: tariff profiles, rate components, time-of-use intervals (events) and
consumption blocks. A price is ``price`` x 10^TariffProfile.pricePowerOfTenMultiplier in ``currency`` (ISO 4217
number) per unit of the rate component's ReadingType.

Conventions (names, order, attributes, ``Opt`` / ``Many``) as in :mod:`models_common`.
"""

from typing import Annotated

from gateway.protocols.ieee2030_5.models_common import (
    IdentifiedObject,
    Link,
    List,
    ListLink,
    RandomizableEvent,
    Resource,
    SubscribableList,
    UnitValueType,
)
from gateway.protocols.ieee2030_5.models_types import (
    Attr,
    HexBinary16,
    Int32,
    Many,
    PowerOfTenMultiplierType,
    PrimacyType,
    String20,
    UInt8,
    UInt16,
    UInt32,
    UInt48,
)
from gateway.protocols.ieee2030_5.xmlbind import Sep2Model

__all__ = [
    "ConsumptionTariffInterval",
    "ConsumptionTariffIntervalList",
    "EnvironmentalCost",
    "RateComponent",
    "RateComponentList",
    "TariffProfile",
    "TariffProfileList",
    "TimeTariffInterval",
    "TimeTariffIntervalList",
]


class TariffProfile(IdentifiedObject):
    currency: UInt16 | None = None
    pricePowerOfTenMultiplier: PowerOfTenMultiplierType | None = None
    primacy: PrimacyType
    rateCode: String20 | None = None
    RateComponentListLink: ListLink | None = None
    serviceCategoryKind: UInt8


class TariffProfileList(SubscribableList):
    TariffProfile: Many[TariffProfile]
    pollRate: Annotated[UInt32 | None, Attr] = None


class RateComponent(IdentifiedObject):
    ActiveTimeTariffIntervalListLink: ListLink | None = None
    flowRateEndLimit: UnitValueType | None = None
    flowRateStartLimit: UnitValueType | None = None
    ReadingTypeLink: Link
    roleFlags: HexBinary16
    TimeTariffIntervalListLink: ListLink


class RateComponentList(List):
    RateComponent: Many[RateComponent]


class TimeTariffInterval(RandomizableEvent):
    """A time-of-use period (an event: it has an EventStatus and may be superseded) at tier ``touTier``."""

    ConsumptionTariffIntervalListLink: ListLink | None = None
    touTier: UInt8


class TimeTariffIntervalList(SubscribableList):
    TimeTariffInterval: Many[TimeTariffInterval]


class EnvironmentalCost(Sep2Model):
    """``costKind`` 0 CO2 g/unit, 1 SO2, 2 NOx, 3 renewable %; ``costLevel`` of ``numCostLevels``."""

    amount: UInt32
    costKind: UInt8
    costLevel: UInt8
    numCostLevels: UInt8


class ConsumptionTariffInterval(Resource):
    consumptionBlock: UInt8
    EnvironmentalCost: Many[EnvironmentalCost]
    price: Int32 | None = None
    startValue: UInt48


class ConsumptionTariffIntervalList(List):
    ConsumptionTariffInterval: Many[ConsumptionTariffInterval]
