"""A market's network: the subtree of the location tree under its ``network_root_id``, with transport limits.

Limits come from each location's ``rating_kva`` (the CIM import fills them from transformer ratedS and feeder head
ratings, see ``gateway.protocols.cim.mapper.transport_limits``). The clearing treats a kVA limit as the same number
of kW: power factor 1, the loosest reading, so a limit binds only when real power alone overruns the rating.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from gateway.market.network_clearing import Network
from gateway.model import Location, Market, PowerUnit, convert_power


def market_network(market: Market, locations: Iterable[Location]) -> Network | None:
    """The network of ``market`` (None for a copper-plate market without a network root)."""
    if market.network_root_id is None:
        return None
    children: dict[str, list[Location]] = {}
    by_id: dict[str, Location] = {}
    for location in locations:
        by_id[location.id] = location
        if location.parent_id is not None:
            children.setdefault(location.parent_id, []).append(location)
    if market.network_root_id not in by_id:
        raise ValueError(f"market '{market.id}' names network root '{market.network_root_id}', which is not stored")
    parent: dict[str, str | None] = {market.network_root_id: None}
    capacity: dict[str, float] = {}
    stack = [market.network_root_id]
    while stack:
        node = stack.pop()
        for child in children.get(node, ()):
            parent[child.id] = node
            if child.rating_kva is not None:
                capacity[child.id] = float(_in_market_unit(child.rating_kva, market))
            stack.append(child.id)
    return Network(parent=parent, capacity_kva=capacity)


def _in_market_unit(kva: Decimal, market: Market) -> Decimal:
    if market.quantity_unit is PowerUnit.KW:
        return kva
    return convert_power(kva, PowerUnit.KW, market.quantity_unit)
