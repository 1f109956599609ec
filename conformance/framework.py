"""The vocabulary every conformance suite shares: cases, their metadata, the target, and what a run produces.

A case is an ordinary pytest test function decorated with :func:`case`; pytest is the engine (fixtures, ordering,
skips, JUnit XML) and this module only adds what a certification report needs on top: a stable ID that vendors
quote in tickets, the rule or clause the case checks, and whether failing it fails certification (``required``)
or only deserves attention (``recommended``). Keeping the metadata on the function (rather than in a side table)
means a case cannot exist without it and ``tgw conformance list`` can read it without running anything.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

CASE_ATTRIBUTE = "__conformance_case__"
MAX_BODY_CHARS = 4000  # an exchange body in a report is cut here: enough to see the answer, small enough to read

F = TypeVar("F", bound=Callable[..., Any])


class Severity(StrEnum):
    REQUIRED = "required"
    RECOMMENDED = "recommended"


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Case:
    """What a case is, independent of any run."""

    id: str
    title: str
    rule: str
    severity: Severity = Severity.REQUIRED


def case(case_id: str, title: str, rule: str, severity: Severity = Severity.REQUIRED) -> Callable[[F], F]:
    """Mark a pytest test function as conformance case ``case_id``.

    The metadata is kept on the function itself, where both the listing (which imports the module) and the
    pytest plugin (which sees collected items) find it. Not a pytest marker: marks are checked against the
    configuration of whichever pytest session is current, which breaks importing a suite from inside a test run.
    """
    meta = Case(case_id, title, rule, Severity(severity))

    def decorate(function: F) -> F:
        setattr(function, CASE_ATTRIBUTE, meta)
        return function

    return decorate


def case_of(obj: object) -> Case | None:
    return getattr(obj, CASE_ATTRIBUTE, None)


@dataclass(frozen=True, slots=True)
class Target:
    """The device or server under test and how to reach it.

    ``options`` carries suite-specific knobs (the VEN name a VTN suite registers with, whether events are
    expected) so the framework does not need to know every suite's vocabulary.
    """

    url: str
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    timeout: float = 10.0
    options: dict[str, str] = field(default_factory=dict)

    def option(self, name: str, default: str = "") -> str:
        return self.options.get(name, default)

    def flag(self, name: str) -> bool:
        return self.options.get(name, "").lower() in {"1", "true", "yes", "on"}


@dataclass(slots=True)
class Exchange:
    """One request the harness sent and what came back (bodies truncated), or the transport error instead."""

    method: str
    url: str
    request: str
    status: int | None = None
    response: str = ""
    error: str | None = None
    note: str | None = None


def truncate(data: bytes | str, limit: int = MAX_BODY_CHARS) -> str:
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


@dataclass(slots=True)
class CaseResult:
    id: str
    title: str
    rule: str
    severity: Severity
    outcome: Outcome
    duration: float
    reason: str = ""
    exchanges: list[Exchange] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        data["outcome"] = self.outcome.value
        return data


@dataclass(slots=True)
class SuiteResult:
    """A finished run. ``ok`` is the certification verdict: every required case that ran passed or was skipped
    as not applicable (a skip always says why; a run that expects events turns those skips into failures)."""

    suite: str
    target: str
    started: str
    duration: float
    cases: list[CaseResult]
    exit_code: int = 0  # pytest's own exit status: an internal error of the harness shows up here
    reports: dict[str, str] = field(default_factory=dict)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for c in self.cases if c.outcome is outcome)

    @property
    def required_failures(self) -> list[CaseResult]:
        return [c for c in self.cases if c.severity is Severity.REQUIRED and c.outcome is Outcome.FAILED]

    @property
    def ok(self) -> bool:
        return bool(self.cases) and not self.required_failures and self.exit_code in (0, 1)

    def summary(self) -> str:
        return (
            f"{self.suite}: {self.count(Outcome.PASSED)} passed, {self.count(Outcome.FAILED)} failed"
            f" ({len(self.required_failures)} required), {self.count(Outcome.SKIPPED)} skipped"
            f" in {self.duration:.1f}s: {'PASS' if self.ok else 'FAIL'}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "target": self.target,
            "started": self.started,
            "duration": self.duration,
            "ok": self.ok,
            "summary": {o.value: self.count(o) for o in Outcome} | {"required_failed": len(self.required_failures)},
            "cases": [c.to_json() for c in self.cases],
        }


@dataclass(frozen=True, slots=True)
class Suite:
    """A named suite: the module (importable path) whose decorated test functions are its cases."""

    name: str
    title: str
    module: str

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    @property
    def path(self) -> Path:
        file = self.load().__file__
        assert file is not None
        return Path(file)

    def cases(self) -> list[Case]:
        """The cases in source order (the order pytest runs them in)."""
        found = [case_of(value) for value in vars(self.load()).values() if callable(value)]
        return [c for c in found if c is not None]


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite("openadr2b-vtn", "OpenADR 2.0b VTN (the harness plays a VEN)", "conformance.openadr2b_vtn"),
        Suite("cim-model", "CIM network model: a file, CGMES folder or zip (target: path)", "conformance.cim_model"),
        Suite(
            "ieee2030_5-server",
            "IEEE 2030.5 (CSIP) server (the harness plays a DER client with --cert)",
            "conformance.ieee2030_5_server",
        ),
        Suite(
            "ieee2030_5-client",
            "IEEE 2030.5 (CSIP) DER client (the harness plays the server at --target; point the device at its /dcap)",
            "conformance.ieee2030_5_client",
        ),
        Suite("ei-tender", "TeMIX market service over EI/CTS (the harness plays a party)", "conformance.ei_tender"),
        Suite(
            "openadr2b-ven",
            "OpenADR 2.0b VEN (the harness plays a pull VTN at --target; point the VEN at it)",
            "conformance.openadr2b_ven",
        ),
    )
}


def get_suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except KeyError:
        raise KeyError(f"no suite '{name}'; the suites are {', '.join(sorted(SUITES))}") from None
