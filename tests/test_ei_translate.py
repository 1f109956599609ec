"""`tgw translate` to and from EI XML and CTS JSON, as scripts run it (the installed command)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from cli_helpers import assert_clean_failure, tgw

TENDER = {
    "object_type": "tender",
    "id": "solar-1",
    "market_id": "maple-dam",
    "party_id": "maple-solar",
    "side": "sell",
    "location_id": "SP-solar",
    "resolution": "PT15M",
    "rows": [
        {"start": "2030-07-15T18:00:00Z", "quantity": "60.125", "price": "0.055"},
        {"start": "2030-07-15T18:30:00Z", "quantity": "58", "price": "0.0575"},
    ],
    "all_or_none": True,
    "expires_at": "2030-07-15T17:55:00Z",
}


def test_a_tender_goes_to_ei_and_cts_and_comes_back_exactly(tmp_path: Path) -> None:
    source = tmp_path / "tender.json"
    source.write_text(json.dumps(TENDER))
    original = json.loads(tgw("translate", "--from", "canonical", "--to", "canonical", str(source)).stdout)
    for target, opening in (("ei", "<"), ("cts", "{")):
        out = tgw("translate", "--from", "canonical", "--to", target, str(source))
        assert out.returncode == 0, out.stderr
        assert out.stdout.lstrip().startswith(opening)
        wire = tmp_path / f"tender.{target}"
        wire.write_text(out.stdout)
        back = tgw("translate", "--from", target, "--to", "canonical", str(wire))
        assert back.returncode == 0, back.stderr
        payload = json.loads(back.stdout)["payload"]
        expected = original["payload"]
        # Same values: a CTS scale may write 0.055 as 550 x 10^-4, read back as 0.0550 (equal, other text).
        assert [(r["start"], Decimal(r["quantity"]), Decimal(r["price"])) for r in payload["rows"]] == [
            (r["start"], Decimal(r["quantity"]), Decimal(r["price"])) for r in expected["rows"]
        ]
        for field in (
            "id",
            "market_id",
            "party_id",
            "side",
            "location_id",
            "resolution",
            "all_or_none",
            "expires_at",
            "currency",
            "quantity_unit",
            "price_per",
        ):
            assert payload[field] == expected[field], field


def test_bad_ei_input_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>")
    assert_clean_failure(tgw("translate", "--from", "ei", "--to", "canonical", str(bad)))
    neither = tmp_path / "neither.txt"
    neither.write_text("hello")
    assert_clean_failure(tgw("translate", "--from", "cts", "--to", "canonical", str(neither)), "not EI")
    market = tmp_path / "market.json"
    market.write_text(json.dumps({"object_type": "market", "id": "m", "operator_id": "op"}))
    assert_clean_failure(
        tgw("translate", "--from", "canonical", "--to", "ei", str(market)), "EI has no message for a market"
    )
