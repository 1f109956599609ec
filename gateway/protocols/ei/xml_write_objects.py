"""Encoding canonical objects as EI XML elements: the :class:`_Writer` that builds the tree in one namespace set
(and adds our ``gw:extension`` where the CTS structure has no slot), and the writers of streams, products,
tenders, transactions, deliveries, positions and party registration info.

Numbers are written in plain decimal notation and times in UTC, so that decoding reads back exactly what was
written. Which objects a payload holds is :mod:`~gateway.protocols.ei.xml_write`'s business.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from lxml import etree

from gateway.model import (
    Delivery,
    Interval,
    OptionProduct,
    Party,
    Position,
    Resolution,
    Tender,
    Transaction,
    TransportProduct,
)
from gateway.model.units import EnergyUnit, PowerUnit
from gateway.protocols.ei import streams
from gateway.protocols.ei.messages import EiMessage
from gateway.protocols.ei.xml_names import (
    _E,
    _ENERGY_ITEMS,
    _EXT_FIELDS,
    _ITEM_TEXT,
    _POWER_ITEMS,
    _XSI_TYPE,
    GW_NS,
    NAMESPACES,
    NOMINAL_POWER_ATTRIBUTES,
    XSI_NS,
    Dialect,
)

_INVALID_XML_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class _Writer:
    def __init__(self, dialect: Dialect, extensions: bool, message: EiMessage) -> None:
        uris = {**NAMESPACES[dialect], "gw": GW_NS, "xsi": XSI_NS}
        self.uris = uris
        self.extensions = extensions
        self.tags: dict[str, str] = {}
        # An object's own party goes into its extension only when the message does not already say it.
        self.party = message.party_id
        self.counterparty = message.counterparty_id

    def tag(self, key: str) -> str:
        tag = self.tags.get(key)
        if tag is None:
            prefix, _, local = key.partition(":")
            tag = self.tags[key] = f"{{{self.uris[prefix]}}}{local}"
        return tag

    def root(self, key: str, uses_gw: bool) -> _E:
        nsmap = {p: u for p, u in self.uris.items() if p not in ("gw", "xsi")}
        if self.extensions or uses_gw:
            nsmap["gw"] = GW_NS
            nsmap["xsi"] = XSI_NS
        return etree.Element(self.tag(key), nsmap=nsmap)

    def sub(self, parent: _E, key: str, text: str | None = None) -> _E:
        element = etree.SubElement(parent, self.tag(key))
        if text is not None:
            element.text = text
        return element

    def extension(self, element: _E, fields: dict[str, Any], transactions: Sequence[Transaction] = ()) -> None:
        """Append gw:extension with the non-empty ``fields`` (schema order) and type ``element`` as ours."""
        if not self.extensions:
            return
        present = [
            (name, fields[name]) for name, _ in _EXT_FIELDS if fields.get(name) is not None and fields[name] != []
        ]
        if not present and not transactions:
            return
        local = etree.QName(element).localname
        element.set(_XSI_TYPE, f"gw:{local[0].upper()}{local[1:]}Type")
        ext = self.sub(element, "gw:extension")
        for name, value in present:
            for item in value if isinstance(value, list) else (value,):
                self.sub(ext, f"gw:{name}", _ts(item) if isinstance(item, datetime) else str(item))
        for transaction in transactions:
            _put_transaction(self, ext, transaction)


def _fmt(value: Decimal) -> str:
    """A decimal in plain notation (xs:decimal has no exponent): 1E+2 -> '100', trailing zeros kept."""
    return format(value, "f")


def _ts(value: datetime) -> str:
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"{value.isoformat()} has no time zone; EI times must be aware (UTC)")
    if offset != timedelta(0):
        value = value.astimezone(UTC)
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _free_text(text: str) -> str:
    """Descriptions and names may hold characters XML cannot carry; those become U+FFFD."""
    return _INVALID_XML_CHARS.sub("\ufffd", text)


def _put_stream_head(
    w: _Writer,
    element: _E,
    start: datetime,
    resolution: Resolution,
    location: str,
    quantity_unit: PowerUnit,
    price_per: EnergyUnit | None,
) -> None:
    w.sub(w.sub(element, "xcal:dtStart"), "xcal:dateTime", _ts(start))
    w.sub(element, "xcal:duration", resolution.value)
    payload = w.sub(element, "power:temixPower")
    w.sub(w.sub(payload, "power:serviceDeliveryPoint"), "power:node", location)
    item, scale = _POWER_ITEMS[quantity_unit]
    _put_item(w, payload, item, scale, power=True)
    if price_per is not None:
        item, scale = _ENERGY_ITEMS[price_per]
        _put_item(w, payload, item, scale, power=False)


def _put_item(w: _Writer, parent: _E, item: str, scale: str, *, power: bool) -> None:
    element = w.sub(parent, item)
    description, units = _ITEM_TEXT[item]
    w.sub(element, "power:itemDescription", description)
    w.sub(element, "power:itemUnits", units)
    w.sub(element, "scale:siScaleCode", scale)
    if power:
        attributes = w.sub(element, "power:powerAttributes")
        hertz, voltage, ac = NOMINAL_POWER_ATTRIBUTES
        w.sub(attributes, "power:hertz", hertz)
        w.sub(attributes, "power:voltage", voltage)
        w.sub(attributes, "power:ac", ac)


def _put_interval(
    w: _Writer,
    intervals: _E,
    uid: int,
    price: Decimal | None,
    quantity: Decimal,
    transport: TransportProduct | None,
) -> None:
    interval = w.sub(intervals, "strm:streamInterval")
    w.sub(interval, "strm:uid", str(uid))
    body = w.sub(interval, "power:temixPower")
    if transport is not None:
        ends = w.sub(body, "power:transportInterface")
        w.sub(ends, "power:pointOfReceipt", transport.from_location_id)
        w.sub(ends, "power:pointOfDelivery", transport.to_location_id)
    if price is not None:
        w.sub(w.sub(body, "emix:price"), "emix:value", _fmt(price))
    w.sub(body, "emix:quantity", _fmt(quantity))


def _put_product(
    w: _Writer,
    parent: _E,
    obj: Tender | Transaction,
    uid: str,
    state: str,
    rows: list[tuple[int, Decimal, Decimal]],
    start: datetime,
    resolution: Resolution,
) -> None:
    product = obj.product
    option = product if isinstance(product, OptionProduct) else None
    transport = product if isinstance(product, TransportProduct) else None
    element = w.sub(parent, "emix:emixOption" if option else "emix:product")
    _put_stream_head(w, element, start, resolution, obj.location_id, obj.quantity_unit, obj.price_per)
    intervals = w.sub(element, "strm:intervals")
    for n, price, quantity in rows:
        _put_interval(w, intervals, n, price, quantity, transport)
    w.sub(element, "emix:uid", uid)
    w.sub(element, "emix:transactiveState", state)
    expires = getattr(obj, "expires_at", None)
    if expires is not None:
        w.sub(element, "emix:expirationDate", _ts(expires))
    if isinstance(obj, Tender):
        w.sub(element, "emix:integralOnly", "true" if obj.all_or_none else "false")
    if option is not None:
        w.sub(element, "emix:optionHolderSide", "buy" if option.option_kind == "call" else "sell")
        w.sub(w.sub(element, "emix:optionPremium"), "emix:value", _fmt(option.premium))
        w.sub(w.sub(element, "emix:optionStrikePrice"), "emix:value", _fmt(option.strike))
        w.sub(element, "emix:optionType", str(option.option_kind.value))
        w.sub(element, "emix:side", obj.side.value)
        w.sub(element, "emix:marketContext", obj.market_id)
        w.sub(element, "emix:currency", obj.currency)
    else:
        w.sub(element, "emix:currency", obj.currency)
        w.sub(element, "emix:marketContext", obj.market_id)
        w.sub(element, "emix:side", obj.side.value)


def _put_tender(w: _Writer, parent: _E, tender: Tender, quote: bool) -> None:
    element = w.sub(parent, "ei:eiQuote" if quote else "ei:eiTender")
    w.sub(element, "ei:quoteID" if quote else "ei:tenderID", tender.id)
    starts = [row["start"] for row in tender.rows]
    uids = streams.offsets(starts, tender.resolution, tender.time_zone)
    rows = [(n, row["price"], row["quantity"]) for n, row in zip(uids, tender.rows, strict=True)]
    state = "publication" if quote else "tender"
    _put_product(w, element, tender, tender.id, state, rows, starts[0], tender.resolution)
    w.extension(
        element,
        {
            "partyID": None if tender.party_id == w.party else tender.party_id,
            "timeZone": None if tender.time_zone == "UTC" else tender.time_zone,
            "status": tender.status.value,
            "createdDateTime": tender.created_at,
        },
    )


def _put_transaction(w: _Writer, parent: _E, transaction: Transaction) -> None:
    element = w.sub(parent, "ei:eiTransaction")
    w.sub(element, "ei:transactionID", transaction.id)
    if transaction.tender_id is not None:
        w.sub(element, "ei:tenderID", transaction.tender_id)
    interval = transaction.interval
    rows = [(0, transaction.price, transaction.quantity)]
    _put_product(w, element, transaction, transaction.id, "transaction", rows, interval.start, interval.duration)
    w.extension(
        element,
        {
            "partyID": None if transaction.party_id == w.party else transaction.party_id,
            "counterPartyID": None if transaction.counterparty_id == w.counterparty else transaction.counterparty_id,
            "timeZone": None if interval.time_zone == "UTC" else interval.time_zone,
            "clearingID": transaction.clearing_id,
            "subscriptionID": transaction.subscription_id,
            "executedDateTime": transaction.executed_at,
        },
    )


def _put_delivery(w: _Writer, parent: _E, delivery: Delivery, ei: bool) -> None:
    element = w.sub(parent, "ei:eiDelivery" if ei else "emix:delivery")
    interval = delivery.interval
    _put_stream_head(w, element, interval.start, interval.duration, delivery.location_id, delivery.quantity_unit, None)
    intervals = w.sub(element, "strm:intervals")
    _put_interval(w, intervals, 0, None, abs(delivery.quantity), None)
    w.sub(element, "emix:uid", delivery.id)
    w.sub(element, "emix:injection", "true" if delivery.quantity < 0 else "false")
    if ei:
        w.sub(element, "ei:eiDeliveryID", delivery.id)
        w.sub(element, "ei:createdDateTime", _ts(delivery.measured_at))
    w.extension(
        element,
        {
            "partyID": None if delivery.party_id == w.party else delivery.party_id,
            "resourceID": delivery.resource_id,
            "quality": delivery.quality.value,
            "measuredDateTime": None if ei else delivery.measured_at,
            "timeZone": None if interval.time_zone == "UTC" else interval.time_zone,
        },
    )


def _put_position(w: _Writer, parent: _E, position: Position) -> None:
    element = w.sub(parent, "gw:position")
    interval: Interval = position.interval
    for key, value in (
        ("gw:partyID", position.party_id),
        ("gw:marketContext", position.market_id),
        ("gw:locationID", position.location_id),
        ("gw:productType", position.product_type),
        ("gw:dtStart", _ts(interval.start)),
        ("gw:duration", interval.duration.value),
        ("gw:timeZone", None if interval.time_zone == "UTC" else interval.time_zone),
        ("gw:quantity", _fmt(position.quantity)),
        ("gw:cost", _fmt(position.cost)),
        ("gw:currency", position.currency),
        ("gw:quantityUnit", position.quantity_unit.value),
        ("gw:pricePer", position.price_per.value),
        ("gw:asOf", _ts(position.as_of)),
    ):
        if value is not None:
            w.sub(element, key, value)


def _put_party(w: _Writer, parent: _E, party: Party) -> None:
    element = w.sub(parent, "ei:eiRegistrationInfo")
    element.set(_XSI_TYPE, "gw:PartyRegistrationInfoType")
    w.sub(element, "gw:partyID", party.id)
    w.sub(element, "gw:name", _free_text(party.name))
    for role in party.roles:
        w.sub(element, "gw:role", role.value)
    for kind, value in party.identities.items():
        identity = w.sub(element, "gw:identity")
        w.sub(identity, "gw:kind", kind)
        w.sub(identity, "gw:value", value)
    w.sub(element, "gw:createdDateTime", _ts(party.created_at))
