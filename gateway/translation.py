"""Registry of translators for `tgw translate --from P --to Q` (shared infrastructure, not an adapter).

Each protocol package that can translate files ships a ``translate`` module that calls :func:`register`.
The registry finds them by looking for ``gateway.protocols.<name>.translate``, so adding an adapter needs
no change here and no adapter imports another (they meet only in canonical envelopes).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from gateway.model import Envelope


class TranslationError(ValueError):
    """Input that cannot be translated; the message says why in one line."""


@dataclass(frozen=True)
class Translator:
    name: str
    description: str
    decode: Callable[[bytes], list[Envelope]]
    encode: Callable[[list[Envelope]], bytes]


_TRANSLATORS: dict[str, Translator] = {}
_discovered = False


def register(translator: Translator) -> None:
    _TRANSLATORS[translator.name] = translator


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    import gateway.protocols as package

    for module in pkgutil.iter_modules(package.__path__):
        name = f"{package.__name__}.{module.name}.translate"
        if module.ispkg and importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    _discovered = True


def available() -> dict[str, Translator]:
    _discover()
    return dict(sorted(_TRANSLATORS.items()))


def get(name: str) -> Translator:
    translators = available()
    if name not in translators:
        raise TranslationError(f"unknown protocol '{name}'; available: {', '.join(translators)}")
    return translators[name]


def translate(data: bytes, source: str, target: str) -> bytes:
    """Decode ``data`` as ``source`` into canonical envelopes, then encode them as ``target``."""
    decoder, encoder = get(source), get(target)
    envelopes = decoder.decode(data)
    if not envelopes:
        raise TranslationError(f"the {source} input holds no message")
    return encoder.encode(envelopes)
