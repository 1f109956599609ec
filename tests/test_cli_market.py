"""`tgw market clear | settle | results` as an operator runs them: the installed command on a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.ingest import Ingestor
from gateway.model import Envelope
from gateway.store import Store

from cli_helpers import assert_clean_failure, tgw

HOUR = "2024-01-07T10:00:00+00:00"


def seeded(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'market.db'}"
    store = Store(url)

    def env(object_type: str, **payload: object) -> Envelope:
        return Envelope.model_validate({"payload": {"object_type": object_type, **payload}})

    def tender(tid: str, party: str, side: str, quantity: str, price: str) -> Envelope:
        rows = [{"start": HOUR, "quantity": quantity, "price": price}]
        created = "2024-01-06T00:00:00Z"  # before the gate: a tender created later would miss this interval
        return env(
            "tender",
            id=tid,
            market_id="m1",
            party_id=party,
            side=side,
            location_id="sp1",
            rows=rows,
            created_at=created,
        )

    Ingestor(store).ingest_sync(
        [
            env("party", id="op", name="Exchange", roles=["dmo"]),
            env("party", id="a", name="A", roles=["producer"]),
            env("party", id="c", name="C", roles=["consumer"]),
            env("location", id="sp1", name="sp1", kind="service_point"),
            env("market", id="m1", operator_id="op"),
            tender("s1", "a", "sell", "5", "0.10"),
            tender("b1", "c", "buy", "3", "0.30"),
            env(
                "delivery",
                id="d1",
                party_id="c",
                location_id="sp1",
                interval={"start": HOUR, "duration": "PT1H"},
                quantity="4",
            ),
        ],
        protocol="test",
        peer="seed",
    )
    store.close()
    return url


def test_clear_then_settle_then_read_results(tmp_path: Path) -> None:
    url = seeded(tmp_path)
    first = tgw("market", "clear", "m1", "--interval", HOUR, "--database-url", url, "--json")
    assert first.returncode == 0, first.stderr
    [run] = json.loads(first.stdout)
    assert run["created"] is True
    assert (run["clearing"]["type"], run["clearing"]["price"], run["clearing"]["cleared_quantity"]) == (
        "MARGINAL_SELLER",
        "0.1",
        "3",
    )
    again = json.loads(tgw("market", "clear", "m1", "--interval", HOUR, "--database-url", url, "--json").stdout)
    assert again[0]["created"] is False and again[0]["transaction_ids"] == run["transaction_ids"]

    settled = tgw(
        "market", "settle", "m1", "--start", HOUR, "--end", "2024-01-07T11:00:00Z", "--database-url", url, "--json"
    )
    assert settled.returncode == 0, settled.stderr
    bill = json.loads(settled.stdout)
    # c bought 3 kW at 0.10 (the marginal seller's price) and used 4: 0.30 forward + 1 kW x 0.10 deviation.
    assert bill["totals"]["c"] == "0.400000"
    assert bill["stored"] == len(bill["lines"])
    assert {"party_id": "a", "location_id": "sp1", "interval_start": HOUR} in bill["missing_deliveries"]

    table = tgw("market", "results", "m1", "--database-url", url)
    assert table.returncode == 0 and "MARGINAL_SELLER" in table.stdout


def test_operator_errors_are_one_line_reasons(tmp_path: Path) -> None:
    url = seeded(tmp_path)
    assert_clean_failure(tgw("market", "clear", "nope", "--database-url", url), "unknown market 'nope'")
    assert_clean_failure(
        tgw("market", "clear", "m1", "--interval", "2024-01-07T10:00:00", "--database-url", url), "needs a UTC offset"
    )
    assert_clean_failure(
        tgw("market", "clear", "m1", "--interval", "2999-01-07T10:00:00Z", "--database-url", url), "closes at"
    )
    assert_clean_failure(
        tgw("market", "settle", "m1", "--start", HOUR, "--end", HOUR, "--database-url", url), "must end after"
    )
