"""The Call Scheduler places the follow-ups itself, through the whole deployment: a busy line is
dialed again after its backoff, and a callback the debtor agreed to is placed at its time.

The callback's time is hours away, so the test moves that one schedule entry to now (simulated
time, as the demo does); the scheduler then checks and places it exactly as it would then.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import select

from scripts.calls import wait_terminal
from scripts.demo_followup import fast_forward, wait_for_entry, wait_for_new_call
from services.common.models import ScheduledCall
from tests.reliability.conftest import Env, hooks_for, place, restart, twilio_calls_to

SHORT_BACKOFF = {
    "RETRY_BASE_SECONDS": "3",
    "RETRY_CAP_SECONDS": "6",
    "SCHEDULER_TICK_SECONDS": "0.5",
}


async def _entries(env: Env, debtor_id: str) -> list[ScheduledCall]:
    async with env.sessions() as s:
        rows = await s.scalars(
            select(ScheduledCall)
            .where(ScheduledCall.debtor_id == debtor_id)
            .order_by(ScheduledCall.created_at)
        )
        return list(rows)


async def test_a_busy_line_is_dialed_again_after_its_backoff(env: Env) -> None:
    scheduler = env.proc("call-scheduler")
    await restart(scheduler, **SHORT_BACKOFF)
    try:
        phone, first_id = await place(env, "busy", 471)
        first = (await wait_terminal(env.api, [first_id], timeout_s=60))[first_id]
        assert first["status"] == "busy" and first["attempt"] == 1
        debtor_id = first["debtor_id"]

        retry = await wait_for_new_call(env.api, debtor_id, {first_id}, timeout_s=30)
        assert retry is not None, "the busy call was never retried"
        second = (await wait_terminal(env.api, [retry["id"]], timeout_s=60))[retry["id"]]
        assert second["status"] == "busy" and second["attempt"] == 2

        # The retry waited its backoff (base 3 s: at least half of it, with jitter).
        ended = datetime.fromisoformat(first["ended_at"])
        dialed = datetime.fromisoformat(second["dispatched_at"])
        assert dialed - ended >= timedelta(seconds=1.5)
        entry = next(
            e
            for e in await _entries(env, debtor_id)
            if e.call_id is not None and str(e.call_id) == retry["id"]
        )
        assert entry.reason == "retry" and str(entry.source_call_id) == first_id
        assert entry.attempt == 2 and entry.status == "dispatched"
        # Both dials reached Twilio, and each ended call got its webhook.
        sids = [c["sid"] for c in await twilio_calls_to(env, phone)]
        assert first["twilio_call_sid"] in sids and second["twilio_call_sid"] in sids
        await env.receiver.wait_for(2, timeout_s=30)
        assert len(hooks_for(env, first_id)) == 1 and len(hooks_for(env, retry["id"])) == 1
    finally:
        for key in SHORT_BACKOFF:
            scheduler.env.pop(key, None)
        await restart(scheduler)


async def test_an_agreed_callback_is_placed_at_its_time(env: Env) -> None:
    _, first_id = await place(env, "callback_later", 472)
    first = (await wait_terminal(env.api, [first_id], timeout_s=120))[first_id]
    assert first["outcome"] == "callback_scheduled"
    debtor_id = first["debtor_id"]
    agreed = datetime.fromisoformat(first["callback"]["scheduled_for"])

    entry = await wait_for_entry(env.api, debtor_id)
    assert entry is not None, "no callback was scheduled"
    assert entry["reason"] == "callback" and entry["follows_call_id"] == first_id
    # The local stack's window is open all day, so the agreed time stands as it is.
    assert datetime.fromisoformat(entry["not_before"]) == agreed
    await asyncio.sleep(2)
    assert await wait_for_new_call(env.api, debtor_id, {first_id}, timeout_s=0.5) is None

    await fast_forward(env.deployment.stack.postgres.url, entry["id"])
    placed = await wait_for_new_call(env.api, debtor_id, {first_id}, timeout_s=30)
    assert placed is not None, "the callback was not placed at its time"
    done = (await wait_terminal(env.api, [placed["id"]], timeout_s=120))[placed["id"]]
    assert done["status"] == "completed"
    [row] = [e for e in await _entries(env, debtor_id) if str(e.id) == entry["id"]]
    assert row.status == "dispatched" and str(row.call_id) == placed["id"]
