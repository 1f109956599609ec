"""CIM network models (IEC 61970/61968): a streaming reader for CIMHub feeders and CGMES multi-file models,
and the network view (locations, resources, transport limits) the market and DER mapping need.

The adapter works in three stages: ``reader`` (files -> :class:`CimModel`), ``network`` (model -> the
:class:`NetworkView`, built by the steps beside it) and ``mapper`` (view -> canonical locations and resources).

``build_network`` and the mapper are imported on first use: they pull in the canonical model (~0.1 s), which
callers that only read a model (``tgw cim`` loading a file, the reader benchmark) should not pay for.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from gateway.protocols.cim.reader import CimModel, CimObject, CimReadError, normalise_id, read_cim
from gateway.protocols.cim.view import NetworkView, summary_of

if TYPE_CHECKING:
    from gateway.protocols.cim.mapper import to_canonical, transport_limits
    from gateway.protocols.cim.network import build_network

__all__ = [
    "CimModel",
    "CimObject",
    "CimReadError",
    "NetworkView",
    "build_network",
    "normalise_id",
    "read_cim",
    "summary_of",
    "to_canonical",
    "transport_limits",
]

_ON_FIRST_USE = {
    "build_network": "network",
    "to_canonical": "mapper",
    "transport_limits": "mapper",
}


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
