"""Run a suite against a target with pytest in this process, and write its reports.

In-process rather than a subprocess so the caller (the CLI's live progress, a test) gets each result as it
happens through plain callbacks. pytest is isolated from whatever project the user runs it in: its own empty
ini file and rootdir in the report folder, no cache, no terminal output, so a vendor's own pytest configuration
or a stray conftest.py cannot change what a certification run checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conformance.framework import Case, CaseResult, SuiteResult, Target, get_suite
from conformance.plugin import ConformancePlugin
from conformance.reports import write_html, write_json


def run_suite(
    suite_name: str,
    target: Target,
    report_dir: Path | str,
    only: Iterable[str] | None = None,
    on_collected: Callable[[list[Case]], None] | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
) -> SuiteResult:
    """Run ``suite_name`` against ``target``; write ``<suite>.xml`` (JUnit), ``.json`` and ``.html`` into
    ``report_dir`` and return the results. Raises KeyError for an unknown suite or unknown ``only`` ids."""
    suite = get_suite(suite_name)
    wanted = {i.strip() for i in only if i.strip()} if only is not None else None
    if wanted:
        unknown = wanted - {c.id for c in suite.cases()}
        if unknown:
            raise KeyError(f"no case {', '.join(sorted(unknown))} in suite {suite_name}")
    folder = Path(report_dir)
    folder.mkdir(parents=True, exist_ok=True)
    ini = folder / f".{suite.name}-pytest.ini"
    ini.write_text("[pytest]\n")
    junit = folder / f"{suite.name}.xml"
    plugin = ConformancePlugin(target, wanted or None, on_collected, on_result)
    args = [
        str(suite.path),
        "-c",
        str(ini),
        "--rootdir",
        str(folder),
        "-p",
        "no:cacheprovider",
        "-p",
        "no:terminal",
        "-p",
        "no:randomly",
        "-o",
        f"junit_suite_name={suite.name}",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        f"--junitxml={junit}",
    ]
    started = datetime.now(UTC)
    clock = time.monotonic()
    code = int(pytest.main(args, plugins=[plugin]))
    ini.unlink(missing_ok=True)
    result = SuiteResult(
        suite=suite.name,
        target=target.url,
        started=started.isoformat(timespec="seconds"),
        duration=round(time.monotonic() - clock, 3),
        cases=plugin.results,
        exit_code=code,
    )
    result.reports = {
        "junit": str(junit),
        "json": str(write_json(result, folder / f"{suite.name}.json")),
        "html": str(write_html(result, folder / f"{suite.name}.html")),
    }
    return result
