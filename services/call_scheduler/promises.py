"""The broken-promise pass: pending promises past their due date plus the grace period become
`broken` (nothing paid) or `partially_kept` (part paid), each with its `promise.broken` event.

Exactly once with any number of scheduler instances: rows are claimed `FOR UPDATE SKIP LOCKED`
and only while still `pending`, so a promise another pass (or a payment) holds is skipped and,
once that commits, is no longer pending. The verdicts are the pure rules of
services/common/promise_tracking.py.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.logging import get_logger
from services.common.models import PaymentPromise
from services.common.promise_events import (
    CE_TYPE_BROKEN,
    CE_TYPE_KEPT,
    add_promise_event,
    load_promise,
)
from services.common.promise_tracking import is_overdue, judgement_day, status_at_deadline
from services.common.settings import Settings

log = get_logger(__name__)

SOURCE: Literal["/call-scheduler"] = "/call-scheduler"


def latest_overdue_due_date(today: date, grace_days: int) -> date:
    """Promises due on or before this date are overdue on `today`."""
    latest = today - timedelta(days=grace_days + 1)
    assert judgement_day(latest, grace_days) == today
    return latest


async def judge_overdue_promises(
    session: AsyncSession, settings: Settings, now: datetime, limit: int
) -> int:
    """One batch: judge up to `limit` overdue pending promises; returns how many."""
    grace = settings.promise_grace_days
    today = now.date()
    rows = (
        await session.scalars(
            select(PaymentPromise)
            .where(
                PaymentPromise.status == "pending",
                PaymentPromise.due_date <= latest_overdue_due_date(today, grace),
            )
            .order_by(PaymentPromise.due_date, PaymentPromise.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    counts: dict[str, int] = {}
    for row in rows:
        assert is_overdue(row.due_date, grace, today)
        verdict = status_at_deadline("pending", row.amount_minor, row.paid_minor)
        row.status = verdict
        row.resolved_at = now
        counts[verdict] = counts.get(verdict, 0) + 1
        event = CE_TYPE_KEPT if verdict == "kept" else CE_TYPE_BROKEN
        add_promise_event(session, settings, event, SOURCE, await load_promise(session, row.id))
    if rows:
        log.info("promises_judged", **counts)
    return len(rows)
