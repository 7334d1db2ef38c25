"""The schedule worker on real PostgreSQL: claims with SKIP LOCKED, re-checks holds and the
calling rules at claim time, dispatches through the outbox exactly once per row."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.call_scheduler.worker import ScheduleWorker
from services.common.db import create_engine, session_factory
from services.common.models import Call, DebtorHold, OutboxMessage, ScheduledCall
from services.common.settings import Settings
from tests.scheduler.schedule_support import (
    dispatch_ids,
    ended_call,
    new_debtor,
    queued_trigger,
    retire,
    scheduler_settings,
    zone_at_night,
)


async def test_two_instances_dispatch_each_due_row_exactly_once(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Two workers, each with its own connection pool (as two scheduler processes), race over
    the same due rows: manual triggers (a queued call each) and retries (their call is created
    at dispatch)."""
    cfg = scheduler_settings(settings, scheduler_batch_size=3)
    call_ids, row_ids = [], []
    for i in range(30):
        debtor = await new_debtor(sessions, name=f"Race {i}")
        call, row = await queued_trigger(sessions, debtor)
        call_ids.append(call.id)
        row_ids.append(row.id)
    for i in range(15):
        debtor = await new_debtor(sessions, name=f"Race retry {i}")
        busy = await ended_call(sessions, debtor, status="busy", outcome="no_answer")
        async with sessions() as s, s.begin():
            row = ScheduledCall(
                debtor_id=debtor.id,
                source_call_id=busy.id,
                reason="retry",
                attempt=2,
                not_before=datetime.now(UTC) - timedelta(seconds=1),
            )
            s.add(row)
        row_ids.append(row.id)

    engines = [create_engine(cfg), create_engine(cfg)]
    workers = [ScheduleWorker(session_factory(e), cfg) for e in engines]
    try:
        stats = await asyncio.gather(*(w.run_due() for w in workers))
        again = await asyncio.gather(*(w.run_due() for w in workers))  # restart: nothing left
    finally:
        for e in engines:
            await e.dispose()

    async with sessions() as s:
        rows = (await s.scalars(select(ScheduledCall).where(ScheduledCall.id.in_(row_ids)))).all()
        assert {r.status for r in rows} == {"dispatched"}
        placed = [r.call_id for r in rows]
        assert None not in placed and len(set(placed)) == len(row_ids)
        dispatched = await dispatch_ids(s, placed)
        calls = (await s.scalars(select(Call).where(Call.id.in_(placed)))).all()
    assert sorted(dispatched) == sorted(str(c) for c in placed)  # one per row, none twice
    assert sum(st.dispatched for st in stats) == len(row_ids)
    assert all(st.decided == 0 for st in again)
    assert {c.status for c in calls} == {"dispatched"}
    retries = [c for c in calls if c.id not in set(call_ids)]
    assert len(retries) == 15 and {c.attempt for c in retries} == {2}
    assert {c.metadata_["case"] for c in retries} == {"sched-test"}  # the client's metadata
    await retire(sessions, placed)


async def test_outside_the_window_the_row_waits_for_it(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now(UTC)
    zone = zone_at_night(now)
    cfg = scheduler_settings(settings, call_window_start="08:00", call_window_end="21:00")
    debtor = await new_debtor(sessions, timezone=zone)
    call, row = await queued_trigger(sessions, debtor, not_before=now - timedelta(seconds=1))
    stats = await ScheduleWorker(sessions, cfg).run_due(now)
    assert stats.rescheduled >= 1
    async with sessions() as s:
        got = await s.get(ScheduledCall, row.id)
        placed = await s.get(Call, call.id)
        assert got is not None and placed is not None
        assert got.status == "pending" and placed.status == "queued"
        local = got.not_before.astimezone(ZoneInfo(zone))
        assert (local.hour, local.minute) == (8, 0) and got.not_before > now
        assert await dispatch_ids(s, [call.id]) == []
    # At the window's opening it is placed.
    await ScheduleWorker(sessions, cfg).run_due(got.not_before)
    async with sessions() as s:
        placed = await s.get(Call, call.id)
        assert placed is not None and placed.status == "dispatched"
        assert await dispatch_ids(s, [call.id]) == [str(call.id)]
    await retire(sessions, [call.id])


async def test_a_hold_at_claim_time_skips_the_row_and_cancels_its_call(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cfg = scheduler_settings(settings)
    debtor = await new_debtor(sessions)
    call, row = await queued_trigger(sessions, debtor)
    async with sessions() as s, s.begin():
        s.add(DebtorHold(debtor_id=debtor.id, kind="dispute", reason="disputes the debt"))
    await ScheduleWorker(sessions, cfg).run_due()
    async with sessions() as s:
        got = await s.get(ScheduledCall, row.id)
        ended = await s.get(Call, call.id)
        assert got is not None and ended is not None
        assert got.status == "skipped" and got.skip_reason == "debtor on hold: dispute"
        assert ended.status == "canceled" and ended.ended_at is not None
        assert ended.failure_reason == "not placed: debtor on hold: dispute"
        assert await dispatch_ids(s, [call.id]) == []
        completed = await s.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.ce_type == "call.completed")
        )
        mine = [p for p in completed if p["call"]["id"] == str(call.id)]
        assert len(mine) == 1 and mine[0]["call"]["status"] == "canceled"


async def test_a_retry_overtaken_by_another_call_is_skipped(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cfg = scheduler_settings(settings)
    debtor = await new_debtor(sessions)
    busy = await ended_call(sessions, debtor, status="busy", outcome="no_answer")
    async with sessions() as s, s.begin():
        retry = ScheduledCall(
            debtor_id=debtor.id,
            source_call_id=busy.id,
            reason="retry",
            attempt=2,
            not_before=datetime.now(UTC) + timedelta(hours=1),
        )
        s.add(retry)
    manual, _ = await queued_trigger(
        sessions, debtor, not_before=datetime.now(UTC) + timedelta(hours=2)
    )
    await ScheduleWorker(sessions, cfg).run_due(datetime.now(UTC) + timedelta(hours=1, seconds=1))
    async with sessions() as s:
        got = await s.get(ScheduledCall, retry.id)
        assert got is not None and got.status == "skipped" and got.call_id is None
        assert got.skip_reason is not None and got.skip_reason.startswith("superseded")
        still = await s.get(Call, manual.id)
        assert still is not None and still.status == "queued"  # the operator's call is untouched
