"""Ending a call that was never placed: canceled by a hold, the rules, a campaign cancel or an
operator, or lost before dialing. The scheduler and the Client API's operator cancel both end
calls this way."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from generated.call_step import CallStep
from generated.call_step_reason import CallStepReason
from services.common.call_events import Source, publish_completed
from services.common.call_steps import record_step
from services.common.models import Call
from services.common.settings import Settings

# Prefix of the failure reason of every call the scheduler ended without dialing: such a call
# is never retried (nothing was tried).
NOT_PLACED = "not placed: "


async def end_unplaced(
    session: AsyncSession,
    settings: Settings,
    call: Call,
    *,
    status: str,
    outcome: str | None,
    reason: str,
    now: datetime,
    step_reason: CallStepReason | str | None = None,
    source: Source = "/call-scheduler",
) -> None:
    """`call` must be locked and `queued`. `call.completed` goes out as for any ended call (one
    per call: its ce-id derives from the call id), and the call's `ended` step with
    `step_reason` (a CallStepReason) and `reason` as its message."""
    call.status = status
    call.outcome = outcome
    call.failure_reason = (NOT_PLACED + reason)[:1000]
    call.ended_at = now
    call.updated_at = now
    await record_step(
        session,
        call.id,
        CallStep.ENDED,
        at=now,
        detail={"status": status, "outcome": outcome, "message": reason},
        reason=CallStepReason(step_reason) if step_reason is not None else None,
        once_key="ended",
    )
    await publish_completed(session, settings, call.id, source)
