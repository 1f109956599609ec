"""The gateway over real HTTP for tests that drive its REST API: one app on loopback per store, the periodic call
auction off (every market run in these tests is asked for explicitly), and a POST that insists on its status."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from gateway.api import create_app
from gateway.api.server import serve_in_thread
from gateway.config import Settings
from gateway.store import Store


@contextmanager
def served(store: Store) -> Iterator[httpx.Client]:
    app = create_app(Settings(market_tick_seconds=0), store=store)
    with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


def post(http: httpx.Client, path: str, body: dict[str, Any], status: int = 201) -> httpx.Response:
    response = http.post(path, json=body)
    assert response.status_code == status, (path, body, response.text)
    return response
