"""IEEE 2030.5-2018 Demand Response and Load Control: programs, EndDeviceControl events and DrResponse.

Conventions (names, order, attributes, ``Opt`` / ``Many``) as in :mod:`models_common`.
"""

from typing import Annotated

from gateway.protocols.ieee2030_5.models_common import (
    ActivePower,
    IdentifiedObject,
    ListLink,
    RandomizableEvent,
    SubscribableList,
)
from gateway.protocols.ieee2030_5.models_response import Response
from gateway.protocols.ieee2030_5.models_types import (
    Attr,
    DeviceCategoryType,
    Int16,
    Many,
    Opt,
    PerCent,
    PrimacyType,
    UInt8,
    UInt16,
    UInt32,
)
from gateway.protocols.ieee2030_5.xmlbind import Sep2Model

__all__ = [
    "ApplianceLoadReduction",
    "AppliedTargetReduction",
    "DemandResponseProgram",
    "DemandResponseProgramList",
    "DrResponse",
    "DutyCycle",
    "EndDeviceControl",
    "EndDeviceControlList",
    "Offset",
    "SetPoint",
    "TargetReduction",
]


class ApplianceLoadReduction(Sep2Model):
    """``type`` 0 delay appliance load, 1 temporary appliance load reduction."""

    type: UInt8


class DutyCycle(Sep2Model):
    normalValue: UInt8


class Offset(Sep2Model):
    """Temperature offsets in 1/10 degree C; load adjustment in hundredths of a percent."""

    coolingOffset: UInt8 | None = None
    heatingOffset: UInt8 | None = None
    loadAdjustmentPercentageOffset: PerCent | None = None


class SetPoint(Sep2Model):
    """Set points in hundredths of a degree C."""

    coolingSetpoint: Int16 | None = None
    heatingSetpoint: Int16 | None = None


class TargetReduction(Sep2Model):
    """``type`` is the UnitType (0 kWh, 1 kW, 2 W...)."""

    type: UInt8
    value: UInt16


class AppliedTargetReduction(Sep2Model):
    type: UInt8
    value: UInt16


class DemandResponseProgram(IdentifiedObject):
    ActiveEndDeviceControlListLink: ListLink | None = None
    availabilityUpdatePercentChangeThreshold: PerCent | None = None
    availabilityUpdatePowerChangeThreshold: ActivePower | None = None
    EndDeviceControlListLink: ListLink | None = None
    primacy: PrimacyType


class DemandResponseProgramList(SubscribableList):
    DemandResponseProgram: Many[DemandResponseProgram]
    pollRate: Annotated[UInt32 | None, Attr] = None


class EndDeviceControl(RandomizableEvent):
    ApplianceLoadReduction: Opt[ApplianceLoadReduction]
    deviceCategory: DeviceCategoryType
    drProgramMandatory: bool
    DutyCycle: Opt[DutyCycle]
    loadShiftForward: bool
    Offset: Opt[Offset]
    overrideDuration: UInt16 | None = None
    SetPoint: Opt[SetPoint]
    TargetReduction: Opt[TargetReduction]


class EndDeviceControlList(SubscribableList):
    EndDeviceControl: Many[EndDeviceControl]


class DrResponse(Response):
    """A Response to an EndDeviceControl, with what the device actually applied."""

    ApplianceLoadReduction: Opt[ApplianceLoadReduction]
    AppliedTargetReduction: Opt[AppliedTargetReduction]
    DutyCycle: Opt[DutyCycle]
    Offset: Opt[Offset]
    overrideDuration: UInt16 | None = None
    SetPoint: Opt[SetPoint]
