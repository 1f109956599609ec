"""Running the installed `tgw` command the way users and scripts do, and checking how it fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TGW = shutil.which("tgw", path=str(Path(sys.executable).parent)) or "tgw"


def tgw(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TGW, *args],
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Non-zero exit, an actionable message on stderr, no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert "error:" in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
