"""Clark names ({namespace}local) of the 2.0b elements the codec reads and writes, computed once.

The reader compares ``element.tag`` against these strings and the writer hands them to ``SubElement``; spelling a
namespace inline at each use would cost a string build per element and hide typos until a message fails the schema.
Names follow the XSD's prefixes: ``EI_EVENT_ID`` is ei:eventID, ``OADR_REPORT`` is oadr:oadrReport.
"""

from __future__ import annotations

from typing import Final

from gateway.protocols.openadr2b.messages import Payload

NS_OADR: Final = "http://openadr.org/oadr-2.0b/2012/07"
NS_EI: Final = "http://docs.oasis-open.org/ns/energyinterop/201110"
NS_PYLD: Final = "http://docs.oasis-open.org/ns/energyinterop/201110/payloads"
NS_EMIX: Final = "http://docs.oasis-open.org/ns/emix/2011/06"
NS_POWER: Final = "http://docs.oasis-open.org/ns/emix/2011/06/power"
NS_SCALE: Final = "http://docs.oasis-open.org/ns/emix/2011/06/siscale"
NS_XCAL: Final = "urn:ietf:params:xml:ns:icalendar-2.0"
NS_STRM: Final = "urn:ietf:params:xml:ns:icalendar-2.0:stream"
NS_DS: Final = "http://www.w3.org/2000/09/xmldsig#"

# the prefixes written on the envelope (oadr: only) and on the signed object (all), so nothing below redeclares
ENVELOPE_NSMAP: Final = {"oadr": NS_OADR}
NSMAP: Final = {
    "oadr": NS_OADR,
    "ei": NS_EI,
    "pyld": NS_PYLD,
    "emix": NS_EMIX,
    "power": NS_POWER,
    "scale": NS_SCALE,
    "xcal": NS_XCAL,
    "strm": NS_STRM,
}


def _in(namespace: str) -> str:
    return "{" + namespace + "}"


_O, _E, _P, _M = _in(NS_OADR), _in(NS_EI), _in(NS_PYLD), _in(NS_EMIX)
_W, _S, _X, _T = _in(NS_POWER), _in(NS_SCALE), _in(NS_XCAL), _in(NS_STRM)

# envelope
OADR_PAYLOAD: Final = _O + "oadrPayload"
OADR_SIGNED_OBJECT: Final = _O + "oadrSignedObject"
OADR_ID_ATTR: Final = _O + "Id"
EI_SCHEMA_VERSION_ATTR: Final = _E + "schemaVersion"
DS_SIGNATURE: Final = _in(NS_DS) + "Signature"

# the payload element of each payload, both ways
PAYLOAD_TAG: Final = {payload: _O + payload.value for payload in Payload}
PAYLOAD_OF_TAG: Final = {tag: payload for payload, tag in PAYLOAD_TAG.items()}

# pyld:
PYLD_REQUEST_ID: Final = _P + "requestID"
PYLD_REPLY_LIMIT: Final = _P + "replyLimit"
PYLD_EI_REQUEST_EVENT: Final = _P + "eiRequestEvent"
PYLD_EI_CREATED_EVENT: Final = _P + "eiCreatedEvent"
PYLD_REPORT_TO_FOLLOW: Final = _P + "reportToFollow"

# ei: responses and identities
EI_RESPONSE: Final = _E + "eiResponse"
EI_RESPONSE_CODE: Final = _E + "responseCode"
EI_RESPONSE_DESCRIPTION: Final = _E + "responseDescription"
EI_VEN_ID: Final = _E + "venID"
EI_VTN_ID: Final = _E + "vtnID"
EI_REGISTRATION_ID: Final = _E + "registrationID"
EI_CREATED_DATE_TIME: Final = _E + "createdDateTime"

# ei: events
EI_EVENT: Final = _E + "eiEvent"
EI_EVENT_DESCRIPTOR: Final = _E + "eventDescriptor"
EI_EVENT_ID: Final = _E + "eventID"
EI_MODIFICATION_NUMBER: Final = _E + "modificationNumber"
EI_MODIFICATION_DATE_TIME: Final = _E + "modificationDateTime"
EI_MODIFICATION_REASON: Final = _E + "modificationReason"
EI_PRIORITY: Final = _E + "priority"
EI_MARKET_CONTEXT: Final = _E + "eiMarketContext"
EI_EVENT_STATUS: Final = _E + "eventStatus"
EI_TEST_EVENT: Final = _E + "testEvent"
EI_VTN_COMMENT: Final = _E + "vtnComment"
EI_ACTIVE_PERIOD: Final = _E + "eiActivePeriod"
EI_X_NOTIFICATION: Final = _E + "x-eiNotification"
EI_X_RAMP_UP: Final = _E + "x-eiRampUp"
EI_X_RECOVERY: Final = _E + "x-eiRecovery"
EI_EVENT_SIGNALS: Final = _E + "eiEventSignals"
EI_EVENT_SIGNAL: Final = _E + "eiEventSignal"
EI_EVENT_BASELINE: Final = _E + "eiEventBaseline"
EI_BASELINE_ID: Final = _E + "baselineID"
EI_BASELINE_NAME: Final = _E + "baselineName"
EI_SIGNAL_NAME: Final = _E + "signalName"
EI_SIGNAL_TYPE: Final = _E + "signalType"
EI_SIGNAL_ID: Final = _E + "signalID"
EI_CURRENT_VALUE: Final = _E + "currentValue"
EI_INTERVAL: Final = _E + "interval"
EI_SIGNAL_PAYLOAD: Final = _E + "signalPayload"
EI_PAYLOAD_FLOAT: Final = _E + "payloadFloat"
EI_VALUE: Final = _E + "value"
EI_EVENT_RESPONSES: Final = _E + "eventResponses"
EI_EVENT_RESPONSE: Final = _E + "eventResponse"
EI_QUALIFIED_EVENT_ID: Final = _E + "qualifiedEventID"
EI_OPT_TYPE: Final = _E + "optType"

# ei: targets
EI_TARGET: Final = _E + "eiTarget"
EI_GROUP_ID: Final = _E + "groupID"
EI_GROUP_NAME: Final = _E + "groupName"
EI_RESOURCE_ID: Final = _E + "resourceID"
EI_PARTY_ID: Final = _E + "partyID"
POWER_AGGREGATED_PNODE: Final = _W + "aggregatedPnode"
POWER_END_DEVICE_ASSET: Final = _W + "endDeviceAsset"
POWER_METER_ASSET: Final = _W + "meterAsset"
POWER_PNODE: Final = _W + "pnode"
POWER_SERVICE_DELIVERY_POINT: Final = _W + "serviceDeliveryPoint"
POWER_SERVICE_LOCATION: Final = _W + "serviceLocation"
POWER_TRANSPORT_INTERFACE: Final = _W + "transportInterface"
POWER_MRID: Final = _W + "mrid"
POWER_NODE: Final = _W + "node"
EMIX_SERVICE_AREA: Final = _M + "serviceArea"
EMIX_MARKET_CONTEXT: Final = _M + "marketContext"

# ei: opt
EI_OPT_ID: Final = _E + "optID"
EI_OPT_REASON: Final = _E + "optReason"
OADR_DEVICE_CLASS: Final = _O + "oadrDeviceClass"

# ei: reports
EI_REPORT_ID: Final = _E + "eiReportID"
EI_REPORT_REQUEST_ID: Final = _E + "reportRequestID"
EI_REPORT_SPECIFIER_ID: Final = _E + "reportSpecifierID"
EI_REPORT_NAME: Final = _E + "reportName"
EI_REPORT_SPECIFIER: Final = _E + "reportSpecifier"
EI_REPORT_BACK_DURATION: Final = _E + "reportBackDuration"
EI_REPORT_INTERVAL: Final = _E + "reportInterval"
EI_SPECIFIER_PAYLOAD: Final = _E + "specifierPayload"
EI_R_ID: Final = _E + "rID"
EI_REPORT_SUBJECT: Final = _E + "reportSubject"
EI_REPORT_DATA_SOURCE: Final = _E + "reportDataSource"
EI_REPORT_TYPE: Final = _E + "reportType"
EI_READING_TYPE: Final = _E + "readingType"
EI_CONFIDENCE: Final = _E + "confidence"
EI_ACCURACY: Final = _E + "accuracy"

# oadr: element children of the payloads
OADR_EVENT: Final = _O + "oadrEvent"
OADR_RESPONSE_REQUIRED: Final = _O + "oadrResponseRequired"
OADR_PROFILE_NAME: Final = _O + "oadrProfileName"
OADR_TRANSPORT_NAME: Final = _O + "oadrTransportName"
OADR_TRANSPORT_ADDRESS: Final = _O + "oadrTransportAddress"
OADR_REPORT_ONLY: Final = _O + "oadrReportOnly"
OADR_XML_SIGNATURE: Final = _O + "oadrXmlSignature"
OADR_VEN_NAME: Final = _O + "oadrVenName"
OADR_HTTP_PULL_MODEL: Final = _O + "oadrHttpPullModel"
OADR_PROFILES: Final = _O + "oadrProfiles"
OADR_PROFILE: Final = _O + "oadrProfile"
OADR_TRANSPORTS: Final = _O + "oadrTransports"
OADR_TRANSPORT: Final = _O + "oadrTransport"
OADR_POLL_FREQ: Final = _O + "oadrRequestedOadrPollFreq"
OADR_REPORT: Final = _O + "oadrReport"
OADR_REPORT_REQUEST: Final = _O + "oadrReportRequest"
OADR_REPORT_DESCRIPTION: Final = _O + "oadrReportDescription"
OADR_SAMPLING_RATE: Final = _O + "oadrSamplingRate"
OADR_MIN_PERIOD: Final = _O + "oadrMinPeriod"
OADR_MAX_PERIOD: Final = _O + "oadrMaxPeriod"
OADR_ON_CHANGE: Final = _O + "oadrOnChange"
OADR_REPORT_PAYLOAD: Final = _O + "oadrReportPayload"
OADR_DATA_QUALITY: Final = _O + "oadrDataQuality"
OADR_PENDING_REPORTS: Final = _O + "oadrPendingReports"
OADR_CANCEL_REPORT: Final = PAYLOAD_TAG[Payload.CANCEL_REPORT]

# xcal: and strm: (times)
XCAL_PROPERTIES: Final = _X + "properties"
XCAL_COMPONENTS: Final = _X + "components"
XCAL_DTSTART: Final = _X + "dtstart"
XCAL_DATE_TIME: Final = _X + "date-time"
XCAL_DURATION: Final = _X + "duration"
XCAL_TOLERANCE: Final = _X + "tolerance"
XCAL_TOLERATE: Final = _X + "tolerate"
XCAL_STARTAFTER: Final = _X + "startafter"
XCAL_UID: Final = _X + "uid"
XCAL_TEXT: Final = _X + "text"
XCAL_VAVAILABILITY: Final = _X + "vavailability"
XCAL_AVAILABLE: Final = _X + "available"
XCAL_GRANULARITY: Final = _X + "granularity"
STRM_INTERVALS: Final = _T + "intervals"

# units: emix:itemBase's substitution group. The element name is ItemUnit.kind; its children live in the
# namespace of the schema that defines the unit (oadr: or power:).
UNIT_NAMESPACE: Final = {
    **{
        kind: NS_OADR
        for kind in (
            "customUnit",
            "current",
            "currency",
            "currencyPerKWh",
            "currencyPerKW",
            "currencyPerThm",
            "frequency",
            "Therm",
            "temperature",
            "pulseCount",
        )
    },
    **{
        kind: NS_POWER
        for kind in (
            "voltage",
            "energyApparent",
            "energyReactive",
            "energyReal",
            "powerApparent",
            "powerReactive",
            "powerReal",
        )
    },
}
UNIT_KIND_OF_TAG: Final = {_in(namespace) + kind: kind for kind, namespace in UNIT_NAMESPACE.items()}
# itemDescription, itemUnits of each unit element, by its namespace
UNIT_DESCRIPTION: Final = {NS_OADR: _O + "itemDescription", NS_POWER: _W + "itemDescription"}
UNIT_UNITS: Final = {NS_OADR: _O + "itemUnits", NS_POWER: _W + "itemUnits"}
POWER_KINDS: Final = frozenset({"powerApparent", "powerReactive", "powerReal"})
SCALE_SI_SCALE_CODE: Final = _S + "siScaleCode"
OADR_GB_DATA_DESCRIPTION: Final = _O + "oadrGBDataDescription"
UNIT_DESCRIPTION_TAGS: Final = frozenset(UNIT_DESCRIPTION.values())
UNIT_UNITS_TAGS: Final = frozenset(UNIT_UNITS.values())
OADR_PULSE_FACTOR: Final = _O + "pulseFactor"
POWER_ATTRIBUTES: Final = _W + "powerAttributes"
POWER_HERTZ: Final = _W + "hertz"
POWER_VOLTAGE: Final = _W + "voltage"
POWER_AC: Final = _W + "ac"
