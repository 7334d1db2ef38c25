"""A call left `queued` with nothing scheduled (its request lost): rescheduled by the tick, or
failed with a reason once too old; a call waiting for its window is not stuck."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.call_scheduler.stuck import Fail, Requeue, queued_verdict
from services.call_scheduler.worker import ScheduleWorker
from services.common.models import Call, OutboxMessage, ScheduledCall
from services.common.settings import Settings
from tests.scheduler.schedule_support import new_debtor, queued_trigger, retire, scheduler_settings

DEADLINE, MAX_AGE = timedelta(seconds=120), timedelta(seconds=900)


def test_queued_verdict() -> None:
    assert queued_verdict(timedelta(seconds=30), None, DEADLINE, MAX_AGE) is None
    assert queued_verdict(timedelta(seconds=200), None, DEADLINE, MAX_AGE) == Requeue()
    assert isinstance(queued_verdict(timedelta(seconds=1000), None, DEADLINE, MAX_AGE), Fail)
    # Waiting for its time (the window, a backoff) is not stuck, however long.
    assert queued_verdict(timedelta(days=2), "pending", DEADLINE, MAX_AGE) is None
    # Its schedule row ended but the call did not: never dial on that.
    assert isinstance(queued_verdict(timedelta(seconds=200), "skipped", DEADLINE, MAX_AGE), Fail)


async def _lost_request(sessions: async_sessionmaker[AsyncSession], age: timedelta) -> Call:
    """A queued call without a schedule row (its request never reached the scheduler)."""
    debtor = await new_debtor(sessions)
    async with sessions() as s, s.begin():
        call = Call(
            id=uuid.uuid4(),
            debtor_id=debtor.id,
            stage=debtor.stage,
            status="queued",
            created_at=datetime.now(UTC) - age,
        )
        s.add(call)
    return call


async def test_tick_reschedules_or_fails_calls_queued_past_the_deadline(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cfg = scheduler_settings(
        settings, call_queued_deadline_seconds=120, call_queued_max_age_seconds=900
    )
    young = await _lost_request(sessions, timedelta(seconds=10))
    lost = await _lost_request(sessions, timedelta(seconds=300))
    too_old = await _lost_request(sessions, timedelta(seconds=1200))
    waiting_debtor = await new_debtor(sessions)
    waiting, _ = await queued_trigger(
        sessions, waiting_debtor, not_before=datetime.now(UTC) + timedelta(hours=5)
    )
    async with sessions() as s, s.begin():  # waiting for its window since long ago
        row = await s.get(Call, waiting.id)
        assert row is not None
        row.created_at = datetime.now(UTC) - timedelta(hours=3)

    worker = ScheduleWorker(sessions, cfg)
    # Other tests' rows are in the same database: repeat until this test's calls are handled.
    for _ in range(50):
        requeued, failed = await worker.reconcile_queued()
        if not (requeued or failed):
            break
    await worker.run_due()

    async with sessions() as s:
        calls = {
            c.id: c
            for c in (
                await s.scalars(
                    select(Call).where(Call.id.in_([young.id, lost.id, too_old.id, waiting.id]))
                )
            ).all()
        }
        rows = {
            r.call_id: r
            for r in (
                await s.scalars(select(ScheduledCall).where(ScheduledCall.call_id.in_(calls)))
            ).all()
        }
        completed_rows = (
            await s.execute(
                select(OutboxMessage.payload, OutboxMessage.ce_source).where(
                    OutboxMessage.ce_type == "call.completed"
                )
            )
        ).all()
        completed = [payload["call"]["id"] for payload, _ in completed_rows]
        # The scheduler ended it, and the event says so (not the orchestrator).
        sources = {payload["call"]["id"]: source for payload, source in completed_rows}
    assert calls[young.id].status == "queued" and young.id not in rows  # not yet past it
    assert calls[lost.id].status == "dispatched" and rows[lost.id].status == "dispatched"
    failed_call = calls[too_old.id]
    assert failed_call.status == "failed" and failed_call.outcome == "failed"
    assert failed_call.failure_reason is not None
    assert failed_call.failure_reason.startswith("not placed: its request was lost")
    assert completed.count(str(too_old.id)) == 1 and str(lost.id) not in completed
    assert sources[str(too_old.id)] == "/call-scheduler"
    assert calls[waiting.id].status == "queued" and rows[waiting.id].status == "pending"
    await retire(sessions, [lost.id])
