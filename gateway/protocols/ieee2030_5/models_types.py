"""IEEE 2030.5-2018 simple types as ``Annotated`` Python types: bounded integers, hex binaries, bounded strings.

Each follows the XSD's restriction of its base type, so pydantic refuses what the schema refuses: UInt8..UInt64
and Int8..Int64 carry their ranges, HexBinaryN at most N/8 octets (held in upper case), StringN at most N
characters. A few are narrower than their base where the standard's text fixes the range and a server should
enforce it: PerCent (0..10000 hundredths), SignedPerCent (-10000..10000), OneHourRangeType (-3600..3600 s),
PINType (six digits).
"""

from typing import Annotated, TypeVar

from pydantic import Field

from gateway.protocols.ieee2030_5.xmlbind import AnyUri, Hex, Text, XmlAttr

__all__ = [
    "AnyURI",
    "Attr",
    "DeviceCategoryType",
    "HexBinary8",
    "HexBinary16",
    "HexBinary32",
    "HexBinary48",
    "HexBinary64",
    "HexBinary128",
    "HexBinary160",
    "Int8",
    "Int16",
    "Int32",
    "Int48",
    "Int64",
    "LocaleType",
    "MRIDType",
    "Many",
    "OneHourRangeType",
    "Opt",
    "PENType",
    "PINType",
    "PerCent",
    "PowerOfTenMultiplierType",
    "PrimacyType",
    "SFDIType",
    "SignedPerCent",
    "String6",
    "String16",
    "String20",
    "String32",
    "String42",
    "String192",
    "SubscribableType",
    "TimeOffsetType",
    "TimeType",
    "UInt8",
    "UInt16",
    "UInt32",
    "UInt48",
    "UInt64",
    "VersionType",
]

Attr = XmlAttr()
"""Shorthand marker: ``href: Annotated[AnyURI | None, Attr] = None``."""

_Item = TypeVar("_Item")
Opt = Annotated[_Item | None, Field(default=None)]
"""An optional element, its default given inside the annotation: ``EventStatus: Opt[EventStatus]``. A field is
often named after its type, and ``Reading: Reading | None = None`` cannot work: Python assigns the default before
it evaluates the annotation, which then sees ``None`` instead of the class."""
Many = Annotated[list[_Item], Field(default_factory=list)]
"""A repeated element (maxOccurs unbounded), absent as an empty list: ``DERControl: Many[DERControl]``."""

UInt8 = Annotated[int, Field(ge=0, le=2**8 - 1)]
UInt16 = Annotated[int, Field(ge=0, le=2**16 - 1)]
UInt32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
UInt48 = Annotated[int, Field(ge=0, le=2**48 - 1)]
UInt64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
Int8 = Annotated[int, Field(ge=-(2**7), le=2**7 - 1)]
Int16 = Annotated[int, Field(ge=-(2**15), le=2**15 - 1)]
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
Int48 = Annotated[int, Field(ge=-(2**47), le=2**47)]  # the XSD's bounds, +-2^47 inclusive
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]

HexBinary8 = Annotated[str, Hex(1)]
HexBinary16 = Annotated[str, Hex(2)]
HexBinary32 = Annotated[str, Hex(4)]
HexBinary48 = Annotated[str, Hex(6)]
HexBinary64 = Annotated[str, Hex(8)]
HexBinary128 = Annotated[str, Hex(16)]
HexBinary160 = Annotated[str, Hex(20)]

String6 = Annotated[str, Text(6)]
String16 = Annotated[str, Text(16)]
String20 = Annotated[str, Text(20)]
String32 = Annotated[str, Text(32)]
String42 = Annotated[str, Text(42)]
String192 = Annotated[str, Text(192)]
AnyURI = Annotated[str, AnyUri()]

TimeType = Int64
"""Seconds since 1970-01-01T00:00:00Z, not counting leap seconds."""
TimeOffsetType = Int32
MRIDType = HexBinary128
"""128 bits; the low 32 bits are the owner's IANA Private Enterprise Number."""
DeviceCategoryType = HexBinary32
VersionType = UInt16
PrimacyType = UInt8
SubscribableType = UInt8
PENType = UInt32
PowerOfTenMultiplierType = Int8
LocaleType = String42
PerCent = Annotated[int, Field(ge=0, le=10000)]
"""Hundredths of a percent: 10000 is 100 %."""
SignedPerCent = Annotated[int, Field(ge=-10000, le=10000)]
OneHourRangeType = Annotated[int, Field(ge=-3600, le=3600)]
SFDIType = Annotated[int, Field(ge=0, le=2**40 - 1)]
"""UInt40, as the XSD types it. The standard's text caps an SFDI at 687194767359 (2^36-1 and a check digit),
but its own EndDevice example uses 987654321005; the check digit is the identity layer's business."""
PINType = Annotated[int, Field(ge=0, le=999999)]
