"""Webhooks end to end: `call.completed` on the Pub/Sub emulator → delivery rows → signed POSTs
to a real local HTTP receiver, retried with backoff, every attempt logged, never duplicated."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from generated.call_completed_data import CallCompletedData
from generated.call_completed_event import CallCompletedEvent
from generated.client_api import WebhookDeliveryPage
from generated.webhook_delivery_requested import WebhookDeliveryRequested
from scripts.localstack import free_port
from scripts.webhook_receiver import WebhookReceiver
from services.client_api.mapping import call_to_model, load_call
from services.client_api.webhooks.schedule import retry_delay
from services.common import models
from services.common.blobstore import GcsBlobStore
from services.common.bus import CloudEvent, PubSubBus
from services.common.settings import Settings
from tests.client_api.conftest import create_debtor, deactivate_other_endpoints


@pytest.fixture(scope="module")
async def bus(api_settings: Settings) -> AsyncIterator[PubSubBus]:
    b = PubSubBus(api_settings)
    yield b
    b.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    r.start()
    yield r
    r.stop()


async def register(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    url: str,
    *,
    only: bool = True,
) -> dict[str, Any]:
    resp = await client.post("/v1/webhook-endpoints", json={"url": url})
    assert resp.status_code == 201, resp.text
    endpoint: dict[str, Any] = resp.json()
    if only:
        await deactivate_other_endpoints(sessions, keep=[endpoint["id"]])
    return endpoint


async def completed_call_event(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> CloudEvent:
    """A call triggered through the API and ended, and its `call.completed` event as the Voice
    Orchestrator publishes it (payload built with the shared mapping)."""
    debtor = await create_debtor(client)
    call_id = uuid.UUID((await client.post(f"/v1/debtors/{debtor['id']}/calls")).json()["id"])
    async with sessions() as s, s.begin():
        call = await s.get(models.Call, call_id)
        assert call is not None
        call.status, call.outcome = "no_answer", "no_answer"
        call.ended_at = datetime.now(UTC)
    async with sessions() as s:
        row = await load_call(s, call_id)
        assert row is not None
        data = CallCompletedData(call=await call_to_model(row, GcsBlobStore(settings)))
    return CloudEvent.create("call.completed", "/voice-orchestrator", data)


async def request_attempt(
    bus: PubSubBus, settings: Settings, request: WebhookDeliveryRequested, copies: int
) -> None:
    """The same attempt requested `copies` times at once, each message with its own ce-id."""
    await asyncio.gather(
        *(
            bus.publish(
                settings.pubsub_topic_webhook_deliveries,
                CloudEvent.create("webhook.delivery_requested", "/tests", request),
            )
            for _ in range(copies)
        )
    )


async def deliveries(client: httpx.AsyncClient, **params: Any) -> WebhookDeliveryPage:
    resp = await client.get("/v1/webhook-deliveries", params={"limit": 100, **params})
    assert resp.status_code == 200, resp.text
    return WebhookDeliveryPage.model_validate(resp.json())


async def wait_delivery_status(
    client: httpx.AsyncClient, endpoint_id: str, status: str, timeout_s: float = 15.0
) -> WebhookDeliveryPage:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        page = await deliveries(client, endpoint_id=endpoint_id)
        if page.data and all(d.status.value == status for d in page.data):
            return page
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"deliveries not {status}: {page.model_dump_json()}")
        await asyncio.sleep(0.05)


async def test_delivery_is_signed_per_standard_webhooks(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    api_settings: Settings,
    bus: PubSubBus,
    receiver: WebhookReceiver,
) -> None:
    endpoint = await register(client, sessions, receiver.url)
    receiver.secret = endpoint["secret"]
    event = await completed_call_event(client, sessions, api_settings)
    await bus.publish(api_settings.pubsub_topic_call_events, event)

    [got] = await receiver.wait_for(1, timeout_s=15)
    assert got.signature_valid
    # Exactly what a client developer would do with the secret they were given:
    payload = Webhook(endpoint["secret"]).verify(got.body, got.headers)
    body = CallCompletedEvent.model_validate(payload)
    assert str(body.id) == event.id and body.type == "call.completed"
    assert body.data.call.status.value == "no_answer"
    assert body.data == CallCompletedData.model_validate(event.data)
    assert got.headers["webhook-id"] == event.id
    assert got.headers["content-type"] == "application/json"
    assert abs(int(got.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 60
    with pytest.raises(WebhookVerificationError):  # a tampered body does not verify
        Webhook(endpoint["secret"]).verify(
            got.body.replace(b"no_answer", b"completed"), got.headers
        )

    page = await wait_delivery_status(client, endpoint["id"], "succeeded")
    [delivery] = page.data
    assert str(delivery.event_id) == event.id and delivery.next_attempt_at is None
    assert [(a.attempt, a.status_code, a.error) for a in delivery.attempts] == [(1, 200, None)]


async def test_failing_receiver_is_retried_until_it_succeeds(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    api_settings: Settings,
    bus: PubSubBus,
    receiver: WebhookReceiver,
) -> None:
    receiver.script = [500, 503]  # fails twice, then 200
    endpoint = await register(client, sessions, receiver.url)
    receiver.secret = endpoint["secret"]
    event = await completed_call_event(client, sessions, api_settings)
    await bus.publish(api_settings.pubsub_topic_call_events, event)

    page = await wait_delivery_status(client, endpoint["id"], "succeeded")
    [delivery] = page.data
    assert [(a.attempt, a.status_code) for a in delivery.attempts] == [(1, 500), (2, 503), (3, 200)]
    assert delivery.attempts[0].error == "HTTP 500" and delivery.attempts[2].error is None
    # backoff: the attempts are spaced by at least base, then 2 * base
    gaps = [
        (b.attempted_at - a.attempted_at).total_seconds()
        for a, b in zip(delivery.attempts, delivery.attempts[1:], strict=False)
    ]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1
    await asyncio.sleep(0.5)  # nothing more arrives after the success
    assert len(receiver.received) == 3
    assert {r.headers["webhook-id"] for r in receiver.received} == {event.id}
    assert all(r.signature_valid for r in receiver.received)
    assert len({r.body for r in receiver.received}) == 1  # same body every time
    async with sessions() as s:
        attempts = await s.scalar(
            select(func.count())
            .select_from(models.WebhookAttempt)
            .where(models.WebhookAttempt.delivery_id == delivery.id)
        )
    assert attempts == 3


async def test_receiver_that_always_fails_ends_failed(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    api_settings: Settings,
    bus: PubSubBus,
    receiver: WebhookReceiver,
) -> None:
    receiver.script = [500] * 10
    endpoint = await register(client, sessions, receiver.url)
    event = await completed_call_event(client, sessions, api_settings)
    await bus.publish(api_settings.pubsub_topic_call_events, event)

    page = await wait_delivery_status(client, endpoint["id"], "failed")
    [delivery] = page.data
    assert len(delivery.attempts) == api_settings.webhook_max_attempts == 3
    assert delivery.next_attempt_at is None
    failed = await deliveries(client, status="failed", event="call.completed")
    assert delivery.id in {d.id for d in failed.data}
    assert all(d.status.value == "failed" for d in failed.data)
    succeeded = await deliveries(client, status="succeeded", endpoint_id=endpoint["id"])
    assert succeeded.data == []
    await asyncio.sleep(0.5)
    assert len(receiver.received) == 3


async def test_unreachable_endpoint_attempts_record_the_error(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    api_settings: Settings,
    bus: PubSubBus,
) -> None:
    endpoint = await register(client, sessions, f"http://127.0.0.1:{free_port()}/nobody")
    event = await completed_call_event(client, sessions, api_settings)
    await bus.publish(api_settings.pubsub_topic_call_events, event)
    page = await wait_delivery_status(client, endpoint["id"], "failed")
    attempts = page.data[0].attempts
    assert [a.status_code for a in attempts] == [None, None, None]
    assert all(a.error and "Connect" in a.error for a in attempts)


async def test_receiver_down_for_a_while_gets_the_webhook_once_when_back(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    api_settings: Settings,
    bus: PubSubBus,
) -> None:
    """The receiver's port refuses connections for the first two attempts, then the receiver
    comes up on that same port: the third attempt delivers, once, with the same webhook-id."""
    # The port is ours but not listening: connections are refused (RST), as when the client's
    # server is down. listen() makes it accept at once; the receiver then serves from it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    receiver = WebhookReceiver(port=sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(receiver._app(), log_level="warning", lifespan="off")  # its own app
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    endpoint = await register(client, sessions, receiver.url)
    receiver.secret = endpoint["secret"]
    event = await completed_call_event(client, sessions, api_settings)
    try:
        await bus.publish(api_settings.pubsub_topic_call_events, event)
        # Down until two attempts were refused (the third is due 2 × base = 0.1 s later).
        refused = (
            select(func.count())
            .select_from(models.WebhookAttempt)
            .join(models.WebhookDelivery)
            .where(models.WebhookDelivery.endpoint_id == uuid.UUID(endpoint["id"]))
        )
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            async with sessions() as s:
                if (await s.scalar(refused)) >= 2:
                    break
            assert asyncio.get_running_loop().time() < deadline, "no refused attempts"
            await asyncio.sleep(0.005)
        sock.listen(16)
        thread.start()

        page = await wait_delivery_status(client, endpoint["id"], "succeeded")
        [delivery] = page.data
        attempts = delivery.attempts
        assert [(a.attempt, a.status_code) for a in attempts] == [(1, None), (2, None), (3, 200)]
        assert all(a.error and "Connect" in a.error for a in attempts[:2])
        assert attempts[2].error is None and delivery.next_attempt_at is None
        gaps = [
            (b.attempted_at - a.attempted_at).total_seconds()
            for a, b in itertools.pairwise(attempts)
        ]
        assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # the backoff, while it was down
        await asyncio.sleep(0.5)  # nothing more arrives after the success
        [got] = receiver.received
        assert got.signature_valid
        assert got.headers["webhook-id"] == event.id == str(delivery.event_id)
        assert CallCompletedEvent.model_validate(got.payload).id == uuid.UUID(event.id)
    finally:
        server.should_exit = True
        if thread.is_alive():
            thread.join(5)
        sock.close()


async def test_redelivered_event_and_duplicate_attempts_change_nothing(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    api_settings: Settings,
    bus: PubSubBus,
    receiver: WebhookReceiver,
) -> None:
    first = await register(client, sessions, receiver.url)
    second = await register(client, sessions, receiver.url, only=False)
    receiver.secret = first["secret"]
    event = await completed_call_event(client, sessions, api_settings)
    for _ in range(3):  # Pub/Sub redelivers the same message
        await bus.publish(api_settings.pubsub_topic_call_events, event)

    await wait_delivery_status(client, first["id"], "succeeded")
    await wait_delivery_status(client, second["id"], "succeeded")
    async with sessions() as s:
        rows = (
            await s.scalars(
                select(models.WebhookDelivery).where(models.WebhookDelivery.event_id == event.id)
            )
        ).all()
    assert sorted(str(r.endpoint_id) for r in rows) == sorted([first["id"], second["id"]])
    assert len(receiver.received) == 2

    # The same attempt requested again (a duplicate message with its own ce-id, twice at once)
    # does not POST again.
    delivery = next(r for r in rows if str(r.endpoint_id) == first["id"])
    again = WebhookDeliveryRequested(
        delivery_id=delivery.id,
        endpoint_id=delivery.endpoint_id,
        event_id=uuid.UUID(event.id),
        attempt=1,
    )
    await request_attempt(bus, api_settings, again, copies=2)
    await asyncio.sleep(1.0)
    assert len(receiver.received) == 2
    page = await deliveries(client, endpoint_id=first["id"])
    assert [len(d.attempts) for d in page.data] == [1]


async def test_concurrent_duplicates_of_a_pending_attempt_post_once(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    api_settings: Settings,
    bus: PubSubBus,
    receiver: WebhookReceiver,
) -> None:
    """Several messages for attempt 1 of one delivery arrive together: the row lock lets one
    through, the others find the attempt made."""
    endpoint = await register(client, sessions, receiver.url)
    delivery_id = uuid.uuid4()
    event_id = uuid.uuid4()
    source = await completed_call_event(client, sessions, api_settings)
    payload = CallCompletedEvent(
        id=event_id,
        type="call.completed",
        occurred_at=source.time,
        data=CallCompletedData.model_validate(source.data),
    ).model_dump(mode="json")
    async with sessions() as s, s.begin():
        s.add(
            models.WebhookDelivery(
                id=delivery_id,
                endpoint_id=uuid.UUID(endpoint["id"]),
                event_id=str(event_id),
                event_type="call.completed",
                payload=payload,
                status="pending",
                attempt_count=0,
                next_attempt_at=None,
            )
        )
    request = WebhookDeliveryRequested(
        delivery_id=delivery_id,
        endpoint_id=uuid.UUID(endpoint["id"]),
        event_id=event_id,
        attempt=1,
    )
    await request_attempt(bus, api_settings, request, copies=4)
    await asyncio.sleep(1.5)
    async with sessions() as s:
        attempts = (
            await s.scalars(
                select(models.WebhookAttempt).where(
                    models.WebhookAttempt.delivery_id == delivery_id
                )
            )
        ).all()
    assert len(attempts) == 1
    assert len([r for r in receiver.received if r.headers["webhook-id"] == str(event_id)]) == 1


def test_backoff_schedule_is_exponential_capped_and_jitter_free(settings: Settings) -> None:
    # The defaults, as documented in README (Webhooks) and the spec.
    assert [retry_delay(n, settings).total_seconds() for n in range(1, 5)] == [2, 4, 8, 16]
    assert retry_delay(20, settings).total_seconds() == settings.webhook_backoff_max_seconds
    assert retry_delay(3, settings) == retry_delay(3, settings)
