"""The schedule parts of the debtor view (holds, next scheduled call, attempts in the period),
loaded for a page of debtors in three queries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from generated.client_api import DebtorHold, ScheduledCall
from services.common import models
from services.common.settings import Settings


def hold_to_model(row: models.DebtorHold) -> DebtorHold:
    return DebtorHold.model_validate(
        {
            "id": row.id,
            "kind": row.kind,
            "reason": row.reason,
            "call_id": row.call_id,
            "created_at": row.created_at,
            "lifted_at": row.lifted_at,
            "lifted_reason": row.lifted_reason,
        }
    )


def scheduled_to_model(row: models.ScheduledCall) -> ScheduledCall:
    return ScheduledCall.model_validate(
        {
            "id": row.id,
            "reason": row.reason,
            "not_before": row.not_before,
            "attempt": row.attempt,
            "call_id": row.call_id,
            "follows_call_id": row.source_call_id,
            "created_at": row.created_at,
        }
    )


async def pending_schedule(
    session: AsyncSession, debtor_id: uuid.UUID
) -> Sequence[models.ScheduledCall]:
    return (
        await session.scalars(
            select(models.ScheduledCall)
            .where(
                models.ScheduledCall.debtor_id == debtor_id,
                models.ScheduledCall.status == "pending",
            )
            .order_by(models.ScheduledCall.not_before, models.ScheduledCall.id)
        )
    ).all()


async def schedule_fields(
    session: AsyncSession, debtor_ids: Sequence[uuid.UUID], settings: Settings
) -> dict[uuid.UUID, dict[str, Any]]:
    now = datetime.now(UTC)
    since = now - timedelta(days=settings.call_attempts_period_days)
    out: dict[uuid.UUID, dict[str, Any]] = {
        d: {
            "holds": [],
            "next_scheduled_call": None,
            "call_attempts": {
                "count": 0,
                "limit": settings.call_max_attempts,
                "period_days": settings.call_attempts_period_days,
            },
        }
        for d in debtor_ids
    }
    if not debtor_ids:
        return out
    holds = await session.scalars(
        select(models.DebtorHold)
        .where(models.DebtorHold.debtor_id.in_(debtor_ids))
        .order_by(models.DebtorHold.created_at.desc(), models.DebtorHold.id)
    )
    for hold in holds:
        out[hold.debtor_id]["holds"].append(hold_to_model(hold))
    nexts = await session.scalars(
        select(models.ScheduledCall)
        .where(
            models.ScheduledCall.debtor_id.in_(debtor_ids),
            models.ScheduledCall.status == "pending",
        )
        .order_by(
            models.ScheduledCall.debtor_id,
            models.ScheduledCall.not_before,
            models.ScheduledCall.id,
        )
        .distinct(models.ScheduledCall.debtor_id)
    )
    for row in nexts:
        out[row.debtor_id]["next_scheduled_call"] = scheduled_to_model(row)
    counts = await session.execute(
        select(models.Call.debtor_id, func.count())
        .where(models.Call.debtor_id.in_(debtor_ids), models.Call.dispatched_at >= since)
        .group_by(models.Call.debtor_id)
    )
    for debtor_id, count in counts:
        out[debtor_id]["call_attempts"]["count"] = count
    return out
