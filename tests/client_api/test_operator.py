"""Operator controls through the live Client API (own process, real PostgreSQL): retry a call
now (rules and holds respected, or overridden with a reason), cancel a queued or scheduled call
(409 once it is dialing), the audited hold lift, and the audit itself (actor = the API key's
label, reason, time; listed and filtered by target). The Call Scheduler's claim of an overridden
retry runs in-process on that one row."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.client_api import CallCancelResult, CallRetryResult, OperatorActionPage
from scripts.processes import ServiceProcess
from services.call_scheduler.decide import Dispatch
from services.call_scheduler.worker import ScheduleWorker
from services.common import models
from services.common.settings import Settings
from tests.client_api.conftest import OPS_API_KEY, create_debtor


@pytest.fixture(scope="module")
async def ops(api_server: ServiceProcess) -> Any:
    """The same API with the labelled key `ops` (API_KEYS)."""
    async with httpx.AsyncClient(
        base_url=api_server.url, headers={"Authorization": f"Bearer {OPS_API_KEY}"}, timeout=30
    ) as c:
        yield c


async def ended(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    *,
    status: str = "no_answer",
    outcome: str | None = "no_answer",
    answered: bool = False,
    call_metadata: dict[str, str] | None = None,
) -> tuple[dict[str, Any], uuid.UUID]:
    """A debtor and their triggered call, ended as the orchestrator would leave it."""
    debtor = await create_debtor(client)
    resp = await client.post(
        f"/v1/debtors/{debtor['id']}/calls", json={"metadata": call_metadata or {}}
    )
    assert resp.status_code == 202, resp.text
    call_id = uuid.UUID(resp.json()["id"])
    now = datetime.now(UTC)
    async with sessions() as s, s.begin():
        call = await s.get(models.Call, call_id)
        assert call is not None
        call.status, call.outcome = status, outcome
        call.dispatched_at = call.ended_at = now
        call.answered_at = now if answered else None
        row = await s.scalar(
            select(models.ScheduledCall).where(models.ScheduledCall.call_id == call_id)
        )
        assert row is not None
        row.status = "dispatched"
    return debtor, call_id


async def pending_follow_up(
    sessions: async_sessionmaker[AsyncSession], debtor_id: str, call_id: uuid.UUID
) -> uuid.UUID:
    """The automatic retry the Call Scheduler would have scheduled for the call, an hour out."""
    async with sessions() as s, s.begin():
        row = models.ScheduledCall(
            id=uuid.uuid4(),
            debtor_id=uuid.UUID(debtor_id),
            source_call_id=call_id,
            reason="retry",
            not_before=datetime.now(UTC) + timedelta(hours=1),
            attempt=2,
        )
        s.add(row)
    return row.id


async def actions(client: httpx.AsyncClient, **params: Any) -> OperatorActionPage:
    resp = await client.get("/v1/operator-actions", params=params)
    assert resp.status_code == 200, resp.text
    return OperatorActionPage.model_validate(resp.json())


async def test_retry_now_schedules_a_new_attempt_audited_with_the_key_label(
    client: httpx.AsyncClient, ops: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    debtor, call_id = await ended(client, sessions, call_metadata={"case": "c-1"})
    automatic = await pending_follow_up(sessions, debtor["id"], call_id)
    before = datetime.now(UTC)
    resp = await ops.post(f"/v1/calls/{call_id}/retry", json={"reason": "debtor asked by email"})
    after = datetime.now(UTC)
    assert resp.status_code == 202, resp.text
    result = CallRetryResult.model_validate(resp.json())
    assert resp.headers["Location"] == f"/v1/calls/{result.call.id}"
    assert result.retry_of == call_id and result.call.id != call_id
    assert result.call.status.value == "queued" and result.call.attempt == 2
    assert result.call.metadata == {"case": "c-1"}
    assert before - timedelta(seconds=1) <= result.scheduled_for <= after  # rules allow: now
    assert result.overridden == []

    async with sessions() as s:
        row = await s.scalar(
            select(models.ScheduledCall).where(models.ScheduledCall.call_id == result.call.id)
        )
        assert row is not None and row.status == "pending" and row.reason == "retry"
        assert row.not_before == result.scheduled_for and row.override_reason is None
        superseded = await s.get(models.ScheduledCall, automatic)
        assert superseded is not None and superseded.status == "cancelled"
        requested = await s.scalar(
            select(models.OutboxMessage).where(
                models.OutboxMessage.ce_type == "call.requested",
                models.OutboxMessage.payload["call_id"].astext == str(result.call.id),
            )
        )
        assert requested is not None  # wakes the Call Scheduler

    steps = (await client.get(f"/v1/calls/{result.call.id}/events")).json()["data"]
    assert [(e["step"], e["detail"]["schedule_reason"]) for e in steps] == [("scheduled", "retry")]
    assert steps[0]["detail"]["source_call_id"] == str(call_id)

    (audit,) = (await actions(client, target_id=str(call_id))).data
    assert audit.id == result.action_id
    assert (audit.actor, audit.action, audit.target_kind.value) == ("ops", "call.retry", "call")
    assert audit.reason == "debtor asked by email"
    assert audit.details["call_id"] == str(result.call.id)
    assert audit.details["superseded_schedule_ids"] == [str(automatic)]
    assert before - timedelta(seconds=1) <= audit.created_at <= after

    # The new attempt is live: the debtor has a call, so the old one cannot be retried again.
    again = await client.post(f"/v1/calls/{call_id}/retry")
    assert again.status_code == 409 and again.json()["type"] == "urn:problem:call-already-active"
    live = await client.post(f"/v1/calls/{result.call.id}/retry")
    assert live.status_code == 409 and live.json()["type"] == "urn:problem:call-not-ended"


async def test_retry_respects_rules_and_holds_unless_overridden_with_a_reason(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    api_settings: Settings,
) -> None:
    # A conversation just ended (refused): the rules' quiet period puts a retry a week out.
    _, quiet = await ended(client, sessions, status="completed", outcome="refused", answered=True)
    resp = await client.post(f"/v1/calls/{quiet}/retry")
    assert resp.status_code == 202, resp.text
    waited = CallRetryResult.model_validate(resp.json())
    assert waited.scheduled_for >= datetime.now(UTC) + timedelta(days=6, hours=23)
    assert waited.overridden == []
    cancel = await client.post(f"/v1/calls/{waited.call.id}/cancel")  # free the debtor again
    assert cancel.status_code == 200, cancel.text

    missing = await client.post(f"/v1/calls/{quiet}/retry", json={"override": True})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "body.reason"
    blank = await client.post(f"/v1/calls/{quiet}/retry", json={"override": True, "reason": " "})
    assert blank.status_code == 422
    before = datetime.now(UTC)
    resp = await client.post(
        f"/v1/calls/{quiet}/retry",
        json={"override": True, "reason": "debtor called in, asked to be called now"},
    )
    assert resp.status_code == 202, resp.text
    forced = CallRetryResult.model_validate(resp.json())
    assert before - timedelta(seconds=1) <= forced.scheduled_for <= datetime.now(UTC)
    assert len(forced.overridden) == 1 and forced.overridden[0].startswith("calling rules")
    (audit,) = (await actions(client, action="call.retry", target_id=str(quiet))).data[:1]
    assert audit.actor == "default" and audit.details["override"] is True

    # On hold: refused, or placed with override; the scheduler's claim then dispatches it.
    debtor, held = await ended(client, sessions)
    async with sessions() as s, s.begin():
        s.add(
            models.DebtorHold(
                id=uuid.uuid4(),
                debtor_id=uuid.UUID(debtor["id"]),
                kind="dispute",
                reason="the debtor disputes the debt",
            )
        )
    resp = await client.post(f"/v1/calls/{held}/retry")
    assert resp.status_code == 409 and resp.json()["type"] == "urn:problem:debtor-on-hold"
    resp = await client.post(
        f"/v1/calls/{held}/retry", json={"override": True, "reason": "dispute settled by phone"}
    )
    assert resp.status_code == 202, resp.text
    placed = CallRetryResult.model_validate(resp.json())
    assert placed.overridden == ["hold dispute: the debtor disputes the debt"]
    async with sessions() as s:
        await s.begin()
        try:
            row = await s.scalar(
                select(models.ScheduledCall)
                .where(models.ScheduledCall.call_id == placed.call.id)
                .with_for_update()
            )
            assert row is not None and row.override_reason == "dispute settled by phone"
            worker = ScheduleWorker(sessions, api_settings)
            decision = await worker._apply(s, row, datetime.now(UTC))
            assert isinstance(decision, Dispatch)
            call = await s.get(models.Call, placed.call.id)
            assert call is not None and call.status == "dispatched"
        finally:
            await s.rollback()  # no call.dispatch leaves this test: no orchestrator here

    # Rules that refuse outright (no usable time zone): 409 without override.
    debtor, nowhere = await ended(client, sessions)
    async with sessions() as s, s.begin():
        row_d = await s.get(models.Debtor, uuid.UUID(debtor["id"]))
        assert row_d is not None
        row_d.timezone = "Nowhere/Unknown"
    resp = await client.post(f"/v1/calls/{nowhere}/retry")
    assert resp.status_code == 409 and resp.json()["type"] == "urn:problem:call-not-allowed"
    assert (await client.post(f"/v1/calls/{uuid.uuid4()}/retry")).status_code == 404


async def test_retry_is_idempotent_by_key(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _, call_id = await ended(client, sessions)
    key = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    first = await client.post(f"/v1/calls/{call_id}/retry", headers=key)
    assert first.status_code == 202, first.text
    again = await client.post(f"/v1/calls/{call_id}/retry", headers=key)
    assert again.status_code == 202, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = await client.post(
        f"/v1/calls/{call_id}/retry", headers=key, json={"override": True, "reason": "r"}
    )
    assert other.status_code == 409 and other.json()["type"] == "urn:problem:idempotency-key-reused"
    assert len((await actions(client, target_id=str(call_id))).data) == 1


async def test_concurrent_retries_place_one_call(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _, call_id = await ended(client, sessions)
    answers = await asyncio.gather(*(client.post(f"/v1/calls/{call_id}/retry") for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [202, 409, 409, 409], [a.text for a in answers]
    assert {a.json()["type"] for a in answers if a.status_code == 409} == {
        "urn:problem:call-already-active"
    }
    _, keyed = await ended(client, sessions)
    key = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    answers = await asyncio.gather(
        *(client.post(f"/v1/calls/{keyed}/retry", headers=key) for _ in range(4))
    )
    assert [a.status_code for a in answers] == [202] * 4, [a.text for a in answers]
    assert len({a.json()["call"]["id"] for a in answers}) == 1
    assert len((await actions(client, target_id=str(keyed))).data) == 1


async def test_cancel_a_queued_call_or_a_scheduled_follow_up_409_once_dialing(
    client: httpx.AsyncClient, ops: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    debtor = await create_debtor(client)
    resp = await client.post(f"/v1/debtors/{debtor['id']}/calls")
    queued = resp.json()
    resp = await ops.post(f"/v1/calls/{queued['id']}/cancel", json={"reason": "wrong portfolio"})
    assert resp.status_code == 200, resp.text
    result = CallCancelResult.model_validate(resp.json())
    assert result.call.status.value == "canceled"
    assert result.call.failure_reason is not None
    assert "cancelled by an operator (ops): wrong portfolio" in result.call.failure_reason
    assert [c.call_id for c in result.cancelled] == [uuid.UUID(queued["id"])]
    async with sessions() as s:
        row = await s.get(models.ScheduledCall, result.cancelled[0].id)
        assert row is not None and row.status == "cancelled"
        completed = await s.scalar(
            select(models.OutboxMessage).where(
                models.OutboxMessage.ce_type == "call.completed",
                models.OutboxMessage.payload["call"]["id"].astext == queued["id"],
            )
        )
        assert completed is not None and completed.ce_source == "/client-api"
    steps = (await client.get(f"/v1/calls/{queued['id']}/events")).json()["data"]
    assert (steps[-1]["step"], steps[-1]["reason"]) == ("ended", "operator_canceled")
    (audit,) = (await actions(client, target_kind="call", target_id=queued["id"])).data
    assert (audit.actor, audit.action, audit.reason) == ("ops", "call.cancel", "wrong portfolio")
    assert audit.details["previous_status"] == "queued"
    # Ended now, with nothing scheduled: nothing to cancel.
    resp = await client.post(f"/v1/calls/{queued['id']}/cancel")
    assert resp.status_code == 409 and resp.json()["type"] == "urn:problem:nothing-to-cancel"

    # An ended call's pending automatic retry is what gets cancelled.
    debtor2, ended_id = await ended(client, sessions)
    follow_up = await pending_follow_up(sessions, debtor2["id"], ended_id)
    resp = await client.post(f"/v1/calls/{ended_id}/cancel")
    assert resp.status_code == 200, resp.text
    result = CallCancelResult.model_validate(resp.json())
    assert result.call.status.value == "no_answer"  # unchanged
    assert [c.id for c in result.cancelled] == [follow_up]

    # Dialing: too late, it finishes normally.
    debtor3 = await create_debtor(client)
    dialing = (await client.post(f"/v1/debtors/{debtor3['id']}/calls")).json()
    async with sessions() as s, s.begin():
        call = await s.get(models.Call, uuid.UUID(dialing["id"]))
        assert call is not None
        call.status = "dialing"
    resp = await client.post(f"/v1/calls/{dialing['id']}/cancel", json={"reason": "stop"})
    assert resp.status_code == 409 and resp.json()["type"] == "urn:problem:call-already-placed"
    assert (await actions(client, target_id=dialing["id"])).data == []
    assert (await client.post(f"/v1/calls/{uuid.uuid4()}/cancel")).status_code == 404
    async with sessions() as s, s.begin():  # leave the debtor without a live call
        call = await s.get(models.Call, uuid.UUID(dialing["id"]))
        assert call is not None
        call.status, call.ended_at = "failed", datetime.now(UTC)


async def test_hold_lift_is_audited_and_the_audit_pages_by_target(
    client: httpx.AsyncClient, ops: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    debtor = await create_debtor(client)
    async with sessions() as s, s.begin():
        hold = models.DebtorHold(
            id=uuid.uuid4(),
            debtor_id=uuid.UUID(debtor["id"]),
            kind="opt_out",
            reason="the debtor asked not to be called again",
        )
        s.add(hold)
    resp = await ops.post(
        f"/v1/debtors/{debtor['id']}/holds/{hold.id}/lift",
        json={"reason": "debtor revoked the opt-out in writing"},
    )
    assert resp.status_code == 200, resp.text
    (audit,) = (await actions(client, target_kind="hold", target_id=str(hold.id))).data
    assert (audit.actor, audit.action) == ("ops", "hold.lift")
    assert audit.reason == "debtor revoked the opt-out in writing"
    assert audit.details == {"debtor_id": debtor["id"], "kind": "opt_out"}
    again = await ops.post(
        f"/v1/debtors/{debtor['id']}/holds/{hold.id}/lift", json={"reason": "twice"}
    )
    assert again.status_code == 409  # and not audited
    assert len((await actions(client, target_id=str(hold.id))).data) == 1

    # Pages by the label's actions, newest first, with a cursor bound to the filters (a second
    # action of its own: the test may run before every other one that acts as "ops").
    other = await create_debtor(client)
    async with sessions() as s, s.begin():
        hold2 = models.DebtorHold(
            id=uuid.uuid4(), debtor_id=uuid.UUID(other["id"]), kind="dispute", reason="disputed"
        )
        s.add(hold2)
    lifted = await ops.post(
        f"/v1/debtors/{other['id']}/holds/{hold2.id}/lift", json={"reason": "dispute resolved"}
    )
    assert lifted.status_code == 200, lifted.text
    first = await actions(ops, actor="ops", limit=1)
    assert len(first.data) == 1 and first.next_cursor is not None
    second = await actions(ops, actor="ops", limit=1, cursor=first.next_cursor)
    assert second.data and second.data[0].created_at <= first.data[0].created_at
    assert second.data[0].id != first.data[0].id
    foreign = await client.get(
        "/v1/operator-actions", params={"actor": "default", "cursor": first.next_cursor}
    )
    assert foreign.status_code == 400
    bad = await client.get("/v1/operator-actions", params={"target_kind": "planet"})
    assert bad.status_code == 422
    unknown_key = await client.get(
        "/v1/operator-actions", headers={"Authorization": "Bearer not-a-key"}
    )
    assert unknown_key.status_code == 401
