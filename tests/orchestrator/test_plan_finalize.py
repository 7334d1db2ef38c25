"""The end of a call with a payment plan, a single promise, a hardship or a written-notice
request (finalize.persist_session_result) on real PostgreSQL and the GCS emulator: one promise
row per installment (installment i of n, the settlement flag), a single promise as 1 of 1, the
hardship note on the call, the outcome validation_notice_requested."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.call_usage import CallUsage
from services.common.blobstore import GcsBlobStore
from services.common.models import Call, PaymentPromise
from services.common.settings import Settings
from services.voice_orchestrator.core import CallOutcome, Conversation
from services.voice_orchestrator.finalize import persist_session_result
from services.voice_orchestrator.session import SessionResult, Transcript
from tests.conversation.conversation_support import NOW, default_rules, verified
from tests.helpers import insert_call


def result_for(call_id: uuid.UUID, conv: Conversation) -> SessionResult:
    started = datetime.now(UTC) - timedelta(seconds=30)
    outcome = conv.finalize("hangup")
    return SessionResult(
        call_id=str(call_id),
        call_sid="CA" + uuid.uuid4().hex,
        outcome=outcome,
        failure_reason=None,
        transcript=Transcript(),
        latency=[],
        conversation=conv,
        recording_wav=b"RIFF0000WAVE",
        started_at=started,
        ended_at=started + timedelta(seconds=25),
        usage=CallUsage(),
        end_reason="remote_hangup",
        steps=[],
    )


async def finalize(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], conv: Conversation
) -> tuple[Call, list[PaymentPromise]]:
    _, call = await insert_call(sessions, "in_progress")
    assert await persist_session_result(
        sessions, GcsBlobStore(settings), settings, result_for(call.id, conv)
    )
    async with sessions() as s:
        row = await s.get(Call, call.id)
        assert row is not None
        promises = list(
            await s.scalars(
                select(PaymentPromise)
                .where(PaymentPromise.call_id == call.id)
                .order_by(PaymentPromise.installment)
            )
        )
    return row, promises


def plan_args(items: list[tuple[int, str]], settlement: bool = False) -> str:
    return json.dumps(
        {
            "installments": [{"amount_minor": a, "date": d} for a, d in items],
            "currency": "USD",
            "settlement": settlement,
        }
    )


async def test_a_plan_is_one_promise_row_per_installment(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    conv = verified()
    items = [(15000, "2026-12-04"), (15000, "2027-01-04"), (15000, "2027-02-04")]
    assert conv.add_tool_call("p", "record_payment_plan", plan_args(items)).ok
    call, promises = await finalize(settings, sessions, conv)
    assert call.outcome == CallOutcome.PROMISE_TO_PAY.value and call.hardship_note is None
    assert [
        (p.installment, p.installments, p.settlement, p.amount_minor, p.due_date.isoformat())
        for p in promises
    ] == [(i, 3, False, a, d) for i, (a, d) in enumerate(items, start=1)]
    assert {p.currency for p in promises} == {"USD"}
    assert {p.status for p in promises} == {"pending"}
    assert len({p.public_id for p in promises}) == 3


async def test_a_single_promise_is_installment_one_of_one(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    conv = verified()
    args = json.dumps({"amount_minor": 20000, "currency": "USD", "date": "2026-12-01"})
    assert conv.add_tool_call("p", "record_payment_promise", args).ok
    _, promises = await finalize(settings, sessions, conv)
    assert [(p.installment, p.installments, p.settlement, p.amount_minor) for p in promises] == [
        (1, 1, False, 20000)
    ]


async def test_a_settlement_plan_keeps_its_flag_on_every_installment(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    conv = verified(rules=default_rules(settlement_floor_bp=7000))
    items = [(16000, "2026-12-04"), (16000, "2027-01-04")]
    assert conv.add_tool_call("s", "record_payment_plan", plan_args(items, True)).ok
    _, promises = await finalize(settings, sessions, conv)
    assert [(p.installment, p.installments, p.settlement) for p in promises] == [
        (1, 2, True),
        (2, 2, True),
    ]


async def test_hardship_then_callback_keeps_the_note_and_no_promise(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    conv = verified()
    assert conv.add_tool_call("h", "report_hardship", '{"note": "lost my job"}').ok
    assert conv.add_tool_call("h2", "report_hardship", '{"note": "cannot manage that"}').ok
    when = (NOW + timedelta(days=3)).astimezone(conv.facts.tz).replace(hour=14).isoformat()
    assert conv.add_tool_call(
        "c", "schedule_callback", json.dumps({"when": when, "reason": "hardship"})
    ).ok
    call, promises = await finalize(settings, sessions, conv)
    assert call.outcome == CallOutcome.CALLBACK_SCHEDULED.value
    assert call.hardship_note == "lost my job; cannot manage that"
    assert promises == []


async def test_a_written_notice_request_is_its_own_outcome(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    conv = verified()
    assert conv.add_tool_call("v", "request_validation_notice", "{}").ok
    call, promises = await finalize(settings, sessions, conv)
    assert call.outcome == CallOutcome.VALIDATION_NOTICE_REQUESTED.value
    assert promises == []
    assert call.dispute_reason is None


async def test_already_paid_is_a_dispute_whose_reason_is_kept_on_the_call(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    from services.common.call_view import build_call, load_call

    conv = verified()
    reason = '{"reason": "already paid in May by bank transfer"}'
    assert conv.add_tool_call("d", "report_dispute", reason).ok
    call, promises = await finalize(settings, sessions, conv)
    assert call.outcome == CallOutcome.DISPUTED.value and promises == []
    assert call.dispute_reason == "already paid in May by bank transfer"
    assert call.hardship_note is None
    async with sessions() as s:  # the client's view of the call says why
        row = await load_call(s, call.id)
        assert row is not None
        view = build_call(row, recording_url=None, transcript_url=None)
    assert view.dispute_reason == "already paid in May by bank transfer"
