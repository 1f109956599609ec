"""IEEE 2030.5-2018 Response and Subscription / Notification function sets.

A Notification carries the changed resource in its ``Resource`` element, typed by ``xsi:type``
(``<Resource xsi:type="DERControlList" all="1" ...>``). Here ``Notification.Resource`` is declared as the base
:class:`Resource` and holds any subclass instance (a DERControlList, an EndDevice, a TimeTariffInterval...):
the encoder writes the instance's own fields and ``xsi:type`` with its class name, and the decoder builds the
class ``xsi:type`` names (it must be a Resource). The same holds wherever a base type is declared, so a
ResponseList may carry DERControlResponse items.

Conventions (names, order, attributes, ``Opt`` / ``Many``) as in :mod:`models_common`.
"""

from typing import Annotated

from gateway.protocols.ieee2030_5.models_common import IdentifiedObject, List, ListLink, Resource
from gateway.protocols.ieee2030_5.models_types import (
    AnyURI,
    Attr,
    HexBinary160,
    Int48,
    Many,
    MRIDType,
    Opt,
    String16,
    TimeType,
    UInt8,
    UInt32,
)
from gateway.protocols.ieee2030_5.xmlbind import Sep2Model

__all__ = [
    "Condition",
    "DERControlResponse",
    "Notification",
    "NotificationList",
    "PriceResponse",
    "Response",
    "ResponseList",
    "ResponseSet",
    "ResponseSetList",
    "Subscription",
    "SubscriptionBase",
    "SubscriptionList",
    "TextResponse",
]


class Response(Resource):
    """A client's answer to an event. ``status``: 1 received, 2 started, 3 completed, 4 opted out, 5 opted in,
    6 cancelled, 7 superseded, ... 252-254 rejected; ``subject`` is the event's mRID."""

    createdDateTime: TimeType | None = None
    endDeviceLFDI: HexBinary160
    status: UInt8 | None = None
    subject: MRIDType


class DERControlResponse(Response):
    """A Response to a DERControl."""


class PriceResponse(Response):
    """A Response to a price (TimeTariffInterval) event."""


class TextResponse(Response):
    """A Response to a text message."""


class ResponseList(List):
    Response: Many[Response]


class ResponseSet(IdentifiedObject):
    ResponseListLink: ListLink | None = None


class ResponseSetList(List):
    ResponseSet: Many[ResponseSet]
    pollRate: Annotated[UInt32 | None, Attr] = None


class Condition(Sep2Model):
    """Notify only when the reading leaves [lowerThreshold, upperThreshold] (``attributeIdentifier`` 0)."""

    attributeIdentifier: UInt8
    lowerThreshold: Int48
    upperThreshold: Int48


class SubscriptionBase(Resource):
    subscribedResource: AnyURI


class Subscription(SubscriptionBase):
    """``encoding`` 0 is application/sep+xml; ``level`` e.g. ``+S1``; ``limit`` caps list items per
    notification."""

    Condition: Opt[Condition]
    encoding: UInt8
    level: String16
    limit: UInt32
    notificationURI: AnyURI


class SubscriptionList(List):
    Subscription: Many[Subscription]
    pollRate: Annotated[UInt32 | None, Attr] = None


class Notification(SubscriptionBase):
    """``status``: 0 default, 1 cancelled, 2 moved, 3 definition changed, 4 resource deleted."""

    newResourceURI: AnyURI | None = None
    Resource: Opt[Resource]
    status: UInt8
    subscriptionURI: AnyURI


class NotificationList(List):
    Notification: Many[Notification]
