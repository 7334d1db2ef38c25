"""GPT-5-mini through the official `openai` SDK (AsyncOpenAI, streaming Chat Completions).

`stream()` yields text deltas as they arrive and, at the end, the tool calls the model asked for.

The request goes through the client's generic `post` (the SDK's own transport: auth, retries,
timeouts, error types, SSE) with the body the core built and chunks left as parsed JSON.
`chat.completions.create` would walk the whole request (system prompt, history, tool schemas)
to transform it and build a pydantic model per streamed token; at 100 concurrent calls that was
~4 % of the orchestrator's event loop, for a body that needs no transformation.

Failures before the response starts (429, 408/409, 5xx, timeouts, connection errors) are retried
by the SDK: `OPENAI_MAX_RETRIES` times, after the server's `retry-after(-ms)` if it sent one, else
after 0.5 s, 1 s (-25% jitter). Every attempt has `OPENAI_TIMEOUT_SECONDS` to connect and to get
each next byte, and the whole request (attempts and waits) has `OPENAI_TIMEOUT_SECONDS ×
(OPENAI_MAX_RETRIES + 1)`: a live call does not wait out a `retry-after` that runs past that. A
stream that breaks or stalls after it started is not retried here (its text may already be
spoken): `LlmError(mid_stream=True)` lets the session decide.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
from openai import AsyncOpenAI, AsyncStream

from services.common.settings import Settings
from services.voice_orchestrator.core import llm_request_params
from services.voice_orchestrator.ports import (
    Completed,
    LlmError,
    LlmEvent,
    LlmUsage,
    TextDelta,
    ToolCall,
    prompt_chars,
)

# What a request can fail with: the SDK's errors (a transport cut mid-stream included, as
# APIConnectionError) and our own deadlines.
_FAILURES = (openai.APIError, TimeoutError)


@dataclass
class _ToolAcc:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAiLlm:
    def __init__(
        self,
        settings: Settings,
        client: AsyncOpenAI | None = None,
        *,
        cache_key: str | None = None,
        call_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.client = client or openai_client(settings)
        self.cache_key = cache_key
        self.call_id = call_id
        self.usage = LlmUsage()

    async def _open(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
        s = self.settings
        # The core owns the request shape (minimal reasoning, low verbosity, one tool call per
        # response, usage on the last chunk); settings supply the values.
        params = llm_request_params(
            model=s.openai_model,
            tools=tools,
            messages=messages,
            max_completion_tokens=s.openai_max_completion_tokens,
            reasoning_effort=s.openai_reasoning_effort,
            verbosity=s.openai_verbosity,
            prompt_cache_key=self.cache_key,
        )
        if self.call_id:
            # A stable, non-personal id per call: OpenAI's abuse monitoring groups requests by
            # it, and our records (and the simulator's fault rules) find a call's requests by
            # it now that the cache key is shared by every call of a prompt version.
            params["safety_identifier"] = self.call_id
        return await self.client.post(
            "/chat/completions",
            body=params,
            cast_to=object,
            stream=True,
            stream_cls=AsyncStream[object],
        )

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> AsyncIterator[LlmEvent]:
        s = self.settings
        self.usage.requests += 1
        try:
            # The SDK retries inside; this bounds the whole of it (see the module docstring).
            stream = await asyncio.wait_for(
                self._open(messages, tools), request_deadline_seconds(s)
            )
        except _FAILURES as exc:
            raise LlmError(repr(exc)) from exc
        try:
            async for event in self._events(stream, s.openai_timeout_seconds, messages):
                yield event
        except _FAILURES as exc:
            raise LlmError(repr(exc), mid_stream=True) from exc
        finally:
            await stream.close()

    async def _events(
        self, stream: Any, stall_s: float, messages: list[dict[str, Any]]
    ) -> AsyncIterator[LlmEvent]:
        tools: dict[int, _ToolAcc] = {}
        finish: str | None = None
        iterator = stream.__aiter__()
        while True:
            try:
                # A stalled stream counts as a failure, not as a silent agent. (`timeout`, not
                # `wait_for`: that would wrap every chunk in a new task.)
                async with asyncio.timeout(stall_s):
                    chunk = await iterator.__anext__()
            except StopAsyncIteration:
                break
            if not isinstance(chunk, dict):
                continue
            usage = chunk.get("usage")
            if usage:
                self._count_usage(usage, messages)
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta")
                if delta:
                    content = delta.get("content")
                    if content:
                        yield TextDelta(content)
                    for tc in delta.get("tool_calls") or ():
                        acc = tools.setdefault(int(tc.get("index", 0)), _ToolAcc())
                        if tc.get("id"):
                            acc.id = tc["id"]
                        function = tc.get("function") or {}
                        if function.get("name"):
                            acc.name += function["name"]
                        if function.get("arguments"):
                            acc.arguments.append(function["arguments"])
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
        calls = [
            ToolCall(acc.id or f"call_{i}", acc.name, "".join(acc.arguments) or "{}")
            for i, acc in sorted(tools.items())
        ]
        yield Completed(calls, finish)

    def _count_usage(self, usage: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        prompt = int(usage.get("prompt_tokens") or 0)
        if prompt:
            # The usage chunk comes last, after the reply is heard: counting characters here
            # costs the turn nothing.
            self.usage.last_prompt_tokens = prompt
            self.usage.last_prompt_chars = prompt_chars(messages)
        self.usage.input_tokens += prompt
        self.usage.output_tokens += int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        self.usage.cached_input_tokens += int(details.get("cached_tokens") or 0)


def request_deadline_seconds(settings: Settings) -> float:
    """The most one request may take to start answering, retries and their waits included."""
    return settings.openai_timeout_seconds * (settings.openai_max_retries + 1)


def openai_http_client(settings: Settings) -> httpx2.AsyncClient:
    """The SDK's own httpx client class (its defaults: redirects, 1,000 connections), with
    connections kept warm between turns and HTTP/2 where the server offers it.

    The default keep-alive expiry is 5 s: a debtor's turn is often longer, so each reply paid a
    new TCP + TLS handshake (~100-300 ms to api.openai.com) before its first token. Idle
    connections now stay `OPENAI_KEEPALIVE_SECONDS`.

    HTTP/2 (`OPENAI_HTTP2`, needs `h2`) is negotiated by ALPN on https only: the server picks
    it or HTTP/1.1. It matters for us because the session cancels requests (barge-in, a
    discarded early request): on HTTP/1.1 a response abandoned mid-body costs its connection,
    so the next request opens a new one; on HTTP/2 it resets one stream and the connection
    stays. Plain `http://` (the local simulator) is always HTTP/1.1: no prior-knowledge h2c.
    """
    return openai.DefaultAsyncHttpxClient(
        http2=settings.openai_http2,
        limits=httpx2.Limits(
            max_connections=1000,
            max_keepalive_connections=100,
            keepalive_expiry=settings.openai_keepalive_seconds,
        ),
    )


def openai_client(settings: Settings) -> AsyncOpenAI:
    # The SDK retries (honouring `retry-after`); each attempt gets the timeout (connect, and
    # every read: a hung request or a stalled stream fails after it).
    return AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        max_retries=settings.openai_max_retries,
        timeout=settings.openai_timeout_seconds,
        http_client=openai_http_client(settings),
    )
