"""The Client API app in this process (lifespan on: real PostgreSQL, the Pub/Sub and GCS
emulators, the outbox relay and the import worker consuming `debtor-imports.client-api`), and an
authenticated client talking to it through ASGI, so request bodies stream in chunks as sent.

Small limits (batches of 50 rows, 600 rows, 256 KiB) keep the files small and fast while still
giving several batches and reaching every limit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from services.client_api.app import create_app
from services.common.settings import Settings

API_KEY = "imports-test-api-key-0123"
LIMITS: dict[str, Any] = {
    "import_batch_rows": 50,
    "import_max_rows": 600,
    "import_max_bytes": 256 * 1024,
    "import_concurrency": 2,
}


@pytest.fixture(scope="package")
def import_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "api_key": SecretStr(API_KEY),
            "outbox_poll_interval_seconds": 0.05,
            "webhook_backoff_base_seconds": 0.05,
            "webhook_backoff_max_seconds": 0.2,
            "webhook_max_attempts": 2,
            **LIMITS,
        }
    )


@pytest.fixture(scope="package")
async def app(import_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(import_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="package")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://imports.test",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=60,
    ) as c:
        yield c


def tag() -> str:
    return uuid.uuid4().hex[:10]


def csv_row(ext: str, **over: str) -> dict[str, str]:
    row = {
        "external_id": ext,
        "name": "Jane Doe",
        "phone": "+14155550123",
        "timezone": "America/Los_Angeles",
        "stage": "early",
        "amount_owed_minor": "45000",
        "currency": "USD",
        "due_date": "2026-11-01",
    }
    row.update(over)
    return row


async def chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    """The body sent in pieces (chunked transfer, no Content-Length)."""
    for i in range(0, len(data), size):
        yield data[i : i + size]
        await asyncio.sleep(0)


async def wait_done(
    client: httpx.AsyncClient, import_id: str, within_s: float = 60
) -> dict[str, Any]:
    """Poll the import until it is completed or failed (the bound only stops a hung test)."""
    job: dict[str, Any] = {}
    for _ in range(int(within_s / 0.1)):
        resp = await client.get(f"/v1/debtor-imports/{import_id}")
        assert resp.status_code == 200, resp.text
        job = resp.json()
        if job["status"] in ("completed", "failed"):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"import {import_id} not done: {job}")
