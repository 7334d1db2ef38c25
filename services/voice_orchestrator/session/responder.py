"""Responder: the model's side of an agent turn. Runs model rounds and tool calls through the
conversation core and yields the sentences to say, as they complete. Knows nothing of TTS or
playback: the session decides what happens to each sentence."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from services.common.logging import get_logger
from services.voice_orchestrator.core import Conversation, SentenceSplitter
from services.voice_orchestrator.ports import (
    Completed,
    LanguageModel,
    LlmError,
    TextDelta,
    ToolCall,
)

from .turn import AgentTurn

log = get_logger(__name__)


@dataclass
class _Round:
    text: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    sentences: int = 0  # yielded so far


class Responder:
    def __init__(
        self,
        conv: Conversation,
        llm: LanguageModel,
        *,
        max_tool_rounds: int,
        now: Callable[[], float],
    ) -> None:
        self.conv = conv
        self.llm = llm
        self.max_tool_rounds = max_tool_rounds
        self._now = now

    async def reply(self, turn: AgentTurn) -> AsyncGenerator[str, None]:
        """The sentences of the agent's reply; sets `turn.end_call_after` when the call should
        end once they are heard."""
        conv = self.conv
        round_texts: dict[str, str] = {}
        end_call = False
        said = 0
        for _ in range(self.max_tool_rounds):
            messages = with_round_texts(conv.llm_messages(), round_texts)
            rnd = _Round()
            try:
                async for sentence in self._round(turn, messages, rnd):
                    said += 1
                    yield sentence
            except LlmError as exc:
                # The stream broke (or stalled) after it started. If none of its words were
                # spoken yet, nothing is lost by asking again (once); else the session ends
                # the call with the apology rather than say half a reply twice.
                if not exc.mid_stream or rnd.sentences:
                    raise
                log.warning("llm_round_retry", error=str(exc)[:300])
                rnd = _Round()
                async for sentence in self._round(turn, messages, rnd):
                    said += 1
                    yield sentence
            if not rnd.tool_calls:
                break
            text = "".join(rnd.text).strip()
            for call in rnd.tool_calls:
                result = conv.add_tool_call(call.id, call.name, call.arguments)
                end_call = end_call or result.end_call
                log.info("tool_call", tool=call.name, ok=result.ok, state=result.state.value)
            if text:
                round_texts[rnd.tool_calls[0].id] = text
            if end_call or conv.finished:
                turn.end_call_after = True
                if said:
                    break
                # Nothing said yet: one more round for the goodbye (tools are refused now).
        if (end_call or conv.finished) and not said:
            yield conv.closing_line()
        if end_call or conv.finished:
            turn.end_call_after = True

    async def _round(
        self, turn: AgentTurn, messages: list[dict[str, Any]], rnd: _Round
    ) -> AsyncGenerator[str, None]:
        """One model request: its sentences as they complete; its text pieces and tool calls
        into `rnd`."""
        splitter = SentenceSplitter()
        timings = turn.timings
        timings.mark_once("llm_request_at", self._now())
        first = True
        stream = self.llm.stream(messages, self.conv.tools())
        try:
            async for event in stream:
                if first:
                    first = False
                    timings.mark_once("llm_first_token_at", self._now())
                if isinstance(event, TextDelta):
                    rnd.text.append(event.text)
                    for sentence in splitter.feed(event.text):
                        rnd.sentences += 1
                        yield sentence
                elif isinstance(event, Completed):
                    rnd.tool_calls = event.tool_calls
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        timings.llm_done_at = self._now()
        tail = splitter.flush()
        if tail:
            rnd.sentences += 1
            yield tail


def with_round_texts(
    messages: list[dict[str, Any]], round_texts: dict[str, str]
) -> list[dict[str, Any]]:
    """Put text the model said alongside a tool call back into that assistant message.

    The core records tool calls as content-less assistant messages and the agent's words only
    once the turn was heard; within one turn the model must still see what it already said, or
    it would say it again after the tool result.
    """
    if not round_texts:
        return messages
    for msg in messages:
        if msg.get("role") != "assistant" or not msg.get("tool_calls"):
            continue
        first_id = msg["tool_calls"][0].get("id")
        if first_id in round_texts and not msg.get("content"):
            msg["content"] = round_texts[first_id]
    return messages
