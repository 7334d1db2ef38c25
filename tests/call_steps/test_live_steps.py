"""A live call's buffered steps are stored by the heartbeat batcher's transaction (about once a
second, off the call's real-time path), whatever the call's status, each step once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.call_step import CallStep
from generated.call_step_reason import CallStepReason
from services.common.call_steps import StepBuffer, record_many, record_steps
from services.common.models.call_steps import CallStepEvent
from services.voice_orchestrator.calls import HeartbeatBatcher
from services.voice_orchestrator.session import Transcript
from tests.helpers import insert_call


async def stored(sessions: async_sessionmaker[AsyncSession], call_id: object) -> list[str]:
    async with sessions() as s:
        rows = await s.scalars(
            select(CallStepEvent)
            .where(CallStepEvent.call_id == call_id)
            .order_by(CallStepEvent.at, CallStepEvent.sequence)
        )
        return [r.step for r in rows]


async def test_batcher_stores_buffered_steps_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    _, live = await insert_call(sessions, "in_progress")
    _, ended = await insert_call(sessions, "completed")
    t0 = datetime.now(UTC)
    buffers = {live.id: StepBuffer(), ended.id: StepBuffer()}
    batcher = HeartbeatBatcher(sessions)
    for call_id, buf in buffers.items():
        batcher.track(call_id, Transcript(), buf)
        buf.add(CallStep.ANSWERED, at=t0, once_key="answered")
        buf.add(
            CallStep.TOOL_CALL,
            at=t0 + timedelta(seconds=1),
            detail={"tool": "end_call", "tool_result": "rejected", "state": "negotiation"},
            reason=CallStepReason.NO_OUTCOME_YET,
        )
    await batcher.flush()
    assert all(len(buf) == 0 for buf in buffers.values())
    # A call that ended meanwhile gets its steps stored too: finalize has only what was left.
    for call_id in buffers:
        assert await stored(sessions, call_id) == ["answered", "tool_call"]
    await batcher.flush()  # nothing new: nothing written
    buffers[live.id].add(CallStep.DISCLOSURE_SPOKEN, at=t0 + timedelta(seconds=2))
    await batcher.flush()
    assert await stored(sessions, live.id) == ["answered", "tool_call", "disclosure_spoken"]
    # The status callback's `answered`, or finalize writing it again, keeps one row.
    async with sessions() as s, s.begin():
        again = StepBuffer()
        again.add(CallStep.ANSWERED, at=t0, once_key="answered")
        assert await record_steps(s, live.id, again.take()) == 0
    batcher.untrack(live.id)
    assert live.id not in batcher.steps


async def test_one_flush_of_many_steps_stays_under_the_parameter_limit(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """5,000 steps (35,000 values) in one call of record_many: more than one statement could
    carry (Postgres takes at most 32,767 parameters), all stored."""
    calls = [(await insert_call(sessions, "in_progress"))[1].id for _ in range(10)]
    t0 = datetime.now(UTC)
    records = {}
    for call_id in calls:
        buf = StepBuffer()
        for i in range(500):
            buf.add(CallStep.TOOL_CALL, at=t0 + timedelta(milliseconds=i), detail={"tool": "x"})
        records[call_id] = buf.take()
    async with sessions() as s, s.begin():
        assert await record_many(s, records) == 5000
    assert len(await stored(sessions, calls[-1])) == 500
