"""Energy Interoperation XML (TeMIX profile): EI payloads <-> :class:`EiMessage` carrying canonical objects.

Structure. Element names, order and nesting follow the CTS restricted schemas of EI 1.0 / EMIX / WS-Calendar
(../shared/specs/ei-cts/xsd, rev 0.4), the only published XSDs for this profile. Two namespace sets
(:class:`Dialect`) share that structure: ``EI10`` (the default) uses the EI 1.0 namespace URIs
(``http://docs.oasis-open.org/ns/energyinterop/201110`` ...; WS-Calendar ``urn:ietf:params:xml:ns:icalendar-2.0``
and ``...:stream``), ``CTS`` the URIs the restricted XSDs declare (``.../cts.04``, ``min-xcal/2015/12``,
``streams/201606``). Only ``CTS`` output can be validated by a published schema: EI 1.0's own XSDs use other
element names (xCal's ``dtstart``/``date-time`` ...) for the same things, so ``EI10`` is the CTS structure
under EI 1.0 names. :func:`decode` accepts either set (and reports which, :func:`decode_with_dialect`).

A tender is ``ei:eiTender`` = ``ei:tenderID`` + one ``emix:product`` (``emix:emixOption`` for an option), which
is a WS-Calendar stream::

    emix:product
      xcal:dtStart/xcal:dateTime     start of the first row (UTC)
      xcal:duration                  the resolution (PT5M, PT1H, P1D ...)
      power:temixPower               stream payload: what holds for every interval
        power:serviceDeliveryPoint/power:node        location_id
        power:powerReal|powerReactive                quantity unit (siScaleCode k/M/none)
        power:energyReal|energyReactive              what the price is per (kWh ...)
      strm:intervals/strm:streamInterval*
        strm:uid                     interval number n: starts at dtStart + n x duration (streams.starts)
        power:temixPower             [power:transportInterface from/to] emix:price/emix:value, emix:quantity
      emix:uid                       the tender id again (the schema requires a product uid)
      emix:transactiveState          tender | transaction | publication (a quote)
      emix:expirationDate?           expires_at
      emix:integralOnly              all_or_none
      emix:currency, emix:marketContext (market_id), emix:side (buy/sell)

Numbers are written as plain decimals and read as :class:`~decimal.Decimal` from the text, never through float
(``emix:quantity`` is xs:float in the schema: its lexical space holds every decimal we write). Stream-level
``emix:price``/``emix:quantity`` are inherited by intervals that do not carry their own (WS-Calendar).

Where this differs from, or goes beyond, the CTS restriction (each on purpose):

* What the restriction has no slot for (a tender's own party and time zone, status and creation time; a
  transaction's counterparty, clearing, subscription and execution time; a delivery's party, resource and
  quality; query time ranges; cancel reasons; message parties a payload lacks) goes into one trailing
  ``gw:extension`` element, namespace :data:`GW_NS`. The CTS types have no wildcard, so the element carries
  ``xsi:type`` naming a type of ours derived *by extension* from the CTS type (XSD's own extension
  mechanism, allowed since no CTS type is final or blocked); :func:`extension_schema` is that schema.
  ``encode(..., extensions=False)`` leaves the extension out: strictly CTS output, and decoding such a message
  falls back on defaults (party = the message's party, time zone UTC, status open, created now).
* ``ei:eiRegistrationInfo`` is abstract in the restriction (markets are to extend it): party registration uses
  our ``gw:PartyRegistrationInfoType``. REGISTER_PARTY / REGISTERED_PARTY travel as the schema's
  ``eiCreatePartyRegistration`` / ``eiCreatedPartyRegistration`` (``eiRegisterParty`` is accepted on input).
* Positions (eiRequestPosition / eiReplyPosition) are CTS 1.0 messages with no XSD in rev 0.4: they are
  elements of :data:`GW_NS`, defined in :func:`extension_schema` (``pyld:`` spellings accepted on input).
* ``power:powerReal`` requires ``power:powerAttributes`` (hertz, voltage, ac) that the canonical model does not
  have: we write :data:`NOMINAL_POWER_ATTRIBUTES` there and ignore them when reading.
* Options use ``emix:emixOption``, whose restriction is not in ``emix:emixBase``'s substitution group (the same
  defect as erratum E2 for ``emix:product``): option tenders validate only with that fix extended to it.
* Transport ends are repeated in every interval (``power:transportInterface``): the stream-level payload has
  one interface, and it holds the tender's location.
* Times must carry an offset (naive times are refused, unlike xs:dateTime); the ``xcal:duration`` must be one
  of the market resolutions.

Errors: anything that is not a well-formed, schema-shaped message (not XML, DOCTYPE/entities, more than
:data:`MAX_BYTES`, unknown root or element, missing element, bad number or time) is an ``EiDecodeError`` with
code 400 and a one-line reason that names the element; a well-formed message whose content the canonical model
refuses (misaligned interval, negative quantity, unknown currency ...) is code 422 with pydantic's reason.
"""

# The codec lives in modules with one job each; this one is its public face (and the format's description, above).
#   xml_names           namespace sets, element keys, payload roots, unit tables
#   xml_read            parse, the message level, EiDecodeError
#   xml_read_values     one element's text -> id, decimal, time ...; the refusal that names the element
#   xml_read_streams    WS-Calendar streams and their interval tables (bulk and general readers)
#   xml_read_objects    tenders, quotes, transactions, deliveries, positions, parties, gw:extension
#   xml_write           the message level: which children each payload writes
#   xml_write_objects   the tree writer and the writers of streams and objects
#   xml_extension       the XSD of gw:extension

from __future__ import annotations

from gateway.protocols.ei.xml_extension import extension_schema
from gateway.protocols.ei.xml_names import GW_NS, MAX_BYTES, NAMESPACES, NOMINAL_POWER_ATTRIBUTES, Dialect
from gateway.protocols.ei.xml_read import decode, decode_with_dialect
from gateway.protocols.ei.xml_write import encode

__all__ = [
    "GW_NS",
    "MAX_BYTES",
    "NAMESPACES",
    "NOMINAL_POWER_ATTRIBUTES",
    "Dialect",
    "decode",
    "decode_with_dialect",
    "encode",
    "extension_schema",
]
