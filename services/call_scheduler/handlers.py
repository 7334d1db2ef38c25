"""The scheduler's Pub/Sub shell for `call.requested`: make sure the call has a schedule row.

The Client API writes the row with the call (one transaction), so the message is normally only
the wake-up for the worker. A queued call without a row (written before the schedule existed,
or by other tools) gets one here, due now; the worker then re-checks everything at claim time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from generated.call_requested import CallRequested
from generated.call_step import CallStep
from services.common.bus import CloudEvent
from services.common.call_steps import record_step
from services.common.logging import bind_call_id, get_logger
from services.common.models import Call, ScheduledCall
from services.common.settings import Settings

log = get_logger(__name__)

CE_TYPE_REQUESTED = "call.requested"


class CallRequestHandler:
    ce_types = frozenset({CE_TYPE_REQUESTED})  # the consumer drops any other type

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        request = CallRequested.model_validate(event.data)
        bind_call_id(str(request.call_id))
        call = await session.scalar(select(Call).where(Call.id == request.call_id))
        if call is None:
            log.info("call_request_skipped", reason="unknown call", ce_id=event.id)
            return
        if call.status == "queued":
            inserted = await session.execute(
                insert(ScheduledCall)
                .values(
                    debtor_id=call.debtor_id,
                    call_id=call.id,
                    reason="manual",
                    not_before=datetime.now(UTC),
                    attempt=call.attempt,
                )
                .on_conflict_do_nothing(index_elements=[ScheduledCall.call_id])
                .returning(ScheduledCall.id)
            )
            if inserted.first() is not None:
                log.info("call_request_scheduled", ce_id=event.id)
                await record_step(
                    session,
                    call.id,
                    CallStep.SCHEDULED,
                    detail={"schedule_reason": "manual", "attempt": call.attempt},
                )
        # The worker is woken after this commit (the app's after_commit) and places the call.
