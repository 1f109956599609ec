"""Shared fixtures. Real servers (PostgreSQL, mosquitto) come from service_fixtures; under CI=true a missing
server fails the run instead of skipping."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store import Store

pytest_plugins = ["service_fixtures"]

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

_database_names = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty database on each backend: a SQLite file, and a fresh database on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"tgw_test_{next(_database_names)}")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated store on each backend."""
    s = Store(store_url)
    yield s
    s.close()


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or a skip saying what is missing (shared/ is not on users' machines)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared/{'/'.join(parts)} is absent (reference fixtures live beside the repo in development)")
    return path
