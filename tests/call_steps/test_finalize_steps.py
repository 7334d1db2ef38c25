"""The end of a call with a media session (finalize.persist_session_result) on real PostgreSQL
and the GCS emulator: the session's remaining buffered steps, `ended` and the recording's step
in the one final transaction; a call some other path ended keeps the session's steps and gets
no second `ended`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.call_step import CallStep
from generated.call_step_reason import CallStepReason
from generated.call_usage import CallUsage
from services.common.blobstore import GcsBlobStore
from services.common.call_steps import StepBuffer
from services.common.models.call_steps import CallStepEvent
from services.common.settings import Settings
from services.voice_orchestrator.core import CallOutcome
from services.voice_orchestrator.finalize import end_without_session, persist_session_result
from services.voice_orchestrator.session import SessionResult, Transcript
from tests.conversation.conversation_support import conversation
from tests.helpers import insert_call


def result_for(call_id: uuid.UUID, started: datetime) -> SessionResult:
    buf = StepBuffer()
    buf.add(
        CallStep.TOOL_CALL,
        at=started + timedelta(seconds=2),
        detail={"tool": "confirm_identity", "tool_result": "accepted", "state": "negotiation"},
    )
    buf.add(CallStep.VERIFIED, at=started + timedelta(seconds=2), detail={"verification": "none"})
    return SessionResult(
        call_id=str(call_id),
        call_sid="CA" + uuid.uuid4().hex,
        outcome=CallOutcome.HUNG_UP,
        failure_reason="llm failure: 503 after retries",
        transcript=Transcript(),
        latency=[],
        conversation=conversation(),
        recording_wav=b"RIFF0000WAVE",
        started_at=started,
        ended_at=started + timedelta(seconds=9),
        usage=CallUsage(),
        end_reason="remote_hangup",
        steps=buf.take(),
    )


async def steps_of(sessions: async_sessionmaker[AsyncSession], call_id: uuid.UUID) -> list[str]:
    async with sessions() as s:
        rows = await s.scalars(
            select(CallStepEvent)
            .where(CallStepEvent.call_id == call_id)
            .order_by(CallStepEvent.at, CallStepEvent.sequence)
        )
        return [f"{r.step}:{r.reason}" for r in rows]


async def test_final_transaction_writes_the_session_steps_end_and_recording(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _, call = await insert_call(sessions, "in_progress")
    started = datetime.now(UTC) - timedelta(seconds=10)
    assert await persist_session_result(
        sessions, GcsBlobStore(settings), settings, result_for(call.id, started)
    )
    assert await steps_of(sessions, call.id) == [
        "tool_call:None",
        "verified:None",
        f"ended:{CallStepReason.LLM_FAILURE.value}",
        "recording_stored:None",
    ]
    # A second end (the sweeper, a redelivery) adds no second `ended`.
    async with sessions() as s, s.begin():
        assert not await end_without_session(
            s, settings, call.id, status="failed", outcome="failed"
        )
    assert len(await steps_of(sessions, call.id)) == 4


async def test_a_call_ended_meanwhile_keeps_the_session_steps(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    _, call = await insert_call(sessions, "in_progress")
    async with sessions() as s, s.begin():
        assert await end_without_session(
            s,
            settings,
            call.id,
            status="failed",
            outcome="failed",
            failure_reason="the call's session vanished (no heartbeat)",
            reason=CallStepReason.SESSION_VANISHED,
        )
    started = datetime.now(UTC) - timedelta(seconds=10)
    assert not await persist_session_result(
        sessions, GcsBlobStore(settings), settings, result_for(call.id, started)
    )
    assert await steps_of(sessions, call.id) == [
        "tool_call:None",
        "verified:None",
        "ended:session_vanished",
    ]
