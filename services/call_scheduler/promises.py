"""The broken-promise pass: pending promises past their due date plus the grace period become
`broken` (nothing paid) or `partially_kept` (part paid), each with its `promise.broken` event.

Exactly once with any number of scheduler instances: rows are claimed `FOR UPDATE SKIP LOCKED`
and only while still `pending`, so a promise another pass (or a payment) holds is skipped and,
once that commits, is no longer pending. The verdicts are the pure rules of
services/common/promise_tracking.py.

A promise broken (or partly kept) on a call of a running or completed campaign that follows up
broken promises gets one follow-up call, in the same transaction: a `scheduled_calls` row
(reason `campaign`) that follows up the promise's call (or the last call of its follow-up
chain), placed by the worker when the calling rules, caps and holds allow, like a retry. Each
installment of a plan is its own promise: judged, announced and followed up on its own.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.call_chain import ancestry
from services.common.logging import get_logger
from services.common.models import LIVE_CALL_STATUSES, Call, PaymentPromise, ScheduledCall
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
    chain = ancestry(call_id)
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


# A chain of follow-ups is never this long in practice; the bound keeps a corrupt chain (a cycle)
# from looping.
_MAX_CHAIN = 100


async def _chain_tip(session: AsyncSession, call_id: uuid.UUID) -> tuple[uuid.UUID | None, str]:
    """Walk the follow-ups of `call_id` (retries, callbacks, earlier broken-promise follow-ups,
    through `scheduled_calls.source_call_id`) to the last ended call that has none yet.

    None, with why, when a follow-up of the chain is still waiting or its call is in progress
    (that call covers this promise too), or the chain's last follow-up was refused (a hold or
    the calling rules: it stands until an operator acts)."""
    current = call_id
    for _ in range(_MAX_CHAIN):
        row = await session.scalar(
            select(ScheduledCall).where(ScheduledCall.source_call_id == current)
        )
        if row is None:
            return current, "chain tip"
        if row.status == "pending":
            return None, "a follow-up of the call is already waiting"
        if row.call_id is None:
            return None, f"the call's follow-up was {row.status}"
        status = await session.scalar(select(Call.status).where(Call.id == row.call_id))
        if status is None or status in LIVE_CALL_STATUSES:
            return None, "a follow-up of the call is in progress"
        current = row.call_id
    return None, "follow-up chain too long"


async def _follow_up_in_campaign(session: AsyncSession, call_id: uuid.UUID, now: datetime) -> bool:
    """One follow-up call per broken (or partly kept) promise or installment, unless one that
    covers it is already waiting or in progress. A plan's installments are promises of the same
    call: installment 1 broken gets a follow-up of the plan's call; installment 2 broken later,
    once that follow-up was placed and ended, gets its own, following up the last call of the
    chain (`source_call_id` is unique: one follow-up per call). Two installments broken while
    one follow-up waits share it (the debtor is called once about both)."""
    campaign = await _campaign_following_up(session, call_id)
    if campaign is None:
        return False
    tip, why = await _chain_tip(session, call_id)
    added = None
    if tip is not None:
        call = await session.get(Call, tip)
        assert call is not None
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
        follows_up=str(tip) if tip is not None else None,
        campaign_id=str(campaign.id),
        scheduled=added is not None,
        why=None if added is not None else why,
    )
    return added is not None
