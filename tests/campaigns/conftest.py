"""Campaign test fixtures: the real Client API app in-process (routes, middleware, auth gate,
problem handlers, real PostgreSQL) without its Pub/Sub consumers, and scheduler settings.

The app's lifespan would start the `call-events` and delivery consumers in this process; these
tests need only the routes and the database, so the runtime is built without starting them
(no consumer, no outbox relay: outbox rows stay in the table, where the tests read them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.client_api.app import create_app
from services.common.blobstore import GcsBlobStore
from services.common.runtime import ServiceRuntime
from services.common.settings import Settings

API_KEY = "campaign-test-key-0123456789"
OPS_KEY = "campaign-ops-key-0123456789"
OPS_LABEL = "ops-desk"


@pytest.fixture(scope="package")
def api_settings(settings: Settings) -> Settings:
    update: dict[str, Any] = {
        "api_key": SecretStr(API_KEY),
        "api_keys": SecretStr(f"{OPS_LABEL}={OPS_KEY}"),
        "scheduler_batch_size": 50,
        "call_window_start": "00:00",
        "call_window_end": "23:59:59",
    }
    return Settings(**(settings.model_dump() | update))


@pytest.fixture(scope="package")
async def api(api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(api_settings)
    runtime = ServiceRuntime(api_settings, "client-api")
    app.state.runtime = runtime
    app.state.blobs = GcsBlobStore(api_settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://client-api.test",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as client:
        yield client
    await runtime.engine.dispose()
