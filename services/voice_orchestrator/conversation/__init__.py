"""Pure conversation core of the collections voice agent (no I/O but reading prompt files once).

See docs/conversation.md and docs/internal-contracts.md.
"""

from .conversation import Conversation
from .enums import (
    CallOutcome,
    ConversationState,
    DelinquencyStage,
    EndReason,
    Speaker,
    ToolName,
)
from .facts import CallFacts
from .heuristics import TurnSignals, classify
from .lines import LINE_KINDS, FixedLine, LineKind, commits_to_outcome, needs_model_after
from .llm import llm_request_params, prompt_cache_key
from .machine import ALLOWED_EDGES, TRANSITIONS, ConversationLimits, Event, Transition
from .plans import Installment, Plan
from .prompting import LinesDoc, PromptDoc, PromptSet, default_prompt_set, load_prompt_set
from .records import Callback, PromiseTerms, ToolResult, TransitionRecord, Turn
from .speech import (
    SentenceSplitter,
    speakable,
    spoken_amount,
    spoken_date,
    spoken_number,
    spoken_phone,
    spoken_time,
)
from .tools import TOOL_SPECS, tool_schemas

__all__ = [
    "ALLOWED_EDGES",
    "LINE_KINDS",
    "TOOL_SPECS",
    "TRANSITIONS",
    "CallFacts",
    "CallOutcome",
    "Callback",
    "Conversation",
    "ConversationLimits",
    "ConversationState",
    "DelinquencyStage",
    "EndReason",
    "Event",
    "FixedLine",
    "Installment",
    "LineKind",
    "LinesDoc",
    "Plan",
    "PromiseTerms",
    "PromptDoc",
    "PromptSet",
    "SentenceSplitter",
    "Speaker",
    "ToolName",
    "ToolResult",
    "Transition",
    "TransitionRecord",
    "Turn",
    "TurnSignals",
    "classify",
    "commits_to_outcome",
    "default_prompt_set",
    "llm_request_params",
    "load_prompt_set",
    "needs_model_after",
    "prompt_cache_key",
    "speakable",
    "spoken_amount",
    "spoken_date",
    "spoken_number",
    "spoken_phone",
    "spoken_time",
    "tool_schemas",
]
