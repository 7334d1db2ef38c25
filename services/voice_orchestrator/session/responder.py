"""Responder: the model's side of an agent turn. Runs model rounds and tool calls through the
conversation core and yields the sentences to say, as they complete. Knows nothing of TTS or
playback: the session decides what happens to each sentence."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from generated.call_step import CallStep
from generated.call_step_reason import CallStepReason
from services.common.call_steps import StepBuffer
from services.common.logging import get_logger
from services.voice_orchestrator.core import (
    CallOutcome,
    Conversation,
    SentenceSplitter,
    ToolResult,
    commits_to_outcome,
)
from services.voice_orchestrator.ports import (
    Completed,
    LanguageModel,
    LlmError,
    LlmEvent,
    TextDelta,
    ToolCall,
)

from .early import EarlyRequest, EarlyStats, estimated_prompt_tokens, same_request
from .turn import AgentTurn

log = get_logger(__name__)


@dataclass
class _Round:
    text: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    sentences: int = 0  # yielded so far
    held: list[str] = field(default_factory=list)  # waiting to see if a tool call comes


class Responder:
    def __init__(
        self,
        conv: Conversation,
        llm: LanguageModel,
        *,
        max_tool_rounds: int,
        now: Callable[[], float],
        first_clause_chars: int | None = None,
        steps: StepBuffer | None = None,
    ) -> None:
        self.conv = conv
        self.steps = steps if steps is not None else StepBuffer()
        self.llm = llm
        self.max_tool_rounds = max_tool_rounds
        self.first_clause_chars = first_clause_chars
        self._now = now
        self.early: EarlyRequest | None = None
        self.early_stats = EarlyStats()

    # ---- early generation -------------------------------------------------------------------
    def start_early(self, debtor_text: str) -> None:
        """Start the reply's model request on the debtor's words so far (see early.py), unless
        the one running is that request already."""
        messages = [*self.conv.llm_messages(), {"role": "user", "content": debtor_text}]
        if self.early is not None and same_request(self.early.messages, messages):
            return
        self.discard_early()
        self.early = EarlyRequest(self.llm, messages, self.conv.tools(), self._now)
        self.early_stats.starts += 1

    def discard_early(self) -> bool:
        early, self.early = self.early, None
        if early is None:
            return False
        early.cancel()
        self.early_stats.discards += 1
        self.early_stats.wasted_output_tokens += early.deltas
        self.early_stats.wasted_input_tokens += estimated_prompt_tokens(
            early.messages, self.llm.usage
        )
        return True

    def _claim_early(self, turn: AgentTurn, messages: list[dict[str, Any]]) -> EarlyRequest | None:
        early = self.early
        if early is None:
            return None
        if not same_request(early.messages, messages):
            self.discard_early()
            turn.timings.early = "discard"
            return None
        self.early = None
        self.early_stats.hits += 1
        turn.timings.early = "hit"
        return early

    async def reply(self, turn: AgentTurn) -> AsyncGenerator[str, None]:
        """The sentences of the agent's reply; sets `turn.end_call_after` when the call should
        end once they are heard.

        One model request before the first sound wherever policy fixes the next words: after
        an accepted tool call the core hands back its `FixedLine` and that is said, not asked
        for. The model is asked again only when a guard refused the call, or when the line
        does not answer what the debtor asked (`ask_model_after`); its words follow the line.
        """
        conv = self.conv
        timings = turn.timings
        owed = conv.owed_line()  # an interrupted disclosure is said again before anything else
        said = 0
        if owed is not None:
            timings.fixed_line = True
            conv.line_queued(owed)
            said += 1
            yield owed.text
        round_texts: dict[str, str] = {}
        end_call = False
        for n in range(self.max_tool_rounds):
            messages = with_round_texts(conv.llm_messages(), round_texts)
            early = self._claim_early(turn, messages) if n == 0 else None
            rnd = _Round()
            try:
                async for sentence in self._round(turn, messages, rnd, early):
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
                for sentence in rnd.held:  # no move after all: they were plain words
                    said += 1
                    yield sentence
                break
            timings.tool_calls += len(rnd.tool_calls)
            text = "".join(rnd.text).strip()
            line = None
            for call in rnd.tool_calls:
                was = conv.verified, conv.outcome
                result = conv.add_tool_call(call.id, call.name, call.arguments)
                record_tool_call(self.steps, conv, call.name, result, was)
                end_call = end_call or result.end_call
                line = result.line  # accepted, or a refusal that closes the call
                log.info("tool_call", tool=call.name, ok=result.ok, state=result.state.value)
                why = "refused" if not result.ok else "unlined" if line is None else "asked"
                if line is None or line.ask_model_after:
                    timings.asked_again.append(f"{why}:{call.name}")
            if text:
                round_texts[rnd.tool_calls[0].id] = text
            if line is not None:
                if not said:
                    timings.fixed_line = True
                conv.line_queued(line)
                said += 1
                yield line.text
                end_call = end_call or line.end_call_after
                if not line.ask_model_after or end_call or conv.finished:
                    break
                continue  # the debtor asked something the line does not answer
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
        self,
        turn: AgentTurn,
        messages: list[dict[str, Any]],
        rnd: _Round,
        early: EarlyRequest | None = None,
    ) -> AsyncGenerator[str, None]:
        """One model request: its sentences as they complete; its text pieces and tool calls
        into `rnd`. A sentence that commits to an outcome a guard could still refuse ("I've
        recorded fifty dollars") is held in `rnd.held` until the request shows whether a tool
        call comes with it."""
        # Only words before the turn's first sound are worth a clause break.
        clause = self.first_clause_chars if turn.timings.first_audio_out_at is None else None
        splitter = SentenceSplitter(early_comma_chars=clause)
        timings = turn.timings
        timings.mark_once("llm_request_at", early.started_at if early else self._now())
        if timings.first_audio_out_at is None and timings.tts_first_text_at is None:
            # A request the first sound waits for. Once a line of the turn went to speech
            # (a fixed line said before the model is asked what the line leaves open), the
            # sound no longer waits for any request, even if its first frame is not out yet.
            timings.llm_requests_before_audio += 1
        first = True
        stream = early.events() if early else self._timed(messages)
        try:
            async for at, event in stream:
                if first:
                    first = False
                    timings.mark_once("llm_first_token_at", at)
                    timings.llm_first_token_ats.append(at)
                if isinstance(event, TextDelta):
                    rnd.text.append(event.text)
                    for sentence in splitter.feed(event.text):
                        if rnd.held or commits_to_outcome(sentence):
                            rnd.held.append(sentence)  # and what follows it, to keep order
                        else:
                            rnd.sentences += 1
                            yield sentence
                elif isinstance(event, Completed):
                    rnd.tool_calls = event.tool_calls
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            if early is not None:
                early.cancel()  # a no-op once it ended; stops it if this turn was cut
        timings.llm_done_at = self._now()
        tail = splitter.flush()
        if tail:
            if rnd.held or commits_to_outcome(tail):
                rnd.held.append(tail)
            else:
                rnd.sentences += 1
                yield tail

    async def _timed(
        self, messages: list[dict[str, Any]]
    ) -> AsyncGenerator[tuple[float, LlmEvent], None]:
        """A model request now; each event with the time it arrived."""
        stream = self.llm.stream(messages, self.conv.tools())
        try:
            async for event in stream:
                yield self._now(), event
        finally:
            await stream.aclose()  # type: ignore[attr-defined]


def record_tool_call(
    steps: StepBuffer,
    conv: Conversation,
    name: str,
    result: ToolResult,
    was: tuple[bool, CallOutcome | None],
) -> None:
    """The call's steps for one tool call: the call with its guard result, and the
    verification it settled (plain appends to the in-memory buffer, no I/O)."""
    now = datetime.now(UTC)
    steps.add(
        CallStep.TOOL_CALL,
        at=now,
        detail={
            "tool": name[:64],
            "tool_result": "accepted" if result.ok else "rejected",
            "state": result.state.value,
        },
        reason=result.reason,
    )
    verified_before, outcome_before = was
    if conv.verified and not verified_before:
        level, fact = conv.verification
        detail = {"verification": level.value}
        if fact is not None:
            detail["verification_fact"] = fact.value
        steps.add(CallStep.VERIFIED, at=now, detail=detail)
    elif conv.outcome is CallOutcome.UNVERIFIED and outcome_before is not CallOutcome.UNVERIFIED:
        steps.add(CallStep.VERIFICATION_FAILED, at=now, reason=CallStepReason.FACT_NOT_MATCHED)


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
