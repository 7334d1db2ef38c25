"""Call Scheduler: the durable schedule of calls.

Consumes `call-requests` (a trigger: wake the worker) and `call-events` (an ended call: retry,
callback or hold); its worker claims due schedule rows on those wake-ups and on a periodic tick,
and publishes `call-dispatch` through the outbox.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from services.call_scheduler.events import CallEndedHandler
from services.call_scheduler.handlers import CallRequestHandler
from services.call_scheduler.worker import ScheduleWorker
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
        worker = ScheduleWorker(runtime.sessions, settings, after_commit=runtime.relay.wake)

        def wake_all() -> None:
            runtime.relay.wake()
            worker.wake()

        requests = subscription_for(settings, settings.pubsub_topic_call_requests, SERVICE)
        runtime.consume(
            requests.name,
            IdempotentHandler(
                requests.consumer,
                runtime.sessions,
                CallRequestHandler(settings),
                after_commit=wake_all,
            ),
        )
        ended = subscription_for(settings, settings.pubsub_topic_call_events, SERVICE)
        runtime.consume(
            ended.name,
            IdempotentHandler(
                ended.consumer,
                runtime.sessions,
                CallEndedHandler(settings),
                after_commit=wake_all,
            ),
        )
        await runtime.start()
        runtime.background(worker.run(), "schedule-worker")
        app.state.runtime = runtime
        app.state.worker = worker
        yield
        await runtime.stop()

    app = FastAPI(title="Call Scheduler", version="0.1.0", lifespan=lifespan)
    app.include_router(push_router(settings))

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        health = await app.state.runtime.health()
        return JSONResponse(health, status_code=200 if health["status"] == "ok" else 503)

    return app
