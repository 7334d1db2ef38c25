"""The end of a call, exactly once: blobs, rows and `call.completed` in one transaction.

The recording and transcript go to the BlobStore first (same keys every time, so a retry
overwrites rather than duplicates). Then one transaction moves the call to its terminal status
with a conditional UPDATE (only from a live status: a second finalizer finds nothing to update
and stops), writes the transcript turns, the promise (one row per installment of a plan), the
hardship note, the callback and the timings, and adds `call.completed` to the outbox with a
ce-id derived from the call id.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.call_step import CallStep
from generated.call_step_reason import CallStepReason
from services.common.blobstore import BlobStore
from services.common.call_events import Source, publish_completed
from services.common.call_steps import StepRecord, record_steps
from services.common.logging import get_logger
from services.common.models import Call, Callback, PaymentPromise
from services.common.pricing import Prices, cost_of
from services.common.settings import Settings
from services.voice_orchestrator.calls import LIVE, replace_turns
from services.voice_orchestrator.conversation.plans import Plan
from services.voice_orchestrator.session import SessionResult, Transcript

log = get_logger(__name__)

CE_SOURCE: Source = "/voice-orchestrator"
URL_TTL = timedelta(days=7)  # the longest a v4 signed URL may live


def recording_key(call_id: str) -> str:
    return f"calls/{call_id}/recording.wav"


def transcript_key(call_id: str) -> str:
    return f"calls/{call_id}/transcript.json"


def _turn_dicts(transcript: Transcript) -> list[dict[str, Any]]:
    return [turn.model_dump(mode="json") for turn in transcript]


async def _lock_live(session: AsyncSession, call_id: uuid.UUID) -> Call | None:
    """The call row, locked, if it is still live; None once some finalizer ended it."""
    result = await session.execute(
        select(Call).where(Call.id == call_id, Call.status.in_(LIVE)).with_for_update()
    )
    return result.scalar_one_or_none()


async def _put_with_retry(store: BlobStore, key: str, data: bytes, content_type: str) -> str | None:
    for attempt in range(3):
        try:
            return await store.put(key, data, content_type)
        except Exception as exc:
            log.warning("blob_upload_failed", key=key, attempt=attempt + 1, error=repr(exc))
            await asyncio.sleep(0.2 * (attempt + 1))
    return None


async def _url(store: BlobStore, key: str) -> str | None:
    try:
        return await store.url(key, URL_TTL)
    except Exception as exc:
        log.warning("blob_url_failed", key=key, error=repr(exc))
        return None


# How a session's failure reason (session/ending.py, call_session.py) starts, per step reason.
_FAILURE_PREFIXES = (
    ("llm failure", CallStepReason.LLM_FAILURE),
    ("stt failure", CallStepReason.STT_FAILURE),
    ("tts failure", CallStepReason.TTS_FAILURE),
)


def failure_code(failure_reason: str | None) -> CallStepReason | None:
    """The `ended` step's reason for a session that failed on our side (None: it did not)."""
    if not failure_reason:
        return None
    for prefix, code in _FAILURE_PREFIXES:
        if failure_reason.startswith(prefix):
            return code
    return CallStepReason.INTERNAL_ERROR


def ended_step(
    at: datetime,
    status: str,
    outcome: str | None,
    reason: CallStepReason | None,
    message: str | None,
    duration_seconds: int | None = None,
) -> StepRecord:
    detail: dict[str, Any] = {"status": status, "outcome": outcome}
    if duration_seconds is not None:
        detail["duration_seconds"] = duration_seconds
    if message:
        detail["message"] = message
    return StepRecord(CallStep.ENDED, at, detail, reason, once_key="ended")


def promise_rows(
    call_id: uuid.UUID, plan: Plan, currency: str, at: datetime
) -> list[dict[str, Any]]:
    """One `payment_promises` row per installment (a single promise: installment 1 of 1), so
    tracking, `promise.*` webhooks and broken-promise follow-ups work per installment."""
    n = len(plan.installments)
    return [
        {
            "call_id": call_id,
            "installment": i,
            "installments": n,
            "settlement": plan.settlement,
            "amount_minor": item.amount_minor,
            "currency": currency,
            "due_date": item.date,
            "recorded_at": at,
        }
        for i, item in enumerate(plan.installments, start=1)
        if item.amount_minor > 0
    ]


async def persist_session_result(
    sessions: async_sessionmaker[AsyncSession],
    store: BlobStore,
    settings: Settings,
    result: SessionResult,
) -> bool:
    """Store a finished media session. Returns False if the call was already finalized."""
    call_id = uuid.UUID(result.call_id)
    conv = result.conversation
    turns = _turn_dicts(result.transcript)
    transcript_doc = {
        "call_id": result.call_id,
        "prompt_version": conv.prompt_version,
        "prompt_variant": conv.prompt_variant,
        "outcome": result.outcome.value,
        "turns": turns,
    }
    rec_key, tr_key = recording_key(result.call_id), transcript_key(result.call_id)
    rec_uri, tr_uri = await asyncio.gather(
        _put_with_retry(store, rec_key, result.recording_wav, "audio/wav"),
        _put_with_retry(store, tr_key, json.dumps(transcript_doc).encode(), "application/json"),
    )
    stored_at = datetime.now(UTC)
    rec_url = await _url(store, rec_key) if rec_uri else None
    tr_url = await _url(store, tr_key) if tr_uri else None

    plan = conv.plan
    callback = conv.callback
    async with sessions() as session, session.begin():
        row = await _lock_live(session, call_id)
        if row is None:
            log.warning("finalize_skipped_not_live")
            # Ended another way meanwhile (the sweeper): what happened in the call still did.
            await record_steps(session, call_id, result.steps)
            return False
        answered = row.answered_at or result.started_at
        row.status = "completed"
        row.outcome = result.outcome.value
        # How far the person was verified, and which fact kind (never its value).
        level, fact = conv.verification
        row.verification, row.verification_fact = level.value, fact.value if fact else None
        row.failure_reason = result.failure_reason
        row.hardship_note = conv.hardship_note  # the debtor's words, kept for the follow-up
        row.dispute_reason = conv.dispute_reason
        row.prompt_version = conv.prompt_version[:128]
        row.prompt_variant = conv.prompt_variant  # what was rendered (default if unknown here)
        row.answered_at = answered
        row.ended_at = result.ended_at
        row.duration_seconds = max(0, int((result.ended_at - answered).total_seconds()))
        row.recording_uri = rec_uri
        row.transcript_uri = tr_uri
        row.latency = result.latency
        row.usage = result.usage.model_dump(mode="json", exclude_none=True)
        row.cost = cost_of(result.usage, Prices.from_settings(settings)).model_dump()
        row.updated_at = datetime.now(UTC)
        await session.flush()
        await replace_turns(session, {call_id: result.transcript})
        if plan is not None:
            await session.execute(
                insert(PaymentPromise)
                .values(promise_rows(call_id, plan, conv.facts.currency, datetime.now(UTC)))
                .on_conflict_do_nothing()
            )
        if callback is not None:
            await session.execute(
                insert(Callback)
                .values(
                    call_id=call_id,
                    scheduled_for=callback.scheduled_for,
                    reason=callback.reason[:500],
                )
                .on_conflict_do_nothing()
            )
        ended = ended_step(
            result.ended_at,
            "completed",
            result.outcome.value,
            failure_code(result.failure_reason),
            result.failure_reason,
            row.duration_seconds,
        )
        recording = StepRecord(
            CallStep.RECORDING_STORED if rec_uri else CallStep.RECORDING_FAILED,
            max(stored_at, result.ended_at),
            reason=None if rec_uri else CallStepReason.UPLOAD_FAILED,
            once_key="recording",
        )
        # The live call's own steps, buffered in memory during the call, go in with its end.
        await record_steps(session, call_id, [*result.steps, ended, recording])
        await publish_completed(session, settings, call_id, CE_SOURCE, rec_url, tr_url)
    log.info(
        "call_finalized",
        outcome=result.outcome.value,
        turns=len(turns),
        end_reason=result.end_reason,
    )
    return True


async def end_without_session(
    session: AsyncSession,
    settings: Settings,
    call_id: uuid.UUID,
    *,
    status: str,
    outcome: str,
    failure_reason: str | None = None,
    reason: CallStepReason | None = None,
    steps: Sequence[StepRecord] = (),
) -> bool:
    """End a call that never had (or lost) its media session, in the caller's transaction;
    its `ended` step has `reason` (and `steps`, what a lost session had buffered, go first)."""
    row = await _lock_live(session, call_id)
    if row is None:
        return False
    now = datetime.now(UTC)
    row.status = status
    row.outcome = outcome
    row.failure_reason = failure_reason
    row.ended_at = now
    row.updated_at = now
    await record_steps(
        session, call_id, [*steps, ended_step(now, status, outcome, reason, failure_reason)]
    )
    await publish_completed(session, settings, call_id, CE_SOURCE)
    log.info("call_ended_without_session", status=status, outcome=outcome)
    return True
