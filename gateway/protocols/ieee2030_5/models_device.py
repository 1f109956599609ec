"""IEEE 2030.5-2018 device-facing function sets: DeviceCapability, Time, EndDevice (+ Registration,
FunctionSetAssignments, DeviceInformation, DeviceStatus, PowerStatus, SelfDevice) and LogEvent.

Conventions (names, order, attributes, ``Opt`` / ``Many``) as in :mod:`models_common`.
"""

from typing import Annotated

from gateway.protocols.ieee2030_5.models_common import (
    ActivePower,
    Link,
    List,
    ListLink,
    RealEnergy,
    Resource,
    SubscribableList,
    SubscribableResource,
)
from gateway.protocols.ieee2030_5.models_types import (
    Attr,
    DeviceCategoryType,
    HexBinary32,
    HexBinary64,
    HexBinary160,
    Int16,
    LocaleType,
    Many,
    MRIDType,
    Opt,
    PENType,
    PerCent,
    PINType,
    PowerOfTenMultiplierType,
    SFDIType,
    String32,
    SubscribableType,
    TimeOffsetType,
    TimeType,
    UInt8,
    UInt16,
    UInt32,
    VersionType,
)
from gateway.protocols.ieee2030_5.xmlbind import Sep2Model

__all__ = [
    "AbstractDevice",
    "DRLCCapabilities",
    "DeviceCapability",
    "DeviceInformation",
    "DeviceStatus",
    "EndDevice",
    "EndDeviceList",
    "FunctionSetAssignments",
    "FunctionSetAssignmentsBase",
    "FunctionSetAssignmentsList",
    "GPSLocationType",
    "LogEvent",
    "LogEventList",
    "PEVInfo",
    "PowerStatus",
    "Registration",
    "SelfDevice",
    "SupportedLocale",
    "SupportedLocaleList",
    "Temperature",
    "Time",
]

PollRate = Annotated[UInt32 | None, Attr]
"""The function set's recommended polling period in seconds (absent: 900)."""


class FunctionSetAssignmentsBase(Resource):
    """The function set instances a device should use (the links DeviceCapability and each FSA share)."""

    CustomerAccountListLink: ListLink | None = None
    DemandResponseProgramListLink: ListLink | None = None
    DERProgramListLink: ListLink | None = None
    FileListLink: ListLink | None = None
    MessagingProgramListLink: ListLink | None = None
    PrepaymentListLink: ListLink | None = None
    ResponseSetListLink: ListLink | None = None
    TariffProfileListLink: ListLink | None = None
    TimeLink: Link | None = None
    UsagePointListLink: ListLink | None = None


class DeviceCapability(FunctionSetAssignmentsBase):
    """The entry point a client finds by DNS-SD (``/dcap``)."""

    EndDeviceListLink: ListLink | None = None
    MirrorUsagePointListLink: ListLink | None = None
    SelfDeviceLink: Link | None = None
    pollRate: PollRate = None


class FunctionSetAssignments(FunctionSetAssignmentsBase):
    mRID: MRIDType
    description: String32 | None = None
    version: VersionType | None = None
    subscribable: Annotated[SubscribableType | None, Attr] = None


class FunctionSetAssignmentsList(SubscribableList):
    FunctionSetAssignments: Many[FunctionSetAssignments]
    pollRate: PollRate = None


class Time(Resource):
    """The server's clock; ``quality`` 3 (NTP) .. 7 (uncoordinated)."""

    currentTime: TimeType
    dstEndTime: TimeType
    dstOffset: TimeOffsetType
    dstStartTime: TimeType
    localTime: TimeType | None = None
    quality: UInt8
    tzOffset: TimeOffsetType
    pollRate: PollRate = None


class AbstractDevice(SubscribableResource):
    ConfigurationLink: Link | None = None
    DERListLink: ListLink | None = None
    deviceCategory: DeviceCategoryType | None = None
    DeviceInformationLink: Link | None = None
    DeviceStatusLink: Link | None = None
    FileStatusLink: Link | None = None
    IPInterfaceListLink: ListLink | None = None
    lFDI: HexBinary160 | None = None
    LoadShedAvailabilityListLink: ListLink | None = None
    LogEventListLink: ListLink | None = None
    PowerStatusLink: Link | None = None
    sFDI: SFDIType


class EndDevice(AbstractDevice):
    changedTime: TimeType
    enabled: bool | None = None
    FlowReservationRequestListLink: ListLink | None = None
    FlowReservationResponseListLink: ListLink | None = None
    FunctionSetAssignmentsListLink: ListLink | None = None
    postRate: UInt32 | None = None
    RegistrationLink: Link | None = None
    SubscriptionListLink: ListLink | None = None


class EndDeviceList(SubscribableList):
    EndDevice: Many[EndDevice]
    pollRate: PollRate = None


class SelfDevice(AbstractDevice):
    pollRate: PollRate = None


class Registration(Resource):
    dateTimeRegistered: TimeType
    pIN: PINType
    pollRate: PollRate = None


class GPSLocationType(Sep2Model):
    lat: String32
    lon: String32


class DRLCCapabilities(Sep2Model):
    averageEnergy: RealEnergy
    maxDemand: ActivePower
    optionsImplemented: HexBinary32


class DeviceInformation(Resource):
    DRLCCapabilities: Opt[DRLCCapabilities]
    functionsImplemented: HexBinary64 | None = None
    gpsLocation: GPSLocationType | None = None
    lFDI: HexBinary160
    mfDate: TimeType
    mfHwVer: String32
    mfID: PENType
    mfInfo: String32 | None = None
    mfModel: String32
    mfSerNum: String32
    primaryPower: UInt8
    secondaryPower: UInt8
    SupportedLocaleListLink: ListLink | None = None
    swActTime: TimeType
    swVer: String32
    pollRate: PollRate = None


class SupportedLocale(Resource):
    locale: LocaleType


class SupportedLocaleList(List):
    SupportedLocale: Many[SupportedLocale]


class Temperature(Sep2Model):
    """Degrees Celsius x 10^multiplier; ``subject`` 0 enclosure, 1 transformer, 2 heat sink."""

    multiplier: PowerOfTenMultiplierType
    subject: UInt8
    value: Int16


class DeviceStatus(Resource):
    changedTime: TimeType
    onCount: UInt16 | None = None
    opState: UInt8 | None = None
    opTime: UInt32 | None = None
    Temperature: Many[Temperature]
    TimeLink: Link | None = None
    pollRate: PollRate = None


class PEVInfo(Sep2Model):
    chargingPowerNow: ActivePower
    energyRequestNow: RealEnergy
    maxForwardPower: ActivePower
    minimumChargingDuration: UInt32
    targetStateOfCharge: PerCent
    timeChargeIsNeeded: TimeType
    timeChargingStatusPEV: TimeType


class PowerStatus(Resource):
    batteryStatus: UInt8
    changedTime: TimeType
    currentPowerSource: UInt8
    estimatedChargeRemaining: PerCent | None = None
    estimatedTimeRemaining: UInt32 | None = None
    PEVInfo: Opt[PEVInfo]
    sessionTimeOnBattery: UInt32 | None = None
    totalTimeOnBattery: UInt32 | None = None
    pollRate: PollRate = None


class LogEvent(Resource):
    """A significant event a device records (``functionSet`` 11 is DER; ``profileID`` 2 is IEEE 2030.5)."""

    createdDateTime: TimeType
    details: String32 | None = None
    extendedData: UInt32 | None = None
    functionSet: UInt8
    logEventCode: UInt8
    logEventID: UInt16
    logEventPEN: PENType
    profileID: UInt8


class LogEventList(SubscribableList):
    LogEvent: Many[LogEvent]
    pollRate: PollRate = None
