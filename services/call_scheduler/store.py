"""What the calling rules and the views need from the database: SQL only, no decisions.

Used by the scheduler's worker and by the Client API (the trigger's scheduled time, the debtor
view), so both read the history the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.call_scheduler.rules import DebtorContact, History, RulesConfig
from services.common.models import LIVE_CALL_STATUSES, Call, Debtor, DebtorHold

# Outcomes of a conversation with the right party about the debt (Reg F's 7-day quiet period
# counts from these); a machine, a wrong party or no answer is no conversation.
CONVERSATION_OUTCOMES = ("promise_to_pay", "callback_scheduled", "refused", "disputed", "opted_out")


def contact_of(debtor: Debtor) -> DebtorContact:
    # postal_code arrives with the second-factor fields; absent until then.
    postal_code = getattr(debtor, "postal_code", None)
    return DebtorContact(phone=debtor.phone, timezone=debtor.timezone, postal_code=postal_code)


async def load_history(
    session: AsyncSession, debtor_id: uuid.UUID, now: datetime, cfg: RulesConfig
) -> History:
    """Dials (dispatch times) within the rules' longest look-back, and the last conversation."""
    since = now - max(cfg.attempts_period, timedelta(days=7))
    rows = (
        await session.execute(
            select(Call.dispatched_at, Call.attempt).where(
                Call.debtor_id == debtor_id,
                Call.dispatched_at.is_not(None),
                Call.dispatched_at >= since,
            )
        )
    ).all()
    attempts = sorted(at for at, _ in rows if at is not None)
    retries = sorted(at for at, n in rows if at is not None and n > 1)
    last_conversation = await session.scalar(
        select(func.max(func.coalesce(Call.answered_at, Call.ended_at))).where(
            Call.debtor_id == debtor_id, Call.outcome.in_(CONVERSATION_OUTCOMES)
        )
    )
    return History(attempts=attempts, retries=retries, last_conversation_at=last_conversation)


async def active_holds(session: AsyncSession, debtor_id: uuid.UUID) -> Sequence[DebtorHold]:
    return (
        await session.scalars(
            select(DebtorHold)
            .where(DebtorHold.debtor_id == debtor_id, DebtorHold.lifted_at.is_(None))
            .order_by(DebtorHold.created_at, DebtorHold.id)
        )
    ).all()


async def all_holds(session: AsyncSession, debtor_id: uuid.UUID) -> Sequence[DebtorHold]:
    return (
        await session.scalars(
            select(DebtorHold)
            .where(DebtorHold.debtor_id == debtor_id)
            .order_by(DebtorHold.created_at.desc(), DebtorHold.id)
        )
    ).all()


async def live_call_id(
    session: AsyncSession, debtor_id: uuid.UUID, other_than: uuid.UUID | None = None
) -> uuid.UUID | None:
    stmt = select(Call.id).where(Call.debtor_id == debtor_id, Call.status.in_(LIVE_CALL_STATUSES))
    if other_than is not None:
        stmt = stmt.where(Call.id != other_than)
    found: uuid.UUID | None = await session.scalar(stmt.limit(1))
    return found
