"""The Call Scheduler's broken-promise pass on real PostgreSQL: the grace period, the verdicts
(broken / partially kept), exactly one verdict and one `promise.broken` however many passes run
at once, and nothing for promises still in time, kept or cancelled."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.call_scheduler.worker import ScheduleWorker
from services.common.models import Call, PaymentPromise, ScheduledCall
from services.common.models.campaigns import Campaign, CampaignItem
from services.common.settings import Settings
from tests.promises.promise_support import insert_promise, promise_events
from tests.scheduler.schedule_support import new_debtor, scheduler_settings

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
TODAY = NOW.date()


async def _status(sessions: async_sessionmaker[AsyncSession], pk: int) -> tuple[str, bool]:
    async with sessions() as s:
        row = await s.get(PaymentPromise, pk)
        assert row is not None
        return row.status, row.resolved_at is not None


async def test_grace_period_then_broken_or_partially_kept(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cfg = scheduler_settings(settings, promise_grace_days=3)
    debtor = await new_debtor(sessions)
    # Due 4 days ago: the 3 days of grace are over. Due 3 days ago: today is the last day.
    unpaid = await insert_promise(sessions, debtor.id, 5000, TODAY - timedelta(days=4))
    part = await insert_promise(sessions, debtor.id, 5000, TODAY - timedelta(days=10), paid_minor=1)
    in_grace = await insert_promise(sessions, debtor.id, 5000, TODAY - timedelta(days=3))
    cancelled = await insert_promise(sessions, debtor.id, 5000, TODAY - timedelta(days=30))
    async with sessions() as s, s.begin():
        await s.execute(
            update(PaymentPromise)
            .where(PaymentPromise.id == cancelled.id)
            .values(status="cancelled", resolved_at=NOW)
        )

    worker = ScheduleWorker(sessions, cfg)
    await worker.judge_promises(NOW)

    assert await _status(sessions, unpaid.id) == ("broken", True)
    assert await _status(sessions, part.id) == ("partially_kept", True)
    assert await _status(sessions, in_grace.id) == ("pending", False)
    assert await _status(sessions, cancelled.id) == ("cancelled", True)
    ids = [p.public_id for p in (unpaid, part, in_grace, cancelled)]
    assert sorted(await promise_events(sessions, ids)) == sorted(
        [
            ("promise.broken", str(unpaid.public_id), "broken"),
            ("promise.broken", str(part.public_id), "partially_kept"),
        ]
    )

    # The next day the grace period of the third is over too; the others are not judged again.
    await worker.judge_promises(NOW + timedelta(days=1))
    assert await _status(sessions, in_grace.id) == ("broken", True)
    assert len(await promise_events(sessions, ids)) == 3


async def test_grace_period_is_configurable(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    debtor = await new_debtor(sessions)
    promise = await insert_promise(sessions, debtor.id, 700, TODAY - timedelta(days=1))
    await ScheduleWorker(
        sessions, scheduler_settings(settings, promise_grace_days=5)
    ).judge_promises(NOW)
    assert (await _status(sessions, promise.id))[0] == "pending"
    await ScheduleWorker(
        sessions, scheduler_settings(settings, promise_grace_days=0)
    ).judge_promises(NOW)
    assert (await _status(sessions, promise.id))[0] == "broken"


async def test_concurrent_passes_judge_each_promise_once(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # Small batches so the two instances interleave over many rows.
    cfg = scheduler_settings(settings, promise_grace_days=3, scheduler_batch_size=3)
    debtor = await new_debtor(sessions)
    promises = [
        await insert_promise(sessions, debtor.id, 1000, TODAY - timedelta(days=5 + i % 4))
        for i in range(20)
    ]
    workers = [ScheduleWorker(sessions, cfg) for _ in range(2)]
    counts = await asyncio.gather(*(w.judge_promises(NOW) for w in workers for _ in range(2)))
    assert sum(counts) >= len(promises)  # other tests' overdue rows may be judged too
    events = await promise_events(sessions, [p.public_id for p in promises])
    assert sorted(pid for _, pid, _ in events) == sorted(str(p.public_id) for p in promises)
    assert {(t, s) for t, _, s in events} == {("promise.broken", "broken")}
    for p in promises:
        assert await _status(sessions, p.id) == ("broken", True)


async def _in_campaign(
    sessions: async_sessionmaker[AsyncSession],
    promise: PaymentPromise,
    debtor_id: uuid.UUID,
    status: str,
    follow_up: bool = True,
    via_retry: bool = False,
) -> None:
    """Puts the promise's call into a campaign: as the item's call, or as the retry of it."""
    async with sessions() as s, s.begin():
        campaign = Campaign(
            name="broken-promise test",
            status=status,
            stage="early",
            max_concurrent_calls=1,
            calls_per_minute=1,
            follow_up_broken_promises=follow_up,
        )
        s.add(campaign)
        await s.flush()
        item_call = promise.call_id
        if via_retry:
            first = Call(
                id=uuid.uuid4(), debtor_id=debtor_id, stage="early", status="no_answer",
                outcome="no_answer",
            )  # fmt: skip
            s.add(first)
            await s.flush()
            s.add(
                ScheduledCall(
                    debtor_id=debtor_id,
                    call_id=promise.call_id,
                    source_call_id=first.id,
                    reason="retry",
                    not_before=NOW,
                    status="dispatched",
                    attempt=2,
                )
            )
            item_call = first.id
        s.add(
            CampaignItem(
                campaign_id=campaign.id, debtor_id=debtor_id, status="done", call_id=item_call
            )
        )


async def test_a_campaigns_broken_promise_gets_one_follow_up_call(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cfg = scheduler_settings(settings, promise_grace_days=3)
    due = TODAY - timedelta(days=5)
    cases = {}
    for name, status, follow_up, via_retry in (
        ("completed", "completed", True, False),
        ("running_retry", "running", True, True),  # the promise was made on a retry
        ("cancelled", "cancelled", True, False),
        ("paused", "paused", True, False),
        ("switched_off", "completed", False, False),
    ):
        debtor = await new_debtor(sessions)
        promise = await insert_promise(sessions, debtor.id, 5000, due)
        await _in_campaign(sessions, promise, debtor.id, status, follow_up, via_retry)
        cases[name] = promise
    debtor = await new_debtor(sessions)
    cases["no_campaign"] = await insert_promise(sessions, debtor.id, 5000, due)
    kept_debtor = await new_debtor(sessions)
    kept = await insert_promise(sessions, kept_debtor.id, 5000, due, paid_minor=5000)
    await _in_campaign(sessions, kept, kept_debtor.id, "completed")

    worker = ScheduleWorker(sessions, cfg)
    for _ in range(2):  # a second pass (or instance) adds nothing
        await worker.judge_promises(NOW)

    async with sessions() as s:
        follow_ups = {
            row.source_call_id: row
            for row in (
                await s.scalars(
                    select(ScheduledCall).where(
                        ScheduledCall.source_call_id.in_(
                            [p.call_id for p in (*cases.values(), kept)]
                        )
                    )
                )
            ).all()
        }
    got = {name for name, p in cases.items() if p.call_id in follow_ups}
    assert got == {"completed", "running_retry"}
    for name in got:
        row = follow_ups[cases[name].call_id]
        assert (row.reason, row.status, row.call_id) == ("campaign", "pending", None)
    assert kept.call_id not in follow_ups  # kept: nothing to follow up
    assert await _status(sessions, cases["completed"].id) == ("broken", True)
