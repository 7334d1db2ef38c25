"""The conversation core's API as the shell uses it (one import site, see internal-contracts.md)."""

from __future__ import annotations

from services.voice_orchestrator.conversation import (
    Callback,
    CallFacts,
    CallOutcome,
    Conversation,
    ConversationState,
    DelinquencyStage,
    EndReason,
    FixedLine,
    PromiseTerms,
    SentenceSplitter,
    Speaker,
    ToolResult,
    commits_to_outcome,
    default_prompt_set,
    llm_request_params,
    prompt_cache_key,
    speakable,
)

__all__ = [
    "CallFacts",
    "CallOutcome",
    "Callback",
    "Conversation",
    "ConversationState",
    "DelinquencyStage",
    "EndReason",
    "FixedLine",
    "PromiseTerms",
    "SentenceSplitter",
    "Speaker",
    "ToolResult",
    "commits_to_outcome",
    "default_prompt_set",
    "llm_request_params",
    "prompt_cache_key",
    "speakable",
]
