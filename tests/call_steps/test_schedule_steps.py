"""The steps the Client API and the Call Scheduler record, read through
`GET /v1/calls/{call_id}/events`: a trigger's `scheduled`, the worker's `dispatched`,
`rescheduled`, `skipped` (with its reason) and the `ended` of a call it never placed, a
follow-up's `scheduled` when its call is created. The worker runs in-process on the shared
stack (as tests/scheduler does)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.call_scheduler.worker import ScheduleWorker
from services.common.models import Call, DebtorHold, ScheduledCall
from services.common.settings import Settings
from tests.call_steps.steps_support import all_events, api_client, steps
from tests.scheduler.schedule_support import (
    ended_call,
    new_debtor,
    queued_trigger,
    retire,
    scheduler_settings,
    zone_at_night,
)


@pytest.fixture
def cfg(settings: Settings) -> Settings:
    return scheduler_settings(settings, scheduler_batch_size=50)


@pytest.fixture
async def client(cfg: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(cfg) as c:
        yield c


async def trigger(client: httpx.AsyncClient, debtor_id: uuid.UUID) -> dict[str, Any]:
    resp = await client.post(f"/v1/debtors/{debtor_id}/calls", json={"metadata": {"t": "steps"}})
    assert resp.status_code == 202, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_trigger_then_dispatch(
    cfg: Settings, sessions: async_sessionmaker[AsyncSession], client: httpx.AsyncClient
) -> None:
    debtor = await new_debtor(sessions, name="Steps Dispatch")
    call = await trigger(client, debtor.id)
    (scheduled,) = await all_events(client, call["id"])
    assert scheduled["step"] == "scheduled" and scheduled["reason"] is None
    assert scheduled["detail"]["schedule_reason"] == "manual"
    assert scheduled["detail"]["attempt"] == 1
    assert datetime.fromisoformat(scheduled["detail"]["not_before"]) <= datetime.now(UTC)

    await ScheduleWorker(sessions, cfg).run_due()
    await retire(sessions, [uuid.UUID(call["id"])])
    events = await all_events(client, call["id"])
    assert steps(events) == ["scheduled", "dispatched"]
    assert events[1]["detail"] == {"attempt": 1} and events[1]["call_id"] == call["id"]
    assert events[0]["at"] <= events[1]["at"] and events[0]["sequence"] < events[1]["sequence"]


async def test_hold_at_claim_time_skips_and_ends_with_the_reason(
    cfg: Settings, sessions: async_sessionmaker[AsyncSession], client: httpx.AsyncClient
) -> None:
    debtor = await new_debtor(sessions, name="Steps Hold")
    call = await trigger(client, debtor.id)
    async with sessions() as s, s.begin():
        s.add(DebtorHold(debtor_id=debtor.id, kind="dispute", reason="placed by the test"))
    await ScheduleWorker(sessions, cfg).run_due()
    events = await all_events(client, call["id"])
    assert steps(events) == ["scheduled", "skipped", "ended"]
    skipped, ended = events[1], events[2]
    assert skipped["reason"] == ended["reason"] == "debtor_on_hold"
    assert skipped["detail"] == {"message": "debtor on hold: dispute"}
    assert ended["detail"]["status"] == "canceled" and ended["detail"]["outcome"] is None


async def test_outside_the_window_is_rescheduled(
    cfg: Settings, sessions: async_sessionmaker[AsyncSession], client: httpx.AsyncClient
) -> None:
    now = datetime.now(UTC) + timedelta(seconds=1)
    debtor = await new_debtor(sessions, name="Steps Night", timezone=zone_at_night(now))
    call, _ = await queued_trigger(sessions, debtor, not_before=now - timedelta(seconds=1))
    await ScheduleWorker(sessions, scheduler_settings(cfg, **_WINDOW)).run_due(now)
    (rescheduled,) = await all_events(client, call.id)
    assert rescheduled["step"] == "rescheduled" and rescheduled["reason"] is None
    assert datetime.fromisoformat(rescheduled["detail"]["not_before"]) > now


_WINDOW = {"call_window_start": "08:00", "call_window_end": "21:00"}


async def test_follow_up_call_gets_its_scheduled_step_when_created(
    cfg: Settings, sessions: async_sessionmaker[AsyncSession], client: httpx.AsyncClient
) -> None:
    debtor = await new_debtor(sessions, name="Steps Retry")
    busy = await ended_call(sessions, debtor, status="busy", outcome="no_answer")
    planned = datetime.now(UTC) - timedelta(minutes=5)
    async with sessions() as s, s.begin():
        row = ScheduledCall(
            debtor_id=debtor.id,
            source_call_id=busy.id,
            reason="retry",
            attempt=2,
            not_before=planned,
            created_at=planned,
        )
        s.add(row)
    await ScheduleWorker(sessions, cfg).run_due()
    async with sessions() as s:
        call_id = await s.scalar(select(ScheduledCall.call_id).where(ScheduledCall.id == row.id))
        assert call_id is not None
        assert (await s.get(Call, call_id)) is not None
    await retire(sessions, [call_id])
    events = await all_events(client, call_id)
    assert steps(events) == ["scheduled", "dispatched"]
    assert events[0]["detail"] == {
        "schedule_reason": "retry",
        "not_before": planned.isoformat().replace("+00:00", "Z"),
        "attempt": 2,
        "source_call_id": str(busy.id),
    }
    assert datetime.fromisoformat(events[0]["at"]) == planned
    assert events[1]["detail"] == {"attempt": 2}


async def test_unknown_call_is_404_and_foreign_cursor_400(
    sessions: async_sessionmaker[AsyncSession], client: httpx.AsyncClient
) -> None:
    resp = await client.get(f"/v1/calls/{uuid.uuid4()}/events")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
    debtor = await new_debtor(sessions, name="Steps Cursor")
    call, _ = await queued_trigger(sessions, debtor)
    other = base64.urlsafe_b64encode(
        json.dumps(
            {"k": "call_events", "c": str(uuid.uuid4()), "t": "2026-01-01T00:00:00Z", "s": 1}
        ).encode()
    ).decode()
    for bad in (other, "not-a-cursor", "e30"):
        resp = await client.get(f"/v1/calls/{call.id}/events", params={"cursor": bad})
        assert resp.status_code == 400, bad
        assert resp.json()["type"] == "urn:problem:invalid-cursor"
    empty = await client.get(f"/v1/calls/{call.id}/events")
    assert empty.json() == {"data": [], "next_cursor": None}
