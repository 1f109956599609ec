"""The `tgw` command as users and scripts run it: a subprocess of the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.api.server import free_port
from gateway.model import MessageKind
from gateway.store import Store

from cli_helpers import TGW, assert_clean_failure, tgw

TENDER = {
    "object_type": "tender",
    "id": "t1",
    "market_id": "m1",
    "party_id": "p1",
    "side": "buy",
    "location_id": "sp1",
    "rows": [{"start": "2030-01-07T01:00:00+01:00", "quantity": 2.5, "price": "0.10"}],
}


def test_translate_canonical_normalises(tmp_path: Path) -> None:
    source = tmp_path / "tender.json"
    source.write_text(json.dumps(TENDER))
    result = tgw("translate", "--from", "canonical", "--to", "canonical", str(source))
    assert result.returncode == 0, result.stderr
    envelope = json.loads(result.stdout)
    assert envelope["kind"] == "tender"
    assert envelope["payload"]["rows"][0]["start"] == "2030-01-07T00:00:00Z"  # normalised to UTC
    assert envelope["payload"]["rows"][0]["quantity"] == "2.5"  # exact decimal as a string
    from_stdin = tgw(
        "translate", "--from", "canonical", "--to", "canonical", "-", stdin=json.dumps([TENDER, TENDER]).encode()
    )
    assert len(json.loads(from_stdin.stdout)) == 2


def test_translate_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**TENDER, "rows": [{"start": "2030-01-07T00:10:00Z", "quantity": 1, "price": 1}]}))
    assert_clean_failure(tgw("translate", "--from", "canonical", "--to", "canonical", str(bad)), "PT1H boundary")
    (tmp_path / "notjson").write_text("<oadrPayload/>")
    assert_clean_failure(
        tgw("translate", "--from", "canonical", "--to", "canonical", str(tmp_path / "notjson")), "not JSON"
    )
    assert_clean_failure(
        tgw("translate", "--from", "klingon", "--to", "canonical", str(bad)), "unknown protocol 'klingon'", "canonical"
    )
    assert_clean_failure(
        tgw("translate", "--from", "canonical", "--to", "canonical", str(tmp_path / "missing.json")), "cannot read"
    )


def test_schema_check_detects_stale_files(tmp_path: Path) -> None:
    assert tgw("schema", "--check").returncode == 0
    assert_clean_failure(tgw("schema", "--check", "--out", str(tmp_path)), "stale", "tgw schema")
    assert tgw("schema", "--out", str(tmp_path)).returncode == 0
    assert tgw("schema", "--check", "--out", str(tmp_path)).returncode == 0
    (tmp_path / "tender.schema.json").write_text("{}")
    assert_clean_failure(tgw("schema", "--check", "--out", str(tmp_path)), "tender.schema.json")


def test_migrate_and_unreachable_database(tmp_path: Path) -> None:
    assert tgw("migrate", "--database-url", f"sqlite:///{tmp_path / 'x.db'}").returncode == 0
    unreachable = f"postgresql://tgw:s3cret@127.0.0.1:{free_port()}/tgw"
    result = tgw("migrate", "--database-url", unreachable)
    assert_clean_failure(result, "cannot reach the database")
    assert "s3cret" not in result.stderr


def test_serve_refuses_a_bad_broker_url(tmp_path: Path) -> None:
    result = tgw("serve", "--database-url", f"sqlite:///{tmp_path / 'x.db'}", "--mqtt-url", "http://nope")
    assert_clean_failure(result, "mqtt://")


def test_serve_from_environment_answers_http(tmp_path: Path, mqtt_broker: Any) -> None:
    port = free_port()
    env = {
        **os.environ,
        "TGW_PORT": str(port),
        "TGW_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "TGW_MQTT_URL": f"mqtt://tgw:s3cret@{mqtt_broker.host}:{mqtt_broker.port}?client_id=cli-test",
    }
    process = subprocess.Popen([TGW, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "tgw serve did not answer within 30 s"
                time.sleep(0.1)
        assert health.json()["status"] in ("ok", "degraded")  # degraded until the bridge has connected
        assert health.json()["mqtt"]["enabled"] is True
        created = httpx.post(f"http://127.0.0.1:{port}/v1/parties", json={"id": "p", "name": "P", "roles": ["iso"]})
        assert created.status_code == 201
    finally:
        process.terminate()
        process.wait(timeout=15)
    banner = process.stdout.read() if process.stdout else ""
    assert "mqtt://tgw:***@" in banner and "s3cret" not in banner, banner
    assert Store(env["TGW_DATABASE_URL"]).counts()["party"] == 1


def test_demo_runs_the_whole_scenario(tmp_path: Path) -> None:
    result = tgw("demo", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "duplicate=True" in result.stdout
    assert "unknown party 'mallory'" in result.stdout
    assert "not on a PT1H boundary" in result.stdout
    store = Store(f"sqlite:///{tmp_path / 'tgw-demo.db'}")
    counts = store.counts()
    # 7 parties (the exchange among them); the IEEE 13 feeder (substation, feeder, 2 transformers, 9 service
    # points) and 5 more service points (4 households, the depot); its 9 loads and 5 household DER; 7 tenders
    # (one of them over the EI service); 2 controls; one market with one subscription, cleared once.
    kinds = ("party", "location", "resource", "tender", "control", "operating_envelope", "market", "subscription")
    assert [counts[kind] for kind in kinds] == [7, 18, 14, 7, 2, 1, 1, 1]
    feeder = store.get(MessageKind.LOCATION, "fdr-ieee13nodeckt")
    assert feeder is not None and feeder.rating_kva == 5000  # type: ignore[union-attr]
    imported = store.query_messages(correlation_id="ieee13-import", limit=100)
    assert len(imported) == 22 and all(m.envelope.source.protocol == "cim" for m in imported)  # type: ignore[union-attr]
    assert store.get(MessageKind.TENDER, "chen-morning").status.value == "cancelled"  # type: ignore[union-attr]
    assert len(store.rejections()) == 2
    # The peak hour cleared on the network: the 500 kVA transformer bound and its side of it priced higher.
    clearings = store.list(MessageKind.CLEARING)
    assert len(clearings) == 2  # the peak hour, then the DR event's first hour for the override's settlement
    clearing = max(clearings, key=lambda c: c.interval.start)  # type: ignore[union-attr]
    assert clearing.binding_location_ids == ["xf-xfm1"]  # type: ignore[union-attr]
    assert clearing.price_at("xf-xfm1") > clearing.price_at("fdr-ieee13nodeckt")  # type: ignore[union-attr]
    assert "bills for the hour" in result.stdout
    assert "eiCreatedTender 200" in result.stdout and "eiReplyPosition: -50 kW" in result.stdout
    lines = store.list(MessageKind.SETTLEMENT_LINE, limit=None)
    assert {line.kind.value for line in lines} == {"transaction", "subscription", "deviation", "penalty"}  # type: ignore[union-attr]
    # Ben opted out of the DR event from his VEN: 3 kWh penalty per hour, and the hour no meter covered estimated
    override_id = "oadr-optout.ben.dr-evening-peak"
    charged = [line for line in lines if line.reference_ids[:1] == [override_id]]  # type: ignore[union-attr]
    assert sorted((line.kind.value, line.amount) for line in charged) == [  # type: ignore[union-attr]
        ("deviation", Decimal(3) * min(clearings, key=lambda c: c.interval.start).price_at("SP-ben")),  # type: ignore[union-attr]
        ("penalty", Decimal("1.5")),
        ("penalty", Decimal("1.5")),
    ]
    assert "the override costs Ben" in result.stdout


@pytest.mark.parametrize("args", [["--help"], ["version"]])
def test_help_and_version(args: list[str]) -> None:
    result = tgw(*args)
    assert result.returncode == 0 and result.stdout.strip()


def test_serve_refuses_a_certificate_it_cannot_read(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.pem")
    result = tgw(
        "serve", "--database-url", f"sqlite:///{tmp_path / 'x.db'}", "--tls-cert", missing, "--tls-key", missing
    )
    assert_clean_failure(result, "cannot read the certificate in --tls-cert", "nowhere.pem")
