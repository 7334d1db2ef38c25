"""An early request thrown away is still billed for its prompt: the call's usage counts it.

A cancelled stream never gets its usage chunk, so the prompt tokens are estimated from the call's
own tokens per character; checked here against what the OpenAI simulator billed the request.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from services.voice_orchestrator.core import Conversation
from services.voice_orchestrator.core import prompt_cache_key as core_key
from services.voice_orchestrator.ports import LlmUsage, prompt_chars
from services.voice_orchestrator.session.early import CHARS_PER_TOKEN, estimated_prompt_tokens
from services.voice_orchestrator.session.responder import Responder
from services.voice_orchestrator.vendors.openai_llm import OpenAiLlm, openai_client
from simulators import SimulatorStack
from tests.orchestrator.test_warm import facts, settings_for


def test_prompt_chars_counts_text_and_tool_arguments() -> None:
    messages = [
        {"role": "system", "content": "abcd"},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"arguments": "{}"}}]},
        {"role": "tool", "content": "ok"},
    ]
    assert prompt_chars(messages) == 4 + 2 + 2


def test_the_estimate_uses_the_calls_own_ratio_and_four_characters_before_one() -> None:
    messages = [{"role": "user", "content": "x" * 400}]
    assert estimated_prompt_tokens(messages, LlmUsage()) == round(400 / CHARS_PER_TOKEN)
    measured = LlmUsage(last_prompt_tokens=300, last_prompt_chars=1000)
    assert estimated_prompt_tokens(messages, measured) == 120


async def test_a_discarded_early_request_meters_about_the_prompt_it_was_billed(
    sim: SimulatorStack,
) -> None:
    assert sim.network is not None
    s = settings_for(sim, openai_timeout_seconds=5.0)
    client = openai_client(s)
    try:
        conv = Conversation(facts(), datetime.now(UTC))
        key = f"{core_key(conv.prompt_version)}-{uuid.uuid4().hex[:8]}"
        llm = OpenAiLlm(s, client, cache_key=key)
        messages = [*conv.llm_messages(), {"role": "user", "content": "Hello?"}]
        async for _ in llm.stream(messages, conv.tools()):
            pass  # one whole request: the call's tokens per character
        assert llm.usage.last_prompt_tokens > 0 and llm.usage.last_prompt_chars > 0

        responder = Responder(conv, llm, max_tool_rounds=4, now=asyncio.get_running_loop().time)
        responder.start_early("Yes, this is Jane. I can pay fifty dollars on Friday")
        early = responder.early
        assert early is not None
        async with asyncio.timeout(10):
            # A counter the request bumps, not an event: poll it.
            while early.deltas == 0:  # noqa: ASYNC110 - the model started: its prompt was read
                await asyncio.sleep(0.01)
        assert responder.discard_early()
        stats = responder.early_stats
        assert stats.discards == 1 and stats.wasted_output_tokens >= 1

        billed = [
            r["usage"]["prompt_tokens"]
            for r in sim.network.records.openai
            if r["params"].get("prompt_cache_key") == key
        ]
        assert len(billed) == 2
        # The whole request's usage was reported; the cancelled one's only estimated.
        assert llm.usage.input_tokens == billed[0]
        assert abs(stats.wasted_input_tokens - billed[1]) <= 0.1 * billed[1], (
            stats.wasted_input_tokens,
            billed[1],
        )
        assert stats.as_usage()["wasted_input_tokens"] == stats.wasted_input_tokens
    finally:
        await client.close()
