"""A deployment shared by the reliability tests, and the steps they take on it.

One deployment (own PostgreSQL, Pub/Sub and GCS emulators, simulators, the three services as
processes) for the package; tests kill and restart its parts and leave it whole again.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from scripts.calls import assign_persona, create_debtor, fictional_number, trigger_call
from scripts.deployment import API_KEY, LocalDeployment
from scripts.processes import ServiceProcess
from scripts.webhook_receiver import WebhookReceiver
from services.common.db import create_engine, session_factory

SWEEPER_STALE_S = 6


@dataclass
class Env:
    deployment: LocalDeployment
    receiver: WebhookReceiver
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    api: httpx.AsyncClient
    sim: httpx.AsyncClient

    def proc(self, name: str) -> ServiceProcess:
        return self.deployment.processes[name]


@pytest.fixture(scope="package")
def deployment() -> Iterator[LocalDeployment]:
    d = LocalDeployment(
        Path(tempfile.mkdtemp(prefix="crash-")),
        sim_args=["--speech", "tone", "--ms-per-char", "30"],
        service_env={"CALL_SWEEPER_STALE_SECONDS": str(SWEEPER_STALE_S)},
    )
    d.start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
async def env(deployment: LocalDeployment) -> AsyncIterator[Env]:
    receiver = WebhookReceiver()
    receiver.start()
    engine = create_engine(deployment.stack.settings())
    sim_url = deployment.sim_url
    assert sim_url is not None
    async with (
        httpx.AsyncClient(
            base_url=deployment.api_url,
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
        ) as api,
        httpx.AsyncClient(base_url=sim_url, timeout=30) as sim,
    ):
        # Only this test's receiver gets this test's events.
        for ep in (await api.get("/v1/webhook-endpoints")).json()["data"]:
            await _deactivate(engine, ep["id"])
        endpoint = (await api.post("/v1/webhook-endpoints", json={"url": receiver.url})).json()
        receiver.secret = endpoint["secret"]
        yield Env(deployment, receiver, engine, session_factory(engine), api, sim)
    receiver.stop()
    await engine.dispose()
    # Leave every service up for the next test, without failpoints.
    for proc in deployment.processes.values():
        if proc.proc is None or proc.proc.poll() is not None:
            await restart(proc)


async def _deactivate(engine: AsyncEngine, endpoint_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE webhook_endpoints SET active = false WHERE id = :id"), {"id": endpoint_id}
        )


async def restart(proc: ServiceProcess, **env: str) -> None:
    proc.stop()
    proc.env.pop("FAILPOINTS", None)
    proc.env.update(env)
    proc.start()
    await asyncio.to_thread(proc.wait_healthy, 60)


async def wait_dead(proc: ServiceProcess, within_s: float) -> int:
    assert proc.proc is not None
    deadline = time.monotonic() + within_s
    while proc.proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    code = proc.proc.poll()
    assert code is not None, f"{proc.name} did not die within {within_s} s"
    return code


async def place(env: Env, persona: str, n: int) -> tuple[str, str]:
    phone = fictional_number(n)
    await assign_persona(env.sim, phone, persona)
    debtor = await create_debtor(env.api, phone)
    return phone, (await trigger_call(env.api, debtor["id"]))["id"]


async def twilio_calls_to(env: Env, phone: str) -> list[dict[str, Any]]:
    return [c for c in (await env.sim.get("/_sim/calls")).json() if c["to"] == phone]


def hooks_for(env: Env, call_id: str) -> list[Any]:
    return [
        h
        for h in env.receiver.received
        if h.payload.get("data", {}).get("call", {}).get("id") == call_id
    ]
