"""Runtime settings of a gateway process, from command-line options or the environment."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///tgw.db"


@dataclass(frozen=True)
class Settings:
    """What `tgw serve` needs. No MQTT URL means no broker: the gateway runs without the MQTT bridge."""

    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = DEFAULT_DATABASE_URL
    mqtt_url: str | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    ei_cert_header: str | None = None
    """Header in which a trusted TLS proxy forwards the client certificate's SHA-256 (EI party identity)."""
    ei_ticker_seconds: float = 15.0
    """How often each market's EI ticker is republished (retained) on MQTT when a broker is configured."""
    openadr_cert_header: str | None = None
    """Header in which a trusted TLS proxy forwards the client certificate's SHA-256 (OpenADR VEN identity)."""
    openadr_insecure: bool = False
    """Let OpenADR VENs name themselves (venID/venName) without a client certificate: demos on loopback only."""
    openadr_mappings: str | None = None
    """An OpenADR 2.0b mapping file (signals, VTN settings, programs) instead of the installed one."""
    openadr_sign_cert: str | None = None
    """PEM certificate (and key, below) the VTN signs its OpenADR answers with; by default the TLS certificate."""
    openadr_sign_key: str | None = None
    openadr_push_seconds: float = 10.0
    """How often the VTN re-checks push VENs' events even when nothing was stored here (other processes, time)."""
    openadr_peer_ca: str | None = None
    """CA bundle trusted for push VENs' HTTPS endpoints; the VTN presents its signing certificate to them."""
    openadr_require_signatures: bool = False
    """Refuse unsigned OpenADR requests from every VEN (a VEN that registered with signatures must sign anyway)."""
    ieee2030_5_mappings: str | None = None
    """An IEEE 2030.5 mapping file (control modes, server settings, programs, tariffs) instead of the installed one."""
    override_mappings: str | None = None
    """An override policy file (program markets, expected responses, penalties, hard programs) instead of the
    installed one."""
    ieee2030_5_cert_header: str | None = None
    """Header in which a trusted TLS proxy forwards the device's client certificate (escaped PEM or SHA-256)."""
    ieee2030_5_notify_ca: str | None = None
    """CA bundle trusted for devices' HTTPS notification listeners; the server presents its TLS certificate."""
    ieee2030_5_notify_backoff: float = 1.0
    """First wait before a failed notification is retried (doubling each time)."""
    market_tick_seconds: float = 15.0
    """How often the periodic call auction looks for intervals whose gate closed; 0 turns it off."""
