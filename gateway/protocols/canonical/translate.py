"""Canonical JSON as a translator: accepts an envelope, a bare canonical object, or a JSON array of them.

Output is the envelope form (one object, or an array for several), normalised: UTC times, exact decimals
as strings, defaults filled in.
"""

from __future__ import annotations

import json

from pydantic import TypeAdapter, ValidationError

from gateway.model import Envelope
from gateway.model.envelope import Payload
from gateway.translation import TranslationError, Translator, register

_payload = TypeAdapter(Payload)


def _one(item: object, where: str) -> Envelope:
    if not isinstance(item, dict):
        raise TranslationError(f"{where}: expected a JSON object, got {type(item).__name__}")
    try:
        if "payload" in item:
            return Envelope.model_validate(item)
        if "object_type" not in item:
            raise TranslationError(
                f"{where}: neither an envelope (no 'payload') nor a canonical object (no 'object_type')"
            )
        return Envelope(payload=_payload.validate_python(item))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise TranslationError(f"{where}: {loc}: {first['msg']}{more}") from None


def decode(data: bytes) -> list[Envelope]:
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TranslationError(f"not JSON: {exc}") from None
    if isinstance(document, list):
        return [_one(item, f"item {index}") for index, item in enumerate(document)]
    return [_one(document, "message")]


def encode(envelopes: list[Envelope]) -> bytes:
    if len(envelopes) == 1:
        return envelopes[0].model_dump_json(indent=2).encode() + b"\n"
    items = ",\n".join(e.model_dump_json(indent=2) for e in envelopes)
    return b"[\n" + items.encode() + b"\n]\n"


register(
    Translator(
        name="canonical",
        description="canonical JSON (an envelope, a bare object, or an array of them)",
        decode=decode,
        encode=encode,
    )
)
