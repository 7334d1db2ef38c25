"""Chat Completions request parameters for GPT-5-mini, tuned for voice latency."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def llm_request_params(
    *,
    model: str,
    tools: Sequence[Mapping[str, Any]],
    messages: Sequence[Mapping[str, Any]] | None = None,
    max_completion_tokens: int = 300,
    reasoning_effort: str = "minimal",
    verbosity: str = "low",
    prompt_cache_key: str | None = None,
) -> dict[str, Any]:
    """The Chat Completions request body (what `client.chat.completions.create(**params)` takes).

    Values come from the caller's settings (the core imports no settings). Why these:
    `reasoning_effort="minimal"` keeps time to first token under a second ("low" was seen to add
    seconds); `verbosity="low"` and a small `max_completion_tokens` keep replies speakable (the
    cap counts reasoning tokens too, so it is not set tighter); one tool call per turn
    (`parallel_tool_calls=False`) because the core validates moves one at a time against the
    state each one leaves behind; usage on the last chunk for cost accounting.
    """
    params: dict[str, Any] = {
        "model": model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "reasoning_effort": reasoning_effort,
        "verbosity": verbosity,
        "max_completion_tokens": max_completion_tokens,
    }
    if messages is not None:
        params["messages"] = [dict(m) for m in messages]
    if tools:
        # The API rejects parallel_tool_calls without tools, so both or neither.
        params["tools"] = [dict(t) for t in tools]
        params["tool_choice"] = "auto"
        params["parallel_tool_calls"] = False
    if prompt_cache_key:
        params["prompt_cache_key"] = prompt_cache_key  # same call -> same cache shard
    return params
