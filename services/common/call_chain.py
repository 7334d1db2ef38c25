"""A call's ancestry: the call, and every call it follows up (retries, callbacks, campaign
follow-ups) through `scheduled_calls.source_call_id`, back to the first one. Campaign terms
and broken-promise follow-ups both belong to the campaign whose item's call starts the chain:
the scheduler resolves the terms at dispatch, the orchestrator again when it has no dispatch
snapshot of the call."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import CTE, literal, or_, select
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.models import ScheduledCall
from services.common.models.campaigns import Campaign, CampaignItem


def ancestry(call_id: uuid.UUID, name: str = "call_chain") -> CTE:
    """A recursive CTE with one column, `call_id`: this call and the calls before it."""
    start = literal(call_id, type_=UUID(as_uuid=True)).label("call_id")
    chain = select(start).cte(name, recursive=True)
    return chain.union(
        select(ScheduledCall.source_call_id)
        .join(chain, ScheduledCall.call_id == chain.c.call_id)
        .where(ScheduledCall.source_call_id.is_not(None))
    )


async def campaign_rules_of(
    session: AsyncSession, call_id: uuid.UUID, row_id: uuid.UUID | None = None
) -> dict[str, Any] | None:
    """The negotiation terms of the campaign the call belongs to (its item names the call, or
    the schedule row `row_id` that will place it), or whose call it follows up (any number of
    retries/callbacks back); None when there is no such campaign or it has no terms of its own."""
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
