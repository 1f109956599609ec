"""`tgw clear BOOK.json --json`: the one-interval clearing contract of DESIGN.md, run as users run it."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import assert_clean_failure, tgw

BOOK = {
    "buys": [{"id": "b1", "quantity": 5, "price": 0.12}, {"id": "b2", "quantity": 3, "price": 0.10}],
    "sells": [{"id": "s1", "quantity": 4, "price": 0.08}, {"id": "s2", "quantity": 10, "price": 0.11}],
    "price_cap": 9999,
    "price_floor": -9999,
    "k": 0.5,
}


def test_clear_prints_the_contract(tmp_path: Path) -> None:
    book = tmp_path / "book.json"
    book.write_text(json.dumps(BOOK))
    result = tgw("clear", str(book), "--json")
    assert result.returncode == 0, result.stderr
    # b1 takes all of s1 (4) and 1 of s2, which is partly dispatched: s2 sets the price.
    assert json.loads(result.stdout) == {
        "clearing_price": 0.11,
        "cleared_quantity": 5.0,
        "type": "MARGINAL_SELLER",
        "awards": {"b1": 5.0, "s1": 4.0, "s2": 1.0},
    }


def test_unresponsive_demand_beyond_supply_is_a_failure_at_the_cap() -> None:
    book = {
        "buys": [{"id": "load", "quantity": 10, "price": 9999}],
        "sells": [{"id": "s", "quantity": 4, "price": 0.2}],
    }
    result = tgw("clear", "-", "--json", stdin=json.dumps(book).encode())
    assert json.loads(result.stdout)["type"] == "FAILURE"
    assert json.loads(result.stdout)["clearing_price"] == 9999


def test_bad_books_fail_in_one_line(tmp_path: Path) -> None:
    negative = {"buys": [{"id": "b1", "quantity": -5, "price": 0.12}], "sells": []}
    assert_clean_failure(tgw("clear", "-", stdin=json.dumps(negative).encode()), "b1", "quantity")
    (tmp_path / "x.json").write_text("{")
    assert_clean_failure(tgw("clear", str(tmp_path / "x.json")), "not JSON")
    assert_clean_failure(tgw("clear", str(tmp_path / "none.json")), "cannot read")
