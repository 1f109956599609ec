"""Bytes -> a schema-valid lxml tree: the hardened parse and the 2.0b XSD check every inbound message passes first.

The XSD is the one openleadr ships (``openleadr/schema/oadr_20b.xsd``, the OpenADR Alliance's 2.0b schema with
its imports), so the gateway and the VEN library it bridges to agree on what is valid.

Why parse, then validate the tree, rather than one schema-bound parser: one pass is not faster here (5.4 kB
enveloped oadrDistributeEvent, lxml 6.1 / libxml2 2.14: 49 us schema-bound, 46 us parse then validate), a
schema-bound parser reports every validation error at line 0, and it validates before the gateway can look at
the document. Two steps give readable reasons (line numbers) and let a DOCTYPE be refused before the validator
walks the tree.

Hardening (the defusedxml rules): no entity resolution, no network, no DTD loading, no huge-tree mode, a size
bound, and no DOCTYPE at all (an OpenADR message never has one; libxml2 itself stops billion-laughs
amplification, and with a DOCTYPE refused an external entity is never even considered).
"""

from __future__ import annotations

import threading
from importlib import resources
from importlib.resources.abc import Traversable

from lxml import etree

from gateway.protocols.openadr2b.codec_names import OADR_PAYLOAD, OADR_SIGNED_OBJECT, PAYLOAD_OF_TAG
from gateway.protocols.openadr2b.messages import OadrDecodeError, ResponseCode

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Larger than any real 2.0b message (a day of 1-minute report intervals is ~600 kB) and small enough that a
flood of maximal messages cannot exhaust memory."""

ROOT_TAGS = frozenset({OADR_PAYLOAD, OADR_SIGNED_OBJECT, *PAYLOAD_OF_TAG})
"""What a message may be: the oadrPayload envelope, the signed object alone, or a bare payload element (the
form the 2.0b specification's examples and the avob fixtures use)."""


def schema_resource() -> Traversable:
    """oadr_20b.xsd inside the installed openleadr package."""
    return resources.files("openleadr") / "schema" / "oadr_20b.xsd"


def _load_schema() -> etree.XMLSchema:
    with resources.as_file(schema_resource()) as path:
        xsd_parser = etree.XMLParser(resolve_entities=False, no_network=True)
        return etree.XMLSchema(etree.parse(str(path), xsd_parser))


class _PerThread(threading.local):
    """An XMLSchema keeps the error log of its last validation and an XMLParser its parse state, so each thread
    has its own pair (built on first use: about 6 ms, once per thread)."""

    parser: etree.XMLParser | None = None
    schema: etree.XMLSchema | None = None


_local = _PerThread()


def _tools() -> tuple[etree.XMLParser, etree.XMLSchema]:
    parser, schema = _local.parser, _local.schema
    if parser is None or schema is None:
        schema = _load_schema()
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            collect_ids=False,
        )
        _local.parser, _local.schema = parser, schema
    return parser, schema


def schema() -> etree.XMLSchema:
    """This thread's 2.0b schema (for tests and tools that check a document the codec wrote)."""
    return _tools()[1]


def parse(data: bytes) -> etree._Element:
    """The document element of ``data`` once it is well-formed, DOCTYPE-free, a 2.0b message and schema-valid.

    Response codes: 454 (invalid data) for anything that is not well-formed XML, too large, carries a DOCTYPE or
    breaks the schema; 453 (not recognised) for a well-formed document whose root is not a 2.0b message at all,
    such as a 2.0a payload or some other XML, so a peer speaking the wrong protocol is told so.
    """
    if not isinstance(data, bytes):
        raise TypeError(f"decode takes bytes, not {type(data).__name__}")
    if len(data) > MAX_MESSAGE_BYTES:
        raise OadrDecodeError(f"the message is {len(data):,} bytes; the limit is {MAX_MESSAGE_BYTES:,}")
    parser, xsd = _tools()
    try:
        root = etree.fromstring(data, parser)
    except etree.LxmlError as exc:
        raise OadrDecodeError(f"not well-formed XML: {_syntax_reason(exc)}") from None
    if root.getroottree().docinfo.doctype:
        raise OadrDecodeError("a DOCTYPE is not allowed in an OpenADR message (entities are never expanded)")
    if root.tag not in ROOT_TAGS:
        raise OadrDecodeError(
            f"the root element {root.tag} is not an OpenADR 2.0b message (oadrPayload or one of its payloads)",
            ResponseCode.NOT_RECOGNIZED,
        )
    if not xsd.validate(root):
        error = xsd.error_log[0]
        raise OadrDecodeError(f"not valid OpenADR 2.0b: line {error.line}: {error.message}")
    return root


def _syntax_reason(exc: etree.LxmlError) -> str:
    if isinstance(exc, etree.XMLSyntaxError) and exc.msg:
        return f"line {exc.lineno}: {exc.msg}" if exc.lineno else str(exc.msg)
    return str(exc) or type(exc).__name__
