"""Webhook event types through the live Client API (own process, real PostgreSQL, Pub/Sub
emulator): each endpoint gets only the types it subscribed to; `debtor.opted_out` and
`debtor.disputed` leave the Call Scheduler's hold placement through the outbox (once per hold,
however often the change is retried) and reach a receiver signed and retried; an endpoint
changes its types with PATCH, validated against the registry."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from generated.call_completed_event import CallCompletedEvent
from generated.client_api import WebhookDeliveryPage, WebhookEventType
from generated.debtor_event import DebtorEvent
from scripts.webhook_receiver import WebhookReceiver
from services.call_scheduler.events import CallEndedHandler
from services.client_api.webhooks.events import REGISTRY, webhook_event_types
from services.common import models
from services.common.bus import CloudEvent
from services.common.call_events import publish_completed
from services.common.debtor_events import event_id
from services.common.settings import Settings
from tests.client_api.conftest import create_debtor, deactivate_other_endpoints


@pytest.fixture
def receivers() -> Any:
    started = [WebhookReceiver(), WebhookReceiver()]
    for r in started:
        r.start()
    yield started
    for r in started:
        r.stop()


async def subscribe(client: httpx.AsyncClient, url: str, events: list[str]) -> dict[str, Any]:
    resp = await client.post("/v1/webhook-endpoints", json={"url": url, "events": events})
    assert resp.status_code == 201, resp.text
    endpoint: dict[str, Any] = resp.json()
    assert endpoint["events"] == events
    return endpoint


async def ended_call(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], outcome: str
) -> tuple[uuid.UUID, uuid.UUID]:
    """A debtor and a call of theirs triggered through the API that ended with `outcome`."""
    debtor = await create_debtor(client)
    resp = await client.post(f"/v1/debtors/{debtor['id']}/calls")
    assert resp.status_code == 202, resp.text
    call_id = uuid.UUID(resp.json()["id"])
    now = datetime.now(UTC)
    async with sessions() as s, s.begin():
        call = await s.get(models.Call, call_id)
        assert call is not None
        call.status, call.outcome = "completed", outcome
        call.answered_at = call.ended_at = now
        sched = await s.scalar(
            select(models.ScheduledCall).where(models.ScheduledCall.call_id == call_id)
        )
        assert sched is not None
        sched.status = "dispatched"  # as the scheduler left it
    return uuid.UUID(debtor["id"]), call_id


async def end_and_follow_up(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, call_id: uuid.UUID
) -> None:
    """What the services do when the call ends: the orchestrator's `call.completed`, then the
    Call Scheduler's follow-up (the hold, and with it the debtor event)."""
    async with sessions() as s, s.begin():
        await publish_completed(s, settings, call_id, "/voice-orchestrator")
    event = CloudEvent.create("call.completed", "/voice-orchestrator", {"call": {"id": call_id}})
    async with sessions() as s, s.begin():
        await CallEndedHandler(settings)(s, event)


def test_registry_is_the_spec_enum() -> None:
    """Every type an endpoint can subscribe to has a registry entry (so it is delivered), and
    every registry entry is subscribable."""
    assert set(webhook_event_types()) == {t.value for t in WebhookEventType}
    for ce_type, spec in REGISTRY.items():
        assert spec.ce_type == ce_type
        assert {"id", "type", "occurred_at", "data"} <= set(spec.envelope.model_fields)


async def test_each_endpoint_gets_only_its_types_debtor_events_signed_and_retried(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    api_settings: Settings,
    receivers: list[WebhookReceiver],
) -> None:
    holds_rx, calls_rx = receivers
    holds_rx.script = [500]  # the first POST fails: that delivery is retried
    on_holds = await subscribe(client, holds_rx.url, ["debtor.opted_out", "debtor.disputed"])
    on_calls = await subscribe(client, calls_rx.url, ["call.completed"])
    await deactivate_other_endpoints(sessions, keep=[on_holds["id"], on_calls["id"]])
    holds_rx.secret, calls_rx.secret = on_holds["secret"], on_calls["secret"]

    opted_debtor, opted_call = await ended_call(client, sessions, "opted_out")
    disputed_debtor, disputed_call = await ended_call(client, sessions, "disputed")
    await end_and_follow_up(sessions, api_settings, opted_call)
    await end_and_follow_up(sessions, api_settings, disputed_call)
    # The change retried (the same follow-up again): the hold exists, no second event.
    event = CloudEvent.create("call.completed", "/voice-orchestrator", {"call": {"id": opted_call}})
    async with sessions() as s, s.begin():
        await CallEndedHandler(api_settings)(s, event)

    async with sessions() as s:
        holds = {
            h.debtor_id: h
            for h in await s.scalars(
                select(models.DebtorHold).where(
                    models.DebtorHold.debtor_id.in_([opted_debtor, disputed_debtor])
                )
            )
        }
        assert {h.kind for h in holds.values()} == {"opt_out", "dispute"}
        expected_ids = {
            event_id("debtor.opted_out", holds[opted_debtor].id): "debtor.opted_out",
            event_id("debtor.disputed", holds[disputed_debtor].id): "debtor.disputed",
        }
        in_outbox = await s.scalar(
            select(func.count())
            .select_from(models.OutboxMessage)
            .where(models.OutboxMessage.ce_id.in_(list(expected_ids)))
        )
    assert in_outbox == 2  # once per hold

    # Three POSTs: the first one (answered 500) again after its backoff, and the other event.
    got = await holds_rx.wait_for(3, timeout_s=20)
    calls_got = await calls_rx.wait_for(2, timeout_s=20)
    bodies = []
    for hook in got:
        assert hook.signature_valid
        payload = Webhook(on_holds["secret"]).verify(hook.body, hook.headers)
        body = DebtorEvent.model_validate(payload)
        assert hook.headers["webhook-id"] == str(body.id)
        assert expected_ids[str(body.id)] == body.type.value
        bodies.append(body)
    retried = bodies[0].type.value
    assert [b.type.value for b in bodies].count(retried) == 2  # same webhook-id, retried
    assert {b.type.value for b in bodies} == {"debtor.opted_out", "debtor.disputed"}
    by_type = {b.type.value: b for b in bodies}
    opted = by_type["debtor.opted_out"]
    assert opted.data.debtor_id == opted_debtor
    assert opted.data.hold.kind.value == "opt_out"
    assert opted.data.hold.call_id == opted_call
    assert opted.data.hold.id == holds[opted_debtor].id
    assert by_type["debtor.disputed"].data.hold.kind.value == "dispute"
    # The call endpoint got the two calls' call.completed and nothing else.
    for hook in calls_got:
        assert hook.signature_valid
        body = CallCompletedEvent.model_validate(hook.payload)
        assert body.data.call.id in {opted_call, disputed_call}
    assert len(calls_rx.received) == 2
    assert all(h.payload["type"].startswith("debtor.") for h in holds_rx.received)

    # The log: the retried delivery's two attempts (the second is recorded once its POST
    # answered, just after the receiver saw it).
    for _ in range(200):
        resp = await client.get(
            "/v1/webhook-deliveries", params={"endpoint_id": on_holds["id"], "event": retried}
        )
        assert resp.status_code == 200, resp.text
        (delivery,) = WebhookDeliveryPage.model_validate(resp.json()).data
        if delivery.status.value != "pending":
            break
        await asyncio.sleep(0.05)
    assert delivery.status.value == "succeeded"
    assert [a.status_code for a in delivery.attempts] == [500, 200]


async def test_an_endpoint_changes_its_types_with_patch(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    endpoint = await subscribe(client, "http://127.0.0.1:9/hooks", ["call.completed"])
    url = f"/v1/webhook-endpoints/{endpoint['id']}"

    resp = await client.patch(url, json={"events": ["debtor.disputed", "promise.broken"]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["events"] == ["debtor.disputed", "promise.broken"]
    assert "secret" not in resp.json()
    resp = await client.patch(url, json={"description": "disputes desk"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["events"] == ["debtor.disputed", "promise.broken"]  # left as it was
    assert resp.json()["description"] == "disputes desk"
    async with sessions() as s:
        row = await s.get(models.WebhookEndpoint, uuid.UUID(endpoint["id"]))
        assert row is not None and row.events == ["debtor.disputed", "promise.broken"]

    for bad in (
        {"events": ["debtor.vanished"]},
        {"events": []},
        {"events": None},
        {"events": ["debtor.disputed", "debtor.disputed"]},
        {"secret": "whsec_mine"},
    ):
        resp = await client.patch(url, json=bad)
        assert resp.status_code == 422, (bad, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
    resp = await client.patch(
        f"/v1/webhook-endpoints/{uuid.uuid4()}", json={"events": ["call.completed"]}
    )
    assert resp.status_code == 404
    resp = await client.post(
        "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/x", "events": ["nope"]}
    )
    assert resp.status_code == 422
