"""`tgw cim summary` and `tgw cim import` as users run them (subprocess of the installed command)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gateway.demo_ieee13 import write_ieee13
from gateway.model import MessageKind
from gateway.store import Store

from cli_helpers import assert_clean_failure, tgw
from conftest import shared_path


@pytest.fixture(scope="module")
def demo_feeder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ieee13(tmp_path_factory.mktemp("cim") / "ieee13.xml")


def summary(*paths: Path) -> dict:
    result = tgw("cim", "summary", *map(str, paths), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_summary_json_contract_on_the_generated_feeder(demo_feeder: Path) -> None:
    data = summary(demo_feeder)
    assert {"classes", "feeders", "der", "warnings"} <= set(data)
    assert data["classes"]["EnergyConsumer"] == 9 and data["classes"]["ACLineSegment"] == 11
    assert [f["name"] for f in data["feeders"]] == ["ieee13nodeckt"]
    assert data["warnings"] == []
    assert data["objects"] == sum(data["classes"].values())


def test_summary_of_the_ieee13_fixture_counts_der() -> None:
    data = summary(shared_path("fixtures", "cim", "cimgraph", "ieee13.xml"))
    assert data["classes"]["PowerElectronicsConnection"] == 5
    kinds = {item["kind"]: item["count"] for item in data["der"]}
    assert kinds.get("battery") == 3 and kinds.get("pv") == 2


def test_summary_of_a_cgmes_folder() -> None:
    data = summary(shared_path("fixtures", "cim", "cgmes", "microgrid-be-3.0"))
    assert len(data["files"]) == 5 and data["dangling"] == 0


def test_summary_tables_for_people(demo_feeder: Path) -> None:
    result = tgw("cim", "summary", str(demo_feeder))
    assert result.returncode == 0, result.stderr
    assert "Feeders" in result.stdout and "ieee13nodeckt" in result.stdout


def test_bad_models_fail_in_one_line(tmp_path: Path) -> None:
    html = tmp_path / "page.xml"
    html.write_text("<html><body>not a model</body></html>")
    assert_clean_failure(tgw("cim", "summary", str(html)), "not an RDF/XML document")
    truncated = tmp_path / "cut.xml"
    truncated.write_bytes(write_ieee13(tmp_path / "full.xml").read_bytes()[:5000])
    assert_clean_failure(tgw("cim", "summary", str(truncated)), "cut.xml:", "broken XML")
    assert_clean_failure(tgw("cim", "summary", str(tmp_path / "missing.xml")), "no such file")


def test_import_is_idempotent(demo_feeder: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cim.db'}"
    first = tgw("cim", "import", str(demo_feeder), "--database-url", url)
    assert first.returncode == 0, first.stderr
    store = Store(url)
    counts = store.counts()
    assert counts[MessageKind.LOCATION.value] > 9 and counts[MessageKind.PARTY.value] == 1
    log_size = store.last_seq()
    again = tgw("cim", "import", str(demo_feeder), "--database-url", url)
    assert again.returncode == 0 and " 0 new" in again.stdout, again.stdout
    assert store.last_seq() == log_size  # nothing new in the log
    service_points = store.list(MessageKind.LOCATION, filters={"location_kind": "service_point"}, limit=1000)
    assert len(service_points) == 9


def test_import_into_an_unreachable_database_is_a_clean_error(demo_feeder: Path) -> None:
    result = tgw("cim", "import", str(demo_feeder), "--database-url", "postgresql://x:y@127.0.0.1:1/db")
    assert_clean_failure(result, "cannot reach the database")
    assert isinstance(result, subprocess.CompletedProcess)
