"""The step recorder on real PostgreSQL: a row in the caller's transaction, the JSON log line
(call id bound) only once it commits, once-keys, and the in-memory buffer of a live call."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.call_step import CallStep
from generated.call_step_reason import CallStepReason
from services.common.call_steps import StepBuffer, detail_json, record_step, record_steps
from services.common.logging import configure_logging
from services.common.models.call_steps import CallStepEvent
from tests.helpers import insert_call


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("test", "INFO", stream=out)
    try:
        yield out
    finally:
        configure_logging("test", "INFO")


def step_lines(out: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    return [line for line in lines if line.get("event") == "call_step"]


async def rows(sessions: async_sessionmaker[AsyncSession], call_id: uuid.UUID) -> list[Any]:
    async with sessions() as s:
        return list(
            (
                await s.scalars(
                    select(CallStepEvent)
                    .where(CallStepEvent.call_id == call_id)
                    .order_by(CallStepEvent.at, CallStepEvent.sequence)
                )
            ).all()
        )


def test_buffer_is_a_plain_list_drained_once() -> None:
    buf = StepBuffer()
    at = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    buf.add(CallStep.VERIFIED, at=at, detail={"verification": "name_only"})
    buf.add(
        CallStep.TOOL_CALL,
        detail={"tool": "end_call", "tool_result": "rejected"},
        reason=CallStepReason.NO_OUTCOME_YET,
    )
    assert len(buf) == 2
    first, second = buf.take()
    assert (first.step, first.at, first.detail) == (
        CallStep.VERIFIED,
        at,
        {"verification": "name_only"},
    )
    assert second.reason is CallStepReason.NO_OUTCOME_YET and second.at.tzinfo is not None
    assert buf.take() == [] and len(buf) == 0


def test_detail_is_validated_against_the_spec() -> None:
    at = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert detail_json({"not_before": at, "attempt": 2}) == {
        "not_before": "2026-12-04T12:00:00Z",
        "attempt": 2,
    }
    assert detail_json({"outcome": None}) == {"outcome": None}  # an explicit null is kept
    assert len(detail_json({"message": "x" * 900})["message"]) == 500
    with pytest.raises(ValueError, match="unknown call step detail"):
        detail_json({"amount_minor": 100})
    with pytest.raises(ValueError):
        detail_json({"tool_result": "maybe"})


async def test_row_and_log_line_commit_together(
    sessions: async_sessionmaker[AsyncSession], logs: io.StringIO
) -> None:
    _, call = await insert_call(sessions, "queued")
    at = datetime.now(UTC)
    async with sessions() as s, s.begin():
        await record_step(s, call.id, CallStep.DISPATCHED, at=at, detail={"attempt": 1})
        assert step_lines(logs) == []  # not before the commit
    stored = await rows(sessions, call.id)
    assert [(r.step, r.at, r.detail, r.reason) for r in stored] == [
        ("dispatched", at, {"attempt": 1}, None)
    ]
    (line,) = step_lines(logs)
    assert line["call_id"] == str(call.id) and line["step"] == "dispatched"
    assert line["step_event_id"] == str(stored[0].id) and line["detail"] == {"attempt": 1}
    assert datetime.fromisoformat(line["at"]) == at


async def test_rolled_back_steps_are_neither_stored_nor_logged(
    sessions: async_sessionmaker[AsyncSession], logs: io.StringIO
) -> None:
    _, call = await insert_call(sessions, "queued")
    async with sessions() as s:
        async with s.begin():
            await record_step(s, call.id, CallStep.RINGING)
            await record_step(s, call.id, CallStep.ENDED, once_key="ended")
            await s.rollback()
        # A savepoint rolled back inside a transaction that commits: only the rest is kept.
        async with s.begin():
            await record_step(s, call.id, CallStep.DIALING, detail={"dial_attempt": 1})
            async with s.begin_nested() as nested:
                await record_step(s, call.id, CallStep.RINGING)
                await s.flush()
                await nested.rollback()
    assert [r.step for r in await rows(sessions, call.id)] == ["dialing"]
    assert [line["step"] for line in step_lines(logs)] == ["dialing"]


async def test_once_key_stores_a_repeated_step_once(
    sessions: async_sessionmaker[AsyncSession], logs: io.StringIO
) -> None:
    _, call = await insert_call(sessions, "queued")
    t0 = datetime.now(UTC)
    for n in range(2):
        async with sessions() as s, s.begin():
            stored = await record_step(
                s,
                call.id,
                CallStep.AMD_RESULT,
                at=t0 + timedelta(seconds=n),
                detail={"answered_by": "human"},
                once_key="amd_result",
            )
            assert stored is (n == 0)
    async with sessions() as s, s.begin():
        buf = StepBuffer()
        buf.add(CallStep.ANSWERED, at=t0 - timedelta(seconds=1), once_key="answered")
        buf.add(CallStep.AMD_RESULT, detail={"answered_by": "fax"}, once_key="amd_result")
        buf.add(CallStep.VERIFIED, at=t0 + timedelta(seconds=5), detail={"verification": "none"})
        assert await record_steps(s, call.id, buf.take()) == 2
    stored_rows = await rows(sessions, call.id)
    assert [(r.step, r.detail) for r in stored_rows] == [
        ("answered", {}),
        ("amd_result", {"answered_by": "human"}),
        ("verified", {"verification": "none"}),
    ]
    assert [line["step"] for line in step_lines(logs)] == ["amd_result", "answered", "verified"]


async def test_same_time_is_ordered_by_sequence(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    _, call = await insert_call(sessions, "queued")
    at = datetime.now(UTC)
    async with sessions() as s, s.begin():
        for step in (CallStep.ENDED, CallStep.RECORDING_STORED):
            await record_step(s, call.id, step, at=at)
    async with sessions() as s, s.begin():
        await record_step(s, call.id, CallStep.WEBHOOK_DELIVERED, at=at)
    stored = await rows(sessions, call.id)
    assert [r.step for r in stored] == ["ended", "recording_stored", "webhook_delivered"]
    assert stored[0].sequence < stored[1].sequence < stored[2].sequence


async def test_a_bad_detail_never_breaks_the_transaction(
    sessions: async_sessionmaker[AsyncSession], logs: io.StringIO
) -> None:
    """A detail the spec refuses (a bug) is stored as {} and logged as an error; the step and
    the caller's transaction go on."""
    _, call = await insert_call(sessions, "queued")
    async with sessions() as s, s.begin():
        await record_step(s, call.id, CallStep.DIALING, detail={"dial_attempt": 0})
    assert [(r.step, r.detail) for r in await rows(sessions, call.id)] == [("dialing", {})]
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.strip()]
    (bad,) = [line for line in lines if line.get("event") == "call_step_detail_invalid"]
    assert bad["call_id"] == str(call.id) and bad["level"] == "error"
