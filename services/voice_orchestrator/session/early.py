"""Early generation: the model request for a reply starts when our VAD hears the debtor stop,
on the words so far (finals plus the latest interim), while Deepgram is still finalizing.

Nothing of it reaches the conversation core or the phone until the final transcript confirms
it: its events are only buffered. The reply keeps it if the request it would make now is the
same, the debtor's words compared after normalising (case, punctuation, spacing); otherwise,
or if the debtor goes on talking, it is cancelled and counted as a discard.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from services.voice_orchestrator.ports import (
    LanguageModel,
    LlmEvent,
    LlmUsage,
    TextDelta,
    prompt_chars,
)

_NON_WORD = re.compile(r"[^\w']+")


def normalise(text: str) -> str:
    return " ".join(_NON_WORD.sub(" ", text.lower()).split())


def same_request(early: list[dict[str, Any]], now: list[dict[str, Any]]) -> bool:
    """The request made now is the early one: same history and system prompt, and a last
    debtor message with the same words."""
    if len(early) != len(now) or early[:-1] != now[:-1]:
        return False
    a, b = early[-1], now[-1]
    return a.get("role") == b.get("role") == "user" and normalise(
        str(a.get("content") or "")
    ) == normalise(str(b.get("content") or ""))


@dataclass
class EarlyStats:
    starts: int = 0
    hits: int = 0
    discards: int = 0
    # Output tokens streamed to us for requests then thrown away (one delta ≈ one token).
    wasted_output_tokens: int = 0
    # Prompt tokens of those requests: billed, never reported (a cancelled stream gets no usage
    # chunk), so estimated by `estimated_prompt_tokens`.
    wasted_input_tokens: int = 0

    def as_usage(self) -> dict[str, int]:
        return {
            "starts": self.starts,
            "hits": self.hits,
            "discards": self.discards,
            "wasted_output_tokens": self.wasted_output_tokens,
            "wasted_input_tokens": self.wasted_input_tokens,
        }


# Characters per token of English chat text, for a call with no request measured yet.
CHARS_PER_TOKEN = 4.0


def estimated_prompt_tokens(messages: list[dict[str, Any]], usage: LlmUsage) -> int:
    """What a request's prompt was billed: this call's own tokens per character (its last
    request that reported usage: the same system prompt and tools, a turn or two less
    history) times this request's characters; without one, ~4 characters per token."""
    chars = prompt_chars(messages)
    if usage.last_prompt_tokens > 0 and usage.last_prompt_chars > 0:
        return round(chars * usage.last_prompt_tokens / usage.last_prompt_chars)
    return round(chars / CHARS_PER_TOKEN)


class EarlyRequest:
    """One model request started ahead of the final transcript, its events buffered."""

    def __init__(
        self,
        llm: LanguageModel,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        now: Callable[[], float],
    ) -> None:
        self.messages = messages
        self._now = now
        self.started_at = now()
        self.deltas = 0
        self._queue: asyncio.Queue[tuple[float, LlmEvent | BaseException | None]] = asyncio.Queue()
        self.task = asyncio.create_task(self._pump(llm, tools))

    async def _pump(self, llm: LanguageModel, tools: list[dict[str, Any]]) -> None:
        stream = llm.stream(self.messages, tools)
        try:
            async for event in stream:
                if isinstance(event, TextDelta):
                    self.deltas += 1
                self._queue.put_nowait((self._now(), event))
            self._queue.put_nowait((self._now(), None))  # the end
        except Exception as exc:  # handed to the reply that claims it, as if it were its own
            self._queue.put_nowait((self._now(), exc))
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    async def events(self) -> AsyncIterator[tuple[float, LlmEvent]]:
        """The request's events with the time each arrived, as if streamed now."""
        while True:
            at, item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield at, item

    def cancel(self) -> None:
        self.task.cancel()
