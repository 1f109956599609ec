"""A schema-valid 2.0b tree -> :class:`OadrMessage`: one reader per payload, each filling the fields messages.py
documents for it.

Conventions every reader follows, so that ``decode(encode(m)) == m`` for whatever decode produced:
- ``ven_id`` is the payload's own ei:venID wherever it has one (also when it sits inside the registration or the
  opt), so an identity check finds it in one place; ``vtn_id`` likewise.
- ``request_id`` is the payload's pyld:requestID; an answer's echoed request id is ``response.request_id``.
- Optional strings the schema allows to be absent read as None, except responseDescription and reportName, which
  read as "" (the writer leaves "" out).

Not kept, because no field holds them and no gateway decision depends on them: oadrCreatedPartyRegistration's
service-specific info and extensions, and all but one of its profiles (2.0b when offered) and that profile's
transports (simpleHttp when offered).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from lxml.etree import _Element

from gateway.protocols.openadr2b import codec_names as n
from gateway.protocols.openadr2b.codec_read_parts import (
    event,
    first,
    inner_duration,
    properties_period,
    report,
    report_request,
    response,
    target,
    text,
    token,
)
from gateway.protocols.openadr2b.codec_values import read_bool, read_datetime, read_int
from gateway.protocols.openadr2b.messages import (
    Availability,
    EventResponse,
    OadrDecodeError,
    OadrMessage,
    Opt,
    OptType,
    Payload,
    Registration,
)

_Reader = Callable[[_Element, OadrMessage], None]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # placeholder for a required time the schema guarantees


def read_envelope(root: _Element) -> tuple[_Element, _Element | None, _Element | None]:
    """(payload element, oadrSignedObject, ds:Signature) of a validated document; the last two are None for a
    bare payload, the signature also when the message is unsigned."""
    tag = root.tag
    if tag == n.OADR_PAYLOAD:
        signature = signed = None
        for child in root:
            if child.tag == n.OADR_SIGNED_OBJECT:
                signed = child
            elif child.tag == n.DS_SIGNATURE:
                signature = child
        if signed is None:
            raise OadrDecodeError("oadrPayload without an oadrSignedObject")
        return first(signed), signed, signature
    if tag == n.OADR_SIGNED_OBJECT:
        return first(root), root, None
    return root, None, None


def read_payload(element: _Element) -> OadrMessage:
    """The message in one validated payload element (oadrDistributeEvent, oadrPoll, ...)."""
    payload = n.PAYLOAD_OF_TAG[element.tag]
    message = OadrMessage(payload=payload)
    _READERS[payload](element, message)
    return message


# --- shared shapes ----------------------------------------------------------------------------------------------


def _simple(element: _Element, message: OadrMessage) -> None:
    """The payloads made only of requestID, venID, vtnID, eiResponse, registrationID and optID, in any mix."""
    for child in element:
        tag = child.tag
        if tag == n.PYLD_REQUEST_ID:
            message.request_id = text(child)
        elif tag == n.EI_VEN_ID:
            message.ven_id = text(child)
        elif tag == n.EI_RESPONSE:
            message.response = response(child)
        elif tag == n.EI_REGISTRATION_ID:
            message.registration_id = text(child)
        elif tag == n.EI_OPT_ID:
            message.opt_id = text(child)


def _report_ids(element: _Element, into: list[str]) -> None:
    for child in element:
        if child.tag == n.EI_REPORT_REQUEST_ID:
            into.append(text(child))


# --- events -----------------------------------------------------------------------------------------------------


def _distribute_event(element: _Element, message: OadrMessage) -> None:
    for child in element:
        tag = child.tag
        if tag == n.OADR_EVENT:
            message.events.append(event(child))
        elif tag == n.PYLD_REQUEST_ID:
            message.request_id = text(child)
        elif tag == n.EI_VTN_ID:
            message.vtn_id = text(child)
        elif tag == n.EI_RESPONSE:
            message.response = response(child)


def _request_event(element: _Element, message: OadrMessage) -> None:
    for child in first(element):
        tag = child.tag
        if tag == n.PYLD_REQUEST_ID:
            message.request_id = text(child)
        elif tag == n.EI_VEN_ID:
            message.ven_id = text(child)
        elif tag == n.PYLD_REPLY_LIMIT:
            message.reply_limit = read_int(child.text)


def _created_event(element: _Element, message: OadrMessage) -> None:
    for child in first(element):
        tag = child.tag
        if tag == n.EI_RESPONSE:
            message.response = response(child)
        elif tag == n.EI_VEN_ID:
            message.ven_id = text(child)
        elif tag == n.EI_EVENT_RESPONSES:
            message.event_responses = [_event_response(item) for item in child if item.tag == n.EI_EVENT_RESPONSE]


def _event_response(element: _Element) -> EventResponse:
    answer = response(element)  # responseCode, responseDescription, requestID lead the sequence
    event_id, modification, opt_type = "", 0, OptType.OPT_IN
    for child in element:
        if child.tag == n.EI_QUALIFIED_EVENT_ID:
            for part in child:
                if part.tag == n.EI_EVENT_ID:
                    event_id = text(part)
                elif part.tag == n.EI_MODIFICATION_NUMBER:
                    modification = read_int(part.text)
        elif child.tag == n.EI_OPT_TYPE:
            opt_type = OptType(token(child))
    return EventResponse(
        event_id=event_id,
        modification_number=modification,
        opt_type=opt_type,
        code=answer.code,
        description=answer.description,
        request_id=answer.request_id,
    )


# --- registration -----------------------------------------------------------------------------------------------


def _create_party_registration(element: _Element, message: OadrMessage) -> None:
    registration = Registration()
    for child in element:
        tag = child.tag
        if tag == n.PYLD_REQUEST_ID:
            message.request_id = text(child)
        elif tag == n.EI_REGISTRATION_ID:
            registration.registration_id = text(child)
        elif tag == n.EI_VEN_ID:
            registration.ven_id = message.ven_id = text(child)
        elif tag == n.OADR_PROFILE_NAME:
            registration.profile_name = token(child)
        elif tag == n.OADR_TRANSPORT_NAME:
            registration.transport_name = token(child)
        elif tag == n.OADR_TRANSPORT_ADDRESS:
            registration.transport_address = text(child)
        elif tag == n.OADR_REPORT_ONLY:
            registration.report_only = read_bool(child.text)
        elif tag == n.OADR_XML_SIGNATURE:
            registration.xml_signature = read_bool(child.text)
        elif tag == n.OADR_VEN_NAME:
            registration.ven_name = text(child)
        elif tag == n.OADR_HTTP_PULL_MODEL:
            registration.http_pull_model = read_bool(child.text)
    message.registration = registration


def _created_party_registration(element: _Element, message: OadrMessage) -> None:
    registration = Registration()
    for child in element:
        tag = child.tag
        if tag == n.EI_RESPONSE:
            message.response = response(child)
        elif tag == n.EI_REGISTRATION_ID:
            registration.registration_id = text(child)
        elif tag == n.EI_VEN_ID:
            registration.ven_id = message.ven_id = text(child)
        elif tag == n.EI_VTN_ID:
            registration.vtn_id = message.vtn_id = text(child)
        elif tag == n.OADR_PROFILES:
            registration.profile_name, registration.transport_name = _profile(child)
        elif tag == n.OADR_POLL_FREQ:
            registration.poll_freq = inner_duration(child)
    message.registration = registration


def _profile(element: _Element) -> tuple[str, str]:
    """The profile this gateway speaks (2.0b) if the VTN offers it, else its first; simpleHttp likewise."""
    offered: dict[str, list[str]] = {}
    for profile in element:
        if profile.tag != n.OADR_PROFILE:
            continue
        name, transports = "", []
        for child in profile:
            if child.tag == n.OADR_PROFILE_NAME:
                name = token(child)
            elif child.tag == n.OADR_TRANSPORTS:
                transports = [token(first(item)) for item in child if item.tag == n.OADR_TRANSPORT]
        offered.setdefault(name, transports)
    name = "2.0b" if "2.0b" in offered else next(iter(offered))
    transports = offered[name]
    return name, "simpleHttp" if "simpleHttp" in transports else transports[0]


# --- opt --------------------------------------------------------------------------------------------------------


def _create_opt(element: _Element, message: OadrMessage) -> None:
    opt = Opt(opt_id="", opt_type=OptType.OPT_IN, opt_reason="", created=_EPOCH)
    for child in element:
        tag = child.tag
        if tag == n.EI_OPT_ID:
            opt.opt_id = text(child)
        elif tag == n.EI_OPT_TYPE:
            opt.opt_type = OptType(token(child))
        elif tag == n.EI_OPT_REASON:
            opt.opt_reason = token(child)
        elif tag == n.EMIX_MARKET_CONTEXT:
            opt.market_context = token(child)
        elif tag == n.EI_VEN_ID:
            opt.ven_id = message.ven_id = text(child)
        elif tag == n.XCAL_VAVAILABILITY:
            for available in first(child):
                if available.tag == n.XCAL_AVAILABLE:
                    start, length = properties_period(available)
                    opt.availability.append(Availability(start=start, duration=length))
        elif tag == n.EI_CREATED_DATE_TIME:
            opt.created = read_datetime(child.text)
        elif tag == n.PYLD_REQUEST_ID:
            message.request_id = text(child)
        elif tag == n.EI_QUALIFIED_EVENT_ID:
            for part in child:
                if part.tag == n.EI_EVENT_ID:
                    opt.event_id = text(part)
                elif part.tag == n.EI_MODIFICATION_NUMBER:
                    opt.modification_number = read_int(part.text)
        elif tag == n.EI_TARGET:
            opt.target = target(child)
        elif tag == n.OADR_DEVICE_CLASS:
            opt.device_class = target(child)
    message.opt = opt


# --- reports ----------------------------------------------------------------------------------------------------


def _reports(element: _Element, message: OadrMessage) -> None:
    """oadrRegisterReport and oadrUpdateReport; a register report's trailing reportRequestID (the request it
    answers) is ``report_request_ids[0]``."""
    for child in element:
        tag = child.tag
        if tag == n.OADR_REPORT:
            message.reports.append(report(child))
        elif tag == n.PYLD_REQUEST_ID:
            message.request_id = text(child)
        elif tag == n.EI_VEN_ID:
            message.ven_id = text(child)
        elif tag == n.EI_REPORT_REQUEST_ID:
            message.report_request_ids.append(text(child))


def _report_requests(element: _Element, message: OadrMessage) -> None:
    """oadrCreateReport and oadrRegisteredReport."""
    for child in element:
        tag = child.tag
        if tag == n.OADR_REPORT_REQUEST:
            message.report_requests.append(report_request(child))
        elif tag == n.PYLD_REQUEST_ID:
            message.request_id = text(child)
        elif tag == n.EI_VEN_ID:
            message.ven_id = text(child)
        elif tag == n.EI_RESPONSE:
            message.response = response(child)


def _pending_reports(element: _Element, message: OadrMessage) -> None:
    """oadrCreatedReport and oadrCanceledReport: the answer and the report requests still running."""
    _simple(element, message)
    for child in element:
        if child.tag == n.OADR_PENDING_REPORTS:
            _report_ids(child, message.report_request_ids)


def _cancel_report(element: _Element, message: OadrMessage) -> None:
    _simple(element, message)
    _report_ids(element, message.report_request_ids)
    for child in element:
        if child.tag == n.PYLD_REPORT_TO_FOLLOW:
            message.report_to_follow = read_bool(child.text)


def _updated_report(element: _Element, message: OadrMessage) -> None:
    """The answer may carry an oadrCancelReport (the VTN stopping reports): its requestID, reportRequestIDs and
    reportToFollow become the message's ``request_id``, ``report_request_ids`` and ``report_to_follow``."""
    _simple(element, message)
    for child in element:
        if child.tag == n.OADR_CANCEL_REPORT:
            ven_id = message.ven_id
            _cancel_report(child, message)
            if ven_id is not None:  # the answer's own venID wins over the embedded request's
                message.ven_id = ven_id


_READERS: dict[Payload, _Reader] = {
    Payload.CREATE_PARTY_REGISTRATION: _create_party_registration,
    Payload.CREATED_PARTY_REGISTRATION: _created_party_registration,
    Payload.CANCEL_PARTY_REGISTRATION: _simple,
    Payload.CANCELED_PARTY_REGISTRATION: _simple,
    Payload.QUERY_REGISTRATION: _simple,
    Payload.REQUEST_REREGISTRATION: _simple,
    Payload.REQUEST_EVENT: _request_event,
    Payload.DISTRIBUTE_EVENT: _distribute_event,
    Payload.CREATED_EVENT: _created_event,
    Payload.POLL: _simple,
    Payload.RESPONSE: _simple,
    Payload.CREATE_OPT: _create_opt,
    Payload.CREATED_OPT: _simple,
    Payload.CANCEL_OPT: _simple,
    Payload.CANCELED_OPT: _simple,
    Payload.REGISTER_REPORT: _reports,
    Payload.REGISTERED_REPORT: _report_requests,
    Payload.CREATE_REPORT: _report_requests,
    Payload.CREATED_REPORT: _pending_reports,
    Payload.UPDATE_REPORT: _reports,
    Payload.UPDATED_REPORT: _updated_report,
    Payload.CANCEL_REPORT: _cancel_report,
    Payload.CANCELED_REPORT: _pending_reports,
}
