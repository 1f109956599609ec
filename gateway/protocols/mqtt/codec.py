"""MQTT wire shapes: topics, the outbound body, and decoding inbound messages into canonical envelopes.

The topics and JSON shapes are described in :mod:`gateway.protocols.mqtt.service`. This module is pure
(no broker, no store): it turns bytes into envelopes or a :class:`Refusal` saying why not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from gateway.ingest import Problem
from gateway.model import PAYLOAD_TYPES, Envelope, MessageKind
from gateway.store import StoredMessage

PROTOCOL = "mqtt"
DEFAULT_PEER = "mqtt"
MAX_INBOUND_BYTES = 1024 * 1024
_MAX_LISTED_ERRORS = 5
_TOPIC_ESCAPES = str.maketrans({"%": "%25", "+": "%2B", "#": "%23", "/": "%2F", "\x00": "%00"})


def topic_level(text: str) -> str:
    """``text`` made safe as one topic level: no wildcards, separators or NUL (percent-encoded)."""
    return text.translate(_TOPIC_ESCAPES)


def outbound_topic(prefix: str, envelope: Envelope) -> str:
    """``{prefix}/{kind}/{payload id}``: consumers subscribe by kind (``+``) and by object."""
    return f"{prefix}/{envelope.message_kind.value}/{topic_level(envelope.payload.id)}"


def outbound_body(message: StoredMessage) -> bytes:
    """The envelope's JSON with ``"seq"`` as its first member (spliced: the envelope is serialised once)."""
    return b'{"seq":%d,%s' % (message.seq, message.envelope.model_dump_json().encode()[1:])


@dataclass(frozen=True, slots=True)
class Decoded:
    """An inbound message that parsed into an envelope; ``bare`` if it was sent without one."""

    envelope: Envelope
    bare: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an inbound message is refused, in the shape of the notice on ``{prefix}/rejected/{kind}``."""

    kind: str
    reason: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    peer: str = DEFAULT_PEER
    correlation_id: str | None = None


def decode_inbound(kind_text: str, body: bytes, *, max_bytes: int = MAX_INBOUND_BYTES) -> Decoded | Refusal:
    """Parse an inbound body published to ``.../in/{kind_text}``: a bare canonical object or an envelope.

    JSON numbers with a fraction are read as ``Decimal`` (pydantic's own JSON parser would read them as
    floats first, turning 0.1000000000000000000001 into 0.1): money and quantities stay exact at the edge.
    """
    try:
        kind = MessageKind(kind_text)
    except ValueError:
        known = ", ".join(k.value for k in MessageKind)
        return Refusal(kind_text, f"unknown message kind '{kind_text}' in the topic; use one of: {known}")
    if len(body) > max_bytes:
        return Refusal(kind.value, f"the message has {len(body)} bytes; at most {max_bytes} are accepted")
    try:
        data = json.loads(body, parse_float=Decimal)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are ValueErrors
        return Refusal(kind.value, f"the message is not JSON: {exc}", [{"loc": [], "msg": str(exc)}])
    if not isinstance(data, dict):
        return Refusal(kind.value, f"the message must be a JSON object (a {kind.value} or an envelope holding one)")
    context = _Context(kind, _peer_of(data), _correlation_of(data))
    if "payload" in data:
        return _decode_envelope(context, data)
    return _decode_bare(context, data)


@dataclass(frozen=True, slots=True)
class _Context:
    kind: MessageKind
    peer: str
    correlation_id: str | None

    def refuse(self, reason: str, errors: list[dict[str, Any]] | None = None) -> Refusal:
        return Refusal(self.kind.value, reason, errors or [], self.peer, self.correlation_id)


def _decode_envelope(context: _Context, data: dict[str, Any]) -> Decoded | Refusal:
    payload = data["payload"]
    if isinstance(payload, dict):
        if "object_type" not in payload:  # pydantic's words for this ("unable to extract tag") help nobody
            msg = f'missing; an envelope\'s payload names its type: "object_type": "{context.kind.value}"'
            return context.refuse(
                f"the envelope is invalid: payload.object_type: {msg}",
                [{"loc": ["payload", "object_type"], "msg": msg}],
            )
        if payload["object_type"] != context.kind.value:
            return _kind_mismatch(context, str(payload["object_type"]), ["payload", "object_type"])
    try:
        envelope = Envelope.model_validate(data)
    except ValidationError as exc:
        errors = _validation_errors(exc)
        return context.refuse(f"the envelope is invalid: {summarise_errors(errors)}", errors)
    if envelope.message_kind is not context.kind:
        return _kind_mismatch(context, envelope.message_kind.value, ["payload", "object_type"])
    return Decoded(envelope, bare=False)


def _decode_bare(context: _Context, data: dict[str, Any]) -> Decoded | Refusal:
    object_type = data.get("object_type", context.kind.value)
    if object_type != context.kind.value:
        return _kind_mismatch(context, str(object_type), ["object_type"])
    try:
        payload = PAYLOAD_TYPES[context.kind].model_validate(data)
    except ValidationError as exc:
        errors = _validation_errors(exc)
        return context.refuse(f"the {context.kind.value} is invalid: {summarise_errors(errors)}", errors)
    return Decoded(Envelope(payload=payload), bare=True)  # type: ignore[arg-type]


def _kind_mismatch(context: _Context, actual: str, loc: list[str | int]) -> Refusal:
    reason = (
        f"the topic says '{context.kind.value}' but the payload's object_type is '{actual}'; "
        f"publish a {actual} to .../in/{actual}"
    )
    return context.refuse(reason, [{"loc": loc, "msg": reason}])


def _peer_of(data: dict[str, Any]) -> str:
    source = data.get("source")
    peer = source.get("peer") if isinstance(source, dict) else None
    return peer[:200] if isinstance(peer, str) and peer else DEFAULT_PEER


def _correlation_of(data: dict[str, Any]) -> str | None:
    value = data.get("correlation_id")
    return value[:200] if isinstance(value, str) else None


def _validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False)]


def problem_errors(problems: list[Problem], *, bare: bool) -> list[dict[str, Any]]:
    """Problems of a one-message batch, located in what the sender sent.

    The ingestor's locations are batch-relative (``[0, "payload", "owner_id"]``); one MQTT message is one
    item, so the index goes, and a bare object has no ``payload`` level either.
    """
    errors = []
    for problem in problems:
        loc = list(problem.loc)
        if loc[:1] == [0]:
            loc = loc[1:]
        if bare and loc[:1] == ["payload"]:
            loc = loc[1:]
        errors.append({"loc": loc, "msg": problem.msg})
    return errors


def summarise_errors(errors: list[dict[str, Any]]) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or '(message)'}: {e['msg']}" for e in errors[:_MAX_LISTED_ERRORS]]
    if len(errors) > _MAX_LISTED_ERRORS:
        parts.append(f"and {len(errors) - _MAX_LISTED_ERRORS} more")
    return "; ".join(parts)
