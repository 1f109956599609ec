"""A network's canonical objects as envelopes that remember they came from a CIM model.

`tgw cim import` and the demo both load a network this way: the source is (cim, model file, object's CIM
id, content version), so importing the same model again is a duplicate and a changed rating is a new
version of that location.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.model import Envelope, Location, Party, Resource, Source, content_version


def network_envelopes(
    objects: Iterable[Party | Location | Resource], *, peer: str, correlation_id: str | None = None
) -> list[Envelope]:
    envelopes = []
    for obj in objects:
        native = getattr(obj, "network_ref", None) or obj.id
        source = Source(
            protocol="cim", peer=peer, native_id=f"{obj.object_type}:{native}", version=content_version(obj)
        )
        envelopes.append(Envelope(payload=obj, source=source, correlation_id=correlation_id))
    return envelopes
