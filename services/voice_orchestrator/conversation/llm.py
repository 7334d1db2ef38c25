"""Chat Completions request parameters for GPT-5-mini, tuned for voice latency."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

MAX_CACHE_KEY_CHARS = 64  # keep the key short; a longer version string is hashed


def prompt_cache_key(prompt_version: str) -> str:
    """`prompt_cache_key` for a request: the same for every call on the same prompt version.

    The provider routes requests with the same key to the same cache shard, and the cached part
    is the shared prefix (the static policy and the tools), which depends on the prompt version,
    not on the call. Keying by call id would spread identical prefixes over many shards and
    make every call pay for a cold cache.
    """
    key = f"prompts:{prompt_version}"
    if len(key) <= MAX_CACHE_KEY_CHARS:
        return key
    return "prompts:" + hashlib.sha256(prompt_version.encode()).hexdigest()[:32]


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
        # Same prompt version -> same cache shard: build it with `prompt_cache_key(version)`.
        params["prompt_cache_key"] = prompt_cache_key
    return params
