"""Reconciliation of dials whose outcome was lost and of dispatches that never arrived.

The rules are plain functions, tested on their own; the sweeps run against the real database,
the Twilio simulator (its call list) and the running orchestrator, which serves the calls the
reconciler places or adopts. Each test's rows are far older than anything other tests leave
(and the deadlines are set to match), so a sweep acts on this test's rows only.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from services.common.models import Call, OutboxMessage
from services.common.settings import Settings
from services.voice_orchestrator.calls import SnapshotCache
from services.voice_orchestrator.dispatch import (
    Dispatcher,
    call_twiml,
    status_callback_url,
)
from services.voice_orchestrator.reconcile import (
    CLOCK_SKEW,
    Adopt,
    Fail,
    Reconciler,
    Redial,
    TwilioCall,
    Wait,
    adopt_call_sid,
    candidates,
    decide_dispatched,
    decide_intent,
    twilio_lookup,
)
from services.voice_orchestrator.vendors.twilio import TwilioTelephony
from tests.orchestrator.conftest import Orch

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SETTLE = timedelta(seconds=30)
# Ages for this module's rows: older than anything the rest of the suite leaves behind.
OLD = timedelta(days=1)


# ---- the rules ------------------------------------------------------------------------------


def _intent(
    found: list[TwilioCall], *, age_s: float = 60, status: str = "dialing", attempts: int = 1
) -> Any:
    return decide_intent(
        status=status,
        dial_started_at=T0,
        dial_attempts=attempts,
        found=found,
        now=T0 + timedelta(seconds=age_s),
        settle=SETTLE,
        max_attempts=2,
    )


def test_intent_rules() -> None:
    ours = TwilioCall("CA1", "ringing", T0)
    assert _intent([ours], age_s=3) == Adopt(ours)  # found: adopted at any age
    assert _intent([], age_s=10) == Wait()  # a create-call may still be in flight
    assert _intent([], age_s=31) == Redial()
    assert isinstance(_intent([], age_s=31, attempts=2), Fail)  # bounded
    assert isinstance(_intent([], age_s=31, status="ringing"), Fail)  # Twilio saw it: never blind
    two = _intent([ours, TwilioCall("CA2", "queued", T0)])
    assert isinstance(two, Fail) and "cannot tell" in two.reason


def test_candidates_are_new_and_unowned() -> None:
    calls = [
        TwilioCall("CAnew", "ringing", T0 + timedelta(seconds=1)),
        TwilioCall("CAskewed", "ringing", T0 - CLOCK_SKEW + timedelta(seconds=1)),
        TwilioCall("CAold", "completed", T0 - CLOCK_SKEW - timedelta(seconds=1)),
        TwilioCall("CAowned", "completed", T0 + timedelta(seconds=2)),
    ]
    assert [c.sid for c in candidates(calls, T0, {"CAowned"})] == ["CAnew", "CAskewed"]


def test_dispatched_rules() -> None:
    deadline, max_age = timedelta(seconds=120), timedelta(seconds=900)

    def at(age_s: float) -> Any:
        return decide_dispatched(
            dispatched_at=T0, now=T0 + timedelta(seconds=age_s), deadline=deadline, max_age=max_age
        )

    assert at(119) == Wait()
    assert at(121) == Redial()
    late = at(901)
    assert isinstance(late, Fail) and "too late" in late.reason


# ---- the sweeps -----------------------------------------------------------------------------


@pytest.fixture
async def reconciler(orch: Orch) -> Any:
    settings: Settings = orch.settings.model_copy(
        update={
            "call_dispatch_deadline_seconds": OLD.total_seconds() / 2,
            "call_dispatch_max_age_seconds": OLD.total_seconds() * 2,
            "dial_reconcile_after_seconds": OLD.total_seconds() / 2,
        }
    )
    telephony = TwilioTelephony(settings)
    applied: list[tuple[uuid.UUID, dict[str, str]]] = []

    async def apply_status(call_id: uuid.UUID, params: dict[str, str]) -> None:
        applied.append((call_id, params))

    dispatcher = Dispatcher(settings, telephony, SnapshotCache(), orch.sessions)
    rec = Reconciler(
        settings,
        orch.sessions,
        dispatcher,
        twilio_lookup(telephony),
        apply_status=apply_status,
    )
    rec.applied = applied  # type: ignore[attr-defined]
    rec.telephony = telephony  # type: ignore[attr-defined]
    yield rec
    await telephony.aclose()


def _answers_and_hangs_up(ring_ms: int) -> dict[str, Any]:
    """A short real call: rings, answers "Hello?", hangs up."""
    return {
        "name": "answers_and_hangs_up",
        "answer": "answered",
        "ring_ms": ring_ms,
        "hangup": "after_last_line",
        "hangup_delay_ms": 300,
        "lines": [{"text": "Hello?", "after": "answer", "delay_ms": 300}],
    }


async def _set(orch: Orch, call_id: uuid.UUID, **values: Any) -> None:
    async with orch.sessions() as s, s.begin():
        await s.execute(update(Call).where(Call.id == call_id).values(**values))


async def _row(orch: Orch, call_id: uuid.UUID) -> Call:
    async with orch.sessions() as s:
        call = await s.scalar(select(Call).where(Call.id == call_id))
    assert call is not None
    return call


async def test_a_lost_dispatch_is_dialed_once_and_the_call_completes(
    orch: Orch, reconciler: Reconciler
) -> None:
    phone = await orch.assign(_answers_and_hangs_up(ring_ms=500))
    call_id, _ = await orch.new_call(phone)  # `dispatched`, and no message is ever sent
    await _set(orch, call_id, dispatched_at=datetime.now(UTC) - OLD)

    report = await reconciler.sweep()
    assert report.redialed >= 1
    again = await reconciler.sweep()  # the claim holds: never a second dial
    row = await _row(orch, call_id)
    assert row.dial_attempts == 1 and row.twilio_call_sid is not None
    call = await orch.wait_terminal(call_id)
    assert call.status == "completed" and call.heartbeat_at is not None  # a session ran it
    assert [c["sid"] for c in await orch.sim_calls_to(phone)] == [row.twilio_call_sid]
    assert again.redialed == 0


async def test_a_dispatch_too_old_to_place_is_failed_with_its_reason(
    orch: Orch, reconciler: Reconciler
) -> None:
    phone = await orch.assign("cooperative")
    call_id, _ = await orch.new_call(phone)
    await _set(orch, call_id, dispatched_at=datetime.now(UTC) - OLD * 3)

    await reconciler.sweep()
    row = await _row(orch, call_id)
    assert (row.status, row.outcome) == ("failed", "failed")
    assert "too late" in (row.failure_reason or "")
    assert row.dial_attempts == 0
    assert await orch.sim_calls_to(phone) == []
    async with orch.sessions() as s:
        events = await s.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.ce_type == "call.completed",
                OutboxMessage.payload["call"]["id"].astext == str(call_id),
            )
        )
    assert events == 1  # the client hears about it like any ended call


async def test_a_dial_whose_answer_was_lost_is_adopted_from_twilios_call_list(
    orch: Orch, reconciler: Reconciler
) -> None:
    """What a crash right after create-call leaves: the intent, no CallSid, a ringing Twilio
    call. Its status callbacks go nowhere here, so only the call list can find it."""
    phone = await orch.assign(_answers_and_hangs_up(ring_ms=2500))
    call_id, _ = await orch.new_call(phone)
    await _set(
        orch,
        call_id,
        status="dialing",
        started_at=func.now(),
        dial_started_at=datetime.now(UTC) - timedelta(seconds=5),
        dial_attempts=1,
    )
    s = orch.settings
    sid = await reconciler.telephony.create_call(  # type: ignore[attr-defined]
        to=phone,
        twiml=call_twiml(s, call_id, 1),
        status_callback=status_callback_url(s, call_id).replace(
            s.orchestrator_public_url, "http://127.0.0.1:9"
        ),
        time_limit=s.call_time_limit_seconds,
    )

    report = await reconciler.sweep()
    assert report.adopted == 1 and report.redialed == 0
    assert (await _row(orch, call_id)).twilio_call_sid == sid
    [(applied_to, params)] = reconciler.applied  # type: ignore[attr-defined]
    assert applied_to == call_id and params["CallSid"] == sid
    assert params["CallStatus"] in ("queued", "ringing")  # Twilio's status, as a callback has it
    # The media stream carries that CallSid, so the call is served as if nothing happened.
    call = await orch.wait_terminal(call_id)
    assert call.status == "completed" and call.heartbeat_at is not None  # a session ran it
    assert "never connected" not in (call.failure_reason or "")
    assert [c["sid"] for c in await orch.sim_calls_to(phone)] == [sid]


async def test_a_dial_twilio_never_got_is_dialed_again_then_given_up(
    orch: Orch, reconciler: Reconciler
) -> None:
    phone = await orch.assign("busy")
    call_id, _ = await orch.new_call(phone)
    await _set(
        orch,
        call_id,
        status="dialing",
        started_at=func.now(),
        dial_started_at=datetime.now(UTC) - OLD,
        dial_attempts=1,
    )
    report = await reconciler.sweep()
    assert report.redialed >= 1
    row = await _row(orch, call_id)
    assert row.dial_attempts == 2 and row.twilio_call_sid is not None
    call = await orch.wait_terminal(call_id)
    assert call.status == "busy"
    assert [c["sid"] for c in await orch.sim_calls_to(phone)] == [row.twilio_call_sid]

    # At the cap: failed, not dialed a third time.
    phone2 = await orch.assign("busy")
    call2, _ = await orch.new_call(phone2)
    await _set(
        orch,
        call2,
        status="dialing",
        started_at=func.now(),
        dial_started_at=datetime.now(UTC) - OLD,
        dial_attempts=2,
    )
    await reconciler.sweep()
    row2 = await _row(orch, call2)
    assert (row2.status, row2.outcome) == ("failed", "failed")
    assert "not dialed again" in (row2.failure_reason or "")
    assert await orch.sim_calls_to(phone2) == []


async def test_a_status_callback_adopts_its_callsid_once_and_never_one_another_call_owns(
    orch: Orch,
) -> None:
    """The callback path of a lost create-call answer: the signed callback's CallSid goes on the
    intent row; a second callback changes nothing; a CallSid another row owns is refused."""
    lost, _ = await orch.new_call(await orch.assign(_answers_and_hangs_up(ring_ms=500)))
    owner, _ = await orch.new_call(await orch.assign(_answers_and_hangs_up(ring_ms=500)))
    started = datetime.now(UTC) - OLD
    for call_id in (lost, owner):
        await _set(orch, call_id, status="ringing", dial_started_at=started, dial_attempts=1)
    owned_sid, sid = f"CA{uuid.uuid4().hex}", f"CA{uuid.uuid4().hex}"
    await _set(orch, owner, twilio_call_sid=owned_sid)

    async with orch.sessions() as s, s.begin():
        assert not await adopt_call_sid(s, lost, owned_sid)  # another row's: refused
        assert not await adopt_call_sid(s, lost, "")
    assert (await _row(orch, lost)).twilio_call_sid is None
    async with orch.sessions() as s, s.begin():
        assert await adopt_call_sid(s, lost, sid)
    async with orch.sessions() as s, s.begin():
        assert not await adopt_call_sid(s, lost, f"CA{uuid.uuid4().hex}")  # it has one now
        assert not await adopt_call_sid(s, owner, sid)  # and it is taken
    assert (await _row(orch, lost)).twilio_call_sid == sid
    assert (await _row(orch, owner)).twilio_call_sid == owned_sid
    await _set(orch, lost, status="completed")
    await _set(orch, owner, status="completed")
