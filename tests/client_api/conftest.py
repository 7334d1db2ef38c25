"""Client API fixtures: the service as its own process (`python -m services.client_api`, uvicorn
on a free port, lifespan on: real PostgreSQL, Pub/Sub emulator, outbox relay, webhook worker),
an authenticated httpx client for it, and helpers that create rows through the API.

One process serves the whole package. Why not an app per test module, in-process: the Pub/Sub
emulator keeps handing messages to a streaming pull that was closed in a process that stays alive
(this pytest process keeps its gRPC connection open), so a consumer restarted in-process
intermittently never sees some messages. A consumer in its own process is cut off cleanly when
the process exits.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scripts.processes import ServiceProcess
from services.common.models import WebhookEndpoint
from services.common.settings import Settings

API_KEY = "test-api-key-0123456789"
# A second, labelled key (API_KEYS): the operator audit records "ops" as its actor.
OPS_API_KEY = "test-ops-key-9876543210"

# Tiny backoff so retried webhooks finish in well under a second.
TEST_OVERRIDES: dict[str, Any] = {
    "api_key": API_KEY,
    "api_keys": f"ops={OPS_API_KEY}",
    "webhook_backoff_base_seconds": 0.05,
    "webhook_backoff_max_seconds": 0.2,
    "webhook_max_attempts": 3,
    "webhook_timeout_seconds": 2.0,
    "outbox_poll_interval_seconds": 0.05,
    "max_request_body_bytes": 16 * 1024,
}


@pytest.fixture(scope="package")
def api_settings(settings: Settings) -> Settings:
    """The settings the server process runs with (tests use them to publish and to check)."""
    update: dict[str, Any] = dict(TEST_OVERRIDES)
    update["api_key"] = SecretStr(API_KEY)
    update["api_keys"] = SecretStr(f"ops={OPS_API_KEY}")
    return settings.model_copy(update=update)


def client_api_process(log_prefix: str) -> ServiceProcess:
    """The Client API as its own process (not started), with the test overrides."""
    log_path = Path(tempfile.mkdtemp(prefix=log_prefix)) / "client-api.log"
    server = ServiceProcess(
        name="client-api",
        module="services.client_api",
        env={k.upper(): str(v) for k, v in TEST_OVERRIDES.items()},
        log_path=log_path,
    )
    server.env["CLIENT_API_PORT"] = str(server.port)
    return server


@pytest.fixture(scope="package")
def api_server(api_settings: Settings) -> Iterator[ServiceProcess]:
    server = client_api_process("client-api-test-")
    server.env["LOG_LEVEL"] = os.environ.get("CLIENT_API_TEST_LOG_LEVEL", "INFO")
    server.start()
    try:
        server.wait_healthy(timeout=60)
        yield server
    finally:
        server.stop()
        if os.environ.get("CLIENT_API_TEST_SHOW_LOG"):
            print(server.log_path.read_text() if server.log_path else "")


@pytest.fixture(scope="package")
async def client(api_server: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=api_server.url,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    ) as c:
        yield c


def debtor_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Jane Doe",
        "phone": "+14155550123",
        "timezone": "America/Los_Angeles",
        "stage": "early",
        "amount_owed": {"amount_minor": 45000, "currency": "USD"},
        "due_date": "2026-11-01",
        "account_reference": "ACC-88231",
        "external_id": f"crm-{uuid.uuid4().hex[:12]}",
        "metadata": {"portfolio": "spring-2026"},
    }
    body.update(overrides)
    return body


async def create_debtor(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    resp = await client.post("/v1/debtors", json=debtor_body(**overrides))
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def deactivate_other_endpoints(
    sessions: async_sessionmaker[AsyncSession], keep: list[str]
) -> None:
    """Endpoints registered by earlier tests (e.g. schemathesis' random URLs) must not receive
    this test's events."""
    async with sessions() as s, s.begin():
        await s.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id.not_in([uuid.UUID(k) for k in keep]))
            .values(active=False)
        )
