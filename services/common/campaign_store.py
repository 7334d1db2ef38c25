"""Campaign rows shared by the Client API, the import worker and the Call Scheduler: SQL only."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from generated.campaign import Campaign as CampaignView
from generated.campaign_item_counts import CampaignItemCounts
from generated.campaign_pacing import CampaignPacing
from generated.campaign_status import CampaignStatus
from generated.delinquency_stage import DelinquencyStage
from generated.negotiation_rules import NegotiationRules
from services.common.models import ScheduledCall
from services.common.models.campaigns import CAMPAIGN_ITEM_STATUSES, Campaign, CampaignItem

# Rows per INSERT (3 parameters each; PostgreSQL allows 32767 per statement).
_CHUNK = 5000


async def add_debtors(
    session: AsyncSession, campaign_id: uuid.UUID, debtor_ids: Iterable[uuid.UUID]
) -> int:
    """Assign debtors to a campaign as pending items, in the caller's transaction.

    Idempotent: a debtor already in the campaign is left as it is. Returns how many items are
    new. The caller checks that the campaign accepts debtors (services/common/campaign_lifecycle
    .accepts_debtors) under a lock on the campaign row, and that the debtors exist (a missing
    one is a foreign-key error).
    """
    ids = list(dict.fromkeys(debtor_ids))  # one row per debtor, in the given order
    new = 0
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        inserted = await session.execute(
            insert(CampaignItem)
            .values(
                [{"id": uuid.uuid4(), "campaign_id": campaign_id, "debtor_id": d} for d in chunk]
            )
            .on_conflict_do_nothing(
                index_elements=[CampaignItem.campaign_id, CampaignItem.debtor_id]
            )
            .returning(CampaignItem.id)
        )
        new += len(inserted.all())
    return new


async def item_counts(session: AsyncSession, campaign_id: uuid.UUID) -> dict[str, int]:
    """Items of the campaign by status (every status present, 0 when none)."""
    rows = (
        await session.execute(
            select(CampaignItem.status, func.count())
            .where(CampaignItem.campaign_id == campaign_id)
            .group_by(CampaignItem.status)
        )
    ).all()
    counts = dict.fromkeys(CAMPAIGN_ITEM_STATUSES, 0)
    counts.update({status: int(n) for status, n in rows})
    return counts


def campaign_model(row: Campaign, counts: Mapping[str, int]) -> CampaignView:
    """The API's (and `campaign.completed`'s) view of a campaign; timestamps in UTC."""
    return CampaignView(
        id=row.id,
        name=row.name,
        status=CampaignStatus(row.status),
        stage=DelinquencyStage(row.stage),
        prompt_variants=dict(row.prompt_variants),
        pacing=CampaignPacing(
            max_concurrent_calls=row.max_concurrent_calls, calls_per_minute=row.calls_per_minute
        ),
        follow_up_broken_promises=row.follow_up_broken_promises,
        negotiation_rules=NegotiationRules.model_validate(row.negotiation_rules)
        if row.negotiation_rules is not None
        else None,
        items=CampaignItemCounts(total=sum(counts.values()), **counts),
        metadata=dict(row.metadata_),
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        started_at=_utc(row.started_at) if row.started_at else None,
        ended_at=_utc(row.ended_at) if row.ended_at else None,
    )


async def load_campaign_model(session: AsyncSession, row: Campaign) -> CampaignView:
    await session.flush()
    return campaign_model(row, await item_counts(session, row.id))


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


CANCELLED_DETAIL = "campaign cancelled before the call was dialed"


async def cancel_undialed(session: AsyncSession, campaign_id: uuid.UUID, now: datetime) -> int:
    """Cancel every item of the campaign not yet dialed, in the caller's transaction (which
    holds the campaign row's lock): pending items, and released items whose schedule row is
    still pending (that row is cancelled too, so the worker never claims it). A row the worker
    is deciding right now is waited for and re-checked: if it was dispatched, its item is left
    to finish with its call. The queued calls of cancelled items are ended `canceled` by the
    Call Scheduler's campaign pass (services/call_scheduler/campaigns.py). Returns the count."""
    pending = await session.execute(
        update(CampaignItem)
        .where(CampaignItem.campaign_id == campaign_id, CampaignItem.status == "pending")
        .values(status="cancelled", detail=CANCELLED_DETAIL, finished_at=now, updated_at=now)
    )
    rows = (
        await session.scalars(
            select(ScheduledCall)
            .join(CampaignItem, CampaignItem.scheduled_call_id == ScheduledCall.id)
            .where(
                CampaignItem.campaign_id == campaign_id,
                CampaignItem.status == "scheduled",
                ScheduledCall.status == "pending",
            )
            .with_for_update(of=ScheduledCall)
            .execution_options(populate_existing=True)
        )
    ).all()
    for row in rows:
        row.status = "cancelled"
        row.skip_reason = CANCELLED_DETAIL
        row.updated_at = now
    if rows:
        await session.execute(
            update(CampaignItem)
            .where(CampaignItem.scheduled_call_id.in_([r.id for r in rows]))
            .values(status="cancelled", detail=CANCELLED_DETAIL, finished_at=now, updated_at=now)
        )
    return int(getattr(pending, "rowcount", 0) or 0) + len(rows)
