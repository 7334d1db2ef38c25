"""A call's ancestry: the call, and every call it follows up (retries, callbacks, campaign
follow-ups) through `scheduled_calls.source_call_id`, back to the first one. Campaign terms
and broken-promise follow-ups both belong to the campaign whose item's call starts the chain."""

from __future__ import annotations

import uuid

from sqlalchemy import CTE, literal, select
from sqlalchemy.dialects.postgresql import UUID

from services.common.models import ScheduledCall


def ancestry(call_id: uuid.UUID, name: str = "call_chain") -> CTE:
    """A recursive CTE with one column, `call_id`: this call and the calls before it."""
    start = literal(call_id, type_=UUID(as_uuid=True)).label("call_id")
    chain = select(start).cte(name, recursive=True)
    return chain.union(
        select(ScheduledCall.source_call_id)
        .join(chain, ScheduledCall.call_id == chain.c.call_id)
        .where(ScheduledCall.source_call_id.is_not(None))
    )
