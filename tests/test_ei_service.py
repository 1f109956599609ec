"""The EI/CTS service over real HTTP on loopback, in both encodings: the TeMIX lifecycle (tender, cancel, trade,
position, delivery, ticker), party identity, and EI response codes for everything refused."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from certs import TestCa

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.api.tls import server_tls_options
from gateway.config import Settings
from gateway.ingest import Ingestor
from gateway.market.runs import MarketRunner
from gateway.model import Delivery, Envelope, Interval, MessageKind, Resolution, Tender, TenderStatus, Transaction
from gateway.model.market import Side
from gateway.protocols.ei import json_codec, xml_codec
from gateway.protocols.ei.identity import token_hash
from gateway.protocols.ei.messages import EiMessage, Payload, PositionQuery, ResponseCode
from gateway.store import Store

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
NEXT = NOW + timedelta(hours=2)  # an interval whose gate is open
PAST = datetime(2024, 1, 7, 10, tzinfo=UTC)  # an interval whose gate closed long ago
TOKENS = {"a": "token-of-a", "b": "token-of-b", "c": "token-of-c"}
JSON = "application/json"
CODECS = {"json": (json_codec, "application/json"), "xml": (xml_codec, "application/xml")}


def env(object_type: str, /, **payload: Any) -> Envelope:
    return Envelope.model_validate({"payload": {"object_type": object_type, **payload}})


@pytest.fixture
def http(store: Store) -> Iterator[httpx.Client]:
    Ingestor(store).ingest_sync(
        [
            env("party", id="op", name="Exchange", roles=["dmo"]),
            *(
                env(
                    "party",
                    id=p,
                    name=p.upper(),
                    roles=["prosumer"],
                    identities={"ei-token-sha256": token_hash(t), "ei-client-secret-sha256": token_hash(f"secret-{p}")},
                )
                for p, t in TOKENS.items()
            ),
            env("location", id="sp1", name="sp1", kind="service_point"),
            env("market", id="m1", operator_id="op"),
        ],
        protocol="test",
        peer="seed",
    )
    app = create_app(Settings(market_tick_seconds=0), store=store)
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


def tender(tid: str, party: str, side: str = "sell", start: datetime = NEXT, **extra: Any) -> Tender:
    created = extra.pop("created_at", start - timedelta(days=1))
    return Tender.model_validate(
        {
            "id": tid,
            "market_id": "m1",
            "party_id": party,
            "side": side,
            "location_id": "sp1",
            "rows": [{"start": start, "quantity": "5", "price": "0.12"}],
            "created_at": created,
            **extra,
        }
    )


def send(
    http: httpx.Client, message: EiMessage, party: str | None, fmt: str = "json", path: str | None = None
) -> tuple[int, EiMessage]:
    codec, media = CODECS[fmt]
    headers = {"content-type": media}
    if party is not None:
        headers["authorization"] = f"Bearer {TOKENS[party]}"
    response = http.post(path or f"/ei/v1/{message.payload.value}", content=codec.encode(message), headers=headers)
    assert response.headers["content-type"].startswith(media), response.text
    return response.status_code, codec.decode(response.content)


def code(answer: EiMessage) -> ResponseCode:
    assert answer.response is not None
    return answer.response.code


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_party_tenders_and_cancels(http: httpx.Client, store: Store, fmt: str) -> None:
    offer = tender("a-1", "a")
    status, answer = send(
        http,
        EiMessage(Payload.CREATE_TENDER, request_id="r1", party_id="a", counterparty_id="op", tenders=[offer]),
        "a",
        fmt,
    )
    assert (status, answer.payload, code(answer), answer.request_id) == (200, Payload.CREATED_TENDER, 200, "r1")
    stored = store.get(MessageKind.TENDER, "a-1")
    assert stored is not None and stored.rows == offer.rows  # type: ignore[union-attr]
    [message] = store.query_messages(entity_id="a-1", limit=1)
    assert (message.envelope.source.protocol, message.envelope.source.peer) == ("ei", "a")  # type: ignore[union-attr]

    cancel = EiMessage(Payload.CANCEL_TENDER, request_id="r2", party_id="a", tender_ids=["a-1"])
    status, answer = send(http, cancel, "a", fmt)
    assert (status, answer.payload, code(answer)) == (200, Payload.CANCELED_TENDER, 200)
    assert store.get(MessageKind.TENDER, "a-1").status.value == "cancelled"  # type: ignore[union-attr]
    status, answer = send(http, cancel, "a", fmt)
    assert (status, code(answer)) == (409, ResponseCode.CONFLICT)


def test_identity_is_enforced(http: httpx.Client, store: Store) -> None:
    offer = tender("a-1", "a")
    message = EiMessage(Payload.CREATE_TENDER, party_id="a", counterparty_id="op", tenders=[offer])
    assert code(send(http, message, None)[1]) == ResponseCode.NOT_AUTHORIZED  # no credentials
    status, answer = send(http, message, "b")  # b's token, sent as a
    assert (status, code(answer)) == (403, ResponseCode.NOT_AUTHORIZED)
    assert "credentials are 'b''s" in answer.response.description  # type: ignore[union-attr]
    status, answer = send(
        http, EiMessage(Payload.CREATE_TENDER, party_id="b", counterparty_id="op", tenders=[offer]), "b"
    )
    assert (status, code(answer)) == (403, ResponseCode.NOT_AUTHORIZED)  # a's tender sent by b
    assert not store.exists(MessageKind.TENDER, "a-1")
    send(http, message, "a")
    status, answer = send(http, EiMessage(Payload.CANCEL_TENDER, party_id="b", tender_ids=["a-1"]), "b")
    assert (status, code(answer)) == (403, ResponseCode.NOT_AUTHORIZED)


@pytest.mark.parametrize(
    ("change", "expected", "fragment"),
    [
        ({"currency": "EUR"}, ResponseCode.UNPROCESSABLE, "trades in USD"),
        ({"market_id": "nope"}, ResponseCode.NOT_FOUND, "unknown market 'nope'"),
        ({"expires_at": datetime(2024, 1, 1, tzinfo=UTC)}, ResponseCode.EXPIRED, "expired"),
    ],
)
def test_refusals_have_ei_codes_and_store_nothing(
    http: httpx.Client, store: Store, change: dict[str, Any], expected: ResponseCode, fragment: str
) -> None:
    offer = tender("a-bad", "a").model_copy(update=change)
    status, answer = send(
        http, EiMessage(Payload.CREATE_TENDER, party_id="a", counterparty_id="op", tenders=[offer]), "a"
    )
    assert (status, code(answer)) == (int(expected), expected)
    assert fragment in answer.response.description  # type: ignore[union-attr]
    assert not store.exists(MessageKind.TENDER, "a-bad")
    assert any(fragment in r.reason for r in store.rejections(protocol="ei"))


def test_bad_requests(http: httpx.Client) -> None:
    headers = {"authorization": f"Bearer {TOKENS['a']}"}
    assert (
        http.post("/ei/v1/messages", content=b"x", headers={**headers, "content-type": "text/plain"}).status_code == 415
    )
    response = http.post(
        "/ei/v1/messages", content=b"{not json", headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert code(json_codec.decode(response.content)) == ResponseCode.BAD_REQUEST
    response = http.post("/ei/v1/messages", content=b"<oops", headers={**headers, "content-type": "application/xml"})
    assert response.status_code == 400
    wrong_path = EiMessage(Payload.CANCEL_TENDER, party_id="a", tender_ids=["x"])
    status, answer = send(http, wrong_path, "a", path="/ei/v1/eiCreateTender")
    assert (status, code(answer)) == (400, ResponseCode.BAD_REQUEST)


def test_accepting_a_tender_bilaterally_and_reading_positions(http: httpx.Client, store: Store) -> None:
    send(http, EiMessage(Payload.CREATE_TENDER, party_id="a", counterparty_id="op", tenders=[tender("a-1", "a")]), "a")
    interval = Interval(start=NEXT, duration=Resolution.HOUR)
    trade = Transaction(
        id="c-takes-a-1",
        market_id="m1",
        party_id="c",
        counterparty_id="a",
        side=Side.BUY,
        tender_id="a-1",
        location_id="sp1",
        interval=interval,
        quantity=Decimal(5),
        price=Decimal("0.12"),
    )
    status, answer = send(http, EiMessage(Payload.CREATE_TRANSACTION, party_id="c", transactions=[trade]), "c", "xml")
    assert (status, answer.payload, code(answer)) == (200, Payload.CREATED_TRANSACTION, 200)
    assert store.exists(MessageKind.TRANSACTION, "c-takes-a-1")
    same_side = trade.model_copy(update={"id": "c-sells", "side": Side.SELL})
    status, answer = send(http, EiMessage(Payload.CREATE_TRANSACTION, party_id="c", transactions=[same_side]), "c")
    assert (status, code(answer)) == (422, ResponseCode.UNPROCESSABLE)


def test_positions_after_a_market_run(http: httpx.Client, store: Store) -> None:
    past = dict(start=PAST, created_at=PAST - timedelta(days=1))
    Ingestor(store).ingest_sync(
        [
            Envelope(payload=tender("a-s", "a", **past)),
            Envelope(
                payload=tender("c-b", "c", "buy", **past).model_copy(
                    update={"rows": [{"start": PAST, "quantity": Decimal(3), "price": Decimal("0.2")}]}
                )
            ),
        ],
        protocol="test",
        peer="seed",
    )
    MarketRunner(store).clear_interval("m1", PAST)
    query = PositionQuery(market_id="m1", start=PAST, end=PAST + timedelta(hours=1))
    status, answer = send(http, EiMessage(Payload.REQUEST_POSITION, party_id="c", query=query), "c", "xml")
    assert (status, answer.payload) == (200, Payload.REPLY_POSITION)
    assert [(p.party_id, p.quantity) for p in answer.positions] == [("c", Decimal(3))]


def test_deliveries_and_the_ticker(http: httpx.Client, store: Store) -> None:
    reading = Delivery(
        id="meter-a",
        party_id="a",
        location_id="sp1",
        interval=Interval(start=PAST, duration=Resolution.HOUR),
        quantity=Decimal("-2.5"),
    )
    status, answer = send(http, EiMessage(Payload.CREATE_DELIVERY, party_id="a", deliveries=[reading]), "a")
    assert (status, answer.payload) == (200, Payload.CREATED_DELIVERY)
    assert store.get(MessageKind.DELIVERY, "meter-a") == reading

    send(http, EiMessage(Payload.CREATE_TENDER, party_id="a", counterparty_id="op", tenders=[tender("soon", "a")]), "a")
    send(
        http,
        EiMessage(
            Payload.CREATE_TENDER,
            party_id="b",
            counterparty_id="op",
            tenders=[tender("later", "b", start=NOW + timedelta(days=3))],
        ),
        "b",
    )
    for fmt, (codec, _media) in CODECS.items():
        response = http.get("/ei/v1/ticker", params={"market_id": "m1", "format": fmt})
        assert response.status_code == 200
        ticker = codec.decode(response.content)
        assert ticker.payload is Payload.DISTRIBUTE_TENDER
        assert [t.id for t in ticker.tenders] == ["soon"]  # only the next 12 intervals
    assert http.get("/ei/v1/ticker", params={"market_id": "nope"}).status_code == 404


def test_an_xml_answer_speaks_the_namespaces_of_its_request(http: httpx.Client) -> None:
    message = EiMessage(Payload.CREATE_TENDER, party_id="a", counterparty_id="op", tenders=[tender("a-cts", "a")])
    for dialect in xml_codec.Dialect:
        body = xml_codec.encode(
            message.__class__(**{**_fields(message), "tenders": [tender(f"a-{dialect.value}", "a")]}), dialect
        )
        response = http.post(
            "/ei/v1/eiCreateTender",
            content=body,
            headers={"content-type": "application/xml", "authorization": f"Bearer {TOKENS['a']}"},
        )
        assert response.status_code == 200, response.text
        answer, answered_in = xml_codec.decode_with_dialect(response.content)
        assert (answer.payload, answered_in) == (Payload.CREATED_TENDER, dialect)


def _fields(message: EiMessage) -> dict[str, Any]:
    return {name: getattr(message, name) for name in message.__slots__}  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_registration_updates_the_name_but_never_the_credentials(http: httpx.Client, store: Store, fmt: str) -> None:
    from gateway.model import Party

    claim = Party(id="a", name="A Renamed", roles=["producer"], identities={"ei-token-sha256": token_hash("mine")})
    status, answer = send(
        http, EiMessage(Payload.REGISTER_PARTY, request_id="reg", party_id="a", party=claim), "a", fmt
    )
    assert (status, answer.payload, code(answer)) == (200, Payload.REGISTERED_PARTY, ResponseCode.OK)
    if fmt == "json":  # the XML eiCreatedPartyRegistration has no slot for the party; the JSON answer echoes it
        assert answer.party is not None and answer.party.name == "A Renamed" and answer.party.identities == {}
    stored = store.get(MessageKind.PARTY, "a")
    assert stored.name == "A Renamed"  # type: ignore[union-attr]
    assert stored.identities == {  # type: ignore[union-attr]
        "ei-token-sha256": token_hash(TOKENS["a"]),
        "ei-client-secret-sha256": token_hash("secret-a"),
    }
    other = claim.model_copy(update={"id": "b"})
    status, answer = send(http, EiMessage(Payload.REGISTER_PARTY, party_id="a", party=other), "a", fmt)
    assert (status, code(answer)) == (403, ResponseCode.NOT_AUTHORIZED)


def test_oauth2_client_credentials_grant_issues_a_bearer_token(http: httpx.Client, store: Store) -> None:
    form = {"grant_type": "client_credentials", "client_id": "a", "client_secret": "secret-a"}
    response = http.post("/ei/v1/oauth/token", data=form)
    assert response.status_code == 200, response.text
    grant = response.json()
    assert (grant["token_type"], grant["expires_in"]) == ("Bearer", 3600)
    assert response.headers["cache-control"] == "no-store"
    message = EiMessage(Payload.CREATE_TENDER, party_id="a", counterparty_id="op", tenders=[tender("oauth-1", "a")])
    sent = http.post(
        "/ei/v1/eiCreateTender",
        content=json_codec.encode(message),
        headers={"content-type": "application/json", "authorization": f"Bearer {grant['access_token']}"},
    )
    assert sent.status_code == 200 and store.exists(MessageKind.TENDER, "oauth-1")
    # HTTP Basic client authentication works too (RFC 6749 2.3.1).
    basic = http.post("/ei/v1/oauth/token", data={"grant_type": "client_credentials"}, auth=("b", "secret-b"))
    assert basic.status_code == 200


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "client_credentials", "client_id": "a", "client_secret": "wrong"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "op", "client_secret": "x"}, 401, "invalid_client"),
        ({"grant_type": "password", "client_id": "a", "client_secret": "secret-a"}, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, 401, "invalid_client"),
    ],
)
def test_oauth2_refusals_follow_the_rfc(http: httpx.Client, form: dict[str, str], status: int, error: str) -> None:
    response = http.post("/ei/v1/oauth/token", data=form)
    assert (response.status_code, response.json()["error"]) == (status, error)
    forged = EiMessage(Payload.CREATE_TENDER, party_id="a", counterparty_id="op", tenders=[tender("forged", "a")])
    answer = http.post(
        "/ei/v1/eiCreateTender",
        content=json_codec.encode(forged),
        headers={"content-type": "application/json", "authorization": "Bearer not-a-token"},
    )
    assert answer.status_code == 403


def test_a_party_is_known_by_its_client_certificate_under_mutual_tls(store: Store, tmp_path: Path) -> None:
    """Mutual TLS at the gateway itself: the connection's certificate is the party's identity (tls-sha256)."""
    ca = TestCa(tmp_path)
    server, solar, stranger = ca.issue("gateway", server=True), ca.issue("solar"), ca.issue("stranger")
    Ingestor(store).ingest_sync(
        [
            env("party", id="op", name="Exchange", roles=["dmo"]),
            env("party", id="solar", name="Solar", roles=["producer"],
                identities={"tls-sha256": hashlib.sha256(solar.der).hexdigest()}),
            env("location", id="sp1", name="sp1", kind="service_point"),
            env("market", id="m1", operator_id="op"),
        ],
        protocol="test",
        peer="seed",
    )  # fmt: skip
    app = create_app(Settings(market_tick_seconds=0), store=store)
    options = server_tls_options(str(server.cert), str(server.key), str(ca.ca_file), require_client=True)
    offer = tender("solar-1", "solar")
    message = EiMessage(Payload.CREATE_TENDER, party_id="solar", counterparty_id="op", tenders=[offer])
    with serve_in_thread(app, **options) as base:
        for issued, expected in ((solar, ResponseCode.OK), (stranger, ResponseCode.NOT_AUTHORIZED)):
            context = ssl.create_default_context(cafile=str(ca.ca_file))
            context.load_cert_chain(str(issued.cert), str(issued.key))
            with httpx.Client(base_url=base, verify=context, timeout=30) as client:
                answer = client.post(
                    "/ei/v1/eiCreateTender", content=json_codec.encode(message), headers={"content-type": JSON}
                )
                assert code(json_codec.decode(answer.content)) == expected
    stored = store.get(MessageKind.TENDER, "solar-1")
    assert isinstance(stored, Tender) and stored.party_id == "solar"


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_quote_is_an_indicative_price_nobody_can_take(http: httpx.Client, store: Store, fmt: str) -> None:
    quote = tender("a-quote", "a")
    message = EiMessage(Payload.CREATE_QUOTE, party_id="a", counterparty_id="op", tenders=[quote])
    status, answer = send(http, message, "a", fmt)
    assert (status, answer.payload, code(answer), answer.tender_ids) == (200, Payload.CREATED_QUOTE, 200, ["a-quote"])
    stored = store.get(MessageKind.TENDER, "a-quote")
    assert isinstance(stored, Tender) and stored.status is TenderStatus.INDICATIVE
    trade = Transaction(
        id="c-takes-the-quote", market_id="m1", party_id="c", counterparty_id="a", side=Side.BUY, tender_id="a-quote",
        location_id="sp1", interval=Interval(start=NEXT, duration=Resolution.HOUR), quantity=Decimal(5),
        price=Decimal("0.12"),
    )  # fmt: skip
    status, answer = send(http, EiMessage(Payload.CREATE_TRANSACTION, party_id="c", transactions=[trade]), "c", fmt)
    assert (status, code(answer)) == (409, ResponseCode.CONFLICT) and "quote" in answer.response.description  # type: ignore[union-attr]
    assert not store.exists(MessageKind.TRANSACTION, "c-takes-the-quote")
    bad = tender("a-quote-2", "a", currency="EUR")  # the market's rules hold for quotes too
    status, answer = send(http, EiMessage(Payload.CREATE_QUOTE, party_id="a", tenders=[bad]), "a", fmt)
    assert (status, code(answer)) == (422, ResponseCode.UNPROCESSABLE)
    status, answer = send(http, EiMessage(Payload.CANCEL_TENDER, party_id="a", tender_ids=["a-quote"]), "a", fmt)
    assert code(answer) == 200  # a quote can be withdrawn
    send(http, EiMessage(Payload.CREATE_TENDER, party_id="a", counterparty_id="op", tenders=[tender("a-t", "a")]), "a")
    status, answer = send(http, EiMessage(Payload.CREATE_QUOTE, party_id="a", tenders=[tender("a-t", "a")]), "a", fmt)
    assert (status, code(answer)) == (409, ResponseCode.CONFLICT)  # a tender cannot be turned into a quote


def accept(tid: str, party: str, quantity: str, tender_id: str = "a-1") -> Transaction:
    return Transaction(
        id=tid,
        market_id="m1",
        party_id=party,
        counterparty_id="a",
        side=Side.BUY,
        tender_id=tender_id,
        location_id="sp1",
        interval=Interval(start=NEXT, duration=Resolution.HOUR),
        quantity=Decimal(quantity),
        price=Decimal("0.12"),
    )


def test_a_tender_trades_its_quantity_once_whoever_accepts_it(http: httpx.Client, store: Store) -> None:
    """5 kW offered: b takes 2 over EI, c takes 3 over REST; then nothing is left, for anyone, on any edge, and the
    call auction of the hour finds the tender filled."""
    send(http, EiMessage(Payload.CREATE_TENDER, party_id="a", counterparty_id="op", tenders=[tender("a-1", "a")]), "a")
    status, _ = send(
        http, EiMessage(Payload.CREATE_TRANSACTION, party_id="b", transactions=[accept("b-1", "b", "2")]), "b"
    )
    assert status == 200
    assert store.get(MessageKind.TENDER, "a-1").status is TenderStatus.PARTIALLY_FILLED  # type: ignore[union-attr]
    too_much = accept("c-1", "c", "4").model_dump(mode="json")
    refused = http.post("/v1/transactions", json=too_much)
    assert refused.status_code == 409 and "has 3 kW left" in refused.json()["detail"][0]["msg"]
    assert not store.exists(MessageKind.TRANSACTION, "c-1")  # refused: nothing stored
    taken = accept("c-1", "c", "3").model_dump(mode="json")
    assert http.post("/v1/transactions", json=taken).status_code == 201
    assert store.get(MessageKind.TENDER, "a-1").status is TenderStatus.FILLED  # type: ignore[union-attr]
    status, answer = send(
        http, EiMessage(Payload.CREATE_TRANSACTION, party_id="b", transactions=[accept("b-2", "b", "1")]), "b"
    )
    assert (status, code(answer)) == (409, ResponseCode.CONFLICT)
    # a resend of an accepted trade is the same trade, not a second one
    again = http.post("/v1/transactions", json=taken)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    # both buyers' positions moved at once, over REST as over EI
    positions = {p.party_id: p.quantity for p in store.list(MessageKind.POSITION, limit=None)}  # type: ignore[union-attr]
    assert positions["b"] == Decimal(2) and positions["c"] == Decimal(3) and positions["a"] == Decimal(-5)
    # the auction of the hour does not offer what was sold already
    run = MarketRunner(store).clear_interval("m1", NEXT, early=True)
    assert run.skipped == {"filled": 1} and run.transactions == []


def test_the_auction_offers_only_what_was_not_accepted_bilaterally(http: httpx.Client, store: Store) -> None:
    send(http, EiMessage(Payload.CREATE_TENDER, party_id="a", counterparty_id="op", tenders=[tender("a-1", "a")]), "a")
    send(
        http,
        EiMessage(Payload.CREATE_TENDER, party_id="c", counterparty_id="op", tenders=[tender("c-buy", "c", "buy")]),
        "c",
    )
    status, _ = send(
        http, EiMessage(Payload.CREATE_TRANSACTION, party_id="b", transactions=[accept("b-1", "b", "2")]), "b"
    )
    assert status == 200
    run = MarketRunner(store).clear_interval("m1", NEXT, early=True)
    # c bids for 5 at the same price, but only 3 of a's 5 are left for the auction
    assert run.clearing.cleared_quantity == Decimal(3)
    assert sorted((t.party_id, t.quantity) for t in run.transactions) == [("a", Decimal(3)), ("c", Decimal(3))]
