"""The TeMIX party side played against an EI/CTS market service under test, and the checks on what it answers.

Messages are built and read with the gateway's own EI codecs (EI 1.0 XML, CTS JSON), so the harness never sends
a malformed request by accident and an answer that is not an EI message is reported as such instead of being
half-read. Every request is logged as an :class:`Exchange`; a transport error fails the current case with the
reason (``pytest.fail``), never the run.

Two parties can take part: the harness party (``party`` with ``token``, or the run's client certificate) and an
optional second party (``alt_party`` with ``alt_token`` or ``alt_cert``/``alt_key``), which accepts the harness
party's tenders and tries to act on them. Tenders are for an interval ``lead_intervals`` ahead of now on the
market's grid (``resolution``, ``time_zone``), at ``location``, in ``currency``; every id carries a fresh random
suffix so that a run never collides with an earlier run against the same DUT.
"""

from __future__ import annotations

import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from conformance.framework import Exchange, Target, truncate
from gateway.model import Interval, PowerUnit, Resolution, Tender, Transaction, convert_power, convert_price, utc_now
from gateway.model.intervals import floor_to_boundary, interval_end, market_zone
from gateway.model.market import Side
from gateway.model.units import EnergyUnit
from gateway.protocols.ei import json_codec, xml_codec
from gateway.protocols.ei.messages import EiDecodeError, EiMessage, Payload, PositionQuery

MEDIA = {"json": "application/json", "xml": "application/xml"}
XML_MEDIA = {"application/xml", "text/xml"}
QUANTITY = Decimal(5)  # kW: every tender the harness sends
SELL_PRICE, BUY_PRICE = Decimal("0.1"), Decimal("0.08")  # per kWh, inside any sensible market's price range
COST_TOLERANCE = Decimal("0.0001")  # the DUT may round money to its own quantum


def fresh_id(kind: str) -> str:
    return f"tgw-ct-{kind}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True, slots=True)
class HarnessOptions:
    """What the harness needs to know about the DUT's market and its two parties (from the target's options)."""

    party: str
    market: str
    location: str
    token: str | None = None
    alt_party: str | None = None
    alt_token: str | None = None
    alt_cert: str | None = None
    alt_key: str | None = None
    counterparty: str | None = None
    formats: tuple[str, ...] = ("json", "xml")
    resolution: Resolution = Resolution.HOUR
    time_zone: str = "UTC"
    currency: str = "USD"
    lead_intervals: int = 3
    expiry_seconds: float = 2.0

    @classmethod
    def of(cls, target: Target) -> HarnessOptions:
        """Read the options; ValueError names what is missing or wrong (the case fails with it)."""
        missing = [f"--{name}" for name in ("party", "market", "location") if not target.option(name)]
        if missing:
            raise ValueError(f"the harness needs {', '.join(missing)} (the party it plays and where it tenders)")
        if not target.option("token") and not target.cert:
            raise ValueError("the harness party needs credentials: --token, or --cert/--key for mutual TLS")
        fmt = target.option("format", "both").lower()
        if fmt not in ("both", "json", "xml"):
            raise ValueError(f"--format {fmt}: expected xml, json or both")
        try:
            resolution = Resolution(target.option("resolution", Resolution.HOUR.value))
            lead, expiry = int(target.option("lead_intervals", "3")), float(target.option("expiry_seconds", "2"))
            market_zone(target.option("time_zone", "UTC"))
        except ValueError as exc:
            raise ValueError(f"bad option: {exc}") from None
        return cls(
            party=target.option("party"),
            market=target.option("market"),
            location=target.option("location"),
            token=target.option("token") or None,
            alt_party=target.option("alt_party") or None,
            alt_token=target.option("alt_token") or None,
            alt_cert=target.option("alt_cert") or None,
            alt_key=target.option("alt_key") or None,
            counterparty=target.option("counterparty") or None,
            formats=("json", "xml") if fmt == "both" else (fmt,),
            resolution=resolution,
            time_zone=target.option("time_zone", "UTC"),
            currency=target.option("currency", "USD"),
            lead_intervals=max(lead, 1),
            expiry_seconds=max(expiry, 0.5),
        )

    @property
    def primary(self) -> str:
        """The format of the cases that are not about a format: CTS JSON when the DUT speaks it."""
        return self.formats[0]

    @property
    def alt_problem(self) -> str | None:
        """Why there is no second party, or None when there is one."""
        if self.alt_party and (self.alt_token or (self.alt_cert and self.alt_key)):
            return None
        return "this case needs a second party: --alt-party with --alt-token (or --alt-cert/--alt-key)"


@dataclass(slots=True)
class Answer:
    """What came back: the HTTP status, and the EI message in it (or why there is none)."""

    status: int
    media: str
    message: EiMessage | None
    problem: str | None = None

    @property
    def code(self) -> int | None:
        return int(self.message.response.code) if self.message and self.message.response else None

    def describe(self) -> str:
        if self.message is None:
            return f"HTTP {self.status}, not an EI message ({self.problem})"
        response = self.message.response
        said = f"responseCode {int(response.code)} ({response.description})" if response else "no eiResponse"
        return f"HTTP {self.status}, {self.message.payload.value} {said}"


def decode_answer(response: httpx.Response) -> Answer:
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in XML_MEDIA:
        codec: Any = xml_codec
    elif media == MEDIA["json"]:
        codec = json_codec
    else:
        shown = f"Content-Type '{media}'" if media else "no Content-Type"
        return Answer(response.status_code, media, None, f"{shown}: neither application/xml nor application/json")
    try:
        return Answer(response.status_code, media, codec.decode(response.content))
    except EiDecodeError as exc:
        return Answer(response.status_code, media, None, str(exc))


def _verify(target: Target, cert: str | None, key: str | None) -> ssl.SSLContext | bool:
    """The CA to trust and the client certificate, in one context (httpx's ``cert`` argument is deprecated)."""
    if not target.url.startswith("https"):
        return True
    context = ssl.create_default_context(cafile=target.ca) if target.ca else ssl.create_default_context()
    if cert:
        context.load_cert_chain(cert, key)
    return context


class PartyClient:
    """One TeMIX party talking to the DUT: its credentials, its HTTP connection, its log entries."""

    def __init__(
        self, target: Target, log: list[Exchange], party_id: str, token: str | None, cert: str | None, key: str | None
    ) -> None:
        self.base = target.url.rstrip("/")
        self.log = log
        self.party_id = party_id
        self.token = token
        self.http = httpx.Client(verify=_verify(target, cert, key), timeout=target.timeout)

    def close(self) -> None:
        self.http.close()

    def post(self, body: bytes, fmt: str, note: str, token: str | None = None) -> Answer:
        """POST one message to ``<target>/messages``; ``token`` replaces the party's own (a forged credential)."""
        url = f"{self.base}/messages"
        headers = {"content-type": MEDIA[fmt]}
        bearer = token or self.token
        if bearer:
            headers["authorization"] = f"Bearer {bearer}"
        exchange = Exchange("POST", url, truncate(body), note=f"{self.party_id}: {note}")
        self.log.append(exchange)
        response = self._call(exchange, lambda: self.http.post(url, content=body, headers=headers))
        return decode_answer(response)

    def send(self, message: EiMessage, fmt: str, note: str | None = None) -> Answer:
        body = xml_codec.encode(message) if fmt == "xml" else json_codec.encode(message)
        return self.post(body, fmt, note or f"{message.payload.value} ({fmt})")

    def get(self, path: str, params: dict[str, str], note: str) -> httpx.Response:
        url = f"{self.base}/{path}"
        exchange = Exchange("GET", f"{url}?{httpx.QueryParams(params)}", "", note=note)
        self.log.append(exchange)
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        return self._call(exchange, lambda: self.http.get(url, params=params, headers=headers))

    def _call(self, exchange: Exchange, request: Any) -> httpx.Response:
        try:
            response: httpx.Response = request()
        except httpx.HTTPError as exc:
            exchange.error = f"{type(exc).__name__}: {exc}"
            pytest.fail(f"could not reach the DUT at {exchange.url}: {type(exc).__name__}: {exc}", pytrace=False)
        exchange.status = response.status_code
        exchange.response = truncate(response.content)
        return response


class Harness:
    """The harness party and (when configured) the second party, and the TeMIX requests the cases make."""

    def __init__(self, target: Target, log: list[Exchange], options: HarnessOptions) -> None:
        self.options = options
        self.me = PartyClient(target, log, options.party, options.token, target.cert, target.key)
        self.alt: PartyClient | None = None
        if options.alt_problem is None:
            assert options.alt_party is not None
            self.alt = PartyClient(target, log, options.alt_party, options.alt_token, options.alt_cert, options.alt_key)

    def close(self) -> None:
        for client in (self.me, self.alt):
            if client is not None:
                client.close()

    # --- what the harness tenders ---------------------------------------------------------------------------------

    def start(self, lead: int | None = None) -> datetime:
        """The start of the interval ``lead`` intervals after the current one (negative: before it)."""
        s = self.options
        start = floor_to_boundary(utc_now(), s.resolution, s.time_zone)
        steps = s.lead_intervals if lead is None else lead
        for _ in range(abs(steps)):
            if steps > 0:
                start = interval_end(start, s.resolution, s.time_zone)
            else:
                start = floor_to_boundary(start - timedelta(seconds=1), s.resolution, s.time_zone)
        return start

    def end(self, start: datetime) -> datetime:
        return interval_end(start, self.options.resolution, self.options.time_zone)

    def tender(self, side: Side, party: str | None = None, **changes: Any) -> Tender:
        """A one-interval tender of ``QUANTITY`` kW; ``changes`` override any field (``start`` moves the row)."""
        s = self.options
        start = changes.pop("start", None) or self.start()
        price = SELL_PRICE if side is Side.SELL else BUY_PRICE
        fields: dict[str, Any] = {
            "id": fresh_id(side.value),
            "market_id": s.market,
            "party_id": party or s.party,
            "side": side,
            "location_id": s.location,
            "resolution": s.resolution,
            "time_zone": s.time_zone,
            "currency": s.currency,
            "rows": [{"start": start, "quantity": QUANTITY, "price": price}],
        }
        return Tender.model_validate(fields | changes)

    def message(self, payload: Payload, party: str | None = None, **carried: Any) -> EiMessage:
        return EiMessage(
            payload=payload,
            request_id=fresh_id("req"),
            party_id=party or self.options.party,
            counterparty_id=self.options.counterparty,
            **carried,
        )

    # --- requests -------------------------------------------------------------------------------------------------

    def fmt(self, fmt: str | None) -> str:
        return fmt or self.options.primary

    def create(self, tender: Tender, fmt: str | None = None, client: PartyClient | None = None) -> Answer:
        client = client or self.me
        message = self.message(Payload.CREATE_TENDER, party=client.party_id, tenders=[tender])
        return client.send(message, self.fmt(fmt), f"eiCreateTender {tender.id} ({tender.side.value})")

    def created(self, tender: Tender, fmt: str | None = None) -> Tender:
        """Create ``tender`` and insist on it (the precondition of most cases)."""
        expect_ok(self.create(tender, fmt), Payload.CREATED_TENDER, f"creating tender {tender.id}")
        return tender

    def cancel(self, tender_id: str, fmt: str | None = None, client: PartyClient | None = None) -> Answer:
        client = client or self.me
        message = self.message(Payload.CANCEL_TENDER, party=client.party_id, tender_ids=[tender_id])
        return client.send(message, self.fmt(fmt), f"eiCancelTender {tender_id}")

    def open_tenders(self, start: datetime, fmt: str | None = None) -> dict[str, Tender]:
        """The market's open tenders with an interval starting at ``start`` (eiRequestTender -> eiReplyTender)."""
        query = PositionQuery(market_id=self.options.market, start=start, end=self.end(start))
        answer = self.me.send(self.message(Payload.REQUEST_TENDER, query=query), self.fmt(fmt))
        reply = expect_ok(answer, Payload.REPLY_TENDER, "eiRequestTender for the market's open tenders")
        return {t.id: t for t in reply.tenders}

    def accept(self, tender: Tender, transaction_id: str | None = None, fmt: str | None = None) -> Answer:
        """The second party accepts ``tender``: the other side, its whole quantity, at its price."""
        assert self.alt is not None
        row = tender.rows[0]
        trade = Transaction(
            id=transaction_id or fresh_id("tx"),
            market_id=tender.market_id,
            party_id=self.alt.party_id,
            counterparty_id=tender.party_id,
            side=Side.BUY if tender.side is Side.SELL else Side.SELL,
            tender_id=tender.id,
            location_id=tender.location_id,
            interval=Interval(start=row["start"], duration=tender.resolution, time_zone=tender.time_zone),
            quantity=row["quantity"],
            price=row["price"],
            currency=tender.currency,
        )
        message = self.message(Payload.CREATE_TRANSACTION, party=self.alt.party_id, transactions=[trade])
        return self.alt.send(message, self.fmt(fmt), f"eiCreateTransaction {trade.id} accepting {tender.id}")

    def position(self, client: PartyClient, start: datetime) -> tuple[Decimal, Decimal]:
        """``client``'s net position at the harness location in the interval: (kW, cost), zero when none."""
        query = PositionQuery(market_id=self.options.market, start=start, end=self.end(start))
        message = self.message(Payload.REQUEST_POSITION, party=client.party_id, query=query)
        reply = expect_ok(client.send(message, self.options.primary), Payload.REPLY_POSITION, "eiRequestPosition")
        quantity, cost = Decimal(0), Decimal(0)
        for position in reply.positions:
            if position.location_id == self.options.location and position.interval.start == start:
                quantity += convert_power(position.quantity, position.quantity_unit, PowerUnit.KW)
                cost += position.cost
        return quantity, cost

    def ticker(self) -> httpx.Response:
        params = {"market_id": self.options.market, "format": self.options.primary}
        return self.me.get("ticker", params, "the market's ticker")


# --- expectations ---------------------------------------------------------------------------------------------------


def expect_ok(answer: Answer, payload: Payload, what: str) -> EiMessage:
    """The answer must be HTTP 200 carrying ``payload`` with responseCode 200; fails the case otherwise."""
    message = answer.message
    if message is None or answer.status != 200 or message.payload is not payload or answer.code != 200:
        pytest.fail(f"{what}: expected HTTP 200 and {payload.value} responseCode 200, got {answer.describe()}")
    return message


def expect_refused(answer: Answer, codes: set[int], what: str, *, bare: bool = False) -> None:
    """The answer must carry one of ``codes`` as its EI responseCode, with HTTP status that code or 200 (EI puts
    the verdict in the payload). ``bare``: an HTTP refusal in ``codes`` without an EI body is accepted too (an
    authenticating proxy in front of the service answers before any EI code runs)."""
    expected = "/".join(str(c) for c in sorted(codes))
    if answer.message is None:
        if bare and answer.status in codes:
            return
        pytest.fail(f"{what}: expected an EI refusal with responseCode {expected}, got {answer.describe()}")
    if answer.code not in codes:
        pytest.fail(f"{what}: expected responseCode {expected}, got {answer.describe()}")
    if answer.status not in (answer.code, 200):
        pytest.fail(f"{what}: responseCode {answer.code} came with HTTP {answer.status}")


def tender_differences(sent: Tender, got: Tender) -> list[str]:
    """How the DUT's copy of a tender differs from the one sent (units converted; Decimal values compared)."""
    found = [
        f"{name} {getattr(got, name)!s} (sent {getattr(sent, name)!s})"
        for name in ("market_id", "party_id", "side", "location_id", "resolution", "currency")
        if getattr(got, name) != getattr(sent, name)
    ]
    if sent.expires_at is not None and got.expires_at != sent.expires_at:
        found.append(f"expires_at {got.expires_at} (sent {sent.expires_at})")
    if len(got.rows) != len(sent.rows):
        return [*found, f"{len(got.rows)} intervals (sent {len(sent.rows)})"]
    for n, (mine, theirs) in enumerate(zip(sent.rows, got.rows, strict=True)):
        quantity = convert_power(theirs["quantity"], got.quantity_unit, sent.quantity_unit)
        price = convert_price(theirs["price"], got.price_per, sent.price_per)
        if theirs["start"] != mine["start"]:
            found.append(f"interval {n} starts {theirs['start'].isoformat()} (sent {mine['start'].isoformat()})")
        if quantity != mine["quantity"]:
            found.append(f"interval {n} quantity {quantity} {sent.quantity_unit} (sent {mine['quantity']})")
        if price != mine["price"]:
            found.append(f"interval {n} price {price} per {sent.price_per} (sent {mine['price']})")
    return found


def expected_cost(tender: Tender, start: datetime, end: datetime) -> Decimal:
    """What the buyer pays for the whole tender's interval: rate x hours x price (kW, kWh as sent)."""
    row = tender.rows[0]
    hours = Decimal(int((end - start).total_seconds())) / Decimal(3600)
    price = convert_price(row["price"], tender.price_per, EnergyUnit.KWH)
    return convert_power(row["quantity"], tender.quantity_unit, PowerUnit.KW) * hours * price


def sleep_past(instant: datetime, slack: float = 1.0) -> None:
    """Sleep until ``slack`` seconds after ``instant``: the DUT's clock and ours are assumed to agree that well."""
    remaining = (instant - datetime.now(UTC)).total_seconds() + slack
    if remaining > 0:
        time.sleep(remaining)
