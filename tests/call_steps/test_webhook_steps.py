"""The Client API's steps: each webhook delivery attempt about a call, delivered or failed
(with its reason and whether it is retried), recorded in the attempt's transaction. The
delivery worker runs in-process against a real local HTTP receiver."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.call_completed_data import CallCompletedData
from generated.webhook_delivery_requested import WebhookDeliveryRequested
from scripts.webhook_receiver import WebhookReceiver
from services.client_api.mapping import call_to_model, load_call
from services.client_api.webhooks.delivery import DeliveryWorker
from services.client_api.webhooks.events import spec_of
from services.client_api.webhooks.secrets import encrypt_secret, new_secret
from services.common.blobstore import GcsBlobStore
from services.common.bus import CloudEvent
from services.common.models import WebhookDelivery, WebhookEndpoint
from services.common.settings import Settings
from tests.call_steps.steps_support import all_events, api_client, steps
from tests.helpers import insert_call


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(settings) as c:
        yield c


async def ended_call_delivery(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, url: str, *, active: bool
) -> tuple[uuid.UUID, WebhookDelivery]:
    """An ended call, an endpoint (not subscribed to anything: no fan-out reaches it) and a
    pending `call.completed` delivery to it, stored as the fan-out stores one."""
    _, call = await insert_call(sessions, "no_answer")
    async with sessions() as s:
        row = await load_call(s, call.id)
        assert row is not None
        data = CallCompletedData(call=await call_to_model(row, GcsBlobStore(settings)))
    event = CloudEvent.create("call.completed", "/voice-orchestrator", data)
    spec = spec_of(event.type)
    assert spec is not None
    payload = spec.body(event.id, event.time, event.data).model_dump(mode="json")
    async with sessions() as s, s.begin():
        endpoint = WebhookEndpoint(
            url=url, events=[], secret_ciphertext=encrypt_secret(new_secret(), settings)
        )
        endpoint.active = active
        s.add(endpoint)
        await s.flush()
        delivery = WebhookDelivery(
            endpoint_id=endpoint.id,
            event_id=event.id,
            event_type=event.type,
            payload=payload,
            status="pending",
            attempt_count=0,
        )
        s.add(delivery)
    return call.id, delivery


async def attempt(
    sessions: async_sessionmaker[AsyncSession],
    worker: DeliveryWorker,
    delivery: WebhookDelivery,
    n: int,
) -> None:
    request = WebhookDeliveryRequested(
        delivery_id=delivery.id,
        endpoint_id=delivery.endpoint_id,
        event_id=uuid.UUID(delivery.event_id),
        attempt=n,
    )
    async with sessions() as s, s.begin():
        await worker(s, CloudEvent.create("webhook.delivery_requested", "/tests", request))


def webhook_detail(delivery: WebhookDelivery, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "event_type": "call.completed",
        "delivery_id": str(delivery.id),
        "endpoint_id": str(delivery.endpoint_id),
        "webhook_attempt": n,
        **extra,
    }


async def test_failed_then_delivered(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    receiver: WebhookReceiver,
    client: httpx.AsyncClient,
) -> None:
    receiver.script = [503]
    s = settings.model_copy(update={"webhook_max_attempts": 3, "webhook_timeout_seconds": 5.0})
    call_id, delivery = await ended_call_delivery(sessions, s, receiver.url, active=True)
    async with httpx.AsyncClient() as http:
        worker = DeliveryWorker(s, http)
        await attempt(sessions, worker, delivery, 1)
        await attempt(sessions, worker, delivery, 2)
        await attempt(sessions, worker, delivery, 2)  # a duplicate request: no second attempt
    assert len(receiver.received) == 2
    events = await all_events(client, call_id)
    assert steps(events) == ["webhook_failed", "webhook_delivered"]
    failed, delivered = events
    assert failed["reason"] == "http_error"
    assert failed["detail"] == webhook_detail(delivery, 1, status_code=503, will_retry=True)
    assert delivered["reason"] is None
    assert delivered["detail"] == webhook_detail(delivery, 2, status_code=200)


async def test_unreachable_and_inactive_endpoints(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
) -> None:
    s = settings.model_copy(update={"webhook_max_attempts": 1, "webhook_timeout_seconds": 2.0})
    closed = f"http://127.0.0.1:{_closed_port()}/webhooks"
    unreachable_call, unreachable = await ended_call_delivery(sessions, s, closed, active=True)
    inactive_call, inactive = await ended_call_delivery(sessions, s, closed, active=False)
    async with httpx.AsyncClient() as http:
        worker = DeliveryWorker(s, http)
        await attempt(sessions, worker, unreachable, 1)
        await attempt(sessions, worker, inactive, 1)
    (failed,) = await all_events(client, unreachable_call)
    assert (failed["step"], failed["reason"]) == ("webhook_failed", "connection_error")
    assert failed["detail"] == webhook_detail(unreachable, 1, will_retry=False)
    (abandoned,) = await all_events(client, inactive_call)
    assert (abandoned["step"], abandoned["reason"]) == ("webhook_failed", "endpoint_inactive")
    assert datetime.fromisoformat(abandoned["at"]) <= datetime.now(UTC)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_event_about_an_unknown_call_is_still_delivered(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    receiver: WebhookReceiver,
) -> None:
    """The step needs the call's row; an event naming a call this database does not hold is
    delivered as before, with no step."""
    _, delivery = await ended_call_delivery(sessions, settings, receiver.url, active=True)
    async with sessions() as s, s.begin():
        row = await s.get(WebhookDelivery, delivery.id)
        assert row is not None
        payload = dict(row.payload)
        payload["data"] = {**payload["data"], "call": {**payload["data"]["call"]}}
        payload["data"]["call"]["id"] = str(uuid.uuid4())
        row.payload = payload
    async with httpx.AsyncClient() as http:
        await attempt(sessions, DeliveryWorker(settings, http), delivery, 1)
    async with sessions() as s:
        row = await s.get(WebhookDelivery, delivery.id)
        assert row is not None and row.status == "succeeded"
    assert len(receiver.received) == 1
