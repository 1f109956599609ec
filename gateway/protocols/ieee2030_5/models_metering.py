"""IEEE 2030.5-2018 Metering and Metering Mirror function sets: usage points, meter readings, reading sets,
readings and reading types, and their client-posted mirrors.

Conventions (names, order, attributes, ``Opt`` / ``Many``) as in :mod:`models_common`.
"""

from typing import Annotated

from gateway.protocols.ieee2030_5.models_common import (
    DateTimeInterval,
    IdentifiedObject,
    Link,
    List,
    ListLink,
    Resource,
    SubscribableList,
    UnitValueType,
)
from gateway.protocols.ieee2030_5.models_types import (
    Attr,
    HexBinary16,
    HexBinary160,
    Int48,
    Many,
    Opt,
    PowerOfTenMultiplierType,
    SubscribableType,
    TimeType,
    UInt8,
    UInt32,
    UInt48,
)

__all__ = [
    "MeterReading",
    "MeterReadingBase",
    "MeterReadingList",
    "MirrorMeterReading",
    "MirrorMeterReadingList",
    "MirrorReadingSet",
    "MirrorUsagePoint",
    "MirrorUsagePointList",
    "Reading",
    "ReadingBase",
    "ReadingList",
    "ReadingSet",
    "ReadingSetBase",
    "ReadingSetList",
    "ReadingType",
    "UsagePoint",
    "UsagePointBase",
    "UsagePointList",
]

PollRate = Annotated[UInt32 | None, Attr]


class ReadingType(Resource):
    """What the readings measure: ``uom`` (38 W, 72 Wh, 119 ft3...) x 10^powerOfTenMultiplier, ``kind``
    (12 energy, 37 power), ``flowDirection`` (1 forward, 19 reverse), ``commodity`` (1 electricity)..."""

    accumulationBehaviour: UInt8 | None = None
    calorificValue: UnitValueType | None = None
    commodity: UInt8 | None = None
    conversionFactor: UnitValueType | None = None
    dataQualifier: UInt8 | None = None
    flowDirection: UInt8 | None = None
    intervalLength: UInt32 | None = None
    kind: UInt8 | None = None
    maxNumberOfIntervals: UInt8 | None = None
    numberOfConsumptionBlocks: UInt8 | None = None
    numberOfTouTiers: UInt8 | None = None
    phase: UInt8 | None = None
    powerOfTenMultiplier: PowerOfTenMultiplierType | None = None
    subIntervalLength: UInt32 | None = None
    supplyLimit: UInt48 | None = None
    tieredConsumptionBlocks: bool | None = None
    uom: UInt8 | None = None


class ReadingBase(Resource):
    consumptionBlock: UInt8 | None = None
    qualityFlags: HexBinary16 | None = None
    timePeriod: DateTimeInterval | None = None
    touTier: UInt8 | None = None
    value: Int48 | None = None


class Reading(ReadingBase):
    localID: HexBinary16 | None = None
    subscribable: Annotated[SubscribableType | None, Attr] = None


class ReadingList(SubscribableList):
    Reading: Many[Reading]


class ReadingSetBase(IdentifiedObject):
    timePeriod: DateTimeInterval


class ReadingSet(ReadingSetBase):
    ReadingListLink: ListLink | None = None


class ReadingSetList(SubscribableList):
    ReadingSet: Many[ReadingSet]


class MeterReadingBase(IdentifiedObject):
    """What MeterReading and MirrorMeterReading share (IdentifiedObject's elements)."""


class MeterReading(MeterReadingBase):
    RateComponentListLink: ListLink | None = None
    ReadingLink: Link | None = None
    ReadingSetListLink: ListLink | None = None
    ReadingTypeLink: Link


class MeterReadingList(SubscribableList):
    MeterReading: Many[MeterReading]


class UsagePointBase(IdentifiedObject):
    """``roleFlags`` bit map (0 mirror, 1 premises aggregation point, 2 PEV, 3 DER, 4 revenue quality, 5 DC,
    6 submeter); ``serviceCategoryKind`` 0 electricity; ``status`` 0 off, 1 on."""

    roleFlags: HexBinary16
    serviceCategoryKind: UInt8
    status: UInt8


class UsagePoint(UsagePointBase):
    deviceLFDI: HexBinary160 | None = None
    MeterReadingListLink: ListLink | None = None


class UsagePointList(SubscribableList):
    UsagePoint: Many[UsagePoint]
    pollRate: PollRate = None


class MirrorReadingSet(ReadingSetBase):
    Reading: Many[Reading]


class MirrorMeterReading(MeterReadingBase):
    lastUpdateTime: TimeType | None = None
    MirrorReadingSet: Many[MirrorReadingSet]
    nextUpdateTime: TimeType | None = None
    Reading: Opt[Reading]
    ReadingType: Opt[ReadingType]


class MirrorMeterReadingList(List):
    MirrorMeterReading: Many[MirrorMeterReading]


class MirrorUsagePoint(UsagePointBase):
    """Posted by a client that mirrors its own meter (``deviceLFDI``) to the server."""

    deviceLFDI: HexBinary160
    MirrorMeterReading: Many[MirrorMeterReading]
    postRate: UInt32 | None = None


class MirrorUsagePointList(List):
    MirrorUsagePoint: Many[MirrorUsagePoint]
    pollRate: PollRate = None
