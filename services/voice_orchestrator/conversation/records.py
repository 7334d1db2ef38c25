"""What a conversation produces and records: the promise, the callback, tool results, turns
and state transitions; the refusal a guard raises; the per-state hints refusals carry."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from .enums import ConversationState, Speaker
from .lines import FixedLine
from .machine import Event

S = ConversationState


@dataclass(frozen=True)
class PaymentPromise:
    amount_minor: int
    currency: str
    date: dt.date


@dataclass(frozen=True)
class Callback:
    when: dt.datetime  # timezone-aware, in the debtor's zone
    reason: str


@dataclass(frozen=True)
class ToolResult:
    ok: bool
    message: str
    end_call: bool  # the shell should finish speaking and hang up
    state: ConversationState
    # Words the shell speaks itself, verbatim, instead of asking the model again (None: ask the
    # model, as after a refusal or a no-op).
    line: FixedLine | None = None

    def content(self) -> str:
        """The tool message content the model sees (contract: ok, message, state)."""
        return json.dumps({"ok": self.ok, "message": self.message, "state": self.state.value})


@dataclass(frozen=True)
class Turn:
    speaker: Speaker
    text: str
    interrupted: bool = False


@dataclass(frozen=True)
class TransitionRecord:
    source: ConversationState
    event: Event
    target: ConversationState


class Refused(Exception):
    """A guard said no; the message goes back to the model."""


class PromiseTooLate(Refused):
    """The promised date is past the account's limit: policy fixes the answer (the latest
    date), so the system says it instead of asking the model again."""

    def __init__(self, message: str, latest: dt.date) -> None:
        super().__init__(message)
        self.latest = latest


# What the model should do instead, per state, appended to "not allowed now" refusals.
STATE_HINTS: dict[ConversationState, str] = {
    S.GREETING: "Introduce yourself as an AI assistant and ask for the debtor by name first.",
    S.VERIFICATION: (
        "Confirm you are speaking with the debtor first (confirm_identity, then verify_fact "
        "with their answer if the system asked for a fact on file), or use report_wrong_party, "
        "schedule_callback or request_no_further_calls."
    ),
    S.NEGOTIATION: (
        "Work toward record_payment_promise, schedule_callback, report_dispute or "
        "request_no_further_calls."
    ),
    S.COMMITMENT: "A promise is recorded: read it back, say goodbye and call end_call.",
    S.CLOSING: "The call is closing: say a short goodbye and call end_call.",
}
