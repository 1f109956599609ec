"""The XSD of our ``gw:extension`` namespace (:data:`GW_NS`), for validating what the codec writes against the
CTS schemas.

The CTS types have no wildcard, so what they have no slot for travels in ``gw:extension``, carried by types of
ours derived by extension from the CTS types and named by ``xsi:type``; this schema declares those types, our
party registration info and the position payloads (which have no CTS XSD). It is written from the same tables
the codec reads and writes with, so it cannot drift from them.
"""

from __future__ import annotations

from gateway.protocols.ei.xml_names import _EXT_FIELDS, _ROOTS, GW_NS, NAMESPACES, Dialect

_EXTENDED_TYPES = (
    "ei:EiTenderType",
    "ei:EiQuoteType",
    "ei:EiTransactionType",
    "emix:DeliveryType",
    "ei:EiDeliveryType",
    *sorted({f"pyld:{r[5].upper()}{r[6:]}Type" for r in _ROOTS.values() if r.startswith("pyld:")}),
)


def extension_schema(dialect: Dialect = Dialect.EI10) -> bytes:
    """The XSD of :data:`GW_NS` for ``dialect``: the types our ``xsi:type`` names, the party registration info
    and the position payloads. It imports the EI, EI payload and EMIX namespaces without a location: load it
    after the CTS schemas (e.g. last in a driver schema that imports them)."""
    ns = NAMESPACES[dialect]
    unbounded = ' maxOccurs="unbounded"'
    ext_fields = "".join(
        f'<xs:element name="{name}" type="{kind}" minOccurs="0"{unbounded if name == "tenderID" else ""}/>'
        for name, kind in _EXT_FIELDS
    )
    extended = "".join(
        f'<xs:complexType name="{base.partition(":")[2]}"><xs:complexContent><xs:extension base="{base}">'
        f'<xs:sequence><xs:element ref="gw:extension" minOccurs="0"/></xs:sequence>'
        f"</xs:extension></xs:complexContent></xs:complexType>"
        for base in _EXTENDED_TYPES
    )
    opt = 'minOccurs="0"'
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:gw="{GW_NS}" xmlns:ei="{ns["ei"]}"
    xmlns:pyld="{ns["pyld"]}" xmlns:emix="{ns["emix"]}" targetNamespace="{GW_NS}" elementFormDefault="qualified">
  <xs:import namespace="{ns["ei"]}"/>
  <xs:import namespace="{ns["pyld"]}"/>
  <xs:import namespace="{ns["emix"]}"/>
  <xs:element name="extension">
    <xs:complexType><xs:sequence>{ext_fields}
      <xs:element ref="ei:eiTransaction" minOccurs="0" maxOccurs="unbounded"/>
    </xs:sequence></xs:complexType>
  </xs:element>
  {extended}
  <xs:complexType name="PartyRegistrationInfoType"><xs:complexContent>
    <xs:extension base="ei:EiRegistrationInfoType"><xs:sequence>
      <xs:element name="partyID" type="xs:string"/>
      <xs:element name="name" type="xs:string"/>
      <xs:element name="role" type="xs:string" maxOccurs="unbounded"/>
      <xs:element name="identity" minOccurs="0" maxOccurs="unbounded"><xs:complexType><xs:sequence>
        <xs:element name="kind" type="xs:string"/><xs:element name="value" type="xs:string"/>
      </xs:sequence></xs:complexType></xs:element>
      <xs:element name="createdDateTime" type="xs:dateTime"/>
    </xs:sequence></xs:extension>
  </xs:complexContent></xs:complexType>
  <xs:element name="eiRequestPosition"><xs:complexType><xs:sequence>
    <xs:element ref="pyld:requestID"/>
    <xs:element name="partyID" type="xs:string" {opt}/>
    <xs:element name="counterPartyID" type="xs:string" {opt}/>
    <xs:element name="marketContext" type="xs:string" {opt}/>
    <xs:element name="start" type="xs:dateTime" {opt}/>
    <xs:element name="end" type="xs:dateTime" {opt}/>
  </xs:sequence></xs:complexType></xs:element>
  <xs:element name="eiReplyPosition"><xs:complexType><xs:sequence>
    <xs:element ref="ei:eiResponse"/>
    <xs:element name="partyID" type="xs:string" {opt}/>
    <xs:element name="counterPartyID" type="xs:string" {opt}/>
    <xs:element name="position" minOccurs="0" maxOccurs="unbounded"><xs:complexType><xs:sequence>
      <xs:element name="partyID" type="xs:string"/>
      <xs:element name="marketContext" type="xs:string"/>
      <xs:element name="locationID" type="xs:string"/>
      <xs:element name="productType" type="xs:string"/>
      <xs:element name="dtStart" type="xs:dateTime"/>
      <xs:element name="duration" type="xs:string"/>
      <xs:element name="timeZone" type="xs:string" {opt}/>
      <xs:element name="quantity" type="xs:decimal"/>
      <xs:element name="cost" type="xs:decimal"/>
      <xs:element name="currency" type="xs:string"/>
      <xs:element name="quantityUnit" type="xs:string"/>
      <xs:element name="pricePer" type="xs:string"/>
      <xs:element name="asOf" type="xs:dateTime"/>
    </xs:sequence></xs:complexType></xs:element>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>
""".encode()
