"""Where the gateway's data files (JSON Schemas, protocol mapping tables) are found.

They live at the top of the source tree, where users read and edit them. A wheel carries copies inside
the package (``gateway/_data``, see pyproject.toml); an editable install or a source checkout reads the
top-level folders directly. Code never builds these paths itself: it asks here.
"""

from __future__ import annotations

from pathlib import Path

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
