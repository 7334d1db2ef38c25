"""Small helpers shared by tests (real components only)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.common.bus import PubSubBus
from services.common.models import Call, Debtor
from services.common.settings import Settings
from services.common.topology import subscriptions
from simulators.stack import SimulatorUrls


def vendor_settings(urls: SimulatorUrls, public_url: str) -> dict[str, str]:
    """Settings that point the Voice Orchestrator's vendor clients at running simulators and
    tell Twilio (the simulator) where to reach the orchestrator."""
    return {
        "twilio_api_base_url": urls.twilio,
        "deepgram_ws_url": urls.deepgram_ws,
        "openai_base_url": urls.openai,
        "elevenlabs_base_url": urls.elevenlabs_http,
        "elevenlabs_ws_url": urls.elevenlabs_ws,
        "orchestrator_public_url": public_url,
    }


def temp_subscription(bus: PubSubBus, topic: str) -> str:
    """A fresh subscription on `topic`, so a test sees every message published after it."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    bus.subscriber.create_subscription(
        name=bus.subscription_path(name), topic=bus.topic_path(topic), ack_deadline_seconds=10
    )
    return name


async def pull(bus: PubSubBus, subscription: str, want: int, wait_s: float = 10.0) -> list[Any]:
    """Synchronous pull (in a thread) until `want` messages arrived or `wait_s` passed; acks."""
    got: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while len(got) < want and loop.time() < deadline:
        resp = await asyncio.to_thread(
            bus.subscriber.pull,
            subscription=bus.subscription_path(subscription),
            max_messages=10,
            timeout=2,
        )
        if resp.received_messages:
            got.extend(resp.received_messages)
            await asyncio.to_thread(
                bus.subscriber.acknowledge,
                subscription=bus.subscription_path(subscription),
                ack_ids=[m.ack_id for m in resp.received_messages],
            )
    return got


async def drain(bus: PubSubBus, subscription: str) -> int:
    """Ack everything waiting on `subscription` (the shared stack's backlog from other tests),
    so a consumer started next sees the test's own messages first. Returns how many it acked."""
    acked = 0
    while True:
        got = await pull(bus, subscription, want=1, wait_s=0.1)
        if not got:
            return acked
        acked += len(got)


async def close_earlier_tests_work(engine: AsyncEngine) -> None:
    """End what earlier tests left scheduled on a shared database: their webhook deliveries
    still being retried (a Client API's retry pump asks for the next attempt, at start-up too,
    writing an outbox row) and their follow-up calls still pending (a scheduler places them).
    A test that counts rows, or restarts services, starts from a quiet deployment."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL"
                " WHERE status = 'pending'"
            )
        )
        await conn.execute(
            text(
                "UPDATE scheduled_calls SET status = 'cancelled', skip_reason = 'test reset'"
                " WHERE status = 'pending'"
            )
        )


async def drain_backlog_of(settings: Settings, consumers: tuple[str, ...]) -> None:
    """Ack what waits on the shared stack's subscriptions of `consumers`: earlier tests publish
    while those consumers are not running, and a process started next would handle that
    backlog (writing rows, pushing the test's own messages past its wait)."""
    bus = PubSubBus(settings)
    try:
        for sub in subscriptions(settings):
            if sub.consumer in consumers:
                await drain(bus, sub.name)
    finally:
        bus.close()


def sample_debtor(**fields: Any) -> Debtor:
    """A valid, unsaved debtor; `fields` override the defaults."""
    values: dict[str, Any] = {
        "name": "Test Person",
        "phone": "+15550100001",
        "timezone": "America/New_York",
        "stage": "early",
        "amount_owed_minor": 1000,
        "currency": "USD",
        "due_date": date(2026, 11, 1),
        "account_reference": "ACC-1",
    }
    return Debtor(**(values | fields))


async def insert_call(
    sessions: async_sessionmaker[AsyncSession], status: str, **debtor_fields: Any
) -> tuple[Debtor, Call]:
    """A debtor and one call of theirs in `status`, committed."""
    async with sessions() as s, s.begin():
        debtor = sample_debtor(**debtor_fields)
        s.add(debtor)
        await s.flush()
        call = Call(debtor_id=debtor.id, stage=debtor.stage, status=status)
        s.add(call)
        await s.flush()
    return debtor, call
