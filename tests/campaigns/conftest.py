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
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.client_api.app import create_app
from services.common.blobstore import GcsBlobStore
from services.common.models import LIVE_CALL_STATUSES, Call, ScheduledCall
from services.common.models.campaigns import Campaign, CampaignItem
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


@pytest.fixture(autouse=True)
async def leave_nothing_running(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[None]:
    """After each test no campaign of ours runs and no call of a campaign item is live: the
    schedulers and orchestrators of later test packages share this database and the emulator."""
    yield
    async with sessions() as s, s.begin():
        await s.execute(
            update(Campaign)
            .where(Campaign.status.in_(("running", "paused")))
            .values(status="cancelled")
        )
        live = select(CampaignItem.call_id).where(CampaignItem.call_id.is_not(None))
        await s.execute(
            update(Call)
            .where(Call.id.in_(live), Call.status.in_(LIVE_CALL_STATUSES))
            .values(status="canceled", failure_reason="test over", ended_at=func.now())
        )
        await s.execute(
            update(ScheduledCall)
            .where(ScheduledCall.call_id.in_(live), ScheduledCall.status == "pending")
            .values(status="cancelled", skip_reason="test over")
        )
