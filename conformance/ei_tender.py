"""Suite ei-tender: the DUT is a TeMIX party-facing market service (an EI/CTS server), the harness a TeMIX party.

``--target`` is the service's base URL (e.g. ``https://host:port/ei/v1``): every request is one EI message POSTed
to ``<target>/messages`` as EI 1.0 XML (``application/xml``) or CTS JSON (``application/json``), and the ticker,
where the DUT has one, is ``GET <target>/ticker?market_id=...``. The harness party is ``--party`` with
``--token`` (a bearer token) or the run's client certificate (``--cert``/``--key``); it tenders in market
``--market`` at location ``--location``, which the DUT must know. A second party (``--alt-party`` with
``--alt-token`` or ``--alt-cert``/``--alt-key``) accepts the harness party's tenders and tries to act on them;
without one, the cases that need it are skipped with the reason. ``--format xml|json|both`` (default both) says
what the DUT speaks: the lifecycle cases use CTS JSON when it is spoken, each format has its own round-trip
case, and the cases of a format the DUT does not speak are skipped. Target options without a flag of their own
(``--option NAME=VALUE``): ``resolution`` (the market's interval, default PT1H), ``time_zone`` (UTC),
``currency`` (USD), ``lead_intervals`` (how far ahead the harness tenders, default 3 intervals),
``expiry_seconds`` (the short expiry of EI-TND-016, default 2) and ``counterparty`` (the market's operator, sent
as the messages' counterPartyID).

Every case creates its own tenders with fresh ids, so cases run alone (``--only``) or again against the same
DUT. Refusals are checked by their EI responseCode (EI 1.0 eiResponse; the codes are HTTP's: 400 malformed,
403 not yours, 404 unknown, 409 no longer open, 410 expired, 422 refused by a market rule), carried with HTTP
status 200 or the same code. Rules name the EI 1.0 service and operation (EiTender, EiTransaction), the CTS 1.0
facet (Position, Ticker) or the TeMIX rule a case checks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from conformance.ei_harness import (
    COST_TOLERANCE,
    MEDIA,
    QUANTITY,
    XML_MEDIA,
    Harness,
    HarnessOptions,
    PartyClient,
    decode_answer,
    expect_ok,
    expect_refused,
    expected_cost,
    fresh_id,
    sleep_past,
    tender_differences,
)
from conformance.framework import Exchange, Severity, Target, case
from gateway.model import Tender, TenderStatus, utc_now
from gateway.model.market import Side
from gateway.protocols.ei import json_codec, xml_codec
from gateway.protocols.ei.messages import Payload


@pytest.fixture(scope="module")
def options(target: Target) -> HarnessOptions:
    """The run's options, read once; a missing or bad one fails every case with what to pass."""
    try:
        return HarnessOptions.of(target)
    except ValueError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def harness(target: Target, exchanges: list[Exchange], options: HarnessOptions) -> Iterator[Harness]:
    """One connection per party for the whole run (the log it writes to is emptied between cases)."""
    client = Harness(target, exchanges, options)
    yield client
    client.close()


@pytest.fixture
def alt(harness: Harness) -> PartyClient:
    """The second party; the case is skipped (with the reason) when there is none."""
    if harness.alt is None:
        pytest.skip(harness.options.alt_problem or "no second party")
    return harness.alt


def speaks(options: HarnessOptions, fmt: str) -> None:
    if fmt not in options.formats:
        pytest.skip(f"the DUT is run with --format {options.formats[0]}: it does not speak {fmt.upper()}")


def assert_not_open(harness: Harness, tender: Tender, why: str) -> None:
    found = harness.open_tenders(tender.rows[0]["start"])
    assert tender.id not in found, f"tender {tender.id} is still among the market's open tenders {why}"


# --- creating tenders ------------------------------------------------------------------------------------------


@case(
    "EI-TND-001",
    "A sell tender is created: eiCreatedTender, responseCode 200, naming the tender",
    "EI 1.0 EiTender: eiCreateTender / eiCreatedTender",
)
def test_create_sell(harness: Harness) -> None:
    tender = harness.tender(Side.SELL)
    created = expect_ok(harness.create(tender), Payload.CREATED_TENDER, "eiCreateTender (sell)")
    assert tender.id in created.tender_ids, f"eiCreatedTender names {created.tender_ids}, not tender {tender.id}"


@case(
    "EI-TND-002",
    "A buy tender is created: eiCreatedTender, responseCode 200, naming the tender",
    "EI 1.0 EiTender: eiCreateTender / eiCreatedTender",
)
def test_create_buy(harness: Harness) -> None:
    tender = harness.tender(Side.BUY)
    created = expect_ok(harness.create(tender), Payload.CREATED_TENDER, "eiCreateTender (buy)")
    assert tender.id in created.tender_ids, f"eiCreatedTender names {created.tender_ids}, not tender {tender.id}"


@case(
    "EI-TND-003", "An answer carries the requestID of its request", "EI 1.0 eiResponse: requestID", Severity.RECOMMENDED
)
def test_request_id_echoed(harness: Harness) -> None:
    tender = harness.tender(Side.SELL)
    message = harness.message(Payload.CREATE_TENDER, tenders=[tender])
    answer = expect_ok(harness.me.send(message, harness.options.primary), Payload.CREATED_TENDER, "eiCreateTender")
    echoed = {answer.request_id, answer.response.request_id if answer.response else None} - {None}
    assert message.request_id in echoed, f"requestID {message.request_id} came back as {sorted(echoed) or 'nothing'}"


@case(
    "EI-TND-004",
    "A created tender is open, and eiRequestTender returns it as it was sent",
    "EI 1.0 EiTender: eiRequestTender / eiReplyTender",
)
def test_tender_queryable(harness: Harness) -> None:
    tender = harness.created(harness.tender(Side.SELL))
    found = harness.open_tenders(tender.rows[0]["start"])
    assert tender.id in found, f"eiReplyTender does not list the open tender {tender.id} ({len(found)} listed)"
    differences = tender_differences(tender, found[tender.id])
    assert not differences, f"tender {tender.id} came back changed: {'; '.join(differences)}"
    status = found[tender.id].status
    assert status is TenderStatus.OPEN, f"a tender just created is {status.value}, not open"


@case(
    "EI-TND-005",
    "The ticker shows an open tender",
    "CTS 1.0 Ticker; TeMIX ticker (eiDistributeTender)",
    Severity.RECOMMENDED,
)
def test_ticker_shows_open_tender(harness: Harness) -> None:
    tender = harness.created(harness.tender(Side.SELL, start=harness.start(1)))
    answer = decode_answer(harness.ticker())
    if answer.status in (404, 405, 501) and answer.message is None:
        pytest.skip(f"the DUT offers no ticker at <target>/ticker (HTTP {answer.status})")
    ticker = answer.message
    assert answer.status == 200 and ticker is not None and ticker.payload is Payload.DISTRIBUTE_TENDER, (
        f"GET ticker: expected HTTP 200 with an eiDistributeTender, got {answer.describe()}"
    )
    ids = [t.id for t in ticker.tenders]
    assert tender.id in ids, f"the ticker does not show the open tender {tender.id} ({len(ids)} tenders shown)"


# --- cancelling ------------------------------------------------------------------------------------------------


@case(
    "EI-TND-006",
    "A cancelled tender is confirmed with eiCanceledTender and is no longer open",
    "EI 1.0 EiTender: eiCancelTender / eiCanceledTender",
)
def test_cancel(harness: Harness) -> None:
    tender = harness.created(harness.tender(Side.SELL))
    cancelled = expect_ok(harness.cancel(tender.id), Payload.CANCELED_TENDER, f"eiCancelTender {tender.id}")
    assert not cancelled.tender_ids or tender.id in cancelled.tender_ids, (
        f"eiCanceledTender names {cancelled.tender_ids}, not {tender.id}"
    )
    assert_not_open(harness, tender, "after it was cancelled")
    answer = decode_answer(harness.ticker())
    if answer.status == 200 and answer.message is not None and answer.message.payload is Payload.DISTRIBUTE_TENDER:
        assert tender.id not in {t.id for t in answer.message.tenders}, f"the ticker still shows cancelled {tender.id}"


@case(
    "EI-TND-007",
    "Cancelling a tender that is no longer open is refused with 409",
    "EI 1.0 EiTender: eiCancelTender; responseCode 409",
)
def test_cancel_twice(harness: Harness) -> None:
    tender = harness.created(harness.tender(Side.BUY))
    expect_ok(harness.cancel(tender.id), Payload.CANCELED_TENDER, f"the first eiCancelTender of {tender.id}")
    expect_refused(harness.cancel(tender.id), {409}, f"cancelling the cancelled tender {tender.id} again")


@case(
    "EI-TND-008",
    "Cancelling an unknown tender is refused with 404",
    "EI 1.0 EiTender: eiCancelTender; responseCode 404",
)
def test_cancel_unknown(harness: Harness) -> None:
    expect_refused(harness.cancel(fresh_id("unknown")), {404}, "cancelling a tender id the DUT never saw")


# --- identity --------------------------------------------------------------------------------------------------


@case(
    "EI-TND-009",
    "A tender sent as another party is refused with 403 and not created",
    "EI 1.0 party identity (partyID); responseCode 403",
)
def test_tender_as_another_party(harness: Harness, alt: PartyClient) -> None:
    fmt = harness.options.primary
    forged = harness.tender(Side.SELL, party=alt.party_id)
    as_other = harness.message(Payload.CREATE_TENDER, party=alt.party_id, tenders=[forged])
    answer = harness.me.send(as_other, fmt, "eiCreateTender sent as the other party")
    sender = f"an eiCreateTender naming '{alt.party_id}' as its sender, with '{harness.me.party_id}''s credentials"
    expect_refused(answer, {403}, sender)
    inner = harness.tender(Side.SELL, party=alt.party_id)
    own_sender = harness.message(Payload.CREATE_TENDER, tenders=[inner])
    answer = harness.me.send(own_sender, fmt, "eiCreateTender of the other party's tender")
    expect_refused(answer, {403}, f"an eiCreateTender whose tender belongs to '{alt.party_id}'")
    for tender in (forged, inner):
        assert_not_open(harness, tender, "although its eiCreateTender was refused")


@case(
    "EI-TND-010",
    "Another party cannot cancel the harness party's tender: 403, and the tender stays open",
    "EI 1.0 EiTender: eiCancelTender; responseCode 403",
)
def test_other_party_cannot_cancel(harness: Harness, alt: PartyClient) -> None:
    tender = harness.created(harness.tender(Side.SELL))
    expect_refused(harness.cancel(tender.id, client=alt), {403}, f"'{alt.party_id}' cancelling {tender.id}")
    found = harness.open_tenders(tender.rows[0]["start"])
    assert tender.id in found, f"tender {tender.id} is no longer open after another party tried to cancel it"


@case(
    "EI-TND-011",
    "A request with an unknown bearer token is refused with 403 and changes nothing",
    "EI 1.0 party identity; responseCode 403",
)
def test_unknown_credentials(harness: Harness) -> None:
    if harness.me.token is None:
        pytest.skip("the harness party is known by its client certificate (no --token): no token to forge")
    tender = harness.tender(Side.SELL)
    message = harness.message(Payload.CREATE_TENDER, tenders=[tender])
    body = json_codec.encode(message) if harness.options.primary == "json" else xml_codec.encode(message)
    answer = harness.me.post(body, harness.options.primary, "eiCreateTender with a forged token", fresh_id("token"))
    expect_refused(answer, {401, 403}, "an eiCreateTender with a bearer token the DUT never issued", bare=True)
    assert_not_open(harness, tender, "although it came with a forged token")


# --- transactions and positions ------------------------------------------------------------------------------


@case(
    "EI-TND-012",
    "Accepting another party's open tender makes a transaction: eiCreatedTransaction, 200",
    "EI 1.0 EiTransaction: eiCreateTransaction / eiCreatedTransaction; TeMIX acceptance",
)
def test_accept_makes_transaction(harness: Harness, alt: PartyClient) -> None:
    tender = harness.created(harness.tender(Side.SELL))
    transaction_id = fresh_id("tx")
    answer = harness.accept(tender, transaction_id)
    created = expect_ok(answer, Payload.CREATED_TRANSACTION, f"'{alt.party_id}' accepting tender {tender.id}")
    ids = [t.id for t in created.transactions]
    assert not ids or transaction_id in ids, f"eiCreatedTransaction carries {ids}, not transaction {transaction_id}"


@case(
    "EI-TND-013",
    "Both parties' positions reflect the transaction (seller -5 kW, buyer +5 kW, and its cost)",
    "CTS 1.0 Position: eiRequestPosition / eiReplyPosition; TeMIX position = sum of transactions",
)
def test_positions_reflect_transaction(harness: Harness, alt: PartyClient) -> None:
    tender = harness.created(harness.tender(Side.SELL))
    start = tender.rows[0]["start"]
    before = {client.party_id: harness.position(client, start) for client in (harness.me, alt)}
    expect_ok(harness.accept(tender), Payload.CREATED_TRANSACTION, f"'{alt.party_id}' accepting tender {tender.id}")
    cost = expected_cost(tender, start, harness.end(start))
    for client, sign in ((harness.me, -1), (alt, 1)):
        quantity, paid = harness.position(client, start)
        was_quantity, was_paid = before[client.party_id]
        assert quantity - was_quantity == sign * QUANTITY, (
            f"{client.party_id}'s position moved by {quantity - was_quantity} kW, expected {sign * QUANTITY} kW"
            f" ({'sold' if sign < 0 else 'bought'} {QUANTITY} kW in transaction on {tender.id})"
        )
        assert abs((paid - was_paid) - sign * cost) <= COST_TOLERANCE, (
            f"{client.party_id}'s position cost moved by {paid - was_paid}, expected {sign * cost}"
        )


@case(
    "EI-TND-014",
    "A cancelled tender cannot be accepted: 409",
    "EI 1.0 EiTransaction: eiCreateTransaction; responseCode 409",
)
def test_cancelled_tender_not_acceptable(harness: Harness, alt: PartyClient) -> None:
    tender = harness.created(harness.tender(Side.SELL))
    expect_ok(harness.cancel(tender.id), Payload.CANCELED_TENDER, f"eiCancelTender {tender.id}")
    expect_refused(harness.accept(tender), {409}, f"'{alt.party_id}' accepting the cancelled tender {tender.id}")


# --- expiry ----------------------------------------------------------------------------------------------------


@case(
    "EI-TND-015",
    "A tender whose expirationTime has passed is refused with 410",
    "TeMIX tender expiry; CTS expirationTime; responseCode 410",
)
def test_expired_on_arrival(harness: Harness) -> None:
    tender = harness.tender(Side.SELL, expires_at=utc_now().replace(microsecond=0) - timedelta(minutes=1))
    expect_refused(harness.create(tender), {410}, f"tender {tender.id}, expired at {tender.expires_at}")
    assert_not_open(harness, tender, "although it had expired when it arrived")


@case(
    "EI-TND-016",
    "A tender with a short expiry is open until then, and afterwards neither open nor acceptable (410)",
    "TeMIX tender expiry; CTS expirationTime; responseCode 410",
)
def test_short_expiry(harness: Harness) -> None:
    expires = utc_now() + timedelta(seconds=harness.options.expiry_seconds)
    tender = harness.created(harness.tender(Side.SELL, expires_at=expires))
    found = harness.open_tenders(tender.rows[0]["start"])
    assert tender.id in found, f"tender {tender.id} is not open before its expiry ({expires.isoformat()})"
    sleep_past(expires)
    assert_not_open(harness, tender, f"after its expirationTime {expires.isoformat()}")
    if harness.alt is not None:
        expect_refused(harness.accept(tender), {410}, f"accepting tender {tender.id} after it expired")


# --- bad input -------------------------------------------------------------------------------------------------


@case(
    "EI-TND-017",
    "Malformed XML is refused with 400, not accepted or crashed on",
    "EI 1.0 XML payloads; responseCode 400",
)
def test_malformed_xml(harness: Harness, options: HarnessOptions) -> None:
    speaks(options, "xml")
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?><pyld:eiCreateTender '
        b'xmlns:pyld="http://docs.oasis-open.org/ns/energyinterop/201110/payloads"><pyld:requestID>x'
    )
    expect_refused(harness.me.post(body, "xml", "a truncated eiCreateTender"), {400}, "malformed XML")


@case(
    "EI-TND-018",
    "Malformed JSON is refused with 400, not accepted or crashed on",
    "CTS 1.0 JSON messages; responseCode 400",
)
def test_malformed_json(harness: Harness, options: HarnessOptions) -> None:
    speaks(options, "json")
    body = b'{"type": "eiCreateTender", "tender": {"tenderId": '
    expect_refused(harness.me.post(body, "json", "a truncated eiCreateTender"), {400}, "malformed JSON")


@case(
    "EI-TND-019",
    "A tender for an unknown market is refused with 404",
    "EI 1.0 EiTender: marketContext; responseCode 404",
)
def test_unknown_market(harness: Harness) -> None:
    tender = harness.tender(Side.SELL, market_id=fresh_id("market"))
    expect_refused(harness.create(tender), {404}, f"a tender for market '{tender.market_id}', which does not exist")


@case(
    "EI-TND-020",
    "A tender for an interval that is already over is refused (410 or 422) and not created",
    "TeMIX forward tenders (uniform intervals); responseCode 410/422",
)
def test_interval_in_the_past(harness: Harness) -> None:
    tender = harness.tender(Side.SELL, start=harness.start(-2))
    expect_refused(harness.create(tender), {410, 422}, f"a tender for {tender.rows[0]['start'].isoformat()}")
    assert_not_open(harness, tender, "although its interval is over")


@case(
    "EI-TND-021",
    "A tender with a negative quantity is refused with 422",
    "CTS 1.0 tender quantity (never negative); responseCode 422",
)
def test_negative_quantity(harness: Harness) -> None:
    fmt = harness.options.primary
    tender = harness.tender(Side.SELL)
    message = harness.message(Payload.CREATE_TENDER, tenders=[tender])
    if fmt == "json":
        data = json.loads(json_codec.encode(message))
        for interval in data["tender"]["stream"]["intervals"]:
            interval["quantity"] = -interval["quantity"]
        body = json.dumps(data).encode()
    else:
        body = xml_codec.encode(message).replace(b"<emix:quantity>", b"<emix:quantity>-")
    expect_refused(harness.me.post(body, fmt, "eiCreateTender with quantity -5"), {422}, "a tender of -5 kW")
    assert_not_open(harness, tender, "although its quantity is negative")


# --- formats ---------------------------------------------------------------------------------------------------


def round_trip(harness: Harness, fmt: str) -> None:
    """Create, find and cancel a tender in one format; every answer must come in that format."""
    name, wanted = fmt.upper(), {"xml": XML_MEDIA, "json": {MEDIA["json"]}}[fmt]
    tender = harness.tender(Side.BUY)
    created = harness.create(tender, fmt)
    expect_ok(created, Payload.CREATED_TENDER, f"eiCreateTender in {name}")
    found = harness.open_tenders(tender.rows[0]["start"], fmt)
    assert tender.id in found, f"eiRequestTender in {name} does not list the open tender {tender.id}"
    differences = tender_differences(tender, found[tender.id])
    assert not differences, f"tender {tender.id} came back changed in {name}: {'; '.join(differences)}"
    cancelled = harness.cancel(tender.id, fmt)
    expect_ok(cancelled, Payload.CANCELED_TENDER, f"eiCancelTender in {name}")
    for answer, what in ((created, "eiCreateTender"), (cancelled, "eiCancelTender")):
        assert answer.media in wanted, f"the {what} in {name} was answered as '{answer.media}'"


@case(
    "EI-TND-022",
    "The tender lifecycle in EI 1.0 XML (application/xml), answered in XML",
    "EI 1.0 XML payloads (EiTender)",
)
def test_xml_round_trip(harness: Harness, options: HarnessOptions) -> None:
    speaks(options, "xml")
    round_trip(harness, "xml")


@case(
    "EI-TND-023",
    "The tender lifecycle in CTS JSON (application/json), answered in JSON",
    "CTS 1.0 JSON messages (EiTender)",
)
def test_json_round_trip(harness: Harness, options: HarnessOptions) -> None:
    speaks(options, "json")
    round_trip(harness, "json")
