"""Enumerations. Those the specs define come from `generated/` (one definition, no twins);
the ones below are the core's own."""

from __future__ import annotations

from enum import StrEnum

from generated.call_outcome import CallOutcome
from generated.call_step_reason import CallStepReason
from generated.conversation_state import ConversationState
from generated.delinquency_stage import DelinquencyStage
from generated.speaker import Speaker

__all__ = [
    "CallOutcome",
    "CallStepReason",
    "ConversationState",
    "DelinquencyStage",
    "EndReason",
    "Speaker",
    "ToolName",
]


class ToolName(StrEnum):
    """The function tools the LLM may call; the names are a contract with the model (tools.py's
    schemas, prompts/policy.md). The one list of them: `Event`'s tool events take their strings
    from here. Not in specs/: a `tool_call` step's `tool` keeps whatever name the model sent,
    unknown ones too (call_step_detail.json: a string), so the wire has no enum to generate."""

    CONFIRM_IDENTITY = "confirm_identity"
    VERIFY_FACT = "verify_fact"
    RECORD_PAYMENT_PROMISE = "record_payment_promise"
    RECORD_PAYMENT_PLAN = "record_payment_plan"
    REPORT_HARDSHIP = "report_hardship"
    REQUEST_VALIDATION_NOTICE = "request_validation_notice"
    IDENTIFY_CALLER = "identify_caller"
    SCHEDULE_CALLBACK = "schedule_callback"
    REPORT_DISPUTE = "report_dispute"
    REPORT_WRONG_PARTY = "report_wrong_party"
    REQUEST_NO_FURTHER_CALLS = "request_no_further_calls"
    END_CALL = "end_call"


class EndReason(StrEnum):
    """Why the shell ended a call on its own (`Conversation.finalize`)."""

    HANGUP = "hangup"  # the far end hung up mid-call
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"  # answering machine detected
    ERROR = "error"  # transport/vendor failure on our side
    SILENCE = "silence"  # the line stayed silent through the re-prompts; we said goodbye
