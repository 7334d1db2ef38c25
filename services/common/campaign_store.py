"""Campaign rows shared by the Client API, the import worker and the Call Scheduler: SQL only."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.models.campaigns import CampaignItem

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
