"""Payments and promises through the live Client API (own process, real PostgreSQL, Pub/Sub
emulator): idempotent payments by reference, allocation earliest due first, kept promises, the
list filters and pages, cancel, and the promise.* webhooks reaching a subscribed endpoint."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from generated.client_api import PromisePage
from generated.payment import Payment
from generated.promise import Promise
from generated.promise_event import PromiseEvent
from scripts.webhook_receiver import WebhookReceiver
from services.call_scheduler.promises import judge_overdue_promises
from services.common import models
from services.common.call_events import publish_completed
from services.common.settings import Settings
from tests.client_api.conftest import create_debtor, deactivate_other_endpoints
from tests.promises.promise_support import insert_promise, promise_events

DUE = date(2026, 12, 20)


def payment_body(debtor_id: str, amount: int, **extra: Any) -> dict[str, Any]:
    return {
        "debtor_id": debtor_id,
        "amount": {"amount_minor": amount, "currency": "USD"},
        "paid_at": "2026-12-03T10:00:00Z",
        "reference": f"txn-{uuid.uuid4().hex}",
        **extra,
    }


async def get_promise(client: httpx.AsyncClient, public_id: uuid.UUID) -> Promise:
    resp = await client.get(f"/v1/promises/{public_id}")
    assert resp.status_code == 200, resp.text
    return Promise.model_validate(resp.json())


async def test_payment_is_idempotent_by_reference_and_409_on_another_body(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    debtor = await create_debtor(client)
    promise = await insert_promise(sessions, uuid.UUID(debtor["id"]), 10_000, DUE)
    body = payment_body(debtor["id"], 4000)

    first = await client.post("/v1/payments", json=body)
    assert first.status_code == 201, first.text
    again = await client.post("/v1/payments", json=body)
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert (await get_promise(client, promise.public_id)).paid.amount_minor == 4000  # once

    other = await client.post(
        "/v1/payments", json={**body, "amount": {**body["amount"], "amount_minor": 4001}}
    )
    assert other.status_code == 409, other.text
    assert other.headers["content-type"].startswith("application/problem+json")
    assert other.json()["type"] == "urn:problem:payment-reference-reused"
    async with sessions() as s:
        count = await s.scalar(
            select(func.count())
            .select_from(models.Payment)
            .where(models.Payment.reference == body["reference"])
        )
    assert count == 1
    assert (await get_promise(client, promise.public_id)).paid.amount_minor == 4000


async def test_payment_is_applied_earliest_due_first_and_keeps_promises(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    debtor = await create_debtor(client)
    debtor_id = uuid.UUID(debtor["id"])
    later = await insert_promise(sessions, debtor_id, 5000, DUE + timedelta(days=10))
    sooner = await insert_promise(sessions, debtor_id, 3000, DUE)
    euros = await insert_promise(sessions, debtor_id, 9000, DUE - timedelta(days=5), currency="EUR")

    resp = await client.post("/v1/payments", json=payment_body(debtor["id"], 4000))
    assert resp.status_code == 201, resp.text
    payment = Payment.model_validate(resp.json())
    assert [(a.promise_id, a.amount.amount_minor) for a in payment.allocations] == [
        (sooner.public_id, 3000),
        (later.public_id, 1000),
    ]
    assert payment.unallocated.amount_minor == 0 and payment.promise_id is None
    kept = await get_promise(client, sooner.public_id)
    assert (kept.status.value, kept.paid.amount_minor) == ("kept", 3000)
    assert kept.resolved_at is not None
    assert (await get_promise(client, later.public_id)).status.value == "pending"
    assert (await get_promise(client, euros.public_id)).paid.amount_minor == 0  # other currency

    # Paying more than is owed: the later promise is kept, the rest stays unallocated.
    resp = await client.post("/v1/payments", json=payment_body(debtor["id"], 6000))
    payment = Payment.model_validate(resp.json())
    assert [(a.promise_id, a.amount.amount_minor) for a in payment.allocations] == [
        (later.public_id, 4000)
    ]
    assert payment.unallocated.amount_minor == 2000
    assert (await get_promise(client, later.public_id)).status.value == "kept"
    events = await promise_events(sessions, [sooner.public_id, later.public_id, euros.public_id])
    assert events == [
        ("promise.kept", str(sooner.public_id), "kept"),
        ("promise.kept", str(later.public_id), "kept"),
    ]


async def test_payment_for_a_named_promise(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    debtor = await create_debtor(client)
    debtor_id = uuid.UUID(debtor["id"])
    sooner = await insert_promise(sessions, debtor_id, 3000, DUE)
    later = await insert_promise(sessions, debtor_id, 5000, DUE + timedelta(days=3))
    resp = await client.post(
        "/v1/payments", json=payment_body(debtor["id"], 1000, promise_id=str(later.public_id))
    )
    assert resp.status_code == 201, resp.text
    assert Payment.model_validate(resp.json()).promise_id == later.public_id
    assert (await get_promise(client, later.public_id)).paid.amount_minor == 1000
    assert (await get_promise(client, sooner.public_id)).paid.amount_minor == 0

    euro = payment_body(debtor["id"], 1000, promise_id=str(later.public_id))
    euro["amount"]["currency"] = "EUR"
    resp = await client.post("/v1/payments", json=euro)
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "body.amount.currency"

    other = await create_debtor(client)
    resp = await client.post(
        "/v1/payments", json=payment_body(other["id"], 1000, promise_id=str(later.public_id))
    )
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "body.promise_id"

    unknown = payment_body(debtor["id"], 1000, promise_id=str(uuid.uuid4()))
    assert (await client.post("/v1/payments", json=unknown)).status_code == 404

    assert (await client.post(f"/v1/promises/{later.public_id}/cancel")).status_code == 200
    resp = await client.post(
        "/v1/payments", json=payment_body(debtor["id"], 1000, promise_id=str(later.public_id))
    )
    assert resp.status_code == 409 and resp.json()["type"] == "urn:problem:promise-not-pending"
    again = await client.post(f"/v1/promises/{later.public_id}/cancel")
    assert again.status_code == 409 and again.json()["type"] == "urn:problem:promise-not-pending"

    nobody = payment_body(str(uuid.uuid4()), 1000)
    assert (await client.post("/v1/payments", json=nobody)).status_code == 404
    zero = payment_body(debtor["id"], 0)
    assert (await client.post("/v1/payments", json=zero)).status_code == 422


async def _all_pages(client: httpx.AsyncClient, **params: Any) -> list[Promise]:
    got: list[Promise] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        resp = await client.get("/v1/promises", params=query)
        assert resp.status_code == 200, resp.text
        page = PromisePage.model_validate(resp.json())
        assert len(page.data) <= 2
        got += page.data
        if page.next_cursor is None:
            return got
        cursor = page.next_cursor


async def test_list_filters_and_pages(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    debtor = await create_debtor(client)
    debtor_id = uuid.UUID(debtor["id"])
    made = [
        await insert_promise(sessions, debtor_id, 1000, DUE + timedelta(days=i)) for i in range(5)
    ]
    await client.post(f"/v1/promises/{made[0].public_id}/cancel")

    everything = await _all_pages(client, debtor_id=debtor["id"])
    assert [p.id for p in everything] == [p.public_id for p in reversed(made)]  # newest first
    pending = await _all_pages(client, debtor_id=debtor["id"], status="pending")
    assert {p.id for p in pending} == {p.public_id for p in made[1:]}
    ranged = await _all_pages(
        client,
        debtor_id=debtor["id"],
        due_from=str(DUE + timedelta(days=1)),
        due_to=str(DUE + timedelta(days=3)),
    )
    assert {p.id for p in ranged} == {p.public_id for p in made[1:4]}
    cancelled = await _all_pages(client, debtor_id=debtor["id"], status="cancelled")
    assert [p.id for p in cancelled] == [made[0].public_id]

    first = await client.get("/v1/promises", params={"debtor_id": debtor["id"], "limit": 2})
    cursor = first.json()["next_cursor"]
    resp = await client.get("/v1/promises", params={"status": "pending", "cursor": cursor})
    assert resp.status_code == 400 and resp.json()["type"] == "urn:problem:invalid-cursor"
    resp = await client.get(
        "/v1/promises", params={"due_from": "2026-12-10", "due_to": "2026-12-01"}
    )
    assert resp.status_code == 422
    assert (await client.get(f"/v1/promises/{uuid.uuid4()}")).status_code == 404


@pytest.fixture
def receiver() -> Any:
    r = WebhookReceiver()
    r.start()
    yield r
    r.stop()


async def test_promise_webhooks_reach_a_subscribed_endpoint(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    api_settings: Settings,
    receiver: WebhookReceiver,
) -> None:
    resp = await client.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url, "events": ["promise.created", "promise.kept", "promise.broken"]},
    )
    assert resp.status_code == 201, resp.text
    endpoint = resp.json()
    await deactivate_other_endpoints(sessions, keep=[endpoint["id"]])
    receiver.secret = endpoint["secret"]

    debtor = await create_debtor(client)
    debtor_id = uuid.UUID(debtor["id"])
    # promise.created: published with the call's call.completed, in the ending transaction.
    created = await insert_promise(sessions, debtor_id, 2500, DUE)
    async with sessions() as s, s.begin():
        await publish_completed(s, api_settings, created.call_id, "/voice-orchestrator")
    # promise.kept: a payment reaches the amount.
    resp = await client.post("/v1/payments", json=payment_body(debtor["id"], 2500))
    assert resp.status_code == 201, resp.text
    # promise.broken: the scheduler's pass, long after the due date.
    overdue = await insert_promise(sessions, debtor_id, 900, date(2020, 1, 1))
    async with sessions() as s, s.begin():
        await judge_overdue_promises(s, api_settings, datetime.now(UTC), limit=1000)

    got = await receiver.wait_for(3, timeout_s=20)
    bodies = []
    for hook in got:
        assert hook.signature_valid
        payload = Webhook(endpoint["secret"]).verify(hook.body, hook.headers)
        body = PromiseEvent.model_validate(payload)
        assert hook.headers["webhook-id"] == str(body.id)
        bodies.append(body)
    seen = {(b.type.value, b.data.promise.id, b.data.promise.status.value) for b in bodies}
    assert (("promise.created", created.public_id, "pending")) in seen
    assert (("promise.kept", created.public_id, "kept")) in seen
    assert (("promise.broken", overdue.public_id, "broken")) in seen
    # No call.completed: the endpoint did not subscribe to it.
    assert all(b.type.value.startswith("promise.") for b in bodies)
