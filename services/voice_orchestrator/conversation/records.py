"""What a conversation produces and records: the promise, the callback, tool results, turns
and state transitions; the refusal a guard raises; the per-state hints refusals carry."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from generated.callback import Callback
from generated.money import Money
from generated.payment_promise import PaymentPromise

from .enums import CallStepReason, ConversationState, Speaker
from .lines import FixedLine
from .machine import Event
from .plans import Plan

S = ConversationState


__all__ = ["Callback", "PromiseTerms"]  # Callback: the generated model, in the debtor's zone


@dataclass(frozen=True)
class PromiseTerms:
    """What the debtor agreed to pay, and by when. Not a second `PaymentPromise`: that one
    (generated from specs/) is these terms once recorded, with the time the shell stored them
    (`recorded`); the core has no clock of its own."""

    amount: Money
    due_date: dt.date

    def recorded(self, at: dt.datetime) -> PaymentPromise:
        return PaymentPromise(amount=self.amount, due_date=self.due_date, recorded_at=at)


@dataclass(frozen=True)
class ToolResult:
    ok: bool
    message: str
    end_call: bool  # the shell should finish speaking and hang up
    state: ConversationState
    # Words the shell speaks itself, verbatim, instead of asking the model again (None: ask the
    # model, as after a refusal or a no-op).
    line: FixedLine | None = None
    # Why a guard refused the call (None when accepted); the call's `tool_call` step keeps it.
    reason: CallStepReason | None = None
    # A concrete plan inside the rules for the model to propose (a counter-offer to a refused
    # promise or plan, or the smallest plan after a hardship); None: no offer.
    offer: Plan | None = None

    def content(self) -> str:
        """The tool message content the model sees (contract: ok, message, state[, offer])."""
        body: dict[str, object] = {"ok": self.ok, "message": self.message}
        body["state"] = self.state.value
        if self.offer is not None:
            body["offer"] = self.offer.as_offer()
        return json.dumps(body)


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
    """A guard said no; the message goes back to the model, the code to the call's steps."""

    def __init__(self, message: str, code: CallStepReason, offer: Plan | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.offer = offer  # a counter-offer inside the rules, for the model to propose


# The core's own refusals (the guards in guards.py and verification.py raise theirs inline).
REFUSALS: dict[str, tuple[CallStepReason, str]] = {
    "nothing_said": (
        CallStepReason.NOTHING_SAID_YET,
        "The person has not said anything yet: ask for the debtor by name.",
    ),
    "promise_unverified": (
        CallStepReason.NOT_VERIFIED,
        "Identity is not confirmed: no promise can be recorded.",
    ),
    "disclosure_not_heard": (
        CallStepReason.DISCLOSURE_NOT_HEARD,
        "The debtor has not yet heard the required debt-collection disclosure in full "
        "(the system is saying it again now), so no promise can be recorded yet. Do not "
        "read back or confirm anything: ask the debtor to confirm the amount and date, "
        "and record the promise when they answer.",
    ),
    "closing_other_outcome": (
        CallStepReason.CLOSING_OTHER_OUTCOME,
        "The call is closing with another outcome; say goodbye and end_call.",
    ),
    "hardship_unverified": (
        CallStepReason.NOT_VERIFIED,
        "Identity is not confirmed: do not discuss the debt with this person.",
    ),
    "notice_unverified": (
        CallStepReason.NOT_VERIFIED,
        "Confirm you are speaking with the debtor first (confirm_identity); a written notice "
        "goes only to them.",
    ),
    "dispute_unverified": (
        CallStepReason.NOT_VERIFIED,
        "Identity is not confirmed: do not discuss the debt with this person.",
    ),
    "no_outcome_yet": (
        CallStepReason.NO_OUTCOME_YET,
        "No outcome yet, so the call cannot end. Offer a payment or a callback "
        "(schedule_callback); if the debtor asks to stop calling use "
        "request_no_further_calls; if they dispute, report_dispute.",
    ),
}


def refusal(key: str) -> Refused:
    code, message = REFUSALS[key]
    return Refused(message, code)


class PromiseTooLate(Refused):
    """The promised date is past the account's limit: policy fixes the answer (the latest
    date), so the system says it instead of asking the model again."""

    def __init__(self, message: str, latest: dt.date, offer: Plan | None = None) -> None:
        super().__init__(message, CallStepReason.DATE_TOO_LATE, offer)
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
        "Work toward record_payment_promise or record_payment_plan; or use report_hardship, "
        "schedule_callback, report_dispute, request_validation_notice or "
        "request_no_further_calls."
    ),
    S.COMMITMENT: "A promise is recorded: read it back, say goodbye and call end_call.",
    S.CLOSING: "The call is closing: say a short goodbye and call end_call.",
}
