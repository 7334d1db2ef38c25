"""The Client API in-process, for reading and writing through REST on the shared stack.

Its lifespan is not run: no consumers or relay start here (a consumer restarted in this
process can miss messages, tests/client_api/conftest.py), only its database and blob store.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from pydantic import SecretStr

from services.client_api.app import SERVICE, create_app
from services.common.blobstore import GcsBlobStore
from services.common.runtime import ServiceRuntime
from services.common.settings import Settings

API_KEY = "call-steps-test-key-0123456789"


@asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    s = settings.model_copy(update={"api_key": SecretStr(API_KEY)})
    app = create_app(s)
    runtime = ServiceRuntime(s, SERVICE)
    app.state.runtime = runtime
    app.state.blobs = GcsBlobStore(s)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://client-api",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as client:
            yield client
    finally:
        await runtime.engine.dispose()
        runtime.bus.close()


async def all_events(client: httpx.AsyncClient, call_id: uuid.UUID | str) -> list[dict[str, Any]]:
    """Every step event of the call, walking the cursor (2 per page, so paging is exercised)."""
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        resp = await client.get(f"/v1/calls/{call_id}/events", params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        events.extend(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return events


def steps(events: list[dict[str, Any]]) -> list[str]:
    return [e["step"] for e in events]
