"""IEEE 2030.5-2018 DER function set: programs, controls (event and default), curves, and the DER's own
capability, settings, status and availability.

DERControlBase carries the CSIP-AUS dynamic operating envelope modes (opModImpLimW, opModExpLimW, opModGenLimW,
opModLoadLimW) after rampTms, as the CSIP-AUS schema's redefinition appends them. They are the one extension the
codec understands: read from the CSIP-AUS namespace (``https://csipaus.org/ns`` and its versioned successors),
written in ``https://csipaus.org/ns`` with the ``csipaus`` prefix. Any other extension element is skipped on
input (see ``codec``).

Conventions (names, order, attributes, ``Opt`` / ``Many``) as in :mod:`models_common`.
"""

from typing import Annotated

from pydantic import Field

from gateway.protocols.ieee2030_5.models_common import (
    ActivePower,
    AmpereHour,
    ApparentPower,
    CurrentRMS,
    DERCurveLink,
    FixedVar,
    IdentifiedObject,
    Link,
    List,
    ListLink,
    PowerFactor,
    PowerFactorWithExcitation,
    RandomizableEvent,
    ReactivePower,
    ReactiveSusceptance,
    Resource,
    SubscribableIdentifiedObject,
    SubscribableList,
    SubscribableResource,
    VoltageRMS,
    WattHour,
)
from gateway.protocols.ieee2030_5.models_types import (
    Attr,
    DeviceCategoryType,
    HexBinary8,
    HexBinary32,
    Int16,
    Int32,
    Many,
    PerCent,
    PowerOfTenMultiplierType,
    PrimacyType,
    SignedPerCent,
    String6,
    TimeType,
    UInt8,
    UInt16,
    UInt32,
)
from gateway.protocols.ieee2030_5.xmlbind import CSIPAUS_NS, CSIPAUS_NS_ALIASES, Sep2Model, XmlNs

__all__ = [
    "DER",
    "ConnectStatusType",
    "CurveData",
    "DERAvailability",
    "DERCapability",
    "DERControl",
    "DERControlBase",
    "DERControlList",
    "DERCurve",
    "DERCurveList",
    "DERList",
    "DERProgram",
    "DERProgramList",
    "DERSettings",
    "DERStatus",
    "DefaultDERControl",
    "FreqDroopType",
    "InverterStatusType",
    "LocalControlModeStatusType",
    "ManufacturerStatusType",
    "OperationalModeStatusType",
    "StateOfChargeStatusType",
    "StorageModeStatusType",
]

PollRate = Annotated[UInt32 | None, Attr]
CsipAusPower = Annotated[ActivePower | None, XmlNs(CSIPAUS_NS, "csipaus", CSIPAUS_NS_ALIASES)]
"""A CSIP-AUS envelope limit: an ActivePower element in the CSIP-AUS namespace."""


class FreqDroopType(Sep2Model):
    """Frequency-watt parameters: dead bands in thousandths of Hz, droops in thousandths, time in 1/100 s."""

    dBOF: UInt32
    dBUF: UInt32
    kOF: UInt16
    kUF: UInt16
    openLoopTms: UInt16


class DERControlBase(Sep2Model):
    """The control modes of a DERControl or DefaultDERControl. Percentages are hundredths (opModMaxLimW of
    %setMaxW; opModFixedW signed, negative charges); curve modes link a DERCurve; rampTms is in 1/100 s."""

    opModConnect: bool | None = None
    opModEnergize: bool | None = None
    opModFixedPFAbsorbW: PowerFactorWithExcitation | None = None
    opModFixedPFInjectW: PowerFactorWithExcitation | None = None
    opModFixedVar: FixedVar | None = None
    opModFixedW: SignedPerCent | None = None
    opModFreqDroop: FreqDroopType | None = None
    opModFreqWatt: DERCurveLink | None = None
    opModHFRTMayTrip: DERCurveLink | None = None
    opModHFRTMustTrip: DERCurveLink | None = None
    opModHVRTMayTrip: DERCurveLink | None = None
    opModHVRTMomentaryCessation: DERCurveLink | None = None
    opModHVRTMustTrip: DERCurveLink | None = None
    opModLFRTMayTrip: DERCurveLink | None = None
    opModLFRTMustTrip: DERCurveLink | None = None
    opModLVRTMayTrip: DERCurveLink | None = None
    opModLVRTMomentaryCessation: DERCurveLink | None = None
    opModLVRTMustTrip: DERCurveLink | None = None
    opModMaxLimW: PerCent | None = None
    opModTargetVar: ReactivePower | None = None
    opModTargetW: ActivePower | None = None
    opModVoltVar: DERCurveLink | None = None
    opModVoltWatt: DERCurveLink | None = None
    opModWattPF: DERCurveLink | None = None
    opModWattVar: DERCurveLink | None = None
    rampTms: UInt16 | None = None
    # CSIP-AUS dynamic operating envelope (site import / export, device generation / load limits), in watts
    opModImpLimW: CsipAusPower = None
    opModExpLimW: CsipAusPower = None
    opModGenLimW: CsipAusPower = None
    opModLoadLimW: CsipAusPower = None


class DERControl(RandomizableEvent):
    DERControlBase: DERControlBase
    deviceCategory: DeviceCategoryType | None = None


class DERControlList(SubscribableList):
    DERControl: Many[DERControl]


class DefaultDERControl(SubscribableIdentifiedObject):
    """What the DER does when no DERControl is active; the set* values update its DERSettings."""

    DERControlBase: DERControlBase
    setESDelay: UInt32 | None = None
    setESHighFreq: UInt16 | None = None
    setESHighVolt: Int16 | None = None
    setESLowFreq: UInt16 | None = None
    setESLowVolt: Int16 | None = None
    setESRampTms: UInt32 | None = None
    setESRandomDelay: UInt32 | None = None
    setGradW: UInt16 | None = None
    setSoftGradW: UInt16 | None = None


class DERProgram(SubscribableIdentifiedObject):
    """Lower ``primacy`` wins."""

    ActiveDERControlListLink: ListLink | None = None
    DefaultDERControlLink: Link | None = None
    DERControlListLink: ListLink | None = None
    DERCurveListLink: ListLink | None = None
    primacy: PrimacyType


class DERProgramList(SubscribableList):
    DERProgram: Many[DERProgram]
    pollRate: PollRate = None


class CurveData(Sep2Model):
    """One point; ``excitation`` only when y is a power factor."""

    excitation: bool | None = None
    xvalue: Int32
    yvalue: Int32


class DERCurve(IdentifiedObject):
    """``curveType`` 0..14 names the opMod it serves (11 volt-var, 12 volt-watt); x and y are scaled by 10^x/
    yMultiplier; ``yRefType`` gives the y percentage's reference (1 %setMaxW, 2 %setMaxVar, 3 %statVarAvail...)."""

    autonomousVRefEnable: bool | None = None
    autonomousVRefTimeConstant: UInt32 | None = None
    creationTime: TimeType
    CurveData: Annotated[list[CurveData], Field(min_length=1, max_length=10)]
    curveType: UInt8
    openLoopTms: UInt16 | None = None
    rampDecTms: UInt16 | None = None
    rampIncTms: UInt16 | None = None
    rampPT1Tms: UInt16 | None = None
    vRef: PerCent | None = None
    xMultiplier: PowerOfTenMultiplierType
    yMultiplier: PowerOfTenMultiplierType
    yRefType: UInt8


class DERCurveList(List):
    DERCurve: Many[DERCurve]


class DER(SubscribableResource):
    AssociatedDERProgramListLink: ListLink | None = None
    AssociatedUsagePointLink: Link | None = None
    CurrentDERProgramLink: Link | None = None
    DERAvailabilityLink: Link | None = None
    DERCapabilityLink: Link | None = None
    DERSettingsLink: Link | None = None
    DERStatusLink: Link | None = None


class DERList(List):
    DER: Many[DER]
    pollRate: PollRate = None


class DERCapability(Resource):
    """Nameplate ratings; ``modesSupported`` is the DERControlType bit map (bit 20 opModMaxLimW...)."""

    modesSupported: HexBinary32
    rtgAbnormalCategory: UInt8 | None = None
    rtgMaxA: CurrentRMS | None = None
    rtgMaxAh: AmpereHour | None = None
    rtgMaxChargeRateVA: ApparentPower | None = None
    rtgMaxChargeRateW: ActivePower | None = None
    rtgMaxDischargeRateVA: ApparentPower | None = None
    rtgMaxDischargeRateW: ActivePower | None = None
    rtgMaxV: VoltageRMS | None = None
    rtgMaxVA: ApparentPower | None = None
    rtgMaxVar: ReactivePower | None = None
    rtgMaxVarNeg: ReactivePower | None = None
    rtgMaxW: ActivePower
    rtgMaxWh: WattHour | None = None
    rtgMinPFOverExcited: PowerFactor | None = None
    rtgMinPFUnderExcited: PowerFactor | None = None
    rtgMinV: VoltageRMS | None = None
    rtgNormalCategory: UInt8 | None = None
    rtgOverExcitedPF: PowerFactor | None = None
    rtgOverExcitedW: ActivePower | None = None
    rtgReactiveSusceptance: ReactiveSusceptance | None = None
    rtgUnderExcitedPF: PowerFactor | None = None
    rtgUnderExcitedW: ActivePower | None = None
    rtgVNom: VoltageRMS | None = None
    type: UInt8


class DERSettings(SubscribableResource):
    modesEnabled: HexBinary32 | None = None
    setESDelay: UInt32 | None = None
    setESHighFreq: UInt16 | None = None
    setESHighVolt: Int16 | None = None
    setESLowFreq: UInt16 | None = None
    setESLowVolt: Int16 | None = None
    setESRampTms: UInt32 | None = None
    setESRandomDelay: UInt32 | None = None
    setGradW: UInt16
    setMaxA: CurrentRMS | None = None
    setMaxAh: AmpereHour | None = None
    setMaxChargeRateVA: ApparentPower | None = None
    setMaxChargeRateW: ActivePower | None = None
    setMaxDischargeRateVA: ApparentPower | None = None
    setMaxDischargeRateW: ActivePower | None = None
    setMaxV: VoltageRMS | None = None
    setMaxVA: ApparentPower | None = None
    setMaxVar: ReactivePower | None = None
    setMaxVarNeg: ReactivePower | None = None
    setMaxW: ActivePower
    setMaxWh: WattHour | None = None
    setMinPFOverExcited: PowerFactor | None = None
    setMinPFUnderExcited: PowerFactor | None = None
    setMinV: VoltageRMS | None = None
    setSoftGradW: UInt16 | None = None
    setVNom: VoltageRMS | None = None
    setVRef: VoltageRMS | None = None
    setVRefOfs: VoltageRMS | None = None
    updatedTime: TimeType


class ConnectStatusType(Sep2Model):
    """Bit map: 0 connected, 1 available, 2 operating, 3 test, 4 fault."""

    dateTime: TimeType
    value: HexBinary8


class InverterStatusType(Sep2Model):
    dateTime: TimeType
    value: UInt8


class LocalControlModeStatusType(Sep2Model):
    dateTime: TimeType
    value: UInt8


class ManufacturerStatusType(Sep2Model):
    dateTime: TimeType
    value: String6


class OperationalModeStatusType(Sep2Model):
    dateTime: TimeType
    value: UInt8


class StateOfChargeStatusType(Sep2Model):
    dateTime: TimeType
    value: PerCent


class StorageModeStatusType(Sep2Model):
    dateTime: TimeType
    value: UInt8


class DERStatus(SubscribableResource):
    alarmStatus: HexBinary32 | None = None
    genConnectStatus: ConnectStatusType | None = None
    inverterStatus: InverterStatusType | None = None
    localControlModeStatus: LocalControlModeStatusType | None = None
    manufacturerStatus: ManufacturerStatusType | None = None
    operationalModeStatus: OperationalModeStatusType | None = None
    readingTime: TimeType
    stateOfChargeStatus: StateOfChargeStatusType | None = None
    storageModeStatus: StorageModeStatusType | None = None
    storConnectStatus: ConnectStatusType | None = None


class DERAvailability(SubscribableResource):
    availabilityDuration: UInt32 | None = None
    maxChargeDuration: UInt32 | None = None
    readingTime: TimeType
    reserveChargePercent: PerCent | None = None
    reservePercent: PerCent | None = None
    statVarAvail: ReactivePower | None = None
    statWAvail: ActivePower | None = None
