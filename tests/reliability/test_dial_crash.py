"""kill -9 between Twilio's create-call and storing its CallSid: the call is placed once.

The dial intent was committed before create-call; the restarted orchestrator finds it with no
CallSid, finds the call in Twilio's call list and adopts it. The redelivered `call.dispatch`
finds the call no longer `dispatched` and does not dial.
"""

from __future__ import annotations

import asyncio

import yaml
from sqlalchemy import select

from scripts.calls import create_debtor, fictional_number, trigger_call, wait_terminal
from services.common.models import Call
from simulators.personas import PERSONA_DIR
from tests.reliability.conftest import (
    SWEEPER_STALE_S,
    Env,
    hooks_for,
    restart,
    twilio_calls_to,
    wait_dead,
)

# The phone rings while the orchestrator is dead and restarting; it must still be ringing when
# the new process is up, or the media stream would find nobody. (A ringing call has no session
# heartbeat: the vanished-session sweep is given more than the ring time for this test.)
RING_MS = 15000  # the restart takes ~3 s, more on a loaded 2-core runner


async def test_orchestrator_killed_after_create_call_places_the_call_once(env: Env) -> None:
    orch = env.proc("voice-orchestrator")
    await restart(orch, FAILPOINTS="dispatch.after_create_call", CALL_SWEEPER_STALE_SECONDS="60")
    try:
        phone = fictional_number(404)
        with (PERSONA_DIR / "wrong_person.yaml").open() as f:  # a short conversation
            persona = {**yaml.safe_load(f), "name": "wrong_person_slow", "ring_ms": RING_MS}
        persona.pop("number_suffix", None)
        r = await env.sim.post("/_sim/numbers", json={"number": phone, "persona": persona})
        r.raise_for_status()
        debtor = await create_debtor(env.api, phone)
        call_id = (await trigger_call(env.api, debtor["id"]))["id"]
        assert await wait_dead(orch, within_s=30) == -9

        # Dead between the two: Twilio has the call, we have only the intent.
        [placed] = await twilio_calls_to(env, phone)
        async with env.sessions() as s:
            row = await s.scalar(select(Call).where(Call.id == call_id))
        assert row is not None and row.status == "dialing"
        assert row.dial_started_at is not None and row.twilio_call_sid is None

        await restart(orch)
        view = (await wait_terminal(env.api, [call_id], timeout_s=90))[call_id]
        assert view["status"] == "completed" and view["outcome"] == "wrong_party"
        await env.receiver.wait_for(1, timeout_s=30)
        await asyncio.sleep(2)  # a second dial, or a second event, would show now
        assert [c["sid"] for c in await twilio_calls_to(env, phone)] == [placed["sid"]]
        async with env.sessions() as s:
            row = await s.scalar(select(Call).where(Call.id == call_id))
        assert row is not None
        assert row.twilio_call_sid == placed["sid"] and row.dial_attempts == 1
        hooks = hooks_for(env, call_id)
        assert len(hooks) == 1 and hooks[0].payload["data"]["call"]["outcome"] == "wrong_party"
    finally:
        orch.env["CALL_SWEEPER_STALE_SECONDS"] = str(SWEEPER_STALE_S)
        await restart(orch)
