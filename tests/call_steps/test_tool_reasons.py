"""The conversation core gives every refused tool call a reason from the spec's
CallStepReason (the call's `tool_call` step keeps it); accepted calls have none."""

from __future__ import annotations

import json

import pytest

from generated.call_step_reason import CallStepReason as R
from services.voice_orchestrator.conversation.records import REFUSALS
from tests.conversation.conversation_support import conversation, promise_args, verified


def test_refusals_before_verification() -> None:
    conv = conversation()
    result = conv.add_tool_call("c1", "confirm_identity", "{}")
    assert (result.ok, result.reason) == (False, R.NOTHING_SAID_YET)
    assert conv.add_tool_call("c2", "book_flight", "{}").reason is R.UNKNOWN_TOOL
    result = conv.add_tool_call("c3", "record_payment_promise", promise_args())
    assert (result.ok, result.reason) == (False, R.NOT_ALLOWED_IN_STATE)
    fresh = conversation()
    fresh.add_debtor_turn("Yes, this is Jane.")
    accepted = fresh.add_tool_call("c4", "confirm_identity", "{}")
    assert accepted.ok and accepted.reason is None


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (promise_args(currency="EUR"), R.CURRENCY_MISMATCH),
        (promise_args(amount=45001), R.AMOUNT_ABOVE_BALANCE),
        (promise_args(date="2026-11-01"), R.DATE_IN_PAST),
        (promise_args(date="2027-06-01"), R.DATE_TOO_LATE),
        (json.dumps({"amount_minor": "lots"}), R.INVALID_ARGUMENTS),
    ],
)
def test_promise_guards(args: str, reason: R) -> None:
    conv = verified()
    result = conv.add_tool_call("p1", "record_payment_promise", args)
    assert (result.ok, result.reason) == (False, reason)


def test_promise_before_the_disclosure_was_heard() -> None:
    conv = verified(heard=False)
    conv.add_agent_turn("Sorry, go on.", interrupted=True)
    result = conv.add_tool_call("p1", "record_payment_promise", promise_args())
    assert (result.ok, result.reason) == (False, R.DISCLOSURE_NOT_HEARD)


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        ("2026-11-27T09:00:00-05:00", R.CALLBACK_IN_PAST),
        ("2027-03-01T10:00:00-05:00", R.CALLBACK_TOO_FAR),
        ("2026-11-28T23:00:00-05:00", R.OUTSIDE_CALLING_HOURS),
    ],
)
def test_callback_guards(when: str, reason: R) -> None:
    conv = verified()
    args = json.dumps({"when": when, "reason": "busy at work"})
    assert conv.add_tool_call("b1", "schedule_callback", args).reason is reason
    blank = json.dumps({"when": "2026-11-30T10:00:00-05:00", "reason": "  "})
    assert conv.add_tool_call("b2", "schedule_callback", blank).reason is R.CALLBACK_REASON_MISSING


def test_end_without_an_outcome_and_after_the_end() -> None:
    conv = verified()
    result = conv.add_tool_call("e1", "end_call", json.dumps({"reason": "done"}))
    assert (result.ok, result.reason) == (False, R.NO_OUTCOME_YET)
    conv.add_tool_call("o1", "request_no_further_calls", "{}")
    conv.finalize("hangup")
    assert conv.add_tool_call("o2", "end_call", json.dumps({"reason": "x"})).reason is (
        R.CALL_FINISHED
    )


def test_every_core_refusal_has_a_spec_reason() -> None:
    assert {code for code, _ in REFUSALS.values()} <= set(R)
