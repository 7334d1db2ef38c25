"""A call row → the contract's Call, in one place for every service.

The Client API (`GET /v1/calls/{id}`) and the Voice Orchestrator (`call.completed`) both build
the Call here, so the webhook's `data.call` and the API's Call cannot differ. Only SQLAlchemy
rows, the BlobStore and the generated models: no web framework.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.interfaces import LoaderOption

from generated.call import Call
from generated.call_cost import CallCost
from generated.call_usage import CallUsage
from generated.callback import Callback
from generated.money import Money
from generated.payment_plan import PaymentPlan
from generated.payment_promise import PaymentPromise
from generated.transcript_turn import TranscriptTurn
from generated.turn_latency import TurnLatency
from services.common import models
from services.common.blobstore import BlobStore, key_from_uri
from services.common.logging import get_logger

log = get_logger(__name__)


def call_load_options() -> list[LoaderOption]:
    """Eager loads `call_to_model` needs (the relationships are lazy="raise")."""
    return [
        selectinload(models.Call.turns),
        selectinload(models.Call.promises),
        selectinload(models.Call.callback),
        selectinload(models.Call.schedule),
    ]


async def load_call(session: AsyncSession, call_id: uuid.UUID) -> models.Call | None:
    row: models.Call | None = await session.scalar(
        select(models.Call).where(models.Call.id == call_id).options(*call_load_options())
    )
    return row


async def blob_link(uri: str | None, blobs: BlobStore) -> str | None:
    """A stored object's URI (`gs://bucket/key`) → a link the client can fetch."""
    if not uri:
        return None
    if uri.startswith(("https://", "http://")):
        return uri
    try:
        key = key_from_uri(uri)
    except (ValueError, IndexError):
        log.warning("unlinkable_blob_uri")
        return None
    return await blobs.url(key)


def _turn(row: models.CallTurn, previous_state: str, fallback_time: datetime) -> TranscriptTurn:
    # The columns are nullable for turns written mid-call; the contract is not. The orchestrator
    # fills them, the fallbacks only keep one incomplete row from breaking the whole call.
    started = row.started_at or row.ended_at or fallback_time
    ended = row.ended_at or started
    return TranscriptTurn.model_validate(
        {
            "index": row.index,
            "speaker": row.speaker,
            "text": row.text,
            "state": row.state or previous_state,
            "started_at": started,
            "ended_at": ended,
            "interrupted": bool(row.interrupted) and row.speaker == "agent",
        }
    )


def payment_plan(promises: list[models.PaymentPromise]) -> PaymentPlan | None:
    """A call's promise rows (one, or one per installment) as the contract's plan."""
    if not promises:
        return None
    rows = sorted(promises, key=lambda p: p.installment)
    currency = rows[0].currency
    return PaymentPlan(
        installments=[
            PaymentPromise(
                amount=Money(amount_minor=p.amount_minor, currency=p.currency),
                due_date=p.due_date,
                recorded_at=p.recorded_at,
            )
            for p in rows
        ],
        total=Money(amount_minor=sum(p.amount_minor for p in rows), currency=currency),
        settlement=rows[0].settlement,
    )


def build_call(row: models.Call, *, recording_url: str | None, transcript_url: str | None) -> Call:
    """The Call as the API shows it; `row` must be loaded with `call_load_options()`."""
    turns: list[TranscriptTurn] = []
    state = "greeting"
    fallback_time = row.started_at or row.created_at
    for turn_row in sorted(row.turns, key=lambda t: t.index):
        turn = _turn(turn_row, state, fallback_time)
        state = turn.state.value
        fallback_time = turn.ended_at
        turns.append(turn)
    plan = payment_plan(row.promises)
    callback = row.callback
    usage: dict[str, Any] | None = row.usage
    cost: dict[str, Any] | None = row.cost
    return Call.model_validate(
        {
            "id": row.id,
            "debtor_id": row.debtor_id,
            "status": row.status,
            "outcome": row.outcome,
            # None only on a row not yet flushed (the column's default is server-side).
            "verification": row.verification or "none",
            "verification_fact": row.verification_fact,
            "stage": row.stage,
            "prompt_version": row.prompt_version,
            "prompt_variant": row.prompt_variant,
            "twilio_call_sid": row.twilio_call_sid,
            "metadata": row.metadata_ or {},
            "created_at": row.created_at,
            "dispatched_at": row.dispatched_at,
            "started_at": row.started_at,
            "answered_by": row.answered_by,
            "answered_at": row.answered_at,
            "ended_at": row.ended_at,
            "duration_seconds": row.duration_seconds,
            "failure_reason": row.failure_reason,
            "attempt": row.attempt or 1,
            "scheduled_for": row.schedule.not_before if row.schedule is not None else None,
            "transcript": turns,
            "payment_promise": plan.installments[0] if plan is not None else None,
            "payment_plan": plan,
            "callback": Callback(scheduled_for=callback.scheduled_for, reason=callback.reason)
            if callback is not None
            else None,
            "dispute_reason": row.dispute_reason,
            "hardship_note": row.hardship_note,
            "recording_url": recording_url,
            "transcript_url": transcript_url,
            "latency": [TurnLatency.model_validate(item) for item in row.latency or []],
            "usage": CallUsage.model_validate(usage) if usage else None,
            "cost": CallCost.model_validate(cost) if cost else None,
        }
    )


async def call_to_model(row: models.Call, blobs: BlobStore) -> Call:
    """The Call with fetchable recording and transcript links (signed URLs in production)."""
    return build_call(
        row,
        recording_url=await blob_link(row.recording_uri, blobs),
        transcript_url=await blob_link(row.transcript_uri, blobs),
    )
