"""`GET /v1/campaigns/{campaign_id}/stats`: the campaign's funnel, as a whole and per prompt
variant, counted from stored facts (services/common/campaign_funnel.py has the arithmetic).

The campaign's calls are its items' calls and, transitively, the retries and callbacks that
followed them up (`scheduled_calls.source_call_id`); each counts for the variant recorded on
it. A call with no variant was never dispatched: it has nothing to count. A payment plan is
one promise made (its call promised once) and as many promises judged and kept as it has
installments with a verdict: each installment is tracked as a promise.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy import BigInteger, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from generated.client_api import CampaignStats
from services.client_api.deps import SessionDep
from services.client_api.problems import not_found
from services.client_api.responses import NOT_FOUND, UNPROCESSABLE
from services.common.campaign_funnel import FunnelCounts, funnel, variant_order
from services.common.models import Call, PaymentPromise, ScheduledCall
from services.common.models.campaigns import Campaign, CampaignItem

router = APIRouter(tags=["Campaigns", "Stats"])

CampaignId = Annotated[uuid.UUID, Path(description="The campaign's id.")]

# Answered by something that is not a person (Twilio AMD), or ended as a voicemail.
NOT_A_PERSON = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other")
MACHINE_OUTCOMES = ("voicemail", "voicemail_left", "machine")
RIGHT_PARTY = ("name_only", "name_and_fact")
JUDGED = ("kept", "partially_kept", "broken")


async def variant_counts(session: AsyncSession, campaign_id: uuid.UUID) -> dict[str, FunnelCounts]:
    items = (
        select(CampaignItem.call_id.label("call_id"))
        .where(CampaignItem.campaign_id == campaign_id, CampaignItem.call_id.is_not(None))
        .cte("campaign_calls", recursive=True)
    )
    chain = items.union(  # UNION, not ALL: each call once, whatever the chain looks like
        select(ScheduledCall.call_id)
        .join(items, ScheduledCall.source_call_id == items.c.call_id)
        .where(ScheduledCall.call_id.is_not(None))
    )
    call, promise = Call, PaymentPromise
    # One row per call: a plan's installments must not multiply the call's counts and cost.
    promised = (
        select(
            promise.call_id.label("call_id"),
            func.count().filter(promise.status.in_(JUDGED)).label("judged"),
            func.count().filter(promise.status == "kept").label("kept"),
        )
        .group_by(promise.call_id)
        .subquery("promised")
    )
    connected = and_(
        call.answered_at.is_not(None),
        or_(call.answered_by.is_(None), call.answered_by.not_in((*NOT_A_PERSON, "fax"))),
        or_(call.outcome.is_(None), call.outcome.not_in(MACHINE_OUTCOMES)),
    )
    cost = func.coalesce(func.sum(call.cost["total_micro_usd"].astext.cast(BigInteger)), 0)
    rows = await session.execute(
        select(
            call.prompt_variant,
            func.count().filter(call.started_at.is_not(None)),
            func.count().filter(connected),
            func.count().filter(call.verification.in_(RIGHT_PARTY)),
            func.count(promised.c.call_id),
            func.coalesce(func.sum(promised.c.judged), 0),
            func.coalesce(func.sum(promised.c.kept), 0),
            cost,
        )
        .select_from(call)
        .join(chain, chain.c.call_id == call.id)
        .outerjoin(promised, promised.c.call_id == call.id)
        .where(call.prompt_variant.is_not(None))
        .group_by(call.prompt_variant)
    )
    return {variant: FunnelCounts(*(int(v) for v in counts)) for variant, *counts in rows.tuples()}


@router.get(
    "/v1/campaigns/{campaign_id}/stats",
    operation_id="getCampaignStats",
    response_model=CampaignStats,
    responses={**NOT_FOUND, **UNPROCESSABLE},
)
async def campaign_stats(campaign_id: CampaignId, session: SessionDep) -> CampaignStats:
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        raise not_found("campaign")
    now = datetime.now(UTC)
    by_variant = await variant_counts(session, campaign_id)
    weights = dict(campaign.prompt_variants or {})
    total = sum(by_variant.values(), FunnelCounts())
    return CampaignStats.model_validate(
        {
            "campaign_id": campaign_id,
            "computed_at": now,
            "total": funnel(total),
            "variants": [
                {
                    "variant": v,
                    "weight": weights.get(v),
                    "funnel": funnel(by_variant.get(v, FunnelCounts())),
                }
                for v in variant_order(weights, by_variant)
            ],
        }
    )
