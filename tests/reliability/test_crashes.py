"""kill -9 at chosen points, then restart: nothing committed is lost, nothing is done twice.

Processes die by SIGKILL: either from outside at a moment the test picks (mid-call) or from inside
at a failpoint (`services.common.failpoints`), for moments an outside signal cannot hit (after a
commit and before the publish that follows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
from sqlalchemy import func, select

from scripts.calls import (
    TERMINAL,
    assign_persona,
    create_debtor,
    fictional_number,
    trigger_call,
    wait_terminal,
)
from services.common.models import Call, OutboxMessage, WebhookAttempt, WebhookDelivery
from tests.helpers import close_earlier_tests_work
from tests.reliability.conftest import (
    SWEEPER_STALE_S,
    Env,
    hooks_for,
    place,
    restart,
    twilio_calls_to,
    wait_dead,
)


async def _outbox_published(env: Env, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while True:
        async with env.sessions() as s:
            waiting = await s.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.published_at.is_(None))
            )
        if not waiting:
            return
        assert time.monotonic() < deadline, f"{waiting} outbox rows still unpublished"
        await asyncio.sleep(0.2)


async def test_every_service_killed_after_commit_before_publish(env: Env) -> None:
    """The trigger commits (call row + outbox row); each service's relay claims the row and dies
    before publishing, one after the other. Nothing is published, nothing is lost: after a
    restart the row goes out once, the call is placed once and reported once."""
    names = ("client-api", "call-scheduler", "voice-orchestrator")
    # A relay that finds any row at start-up dies before it is ever healthy, so the earlier
    # tests' leftovers must not make one: their webhook deliveries still being retried (the
    # retry pump asks for attempts at start-up) and their follow-ups still scheduled are
    # closed, and what is in the outbox goes out first.
    await close_earlier_tests_work(env.engine)
    await _outbox_published(env, within_s=30)
    await asyncio.gather(*(restart(env.proc(n), FAILPOINTS="outbox.before_publish") for n in names))

    phone = fictional_number(401)
    await assign_persona(env.sim, phone, "cooperative")
    debtor = await create_debtor(env.api, phone)
    # The API's own relay may die before the 202 is written: the commit happened regardless.
    with contextlib.suppress(httpx.RemoteProtocolError):
        await trigger_call(env.api, debtor["id"])
    async with env.sessions() as s:
        call_id = str(await s.scalar(select(Call.id).where(Call.debtor_id == debtor["id"])))
    for name in names:
        assert await wait_dead(env.proc(name), within_s=30) == -9

    async with env.sessions() as s:
        rows = (
            await s.scalars(
                select(OutboxMessage).where(OutboxMessage.payload["call_id"].astext == call_id)
            )
        ).all()
    # The scheduler's tick may also have claimed the call from its schedule row (no message
    # needed) and added its dispatch: unpublished too, as its relay died the same way.
    types = sorted(r.ce_type for r in rows)
    assert types in (["call.requested"], ["call.dispatch", "call.requested"]), types
    assert all(r.published_at is None for r in rows)
    assert await twilio_calls_to(env, phone) == []

    await asyncio.gather(*(restart(env.proc(n)) for n in names))
    view = (await wait_terminal(env.api, [call_id], timeout_s=120))[call_id]
    assert view["status"] == "completed" and view["outcome"] == "promise_to_pay"
    await env.receiver.wait_for(1, timeout_s=30)
    await asyncio.sleep(2)  # a duplicate would arrive now
    assert len(await twilio_calls_to(env, phone)) == 1
    hooks = hooks_for(env, call_id)
    assert len(hooks) == 1 and hooks[0].signature_valid


async def test_orchestrator_killed_mid_call_is_ended_by_the_sweeper(env: Env) -> None:
    """The orchestrator dies with a call live. The phone network hangs up when the media stream
    drops; the restarted orchestrator's sweeper ends the call `failed` once its heartbeat is
    stale, and the client gets its one `call.completed`, with what was said until the crash
    (the transcript is checkpointed every second)."""
    phone, call_id = await place(env, "negotiator", 402)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        view = (await env.api.get(f"/v1/calls/{call_id}")).json()
        if view["status"] == "in_progress":
            break
        await asyncio.sleep(0.2)
    assert view["status"] == "in_progress"
    await asyncio.sleep(6)  # a few turns into the conversation
    orch = env.proc("voice-orchestrator")
    orch.kill()
    killed_at = time.monotonic()

    # The debtor is not left on a dead line.
    [twilio_call] = await twilio_calls_to(env, phone)
    snap = (await env.sim.get(f"/_sim/calls/{twilio_call['sid']}?wait=15")).json()
    assert snap["status"] == "completed"

    await restart(orch)
    view = (await wait_terminal(env.api, [call_id], timeout_s=60))[call_id]
    ended_after = time.monotonic() - killed_at
    assert view["status"] == "failed" and view["outcome"] == "failed"
    assert "no heartbeat" in (view.get("failure_reason") or "")
    # Bounded: staleness plus one sweep interval plus the restart, with room for a slow CI.
    assert ended_after < SWEEPER_STALE_S * 2 + 60
    await env.receiver.wait_for(1, timeout_s=30)
    await asyncio.sleep(2)
    hooks = hooks_for(env, call_id)
    assert len(hooks) == 1 and hooks[0].payload["data"]["call"]["outcome"] == "failed"
    assert len(await twilio_calls_to(env, phone)) == 1
    turns = view["transcript"]
    assert len(turns) >= 2, turns
    assert [t["index"] for t in turns] == list(range(len(turns)))
    assert {t["speaker"] for t in turns} == {"agent", "debtor"}
    assert hooks[0].payload["data"]["call"]["transcript"] == turns


async def test_client_api_killed_mid_webhook_delivery_resumes(env: Env) -> None:
    """The Client API dies after the receiver got the POST and before it recorded the attempt.
    The attempt's transaction never committed and its message was never acked: after a restart
    the delivery is made again with the same webhook-id, recorded once, and succeeds."""
    api = env.proc("client-api")
    await restart(api, FAILPOINTS="webhook.during_post")
    _, call_id = await place(env, "busy", 403)
    assert await wait_dead(api, within_s=60) == -9
    first = await env.receiver.wait_for(1, timeout_s=5)
    assert len(first) == 1

    async with env.sessions() as s:
        [delivery] = (
            await s.scalars(
                select(WebhookDelivery).where(
                    WebhookDelivery.payload["data"]["call"]["id"].astext == call_id
                )
            )
        ).all()
        assert delivery.status == "pending" and delivery.attempt_count == 0

    await restart(api)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with env.sessions() as s:
            row = await s.get(WebhookDelivery, delivery.id)
            assert row is not None
            if row.status != "pending":
                break
        await asyncio.sleep(0.5)
    assert row.status == "succeeded"
    hooks = hooks_for(env, call_id)
    assert len(hooks) >= 2  # at least once: the receiver saw the first POST too
    assert {h.headers["webhook-id"] for h in hooks} == {hooks[0].headers["webhook-id"]}
    assert all(h.signature_valid for h in hooks)
    async with env.sessions() as s:
        attempts = (
            await s.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id))
        ).all()
        deliveries = (
            await s.scalars(
                select(WebhookDelivery).where(
                    WebhookDelivery.payload["data"]["call"]["id"].astext == call_id
                )
            )
        ).all()
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 200)]
    assert len(deliveries) == 1
    view = (await env.api.get(f"/v1/calls/{call_id}")).json()
    assert view["status"] in TERMINAL
