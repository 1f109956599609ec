"""The pytest plugin that turns a pytest run of a suite module into conformance results.

It is registered as an object (not by entry point) so one process can run several suites, each with its own
target, without global state. It gives the suite its target (the ``target`` fixture) and an exchange log (the
``exchanges`` fixture), keeps only the ``--only`` cases, and records one :class:`CaseResult` per case from the
reports of its setup, call and teardown phases: a fixture that cannot reach the DUT fails the case with the
reason instead of surfacing as a pytest "error", because to a vendor both mean the device did not conform.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from conformance.framework import Case, CaseResult, Exchange, Outcome, Target, case_of

PLUGIN_NAME = "tgw_conformance"


class ConformancePlugin:
    def __init__(
        self,
        target: Target,
        only: set[str] | None = None,
        on_collected: Callable[[list[Case]], None] | None = None,
        on_result: Callable[[CaseResult], None] | None = None,
    ) -> None:
        self.dut = target
        self.only = only
        self.on_collected = on_collected
        self.on_result = on_result
        self.results: list[CaseResult] = []
        self.current_log: list[Exchange] = []
        self._phase: dict[str, tuple[Outcome, str]] = {}
        self._started: dict[str, float] = {}

    # --- fixtures the suite modules use ----------------------------------------------------------------------------

    @pytest.fixture(scope="session")
    def target(self) -> Target:
        """The DUT this run is aimed at."""
        return self.dut

    @pytest.fixture(scope="session")
    def exchanges(self) -> list[Exchange]:
        """The current case's exchange log; harness clients append to it (it is emptied between cases)."""
        return self.current_log

    # --- collection --------------------------------------------------------------------------------------------------

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        kept, dropped = [], []
        for item in items:
            meta = _meta(item)
            (kept if meta is not None and (self.only is None or meta.id in self.only) else dropped).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = kept
        if self.on_collected is not None:
            self.on_collected([m for m in (_meta(i) for i in kept) if m is not None])

    # --- results ---------------------------------------------------------------------------------------------------

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.current_log.clear()
        self._started[item.nodeid] = time.monotonic()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Keep the first non-pass of setup/call/teardown; at teardown, emit the case's result."""
        outcome, reason = _outcome(report)
        if report.nodeid not in self._phase or self._phase[report.nodeid][0] is Outcome.PASSED:
            self._phase[report.nodeid] = (outcome, reason)
        if report.when != "teardown":
            return
        meta = _meta_by_nodeid.get(report.nodeid)
        if meta is None:
            return
        final, why = self._phase.pop(report.nodeid)
        started = self._started.pop(report.nodeid, time.monotonic())
        result = CaseResult(
            id=meta.id,
            title=meta.title,
            rule=meta.rule,
            severity=meta.severity,
            outcome=final,
            duration=round(time.monotonic() - started, 3),
            reason=why,
            exchanges=list(self.current_log),
        )
        self.results.append(result)
        if self.on_result is not None:
            self.on_result(result)


_meta_by_nodeid: dict[str, Case] = {}


def _meta(item: pytest.Item) -> Case | None:
    function: Any = getattr(item, "function", None)
    meta = case_of(function) if function is not None else None
    if meta is not None:
        _meta_by_nodeid[item.nodeid] = meta
    return meta


def _outcome(report: pytest.TestReport) -> tuple[Outcome, str]:
    if report.passed:
        return Outcome.PASSED, ""
    if report.skipped:
        longrepr: Any = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        return Outcome.SKIPPED, reason.removeprefix("Skipped: ")
    return Outcome.FAILED, _reason(report)


def _reason(report: pytest.TestReport) -> str:
    """The failure's message without the traceback: what a vendor needs to read first."""
    longrepr: Any = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    message = crash.message if crash is not None else str(longrepr)
    message = message.removeprefix("Failed: ").removeprefix("AssertionError: ").split("\nassert ")[0]
    if report.when != "call":
        message = f"{message} (during {report.when})"
    return message.strip()
