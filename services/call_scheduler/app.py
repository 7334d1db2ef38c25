"""Call Scheduler: consumes `call-requests`, publishes `call-dispatch`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from services.call_scheduler.handlers import CallRequestHandler
from services.common.bus import IdempotentHandler
from services.common.push import push_router
from services.common.runtime import ServiceRuntime
from services.common.settings import Settings, get_settings
from services.common.topology import subscription_for

SERVICE = "call-scheduler"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = ServiceRuntime(settings, SERVICE)
        sub = subscription_for(settings, settings.pubsub_topic_call_requests)
        runtime.consume(
            sub.name,
            IdempotentHandler(
                sub.consumer,
                runtime.sessions,
                CallRequestHandler(settings),
                after_commit=runtime.relay.wake,
            ),
        )
        await runtime.start()
        app.state.runtime = runtime
        yield
        await runtime.stop()

    app = FastAPI(title="Call Scheduler", version="0.1.0", lifespan=lifespan)
    app.include_router(push_router(settings))

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        health = await app.state.runtime.health()
        return JSONResponse(health, status_code=200 if health["status"] == "ok" else 503)

    return app
