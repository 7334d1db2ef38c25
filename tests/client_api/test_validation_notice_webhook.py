"""`debtor.validation_notice_requested` through the live Client API (own process, real
PostgreSQL, Pub/Sub emulator): a call that ended with the debtor asking for the debt in writing
places a `validation_notice` hold at the Call Scheduler's follow-up, whose event reaches a
subscribed endpoint signed; the debtor cannot be called until an operator lifts the hold."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from generated.debtor_event import DebtorEvent
from scripts.webhook_receiver import WebhookReceiver
from services.common import models
from services.common.debtor_events import event_id
from services.common.settings import Settings
from tests.client_api.conftest import deactivate_other_endpoints
from tests.client_api.test_webhook_events import end_and_follow_up, ended_call, subscribe


@pytest.fixture
def receiver() -> Any:
    rx = WebhookReceiver()
    rx.start()
    yield rx
    rx.stop()


async def test_validation_notice_request_is_a_webhook_and_a_hold_until_lifted(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    api_settings: Settings,
    receiver: WebhookReceiver,
) -> None:
    endpoint = await subscribe(client, receiver.url, ["debtor.validation_notice_requested"])
    await deactivate_other_endpoints(sessions, keep=[endpoint["id"]])
    receiver.secret = endpoint["secret"]
    debtor_id, call_id = await ended_call(client, sessions, "validation_notice_requested")
    await end_and_follow_up(sessions, api_settings, call_id)
    async with sessions() as s:
        hold = await s.scalar(
            select(models.DebtorHold).where(models.DebtorHold.debtor_id == debtor_id)
        )
    assert hold is not None and hold.kind == "validation_notice"

    [hook] = await receiver.wait_for(1, timeout_s=20)
    assert hook.signature_valid
    body = DebtorEvent.model_validate(Webhook(endpoint["secret"]).verify(hook.body, hook.headers))
    assert body.type.value == "debtor.validation_notice_requested"
    assert str(body.id) == event_id("debtor.validation_notice_requested", hold.id)
    assert body.data.debtor_id == debtor_id and body.data.hold.call_id == call_id
    assert body.data.hold.kind.value == "validation_notice"

    # On hold: a new call is refused until the notice is out and an operator lifts the hold.
    resp = await client.post(f"/v1/debtors/{debtor_id}/calls")
    assert resp.status_code == 409, resp.text
    resp = await client.post(
        f"/v1/debtors/{debtor_id}/holds/{hold.id}/lift",
        json={"reason": "validation notice mailed"},
    )
    assert resp.status_code == 200, resp.text
    resp = await client.post(f"/v1/debtors/{debtor_id}/calls")
    assert resp.status_code == 202, resp.text
    async with sessions() as s, s.begin():
        # The new call is not this test's to place (other packages share the emulator).
        call = await s.get(models.Call, resp.json()["id"])
        assert call is not None
        call.status, call.failure_reason = "canceled", "test over"
        row = await s.scalar(
            select(models.ScheduledCall).where(models.ScheduledCall.call_id == call.id)
        )
        if row is not None:
            row.status, row.skip_reason = "cancelled", "test over"
