"""CTS JSON codec (gateway.protocols.ei.json_codec): exact round trips, integer + scale arithmetic, strict decoding."""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.model import (
    Delivery,
    DeliveryQuality,
    EnergyProduct,
    EnergyUnit,
    Interval,
    OptionKind,
    OptionProduct,
    Party,
    Position,
    PowerUnit,
    ReactiveEnergyProduct,
    Resolution,
    Role,
    Side,
    Tender,
    TenderStatus,
    Transaction,
    TransportProduct,
)
from gateway.model.intervals import floor_to_boundary, interval_end
from gateway.protocols.ei import json_codec, streams
from gateway.protocols.ei.json_codec import decode, encode
from gateway.protocols.ei.messages import (
    CancelReason,
    EiDecodeError,
    EiMessage,
    EiResponse,
    Payload,
    PositionQuery,
    ResponseCode,
)

T0 = datetime(2030, 1, 7, tzinfo=UTC)
CREATED = datetime(2030, 1, 6, 12, 0, 0, 123456, tzinfo=UTC)
LA = "America/Los_Angeles"


# ------------------------------------------------------------------------------------------------------------------
# Builders


def tender(**changes: Any) -> Tender:
    data: dict[str, Any] = {
        "id": "t-1",
        "market_id": "m1",
        "party_id": "alice",
        "side": Side.BUY,
        "location_id": "sp-1",
        "rows": [
            {"start": T0, "quantity": Decimal("5"), "price": Decimal("0.125")},
            {"start": T0 + timedelta(hours=2), "quantity": Decimal("5.5"), "price": Decimal("-0.13")},
        ],
        "expires_at": T0,
        "created_at": CREATED,
    }
    data.update(changes)
    return Tender.model_validate(data)


def interval(start: datetime = T0, duration: Resolution = Resolution.HOUR, time_zone: str = "UTC") -> Interval:
    return Interval(start=start, duration=duration, time_zone=time_zone)


def transaction(**changes: Any) -> Transaction:
    data: dict[str, Any] = {
        "id": "x-1",
        "market_id": "m1",
        "party_id": "alice",
        "counterparty_id": "bob",
        "side": Side.SELL,
        "tender_id": "t-1",
        "location_id": "sp-1",
        "interval": interval(),
        "quantity": Decimal("2.25"),
        "price": Decimal("0.1"),
        "executed_at": CREATED,
    }
    data.update(changes)
    return Transaction.model_validate(data)


def position(**changes: Any) -> Position:
    data: dict[str, Any] = {
        "party_id": "alice",
        "market_id": "m1",
        "location_id": "sp-1",
        "interval": interval(),
        "quantity": Decimal("-2.5"),
        "cost": Decimal("-0.31"),
        "as_of": CREATED,
    }
    data.update(changes)
    return Position.model_validate(data)


def delivery(**changes: Any) -> Delivery:
    data: dict[str, Any] = {
        "id": "d-1",
        "party_id": "alice",
        "location_id": "sp-1",
        "interval": interval(duration=Resolution.FIFTEEN_MINUTES),
        "quantity": Decimal("-3.2"),
        "measured_at": CREATED,
    }
    data.update(changes)
    return Delivery.model_validate(data)


PARTY = Party(
    id="alice",
    name="Alice's house",
    roles=[Role.PROSUMER, Role.GRID_OPERATOR],
    identities={"ei-party": "alice@example"},
    created_at=CREATED,
)
RESPONSE = EiResponse(ResponseCode.OK, "OK", "r-1")

TRANSPORT_TENDER = tender(
    id="t-2",
    side=Side.SELL,
    product=TransportProduct(from_location_id="feeder-1", to_location_id="feeder-2"),
    status=TenderStatus.PARTIALLY_FILLED,
    all_or_none=True,
)
OPTION_TENDER = tender(
    id="t-3",
    product=OptionProduct(option_kind=OptionKind.PUT, strike=Decimal("0.2000001"), premium=Decimal("0.01")),
    expires_at=None,
)
REACTIVE_TENDER = tender(
    id="t-4",
    party_id="bob",
    product=ReactiveEnergyProduct(),
    quantity_unit=PowerUnit.KVAR,
    price_per=EnergyUnit.KVARH,
    currency="EUR",
    resolution=Resolution.DAY,
    time_zone=LA,
    rows=[
        {"start": datetime(2030, 3, 10, 8, tzinfo=UTC), "quantity": Decimal(7), "price": Decimal(3)},  # 23 h day
        {"start": datetime(2030, 3, 12, 7, tzinfo=UTC), "quantity": Decimal(0), "price": Decimal("1E+3")},
    ],
    expires_at=None,
)
TENDERS = [tender(), TRANSPORT_TENDER, OPTION_TENDER, REACTIVE_TENDER]
TRANSACTIONS = [
    transaction(),
    transaction(
        id="x-2",
        tender_id=None,
        clearing_id="clr-9",
        subscription_id="sub-1",
        product=TransportProduct(from_location_id="a", to_location_id="b"),
    ),
    transaction(
        id="x-3",
        product=OptionProduct(option_kind=OptionKind.CALL, strike=Decimal("0.3"), premium=Decimal("0.02")),
        interval=interval(datetime(2030, 1, 7, 8, 5, tzinfo=UTC), Resolution.FIVE_MINUTES, LA),
    ),
]
POSITIONS = [
    position(),
    position(product_type="transport", quantity=Decimal(4), cost=Decimal(0)),
    position(product_type="option"),
    position(product_type="reactive_energy", quantity_unit=PowerUnit.MVAR, price_per=EnergyUnit.MVARH),
]
DELIVERIES = [delivery(), delivery(id="d-2", resource_id="pv-1", quality=DeliveryQuality.ESTIMATED)]
QUERY = PositionQuery(market_id="m1", start=T0, end=T0 + timedelta(days=1))

FULL_MESSAGES = {
    Payload.REGISTER_PARTY: {"party": PARTY},
    Payload.REGISTERED_PARTY: {"response": RESPONSE, "party": PARTY},
    Payload.CREATE_TENDER: {"tenders": [tender()], "counterparty_id": "exchange"},
    Payload.CREATED_TENDER: {"response": RESPONSE, "tender_ids": ["t-1"]},
    Payload.CANCEL_TENDER: {"tender_ids": ["t-1", "t-2"], "cancel_reason": CancelReason.SUPERVISORY},
    Payload.CANCELED_TENDER: {
        "response": EiResponse(ResponseCode.CONFLICT, "tender t-2 is filled", None),
        "tender_ids": ["t-2"],
        "cancel_reason": CancelReason.REQUESTED,
    },
    Payload.REQUEST_TENDER: {"query": QUERY, "tender_ids": ["t-1"]},
    Payload.REPLY_TENDER: {"response": RESPONSE, "tenders": TENDERS},
    Payload.DISTRIBUTE_TENDER: {"tenders": TENDERS},
    Payload.CREATE_QUOTE: {"tenders": [OPTION_TENDER.model_copy(update={"status": TenderStatus.INDICATIVE})]},
    Payload.CREATED_QUOTE: {"response": RESPONSE, "tender_ids": ["q-1"]},
    Payload.CREATE_TRANSACTION: {"transactions": TRANSACTIONS},
    Payload.CREATED_TRANSACTION: {"response": RESPONSE, "transactions": TRANSACTIONS},
    Payload.REQUEST_POSITION: {"query": QUERY},
    Payload.REPLY_POSITION: {"response": RESPONSE, "positions": POSITIONS},
    Payload.CREATE_DELIVERY: {"deliveries": DELIVERIES},
    Payload.CREATED_DELIVERY: {"response": RESPONSE, "deliveries": DELIVERIES},
}
MINIMAL_MESSAGES = {
    Payload.REGISTERED_PARTY: {"response": EiResponse(ResponseCode.NOT_AUTHORIZED, "no", None)},
    Payload.CREATED_TENDER: {"response": RESPONSE},
    Payload.CANCEL_TENDER: {"tender_ids": ["t-1"]},
    Payload.REQUEST_TENDER: {},
    Payload.REPLY_TENDER: {"response": EiResponse(ResponseCode.NOT_FOUND, "unknown market", "r-1")},
    Payload.REQUEST_POSITION: {"query": PositionQuery()},
    Payload.REPLY_POSITION: {"response": RESPONSE},
    Payload.CREATED_TRANSACTION: {"response": EiResponse(ResponseCode.EXPIRED, "gone", None)},
}


def full_message(payload: Payload) -> EiMessage:
    return EiMessage(payload=payload, request_id="r-1", party_id="alice", **FULL_MESSAGES[payload])


def round_trip(message: EiMessage) -> EiMessage:
    data = encode(message)
    assert isinstance(data, bytes)
    assert data.isascii()
    decoded = decode(data)
    assert decoded == message
    assert encode(decoded) == data  # and the encoding is stable
    return decoded


# ------------------------------------------------------------------------------------------------------------------
# Round trips


def test_every_payload_has_an_example() -> None:
    assert set(FULL_MESSAGES) == set(Payload)


@pytest.mark.parametrize("payload", list(Payload))
def test_round_trip_every_payload_exact(payload: Payload) -> None:
    round_trip(full_message(payload))


@pytest.mark.parametrize("payload", list(MINIMAL_MESSAGES))
def test_round_trip_minimal_messages(payload: Payload) -> None:
    round_trip(EiMessage(payload=payload, **MINIMAL_MESSAGES[payload]))


def test_wire_shape_of_a_tender() -> None:
    doc = json.loads(encode(EiMessage(Payload.CREATE_TENDER, "r-1", "alice", tenders=[tender()])))
    assert doc == {
        "type": "eiCreateTender",
        "requestId": "r-1",
        "partyId": "alice",
        "tender": {
            "tenderId": "t-1",
            "partyId": "alice",
            "marketId": "m1",
            "side": "BUY",
            "resourceDesignator": "ENERGY",
            "location": "sp-1",
            "currency": "USD",
            "quantityUnit": "kW",
            "pricePer": "kWh",
            "expirationTime": "2030-01-07T00:00:00Z",
            "allOrNone": False,
            "createdDateTime": "2030-01-06T12:00:00.123456Z",
            "priceScale": -3,
            "quantityScale": -1,
            "stream": {
                "dtStart": "2030-01-07T00:00:00Z",
                "duration": "PT1H",
                "timeZone": "UTC",
                "intervals": [{"uid": 0, "price": 125, "quantity": 50}, {"uid": 2, "price": -130, "quantity": 55}],
            },
        },
    }


def test_wire_shape_of_products_and_responses() -> None:
    doc = json.loads(encode(full_message(Payload.REPLY_TENDER)))
    assert doc["response"] == {"responseCode": 200, "responseDescription": "OK", "requestId": "r-1"}
    transport, option, reactive = doc["tenders"][1:]
    assert transport["resourceDesignator"] == "TRANSPORT"
    assert (transport["fromLocation"], transport["toLocation"], transport["status"]) == (
        "feeder-1",
        "feeder-2",
        "PARTIALLY_FILLED",
    )
    assert option["option"] == {"optionType": "PUT", "strikePrice": 2000001, "premium": 100000}
    assert option["priceScale"] == -7 and "expirationTime" not in option
    assert (reactive["resourceDesignator"], reactive["quantityUnit"], reactive["pricePer"]) == (
        "ENERGY",
        "kvar",
        "kvarh",
    )
    # a 23-hour day in Los Angeles, then a gap of one day: uids count market days, not 24-hour steps
    assert reactive["stream"]["intervals"] == [
        {"uid": 0, "price": 3, "quantity": 7},
        {"uid": 2, "price": 1000, "quantity": 0},
    ]
    cancel = json.loads(encode(full_message(Payload.CANCEL_TENDER)))
    assert cancel["tenderIds"] == ["t-1", "t-2"] and cancel["reason"] == "SUPERVISORY"
    positions = json.loads(encode(full_message(Payload.REPLY_POSITION)))["positions"]
    assert positions[0]["quantity"] == -25 and positions[0]["quantityScale"] == -1
    assert positions[0]["cost"] == -31 and positions[0]["costScale"] == -2
    assert positions[2]["isOption"] is True and "isOption" not in positions[0]


def test_party_id_of_nested_objects_defaults_to_the_messages() -> None:
    doc = json.loads(encode(full_message(Payload.CREATE_TRANSACTION)))
    for item in doc["transactions"]:
        del item["partyId"], item["counterPartyId"]
    doc["counterPartyId"] = "bob"
    decoded = decode(json.dumps(doc).encode())
    assert [t.party_id for t in decoded.transactions] == ["alice"] * 3
    assert [t.counterparty_id for t in decoded.transactions] == ["bob"] * 3

    doc = json.loads(encode(full_message(Payload.CREATE_TENDER)))
    del doc["tender"]["partyId"], doc["partyId"]
    with pytest.raises(EiDecodeError) as caught:
        decode(json.dumps(doc).encode())
    assert caught.value.code == 400 and str(caught.value).startswith("tender.partyId: missing")


def test_power_designator_is_read_as_energy_and_optional_members_take_defaults() -> None:
    doc = vendor_tender()
    doc["tender"]["resourceDesignator"] = "POWER"
    for key in ("expirationTime", "allOrNone", "createdDateTime"):
        del doc["tender"][key]
    del doc["tender"]["stream"]["timeZone"]
    doc["requestId"] = None
    message = decode(json.dumps(doc).encode())
    (decoded,) = message.tenders
    assert isinstance(decoded.product, EnergyProduct)
    assert decoded.time_zone == "UTC" and decoded.expires_at is None and decoded.all_or_none is False
    assert decoded.status is TenderStatus.OPEN and message.request_id is None
    assert json.loads(encode(message))["tender"]["resourceDesignator"] == "ENERGY"


def test_decode_takes_bytes_like_and_text() -> None:
    data = encode(full_message(Payload.CREATE_TENDER))
    for form in (data, bytearray(data), memoryview(data), data.decode()):
        assert decode(form) == full_message(Payload.CREATE_TENDER)


def test_times_with_offsets_become_utc() -> None:
    doc = vendor_tender()
    doc["tender"]["stream"]["dtStart"] = "2030-01-06T16:00:00-08:00"
    doc["tender"]["expirationTime"] = "2030-01-07T01:00:00+01:00"
    (decoded,) = decode(json.dumps(doc).encode()).tenders
    assert decoded.rows[0]["start"] == T0 and decoded.rows[0]["start"].utcoffset() == timedelta(0)
    assert decoded.expires_at == T0


# ------------------------------------------------------------------------------------------------------------------
# Properties: random strips, random numbers; nothing is lost


def decimals(*, signed: bool) -> st.SearchStrategy[Decimal]:
    """Up to 9 fractional digits, or large magnitudes (up to ~10^29), as a vendor or a clearing might produce."""
    low = -(10**21) if signed else 0
    fractional = st.builds(lambda i, k: Decimal(i).scaleb(-k), st.integers(low, 10**21), st.integers(0, 9))
    large = st.builds(lambda i, k: Decimal(i).scaleb(k), st.integers(low, 10**21), st.integers(0, 8))
    return fractional | large | st.sampled_from([Decimal(0), Decimal("0.000000001"), Decimal("1.500")])


times = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC))
ids = st.text(st.characters(categories=("L", "N"), include_characters="-_.:@"), min_size=1, max_size=12)


@st.composite
def products(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["energy", "reactive", "transport", "option"]))
    if kind == "reactive":
        units = draw(st.sampled_from([(PowerUnit.VAR, EnergyUnit.VARH), (PowerUnit.KVAR, EnergyUnit.MVARH)]))
        return {"product": ReactiveEnergyProduct(), "quantity_unit": units[0], "price_per": units[1]}
    units = draw(st.sampled_from([(PowerUnit.KW, EnergyUnit.KWH), (PowerUnit.MW, EnergyUnit.MWH)]))
    out: dict[str, Any] = {"quantity_unit": units[0], "price_per": units[1]}
    if kind == "transport":
        out["product"] = TransportProduct(from_location_id="a", to_location_id="b")
    elif kind == "option":
        out["product"] = OptionProduct(
            option_kind=draw(st.sampled_from(OptionKind)),
            strike=draw(decimals(signed=False)),
            premium=draw(decimals(signed=False)),
        )
    return out


@st.composite
def strips(draw: st.DrawFn) -> Tender:
    resolution = draw(st.sampled_from([Resolution.FIVE_MINUTES, Resolution.FIFTEEN_MINUTES, Resolution.HOUR]))
    resolution = draw(st.sampled_from([resolution, Resolution.DAY]))
    time_zone = draw(st.sampled_from(["UTC", LA]))
    current = floor_to_boundary(draw(times), resolution, time_zone)
    starts = []
    for gap in draw(st.lists(st.integers(0, 3) | st.just(0), min_size=1, max_size=48)):
        for _ in range(gap):
            current = interval_end(current, resolution, time_zone)
        starts.append(current)
        current = interval_end(current, resolution, time_zone)
    rows = [
        {"start": start, "quantity": draw(decimals(signed=False)), "price": draw(decimals(signed=True))}
        for start in starts
    ]
    expiry = draw(st.none() | st.integers(0, 10**8))
    return Tender(
        id=draw(ids),
        market_id=draw(ids),
        party_id=draw(ids),
        side=draw(st.sampled_from(Side)),
        location_id=draw(ids),
        resolution=resolution,
        time_zone=time_zone,
        rows=rows,
        expires_at=None if expiry is None else current - timedelta(microseconds=expiry),
        all_or_none=draw(st.booleans()),
        status=draw(st.sampled_from(TenderStatus)),
        created_at=draw(times),
        currency=draw(st.sampled_from(["USD", "EUR", "JPY"])),
        **draw(products()),
    )


def assert_exact_numbers(doc: dict[str, Any], original: Tender) -> None:
    """The JSON holds integers only, and integer x 10^scale is exactly each original value."""
    price_scale, quantity_scale = doc["priceScale"], doc["quantityScale"]
    assert -18 <= price_scale <= 0 and -18 <= quantity_scale <= 0
    for item, row in zip(doc["stream"]["intervals"], original.rows, strict=True):
        assert type(item["price"]) is int and type(item["quantity"]) is int
        assert streams.from_scaled(item["price"], price_scale) == row["price"]
        assert streams.from_scaled(item["quantity"], quantity_scale) == row["quantity"]
    # the largest scale that keeps every digit: one step coarser would lose one
    values = [row["price"] for row in original.rows]
    if price_scale < 0 and "option" not in doc:
        assert any(v.scaleb(-(price_scale + 1)) != v.scaleb(-(price_scale + 1)).to_integral_value() for v in values)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strips(), st.sampled_from([Payload.CREATE_TENDER, Payload.DISTRIBUTE_TENDER]))
def test_random_tenders_round_trip_exactly(original: Tender, payload: Payload) -> None:
    message = EiMessage(payload=payload, request_id="r", party_id=original.party_id, tenders=[original])
    decoded = round_trip(message).tenders[0]
    assert decoded == original
    for got, want in zip(decoded.rows, original.rows, strict=True):
        assert got["start"] == want["start"] and got["price"] == want["price"] and got["quantity"] == want["quantity"]
    doc = json.loads(encode(message))
    assert_exact_numbers(doc["tender"] if payload is Payload.CREATE_TENDER else doc["tenders"][0], original)


@st.composite
def intervals(draw: st.DrawFn) -> Interval:
    resolution = draw(st.sampled_from([Resolution.FIVE_MINUTES, Resolution.HOUR, Resolution.DAY, Resolution.MONTH]))
    time_zone = draw(st.sampled_from(["UTC", LA, "Asia/Kolkata"]))
    return Interval(
        start=floor_to_boundary(draw(times), resolution, time_zone), duration=resolution, time_zone=time_zone
    )


@st.composite
def transactions(draw: st.DrawFn) -> Transaction:
    party, counterparty = draw(st.lists(ids, min_size=2, max_size=2, unique=True))
    return Transaction(
        id=draw(ids),
        market_id=draw(ids),
        party_id=party,
        counterparty_id=counterparty,
        side=draw(st.sampled_from(Side)),
        tender_id=draw(st.none() | ids),
        clearing_id=draw(st.none() | ids),
        subscription_id=draw(st.none() | ids),
        location_id=draw(ids),
        interval=draw(intervals()),
        quantity=draw(decimals(signed=False)),
        price=draw(decimals(signed=True)),
        executed_at=draw(times),
        currency=draw(st.sampled_from(["USD", "AUD"])),
        **draw(products()),
    )


@st.composite
def positions(draw: st.DrawFn) -> Position:
    product_type = draw(st.sampled_from(["energy", "reactive_energy", "transport", "option"]))
    units = (PowerUnit.KVAR, EnergyUnit.KVARH) if product_type == "reactive_energy" else (PowerUnit.KW, EnergyUnit.KWH)
    return Position(
        party_id=draw(ids),
        market_id=draw(ids),
        location_id=draw(ids),
        product_type=product_type,
        interval=draw(intervals()),
        quantity=draw(decimals(signed=True)),
        cost=draw(decimals(signed=True)),
        as_of=draw(times),
        quantity_unit=units[0],
        price_per=units[1],
    )


@st.composite
def deliveries(draw: st.DrawFn) -> Delivery:
    return Delivery(
        id=draw(ids),
        party_id=draw(ids),
        location_id=draw(ids),
        resource_id=draw(st.none() | ids),
        interval=draw(intervals()),
        quantity=draw(decimals(signed=True)),
        quantity_unit=draw(st.sampled_from(PowerUnit)),
        quality=draw(st.sampled_from(DeliveryQuality)),
        measured_at=draw(times),
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(transactions(), min_size=1, max_size=4))
def test_random_transactions_round_trip_exactly(items: list[Transaction]) -> None:
    decoded = round_trip(EiMessage(Payload.CREATE_TRANSACTION, "r", "p", transactions=items)).transactions
    assert decoded == items
    doc = json.loads(encode(EiMessage(Payload.CREATE_TRANSACTION, transactions=items)))
    for item, original in zip(doc["transactions"], items, strict=True):
        assert type(item["price"]) is int and type(item["quantity"]) is int
        assert streams.from_scaled(item["price"], item["priceScale"]) == original.price
        assert streams.from_scaled(item["quantity"], item["quantityScale"]) == original.quantity


@settings(max_examples=150, deadline=None)
@given(st.lists(positions(), max_size=4))
def test_random_positions_round_trip_exactly(items: list[Position]) -> None:
    response = EiResponse(ResponseCode.OK, "OK", "r")
    decoded = round_trip(EiMessage(Payload.REPLY_POSITION, "r", response=response, positions=items)).positions
    assert decoded == items and [p.id for p in decoded] == [p.id for p in items]
    doc = json.loads(encode(EiMessage(Payload.REPLY_POSITION, response=response, positions=items)))
    for item, original in zip(doc.get("positions", []), items, strict=True):
        assert streams.from_scaled(item["quantity"], item["quantityScale"]) == original.quantity
        assert streams.from_scaled(item["cost"], item["costScale"]) == original.cost


@settings(max_examples=150, deadline=None)
@given(st.lists(deliveries(), min_size=1, max_size=4))
def test_random_deliveries_round_trip_exactly(items: list[Delivery]) -> None:
    assert round_trip(EiMessage(Payload.CREATE_DELIVERY, "r", "p", deliveries=items)).deliveries == items


@settings(max_examples=300, deadline=None)
@given(st.integers(-(10**47), 10**47), st.integers(-18, 18))
def test_scaled_integers_are_exactly_streams_from_scaled(value: int, scale: int) -> None:
    """The codec's fast conversion gives the very Decimal streams.from_scaled gives (digits and exponent)."""
    if not -json_codec._LIMITS[scale] < value < json_codec._LIMITS[scale]:
        return
    fast = json_codec._scaled(value, scale, "x", "scale")
    exact = streams.from_scaled(value, scale)
    assert fast.as_tuple() == exact.as_tuple()


def test_more_than_28_significant_digits_keep_every_digit() -> None:
    """Decimal's default context has 28 digits; a 30-digit price must neither round nor fail."""
    price = Decimal("12345678901234567890.123456789")
    original = tender(rows=[{"start": T0, "quantity": Decimal("99999999999999999999.999999999"), "price": price}])
    decoded = round_trip(EiMessage(Payload.CREATE_TENDER, tenders=[original]))
    assert decoded.tenders[0].rows[0]["price"] == price
    doc = json.loads(encode(EiMessage(Payload.CREATE_TENDER, tenders=[original])))
    assert doc["tender"]["stream"]["intervals"][0]["price"] == 12345678901234567890123456789


# ------------------------------------------------------------------------------------------------------------------
# Decoding refuses what it must


def vendor_tender() -> dict[str, Any]:
    """An eiCreateTender as a vendor would write it from the module docstring."""
    return {
        "type": "eiCreateTender",
        "requestId": "r-17",
        "partyId": "alice",
        "counterPartyId": "exchange",
        "tender": {
            "tenderId": "t-1",
            "partyId": "alice",
            "marketId": "m1",
            "side": "BUY",
            "resourceDesignator": "ENERGY",
            "location": "sp-1",
            "currency": "USD",
            "quantityUnit": "kW",
            "pricePer": "kWh",
            "expirationTime": "2030-01-07T00:00:00Z",
            "allOrNone": False,
            "createdDateTime": "2030-01-06T12:00:00Z",
            "priceScale": -4,
            "quantityScale": 0,
            "stream": {
                "dtStart": "2030-01-07T00:00:00Z",
                "duration": "PT1H",
                "timeZone": "UTC",
                "intervals": [{"uid": 0, "price": 1250, "quantity": 5}, {"uid": 2, "price": 1300, "quantity": 5}],
            },
        },
    }


def test_vendor_example_decodes() -> None:
    message = decode(json.dumps(vendor_tender()).encode())
    assert message.payload is Payload.CREATE_TENDER and message.counterparty_id == "exchange"
    (decoded,) = message.tenders
    assert [row["price"] for row in decoded.rows] == [Decimal("0.125"), Decimal("0.13")]
    assert [row["start"] for row in decoded.rows] == [T0, T0 + timedelta(hours=2)]


def refusal(document: Any) -> EiDecodeError:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    with pytest.raises(EiDecodeError) as caught:
        decode(data)
    message = str(caught.value)
    assert message and "\n" not in message and len(message) < 400
    return caught.value


def mutate(path: str, value: Any = ..., *, delete: bool = False) -> dict[str, Any]:
    """vendor_tender() with the member at ``path`` (dots, [i] as .i) replaced or deleted."""
    doc = vendor_tender()
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if delete:
        del node[key]
    else:
        node[key] = value
    return doc


def test_float_price_is_refused() -> None:
    error = refusal(mutate("tender.stream.intervals.0.price", 1.5))
    assert error.code == 400
    assert str(error).startswith("tender.stream.intervals[0].price: must be an integer")
    assert "1.5" in str(error)
    for text in (b"1.0", b"1e3", b"2E+0", b"0.10000000000000000001"):
        data = json.dumps(vendor_tender()).encode().replace(b'"price": 1250', b'"price": ' + text)
        assert refusal(data).code == 400


def test_unknown_member_is_refused_with_a_hint() -> None:
    doc = vendor_tender()
    doc["tender"]["tenderID"] = doc["tender"].pop("tenderId")
    error = refusal(doc)
    assert error.code == 400 and "tender.tenderI" in str(error)  # missing tenderId reported first
    doc = vendor_tender()
    doc["tender"]["expirationTme"] = "2030-01-07T00:00:00Z"
    error = refusal(doc)
    assert str(error) == "tender.expirationTme: unknown member; did you mean 'expirationTime'?"
    doc = vendor_tender()
    doc["tenders"] = []
    assert str(refusal(doc)).startswith("tenders: unknown member")  # a member of another payload
    doc = vendor_tender()
    doc["tender"]["stream"]["intervals"][1]["note"] = "x"
    assert str(refusal(doc)).startswith("tender.stream.intervals[1].note: unknown member")


BAD_INPUTS = [
    # (case, document or bytes, code, start of the reason)
    ("not JSON", b"{not json", 400, "message: not JSON"),
    ("not UTF-8", b'{"type": "\xff"}', 400, "message: not JSON"),
    ("NaN", b'{"type": NaN}', 400, "message: not JSON: NaN"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, 400, "message: not JSON"),
    ("too large", b" " * (4 * 1024 * 1024 + 1), 400, "message: the message has"),
    ("an array", [vendor_tender()], 400, "message: must be a JSON object"),
    ("duplicate member", b'{"type": "eiCreateTender", "type": "eiCancelTender"}', 400, "message: duplicate member"),
    ("no type", {"requestId": "r"}, 400, "type: missing"),
    ("unknown type", {"type": "eiCreateTenders"}, 400, "type: must be one of"),
    ("missing tenderId", mutate("tender.tenderId", delete=True), 400, "tender.tenderId: missing"),
    ("null tenderId", mutate("tender.tenderId", None), 400, "tender.tenderId: missing (null)"),
    ("null price", mutate("tender.stream.intervals.0.price", None), 400, "tender.stream.intervals[0].price: must"),
    ("missing payload body", {"type": "eiCreateTender"}, 400, "tender: missing"),
    ("null required body", {"type": "eiCreateTender", "tender": None}, 400, "tender: missing"),
    ("tender not an object", mutate("tender", [1]), 400, "tender: must be an object"),
    ("tenderId a number", mutate("tender.tenderId", 7), 400, "tender.tenderId: must be a string"),
    ("side lower case", mutate("tender.side", "buy"), 400, "tender.side: must be one of BUY, SELL"),
    ("bad designator", mutate("tender.resourceDesignator", "GAS"), 400, "tender.resourceDesignator: must be one"),
    ("allOrNone a string", mutate("tender.allOrNone", "yes"), 400, "tender.allOrNone: must be true or false"),
    ("bad unit", mutate("tender.quantityUnit", "kWh"), 400, "tender.quantityUnit: must be one of"),
    ("bad time", mutate("tender.expirationTime", "tomorrow"), 400, 'tender.expirationTime: "tomorrow" is not'),
    ("time a number", mutate("tender.stream.dtStart", 1893974400), 400, "tender.stream.dtStart: must be a date"),
    ("naive time", mutate("tender.stream.dtStart", "2030-01-07T00:00:00"), 400, "tender.stream.dtStart: "),
    ("sub-microsecond time", mutate("tender.stream.dtStart", "2030-01-07T00:00:00.0000001Z"), 400, "tender.stream"),
    ("bad duration", mutate("tender.stream.duration", "1 hour"), 400, "tender.stream.duration: must be an ISO"),
    ("scale a float", mutate("tender.priceScale", -4.0), 400, "tender.priceScale: must be an integer from -18"),
    ("scale too small", mutate("tender.priceScale", -19), 400, "tender.priceScale: must be an integer from -18"),
    ("scale a boolean", mutate("tender.quantityScale", True), 400, "tender.quantityScale: must be an integer"),
    ("value too large", mutate("tender.stream.intervals.1.quantity", 10**30), 400, "tender.stream.intervals[1]"),
    ("quantity a string", mutate("tender.stream.intervals.0.quantity", "5"), 400, "tender.stream.intervals[0].q"),
    ("uid negative", mutate("tender.stream.intervals.0.uid", -1), 400, "tender.stream.intervals[0].uid: must be"),
    ("uid huge", mutate("tender.stream.intervals.1.uid", 10**12), 400, "tender.stream.intervals[1].uid: must be"),
    ("interval not object", mutate("tender.stream.intervals.1", 5), 400, "tender.stream.intervals[1]: must be an"),
    ("intervals not array", mutate("tender.stream.intervals", {}), 400, "tender.stream.intervals: must be an array"),
    ("requestId empty", mutate("requestId", ""), 400, "requestId: must be 1 to 200"),
    ("transport without ends", mutate("tender.resourceDesignator", "TRANSPORT"), 400, "tender.fromLocation: missing"),
    ("ends without transport", mutate("tender.fromLocation", "a"), 400, "tender.fromLocation: only with"),
    # well formed, refused by the canonical model: 422
    ("misaligned dtStart", mutate("tender.stream.dtStart", "2030-01-07T00:20:00Z"), 422, "tender.stream.dtStart: "),
    ("negative quantity", mutate("tender.stream.intervals.1.quantity", -5), 422, "tender.stream.intervals[1].quan"),
    ("uids not increasing", mutate("tender.stream.intervals.1.uid", 0), 422, "tender.stream.intervals[1].uid: 0"),
    ("expiry after last", mutate("tender.expirationTime", "2030-01-08T00:00:00Z"), 422, "tender.expirationTime: "),
    ("unknown currency", mutate("tender.currency", "XYZ"), 422, "tender.currency: 'XYZ' is not an ISO 4217"),
    ("unknown zone", mutate("tender.stream.timeZone", "Mars/Olympus"), 422, "tender.stream.timeZone: unknown time"),
    ("not a market duration", mutate("tender.stream.duration", "PT10M"), 422, 'tender.stream.duration: "PT10M"'),
    ("reactive price unit", mutate("tender.pricePer", "kvarh"), 422, "tender: a energy product needs real units"),
    ("id with a slash", mutate("tender.marketId", "a/b"), 422, "tender.marketId: String should match pattern"),
    ("bad sender id", mutate("partyId", "al ice"), 422, 'partyId: "al ice" is not an id'),
    ("empty intervals", mutate("tender.stream.intervals", []), 422, "tender.stream.intervals: List should have"),
]


@pytest.mark.parametrize(("case", "document", "code", "reason"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_with_code_and_reason(case: str, document: Any, code: int, reason: str) -> None:
    error = refusal(document)
    assert (error.code, str(error)[: len(reason)]) == (code, reason), str(error)


def test_other_objects_are_refused_with_paths() -> None:
    doc = json.loads(encode(full_message(Payload.CREATE_TRANSACTION)))
    doc["transactions"][1]["counterPartyId"] = "alice"
    error = refusal(doc)
    assert (error.code, str(error)) == (422, "transactions[1]: a party cannot trade with itself")
    doc = json.loads(encode(full_message(Payload.CREATE_TRANSACTION)))
    doc["transactions"][0]["interval"]["dtStart"] = "2030-01-07T00:05:00Z"
    error = refusal(doc)
    assert error.code == 422 and str(error).startswith("transactions[0].interval: interval start")
    doc = json.loads(encode(full_message(Payload.CREATE_TRANSACTION)))
    doc["transactions"][2]["option"]["strikePrice"] = -1
    error = refusal(doc)
    assert error.code == 422 and str(error).startswith("transactions[2].option.strikePrice: Input should be greater")
    doc = json.loads(encode(full_message(Payload.CREATE_DELIVERY)))
    doc["deliveries"][0]["quality"] = "GUESSED"
    assert str(refusal(doc)).startswith("deliveries[0].quality: must be one of MEASURED")
    doc = json.loads(encode(full_message(Payload.REPLY_POSITION)))
    doc["positions"][1]["isOption"] = True
    assert str(refusal(doc)).startswith("positions[1].isOption: only with resourceDesignator ENERGY")
    doc = json.loads(encode(full_message(Payload.REPLY_POSITION)))
    doc["response"]["responseCode"] = 201
    assert str(refusal(doc)).startswith("response.responseCode: must be one of 200, 400")
    doc = json.loads(encode(full_message(Payload.REQUEST_POSITION)))
    doc["query"]["end"] = doc["query"]["start"]
    assert refusal(doc).code == 422
    assert str(refusal({"type": "eiCancelTender", "tenderIds": []})) == "tenderIds: must hold at least one item"
    assert str(refusal({"type": "eiCancelTender", "tenderIds": ["t"], "reason": "BORED"})).startswith("reason:")
    doc = json.loads(encode(full_message(Payload.REGISTER_PARTY)))
    doc["party"]["roles"] = ["PROSUMER", "KING"]
    assert str(refusal(doc)).startswith("party.roles[1]: must be one of CONSUMER")


def test_calendar_streams_are_bounded() -> None:
    doc = mutate("tender.stream.duration", "P1Y")
    doc["tender"]["stream"]["dtStart"] = "2030-01-01T00:00:00Z"
    doc["tender"]["stream"]["intervals"] = [{"uid": 39_999, "price": 1, "quantity": 1}]
    doc["tender"]["expirationTime"] = None
    assert refusal(doc).code == 422  # beyond the year 9999, refused, not crashed
    doc["tender"]["stream"]["intervals"] = [{"uid": 40_001, "price": 1, "quantity": 1}]
    assert refusal(doc).code == 400


def test_calendar_walks_are_budgeted_per_message() -> None:
    """Each far day costs a walk; many of them in one small message are refused, not computed for minutes."""
    one = json.loads(encode(EiMessage(Payload.CREATE_TENDER, tenders=[REACTIVE_TENDER])))["tender"]
    one["stream"]["intervals"] = [{"uid": 30_000, "price": 1, "quantity": 1}]
    doc = {"type": "eiDistributeTender", "partyId": "bob", "tenders": [one] * 6}
    assert len(decode(json.dumps({**doc, "tenders": [one] * 6}).encode()).tenders) == 6
    began = time.perf_counter()
    error = refusal({**doc, "tenders": [one] * 5000})
    assert error.code == 400 and str(error).startswith("tenders[6].stream.intervals: the message's calendar streams")
    assert time.perf_counter() - began < 5


# ------------------------------------------------------------------------------------------------------------------
# Fuzz: whatever arrives, only EiDecodeError escapes

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["2030-01-07T00:00:00Z", "PT1H", "P1D", "BUY", "ENERGY", "TRANSPORT", "kW", "eiCreateTender"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)


def decode_or_refuse(data: bytes) -> None:
    try:
        message = decode(data)
    except EiDecodeError as error:
        assert error.code in (400, 422) and "\n" not in str(error)
        return
    assert isinstance(message, EiMessage)
    encode(message)  # whatever decodes can be written back


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_fuzz_random_json_values(value: Any) -> None:
    decode_or_refuse(json.dumps(value).encode())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(Payload)), st.dictionaries(st.sampled_from(sorted(json_codec._MEMBERS)), json_values))
def test_fuzz_random_members_of_each_payload(payload: Payload, members: dict[str, Any]) -> None:
    decode_or_refuse(json.dumps({"type": payload.value, **members}).encode())


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data: bytes) -> None:
    decode_or_refuse(data)


def locations(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) in a JSON document."""
    items = enumerate(node) if isinstance(node, list) else node.items() if isinstance(node, dict) else ()
    for key, child in items:
        out.append((node, key))
        locations(child, out)
    return out


VALID_DOCUMENTS = [json.loads(encode(full_message(payload))) for payload in Payload] + [vendor_tender()]
REPLACEMENTS = json_values | st.sampled_from([1.5, -1, 0, 10**40, "", "x" * 300, "2030-01-07T00:20:00", [], {}, None])


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(range(len(VALID_DOCUMENTS))), st.data())
def test_fuzz_mutated_valid_documents(which: int, data: st.DataObject) -> None:
    doc = copy.deepcopy(VALID_DOCUMENTS[which])
    for _ in range(data.draw(st.integers(1, 3))):
        places = locations(doc, [])
        container, key = data.draw(st.sampled_from(places))
        action = data.draw(st.sampled_from(["replace", "delete", "add", "int"]))
        if action == "replace":
            container[key] = data.draw(REPLACEMENTS)
        elif action == "delete":
            del container[key]
        elif action == "add" and isinstance(container, dict):
            container[data.draw(st.text(max_size=12))] = data.draw(json_values)
        elif action == "int":
            container[key] = data.draw(st.integers(-(10**35), 10**35))
    decode_or_refuse(json.dumps(doc).encode())


# ------------------------------------------------------------------------------------------------------------------
# Encoding refuses what it cannot write; speed


def test_encode_refuses_what_the_payload_does_not_carry() -> None:
    with pytest.raises(ValueError, match="eiCancelTender carries no tenders"):
        encode(EiMessage(Payload.CANCEL_TENDER, tender_ids=["t"], tenders=[tender()]))
    with pytest.raises(ValueError, match="eiCreateTender needs tenders"):
        encode(EiMessage(Payload.CREATE_TENDER))
    with pytest.raises(ValueError, match="exactly one tender"):
        encode(EiMessage(Payload.CREATE_TENDER, tenders=[tender(), tender(id="t-2")]))
    with pytest.raises(ValueError, match="needs response"):
        encode(EiMessage(Payload.REPLY_TENDER, tenders=[tender()]))


def test_encode_refuses_values_it_cannot_write_exactly() -> None:
    tiny = tender(rows=[{"start": T0, "quantity": Decimal(1), "price": Decimal("1E-19")}])
    with pytest.raises(ValueError, match="more than 18 fractional digits"):
        encode(EiMessage(Payload.CREATE_TENDER, tenders=[tiny]))
    huge = tender(rows=[{"start": T0, "quantity": Decimal("1E+30"), "price": Decimal(1)}])
    with pytest.raises(ValueError, match="30 or more digits"):
        encode(EiMessage(Payload.CREATE_TENDER, tenders=[huge]))
    mismatched = position(product_type="energy", quantity_unit=PowerUnit.KVAR)
    with pytest.raises(ValueError, match="cannot be written"):
        encode(EiMessage(Payload.REPLY_POSITION, response=RESPONSE, positions=[mismatched]))


def test_decoding_a_24_interval_tender_is_fast() -> None:
    rows = [
        {"start": T0 + timedelta(hours=i), "quantity": Decimal(i) / 4, "price": Decimal("0.1") + i} for i in range(24)
    ]
    data = encode(EiMessage(Payload.CREATE_TENDER, "r", "alice", tenders=[tender(rows=rows, expires_at=None)]))
    decode(data)
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(200):
            decode(data)
        best = min(best, (time.perf_counter() - began) / 200)
    assert 1 / best > 5_000, f"{1 / best:.0f} decodes/s"
