"""Market clearing: the uniform-price double auction of one interval (``auction``).

``network_clearing`` (locational clearing with transport limits) is imported from its own module.
"""

from gateway.market.auction import TICKS_PER_UNIT, Book, ClearingResult, ClearingType, Curve, clear

__all__ = ["TICKS_PER_UNIT", "Book", "ClearingResult", "ClearingType", "Curve", "clear"]
