"""The request path end to end through the Pub/Sub emulator: REST trigger → outbox →
`call-requests` → Call Scheduler → `call-dispatch`, and `call-events` back into webhooks, with
duplicates injected at every hop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.call_completed_data import CallCompletedData
from generated.call_dispatch import CallDispatch
from scripts.processes import ServiceProcess
from scripts.webhook_receiver import WebhookReceiver
from services.client_api.mapping import call_to_model, load_call
from services.common import models
from services.common.blobstore import GcsBlobStore
from services.common.bus import CloudEvent, PubSubBus
from services.common.settings import Settings
from tests.client_api.conftest import create_debtor, deactivate_other_endpoints
from tests.client_api.test_webhooks import wait_delivery_status
from tests.helpers import pull, temp_subscription


@pytest.fixture(scope="module")
def scheduler(api_server: ServiceProcess) -> Iterator[ServiceProcess]:
    """The Call Scheduler as its own process, as in production."""
    process = ServiceProcess(
        name="call-scheduler",
        module="services.call_scheduler",
        env={"OUTBOX_POLL_INTERVAL_SECONDS": "0.05"},
    )
    process.env["CALL_SCHEDULER_PORT"] = str(process.port)
    process.start()
    try:
        process.wait_healthy(timeout=60)
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
async def bus(api_settings: Settings) -> AsyncIterator[PubSubBus]:
    b = PubSubBus(api_settings)
    yield b
    b.close()


async def _processed(sessions: async_sessionmaker[AsyncSession], consumer: str, ce_id: str) -> bool:
    async with sessions() as s:
        row = await s.get(models.ProcessedMessage, (consumer, ce_id))
    return row is not None


async def dispatches_of(
    bus: PubSubBus, subscription: str, call_id: str, wait_s: float
) -> list[CallDispatch]:
    """Every dispatch of `call_id` seen within `wait_s` (other tests' calls are skipped; the
    wait always runs to its end, so a late duplicate would be seen)."""
    found: list[CallDispatch] = []
    deadline = asyncio.get_running_loop().time() + wait_s
    while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
        for m in await pull(bus, subscription, 1, wait_s=min(remaining, 2.0)):
            event = CloudEvent.from_message(dict(m.message.attributes), m.message.data)
            assert event.type == "call.dispatch"
            dispatch = CallDispatch.model_validate(event.data)
            if str(dispatch.call_id) == call_id:
                found.append(dispatch)
        if found and wait_s > 5:
            # The first one arrived: keep listening a little for a duplicate, then stop.
            deadline = min(deadline, asyncio.get_running_loop().time() + 2.0)
    return found


async def test_trigger_is_dispatched_once_whatever_is_duplicated(
    scheduler: ServiceProcess,
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    api_settings: Settings,
    bus: PubSubBus,
) -> None:
    dispatch_sub = temp_subscription(bus, api_settings.pubsub_topic_call_dispatch)
    debtor = await create_debtor(client, stage="pre_delinquency")
    key = str(uuid.uuid4())
    path = f"/v1/debtors/{debtor['id']}/calls"
    # hop 1: the client retries its trigger (same Idempotency-Key)
    first = await client.post(path, json={}, headers={"Idempotency-Key": key})
    retry = await client.post(path, json={}, headers={"Idempotency-Key": key})
    assert first.status_code == retry.status_code == 202
    call_id = first.json()["id"]
    assert retry.json()["id"] == call_id

    got = await dispatches_of(bus, dispatch_sub, call_id, wait_s=15)
    assert len(got) == 1
    dispatch = got[0]
    assert str(dispatch.debtor.debtor_id) == debtor["id"]
    assert dispatch.stage.value == "pre_delinquency"
    assert dispatch.debtor.phone == debtor["phone"]

    # hop 2: `call-requests` redelivered (same ce-id) and re-sent (new ce-id)
    async with sessions() as s:
        outbox = (
            await s.scalars(
                select(models.OutboxMessage).where(
                    models.OutboxMessage.payload["call_id"].astext == call_id,
                    models.OutboxMessage.ce_type == "call.requested",
                )
            )
        ).all()
    assert len(outbox) == 1 and outbox[0].published_at is not None
    original = CloudEvent(
        id=outbox[0].ce_id,
        type=outbox[0].ce_type,
        source=outbox[0].ce_source,
        data=outbox[0].payload,
    )
    for _ in range(2):
        await bus.publish(api_settings.pubsub_topic_call_requests, original)
    resent = CloudEvent.create("call.requested", "/client-api", outbox[0].payload)
    await bus.publish(api_settings.pubsub_topic_call_requests, resent)
    # The scheduler did handle the re-sent request (its ce-id is recorded) ...
    deadline = asyncio.get_running_loop().time() + 15
    while not await _processed(sessions, "call-scheduler", resent.id):
        assert asyncio.get_running_loop().time() < deadline, "re-sent request never handled"
        await asyncio.sleep(0.05)
    # ... and none of the duplicates dispatched the call again.
    late = await dispatches_of(bus, dispatch_sub, call_id, wait_s=3)
    assert late == []

    async with sessions() as s:
        row = await s.get(models.Call, uuid.UUID(call_id))
        assert row is not None and row.status == "dispatched"
    status = (await client.get(f"/v1/calls/{call_id}")).json()
    assert status["status"] == "dispatched" and status["dispatched_at"] is not None


async def test_call_events_redelivered_give_one_webhook(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    api_settings: Settings,
    bus: PubSubBus,
) -> None:
    receiver = WebhookReceiver()
    receiver.start()
    try:
        endpoint = (await client.post("/v1/webhook-endpoints", json={"url": receiver.url})).json()
        receiver.secret = endpoint["secret"]
        await deactivate_other_endpoints(sessions, keep=[endpoint["id"]])
        debtor = await create_debtor(client)
        call_id = uuid.UUID((await client.post(f"/v1/debtors/{debtor['id']}/calls")).json()["id"])
        async with sessions() as s, s.begin():
            row = await s.get(models.Call, call_id)
            assert row is not None
            row.status, row.outcome, row.ended_at = "completed", "refused", datetime.now(UTC)
        async with sessions() as s:
            loaded = await load_call(s, call_id)
            assert loaded is not None
            data = CallCompletedData(call=await call_to_model(loaded, GcsBlobStore(api_settings)))
        event = CloudEvent.create("call.completed", "/voice-orchestrator", data)
        # hop 3: `call-events` redelivered
        for _ in range(3):
            await bus.publish(api_settings.pubsub_topic_call_events, event)
        await wait_delivery_status(client, endpoint["id"], "succeeded")
        received = await receiver.wait_for(1, timeout_s=5)
        assert len(received) == 1 and received[0].signature_valid
        assert received[0].payload["data"]["call"]["id"] == str(call_id)
        assert received[0].payload["data"]["call"]["outcome"] == "refused"
    finally:
        receiver.stop()
