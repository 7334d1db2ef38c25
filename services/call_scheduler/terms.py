"""The negotiation terms a dispatched call carries (`call.dispatch.negotiation_rules`).

A call that belongs to a campaign with its own terms negotiates within them; so does every
retry, callback or broken-promise follow-up of such a call (followed back through
`scheduled_calls.source_call_id` to the first call, the campaign item's). Anything else gets its
stage's terms in this deployment (the defaults with NEGOTIATION_RULES applied,
services/common/negotiation.py). Resolved at dispatch, so a call placed after NEGOTIATION_RULES
changed uses the new terms.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from generated.negotiation_rules import NegotiationRules
from services.common.call_chain import campaign_rules_of
from services.common.models import Call, ScheduledCall
from services.common.negotiation import rules_for
from services.common.settings import Settings


async def terms_for_dispatch(
    session: AsyncSession, settings: Settings, call: Call, row: ScheduledCall
) -> NegotiationRules:
    """`call` is already linked to `row` (a retry's call exists once it is placed)."""
    campaign_rules = await campaign_rules_of(session, call.id, row.id)
    if campaign_rules is None and row.source_call_id is not None:
        # The row's call is new: its chain starts at the call it follows up.
        campaign_rules = await campaign_rules_of(session, row.source_call_id)
    return rules_for(settings, call.stage, campaign_rules)
