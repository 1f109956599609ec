"""`tgw conformance` as a typer app: the listing, a run's exit status and reports, and usage errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gateway.api.server import free_port
from gateway.cli_conformance import conformance_app

runner = CliRunner()


def test_list_shows_suites_and_cases() -> None:
    suites = runner.invoke(conformance_app, ["list"])
    assert suites.exit_code == 0 and "openadr2b-vtn" in suites.output
    cases = runner.invoke(conformance_app, ["list", "openadr2b-vtn"])
    assert cases.exit_code == 0 and "OADR-VTN-REG-001" in cases.output and "required" in cases.output


def test_run_against_a_closed_port_exits_1_with_reports(tmp_path: Path) -> None:
    target = f"http://127.0.0.1:{free_port()}/OpenADR2/Simple/2.0b"
    args = ["run", "openadr2b-vtn", "--target", target, "--report-dir", str(tmp_path), "--timeout", "2"]
    result = runner.invoke(conformance_app, [*args, "--only", "OADR-VTN-REG-002,OADR-VTN-POLL-002"])
    assert result.exit_code == 1, result.output
    assert "could not reach the DUT" in result.output and "FAIL" in result.output
    data = json.loads((tmp_path / "openadr2b-vtn.json").read_text())
    assert [c["id"] for c in data["cases"]] == ["OADR-VTN-REG-002", "OADR-VTN-POLL-002"]
    assert {p.suffix for p in tmp_path.iterdir()} >= {".xml", ".json", ".html"}


def test_usage_errors_exit_2() -> None:
    unknown_suite = runner.invoke(conformance_app, ["run", "nope", "--target", "http://x"])
    assert unknown_suite.exit_code == 2 and "no suite" in unknown_suite.output
    unknown_case = runner.invoke(conformance_app, ["run", "openadr2b-vtn", "--target", "http://x", "--only", "X-1"])
    assert unknown_case.exit_code == 2 and "no case X-1" in unknown_case.output
