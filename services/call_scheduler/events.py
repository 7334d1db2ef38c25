"""The scheduler's shell for `call.completed`: apply the follow-up of an ended call.

Idempotent: the message's ce-id is recorded (IdempotentHandler), a call has at most one
follow-up row (`scheduled_calls.source_call_id` is unique) and one active hold per kind.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from services.call_scheduler.followup import (
    EndedCall,
    FollowUp,
    NoFollowUp,
    PlaceHold,
    ScheduleRetry,
    follow_up,
)
from services.call_scheduler.holds import place_hold
from services.common.bus import CloudEvent
from services.common.calling_rules import Refused, RulesConfig, earliest_allowed
from services.common.logging import bind_call_id, get_logger
from services.common.models import LIVE_CALL_STATUSES, Call, Debtor, ScheduledCall
from services.common.schedule_store import (
    active_holds,
    contact_of,
    intent,
    load_history,
    rules_config,
)
from services.common.settings import Settings

log = get_logger(__name__)

CE_TYPE_COMPLETED = "call.completed"


class CallEndedHandler:
    ce_types = frozenset({CE_TYPE_COMPLETED})  # the consumer drops any other type

    def __init__(self, settings: Settings, cfg: RulesConfig | None = None) -> None:
        self.settings = settings
        self.cfg = cfg or rules_config(settings)

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        call_id = uuid.UUID(str(event.data["call"]["id"]))
        bind_call_id(str(call_id))
        call = await session.scalar(
            select(Call).where(Call.id == call_id).options(selectinload(Call.callback))
        )
        if call is None or call.status in LIVE_CALL_STATUSES:
            log.warning("follow_up_skipped", reason="call unknown or not ended")
            return
        now = datetime.now(UTC)
        action = follow_up(
            EndedCall(
                call_id=call.id,
                status=call.status,
                outcome=call.outcome,
                failure_reason=call.failure_reason,
                attempt=call.attempt,
                ended_at=call.ended_at or now,
                callback_at=call.callback.scheduled_for if call.callback is not None else None,
            ),
            self.cfg,
        )
        await self.apply(session, call, action, now)

    async def apply(
        self, session: AsyncSession, call: Call, action: FollowUp, now: datetime
    ) -> None:
        if isinstance(action, NoFollowUp):
            log.info("follow_up_none", why=action.why)
            return
        if isinstance(action, PlaceHold):
            await place_hold(
                session,
                self.settings,
                debtor_id=call.debtor_id,
                kind=action.kind,
                reason=action.reason,
                call_id=call.id,
                now=now,
            )
            return
        if isinstance(action, ScheduleRetry):
            reason, attempt, requested = "retry", action.attempt, False
        else:
            reason, attempt, requested = "callback", 1, action.debtor_requested
        status, skip_reason, not_before = "pending", None, action.not_before
        holds = await active_holds(session, call.debtor_id)
        debtor = await session.get(Debtor, call.debtor_id)
        if holds:
            status, skip_reason = "skipped", f"debtor on hold: {', '.join(h.kind for h in holds)}"
        elif debtor is not None:
            # Moved into the window (and past the caps) now, so the debtor view shows when.
            at = max(action.not_before, now)
            history = await load_history(session, debtor.id, at, self.cfg)
            wish = intent(reason, requested)
            verdict = earliest_allowed(at, contact_of(debtor), history, wish, self.cfg)
            if isinstance(verdict, Refused):
                status, skip_reason = "skipped", f"calling rules: {verdict.reason}"
            else:
                not_before = verdict.at
        await session.execute(
            insert(ScheduledCall)
            .values(
                debtor_id=call.debtor_id,
                source_call_id=call.id,
                reason=reason,
                debtor_requested=requested,
                not_before=not_before,
                status=status,
                skip_reason=skip_reason,
                attempt=attempt,
                claimed_at=now if status != "pending" else None,
            )
            .on_conflict_do_nothing(index_elements=[ScheduledCall.source_call_id])
        )
        log.info(
            "follow_up_scheduled" if status == "pending" else "follow_up_refused",
            kind=reason,
            attempt=attempt,
            not_before=not_before.isoformat(),
            skip_reason=skip_reason,
        )
