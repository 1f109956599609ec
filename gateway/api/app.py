"""The FastAPI application: canonical REST, health, and the lifecycle of the store, bus and MQTT bridge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from gateway import __version__
from gateway.api import errors
from gateway.api.limits import BodyLimit
from gateway.api.metrics import router as metrics_router
from gateway.api.routes_curtailments import router as curtailments_router
from gateway.api.routes_entities import PATHS, cancel_router, entity_router
from gateway.api.routes_envelopes import router as envelopes_router
from gateway.api.routes_markets import router as markets_router
from gateway.api.routes_messages import router as messages_router
from gateway.api.routes_overrides import router as overrides_router
from gateway.api.schemas import DatabaseHealth, Health, MqttHealth, RejectionOut
from gateway.api.tickers import publish_tickers
from gateway.bus import Bus
from gateway.config import Settings
from gateway.ingest import Ingestor
from gateway.market.bilateral import BilateralDesk
from gateway.market.runs import MarketRunner
from gateway.market.scheduler import CallAuctionScheduler
from gateway.model import MessageKind
from gateway.overrides.policy import load_policy
from gateway.overrides.service import OverrideService
from gateway.protocols.ei.oauth import router as ei_oauth_router
from gateway.protocols.ei.service import router as ei_router
from gateway.protocols.ieee2030_5.server import Sep2Server
from gateway.protocols.ieee2030_5.service import Sep2FastPath
from gateway.protocols.ieee2030_5.service import router as ieee2030_5_router
from gateway.protocols.ieee2030_5.table import default_table as sep2_default_table
from gateway.protocols.ieee2030_5.table import load_table as sep2_load_table
from gateway.protocols.openadr2b.admin import router as openadr2b_admin_router
from gateway.protocols.openadr2b.push import EventPusher
from gateway.protocols.openadr2b.security import MessageSigner
from gateway.protocols.openadr2b.service import VtnAccess, VtnFastPath
from gateway.protocols.openadr2b.service import router as openadr2b_router
from gateway.protocols.openadr2b.table import load_table
from gateway.protocols.openadr2b.vtn import Vtn
from gateway.store import Store

SEP2_CHANGES = (MessageKind.CONTROL, MessageKind.OPERATING_ENVELOPE, MessageKind.RESOURCE, MessageKind.LOCATION)
"""What changes a 2030.5 device's resources (its controls, envelopes, identity, site): subscribers are notified."""

log = logging.getLogger(__name__)

DESCRIPTION = """
One canonical transactive message model between OpenADR, IEEE 2030.5, Energy Interoperation/TeMIX and CIM.

* **/v1/messages** is the message log: post any canonical message (in its envelope), read it back by kind,
  source and time. Every message is stored durably and idempotently before the response is sent.
* **/v1/parties, /v1/locations, /v1/resources, /v1/tenders, /v1/controls, ...** hold the current state of
  each object; POST stores a new version through the same checked path.
* **/v1/markets/{id}/clear, /results, /positions, /settle, /settlements** run the reference clearing service:
  call auctions per interval (network-aware when the market has a network), positions and settlement.
* **/ei/v1/...** is the Energy Interoperation / CTS service for TeMIX parties (EI 1.0 XML or CTS JSON, bearer
  token or client-certificate identity): tenders, cancels, transactions, positions, deliveries, a ticker.
* **/OpenADR2/Simple/2.0b/...** is the OpenADR 2.0b VTN for legacy VENs (EiRegisterParty, EiEvent, EiReport,
  EiOpt, OadrPoll): events rendered from canonical controls and price tenders, opt-outs become overrides,
  telemetry reports become metered deliveries. VENs are identified by their client certificate's fingerprint.
* **/dcap, /tm, /edev/..., /mup** is the IEEE 2030.5 (CSIP) utility server for DERs (application/sep+xml): devices
  are known by the LFDI of their client certificate and see only their own resources; canonical controls and
  operating envelopes become DERControls with correct statuses and superseding, cleared prices become
  TimeTariffIntervals, Responses become canonical responses (opt-outs become overrides), mirrored meter readings
  become metered deliveries, and subscriptions are notified by HTTP POST.
* Errors are 4xx with field-level reasons (`detail[].loc`, `detail[].msg`); refused input is recorded and
  can be read at **/v1/rejections**.
"""


class GatewayApp(FastAPI):
    """FastAPI, with the OpenADR 2.0b VTN served ahead of it: legacy VENs' frequent polls skip FastAPI's
    per-request machinery (see ``VtnFastPath``); everything else, the VTN's OpenAPI description included, is
    FastAPI's."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._vtn_fast_path = VtnFastPath(Sep2FastPath(super().__call__, self), self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._vtn_fast_path(scope, receive, send)


def _signer(settings: Settings) -> MessageSigner | None:
    """The VTN's message signer, its key loaded once here (not per message)."""
    if not (settings.openadr_sign_cert and settings.openadr_sign_key):
        return None
    with open(settings.openadr_sign_cert, "rb") as cert, open(settings.openadr_sign_key, "rb") as key:
        return MessageSigner(cert.read(), key.read())


def _push_tls(settings: Settings) -> ssl.SSLContext | None:
    """TLS for pushing to VENs: trust the configured CA, present the VTN's certificate (mutual TLS)."""
    if not settings.openadr_peer_ca:
        return None
    context = ssl.create_default_context(cafile=settings.openadr_peer_ca)
    if settings.openadr_sign_cert and settings.openadr_sign_key:
        context.load_cert_chain(settings.openadr_sign_cert, settings.openadr_sign_key)
    return context


def _notify_tls(settings: Settings) -> ssl.SSLContext | None:
    """TLS for 2030.5 notifications: trust the configured CA, present the server's certificate."""
    if not settings.ieee2030_5_notify_ca:
        return None
    context = ssl.create_default_context(cafile=settings.ieee2030_5_notify_ca)
    if settings.openadr_sign_cert and settings.openadr_sign_key:
        context.load_cert_chain(settings.openadr_sign_cert, settings.openadr_sign_key)
    return context


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> FastAPI:
    """Build the app. Pass ``store`` to share an already-open store (tests, the demo); else it opens one."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_store = store is None
        app.state.store = store if store is not None else await asyncio.to_thread(Store, settings.database_url)
        app.state.bus = Bus()
        app.state.bus.bind(asyncio.get_running_loop())
        app.state.override_policy = load_policy(settings.override_mappings)
        app.state.ingestor = Ingestor(app.state.store, app.state.bus, app.state.override_policy)
        app.state.market_runner = MarketRunner(app.state.store)
        app.state.bilateral = BilateralDesk(app.state.ingestor, app.state.market_runner)
        app.state.overrides = OverrideService(app.state.store, app.state.ingestor)
        app.state.ei_cert_header = settings.ei_cert_header
        app.state.oadr_vtn = Vtn(
            app.state.store,
            app.state.ingestor,
            load_table(Path(settings.openadr_mappings)) if settings.openadr_mappings else None,
        )
        app.state.oadr_settings = VtnAccess(
            cert_header=settings.openadr_cert_header,
            insecure=settings.openadr_insecure,
            signer=_signer(settings),
            require_signatures=settings.openadr_require_signatures,
        )
        app.state.oadr_pusher = EventPusher(
            app.state.oadr_vtn,
            app.state.bus,
            signer=app.state.oadr_settings.signer,
            tls=_push_tls(settings),
            interval=settings.openadr_push_seconds,
        )
        app.state.oadr_pusher.start()
        app.state.sep2 = Sep2Server(
            app.state.store,
            app.state.ingestor,
            sep2_load_table(Path(settings.ieee2030_5_mappings))
            if settings.ieee2030_5_mappings
            else sep2_default_table(),
            cert_header=settings.ieee2030_5_cert_header,
            notify_tls=_notify_tls(settings),
            notify_backoff=settings.ieee2030_5_notify_backoff,
        )

        async def notify_sep2_subscribers(_message: object) -> None:
            """A change a device could see notifies its subscribers now, not at the next device request."""
            await app.state.sep2.fresh()

        app.state.bus.on(SEP2_CHANGES, notify_sep2_subscribers)
        # Load the index and the subscriptions now: loaded by the first change, they would take that change as
        # what devices already saw, and its Notification would never be sent.
        await app.state.sep2.fresh()

        async def sep2_clock() -> None:
            """Statuses change with time too (a control starts or ends): look once a second, cheaply."""
            while True:
                await asyncio.sleep(1.0)
                try:
                    await app.state.sep2.on_clock()
                except Exception:  # a failing check must not end the loop; the next second tries again
                    log.exception("2030.5 time-driven notification check failed")

        sep2_clock_task = asyncio.get_running_loop().create_task(sep2_clock(), name="sep2-clock")
        app.state.scheduler = None
        if settings.market_tick_seconds > 0:
            app.state.scheduler = CallAuctionScheduler(
                app.state.market_runner, app.state.bus, tick=timedelta(seconds=settings.market_tick_seconds)
            )
            app.state.scheduler.start()
        app.state.mqtt = None
        tickers: asyncio.Task[None] | None = None
        if settings.mqtt_url:
            from gateway.protocols.mqtt import MqttBridge, parse_mqtt_url

            app.state.mqtt = MqttBridge(
                parse_mqtt_url(settings.mqtt_url), store=app.state.store, ingestor=app.state.ingestor, bus=app.state.bus
            )
            await app.state.mqtt.start()
            tickers = asyncio.get_running_loop().create_task(
                publish_tickers(app.state.store, app.state.mqtt, settings.ei_ticker_seconds), name="ei-ticker"
            )
        try:
            yield
        finally:
            if app.state.scheduler is not None:
                await app.state.scheduler.stop()
            if tickers is not None:
                tickers.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await tickers
            if app.state.mqtt is not None:
                await app.state.mqtt.stop()
            await app.state.oadr_pusher.stop()
            sep2_clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sep2_clock_task
            await app.state.sep2.notifier.close()
            await app.state.bus.close()
            if own_store:
                app.state.store.close()

    app = GatewayApp(
        title="Transactive Gateway",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "health", "description": "Liveness and readiness"},
            {"name": "messages", "description": "The canonical message log"},
            {
                "name": "ieee2030_5",
                "description": "IEEE 2030.5 (CSIP) utility server for DER clients: application/sep+xml, mutual TLS",
            },
            *({"name": path, "description": f"Current state of {kind.value} objects"} for kind, path in PATHS.items()),
        ],
    )
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.get("/health", response_model=Health, tags=["health"], responses={503: {"model": Health}})
    async def health(request: Request) -> JSONResponse:
        """Ready when the database answers and, if a broker is configured, the MQTT bridge is connected."""
        store: Store = request.app.state.store
        db_ok = await asyncio.to_thread(store.ping)
        mqtt = request.app.state.mqtt
        mqtt_health = MqttHealth(enabled=mqtt is not None)
        if mqtt is not None:
            mqtt_health = MqttHealth(enabled=True, connected=mqtt.connected, published_seq=mqtt.published_seq)
        ok = db_ok and (mqtt is None or mqtt.connected)
        body = Health(
            status="ok" if ok else "degraded",
            version=__version__,
            database=DatabaseHealth(
                ok=db_ok,
                backend=store.engine.dialect.name,
                log_seq=await asyncio.to_thread(store.last_seq) if db_ok else None,
            ),
            mqtt=mqtt_health,
            bus_published=request.app.state.bus.published,
            counts=await asyncio.to_thread(store.counts) if db_ok else {},
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)

    @app.get("/v1/rejections", response_model=list[RejectionOut], tags=["messages"])
    async def rejections(
        request: Request,
        protocol: Annotated[str | None, Query(max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[RejectionOut]:
        """Input the gateway refused, newest first, with the reason it gave the sender."""
        found = await asyncio.to_thread(request.app.state.store.rejections, limit=limit, protocol=protocol)
        return [RejectionOut.model_validate(r) for r in found]

    app.include_router(openadr2b_router)
    app.include_router(ieee2030_5_router)
    app.include_router(openadr2b_admin_router)
    app.include_router(metrics_router)
    app.include_router(messages_router)
    app.include_router(cancel_router())
    app.include_router(curtailments_router)
    app.include_router(overrides_router)  # before the generic /v1/overrides/{id}, which would take "effective"
    app.include_router(envelopes_router)
    app.include_router(markets_router)
    app.include_router(ei_router)
    app.include_router(ei_oauth_router)
    for kind in PATHS:
        app.include_router(entity_router(kind))
    return app
