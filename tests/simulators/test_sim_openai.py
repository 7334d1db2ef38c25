"""OpenAI simulator through the official ``openai`` SDK (``AsyncOpenAI(base_url=...)``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from simulators import SimulatorStack
from tests.simulators.tool_lists import tool_defs

TOOLS = tool_defs(
    parameters={"type": "object", "properties": {}, "additionalProperties": True}, described=True
)


def system_prompt(state: str, padding: int = 0) -> str:
    return (
        "You are Alex, a polite collections agent. " + "Be brief. " * padding + "\n"
        "### CALL FACTS\n"
        f"state: {state}\n"
        "stage: early\n"
        "company: Acme Finance\n"
        "agent_name: Alex\n"
        "debtor_name: Jane Doe\n"
        "balance_minor: 45000\n"
        "currency: USD\n"
        "balance_spoken: four hundred fifty dollars\n"
        "due_date: 2026-11-01\n"
        "today: 2026-11-27\n"
        "latest_promise_date: 2026-12-11\n"
    )


@pytest.fixture
async def client(sim: SimulatorStack) -> AsyncIterator[AsyncOpenAI]:
    assert sim.urls is not None
    c = AsyncOpenAI(api_key="sk-test", base_url=sim.urls.openai, max_retries=0)
    yield c
    await c.close()


async def _stream(client: AsyncOpenAI, **kwargs: Any) -> tuple[float, list[tuple[float, Any]]]:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    stream = await client.chat.completions.create(stream=True, **kwargs)
    chunks = [(loop.time() - t0, chunk) async for chunk in stream]
    return t0, chunks


async def test_streaming_text_then_tool_call_with_usage(client: AsyncOpenAI) -> None:
    messages = [
        {"role": "system", "content": system_prompt("negotiation")},
        {"role": "assistant", "content": "Your balance is four hundred fifty dollars."},
        {"role": "user", "content": "I can pay 200 dollars on December 5."},
    ]
    _, chunks = await _stream(
        client,
        model="gpt-5-mini",
        messages=messages,
        tools=TOOLS,
        tool_choice="auto",
        reasoning_effort="minimal",
        verbosity="low",
        max_completion_tokens=400,
        stream_options={"include_usage": True},
    )
    body = [c for _, c in chunks if c.choices]
    assert all(c.object == "chat.completion.chunk" for _, c in chunks)
    assert len({c.id for _, c in chunks}) == 1
    assert body[0].model == "gpt-5-mini-2025-08-07"
    calls: dict[int, dict[str, str]] = {}
    for c in body:
        for tc in c.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += tc.id or ""
            entry["name"] += (tc.function.name if tc.function else None) or ""
            entry["arguments"] += (tc.function.arguments if tc.function else None) or ""
    assert list(calls) == [0]
    assert calls[0]["name"] == "record_payment_promise" and calls[0]["id"].startswith("call_")
    assert json.loads(calls[0]["arguments"]) == {
        "amount_minor": 20000,
        "currency": "USD",
        "date": "2026-12-05",
    }
    arg_chunks = [
        c for c in body if c.choices[0].delta.tool_calls and not c.choices[0].delta.tool_calls[0].id
    ]
    assert len(arg_chunks) > 3  # arguments arrive in pieces
    assert body[-1].choices[0].finish_reason == "tool_calls"
    # As GPT-5 does: a few words first, in content deltas, then the tool call in the same stream.
    kinds = [
        "tool" if c.choices[0].delta.tool_calls else "text"
        for c in body
        if c.choices[0].delta.tool_calls or c.choices[0].delta.content
    ]
    assert kinds[0] == "text" and "text" not in kinds[kinds.index("tool") :]
    text = "".join(c.choices[0].delta.content or "" for c in body)
    assert text in (
        "Okay.",
        "Great, thank you.",
        "Okay, so that's 200 dollars on Saturday, December 5.",
    )
    assert body[0].choices[0].delta.role == "assistant"
    usage_chunk = chunks[-1][1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    u = usage_chunk.usage
    assert u.prompt_tokens > 50 and u.completion_tokens > 5
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.prompt_tokens_details is not None and u.prompt_tokens_details.cached_tokens == 0
    assert all(c.usage is None for _, c in chunks[:-1])


async def test_ttft_and_token_rate(client: AsyncOpenAI, sim: SimulatorStack) -> None:
    ttft_s, tps = sim.config.openai_ttft_ms / 1000, sim.config.openai_tokens_per_s
    messages = [
        {"role": "system", "content": system_prompt("greeting")},
        {"role": "user", "content": "Hello?"},
    ]
    _, chunks = await _stream(
        client, model="gpt-5-mini", messages=messages, tools=TOOLS, reasoning_effort="minimal"
    )
    pieces = [(t, c) for t, c in chunks if c.choices and c.choices[0].delta.content]
    text = "".join(c.choices[0].delta.content for _, c in pieces)
    assert text.startswith("Hello, this is Alex, an AI assistant calling from Acme Finance.")
    assert text.count(". ") + text.count("? ") >= 1  # several sentences
    # The simulator schedules each piece at an absolute time (ttft, then one per 1/tps) and
    # catches up when late: seen from the client a piece is never early, and on a busy machine
    # it may be late, so the upper bounds leave a second of slack (a doubled wait still fails).
    ttft = pieces[0][0]
    assert ttft_s - 0.005 <= ttft < ttft_s + 1.0, ttft
    # Never early also holds for the last piece against its own slot (a late first piece makes
    # the span shorter than planned: the catching up), and the pace shows in the span.
    span = pieces[-1][0] - pieces[0][0]
    planned = (len(pieces) - 1) / tps
    assert pieces[-1][0] >= ttft_s + planned - 0.005, (pieces[-1][0], ttft_s + planned)
    assert span < planned + 1.0, (span, planned)
    first = next(c for _, c in chunks if c.choices)
    assert first.choices[0].delta.role == "assistant"
    assert chunks[-1][1].choices[0].finish_reason == "stop"

    # reasoning_effort=low spends 64 reasoning tokens before the first output token.
    _, low = await _stream(
        client,
        model="gpt-5-mini",
        messages=messages,
        tools=TOOLS,
        reasoning_effort="low",
        stream_options={"include_usage": True},
    )
    low_ttft = next(t for t, c in low if c.choices and c.choices[0].delta.content)
    assert ttft_s + 64 / tps - 0.005 <= low_ttft < ttft_s + 64 / tps + 1.0, low_ttft
    details = low[-1][1].usage.completion_tokens_details
    assert details is not None and details.reasoning_tokens == 64


async def test_non_stream_is_deterministic_and_caches_prompts(client: AsyncOpenAI) -> None:
    messages = [
        # A long system prompt (> 1024 tokens) so prompt caching applies.
        {"role": "system", "content": system_prompt("verification", padding=500)},
        {"role": "assistant", "content": "May I please speak with Jane Doe?"},
        {"role": "user", "content": "Yes, speaking."},
    ]
    kwargs: dict[str, Any] = dict(
        model="gpt-5-mini", messages=messages, tools=TOOLS, reasoning_effort="minimal"
    )
    first = await client.chat.completions.create(**kwargs)
    second = await client.chat.completions.create(**kwargs)
    for r in (first, second):
        msg = r.choices[0].message
        assert r.object == "chat.completion" and r.choices[0].finish_reason == "tool_calls"
        assert msg.content == "Thank you, Jane." and msg.tool_calls is not None
        assert [(t.function.name, t.function.arguments) for t in msg.tool_calls] == [
            ("confirm_identity", "{}")
        ]
    assert first.choices[0].message.tool_calls[0].id == second.choices[0].message.tool_calls[0].id
    assert first.usage is not None and second.usage is not None
    assert first.usage.prompt_tokens == second.usage.prompt_tokens > 1024
    # The tools prefix was already seen by earlier tests; the second request reuses it all.
    before = first.usage.prompt_tokens_details.cached_tokens
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached > before and cached % 128 == 0
    assert cached >= second.usage.prompt_tokens - 256


async def test_tool_result_and_parameter_errors(
    client: AsyncOpenAI, sim: SimulatorStack, http: Any
) -> None:
    messages = [
        {"role": "system", "content": system_prompt("negotiation")},
        {"role": "user", "content": "Yes, speaking."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "confirm_identity", "arguments": "{}"},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": json.dumps({"ok": True, "message": "verified", "state": "negotiation"}),
        },
    ]
    r = await client.chat.completions.create(
        model="gpt-5-mini", messages=messages, tools=TOOLS, reasoning_effort="minimal"
    )
    text = r.choices[0].message.content or ""
    assert "attempt to collect a debt" in text and "four hundred fifty dollars" in text

    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(model="gpt-5-mini", messages=messages, temperature=0.2)
    assert err.value.code == "unsupported_value"
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="gpt-5-mini", messages=messages, max_tokens=50)
    assert sim.urls is not None
    async with http.post(f"{sim.urls.openai}/chat/completions", json={}) as resp:
        assert resp.status == 401  # no Authorization: Bearer header
        assert (await resp.json())["error"]["code"] == "invalid_api_key"
    assert sim.network is not None
    rec = sim.network.records.openai[-1]
    assert rec["model"] == "gpt-5-mini" and "usage" in rec
