"""What the calling rules need from the settings and the database: no decisions here.

Used by the scheduler (worker, follow-ups) and by the Client API (the trigger's scheduled time,
the debtor view), so both configure the rules and read the history the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal, cast

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.calling_rules import DebtorContact, History, Intent, RulesConfig
from services.common.models import LIVE_CALL_STATUSES, Call, Debtor, DebtorHold
from services.common.settings import Settings


def rules_config(settings: Settings) -> RulesConfig:
    return RulesConfig(
        window_start=settings.call_window_start,
        window_end=settings.call_window_end,
        max_attempts=settings.call_max_attempts,
        attempts_period=timedelta(days=settings.call_attempts_period_days),
        quiet_after_conversation=timedelta(days=settings.call_quiet_after_conversation_days),
        retry_base=timedelta(seconds=settings.retry_base_seconds),
        retry_cap=timedelta(seconds=settings.retry_cap_seconds),
        retry_max_per_day=settings.retry_max_per_day,
        retry_max_per_week=settings.retry_max_per_week,
    )


Reason = Literal["manual", "callback", "retry", "campaign"]


def intent(reason: str, debtor_requested: bool = False) -> Intent:
    """A schedule row's reason (checked by the table's constraint) as the rules' intent."""
    return Intent(reason=cast(Reason, reason), debtor_requested=debtor_requested)


# Outcomes of a conversation with the right party about the debt (Reg F's 7-day quiet period
# counts from these), and a hang-up after the debtor was verified (the balance may have been
# said); a machine, a wrong party, silence or no answer is no conversation.
CONVERSATION_OUTCOMES = (
    "promise_to_pay",
    "callback_scheduled",
    "refused",
    "disputed",
    "opted_out",
    "validation_notice_requested",
)
HANGUP_OUTCOME = "hung_up"


def contact_of(debtor: Debtor) -> DebtorContact:
    return DebtorContact(
        phone=debtor.phone, timezone=debtor.timezone, postal_code=debtor.postal_code
    )


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
            Call.debtor_id == debtor_id,
            or_(
                Call.outcome.in_(CONVERSATION_OUTCOMES),
                and_(Call.outcome == HANGUP_OUTCOME, Call.verification != "none"),
            ),
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
