"""The Call Scheduler's campaign pass on real PostgreSQL: pacing holds with two scheduler
instances racing, items follow their calls through the real worker, cancel stops every item
not yet dialed, and completion emits `campaign.completed` once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.campaign_completed_event import CampaignCompletedEvent
from services.call_scheduler.campaigns import campaign_pass, completed_event_id
from services.call_scheduler.worker import ScheduleWorker
from services.client_api.webhooks.events import spec_of
from services.common.db import create_engine, session_factory
from services.common.models import LIVE_CALL_STATUSES, Call, DebtorHold, ScheduledCall
from services.common.models.call_steps import CallStepEvent
from services.common.settings import Settings
from tests.campaigns.campaign_support import (
    act,
    assign,
    calls_of,
    create_campaign,
    items_of,
    new_debtors,
    outbox_of_type,
)

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(scope="module")
async def two_instances(api_settings: Settings) -> AsyncIterator[tuple[Sessions, Sessions]]:
    """Two scheduler instances: each its own connection pool, as two processes have."""
    engines = [create_engine(api_settings), create_engine(api_settings)]
    yield session_factory(engines[0]), session_factory(engines[1])
    for e in engines:
        await e.dispose()


async def running_campaign(
    api: httpx.AsyncClient, sessions: Sessions, n: int, concurrent: int, per_minute: int
) -> str:
    campaign = await create_campaign(
        api, pacing={"max_concurrent_calls": concurrent, "calls_per_minute": per_minute}
    )
    await assign(api, campaign["id"], await new_debtors(sessions, n))
    resp = await act(api, campaign["id"], "start")
    assert resp.status_code == 200, resp.text
    return str(campaign["id"])


async def race(instances: tuple[Sessions, Sessions], settings: Settings, now: datetime) -> None:
    await asyncio.gather(*(campaign_pass(s, settings, now) for s in instances))


def live(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.status in LIVE_CALL_STATUSES]


async def end_calls(sessions: Sessions, calls: list[Call], status: str, outcome: str) -> None:
    """What the orchestrator does when a placed call ends."""
    now = datetime.now(UTC)
    async with sessions() as s, s.begin():
        await s.execute(
            update(Call)
            .where(Call.id.in_([c.id for c in calls]))
            .values(status=status, outcome=outcome, dispatched_at=now, ended_at=now)
        )


async def test_two_instances_never_exceed_max_concurrent_calls(
    api: httpx.AsyncClient,
    sessions: Sessions,
    api_settings: Settings,
    two_instances: tuple[Sessions, Sessions],
) -> None:
    cid = await running_campaign(api, sessions, n=9, concurrent=3, per_minute=1000)
    now = datetime.now(UTC)
    for _ in range(3):  # passes racing again release nothing more
        await race(two_instances, api_settings, now)
        calls = await calls_of(sessions, cid)
        assert len(calls) == 3 and len(live(calls)) == 3
    items = await items_of(sessions, cid)
    released = [i for i in items if i.status == "scheduled"]
    assert len(released) == 3
    async with sessions() as s:
        rows = (
            await s.scalars(
                select(ScheduledCall).where(
                    ScheduledCall.id.in_([i.scheduled_call_id for i in released])
                )
            )
        ).all()
    assert {(r.reason, r.status, r.call_id in {i.call_id for i in released}) for r in rows} == {
        ("campaign", "pending", True)
    }
    async with sessions() as s:
        steps = (
            await s.scalars(
                select(CallStepEvent).where(CallStepEvent.call_id.in_([c.id for c in calls]))
            )
        ).all()
    assert (
        sorted((st.step, st.detail["schedule_reason"]) for st in steps)
        == [("scheduled", "campaign")] * 3
    )

    # Two calls end: the next passes let exactly two more go, never more than 3 live.
    await end_calls(sessions, live(calls)[:2], "completed", "refused")
    for _ in range(3):
        await race(two_instances, api_settings, now + timedelta(seconds=1))
        calls = await calls_of(sessions, cid)
        assert len(live(calls)) <= 3
    assert len(calls) == 5 and len(live(calls)) == 3
    statuses = sorted(i.status for i in await items_of(sessions, cid))
    assert statuses == ["done"] * 2 + ["pending"] * 4 + ["scheduled"] * 3


async def test_two_instances_never_exceed_calls_per_minute(
    api: httpx.AsyncClient,
    sessions: Sessions,
    api_settings: Settings,
    two_instances: tuple[Sessions, Sessions],
) -> None:
    cid = await running_campaign(api, sessions, n=10, concurrent=100, per_minute=4)
    t0 = datetime.now(UTC)
    released_by: dict[int, int] = {}
    for offset in (0, 0, 20, 59, 61, 61, 90, 122):
        at = t0 + timedelta(seconds=offset)
        await race(two_instances, api_settings, at)
        items = await items_of(sessions, cid)
        times = [i.released_at for i in items if i.released_at is not None]
        # Never more than 4 released in any 60 seconds.
        for t in times:
            assert sum(1 for u in times if t <= u < t + timedelta(seconds=60)) <= 4
        released_by[offset] = len(times)
    assert released_by == {0: 4, 20: 4, 59: 4, 61: 8, 90: 8, 122: 10}


async def test_items_follow_their_calls_through_the_worker_and_completion_is_emitted_once(
    api: httpx.AsyncClient,
    sessions: Sessions,
    api_settings: Settings,
    two_instances: tuple[Sessions, Sessions],
) -> None:
    cid = await running_campaign(api, sessions, n=3, concurrent=3, per_minute=100)
    held = (await items_of(sessions, cid))[2].debtor_id
    async with sessions() as s, s.begin():
        s.add(DebtorHold(debtor_id=held, kind="opt_out", reason="asked on an earlier call"))
    worker = ScheduleWorker(sessions, api_settings)
    await worker.run_campaigns()
    await worker.run_due()  # the worker places them: holds, window and caps apply
    await worker.run_campaigns()
    items = {i.debtor_id: i for i in await items_of(sessions, cid)}
    assert items[held].status == "skipped"
    assert items[held].detail is not None and "opt_out" in items[held].detail
    placed = [i for d, i in items.items() if d != held]
    assert {(i.status, i.call_status) for i in placed} == {("in_progress", "dispatched")}
    assert (await api.get(f"/v1/campaigns/{cid}")).json()["status"] == "running"

    calls = [c for c in await calls_of(sessions, cid) if c.status == "dispatched"]
    await end_calls(sessions, calls, "completed", "promise_to_pay")
    for _ in range(2):
        await race(two_instances, api_settings, datetime.now(UTC))
    await worker.run_campaigns()

    campaign = (await api.get(f"/v1/campaigns/{cid}")).json()
    assert campaign["status"] == "completed" and campaign["ended_at"]
    assert campaign["items"] | {"total": 3} == {
        "total": 3, "pending": 0, "scheduled": 0, "in_progress": 0,
        "done": 2, "skipped": 1, "cancelled": 0,
    }  # fmt: skip
    page = (await api.get(f"/v1/campaigns/{cid}/items", params={"status": "done"})).json()
    assert {i["outcome"] for i in page["data"]} == {"promise_to_pay"}
    events = [
        m
        for m in await outbox_of_type(sessions, "campaign.completed")
        if m.payload["campaign"]["id"] == cid
    ]
    assert len(events) == 1
    event = events[0]
    assert event.ce_id == completed_event_id(uuid.UUID(cid))
    assert event.topic == api_settings.pubsub_topic_call_events
    assert event.payload["campaign"]["status"] == "completed"
    assert event.payload["campaign"]["items"]["done"] == 2
    # The webhook body the Client API will send for it validates against the spec's model.
    spec = spec_of("campaign.completed")
    assert spec is not None
    body = spec.body(event.ce_id, event.ce_time, event.payload)
    assert isinstance(body, CampaignCompletedEvent)


async def test_cancel_stops_every_item_not_yet_dialed(
    api: httpx.AsyncClient, sessions: Sessions, api_settings: Settings
) -> None:
    cid = await running_campaign(api, sessions, n=5, concurrent=2, per_minute=100)
    worker = ScheduleWorker(sessions, api_settings)
    await worker.run_campaigns()
    released = [i for i in await items_of(sessions, cid) if i.status == "scheduled"]
    assert len(released) == 2
    waiting, dialed = released
    async with sessions() as s, s.begin():  # one waits for its time (e.g. the calling window)
        await s.execute(
            update(ScheduledCall)
            .where(ScheduledCall.id == waiting.scheduled_call_id)
            .values(not_before=datetime.now(UTC) + timedelta(hours=1))
        )
    await worker.run_due()
    await worker.run_campaigns()

    resp = await act(api, cid, "cancel", reason="client stopped the campaign")
    assert resp.status_code == 200, resp.text
    # At once: everything not dialed is cancelled, the dialed one goes on.
    assert resp.json()["items"] | {"total": 5} == {
        "total": 5, "pending": 0, "scheduled": 0, "in_progress": 1,
        "done": 0, "skipped": 0, "cancelled": 4,
    }  # fmt: skip
    async with sessions() as s:
        row = await s.get(ScheduledCall, waiting.scheduled_call_id)
        assert row is not None and row.status == "cancelled"
    await worker.run_due(datetime.now(UTC) + timedelta(hours=2))  # nothing left to dial
    await worker.run_campaigns()
    calls = {c.id: c for c in await calls_of(sessions, cid)}
    assert len(calls) == 2
    assert calls[waiting.call_id].status == "canceled"  # type: ignore[index]
    assert calls[dialed.call_id].status == "dispatched"  # type: ignore[index]
    completed = [
        m
        for m in await outbox_of_type(sessions, "call.completed")
        if m.payload["call"]["id"] == str(waiting.call_id)
    ]
    assert len(completed) == 1
    # Its steps (docs/call-events.md): released into the schedule, ended by the cancel.
    events = (await api.get(f"/v1/calls/{waiting.call_id}/events")).json()["data"]
    assert [(e["step"], e["reason"]) for e in events] == [
        ("scheduled", None),
        ("ended", "campaign_canceled"),
    ]
    assert events[0]["detail"]["schedule_reason"] == "campaign"
    dialed_steps = (await api.get(f"/v1/calls/{dialed.call_id}/events")).json()["data"]
    assert [e["step"] for e in dialed_steps] == ["scheduled", "dispatched"]

    # The live call finishes normally and its item shows it; the campaign stays cancelled.
    await end_calls(sessions, [calls[dialed.call_id]], "no_answer", "no_answer")  # type: ignore[index]
    await worker.run_campaigns()
    items = {i.id: i for i in await items_of(sessions, cid)}
    assert (items[dialed.id].status, items[dialed.id].outcome) == ("done", "no_answer")
    assert items[waiting.id].call_status == "canceled"
    final = (await api.get(f"/v1/campaigns/{cid}")).json()
    assert final["status"] == "cancelled"
    assert not [
        m
        for m in await outbox_of_type(sessions, "campaign.completed")
        if m.payload["campaign"]["id"] == cid
    ]


async def test_paused_campaign_releases_nothing(
    api: httpx.AsyncClient, sessions: Sessions, api_settings: Settings
) -> None:
    cid = await running_campaign(api, sessions, n=2, concurrent=5, per_minute=100)
    assert (await act(api, cid, "pause")).status_code == 200
    await campaign_pass(sessions, api_settings, datetime.now(UTC))
    assert {i.status for i in await items_of(sessions, cid)} == {"pending"}
    assert (await act(api, cid, "resume")).status_code == 200
    await campaign_pass(sessions, api_settings, datetime.now(UTC))
    assert {i.status for i in await items_of(sessions, cid)} == {"scheduled"}


async def test_a_debtor_with_another_live_call_is_skipped(
    api: httpx.AsyncClient, sessions: Sessions, api_settings: Settings
) -> None:
    cid = await running_campaign(api, sessions, n=1, concurrent=5, per_minute=100)
    debtor = (await items_of(sessions, cid))[0].debtor_id
    async with sessions() as s, s.begin():
        s.add(Call(debtor_id=debtor, stage="early", status="in_progress"))
    try:
        await campaign_pass(sessions, api_settings, datetime.now(UTC))
        (item,) = await items_of(sessions, cid)
        assert item.status == "skipped" and item.call_id is None
        assert item.detail == "the debtor has another call queued or in progress"
    finally:
        async with sessions() as s, s.begin():
            await s.execute(
                update(Call)
                .where(Call.debtor_id == debtor, Call.status == "in_progress")
                .values(status="canceled")
            )


async def test_a_live_retry_of_a_campaign_call_takes_its_room(
    api: httpx.AsyncClient, sessions: Sessions, api_settings: Settings
) -> None:
    cid = await running_campaign(api, sessions, n=3, concurrent=2, per_minute=100)
    await campaign_pass(sessions, api_settings, datetime.now(UTC))
    first, _second = live(await calls_of(sessions, cid))
    await end_calls(sessions, [first], "busy", "no_answer")
    # The follow-up the scheduler schedules for a busy call, placed: its own call, dialing.
    async with sessions() as s, s.begin():
        retry = Call(debtor_id=first.debtor_id, stage="early", status="dialing", attempt=2)
        s.add(retry)
        await s.flush()
        s.add(
            ScheduledCall(
                debtor_id=first.debtor_id,
                call_id=retry.id,
                source_call_id=first.id,
                reason="retry",
                attempt=2,
                status="dispatched",
                not_before=datetime.now(UTC),
            )
        )
    await campaign_pass(sessions, api_settings, datetime.now(UTC))
    statuses = sorted(i.status for i in await items_of(sessions, cid))
    assert statuses == ["done", "pending", "scheduled"]  # the retry and the second call are live
    await end_calls(sessions, [retry], "completed", "refused")
    await campaign_pass(sessions, api_settings, datetime.now(UTC))
    statuses = sorted(i.status for i in await items_of(sessions, cid))
    assert statuses == ["done", "scheduled", "scheduled"]
