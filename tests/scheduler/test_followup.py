"""After a call ends: retries with backoff, the agreed callback, holds that drop the debtor's
schedule at once. The `call.completed` handler against real PostgreSQL; the follow-up choice as
a pure function."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.call_scheduler.events import CallEndedHandler
from services.call_scheduler.followup import (
    EndedCall,
    NoFollowUp,
    PlaceHold,
    ScheduleCallback,
    ScheduleRetry,
    follow_up,
)
from services.common.bus import CloudEvent
from services.common.models import Call, Callback, Debtor, DebtorHold, ScheduledCall
from services.common.schedule_store import load_history, rules_config
from services.common.settings import Settings
from tests.scheduler.schedule_support import (
    ended_call,
    new_debtor,
    queued_trigger,
    scheduler_settings,
    zone_at_night,
)


def completed(call: Call) -> CloudEvent:
    return CloudEvent.create("call.completed", "/tests", {"call": {"id": str(call.id)}})


async def deliver(
    sessions: async_sessionmaker[AsyncSession], handler: CallEndedHandler, call: Call
) -> None:
    async with sessions() as s, s.begin():
        await handler(s, completed(call))


async def rows_of(
    sessions: async_sessionmaker[AsyncSession], debtor: Debtor
) -> list[ScheduledCall]:
    async with sessions() as s:
        return list(
            (
                await s.scalars(
                    select(ScheduledCall)
                    .where(ScheduledCall.debtor_id == debtor.id)
                    .order_by(ScheduledCall.created_at)
                )
            ).all()
        )


def test_follow_up_choices() -> None:
    cfg = rules_config(Settings())
    now = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)

    def ended(status: str, outcome: str | None, **kw: object) -> EndedCall:
        base: dict[str, object] = {
            "call_id": uuid.uuid4(),
            "status": status,
            "outcome": outcome,
            "failure_reason": None,
            "attempt": 1,
            "ended_at": now,
            "callback_at": None,
        }
        return EndedCall(**(base | kw))  # type: ignore[arg-type]

    for status, outcome in [
        ("busy", "no_answer"),
        ("no_answer", "no_answer"),
        ("failed", "failed"),
        ("completed", "voicemail"),
        ("completed", "voicemail_left"),
        ("completed", "machine"),
        ("completed", "hung_up"),
        ("completed", "no_response"),
    ]:
        action = follow_up(ended(status, outcome, attempt=2), cfg)
        assert isinstance(action, ScheduleRetry), (status, outcome)
        assert action.attempt == 3 and action.not_before > now
    assert follow_up(ended("completed", "opted_out"), cfg) == PlaceHold(
        "opt_out", "the debtor asked not to be called again (call outcome opted_out)"
    )
    assert isinstance(follow_up(ended("completed", "disputed"), cfg), PlaceHold)
    assert follow_up(ended("completed", "wrong_party"), cfg).kind == "wrong_number"  # type: ignore[union-attr]
    agreed = now + timedelta(days=1)
    assert follow_up(ended("completed", "callback_scheduled", callback_at=agreed), cfg) == (
        ScheduleCallback(agreed, debtor_requested=True)
    )
    for status, outcome in [("completed", "promise_to_pay"), ("completed", "refused")]:
        assert isinstance(follow_up(ended(status, outcome), cfg), NoFollowUp)
    # What the scheduler ended itself (never dialed) is not retried.
    lost = ended("failed", "failed", failure_reason="not placed: its request was lost")
    assert isinstance(follow_up(lost, cfg), NoFollowUp)
    assert isinstance(follow_up(ended("canceled", None), cfg), NoFollowUp)
    # The same call always gets the same jittered time (redelivery changes nothing).
    same = ended("busy", "no_answer")
    assert follow_up(same, cfg) == follow_up(same, cfg)


async def test_busy_call_gets_one_retry_with_backoff(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cfg = scheduler_settings(settings, retry_base_seconds=60, retry_cap_seconds=600)
    handler = CallEndedHandler(cfg)
    debtor = await new_debtor(sessions)
    busy = await ended_call(sessions, debtor, status="busy", outcome="no_answer", attempt=1)
    for _ in range(2):  # redelivered under another ce-id: still one retry
        await deliver(sessions, handler, busy)
    [row] = await rows_of(sessions, debtor)
    assert row.reason == "retry" and row.status == "pending" and row.attempt == 2
    assert row.source_call_id == busy.id and row.call_id is None
    assert busy.ended_at is not None
    assert busy.ended_at < row.not_before <= busy.ended_at + timedelta(seconds=600)


async def test_agreed_callback_is_scheduled_at_its_time_moved_into_the_window(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now(UTC)
    zone = zone_at_night(now)
    cfg = scheduler_settings(settings, call_window_start="08:00", call_window_end="21:00")
    handler = CallEndedHandler(cfg)
    debtor = await new_debtor(sessions, timezone=zone)
    call = await ended_call(
        sessions, debtor, status="completed", outcome="callback_scheduled", answered=True
    )
    asked = now + timedelta(minutes=30)  # still night there
    async with sessions() as s, s.begin():
        s.add(Callback(call_id=call.id, scheduled_for=asked, reason="driving"))
    await deliver(sessions, handler, call)
    [row] = await rows_of(sessions, debtor)
    assert row.reason == "callback" and row.debtor_requested and row.attempt == 1
    local = row.not_before.astimezone(ZoneInfo(zone))
    assert local.time() == time(8, 0) and row.not_before > asked


async def test_callback_inside_the_window_keeps_the_agreed_time(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    handler = CallEndedHandler(scheduler_settings(settings))
    debtor = await new_debtor(sessions)
    call = await ended_call(
        sessions, debtor, status="completed", outcome="callback_scheduled", answered=True
    )
    asked = datetime.now(UTC) + timedelta(minutes=5)
    async with sessions() as s, s.begin():
        s.add(Callback(call_id=call.id, scheduled_for=asked, reason="in a meeting"))
    await deliver(sessions, handler, call)
    [row] = await rows_of(sessions, debtor)
    # The conversation itself does not hold back a call the debtor asked for.
    assert row.not_before == asked and row.status == "pending"


async def test_opt_out_records_a_hold_and_drops_the_schedule_at_once(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cfg = scheduler_settings(settings)
    handler = CallEndedHandler(cfg)
    debtor = await new_debtor(sessions)
    earlier = await ended_call(sessions, debtor, status="busy", outcome="no_answer")
    await deliver(sessions, handler, earlier)  # a retry is pending
    stop = await ended_call(
        sessions, debtor, status="completed", outcome="opted_out", answered=True
    )
    queued, _ = await queued_trigger(sessions, debtor, datetime.now(UTC) + timedelta(hours=3))
    await deliver(sessions, handler, stop)
    await deliver(sessions, handler, stop)  # redelivered: one hold
    async with sessions() as s:
        holds = (await s.scalars(select(DebtorHold).where(DebtorHold.debtor_id == debtor.id))).all()
        canceled = await s.get(Call, queued.id)
    [hold] = holds
    assert hold.kind == "opt_out" and hold.call_id == stop.id and hold.lifted_at is None
    assert "asked not to be called again" in hold.reason
    rows = await rows_of(sessions, debtor)
    assert {r.status for r in rows} == {"cancelled"}
    assert {r.skip_reason for r in rows} == {"debtor on hold: opt_out"}
    assert canceled is not None and canceled.status == "canceled"
    assert canceled.failure_reason == "not placed: debtor on hold: opt_out"
    # A later busy call of the same debtor (placed before the hold) schedules nothing.
    late = await ended_call(sessions, debtor, status="no_answer", outcome="no_answer")
    await deliver(sessions, handler, late)
    last = [r for r in await rows_of(sessions, debtor) if r.source_call_id == late.id]
    assert [r.status for r in last] == ["skipped"]
    assert last[0].skip_reason == "debtor on hold: opt_out"


async def test_dispute_and_wrong_number_are_holds_too(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    handler = CallEndedHandler(scheduler_settings(settings))
    for outcome, kind in [("disputed", "dispute"), ("wrong_party", "wrong_number")]:
        debtor = await new_debtor(sessions)
        call = await ended_call(sessions, debtor, status="completed", outcome=outcome)
        await deliver(sessions, handler, call)
        async with sessions() as s:
            [hold] = (
                await s.scalars(select(DebtorHold).where(DebtorHold.debtor_id == debtor.id))
            ).all()
        assert hold.kind == kind and hold.call_id == call.id


async def test_a_hang_up_counts_as_a_conversation_only_after_verification(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Reg F's quiet period counts from a hang-up once the debtor was verified (the balance may
    have been said), not from one before; silence is never a conversation."""
    early = await new_debtor(sessions)
    await ended_call(sessions, early, status="completed", outcome="hung_up", answered=True)
    await ended_call(sessions, early, status="completed", outcome="no_response", answered=True)
    late = await new_debtor(sessions)
    talked = await ended_call(
        sessions,
        late,
        status="completed",
        outcome="hung_up",
        answered=True,
        verification="name_and_fact",
    )
    now, cfg = datetime.now(UTC), rules_config(scheduler_settings(settings))
    async with sessions() as s:
        assert (await load_history(s, early.id, now, cfg)).last_conversation_at is None
        history = await load_history(s, late.id, now, cfg)
        assert history.last_conversation_at == talked.answered_at
