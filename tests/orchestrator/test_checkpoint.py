"""The transcript checkpoint (HeartbeatBatcher) against real PostgreSQL: every live call's
transcript in one flush, calls that already ended left to finalize."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.models import CallTurn
from services.voice_orchestrator.calls import HeartbeatBatcher
from services.voice_orchestrator.session import Transcript
from tests.helpers import insert_call

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


async def _call(sessions: async_sessionmaker[AsyncSession], status: str) -> uuid.UUID:
    return (await insert_call(sessions, status))[1].id


def _entries(n: int, tag: str) -> Transcript:
    transcript = Transcript()
    for i in range(n):
        started, ended = T0 + timedelta(seconds=i), T0 + timedelta(seconds=i, milliseconds=800)
        if i % 2 == 0:
            transcript.add_agent(f"{tag} {i}", "negotiation", started, ended, interrupted=False)
        else:
            transcript.add_debtor(f"{tag} {i}", "negotiation", started, ended, merge=False)
    return transcript


async def _stored(sessions: async_sessionmaker[AsyncSession], call_id: uuid.UUID) -> list[str]:
    async with sessions() as s:
        rows = await s.scalars(
            select(CallTurn).where(CallTurn.call_id == call_id).order_by(CallTurn.index)
        )
        return [f"{r.index}:{r.speaker}:{r.text}:{r.interrupted}" for r in rows]


async def test_one_flush_checkpoints_every_live_call_and_replaces_changed_ones(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    live = [await _call(sessions, "in_progress") for _ in range(3)]
    ended = await _call(sessions, "completed")
    transcripts = {cid: _entries(3, str(cid)[:8]) for cid in [*live, ended]}
    batcher = HeartbeatBatcher(sessions)
    for cid, entries in transcripts.items():
        batcher.track(cid, entries)

    await batcher.flush()
    for cid in live:
        assert await _stored(sessions, cid) == [
            f"{i}:{e.speaker}:{e.text}:False" for i, e in enumerate(transcripts[cid])
        ]
    assert await _stored(sessions, ended) == []  # finalize owns a call that ended

    # One call's transcript changes (an entry cut by a barge-in, a new one): only it is
    # rewritten, and the others keep their rows.
    first = live[0]
    transcripts[first][2].interrupted = True
    transcripts[first].add_agent("again", "closing", T0, T0, interrupted=False)
    await batcher.flush()
    assert await _stored(sessions, first) == [
        f"{i}:{e.speaker}:{e.text}:{e.interrupted}" for i, e in enumerate(transcripts[first])
    ]
    assert len(await _stored(sessions, live[1])) == 3


async def test_a_checkpoint_beyond_the_parameter_limit_of_one_statement(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """200 live calls with 25 turns each: 5000 rows, 40,000 bind parameters, more than one
    PostgreSQL statement takes (32,767). The batched insert splits them."""
    calls = [await _call(sessions, "in_progress") for _ in range(200)]
    batcher = HeartbeatBatcher(sessions)
    for cid in calls:
        batcher.track(cid, _entries(25, "long"))
    await batcher.flush()
    async with sessions() as s:
        rows = (await s.scalars(select(CallTurn.call_id).where(CallTurn.call_id.in_(calls)))).all()
    assert len(rows) == 200 * 25
    assert set(rows) == set(calls)
