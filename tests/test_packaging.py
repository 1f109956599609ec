"""The distribution as users install it: a wheel that carries its data, and schemas that match the code."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gateway import schema
from gateway.resources import mappings_dir, schemas_dir

ROOT = Path(__file__).resolve().parents[1]


def test_committed_schemas_match_the_model() -> None:
    assert schema.stale(schemas_dir() / "canonical") == [], "run `tgw schema` and commit schemas/"


def test_data_folders_are_found() -> None:
    assert (schemas_dir() / "canonical" / "envelope.schema.json").is_file()
    assert (mappings_dir() / "README.md").is_file()


@pytest.mark.slow
def test_wheel_carries_data_and_works_without_the_source_tree(tmp_path: Path) -> None:
    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip("not running from a source checkout")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    [wheel] = tmp_path.glob("transactive_gateway-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "gateway/_data/schemas/canonical/tender.schema.json" in names
    assert "gateway/_data/mappings/README.md" in names
    assert "gateway/store/migrations/versions/0001_initial.py" in names
    assert "conformance/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "tgw = gateway.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    # Unpacked away from the source tree, the package finds its data and migrates a database by itself.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import gateway.resources as r, gateway.schema as s; from gateway.store import Store;"
        f"d = r.schemas_dir(); assert str(d).startswith({str(site)!r}), d; assert s.stale(d / 'canonical') == [];"
        f"Store('sqlite:///{tmp_path / 'probe.db'}').close(); print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {probe}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
