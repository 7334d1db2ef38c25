"""Which stage-prompt variant a call is dispatched with (A/B tests, issue 18 item 5).

Decided once, at the call's first dispatch, and kept on the call (`calls.prompt_variant`):
- a re-dispatch keeps what the call already has;
- a retry or callback keeps the variant of the call it follows up (sticky across the chain);
- a campaign item's call gets `choose_variant(debtor, campaign.prompt_variants)`, sticky per
  debtor by hash (services/common/prompt_variants.py);
- anything else, or a variant the call's stage does not have, gets `default`.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.models import Call, ScheduledCall
from services.common.models.campaigns import Campaign, CampaignItem
from services.common.prompt_variants import DEFAULT_VARIANT, available_variants, choose_variant


async def variant_for_dispatch(session: AsyncSession, call: Call, row: ScheduledCall) -> str:
    variant = call.prompt_variant
    if variant is None and row.source_call_id is not None:
        variant = await session.scalar(
            select(Call.prompt_variant).where(Call.id == row.source_call_id)
        )
    if variant is None:
        weights = await session.scalar(
            select(Campaign.prompt_variants)
            .join(CampaignItem, CampaignItem.campaign_id == Campaign.id)
            .where(or_(CampaignItem.call_id == call.id, CampaignItem.scheduled_call_id == row.id))
            .limit(1)
        )
        if weights:
            variant = choose_variant(call.debtor_id, weights)
    if variant is None or variant not in available_variants(call.stage):
        return DEFAULT_VARIANT
    return variant
