"""OpenADR 2.0b messages as plain typed objects: what the codec reads from and writes to the wire.

One :class:`OadrMessage` shape carries every payload of the five services (EiRegisterParty, EiEvent, EiReport,
EiOpt, OadrPoll); ``payload`` says which one it is and only the fields that payload uses are set. Dataclasses
with slots rather than pydantic models because the codec has already validated the XML against the 2.0b
schema: a second validation pass would cost more than the schema check itself and catch nothing new, and the
decode + map budget per message is about 100 us (see benchmarks/bench_openadr2b.py).

Numbers are :class:`~decimal.Decimal` read from the text, so a price of 0.1234 stays 0.1234. Times are
timezone-aware UTC; durations are :class:`~datetime.timedelta`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum


class Payload(StrEnum):
    """The 2.0b payload element names (the child of oadrSignedObject)."""

    CREATE_PARTY_REGISTRATION = "oadrCreatePartyRegistration"
    CREATED_PARTY_REGISTRATION = "oadrCreatedPartyRegistration"
    CANCEL_PARTY_REGISTRATION = "oadrCancelPartyRegistration"
    CANCELED_PARTY_REGISTRATION = "oadrCanceledPartyRegistration"
    QUERY_REGISTRATION = "oadrQueryRegistration"
    REQUEST_REREGISTRATION = "oadrRequestReregistration"
    REQUEST_EVENT = "oadrRequestEvent"
    DISTRIBUTE_EVENT = "oadrDistributeEvent"
    CREATED_EVENT = "oadrCreatedEvent"
    POLL = "oadrPoll"
    RESPONSE = "oadrResponse"
    CREATE_OPT = "oadrCreateOpt"
    CREATED_OPT = "oadrCreatedOpt"
    CANCEL_OPT = "oadrCancelOpt"
    CANCELED_OPT = "oadrCanceledOpt"
    REGISTER_REPORT = "oadrRegisterReport"
    REGISTERED_REPORT = "oadrRegisteredReport"
    CREATE_REPORT = "oadrCreateReport"
    CREATED_REPORT = "oadrCreatedReport"
    UPDATE_REPORT = "oadrUpdateReport"
    UPDATED_REPORT = "oadrUpdatedReport"
    CANCEL_REPORT = "oadrCancelReport"
    CANCELED_REPORT = "oadrCanceledReport"


class Service(StrEnum):
    """The simpleHTTP endpoints, /OpenADR2/Simple/2.0b/<service>."""

    REGISTER_PARTY = "EiRegisterParty"
    EVENT = "EiEvent"
    REPORT = "EiReport"
    OPT = "EiOpt"
    POLL = "OadrPoll"


SERVICE_OF: dict[Payload, Service] = {
    Payload.CREATE_PARTY_REGISTRATION: Service.REGISTER_PARTY,
    Payload.CREATED_PARTY_REGISTRATION: Service.REGISTER_PARTY,
    Payload.CANCEL_PARTY_REGISTRATION: Service.REGISTER_PARTY,
    Payload.CANCELED_PARTY_REGISTRATION: Service.REGISTER_PARTY,
    Payload.QUERY_REGISTRATION: Service.REGISTER_PARTY,
    Payload.REQUEST_REREGISTRATION: Service.REGISTER_PARTY,
    Payload.REQUEST_EVENT: Service.EVENT,
    Payload.DISTRIBUTE_EVENT: Service.EVENT,
    Payload.CREATED_EVENT: Service.EVENT,
    Payload.POLL: Service.POLL,
    Payload.RESPONSE: Service.POLL,
    Payload.CREATE_OPT: Service.OPT,
    Payload.CREATED_OPT: Service.OPT,
    Payload.CANCEL_OPT: Service.OPT,
    Payload.CANCELED_OPT: Service.OPT,
    Payload.REGISTER_REPORT: Service.REPORT,
    Payload.REGISTERED_REPORT: Service.REPORT,
    Payload.CREATE_REPORT: Service.REPORT,
    Payload.CREATED_REPORT: Service.REPORT,
    Payload.UPDATE_REPORT: Service.REPORT,
    Payload.UPDATED_REPORT: Service.REPORT,
    Payload.CANCEL_REPORT: Service.REPORT,
    Payload.CANCELED_REPORT: Service.REPORT,
}


class ResponseCode:
    """OpenADR 2.0b response codes (the 2.0b profile's table, 200 and 450-469) used by the gateway."""

    OK = 200
    OUT_OF_SEQUENCE = 450
    NOT_ALLOWED = 451
    INVALID_ID = 452
    NOT_RECOGNIZED = 453
    INVALID_DATA = 454
    COMPLIANCE_ERROR = 459
    SIGNAL_NOT_SUPPORTED = 460
    REPORT_NOT_SUPPORTED = 461
    TARGET_MISMATCH = 462
    NOT_REGISTERED_OR_AUTHORIZED = 463
    DEPLOYMENT_ERROR = 469


class EventStatus(StrEnum):
    NONE = "none"
    FAR = "far"
    NEAR = "near"
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class OptType(StrEnum):
    OPT_IN = "optIn"
    OPT_OUT = "optOut"


class ResponseRequired(StrEnum):
    ALWAYS = "always"
    NEVER = "never"


@dataclass(slots=True)
class EiResponse:
    """ei:eiResponse: the status of a request, echoed with the request's id."""

    code: int = ResponseCode.OK
    description: str = "OK"
    request_id: str | None = None


@dataclass(slots=True)
class Target:
    """ei:eiTarget. ``end_device_assets`` are power:endDeviceAsset/power:mrid values (device classes).

    ``meter_assets`` (power:meterAsset/mrid), ``pnodes``, ``aggregated_pnodes`` and ``service_delivery_points``
    (their power:node) and ``group_names`` are the other plain-text kinds of target the schema has; a VEN's report
    data source is often its meters. The GML kinds (serviceArea, serviceLocation) and transportInterface are not
    carried: the codec refuses them (453) rather than drop them.
    """

    ven_ids: list[str] = field(default_factory=list)
    group_ids: list[str] = field(default_factory=list)
    resource_ids: list[str] = field(default_factory=list)
    party_ids: list[str] = field(default_factory=list)
    end_device_assets: list[str] = field(default_factory=list)
    meter_assets: list[str] = field(default_factory=list)
    pnodes: list[str] = field(default_factory=list)
    aggregated_pnodes: list[str] = field(default_factory=list)
    service_delivery_points: list[str] = field(default_factory=list)
    group_names: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (
            self.ven_ids
            or self.group_ids
            or self.resource_ids
            or self.party_ids
            or self.end_device_assets
            or self.meter_assets
            or self.pnodes
            or self.aggregated_pnodes
            or self.service_delivery_points
            or self.group_names
        )


@dataclass(slots=True)
class ItemUnit:
    """An EMIX item base (oadr:currencyPerKWh, power:powerReal, ...): element name, description, units, scale."""

    kind: str
    description: str
    units: str
    si_scale: str = "none"
    # powerReal/powerApparent/powerReactive/voltage carry powerAttributes; kept when present, written when set
    hertz: Decimal | None = None
    voltage: Decimal | None = None
    ac: bool | None = None
    # oadr:pulseCount has a pulseFactor instead of an siScaleCode
    pulse_factor: Decimal | None = None


@dataclass(slots=True)
class SignalInterval:
    uid: int
    duration: timedelta
    value: Decimal
    start: datetime | None = None


@dataclass(slots=True)
class EventSignal:
    """ei:eiEventSignal, or (as ``Event.baseline``) ei:eiEventBaseline: then ``name`` is the baselineName, ``id``
    the baselineID, ``type`` empty, ``target`` holds its resourceIDs, and ``start``/``duration`` its own period."""

    name: str
    type: str
    id: str
    intervals: list[SignalInterval]
    current_value: Decimal | None = None
    unit: ItemUnit | None = None
    target: Target | None = None
    start: datetime | None = None
    duration: timedelta | None = None


@dataclass(slots=True)
class Event:
    """One oadrEvent: ei:eiEvent plus oadrResponseRequired."""

    event_id: str
    modification_number: int
    market_context: str
    created: datetime
    status: EventStatus
    start: datetime
    duration: timedelta
    signals: list[EventSignal]
    target: Target
    modification_at: datetime | None = None
    modification_reason: str | None = None
    priority: int | None = None
    test_event: str | None = None
    vtn_comment: str | None = None
    start_after: timedelta | None = None
    notification: timedelta | None = None
    ramp_up: timedelta | None = None
    recovery: timedelta | None = None
    response_required: ResponseRequired = ResponseRequired.ALWAYS
    baseline: EventSignal | None = None


@dataclass(slots=True)
class EventResponse:
    """One ei:eventResponse of an oadrCreatedEvent: the VEN's optIn/optOut for one event version."""

    event_id: str
    modification_number: int
    opt_type: OptType
    code: int = ResponseCode.OK
    description: str = "OK"
    request_id: str | None = None


@dataclass(slots=True)
class Registration:
    """The fields of oadrCreatePartyRegistration (a request) and oadrCreatedPartyRegistration (the answer)."""

    registration_id: str | None = None
    ven_id: str | None = None
    vtn_id: str | None = None
    profile_name: str = "2.0b"
    transport_name: str = "simpleHttp"
    transport_address: str | None = None
    report_only: bool = False
    xml_signature: bool = False
    ven_name: str | None = None
    http_pull_model: bool = True
    poll_freq: timedelta | None = None


@dataclass(slots=True)
class Availability:
    start: datetime
    duration: timedelta


@dataclass(slots=True)
class Opt:
    """oadrCreateOpt: an opt in or out of one event (``event_id``) or of availability windows (``availability``)."""

    opt_id: str
    opt_type: OptType
    opt_reason: str
    created: datetime
    market_context: str | None = None
    ven_id: str | None = None
    availability: list[Availability] = field(default_factory=list)
    event_id: str | None = None
    modification_number: int | None = None
    target: Target | None = None
    device_class: Target | None = None


@dataclass(slots=True)
class ReportDescription:
    """oadrReportDescription: one data point (rID) a VEN can report, or is asked to.

    ei:reportSubject and ei:reportDataSource are targets. The common shape, a single resourceID, is
    ``resource_id`` (subject) and ``data_source`` (data source); any other target (meters, several resources)
    is ``subject`` / ``source`` instead, and then the plain field is None: at most one of each pair is set.
    """

    r_id: str
    report_type: str
    reading_type: str
    resource_id: str | None = None
    data_source: str | None = None
    unit: ItemUnit | None = None
    market_context: str | None = None
    min_period: timedelta | None = None
    max_period: timedelta | None = None
    on_change: bool | None = None
    subject: Target | None = None
    source: Target | None = None


@dataclass(slots=True)
class ReportInterval:
    """One interval of report data: one ``oadrReportPayload`` (rID + payloadFloat) within it."""

    start: datetime | None
    duration: timedelta | None
    r_id: str
    value: Decimal
    uid: int | None = None
    confidence: int | None = None
    accuracy: Decimal | None = None
    data_quality: str | None = None


@dataclass(slots=True)
class Report:
    """oadrReport: metadata (in oadrRegisterReport) or data (in oadrUpdateReport)."""

    report_specifier_id: str
    report_name: str
    created: datetime
    report_id: str | None = None
    report_request_id: str = "0"
    start: datetime | None = None
    duration: timedelta | None = None
    descriptions: list[ReportDescription] = field(default_factory=list)
    intervals: list[ReportInterval] = field(default_factory=list)


@dataclass(slots=True)
class ReportRequest:
    """oadrReportRequest: ask for the data points ``r_ids`` of a registered report, every ``granularity``."""

    report_request_id: str
    report_specifier_id: str
    granularity: timedelta
    report_back_duration: timedelta
    r_ids: list[str]
    reading_types: list[str] = field(default_factory=list)
    start: datetime | None = None
    duration: timedelta | None = None


@dataclass(slots=True)
class OadrMessage:
    """Any 2.0b payload. Which fields are set depends on ``payload``:

    - registration: ``registration`` (create/created), ``registration_id`` (cancel/canceled/reregistration);
    - events: ``events`` (distribute), ``event_responses`` (created), ``reply_limit`` (request);
    - opt: ``opt`` (create), ``opt_id`` (created/cancel/canceled);
    - reports: ``reports`` (register/update), ``report_requests`` (create, and registered's answer),
      ``report_request_ids`` (cancel, and created's/canceled's pending reports), ``report_to_follow`` (cancel).
    ``response`` is the ei:eiResponse of every answer payload and of oadrResponse.
    """

    payload: Payload
    request_id: str | None = None
    ven_id: str | None = None
    vtn_id: str | None = None
    response: EiResponse | None = None
    registration: Registration | None = None
    registration_id: str | None = None
    events: list[Event] = field(default_factory=list)
    event_responses: list[EventResponse] = field(default_factory=list)
    reply_limit: int | None = None
    opt: Opt | None = None
    opt_id: str | None = None
    reports: list[Report] = field(default_factory=list)
    report_requests: list[ReportRequest] = field(default_factory=list)
    report_request_ids: list[str] = field(default_factory=list)
    report_to_follow: bool = False

    @property
    def service(self) -> Service:
        return SERVICE_OF[self.payload]


class OadrDecodeError(ValueError):
    """Bytes that are not a valid 2.0b message; ``code`` is the response code to answer with."""

    def __init__(self, reason: str, code: int = ResponseCode.INVALID_DATA) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
