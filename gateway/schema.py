"""JSON Schema of the canonical model, generated from the pydantic models into schemas/canonical/.

Integrators in other languages validate against these files; a test regenerates them and fails when the
committed copies are stale, so the files and the code cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path

from gateway.model import PAYLOAD_TYPES, Envelope

SCHEMA_BASE_URI = "https://transactive-gateway.org/schemas/canonical/"


def _render(schema: dict[str, object], name: str) -> str:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_BASE_URI + name, **schema}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def generate() -> dict[str, str]:
    """File name -> schema text for the envelope and every canonical object kind (validation mode: what we accept)."""
    files = {"envelope.schema.json": _render(Envelope.model_json_schema(), "envelope.schema.json")}
    for kind, model in PAYLOAD_TYPES.items():
        name = f"{kind.value}.schema.json"
        files[name] = _render(model.model_json_schema(), name)
    return files


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generate().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path) -> list[str]:
    """Names of schema files that are missing, differ from the code, or no longer belong in ``directory``."""
    expected = generate()
    problems = [
        name
        for name, text in expected.items()
        if not (directory / name).is_file() or (directory / name).read_text(encoding="utf-8") != text
    ]
    if directory.is_dir():
        problems += [p.name for p in directory.glob("*.schema.json") if p.name not in expected]
    return sorted(problems)
