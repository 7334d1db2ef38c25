"""GPT-5-mini through the official `openai` SDK (AsyncOpenAI, streaming Chat Completions).

`stream()` yields text deltas as they arrive and, at the end, the tool calls the model asked for.
Failures before the first delta (timeout, 429, 5xx, connection) are retried here with a short
backoff, because nothing has been said yet; a failure after that is raised to the session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import openai
from openai import AsyncOpenAI

from services.common.logging import get_logger
from services.common.settings import Settings
from services.voice_orchestrator.core import llm_request_params

log = get_logger(__name__)

RETRY_BACKOFF_SECONDS = (0.15, 0.5)


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Completed:
    tool_calls: list[ToolCall]
    finish_reason: str | None


LlmEvent = TextDelta | Completed


@dataclass
class LlmUsage:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0


class LlmError(RuntimeError):
    pass


class LanguageModel(Protocol):
    usage: LlmUsage

    def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> AsyncIterator[LlmEvent]: ...


_RETRYABLE = (
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.RateLimitError,
    openai.InternalServerError,
    TimeoutError,
)


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
        max_retries: int = 2,
        cache_key: str | None = None,
    ) -> None:
        self.settings = settings
        self.client = client or openai_client(settings)
        self.max_retries = max_retries
        self.cache_key = cache_key
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
        return await self.client.chat.completions.create(**params)

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> AsyncIterator[LlmEvent]:
        timeout = self.settings.openai_timeout_seconds
        attempt = 0
        while True:
            self.usage.requests += 1
            yielded = False
            try:
                stream = await asyncio.wait_for(self._open(messages, tools), timeout)
                try:
                    async for event in self._events(stream, timeout):
                        yielded = True
                        yield event
                finally:
                    await stream.close()
                return
            except _RETRYABLE as exc:
                if yielded or attempt >= self.max_retries:
                    raise LlmError(repr(exc)) from exc
                log.warning("llm_retry", error=type(exc).__name__, attempt=attempt + 1)
                await asyncio.sleep(RETRY_BACKOFF_SECONDS[min(attempt, 1)])
                attempt += 1
            except openai.APIError as exc:
                raise LlmError(repr(exc)) from exc

    async def _events(self, stream: Any, stall_s: float) -> AsyncIterator[LlmEvent]:
        tools: dict[int, _ToolAcc] = {}
        finish: str | None = None
        iterator = stream.__aiter__()
        while True:
            try:
                # A stalled stream counts as a failure, not as a silent agent.
                chunk = await asyncio.wait_for(iterator.__anext__(), stall_s)
            except StopAsyncIteration:
                break
            if chunk.usage is not None:
                self._count_usage(chunk.usage)
            for choice in chunk.choices or ():
                delta = choice.delta
                if delta is not None:
                    if delta.content:
                        yield TextDelta(delta.content)
                    for tc in delta.tool_calls or ():
                        acc = tools.setdefault(tc.index, _ToolAcc())
                        if tc.id:
                            acc.id = tc.id
                        if tc.function is not None:
                            if tc.function.name:
                                acc.name += tc.function.name
                            if tc.function.arguments:
                                acc.arguments.append(tc.function.arguments)
                if choice.finish_reason:
                    finish = choice.finish_reason
        calls = [
            ToolCall(acc.id or f"call_{i}", acc.name, "".join(acc.arguments) or "{}")
            for i, acc in sorted(tools.items())
        ]
        yield Completed(calls, finish)

    def _count_usage(self, usage: Any) -> None:
        self.usage.input_tokens += int(usage.prompt_tokens or 0)
        self.usage.output_tokens += int(usage.completion_tokens or 0)
        details = getattr(usage, "prompt_tokens_details", None)
        if details is not None and details.cached_tokens:
            self.usage.cached_input_tokens += int(details.cached_tokens)


def openai_client(settings: Settings) -> AsyncOpenAI:
    # Retries are ours (above): the SDK's own backoff is too slow for a live call.
    return AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        max_retries=0,
        timeout=settings.openai_timeout_seconds,
    )
