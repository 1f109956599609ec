"""Where the gateway's data files (JSON Schemas, protocol mapping tables) are found.

They live at the top of the source tree, where users read and edit them. A wheel carries copies inside
the package (``gateway/_data``, see pyproject.toml); an editable install or a source checkout reads the
top-level folders directly. Code never builds these paths itself: it asks here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Table = TypeVar("Table", bound=BaseModel)

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder ``name`` (``schemas`` or ``mappings``) of this installation."""
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"the gateway's '{name}' folder is missing from this installation (looked in {_PACKAGE_DIR / '_data'}"
        f" and {_PACKAGE_DIR.parent}); reinstall transactive-gateway"
    )


def schemas_dir() -> Path:
    return data_dir("schemas")


def mappings_dir() -> Path:
    return data_dir("mappings")


def read_mapping(path: Path, model: type[Table], error: type[ValueError]) -> Table:
    """Read a protocol's mapping file (YAML) into its checked table model; ``error`` names the file and the entry
    at fault in one line (the operator edits these files, so that is the message they need)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return model.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"cannot read {path}: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise error(f"{path}: {where}: {first['msg']}") from exc
