"""A call dispatched with a prompt variant: the model is prompted with that variant's stage text,
and the call (row, `call.completed`, transcript file) records the variant it was conducted with.

One cooperative call on the package's orchestrator and simulators (tests/orchestrator/conftest.py).
"""

from __future__ import annotations

import json

from sqlalchemy import select, update

from services.common.blobstore import GcsBlobStore
from services.common.models import Call, OutboxMessage
from services.voice_orchestrator.core import (
    DelinquencyStage,
    default_prompt_set,
    prompt_cache_key,
)
from services.voice_orchestrator.finalize import transcript_key
from tests.orchestrator.conftest import Orch

VARIANT = "plan_first"


async def test_the_dispatched_variant_is_rendered_and_recorded(orch: Orch) -> None:
    prompts = default_prompt_set()
    ours = prompts.variants[DelinquencyStage.LATE][VARIANT].body.splitlines()[-1]
    default = prompts.variants[DelinquencyStage.LATE]["default"].body.splitlines()[-1]
    mark_ours = "Lead with a plan rather than the full balance"
    mark_default = "Ask for the full balance by"
    assert mark_ours in ours and mark_default in default and mark_ours not in default

    number = await orch.assign("cooperative")
    call_id, data = await orch.new_call(number, stage="late", name="Jane Variant")
    version = prompts.version(DelinquencyStage.LATE, VARIANT)
    async with orch.sessions() as s, s.begin():  # as the scheduler leaves it at dispatch
        await s.execute(
            update(Call)
            .where(Call.id == call_id)
            .values(prompt_variant=VARIANT, prompt_version=version)
        )
    await orch.dispatch(data | {"prompt_variant": VARIANT, "prompt_version": version})
    call = await orch.wait_terminal(call_id, within=120)
    assert call.outcome == "promise_to_pay", call.failure_reason

    # What the model was sent: once verified, the system prompt carries plan_first's text.
    requests = [
        r
        for r in await orch.sim_records("openai")
        if r["params"].get("safety_identifier") == str(call_id)
    ]
    systems = [r["messages"][0]["content"] for r in requests]
    assert systems and all(m["role"] == "system" for m in (r["messages"][0] for r in requests))
    verified = [p for p in systems if "state: negotiation" in p or "state: commitment" in p]
    assert verified, "the model was never asked after verification"
    assert all(mark_ours in p and mark_default not in p for p in verified)
    assert not any(mark_ours in p for p in systems if p not in verified)
    assert {r["params"]["prompt_cache_key"] for r in requests} == {prompt_cache_key(version)}

    # What the call records.
    assert (call.prompt_variant, call.prompt_version) == (VARIANT, version)
    async with orch.sessions() as s:
        event = await s.scalar(
            select(OutboxMessage).where(
                OutboxMessage.ce_type == "call.completed",
                OutboxMessage.payload["call"]["id"].astext == str(call_id),
            )
        )
    assert event is not None
    assert event.payload["call"]["prompt_variant"] == VARIANT
    assert event.payload["call"]["prompt_version"] == version
    doc = json.loads(await GcsBlobStore(orch.settings).get(transcript_key(str(call_id))))
    assert (doc["prompt_variant"], doc["prompt_version"]) == (VARIANT, version)
