"""Enumerations shared with the specs and the database (see docs/internal-contracts.md)."""

from __future__ import annotations

from enum import StrEnum


class DelinquencyStage(StrEnum):
    PRE_DELINQUENCY = "pre_delinquency"
    EARLY = "early"
    LATE = "late"


class ConversationState(StrEnum):
    GREETING = "greeting"
    VERIFICATION = "verification"
    NEGOTIATION = "negotiation"
    COMMITMENT = "commitment"
    CLOSING = "closing"


class CallOutcome(StrEnum):
    PROMISE_TO_PAY = "promise_to_pay"
    CALLBACK_SCHEDULED = "callback_scheduled"
    REFUSED = "refused"
    DISPUTED = "disputed"
    WRONG_PARTY = "wrong_party"
    NO_ANSWER = "no_answer"
    VOICEMAIL = "voicemail"
    OPTED_OUT = "opted_out"
    FAILED = "failed"


class Speaker(StrEnum):
    AGENT = "agent"
    DEBTOR = "debtor"


class ToolName(StrEnum):
    """The function tools the LLM may call; the names are a contract."""

    CONFIRM_IDENTITY = "confirm_identity"
    RECORD_PAYMENT_PROMISE = "record_payment_promise"
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
