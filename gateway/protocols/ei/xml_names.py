"""What every part of the EI XML codec agrees on: namespace sets, element keys, payload roots and the tables that map
canonical values to EMIX elements.

The reader, the writer and the extension schema all name elements by a dialect-neutral key (``"ei:eiTender"``):
:data:`NAMESPACES` says which URI each prefix stands for in each :class:`Dialect`, and :data:`_KEYS` turns a
parsed tag back into its key. Keeping these tables in one place is what keeps the two directions in step.
"""

from __future__ import annotations

from enum import StrEnum

from lxml import etree

from gateway.model import Resolution
from gateway.model.units import EnergyUnit, PowerUnit
from gateway.protocols.ei.messages import Payload

MAX_BYTES = 4 * 1024 * 1024
"""Largest message :func:`decode` reads (a 10,000-row tender is about 2 MB)."""

NOMINAL_POWER_ATTRIBUTES = ("60", "120", "true")
"""hertz, voltage, ac written in ``power:powerAttributes`` (required by the schema with any power unit; the
canonical model has no such figures, so these are placeholders and are never read back)."""

_MAX_NUMBER_CHARS = 100


class Dialect(StrEnum):
    """Which namespace URIs a document uses; the element structure is the same (see the module docstring)."""

    EI10 = "ei10"
    CTS = "cts04"


GW_NS = "urn:transactive-gateway:ns:ei-extension:1"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_XSI_TYPE = f"{{{XSI_NS}}}type"

NAMESPACES: dict[Dialect, dict[str, str]] = {
    Dialect.EI10: {
        "pyld": "http://docs.oasis-open.org/ns/energyinterop/201110/payloads",
        "ei": "http://docs.oasis-open.org/ns/energyinterop/201110",
        "emix": "http://docs.oasis-open.org/ns/emix/2011/06",
        "power": "http://docs.oasis-open.org/ns/emix/2011/06/power",
        "scale": "http://docs.oasis-open.org/ns/emix/2011/06/siscale",
        "xcal": "urn:ietf:params:xml:ns:icalendar-2.0",
        "strm": "urn:ietf:params:xml:ns:icalendar-2.0:stream",
    },
    Dialect.CTS: {
        "pyld": "http://docs.oasis-open.org/ns/energyinterop/201110/payloads/cts.04",
        "ei": "http://docs.oasis-open.org/ns/energyinterop/201110/cts.04",
        "emix": "http://docs.oasis-open.org/ns/emix/2011/06/cts.04",
        "power": "http://docs.oasis-open.org/ns/emix/2011/06/power/cts.04",
        "scale": "http://docs.oasis-open.org/ns/emix/2011/06/siscale",
        "xcal": "http://docs.oasis-open.org/ws-calendar/ns/min-xcal/2015/12",
        "strm": "http://docs.oasis-open.org/ws-calendar/ns/streams/201606",
    },
}
"""Prefix -> namespace URI per dialect (``gw`` is :data:`GW_NS` in both)."""

_PREFIX_OF: dict[str, str] = {GW_NS: "gw"}
_DIALECT_OF: dict[str, Dialect] = {}
for _dialect, _table in NAMESPACES.items():
    for _prefix, _uri in _table.items():
        _PREFIX_OF[_uri] = _prefix
        if _prefix != "scale":
            _DIALECT_OF[_uri] = _dialect


class _Keys(dict[str, str]):
    """Clark tag ('{uri}local') -> 'prefix:local' with the dialect-neutral prefix; built on first sight."""

    def __missing__(self, tag: str) -> str:
        if tag[:1] == "{":
            uri, _, local = tag[1:].partition("}")
            key = f"{_PREFIX_OF.get(uri, '?')}:{local}"
        else:
            key = f":{tag}"
        if len(self) < 4096:  # hostile documents may invent any number of tags: do not cache them all
            self[tag] = key
        return key


_KEYS = _Keys()

# strm:intervals tag -> the tags of the common interval shape in that namespace set (see _fast_intervals).
_FAST_TAGS = {
    f"{{{ns['strm']}}}intervals": (
        f"{{{ns['strm']}}}streamInterval",
        f"{{{ns['strm']}}}uid",
        f"{{{ns['power']}}}temixPower",
        f"{{{ns['emix']}}}price",
        f"{{{ns['emix']}}}value",
        f"{{{ns['emix']}}}quantity",
    )
    for ns in NAMESPACES.values()
}

_ROOTS: dict[Payload, str] = {
    Payload.REGISTER_PARTY: "pyld:eiCreatePartyRegistration",
    Payload.REGISTERED_PARTY: "pyld:eiCreatedPartyRegistration",
    Payload.CREATE_TENDER: "pyld:eiCreateTender",
    Payload.CREATED_TENDER: "pyld:eiCreatedTender",
    Payload.CANCEL_TENDER: "pyld:eiCancelTender",
    Payload.CANCELED_TENDER: "pyld:eiCanceledTender",
    Payload.REQUEST_TENDER: "pyld:eiRequestTender",
    Payload.REPLY_TENDER: "pyld:eiReplyTender",
    Payload.DISTRIBUTE_TENDER: "pyld:eiDistributeTender",
    Payload.CREATE_QUOTE: "pyld:eiCreateQuote",
    Payload.CREATED_QUOTE: "pyld:eiCreatedQuote",
    Payload.CREATE_TRANSACTION: "pyld:eiCreateTransaction",
    Payload.CREATED_TRANSACTION: "pyld:eiCreatedTransaction",
    Payload.REQUEST_POSITION: "gw:eiRequestPosition",
    Payload.REPLY_POSITION: "gw:eiReplyPosition",
    Payload.CREATE_DELIVERY: "pyld:eiCreateDelivery",
    Payload.CREATED_DELIVERY: "pyld:eiCreatedDelivery",
}
_PAYLOAD_OF_ROOT: dict[str, Payload] = {
    **{root: payload for payload, root in _ROOTS.items()},
    "pyld:eiRegisterParty": Payload.REGISTER_PARTY,
    "pyld:eiRegisteredParty": Payload.REGISTERED_PARTY,
    "pyld:eiRequestPosition": Payload.REQUEST_POSITION,
    "pyld:eiReplyPosition": Payload.REPLY_POSITION,
}
# The fields of gw:extension, in schema order; all optional. tenderID may repeat; ei:eiTransaction* follows.
_EXT_FIELDS: tuple[tuple[str, str], ...] = (
    ("partyID", "xs:string"),
    ("counterPartyID", "xs:string"),
    ("tenderID", "xs:string"),
    ("cancelReason", "xs:string"),
    ("start", "xs:dateTime"),
    ("end", "xs:dateTime"),
    ("timeZone", "xs:string"),
    ("status", "xs:string"),
    ("createdDateTime", "xs:dateTime"),
    ("clearingID", "xs:string"),
    ("subscriptionID", "xs:string"),
    ("resourceID", "xs:string"),
    ("quality", "xs:string"),
    ("measuredDateTime", "xs:dateTime"),
    ("executedDateTime", "xs:dateTime"),
)
_EXT_KEYS = frozenset(f"gw:{name}" for name, _ in _EXT_FIELDS)

# Units: canonical unit <-> (EMIX item element, siScaleCode).
_POWER_ITEMS: dict[PowerUnit, tuple[str, str]] = {
    PowerUnit.W: ("power:powerReal", "none"),
    PowerUnit.KW: ("power:powerReal", "k"),
    PowerUnit.MW: ("power:powerReal", "M"),
    PowerUnit.VAR: ("power:powerReactive", "none"),
    PowerUnit.KVAR: ("power:powerReactive", "k"),
    PowerUnit.MVAR: ("power:powerReactive", "M"),
}
_ENERGY_ITEMS: dict[EnergyUnit, tuple[str, str]] = {
    EnergyUnit.WH: ("power:energyReal", "none"),
    EnergyUnit.KWH: ("power:energyReal", "k"),
    EnergyUnit.MWH: ("power:energyReal", "M"),
    EnergyUnit.VARH: ("power:energyReactive", "none"),
    EnergyUnit.KVARH: ("power:energyReactive", "k"),
    EnergyUnit.MVARH: ("power:energyReactive", "M"),
}
_ITEM_TEXT = {  # itemDescription, itemUnits (fixed by the schema)
    "power:powerReal": ("RealPower", "W"),
    "power:powerReactive": ("ReactivePower", "VAR"),
    "power:energyReal": ("RealEnergy", "Wh"),
    "power:energyReactive": ("ReactiveEnergy", "VARh"),
}
_POWER_OF = {item: unit for unit, item in _POWER_ITEMS.items()}
_ENERGY_OF = {item: unit for unit, item in _ENERGY_ITEMS.items()}
_POWER_ELEMENTS = frozenset(item for item, _ in _POWER_OF)
_ENERGY_ELEMENTS = frozenset(item for item, _ in _ENERGY_OF)
_NODE_INTERFACES = {
    "power:serviceDeliveryPoint": "power:node",
    "power:pnode": "power:node",
    "power:aggregatedPnode": "power:node",
    "power:meterAsset": "power:mrid",
    "power:endDeviceAsset": "power:mrid",
}
_TRANSACTIVE_STATES = frozenset(
    {"indicationOfInterest", "tender", "transaction", "exercise", "delivery", "transportCommitment", "publication"}
)
_RESOLUTIONS = {r.value: r for r in Resolution}
_SIDES = frozenset({"buy", "sell"})
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


_E = etree._Element
