"""JSON and HTML reports of a suite run (the JUnit XML comes from pytest itself).

The HTML is one self-contained file (inline CSS, no scripts, no external assets) because it is attached to
certification tickets and opened offline; failures come first and each case shows what the harness sent and
what came back, since "why did my device fail" is the only question the report exists to answer.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from conformance.framework import CaseResult, Exchange, Outcome, Severity, SuiteResult

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#f3f3f3}.passed{color:#186a1e}.failed{color:#b00020;font-weight:bold}
.skipped{color:#8a6d00}pre{background:#f7f7f7;padding:6px;white-space:pre-wrap;word-break:break-all;
max-height:24em;overflow:auto}.verdict{font-size:1.4em}details{margin:4px 0}
"""


def write_json(result: SuiteResult, path: Path) -> Path:
    path.write_text(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    return path


def write_html(result: SuiteResult, path: Path) -> Path:
    path.write_text(render_html(result), encoding="utf-8")
    return path


def _order(case: CaseResult) -> tuple[int, int]:
    rank = {Outcome.FAILED: 0, Outcome.SKIPPED: 1, Outcome.PASSED: 2}[case.outcome]
    return rank, 0 if case.severity is Severity.REQUIRED else 1


def render_html(result: SuiteResult) -> str:
    verdict = "PASS" if result.ok else "FAIL"
    rows = "".join(_row(c) for c in sorted(result.cases, key=_order))
    details = "".join(_details(c) for c in sorted(result.cases, key=_order))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(result.suite)} conformance report</title>
<style>{_CSS}</style></head><body>
<h1>Conformance report: {escape(result.suite)}</h1>
<p>Target <code>{escape(result.target)}</code>, started {escape(result.started)}, {result.duration:.1f} s.</p>
<p class="verdict {"passed" if result.ok else "failed"}">{verdict}: {escape(result.summary())}</p>
<table><tr><th>Case</th><th>Severity</th><th>Outcome</th><th>Rule</th><th>Title</th><th>Reason</th></tr>
{rows}</table>
<h2>Cases in detail</h2>
{details}
</body></html>
"""


def _row(case: CaseResult) -> str:
    return (
        f'<tr><td><a href="#{escape(case.id)}">{escape(case.id)}</a></td><td>{case.severity.value}</td>'
        f'<td class="{case.outcome.value}">{case.outcome.value}</td><td>{escape(case.rule)}</td>'
        f"<td>{escape(case.title)}</td><td>{escape(case.reason)}</td></tr>\n"
    )


def _details(case: CaseResult) -> str:
    exchanges = "".join(_exchange(i, e) for i, e in enumerate(case.exchanges, 1)) or "<p>No exchanges.</p>"
    reason = f"<p><b>Reason:</b> {escape(case.reason)}</p>" if case.reason else ""
    return (
        f'<section id="{escape(case.id)}"><h3>{escape(case.id)}: {escape(case.title)} '
        f'<span class="{case.outcome.value}">[{case.outcome.value}]</span></h3>'
        f"<p>{case.severity.value}; checks {escape(case.rule)}; {case.duration:.3f} s</p>{reason}{exchanges}"
        "</section>\n"
    )


def _exchange(number: int, exchange: Exchange) -> str:
    status = exchange.error or f"HTTP {exchange.status}"
    note = f" ({escape(exchange.note)})" if exchange.note else ""
    return (
        f"<details><summary>{number}. {escape(exchange.method)} {escape(exchange.url)}: {escape(status)}{note}"
        f"</summary><p>Sent:</p><pre>{escape(exchange.request)}</pre>"
        f"<p>Received:</p><pre>{escape(exchange.response)}</pre></details>"
    )
