"""The negotiation terms a dispatched call carries (`call.dispatch.negotiation_rules`).

A call that belongs to a campaign with its own terms negotiates within them; so does every
retry, callback or broken-promise follow-up of such a call (followed back through
`scheduled_calls.source_call_id` to the first call, the campaign item's). Anything else gets its
stage's terms in this deployment (the defaults with NEGOTIATION_RULES applied,
services/common/negotiation.py). Resolved at dispatch, so a call placed after NEGOTIATION_RULES
changed uses the new terms; the orchestrator never has to look them up.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from generated.negotiation_rules import NegotiationRules
from services.call_scheduler.chain import ancestry
from services.common.models import Call, ScheduledCall
from services.common.models.campaigns import Campaign, CampaignItem
from services.common.negotiation import rules_for
from services.common.settings import Settings


async def campaign_rules_of(
    session: AsyncSession, call_id: uuid.UUID, row_id: uuid.UUID | None = None
) -> dict[str, Any] | None:
    """The negotiation terms of the campaign the call belongs to, or whose call it follows up
    (any number of retries/callbacks back); None when there is no such campaign or it has no
    terms of its own."""
    chain = ancestry(call_id, "terms_chain")
    in_chain = CampaignItem.call_id.in_(select(chain.c.call_id))
    match = or_(in_chain, CampaignItem.scheduled_call_id == row_id) if row_id else in_chain
    rules: dict[str, Any] | None = await session.scalar(
        select(Campaign.negotiation_rules)
        .join(CampaignItem, CampaignItem.campaign_id == Campaign.id)
        .where(match, Campaign.negotiation_rules.is_not(None))
        .limit(1)
    )
    return rules


async def terms_for_dispatch(
    session: AsyncSession, settings: Settings, call: Call, row: ScheduledCall
) -> NegotiationRules:
    """`call` is already linked to `row` (a retry's call exists once it is placed)."""
    campaign_rules = await campaign_rules_of(session, call.id, row.id)
    if campaign_rules is None and row.source_call_id is not None:
        # The row's call is new: its chain starts at the call it follows up.
        campaign_rules = await campaign_rules_of(session, row.source_call_id)
    return rules_for(settings, call.stage, campaign_rules)
