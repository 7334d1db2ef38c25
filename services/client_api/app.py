"""Client API: REST for client developers, `call-events` consumer, webhook delivery worker.

One process holds all three: the routes, the `call.completed` fan-out (subscription
`call-events.client-api`), the delivery worker (`webhook-deliveries.client-api`), the retry
pump and the outbox relay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from services.client_api import problems
from services.client_api.auth_gate import AuthGateMiddleware
from services.client_api.deps import require_api_key
from services.client_api.imports_worker import ImportBatchHandler
from services.client_api.middleware import BodyLimitMiddleware
from services.client_api.openapi import served_spec
from services.client_api.responses import UNAUTHORIZED, UNAVAILABLE
from services.client_api.routers import (
    calls,
    campaign_stats,
    campaigns,
    debtors,
    health,
    imports,
    payments,
    promises,
    schedule,
    stats,
    webhooks,
)
from services.client_api.routers import operator as operator_routes
from services.client_api.webhooks.delivery import DeliveryWorker
from services.client_api.webhooks.fanout import CallEventHandler
from services.client_api.webhooks.retry import RetryPump
from services.common.blobstore import GcsBlobStore
from services.common.bus import IdempotentHandler
from services.common.push import push_router
from services.common.runtime import ServiceRuntime
from services.common.settings import Settings, get_settings
from services.common.topology import subscription_for

SERVICE = "client-api"
IMPORT_ENVELOPE_BYTES = 64 * 1024


def _v1_router() -> APIRouter:
    # Every /v1 route needs the API key (checked first by AuthGateMiddleware, by this prefix;
    # the dependency declares it in the OpenAPI document); /healthz and the docs stay open.
    v1 = APIRouter(
        dependencies=[Depends(require_api_key)], responses={**UNAUTHORIZED, **UNAVAILABLE}
    )
    v1.include_router(debtors.router)
    v1.include_router(schedule.router)
    v1.include_router(calls.router)
    v1.include_router(webhooks.router)
    v1.include_router(operator_routes.router)
    v1.include_router(stats.router)
    v1.include_router(payments.router)
    v1.include_router(promises.router)
    v1.include_router(imports.router)
    v1.include_router(campaigns.router)
    v1.include_router(campaign_stats.router)
    return v1


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    spec = served_spec()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = ServiceRuntime(settings, SERVICE)
        # One client for all webhook POSTs (connection reuse); never follow redirects to
        # somewhere the client did not register.
        http = httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
        )
        events = subscription_for(settings, settings.pubsub_topic_call_events)
        runtime.consume(
            events.name,
            IdempotentHandler(
                events.consumer,
                runtime.sessions,
                CallEventHandler(settings),
                after_commit=runtime.relay.wake,
            ),
        )
        deliveries = subscription_for(settings, settings.pubsub_topic_webhook_deliveries)
        worker = DeliveryWorker(settings, http)
        runtime.consume(
            deliveries.name,
            worker.bounded(
                IdempotentHandler(
                    deliveries.consumer, runtime.sessions, worker, after_commit=runtime.relay.wake
                )
            ),
        )
        imports = subscription_for(settings, settings.pubsub_topic_debtor_imports)
        import_worker = ImportBatchHandler(settings, GcsBlobStore(settings))
        runtime.consume(
            imports.name,
            import_worker.bounded(
                IdempotentHandler(
                    imports.consumer,
                    runtime.sessions,
                    import_worker,
                    after_commit=runtime.relay.wake,
                )
            ),
        )
        await runtime.start()
        runtime.background(
            RetryPump(settings, runtime.sessions, runtime.relay.wake).run(), "webhook-retry-pump"
        )
        app.state.runtime = runtime
        app.state.blobs = GcsBlobStore(settings)
        try:
            yield
        finally:
            await runtime.stop()
            await http.aclose()

    app = FastAPI(
        title=spec["info"]["title"],
        version=spec["info"]["version"],
        lifespan=lifespan,
        # The served document is the spec file (below), not one generated from the routes.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        separate_input_output_schemas=False,
    )
    app.state.settings = settings
    problems.install(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_request_body_bytes,
        # The import upload streams and counts its own file (IMPORT_MAX_BYTES); the margin is
        # for a multipart envelope around it.
        path_limits={imports.PATH: settings.import_max_bytes + IMPORT_ENVELOPE_BYTES},
    )
    # Added last, so outermost: the API key is checked before the body limit or any parsing.
    app.add_middleware(AuthGateMiddleware)
    app.include_router(health.router)
    app.include_router(_v1_router())
    # Production (Cloud Run): Pub/Sub pushes both subscriptions here instead of pull consumers.
    app.include_router(push_router(settings))

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(spec)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} — docs")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} — reference")

    return app


def generated_openapi(app: FastAPI) -> dict[str, Any]:
    """What FastAPI would generate from the routes (the drift test compares it with the spec)."""
    from fastapi.openapi.utils import get_openapi

    return get_openapi(
        title=app.title,
        version=app.version,
        openapi_version="3.1.0",
        routes=app.routes,
        separate_input_output_schemas=False,
    )
