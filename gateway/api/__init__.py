"""The REST API (FastAPI): canonical messages and current state, health, OpenAPI docs at /docs."""

from gateway.api.app import create_app

__all__ = ["create_app"]
