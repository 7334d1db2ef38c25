"""Calls left `queued` with nothing scheduled for them: pure verdict, then the SQL pass.

A queued call normally has a pending schedule row (written with it). Without one, its request
was lost (or the row was ended without the call): after `call_queued_deadline_seconds` it is
scheduled again, and after `call_queued_max_age_seconds` it is failed with a reason instead,
because that long after the request nobody may expect the call any more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from generated.call_step import CallStep
from services.common.call_ending import end_unplaced
from services.common.call_steps import record_step
from services.common.logging import get_logger
from services.common.models import Call, ScheduledCall
from services.common.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True)
class Requeue:
    pass


@dataclass(frozen=True)
class Fail:
    reason: str


def queued_verdict(
    age: timedelta, row_status: str | None, deadline: timedelta, max_age: timedelta
) -> Requeue | Fail | None:
    if row_status == "pending" or age < deadline:
        return None  # waiting for its time, or still young
    if row_status is not None:
        return Fail(f"its schedule entry is {row_status} but the call stayed queued")
    if age >= max_age:
        return Fail(
            f"its request was lost; still queued after {int(age.total_seconds())} s "
            f"(limit {int(max_age.total_seconds())} s)"
        )
    return Requeue()


async def reconcile_queued(
    session: AsyncSession, settings: Settings, now: datetime, limit: int
) -> tuple[int, int]:
    """One pass in the caller's transaction; returns (rescheduled, failed)."""
    deadline = timedelta(seconds=settings.call_queued_deadline_seconds)
    max_age = timedelta(seconds=settings.call_queued_max_age_seconds)
    rows = (
        await session.execute(
            select(Call, ScheduledCall.status)
            .outerjoin(ScheduledCall, ScheduledCall.call_id == Call.id)
            .where(
                Call.status == "queued",
                Call.created_at < now - deadline,
                ScheduledCall.status.is_distinct_from("pending"),
            )
            .order_by(Call.created_at)
            .limit(limit)
            .with_for_update(of=Call, skip_locked=True)
        )
    ).all()
    requeued = failed = 0
    for call, row_status in rows:
        verdict = queued_verdict(now - call.created_at, row_status, deadline, max_age)
        if isinstance(verdict, Requeue):
            await session.execute(
                insert(ScheduledCall)
                .values(
                    debtor_id=call.debtor_id,
                    call_id=call.id,
                    reason="manual",
                    not_before=now,
                    attempt=call.attempt,
                )
                .on_conflict_do_nothing(index_elements=[ScheduledCall.call_id])
            )
            await record_step(
                session,
                call.id,
                CallStep.SCHEDULED,
                at=now,
                detail={"schedule_reason": "manual", "not_before": now, "attempt": call.attempt},
            )
            requeued += 1
            log.warning("queued_call_rescheduled", call_id=str(call.id))
        elif isinstance(verdict, Fail):
            await end_unplaced(
                session,
                settings,
                call,
                status="failed",
                outcome="failed",
                reason=verdict.reason,
                now=now,
                step_reason="request_lost",
            )
            failed += 1
            log.warning("queued_call_failed", call_id=str(call.id), reason=verdict.reason)
    return requeued, failed
