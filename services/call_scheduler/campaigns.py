"""The campaign pass of the Call Scheduler: campaign items into the schedule, within pacing.

Each pass, in this order, each step in its own transactions:
1. Mirror calls onto released items: an item follows its call (queued -> `scheduled`, live ->
   `in_progress`, ended after being placed -> `done`, ended without -> `skipped`).
2. End the still-queued calls of items a cancel took back (`canceled`, with `call.completed`).
3. For each running campaign, under a lock on its row (`FOR UPDATE SKIP LOCKED`: another
   scheduler instance holding it skips it, so the counts below cannot be raced): complete it
   when every item is finished (`campaign.completed` through the outbox, in that transaction),
   or release as many pending items as the pacing allows. A released item is a queued call with
   a `campaign` schedule row, due now, made exactly as a trigger makes one
   (services/common/call_queue.py); the worker then applies holds, the calling window and the
   caps at claim time like for any call.

Pacing counts from the database under the lock, never from memory: `live` = the campaign's
calls queued or in progress (its items' calls and their retries and callbacks), and
`released_last_minute` = items released within the last minute
(services/common/campaign_lifecycle.py decides how many may go). A retry or callback is placed
when it is due (the worker does not hold it back for pacing), but while it is live no new item
takes its room.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.call_step import CallStep
from generated.campaign_completed_data import CampaignCompletedData
from services.common import campaign_lifecycle as lifecycle
from services.common.call_ending import end_unplaced
from services.common.call_queue import queue_call
from services.common.call_steps import record_step
from services.common.campaign_store import item_counts, load_campaign_model
from services.common.logging import get_logger
from services.common.models import LIVE_CALL_STATUSES, Call, ScheduledCall
from services.common.models.campaigns import Campaign, CampaignItem
from services.common.outbox import add_event
from services.common.settings import Settings

log = get_logger(__name__)

SOURCE = "/call-scheduler"
CE_TYPE_COMPLETED = "campaign.completed"
_EVENT_NS = uuid.UUID("5d7c0c4e-2b7a-4f43-9a86-1f0b6c2d9e51")
CANCELLED_REASON = "campaign cancelled"
OTHER_LIVE_CALL = "the debtor has another call queued or in progress"


def completed_event_id(campaign_id: uuid.UUID) -> str:
    """One `campaign.completed` per campaign (the outbox's ce-id is unique)."""
    return str(uuid.uuid5(_EVENT_NS, f"{CE_TYPE_COMPLETED}:{campaign_id}"))


@dataclass
class CampaignPassStats:
    synced: int = 0  # items whose status followed their call
    ended: int = 0  # queued calls of cancelled items ended
    released: int = 0  # items released into the schedule
    completed: int = 0  # campaigns completed

    @property
    def changed(self) -> bool:
        return bool(self.synced or self.ended or self.released or self.completed)


async def campaign_pass(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, now: datetime
) -> CampaignPassStats:
    stats = CampaignPassStats()
    batch = settings.scheduler_batch_size
    while True:
        async with sessions() as session, session.begin():
            n = await sync_items(session, now, batch)
        stats.synced += n
        if n < batch:
            break
    while True:
        async with sessions() as session, session.begin():
            n = await end_cancelled_calls(session, settings, now, batch)
        stats.ended += n
        if n < batch:
            break
    async with sessions() as session:
        running = (
            await session.scalars(
                select(Campaign.id).where(Campaign.status == "running").order_by(Campaign.id)
            )
        ).all()
    for campaign_id in running:
        try:
            async with sessions() as session, session.begin():
                released, completed = await pace_campaign(session, settings, campaign_id, now)
        except SQLAlchemyError as exc:  # one campaign's trouble never starves the others
            log.warning("campaign_pass_failed", campaign_id=str(campaign_id), error=repr(exc))
            continue
        stats.released += released
        stats.completed += int(completed)
    return stats


async def sync_items(session: AsyncSession, now: datetime, limit: int) -> int:
    """Released items whose call moved on take the call's status (and, once it ended, its
    outcome); items another instance is updating are skipped."""
    rows = (
        await session.execute(
            select(
                CampaignItem,
                Call.status,
                Call.dispatched_at,
                Call.outcome,
                Call.failure_reason,
                ScheduledCall.skip_reason,
            )
            .join(Call, Call.id == CampaignItem.call_id)
            .outerjoin(ScheduledCall, ScheduledCall.id == CampaignItem.scheduled_call_id)
            .where(
                CampaignItem.status.in_(("scheduled", "in_progress")),
                CampaignItem.call_status.is_distinct_from(Call.status),
            )
            .order_by(CampaignItem.id)
            .limit(limit)
            .with_for_update(of=CampaignItem, skip_locked=True)
        )
    ).all()
    for item, call_status, dispatched_at, outcome, failure, skip_reason in rows:
        status = lifecycle.item_status_for_call(call_status, placed=dispatched_at is not None)
        item.status = status
        item.call_status = call_status
        item.outcome = outcome
        item.updated_at = now
        if status in ("done", "skipped"):
            item.finished_at = now
        if status == "skipped":
            item.detail = (skip_reason or failure or "not placed")[:1000]
        log.info(
            "campaign_item_updated",
            campaign_id=str(item.campaign_id),
            call_id=str(item.call_id),
            status=status,
        )
    return len(rows)


async def end_cancelled_calls(
    session: AsyncSession, settings: Settings, now: datetime, limit: int
) -> int:
    """The queued calls of cancelled items (their schedule rows were cancelled with them, so
    nothing dials them) end `canceled`, each with its `call.completed`."""
    calls = (
        await session.scalars(
            select(Call)
            .join(CampaignItem, CampaignItem.call_id == Call.id)
            .where(
                CampaignItem.status == "cancelled",
                CampaignItem.call_status == "queued",
                Call.status == "queued",
            )
            .order_by(Call.id)
            .limit(limit)
            .with_for_update(of=Call, skip_locked=True)
        )
    ).all()
    for call in calls:
        await end_unplaced(
            session,
            settings,
            call,
            status="canceled",
            outcome=None,
            reason=CANCELLED_REASON,
            now=now,
            step_reason="campaign_canceled",
        )
        await session.execute(
            update(CampaignItem)
            .where(CampaignItem.call_id == call.id)
            .values(call_status="canceled", updated_at=now)
        )
        log.info("campaign_call_cancelled", call_id=str(call.id))
    return len(calls)


async def pace_campaign(
    session: AsyncSession, settings: Settings, campaign_id: uuid.UUID, now: datetime
) -> tuple[int, bool]:
    """Complete the campaign or release what its pacing allows: (released, completed)."""
    campaign = await session.scalar(
        select(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status == "running")
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if campaign is None:  # paused or cancelled meanwhile, or another instance holds it
        return 0, False
    counts = await item_counts(session, campaign_id)
    if lifecycle.should_complete(campaign.status, counts):
        await _complete(session, settings, campaign, now)
        return 0, True
    live = await live_calls(session, campaign_id)
    recent = await session.scalar(
        select(func.count())
        .select_from(CampaignItem)
        .where(
            CampaignItem.campaign_id == campaign_id,
            CampaignItem.released_at > now - lifecycle.PACING_WINDOW,
        )
    )
    pacing = lifecycle.Pacing(campaign.max_concurrent_calls, campaign.calls_per_minute)
    room = lifecycle.releasable(pacing, live=live, released_last_minute=int(recent or 0))
    if room <= 0 or counts["pending"] == 0:
        return 0, False
    items = (
        await session.scalars(
            select(CampaignItem)
            .where(CampaignItem.campaign_id == campaign_id, CampaignItem.status == "pending")
            .order_by(CampaignItem.created_at, CampaignItem.id)
            .limit(min(room, settings.scheduler_batch_size))
            .with_for_update()
        )
    ).all()
    released = 0
    for item in items:
        released += await _release(session, campaign, item, now)
    if released:
        log.info("campaign_items_released", campaign_id=str(campaign_id), released=released)
    return released, False


async def live_calls(session: AsyncSession, campaign_id: uuid.UUID) -> int:
    """The campaign's calls queued or in progress: its items' calls and the retries and
    callbacks that follow them up (a follow-up row names the call it follows, and gets its own
    call when placed), however deep the chain."""
    base = select(CampaignItem.call_id.label("call_id")).where(
        CampaignItem.campaign_id == campaign_id, CampaignItem.call_id.is_not(None)
    )
    chain = base.cte("campaign_calls", recursive=True)
    chain = chain.union(
        select(ScheduledCall.call_id).where(
            ScheduledCall.source_call_id == chain.c.call_id, ScheduledCall.call_id.is_not(None)
        )
    )
    n = await session.scalar(
        select(func.count())
        .select_from(Call)
        .where(Call.id.in_(select(chain.c.call_id)), Call.status.in_(LIVE_CALL_STATUSES))
    )
    return int(n or 0)


async def _release(
    session: AsyncSession, campaign: Campaign, item: CampaignItem, now: datetime
) -> int:
    item.updated_at = now
    try:
        async with session.begin_nested():
            call = queue_call(
                session,
                debtor_id=item.debtor_id,
                stage=campaign.stage,
                reason="campaign",
                not_before=now,
            )
            await session.flush()  # the one-live-call-per-debtor index decides here
    except IntegrityError:
        item.status = "skipped"
        item.detail = OTHER_LIVE_CALL
        item.finished_at = now
        return 0
    schedule = call.schedule
    assert schedule is not None
    # The call's first step, as a trigger records it (docs/call-events.md).
    await record_step(
        session,
        call.id,
        CallStep.SCHEDULED,
        at=now,
        detail={"schedule_reason": "campaign", "not_before": now, "attempt": 1},
    )
    item.status = "scheduled"
    item.call_id = call.id
    item.scheduled_call_id = schedule.id
    item.call_status = "queued"
    item.released_at = now
    return 1


async def _complete(
    session: AsyncSession, settings: Settings, campaign: Campaign, now: datetime
) -> None:
    campaign.status = lifecycle.next_status(campaign.status, "complete")
    campaign.ended_at = now
    campaign.updated_at = now
    view = await load_campaign_model(session, campaign)
    add_event(
        session,
        settings.pubsub_topic_call_events,
        CE_TYPE_COMPLETED,
        SOURCE,
        CampaignCompletedData(campaign=view),
        ce_id=completed_event_id(campaign.id),
    )
    log.info("campaign_completed", campaign_id=str(campaign.id), items=view.items.total)
