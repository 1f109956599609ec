"""The MQTT bridge's one setting, ``TGW_MQTT_URL``, parsed into :class:`MqttSettings`.

A single URL keeps the sidecar's configuration to one environment variable:
``mqtt[s]://[user[:password]@]host[:port][?client_id=...&prefix=...]``. Anything we do not understand is an
error that says what a good URL looks like, because a silently ignored typo (``?prefx=``) would make the
gateway publish where nobody listens.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
DEFAULT_PREFIX = "tgw/v1"
QUERY_PARAMETERS = ("client_id", "prefix")
EXAMPLE = "mqtt://host:1883 or mqtts://user:password@host:8883?client_id=gw-1&prefix=tgw/v1"

# MQTT allows any UTF-8 in a client id, but brokers only promise [0-9a-zA-Z] up to 23 characters; we accept
# the characters every common broker takes, and keep it short enough to read in broker logs.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def default_client_id() -> str:
    """``tgw-<hostname>``: stable across restarts of one host, distinct between hosts."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "gateway"
    return f"tgw-{host}"[:64]


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Where the broker is and how the bridge names itself and its topics there.

    ``client_id`` must be stable across restarts: the broker keeps the bridge's persistent session (its
    subscription and the QoS 1 messages queued while it was away) under that id, and the bridge's outbound
    cursor is stored under it too. Two gateways must not share one id (the broker would keep disconnecting
    one of them).
    """

    host: str
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_id: str = field(default_factory=default_client_id)
    topic_prefix: str = DEFAULT_PREFIX

    @property
    def redacted_url(self) -> str:
        """The settings as a URL without the password, for logs and startup banners."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}{':***' if self.password else ''}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}?client_id={self.client_id}&prefix={self.topic_prefix}"


def parse_mqtt_url(url: str) -> MqttSettings:
    """Parse ``TGW_MQTT_URL``; raise ``ValueError`` saying what is wrong and what a good URL looks like."""
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise _bad(url, str(exc)) from None
    try:
        port = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        port = 0  # not the exception's text: a mistyped URL may show part of the password there
    if port == 0:
        raise _bad(url, "the port must be a number from 1 to 65535 (1883 for mqtt://, 8883 for mqtts://)")
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise _bad(url, f"the scheme must be mqtt:// or mqtts:// (TLS), not '{parts.scheme or 'none'}://'")
    if not parts.hostname:
        raise _bad(url, "the broker's host name is missing")
    if parts.path not in ("", "/"):
        raise _bad(url, f"unexpected path '{parts.path}'; give a topic prefix as ?prefix=tgw/v1")
    if parts.fragment:
        raise _bad(url, "a URL fragment (#...) has no meaning here")
    query = _parse_query(url, parts.query)
    return MqttSettings(
        host=parts.hostname,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        tls=scheme == "mqtts",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        client_id=_client_id(url, query.get("client_id")),
        topic_prefix=_topic_prefix(url, query.get("prefix")),
    )


def _parse_query(url: str, query: str) -> dict[str, str]:
    try:
        # "+" stays a plus (form encoding would make it a space): in a topic prefix it is a wildcard, an error.
        pairs = parse_qsl(query.replace("+", "%2B"), keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise _bad(url, f"cannot read the query '?{query}'") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name not in QUERY_PARAMETERS:
            raise _bad(url, f"unknown parameter '{name}'; known: {', '.join(QUERY_PARAMETERS)}")
        if name in params:
            raise _bad(url, f"parameter '{name}' is given twice")
        params[name] = value
    return params


def _client_id(url: str, value: str | None) -> str:
    if value is None:
        return default_client_id()
    if not _CLIENT_ID.match(value):
        raise _bad(url, f"client_id '{value}' must be 1-128 of the characters A-Z a-z 0-9 _ . : -")
    return value


def _topic_prefix(url: str, value: str | None) -> str:
    if value is None:
        return DEFAULT_PREFIX
    prefix = value.strip("/")
    if not prefix:
        raise _bad(url, "prefix must not be empty (the default is tgw/v1)")
    if any(c in prefix for c in "+#\x00") or "//" in prefix:
        raise _bad(url, f"prefix '{value}' must not contain the wildcards + or #, NUL, or empty levels")
    if prefix.startswith("$"):
        raise _bad(url, f"prefix '{value}' must not start with '$' (brokers reserve those topics)")
    return prefix


def _bad(url: str, why: str) -> ValueError:
    return ValueError(f"TGW_MQTT_URL must look like {EXAMPLE}; got '{_redact(url)}': {why}")


def _redact(url: str) -> str:
    """``url`` with any password replaced, so an error message never leaks it."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # The last "@" before the query ends the user info, even if the password holds an unescaped "/".
    end = min((i for i in (rest.find(c) for c in "?#") if i >= 0), default=len(rest))
    userinfo, at, hostport = rest[:end].rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{hostport}{rest[end:]}"


__all__ = ["DEFAULT_PREFIX", "MqttSettings", "default_client_id", "parse_mqtt_url"]
