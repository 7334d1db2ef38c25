"""Infrastructure failing under a live deployment: PostgreSQL stopped and restarted mid-call,
the Pub/Sub emulator restarted (it comes back empty). Clear errors while it lasts, nothing lost
after."""

from __future__ import annotations

import asyncio
import time

from scripts.calls import create_debtor, fictional_number, wait_terminal
from services.common.bus import ensure_topology
from tests.reliability.conftest import Env, hooks_for, place, twilio_calls_to


async def _wait_status(env: Env, call_id: str, status: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if (await env.api.get(f"/v1/calls/{call_id}")).json()["status"] == status:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"call {call_id} never reached {status}")


async def test_postgres_restarted_mid_call(env: Env) -> None:
    """PostgreSQL goes away for a few seconds while a call is live. The call itself goes on (the
    voice loop does not touch the database); the API answers 503 problem+json with Retry-After
    meanwhile; afterwards the call is stored whole and reported once."""
    phone, call_id = await place(env, "cooperative", 501)
    await _wait_status(env, call_id, "in_progress", within_s=60)
    postgres = env.deployment.stack.postgres
    before = (await env.api.get("/v1/debtors", params={"limit": 100})).json()["data"]

    await asyncio.to_thread(postgres.stop)
    try:
        refused = await env.api.post(
            "/v1/debtors",
            json={
                "name": "Down Time",
                "phone": fictional_number(502),
                "timezone": "America/New_York",
                "stage": "early",
                "amount_owed": {"amount_minor": 1000, "currency": "USD"},
                "due_date": "2026-11-01",
            },
        )
        read = await env.api.get(f"/v1/calls/{call_id}")
        await asyncio.sleep(2)
    finally:
        await asyncio.to_thread(postgres.start)

    for r in (refused, read):
        assert r.status_code == 503, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"] == "urn:problem:service-unavailable"
        assert int(r.headers["retry-after"]) > 0
    after = (await env.api.get("/v1/debtors", params={"limit": 100})).json()["data"]
    assert [d["id"] for d in after] == [d["id"] for d in before]  # the refused create left nothing

    view = (await wait_terminal(env.api, [call_id], timeout_s=120))[call_id]
    assert (view["status"], view["outcome"]) == ("completed", "promise_to_pay")
    assert view["payment_promise"] is not None
    turns = view["transcript"]
    assert len(turns) >= 4 and [t["index"] for t in turns] == list(range(len(turns)))
    await env.receiver.wait_for(1, timeout_s=30)
    await asyncio.sleep(2)
    assert len(hooks_for(env, call_id)) == 1
    assert len(await twilio_calls_to(env, phone)) == 1


async def test_pubsub_emulator_restarted_empty(env: Env) -> None:
    """The emulator restarts and forgets every topic and subscription. A trigger accepted
    meanwhile is kept in the outbox; consumers report the failure on /healthz and keep trying;
    once the topology is provisioned again (what the stack script does) the call goes through
    exactly once."""
    stack = env.deployment.stack
    await asyncio.to_thread(stack.pubsub.restart)
    orch = env.proc("voice-orchestrator")

    phone = fictional_number(503)
    await env.sim.post("/_sim/numbers", json={"number": phone, "persona": "busy"})
    debtor = await create_debtor(env.api, phone)
    accepted = await env.api.post(f"/v1/debtors/{debtor['id']}/calls", json={})
    assert accepted.status_code == 202
    call_id = accepted.json()["id"]

    health: dict[str, object] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        health = (await env.sim.get(orch.url + "/healthz")).json()
        if health["status"] == "degraded":
            break
        await asyncio.sleep(0.2)
    assert health["status"] == "degraded" and "pubsub" in health, health
    # The scheduler's tick may have claimed it from the database (its dispatch then waits in
    # the outbox), but nothing reached the orchestrator: nobody was dialed.
    assert (await env.api.get(f"/v1/calls/{call_id}")).json()["status"] in ("queued", "dispatched")
    assert await twilio_calls_to(env, phone) == []

    await asyncio.to_thread(ensure_topology, stack.settings())
    view = (await wait_terminal(env.api, [call_id], timeout_s=120))[call_id]
    assert (view["status"], view["outcome"]) == ("busy", "no_answer")
    assert len(await twilio_calls_to(env, phone)) == 1
    await env.receiver.wait_for(1, timeout_s=60)
    await asyncio.sleep(2)
    assert len(hooks_for(env, call_id)) == 1
    assert (await env.sim.get(orch.url + "/healthz")).json()["status"] == "ok"
