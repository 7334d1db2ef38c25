"""A payment plan's installments are promises of their own (real PostgreSQL): each has its
`promise.created`, is judged on its own due date (`promise.kept` / `promise.broken` per row), and
a broken installment of a campaign call gets its own follow-up call, unless a follow-up that
covers it is already waiting (then the debtor is called once about both)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.call_scheduler.worker import ScheduleWorker
from services.common.call_events import publish_completed
from services.common.models import Call, PaymentPromise, ScheduledCall
from services.common.models.campaigns import Campaign, CampaignItem
from services.common.settings import Settings
from tests.promises.promise_support import promise_events
from tests.scheduler.schedule_support import new_debtor, retire, scheduler_settings

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
GRACE = 3


async def _plan_call(
    sessions: async_sessionmaker[AsyncSession],
    installments: list[tuple[int, date]],
    *,
    campaign: bool = True,
) -> tuple[Call, list[PaymentPromise]]:
    """A campaign item's completed call with a plan on it, as the orchestrator stores it (one
    promise row per installment), ended with its `call.completed` and `promise.created`s."""
    debtor = await new_debtor(sessions, stage="late")
    async with sessions() as s, s.begin():
        call = Call(
            id=uuid.uuid4(),
            debtor_id=debtor.id,
            stage="late",
            status="completed",
            outcome="promise_to_pay",
            ended_at=NOW - timedelta(days=60),
        )
        s.add(call)
        await s.flush()
        rows = [
            PaymentPromise(
                call_id=call.id,
                amount_minor=amount,
                currency="USD",
                due_date=due,
                installment=n,
                installments=len(installments),
            )
            for n, (amount, due) in enumerate(installments, start=1)
        ]
        s.add_all(rows)
        if campaign:
            c = Campaign(
                name="plan follow-up test",
                status="running",
                stage="late",
                max_concurrent_calls=1,
                calls_per_minute=1,
                follow_up_broken_promises=True,
            )
            s.add(c)
            await s.flush()
            s.add(
                CampaignItem(campaign_id=c.id, debtor_id=debtor.id, status="done", call_id=call.id)
            )
        await publish_completed(s, scheduler_settings(Settings()), call.id, "/voice-orchestrator")
    return call, rows


async def _follow_ups(
    sessions: async_sessionmaker[AsyncSession], debtor_id: uuid.UUID
) -> list[ScheduledCall]:
    async with sessions() as s:
        return list(
            (
                await s.scalars(
                    select(ScheduledCall)
                    .where(ScheduledCall.debtor_id == debtor_id)
                    .order_by(ScheduledCall.created_at)
                )
            ).all()
        )


async def _statuses(
    sessions: async_sessionmaker[AsyncSession], rows: list[PaymentPromise]
) -> list[str]:
    async with sessions() as s:
        return [
            st
            for st in (
                await s.scalars(
                    select(PaymentPromise.status)
                    .where(PaymentPromise.id.in_([r.id for r in rows]))
                    .order_by(PaymentPromise.installment)
                )
            ).all()
        ]


async def _place_and_end(
    sessions: async_sessionmaker[AsyncSession], worker: ScheduleWorker, row: ScheduledCall
) -> uuid.UUID:
    """The worker places the follow-up (its call is created then); the call ends unanswered."""
    async with sessions() as s, s.begin():
        pending = await s.get(ScheduledCall, row.id)
        assert pending is not None
        pending.not_before = datetime.now(UTC) - timedelta(seconds=1)
    await worker.run_due()
    async with sessions() as s, s.begin():
        placed = await s.get(ScheduledCall, row.id)
        assert placed is not None and placed.status == "dispatched", placed and placed.status
        assert placed.call_id is not None
        call = await s.get(Call, placed.call_id)
        assert call is not None
        call.status, call.outcome, call.ended_at = "completed", "refused", datetime.now(UTC)
    return placed.call_id


async def test_each_installment_is_created_judged_and_announced_on_its_own(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first_due = TODAY - timedelta(days=GRACE + 5)  # overdue
    _, rows = await _plan_call(
        sessions,
        [(15000, first_due), (15000, TODAY - timedelta(days=GRACE + 1)), (15000, TODAY)],
        campaign=False,
    )
    async with sessions() as s, s.begin():
        paid = await s.get(PaymentPromise, rows[0].id)
        assert paid is not None
        paid.paid_minor, paid.status, paid.resolved_at = 15000, "kept", NOW  # paid in time
    worker = ScheduleWorker(sessions, scheduler_settings(settings, promise_grace_days=GRACE))
    await worker.judge_promises(NOW)
    # Installment 1 kept (by the payment), 2 past its grace: broken, 3 not yet due.
    assert await _statuses(sessions, rows) == ["kept", "broken", "pending"]
    ids = [r.public_id for r in rows]
    events = await promise_events(sessions, ids)
    created = [pid for t, pid, _ in events if t == "promise.created"]
    assert created == [str(i) for i in ids]  # one per installment, in plan order
    assert [(t, pid) for t, pid, _ in events if t != "promise.created"] == [
        ("promise.broken", str(ids[1]))
    ]
    # Installment 3 breaks on its own day, later: its own event.
    await worker.judge_promises(NOW + timedelta(days=GRACE + 1))
    assert await _statuses(sessions, rows) == ["kept", "broken", "broken"]
    broken = [pid for t, pid, _ in await promise_events(sessions, ids) if t == "promise.broken"]
    assert broken == [str(ids[1]), str(ids[2])]


async def test_a_later_broken_installment_gets_its_own_follow_up(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cfg = scheduler_settings(settings, promise_grace_days=GRACE)
    worker = ScheduleWorker(sessions, cfg)
    first_due = TODAY - timedelta(days=GRACE + 1)
    call, rows = await _plan_call(
        sessions, [(15000, first_due), (15000, first_due + timedelta(days=30))]
    )
    await worker.judge_promises(NOW)
    [first] = await _follow_ups(sessions, call.debtor_id)
    assert (first.source_call_id, first.reason, first.status) == (call.id, "campaign", "pending")

    # The follow-up is placed and ends; a month later installment 2 breaks: a call of its own,
    # following up the last call of the chain.
    follow_call = await _place_and_end(sessions, worker, first)
    await worker.judge_promises(NOW + timedelta(days=30))
    assert await _statuses(sessions, rows) == ["broken", "broken"]
    rows_now = await _follow_ups(sessions, call.debtor_id)
    assert [r.source_call_id for r in rows_now] == [call.id, follow_call]
    second = rows_now[1]
    assert (second.reason, second.status, second.call_id) == ("campaign", "pending", None)
    await retire(sessions, [follow_call])


async def test_installments_broken_while_a_follow_up_waits_share_it(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    worker = ScheduleWorker(sessions, scheduler_settings(settings, promise_grace_days=GRACE))
    due = TODAY - timedelta(days=GRACE + 20)
    call, rows = await _plan_call(
        sessions,
        [(10000, due), (10000, due + timedelta(days=7)), (25000, due + timedelta(days=14))],
    )
    await worker.judge_promises(NOW)  # all three overdue in one pass
    assert await _statuses(sessions, rows) == ["broken", "broken", "broken"]
    [only] = await _follow_ups(sessions, call.debtor_id)
    assert only.source_call_id == call.id and only.status == "pending"
    # Another pass while it waits (or another instance): still that one.
    await worker.judge_promises(NOW + timedelta(days=1))
    assert len(await _follow_ups(sessions, call.debtor_id)) == 1
    broken = [
        pid
        for t, pid, _ in await promise_events(sessions, [r.public_id for r in rows])
        if t == "promise.broken"
    ]
    assert len(broken) == 3  # each installment still announced
