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

from services.voice_orchestrator.ports import LanguageModel, LlmEvent, TextDelta

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

    def as_usage(self) -> dict[str, int]:
        return {
            "starts": self.starts,
            "hits": self.hits,
            "discards": self.discards,
            "wasted_output_tokens": self.wasted_output_tokens,
        }


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
