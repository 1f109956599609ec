""":class:`OadrMessage` -> the oadrPayload tree: one writer per payload, the mirror of codec_read.

The envelope is always written in full, oadrPayload / oadrSignedObject (with ``oadr:Id="oadrSignedObject"``, the
id an XML signature's Reference points at, as the 2.0b profile and openleadr use) / the payload with
``ei:schemaVersion="2.0b"``. The envelope declares only the oadr: namespace and the signed object all the
others, once, so no element below redeclares one and the signed object carries every declaration it uses: its
canonical form (what an XML signature digests) is the same in whichever oadr: envelope it travels.
"""

from __future__ import annotations

from collections.abc import Callable

from lxml.etree import Element, SubElement, _Element

from gateway.protocols.openadr2b import codec_names as n
from gateway.protocols.openadr2b.codec_values import OadrEncodeError, write_bool, write_datetime, write_duration
from gateway.protocols.openadr2b.codec_write_parts import (
    event,
    leaf,
    need,
    properties_period,
    report,
    report_request,
    response,
    response_fields,
    target,
)
from gateway.protocols.openadr2b.messages import OadrMessage, Payload, Registration, Target

_Writer = Callable[[_Element, OadrMessage], None]

SIGNED_OBJECT_ID = "oadrSignedObject"


def build(message: OadrMessage) -> _Element:
    """The oadrPayload element (the document root) of ``message``, unsigned."""
    root = Element(n.OADR_PAYLOAD, nsmap=n.ENVELOPE_NSMAP)
    signed = SubElement(root, n.OADR_SIGNED_OBJECT, {n.OADR_ID_ATTR: SIGNED_OBJECT_ID}, nsmap=n.NSMAP)
    payload = SubElement(signed, n.PAYLOAD_TAG[message.payload], {n.EI_SCHEMA_VERSION_ATTR: "2.0b"})
    _WRITERS[message.payload](payload, message)
    return root


def _request_id(parent: _Element, message: OadrMessage) -> None:
    """pyld:requestID; an unknown one is written empty, as answers to unreadable requests must still go out."""
    leaf(parent, n.PYLD_REQUEST_ID, message.request_id or "")


def _optional(parent: _Element, tag: str, value: str | None) -> None:
    if value is not None:
        leaf(parent, tag, value)


def _registration(message: OadrMessage) -> Registration:
    return message.registration or Registration()


# --- registration -----------------------------------------------------------------------------------------------


# requestID, registrationID?, venID?, oadrProfileName, oadrTransportName, oadrTransportAddress?, oadrReportOnly,
# oadrXmlSignature, oadrVenName?, oadrHttpPullModel?
def _create_party_registration(element: _Element, message: OadrMessage) -> None:
    registration = _registration(message)
    _request_id(element, message)
    _optional(element, n.EI_REGISTRATION_ID, registration.registration_id)
    _optional(element, n.EI_VEN_ID, registration.ven_id or message.ven_id)
    leaf(element, n.OADR_PROFILE_NAME, registration.profile_name)
    leaf(element, n.OADR_TRANSPORT_NAME, registration.transport_name)
    _optional(element, n.OADR_TRANSPORT_ADDRESS, registration.transport_address)
    leaf(element, n.OADR_REPORT_ONLY, write_bool(registration.report_only))
    leaf(element, n.OADR_XML_SIGNATURE, write_bool(registration.xml_signature))
    _optional(element, n.OADR_VEN_NAME, registration.ven_name)
    leaf(element, n.OADR_HTTP_PULL_MODEL, write_bool(registration.http_pull_model))


# eiResponse, registrationID?, venID?, vtnID, oadrProfiles, oadrRequestedOadrPollFreq?, (service info, extensions)
def _created_party_registration(element: _Element, message: OadrMessage) -> None:
    registration = _registration(message)
    response(element, message.response, message.request_id)
    _optional(element, n.EI_REGISTRATION_ID, registration.registration_id)
    _optional(element, n.EI_VEN_ID, registration.ven_id or message.ven_id)
    leaf(element, n.EI_VTN_ID, need(registration.vtn_id or message.vtn_id, "oadrCreatedPartyRegistration's vtnID"))
    profile = SubElement(SubElement(element, n.OADR_PROFILES), n.OADR_PROFILE)
    leaf(profile, n.OADR_PROFILE_NAME, registration.profile_name)
    transport = SubElement(SubElement(profile, n.OADR_TRANSPORTS), n.OADR_TRANSPORT)
    leaf(transport, n.OADR_TRANSPORT_NAME, registration.transport_name)
    if registration.poll_freq is not None:
        leaf(SubElement(element, n.OADR_POLL_FREQ), n.XCAL_DURATION, write_duration(registration.poll_freq))


# requestID, registrationID, venID?
def _cancel_party_registration(element: _Element, message: OadrMessage) -> None:
    _request_id(element, message)
    leaf(element, n.EI_REGISTRATION_ID, need(message.registration_id, "the registration_id to cancel"))
    _optional(element, n.EI_VEN_ID, message.ven_id)


# eiResponse, registrationID?, venID?
def _canceled_party_registration(element: _Element, message: OadrMessage) -> None:
    response(element, message.response, message.request_id)
    _optional(element, n.EI_REGISTRATION_ID, message.registration_id)
    _optional(element, n.EI_VEN_ID, message.ven_id)


def _query_registration(element: _Element, message: OadrMessage) -> None:
    _request_id(element, message)


def _ven_only(element: _Element, message: OadrMessage) -> None:
    """oadrPoll and oadrRequestReregistration: venID alone."""
    leaf(element, n.EI_VEN_ID, need(message.ven_id, f"{message.payload.value}'s venID"))


# eiResponse, venID?
def _response(element: _Element, message: OadrMessage) -> None:
    response(element, message.response, message.request_id)
    _optional(element, n.EI_VEN_ID, message.ven_id)


# --- events -----------------------------------------------------------------------------------------------------


# eiResponse?, requestID, vtnID, oadrEvent*
def _distribute_event(element: _Element, message: OadrMessage) -> None:
    if message.response is not None:
        response(element, message.response)
    _request_id(element, message)
    leaf(element, n.EI_VTN_ID, need(message.vtn_id, "oadrDistributeEvent's vtnID"))
    for item in message.events:
        event(element, item)


# eiRequestEvent: requestID, venID, replyLimit?
def _request_event(element: _Element, message: OadrMessage) -> None:
    body = SubElement(element, n.PYLD_EI_REQUEST_EVENT)
    _request_id(body, message)
    leaf(body, n.EI_VEN_ID, need(message.ven_id, "oadrRequestEvent's venID"))
    if message.reply_limit is not None:
        leaf(body, n.PYLD_REPLY_LIMIT, str(message.reply_limit))


# eiCreatedEvent: eiResponse, eventResponses? (eventResponse*: responseCode, responseDescription?, requestID,
# qualifiedEventID, optType), venID
def _created_event(element: _Element, message: OadrMessage) -> None:
    body = SubElement(element, n.PYLD_EI_CREATED_EVENT)
    response(body, message.response, message.request_id)
    if message.event_responses:
        answers = SubElement(body, n.EI_EVENT_RESPONSES)
        for answer in message.event_responses:
            item = SubElement(answers, n.EI_EVENT_RESPONSE)
            response_fields(item, answer.code, answer.description, answer.request_id)
            qualified = SubElement(item, n.EI_QUALIFIED_EVENT_ID)
            leaf(qualified, n.EI_EVENT_ID, answer.event_id)
            leaf(qualified, n.EI_MODIFICATION_NUMBER, str(answer.modification_number))
            leaf(item, n.EI_OPT_TYPE, answer.opt_type.value)
    leaf(body, n.EI_VEN_ID, need(message.ven_id, "oadrCreatedEvent's venID"))


# --- opt --------------------------------------------------------------------------------------------------------


# EiOptType (optID, optType, optReason, marketContext?, venID, vavailability?, createdDateTime), then requestID,
# qualifiedEventID?, eiTarget, oadrDeviceClass?
def _create_opt(element: _Element, message: OadrMessage) -> None:
    opt = need(message.opt, "oadrCreateOpt's opt")
    leaf(element, n.EI_OPT_ID, opt.opt_id)
    leaf(element, n.EI_OPT_TYPE, opt.opt_type.value)
    leaf(element, n.EI_OPT_REASON, opt.opt_reason)
    _optional(element, n.EMIX_MARKET_CONTEXT, opt.market_context)
    leaf(element, n.EI_VEN_ID, need(opt.ven_id or message.ven_id, "oadrCreateOpt's venID"))
    if opt.availability:
        components = SubElement(SubElement(element, n.XCAL_VAVAILABILITY), n.XCAL_COMPONENTS)
        for window in opt.availability:
            properties_period(components, n.XCAL_AVAILABLE, window.start, window.duration)
    leaf(element, n.EI_CREATED_DATE_TIME, write_datetime(opt.created))
    _request_id(element, message)
    if opt.event_id is not None:
        qualified = SubElement(element, n.EI_QUALIFIED_EVENT_ID)
        leaf(qualified, n.EI_EVENT_ID, opt.event_id)
        leaf(qualified, n.EI_MODIFICATION_NUMBER, str(need(opt.modification_number, "the opted event's version")))
    target(element, n.EI_TARGET, opt.target or Target())
    if opt.device_class is not None:
        target(element, n.OADR_DEVICE_CLASS, opt.device_class)


# eiResponse, optID (oadrCreatedOpt) / optID? (oadrCanceledOpt)
def _created_opt(element: _Element, message: OadrMessage) -> None:
    response(element, message.response, message.request_id)
    if message.payload is Payload.CREATED_OPT:
        leaf(element, n.EI_OPT_ID, need(message.opt_id, "oadrCreatedOpt's optID"))
    else:
        _optional(element, n.EI_OPT_ID, message.opt_id)


# requestID, optID, venID
def _cancel_opt(element: _Element, message: OadrMessage) -> None:
    _request_id(element, message)
    leaf(element, n.EI_OPT_ID, need(message.opt_id, "oadrCancelOpt's optID"))
    leaf(element, n.EI_VEN_ID, need(message.ven_id, "oadrCancelOpt's venID"))


# --- reports ----------------------------------------------------------------------------------------------------


# oadrRegisterReport: requestID, oadrReport*, venID?, reportRequestID?; oadrUpdateReport: the same without the last
def _reports(element: _Element, message: OadrMessage) -> None:
    _request_id(element, message)
    for item in message.reports:
        report(element, item)
    _optional(element, n.EI_VEN_ID, message.ven_id)
    if message.payload is Payload.REGISTER_REPORT and message.report_request_ids:
        if len(message.report_request_ids) > 1:
            raise OadrEncodeError("oadrRegisterReport answers at most one report request")
        leaf(element, n.EI_REPORT_REQUEST_ID, message.report_request_ids[0])


# oadrCreateReport: requestID, oadrReportRequest+, venID?; oadrRegisteredReport: eiResponse, oadrReportRequest*, venID?
def _report_requests(element: _Element, message: OadrMessage) -> None:
    if message.payload is Payload.CREATE_REPORT:
        _request_id(element, message)
        if not message.report_requests:
            raise OadrEncodeError("oadrCreateReport needs at least one report request")
    else:
        response(element, message.response, message.request_id)
    for item in message.report_requests:
        report_request(element, item)
    _optional(element, n.EI_VEN_ID, message.ven_id)


# eiResponse, oadrPendingReports (reportRequestID*), venID?
def _pending_reports(element: _Element, message: OadrMessage) -> None:
    response(element, message.response, message.request_id)
    pending = SubElement(element, n.OADR_PENDING_REPORTS)
    for report_request_id in message.report_request_ids:
        leaf(pending, n.EI_REPORT_REQUEST_ID, report_request_id)
    _optional(element, n.EI_VEN_ID, message.ven_id)


# requestID, reportRequestID+, reportToFollow, venID?
def _cancel_report(element: _Element, message: OadrMessage, *, ven_id: bool = True) -> None:
    _request_id(element, message)
    if not message.report_request_ids:
        raise OadrEncodeError("oadrCancelReport needs at least one reportRequestID")
    for report_request_id in message.report_request_ids:
        leaf(element, n.EI_REPORT_REQUEST_ID, report_request_id)
    leaf(element, n.PYLD_REPORT_TO_FOLLOW, write_bool(message.report_to_follow))
    if ven_id:
        _optional(element, n.EI_VEN_ID, message.ven_id)


# eiResponse, oadrCancelReport?, venID?
def _updated_report(element: _Element, message: OadrMessage) -> None:
    response(element, message.response)
    if message.report_request_ids:
        _cancel_report(SubElement(element, n.OADR_CANCEL_REPORT), message, ven_id=False)
    _optional(element, n.EI_VEN_ID, message.ven_id)


_WRITERS: dict[Payload, _Writer] = {
    Payload.CREATE_PARTY_REGISTRATION: _create_party_registration,
    Payload.CREATED_PARTY_REGISTRATION: _created_party_registration,
    Payload.CANCEL_PARTY_REGISTRATION: _cancel_party_registration,
    Payload.CANCELED_PARTY_REGISTRATION: _canceled_party_registration,
    Payload.QUERY_REGISTRATION: _query_registration,
    Payload.REQUEST_REREGISTRATION: _ven_only,
    Payload.REQUEST_EVENT: _request_event,
    Payload.DISTRIBUTE_EVENT: _distribute_event,
    Payload.CREATED_EVENT: _created_event,
    Payload.POLL: _ven_only,
    Payload.RESPONSE: _response,
    Payload.CREATE_OPT: _create_opt,
    Payload.CREATED_OPT: _created_opt,
    Payload.CANCEL_OPT: _cancel_opt,
    Payload.CANCELED_OPT: _created_opt,
    Payload.REGISTER_REPORT: _reports,
    Payload.REGISTERED_REPORT: _report_requests,
    Payload.CREATE_REPORT: _report_requests,
    Payload.CREATED_REPORT: _pending_reports,
    Payload.UPDATE_REPORT: _reports,
    Payload.UPDATED_REPORT: _updated_report,
    Payload.CANCEL_REPORT: _cancel_report,
    Payload.CANCELED_REPORT: _pending_reports,
}
