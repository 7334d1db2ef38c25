"""After a call that ended `validation_notice_requested` (the debtor asked for the debt in
writing) and after a hardship that ended in a callback: the `call.completed` handler against
real PostgreSQL, as for the opt-out and dispute holds (tests/scheduler/test_followup.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.debtor_event_data import DebtorEventData
from services.call_scheduler.events import CallEndedHandler
from services.call_scheduler.followup import EndedCall, PlaceHold, follow_up
from services.common.debtor_events import event_id
from services.common.models import Call, Callback, DebtorHold, OutboxMessage
from services.common.schedule_store import load_history, rules_config
from services.common.settings import Settings
from tests.scheduler.schedule_support import (
    ended_call,
    new_debtor,
    queued_trigger,
    scheduler_settings,
)
from tests.scheduler.test_followup import deliver, rows_of


async def test_a_validation_notice_request_holds_the_debtor_and_sends_its_event(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cfg = scheduler_settings(settings)
    handler = CallEndedHandler(cfg)
    debtor = await new_debtor(sessions)
    earlier = await ended_call(sessions, debtor, status="busy", outcome="no_answer")
    await deliver(sessions, handler, earlier)  # a retry is pending
    asked = await ended_call(
        sessions,
        debtor,
        status="completed",
        outcome="validation_notice_requested",
        answered=True,
        verification="name_and_fact",
    )
    queued, _ = await queued_trigger(sessions, debtor, datetime.now(UTC) + timedelta(hours=3))
    await deliver(sessions, handler, asked)
    await deliver(sessions, handler, asked)  # redelivered: one hold, one event

    async with sessions() as s:
        [hold] = (
            await s.scalars(select(DebtorHold).where(DebtorHold.debtor_id == debtor.id))
        ).all()
        canceled = await s.get(Call, queued.id)
        events = (
            await s.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.ce_type == "debtor.validation_notice_requested",
                    OutboxMessage.payload["debtor_id"].astext == str(debtor.id),
                )
            )
        ).all()
        history = await load_history(s, debtor.id, datetime.now(UTC), rules_config(cfg))
    assert hold.kind == "validation_notice" and hold.call_id == asked.id
    assert hold.lifted_at is None and "in writing" in hold.reason
    [event] = events
    assert event.ce_id == event_id("debtor.validation_notice_requested", hold.id)
    data = DebtorEventData.model_validate(event.payload)
    assert data.hold.id == hold.id and data.hold.kind.value == "validation_notice"
    assert data.hold.call_id == asked.id
    # No retry of the call itself, and what was pending is dropped at once.
    assert not [r for r in await rows_of(sessions, debtor) if r.source_call_id == asked.id]
    assert {r.status for r in await rows_of(sessions, debtor)} == {"cancelled"}
    assert canceled is not None and canceled.status == "canceled"
    assert canceled.failure_reason == "not placed: debtor on hold: validation_notice"
    # A conversation with the debtor: Reg F's 7-day quiet period counts from it.
    assert history.last_conversation_at == asked.answered_at


def test_validation_notice_requested_is_a_hold_not_a_retry() -> None:
    ended = EndedCall(
        call_id=uuid.uuid4(),
        status="completed",
        outcome="validation_notice_requested",
        failure_reason=None,
        attempt=1,
        ended_at=datetime.now(UTC),
        callback_at=None,
    )
    action = follow_up(ended, rules_config(Settings()))
    assert isinstance(action, PlaceHold) and action.kind == "validation_notice"


async def test_a_hardship_callback_is_placed_like_an_agreed_callback(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    handler = CallEndedHandler(scheduler_settings(settings))
    debtor = await new_debtor(sessions)
    call = await ended_call(
        sessions,
        debtor,
        status="completed",
        outcome="callback_scheduled",
        answered=True,
        verification="name_and_fact",
    )
    asked = datetime.now(UTC) + timedelta(days=2)
    async with sessions() as s, s.begin():
        row = await s.get(Call, call.id)
        assert row is not None
        row.hardship_note = "lost their job last month; can pay after the new one starts"
        s.add(Callback(call_id=call.id, scheduled_for=asked, reason="hardship"))
    await deliver(sessions, handler, call)
    [follow] = await rows_of(sessions, debtor)
    # The debtor asked for it: at the agreed time (inside the window), not held back by the
    # quiet period the conversation itself started.
    assert follow.reason == "callback" and follow.debtor_requested
    assert follow.status == "pending" and follow.not_before == asked
    async with sessions() as s:
        assert not (
            await s.scalars(select(DebtorHold).where(DebtorHold.debtor_id == debtor.id))
        ).all()
