"""The broken-promise pass: pending promises past their due date plus the grace period become
`broken` (nothing paid) or `partially_kept` (part paid), each with its `promise.broken` event.

Exactly once with any number of scheduler instances: rows are claimed `FOR UPDATE SKIP LOCKED`
and only while still `pending`, so a promise another pass (or a payment) holds is skipped and,
once that commits, is no longer pending. The verdicts are the pure rules of
services/common/promise_tracking.py.

A promise broken (or partly kept) on a call of a running or completed campaign that follows up
broken promises gets one follow-up call, in the same transaction: a `scheduled_calls` row
(reason `campaign`) that follows up the promise's call, placed by the worker when the calling
rules, caps and holds allow, like a retry.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Literal

from sqlalchemy import literal, select
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.logging import get_logger
from services.common.models import Call, PaymentPromise, ScheduledCall
from services.common.models.campaigns import Campaign, CampaignItem
from services.common.promise_events import (
    CE_TYPE_BROKEN,
    CE_TYPE_KEPT,
    add_promise_event,
    load_promise,
)
from services.common.promise_tracking import is_overdue, judgement_day, status_at_deadline
from services.common.settings import Settings

log = get_logger(__name__)

SOURCE: Literal["/call-scheduler"] = "/call-scheduler"


def latest_overdue_due_date(today: date, grace_days: int) -> date:
    """Promises due on or before this date are overdue on `today`."""
    latest = today - timedelta(days=grace_days + 1)
    assert judgement_day(latest, grace_days) == today
    return latest


async def judge_overdue_promises(
    session: AsyncSession, settings: Settings, now: datetime, limit: int
) -> int:
    """One batch: judge up to `limit` overdue pending promises; returns how many."""
    grace = settings.promise_grace_days
    today = now.date()
    rows = (
        await session.scalars(
            select(PaymentPromise)
            .where(
                PaymentPromise.status == "pending",
                PaymentPromise.due_date <= latest_overdue_due_date(today, grace),
            )
            .order_by(PaymentPromise.due_date, PaymentPromise.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    counts: dict[str, int] = {}
    for row in rows:
        assert is_overdue(row.due_date, grace, today)
        verdict = status_at_deadline("pending", row.amount_minor, row.paid_minor)
        row.status = verdict
        row.resolved_at = now
        counts[verdict] = counts.get(verdict, 0) + 1
        event = CE_TYPE_KEPT if verdict == "kept" else CE_TYPE_BROKEN
        add_promise_event(session, settings, event, SOURCE, await load_promise(session, row.id))
        if verdict != "kept" and await _follow_up_in_campaign(session, row.call_id, now):
            counts["follow_ups"] = counts.get("follow_ups", 0) + 1
    if rows:
        log.info("promises_judged", **counts)
    return len(rows)


# A campaign's broken promises are followed up while it runs or after it completed (promises
# fall due after their calls); a paused or cancelled campaign places nothing more.
FOLLOW_UP_CAMPAIGN_STATUSES = ("running", "completed")


async def _campaign_following_up(session: AsyncSession, call_id: uuid.UUID) -> Campaign | None:
    """The campaign whose item's call this call is, or follows up (a retry or callback of it,
    through `scheduled_calls.source_call_id`), if it follows up broken promises."""
    start = literal(call_id, type_=UUID(as_uuid=True)).label("call_id")
    chain = select(start).cte("call_chain", recursive=True)
    chain = chain.union(
        select(ScheduledCall.source_call_id)
        .join(chain, ScheduledCall.call_id == chain.c.call_id)
        .where(ScheduledCall.source_call_id.is_not(None))
    )
    return await session.scalar(
        select(Campaign)
        .join(CampaignItem, CampaignItem.campaign_id == Campaign.id)
        .where(
            CampaignItem.call_id.in_(select(chain.c.call_id)),
            Campaign.follow_up_broken_promises.is_(True),
            Campaign.status.in_(FOLLOW_UP_CAMPAIGN_STATUSES),
        )
        .limit(1)
    )


async def _follow_up_in_campaign(session: AsyncSession, call_id: uuid.UUID, now: datetime) -> bool:
    campaign = await _campaign_following_up(session, call_id)
    if campaign is None:
        return False
    call = await session.get(Call, call_id)
    assert call is not None
    # One follow-up per call (source_call_id is unique): a call that already has one (its
    # callback, or this promise's twin on the same call) gets no second.
    added = await session.scalar(
        insert(ScheduledCall)
        .values(
            debtor_id=call.debtor_id,
            source_call_id=call.id,
            reason="campaign",
            not_before=now,
            status="pending",
            attempt=1,
        )
        .on_conflict_do_nothing(index_elements=[ScheduledCall.source_call_id])
        .returning(ScheduledCall.id)
    )
    log.info(
        "broken_promise_follow_up",
        call_id=str(call_id),
        campaign_id=str(campaign.id),
        scheduled=added is not None,
    )
    return added is not None
