"""IEEE 2030.5-2018 common types: the Resource / IdentifiedObject / List hierarchy, links, events and their
status, errors, and the quantity types (power, energy, voltage, power factor) other function sets use.

Conventions of every models_* module: field names are the XML local names; fields are declared in XSD sequence
order, base class first (the order an XSD extension gives); attributes carry the ``Attr`` marker; an optional
element named after its type is ``Opt[T]`` and a repeated one ``Many[T]`` (see :mod:`models_types` for why the
default cannot follow ``=`` there); the python class name is the XML element (and xsi:type) name.
"""

from typing import Annotated

from gateway.protocols.ieee2030_5.models_types import (
    AnyURI,
    Attr,
    HexBinary8,
    Int16,
    Int32,
    Int48,
    MRIDType,
    OneHourRangeType,
    PowerOfTenMultiplierType,
    SignedPerCent,
    String32,
    String192,
    SubscribableType,
    TimeType,
    UInt8,
    UInt16,
    UInt32,
    UInt48,
    VersionType,
)
from gateway.protocols.ieee2030_5.xmlbind import Sep2Model

__all__ = [
    "ActivePower",
    "AmpereHour",
    "ApparentPower",
    "CurrentRMS",
    "DERCurveLink",
    "DateTimeInterval",
    "Error",
    "Event",
    "EventStatus",
    "FixedPointType",
    "FixedVar",
    "IdentifiedObject",
    "Link",
    "List",
    "ListLink",
    "PowerFactor",
    "PowerFactorWithExcitation",
    "RandomizableEvent",
    "ReactivePower",
    "ReactiveSusceptance",
    "RealEnergy",
    "Resource",
    "RespondableIdentifiedObject",
    "RespondableResource",
    "RespondableSubscribableIdentifiedObject",
    "SignedRealEnergy",
    "SubscribableIdentifiedObject",
    "SubscribableList",
    "SubscribableResource",
    "UnitValueType",
    "UnsignedFixedPointType",
    "VoltageRMS",
    "WattHour",
]


class Resource(Sep2Model):
    """An addressable unit of information; ``href`` is required in a response to a GET."""

    href: Annotated[AnyURI | None, Attr] = None


class IdentifiedObject(Resource):
    mRID: MRIDType
    description: String32 | None = None
    version: VersionType | None = None


class SubscribableResource(Resource):
    """A resource a client may subscribe to (``subscribable``: 0 no, 1 non-conditional, 2 conditional, 3 both)."""

    subscribable: Annotated[SubscribableType | None, Attr] = None


class SubscribableIdentifiedObject(SubscribableResource):
    mRID: MRIDType
    description: String32 | None = None
    version: VersionType | None = None


class RespondableResource(Resource):
    """A resource the client answers with a Response posted to ``replyTo``; ``responseRequired`` is a hex bit
    map (bit 0 message received, bit 1 specific response, bit 2 end-user response; absent means ``00``)."""

    replyTo: Annotated[AnyURI | None, Attr] = None
    responseRequired: Annotated[HexBinary8 | None, Attr] = None


class RespondableIdentifiedObject(RespondableResource):
    mRID: MRIDType
    description: String32 | None = None
    version: VersionType | None = None


class RespondableSubscribableIdentifiedObject(RespondableResource):
    mRID: MRIDType
    description: String32 | None = None
    version: VersionType | None = None
    subscribable: Annotated[SubscribableType | None, Attr] = None


class List(Resource):
    """A page of a list: ``all`` items in total, ``results`` in this page (query ``s`` start, ``l`` limit)."""

    all: Annotated[UInt32, Attr]
    results: Annotated[UInt32, Attr]


class SubscribableList(SubscribableResource):
    all: Annotated[UInt32, Attr]
    results: Annotated[UInt32, Attr]


class Link(Sep2Model):
    """A reference to another resource by URI."""

    href: Annotated[AnyURI, Attr]


class ListLink(Link):
    """A reference to a list; ``all`` is its item count (present for a local URI)."""

    all: Annotated[UInt32 | None, Attr] = None


DERCurveLink = Link
"""The XSD's DERCurveLink adds nothing to Link; the curve-valued opMods hold a plain Link."""


class DateTimeInterval(Sep2Model):
    duration: UInt32
    start: TimeType


class EventStatus(Sep2Model):
    """``currentStatus``: 0 scheduled, 1 active, 2 cancelled, 3 cancelled with randomization, 4 superseded."""

    currentStatus: UInt8
    dateTime: TimeType
    potentiallySuperseded: bool
    potentiallySupersededTime: TimeType | None = None
    reason: String192 | None = None


class Event(RespondableSubscribableIdentifiedObject):
    creationTime: TimeType
    EventStatus: EventStatus
    interval: DateTimeInterval


class RandomizableEvent(Event):
    randomizeDuration: OneHourRangeType | None = None
    randomizeStart: OneHourRangeType | None = None


class Error(Sep2Model):
    """The body of a 4xx answer. ``reasonCode``: 0 invalid request format, 1 invalid request values, 2 resource
    limit reached, 3 conditional subscription not supported, 4 maximum request frequency exceeded."""

    maxRetryDuration: UInt16 | None = None
    reasonCode: UInt16


# -- quantities: value x 10^multiplier -------------------------------------------------------------------------


class ActivePower(Sep2Model):
    """Watts (uom 38)."""

    multiplier: PowerOfTenMultiplierType
    value: Int16


class ReactivePower(Sep2Model):
    """var (uom 63)."""

    multiplier: PowerOfTenMultiplierType
    value: Int16


class ApparentPower(Sep2Model):
    """VA (uom 61)."""

    multiplier: PowerOfTenMultiplierType
    value: UInt16


class AmpereHour(Sep2Model):
    multiplier: PowerOfTenMultiplierType
    value: UInt16


class WattHour(Sep2Model):
    multiplier: PowerOfTenMultiplierType
    value: UInt16


class VoltageRMS(Sep2Model):
    multiplier: PowerOfTenMultiplierType
    value: UInt16


class CurrentRMS(Sep2Model):
    multiplier: PowerOfTenMultiplierType
    value: UInt16


class ReactiveSusceptance(Sep2Model):
    """Siemens (uom 53)."""

    multiplier: PowerOfTenMultiplierType
    value: UInt16


class FixedPointType(Sep2Model):
    multiplier: PowerOfTenMultiplierType
    value: Int16


class UnsignedFixedPointType(Sep2Model):
    multiplier: PowerOfTenMultiplierType
    value: UInt16


class RealEnergy(Sep2Model):
    """Watt-hours (uom 72)."""

    multiplier: PowerOfTenMultiplierType
    value: UInt48


class SignedRealEnergy(Sep2Model):
    multiplier: PowerOfTenMultiplierType
    value: Int48


class UnitValueType(Sep2Model):
    multiplier: PowerOfTenMultiplierType
    unit: UInt8
    value: Int32


class PowerFactor(Sep2Model):
    """cos(theta) = displacement x 10^multiplier."""

    displacement: UInt16
    multiplier: PowerOfTenMultiplierType


class PowerFactorWithExcitation(Sep2Model):
    """``excitation`` true when the DER absorbs reactive power (under-excited)."""

    displacement: UInt16
    excitation: bool
    multiplier: PowerOfTenMultiplierType


class FixedVar(Sep2Model):
    """A signed reactive power set point in hundredths of a percent of ``refType`` (2 %setMaxVar,
    3 %statVarAvail)."""

    refType: UInt8
    value: SignedPerCent
