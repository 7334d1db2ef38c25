"""One agent turn the orchestrator's way, for tests that replay dialogues through the core with
the simulated model and no sockets: the owed fixed line first; then the model, asked again after
a tool call while the result says so, its words before a tool call kept only when they commit to
nothing; each accepted tool's fixed line spoken by code; the closing line when the call derails.
"""

from __future__ import annotations

from services.voice_orchestrator.conversation import (
    Conversation,
    SentenceSplitter,
    commits_to_outcome,
    speakable,
)
from services.voice_orchestrator.conversation.lines import contains_line
from simulators.openai.policy import respond

MAX_MODEL_CALLS_PER_TURN = 5


def sentences(text: str) -> list[str]:
    splitter = SentenceSplitter()
    out = splitter.feed(text)
    tail = splitter.flush()
    return [*out, *([tail] if tail else [])]


def spoken(text: str) -> str:
    """What TTS would say: streamed through the splitter, each sentence made speakable."""
    return " ".join(speakable(s) for s in sentences(text))


def agent_parts(conv: Conversation, calls: list[str]) -> list[str]:
    """What the agent says in one turn, in order (not yet recorded); each tool the model calls
    is appended to `calls`."""
    parts: list[str] = []
    owed = conv.owed_line()
    if owed is not None:
        parts.append(owed.text)  # before anything else; the model still answers after it
    for _ in range(MAX_MODEL_CALLS_PER_TURN):
        reply = respond(conv.llm_messages(), conv.tools())
        text = reply.text or ""
        if reply.tool_calls:
            # Said before the core has judged the call: only what commits to nothing.
            text = " ".join(x for x in sentences(text) if not commits_to_outcome(x))
        if text:
            parts.append(text)
        ask_again = False
        for name, arguments in reply.tool_calls:
            calls.append(name)
            result = conv.add_tool_call(f"call_{len(calls)}", name, arguments)
            if result.line is not None:
                parts.append(result.line.text)
                ask_again = ask_again or result.line.ask_model_after
            else:
                ask_again = ask_again or not result.end_call  # refused or a no-op
        if not reply.tool_calls or not ask_again:
            break
    else:
        raise AssertionError("the model kept calling tools without speaking")
    if (
        conv.check_derailment()
        and not conv.finished
        and not any(contains_line(x, conv.closing_line()) for x in parts)
    ):
        parts.append(conv.closing_line())
    return parts
