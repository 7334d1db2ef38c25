"""Holds on a debtor (opt-out, dispute, wrong number, validation notice) and dropping their
scheduled work: SQL."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.call_ending import end_unplaced
from services.common.debtor_events import add_hold_event
from services.common.logging import get_logger
from services.common.models import Call, DebtorHold, ScheduledCall
from services.common.settings import Settings

log = get_logger(__name__)


async def place_hold(
    session: AsyncSession,
    settings: Settings,
    *,
    debtor_id: uuid.UUID,
    kind: str,
    reason: str,
    call_id: uuid.UUID | None,
    now: datetime,
) -> bool:
    """Record the hold (one active hold per kind: a repeat changes nothing), send its
    `debtor.opted_out` / `debtor.disputed` / `debtor.validation_notice_requested` event if
    new, and drop the debtor's pending schedule at once. True if the hold is new."""
    inserted = await session.execute(
        insert(DebtorHold)
        .values(debtor_id=debtor_id, kind=kind, reason=reason, call_id=call_id, created_at=now)
        .on_conflict_do_nothing(
            index_elements=[DebtorHold.debtor_id, DebtorHold.kind],
            index_where=sql_text("lifted_at IS NULL"),
        )
        .returning(DebtorHold.id)
    )
    hold_id = inserted.scalar()
    new = hold_id is not None
    if hold_id is not None:
        # In this transaction: the event exists exactly when the hold does.
        add_hold_event(
            session,
            settings,
            source="/call-scheduler",
            debtor_id=debtor_id,
            hold_id=hold_id,
            kind=kind,
            reason=reason,
            call_id=call_id,
            created_at=now,
        )
    dropped = await drop_pending(session, settings, debtor_id, f"debtor on hold: {kind}", now)
    log.info("debtor_hold_placed", kind=kind, new=new, dropped=dropped, debtor_id=str(debtor_id))
    return new


async def drop_pending(
    session: AsyncSession, settings: Settings, debtor_id: uuid.UUID, reason: str, now: datetime
) -> int:
    """Cancel every pending schedule row of the debtor; a queued call held by one ends
    `canceled` with the reason."""
    rows = (
        await session.scalars(
            select(ScheduledCall)
            .where(ScheduledCall.debtor_id == debtor_id, ScheduledCall.status == "pending")
            .with_for_update()
        )
    ).all()
    for row in rows:
        row.status = "cancelled"
        row.skip_reason = reason
        row.updated_at = now
        if row.call_id is None:
            continue
        call = await session.scalar(select(Call).where(Call.id == row.call_id).with_for_update())
        if call is not None and call.status == "queued":
            await end_unplaced(
                session,
                settings,
                call,
                status="canceled",
                outcome=None,
                reason=reason,
                now=now,
                step_reason="debtor_on_hold",
            )
    return len(rows)
