"""Pytest plugin providing session-wide real PostgreSQL and mosquitto servers.

Load it from ``tests/conftest.py`` with ``pytest_plugins = ["service_fixtures"]``
(or ``-p service_fixtures`` with ``tests`` on ``sys.path``).  Servers are
started lazily, once per session, and only if some test asks for them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services import (
    MosquittoServer,
    PostgresServer,
    ServiceUnavailable,
    require_service,
    start_mosquitto,
    start_postgres,
)


@pytest.fixture(scope="session")
def postgres_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PostgresServer]:
    """A private PostgreSQL server; use ``create_database()`` per test module."""
    try:
        server = start_postgres(tmp_path_factory.mktemp("postgres"))
    except ServiceUnavailable as exc:
        require_service("postgresql", str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    """A private mosquitto broker on a random loopback port."""
    try:
        broker = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    except ServiceUnavailable as exc:
        require_service("mosquitto", str(exc))
    yield broker
    broker.stop()
