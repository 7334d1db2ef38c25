"""The issue-20 tools in the conversation core: record_payment_plan, report_hardship,
request_validation_notice, identify_caller, and record_payment_promise against the rules.
Today for the debtor is 2026-11-27; early-stage defaults: first payment at least 10 % by
2026-12-11, at most 6 payments, the last by 2027-05-26."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from conversation_support import NOW, conversation, default_rules, promise_args, verified

from services.voice_orchestrator.conversation import (
    CallOutcome,
    ConversationState,
    EndReason,
)
from services.voice_orchestrator.conversation.lines import contains_line
from services.voice_orchestrator.conversation.plans import check_plan

S = ConversationState
LIMIT_WORDS = ("minimum", "maximum", "at least", "at most", "limit", "basis points", "lowest")


def plan_args(*items: tuple[int, str], currency: str = "USD", settlement: bool = False) -> str:
    return json.dumps(
        {
            "installments": [{"amount_minor": a, "date": d} for a, d in items],
            "currency": currency,
            "settlement": settlement,
        }
    )


def content(result: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(result.content())
    return body


THREE = ((15000, "2026-12-04"), (15000, "2027-01-04"), (15000, "2027-02-04"))


def test_an_accepted_plan_is_read_back_and_ends_the_call() -> None:
    conv = verified()
    result = conv.add_tool_call("p", "record_payment_plan", plan_args(*THREE))
    assert result.ok and result.end_call and result.state is S.COMMITMENT
    assert result.line is not None and result.line.kind == "plan_read_back"
    assert result.line.text == (
        "Thank you. I've recorded your payment plan of three payments: the first of one hundred "
        "fifty dollars on December fourth, the last on February fourth, twenty twenty-seven, "
        "four hundred fifty dollars in total. Have a good day, goodbye."
    )
    assert conv.outcome is CallOutcome.PROMISE_TO_PAY
    assert conv.plan is not None and len(conv.plan.installments) == 3
    assert conv.promise is not None  # the first installment
    assert (conv.promise.amount.amount_minor, conv.promise.due_date) == (
        15000,
        dt.date(2026, 12, 4),
    )
    assert "offer" not in content(result)
    conv.add_agent_turn(result.line.text)
    assert conv.finished and conv.finalize(EndReason.HANGUP) is CallOutcome.PROMISE_TO_PAY


@pytest.mark.parametrize(
    ("items", "kwargs", "reason"),
    [
        (THREE, {"currency": "EUR"}, "currency_mismatch"),
        (
            ((15000, "2027-01-04"), (15000, "2026-12-04"), (15000, "2027-02-04")),
            {},
            "installments_out_of_order",
        ),
        (((15000, "2026-11-26"), (30000, "2026-12-26")), {}, "date_in_past"),
        (tuple((5000, f"2026-12-{d:02d}") for d in range(1, 10)), {}, "too_many_installments"),
        (
            ((1000, "2026-12-04"), (22000, "2027-01-04"), (22000, "2027-02-04")),
            {},
            "first_payment_too_small",
        ),
        (
            ((15000, "2026-12-12"), (15000, "2027-01-04"), (15000, "2027-02-04")),
            {},
            "first_payment_too_late",
        ),
        (
            ((15000, "2026-12-04"), (15000, "2027-01-04"), (15000, "2027-05-27")),
            {},
            "plan_too_long",
        ),
        (
            ((15000, "2026-12-04"), (15000, "2027-01-04")),
            {"settlement": True},
            "settlement_not_offered",
        ),
        (((15000, "2026-12-04"), (15000, "2027-01-04")), {}, "plan_total_short"),
        (((15000, "2026-12-04"), (30001, "2027-01-04")), {}, "plan_total_above_balance"),
    ],
)
def test_a_refused_plan_gives_the_reason_and_an_offer_inside_the_rules(
    items: tuple[tuple[int, str], ...], kwargs: dict[str, Any], reason: str
) -> None:
    conv = verified()
    result = conv.add_tool_call("p", "record_payment_plan", plan_args(*items, **kwargs))
    assert not result.ok and result.reason is not None and result.reason.value == reason
    assert result.state is S.NEGOTIATION and conv.plan is None and conv.outcome is None
    body = content(result)
    assert set(body) == {"ok", "message", "state", "offer"}
    offer = body["offer"]
    assert offer["settlement"] is False
    assert result.offer is not None and result.offer.as_offer() == offer
    assert check_plan(default_rules(), 45000, dt.date(2026, 11, 27), result.offer) is None
    # The model hears words it may use, never a limit as a limit.
    assert not any(w in result.message.lower() for w in LIMIT_WORDS), result.message
    assert "4500" not in result.message and "1000" not in result.message


def test_negotiating_from_two_counter_offers_to_an_accepted_plan() -> None:
    conv = verified()
    first = conv.add_tool_call("p1", "record_payment_plan", plan_args((10000, "2026-12-20")))
    assert first.reason is not None and first.reason.value == "first_payment_too_late"
    assert first.offer is not None
    second = conv.add_tool_call(
        "p2", "record_payment_plan", plan_args((2000, "2026-12-10"), (43000, "2027-01-10"))
    )
    assert second.reason is not None and second.reason.value == "first_payment_too_small"
    assert second.offer is not None
    assert [i.amount_minor for i in second.offer.installments] == [4500, 40500]
    accepted = conv.add_tool_call(
        "p3", "record_payment_plan", json.dumps({**second.offer.as_offer(), "currency": "USD"})
    )
    assert accepted.ok and conv.outcome is CallOutcome.PROMISE_TO_PAY
    assert conv.plan == second.offer


def test_a_settlement_inside_the_floor_is_read_back_as_settling_the_account() -> None:
    conv = verified(rules=default_rules(settlement_floor_bp=7000))
    low = conv.add_tool_call(
        "s1", "record_payment_plan", plan_args((10000, "2026-12-04"), settlement=True)
    )
    assert low.reason is not None and low.reason.value == "settlement_below_floor"
    assert low.offer is not None and low.offer.settlement and low.offer.total_minor == 31500
    ok = conv.add_tool_call(
        "s2", "record_payment_plan", json.dumps({**low.offer.as_offer(), "currency": "USD"})
    )
    assert ok.ok and ok.line is not None and ok.line.kind == "settlement_read_back"
    assert "settles your account in full" in ok.line.text
    assert conv.plan is not None and conv.plan.settlement


def test_a_plan_needs_verification_and_the_disclosure_heard() -> None:
    conv = conversation()
    conv.add_debtor_turn("Hello?")
    refused = conv.add_tool_call("p", "record_payment_plan", plan_args(*THREE))
    assert not refused.ok and refused.reason is not None
    assert refused.reason.value == "not_allowed_in_state"
    unheard = verified(heard=False)
    result = unheard.add_tool_call("p", "record_payment_plan", plan_args(*THREE))
    assert result.reason is not None and result.reason.value == "disclosure_not_heard"


def test_a_plan_replaces_a_promise_in_commitment_and_a_dispute_clears_it() -> None:
    conv = verified()
    assert conv.add_tool_call("c1", "record_payment_promise", promise_args(amount=15000)).ok
    assert conv.add_tool_call("c2", "record_payment_plan", plan_args(*THREE)).ok
    assert conv.plan is not None and len(conv.plan.installments) == 3
    assert conv.add_tool_call("d", "report_dispute", '{"reason": "already paid in May"}').ok
    assert conv.plan is None and conv.promise is None and conv.outcome is CallOutcome.DISPUTED
    assert conv.dispute_reason == "already paid in May"


def test_a_single_promise_below_the_first_payment_floor_gets_a_counter_offer() -> None:
    conv = verified()
    result = conv.add_tool_call("c", "record_payment_promise", promise_args(amount=2000))
    assert not result.ok and result.reason is not None
    assert result.reason.value == "first_payment_too_small"
    assert content(result)["offer"] == {
        "installments": [{"amount_minor": 4500, "date": "2026-12-01"}],
        "settlement": False,
    }
    assert not any(w in result.message.lower() for w in LIMIT_WORDS)
    assert conv.add_tool_call("c2", "record_payment_promise", promise_args(amount=4500)).ok
    assert conv.plan is not None and len(conv.plan.installments) == 1


def test_pre_delinquency_takes_any_partial_payment() -> None:
    conv = verified(stage="pre_delinquency")
    assert conv.add_tool_call("c", "record_payment_promise", promise_args(amount=100)).ok


def test_a_promise_too_late_keeps_the_fixed_line_and_no_offer() -> None:
    result = verified().add_tool_call(
        "c", "record_payment_promise", promise_args(date="2026-12-12")
    )
    assert result.line is not None and result.line.kind == "promise_limit"
    assert "offer" not in content(result)


# --- report_hardship ---------------------------------------------------------------------------


def test_hardship_offers_the_smallest_plan_then_a_callback_keeps_the_note() -> None:
    conv = verified()
    result = conv.add_tool_call("h", "report_hardship", '{"note": "lost my job last month"}')
    assert result.ok and result.state is S.NEGOTIATION and result.line is None
    assert conv.hardship_note == "lost my job last month"
    offer = content(result)["offer"]
    assert [i["amount_minor"] for i in offer["installments"]] == [7500] * 6
    assert offer["installments"][0]["date"] == "2026-12-11"
    assert offer["installments"][-1]["date"] == "2027-05-26"
    assert not any(w in result.message.lower() for w in ("minimum", "limit", "basis"))
    # Declined: the second report says no plan fits, and offers a callback.
    again = conv.add_tool_call("h2", "report_hardship", '{"note": "cannot pay anything now"}')
    assert again.ok and again.offer is None and "schedule_callback" in again.message
    assert conv.hardship_note == "lost my job last month; cannot pay anything now"
    cb = conv.add_tool_call(
        "cb",
        "schedule_callback",
        json.dumps({"when": "2026-11-30T14:00:00-05:00", "reason": "hardship"}),
    )
    assert cb.ok and conv.outcome is CallOutcome.CALLBACK_SCHEDULED
    assert conv.hardship_note is not None


def test_hardship_then_accepting_the_offer_is_a_plan_with_the_note() -> None:
    conv = verified()
    result = conv.add_tool_call("h", "report_hardship", '{"note": "medical bills"}')
    offer = content(result)["offer"]
    accepted = conv.add_tool_call(
        "p", "record_payment_plan", json.dumps({**offer, "currency": "USD"})
    )
    assert accepted.ok and conv.outcome is CallOutcome.PROMISE_TO_PAY
    assert conv.hardship_note == "medical bills"


def test_hardship_with_no_plan_possible_goes_straight_to_a_callback() -> None:
    conv = verified(rules=default_rules(max_installments=1, min_first_payment_bp=10000))
    result = conv.add_tool_call("h", "report_hardship", '{"note": "on sick leave"}')
    assert result.ok and result.offer is None and "schedule_callback" in result.message


def test_hardship_without_plans_offers_a_first_part_as_a_single_payment() -> None:
    conv = verified(rules=default_rules(max_installments=1))
    result = conv.add_tool_call("h", "report_hardship", '{"note": "reduced hours"}')
    assert result.offer is not None and len(result.offer.installments) == 1
    assert result.offer.first.amount_minor == 4500
    assert "record_payment_promise" in result.message


def test_hardship_needs_verification() -> None:
    conv = conversation()
    conv.add_debtor_turn("Hello?")
    conv.add_agent_turn(conv.greeting_line())
    result = conv.add_tool_call("h", "report_hardship", '{"note": "x"}')
    assert not result.ok and conv.hardship_note is None


# --- request_validation_notice -----------------------------------------------------------------


def test_a_written_notice_request_closes_the_call_with_its_outcome() -> None:
    conv = verified()
    result = conv.add_tool_call("v", "request_validation_notice", "{}")
    assert result.ok and result.end_call and result.state is S.CLOSING
    assert result.line is not None and result.line.kind == "validation_notice_closing"
    assert "written notice" in result.line.text
    assert conv.outcome is CallOutcome.VALIDATION_NOTICE_REQUESTED
    conv.add_agent_turn(result.line.text)
    assert conv.finished
    assert conv.finalize(EndReason.HANGUP) is CallOutcome.VALIDATION_NOTICE_REQUESTED


def test_a_written_notice_needs_the_name_confirmed_and_then_says_nothing_of_the_debt() -> None:
    conv = conversation(date_of_birth=dt.date(1985, 3, 4))
    conv.add_debtor_turn("Hello?")
    conv.add_agent_turn(conv.greeting_line())
    assert not conv.add_tool_call("v0", "request_validation_notice", "{}").ok
    conv.add_debtor_turn("Yes, that's me. Send me something in writing.")
    assert conv.add_tool_call("c", "confirm_identity", "{}").ok and conv.state is S.VERIFICATION
    result = conv.add_tool_call("v", "request_validation_notice", "{}")
    assert result.ok and conv.outcome is CallOutcome.VALIDATION_NOTICE_REQUESTED
    assert result.line is not None
    assert not any(w in result.line.text.lower() for w in ("debt", "balance", "owe", "dollar"))


def test_an_opt_out_overrides_a_written_notice_request() -> None:
    conv = verified()
    assert conv.add_tool_call("v", "request_validation_notice", "{}").ok
    assert conv.add_tool_call("o", "request_no_further_calls", "{}").ok
    assert conv.outcome is CallOutcome.OPTED_OUT


# --- identify_caller ---------------------------------------------------------------------------

CALLER_LINE = (
    "I'm Alex, an AI assistant calling on behalf of Acme Finance. You can check this call by "
    "calling Acme Finance at 8 0 0, 5 5 5, 0 1 0 0. Would you like to continue now, or would "
    "you prefer to call them yourself?"
)


def test_identify_caller_before_verification_says_who_calls_and_nothing_more() -> None:
    conv = conversation()
    conv.add_debtor_turn("Hello?")
    conv.add_agent_turn(conv.greeting_line())
    conv.add_debtor_turn("Who is this? Is this a scam?")
    result = conv.add_tool_call("i", "identify_caller", "{}")
    assert result.ok and not result.end_call and result.state is S.VERIFICATION
    assert result.line is not None and result.line.kind == "identify_caller"
    assert result.line.text == CALLER_LINE
    assert not result.line.ask_model_after and not result.line.end_call_after
    assert conv.outcome is None and not conv.verified
    conv.add_agent_turn(result.line.text)
    assert not conv.finished
    # The debtor goes on: verification and a promise as usual.
    conv.add_debtor_turn("Okay, yes, this is Jane.")
    confirm = conv.add_tool_call("c", "confirm_identity", "{}")
    assert confirm.ok and confirm.line is not None
    conv.add_agent_turn(confirm.line.text)
    assert conv.add_tool_call("p", "record_payment_promise", promise_args()).ok


def test_identify_caller_after_verification_keeps_the_state() -> None:
    conv = verified()
    result = conv.add_tool_call("i", "identify_caller", "{}")
    assert result.ok and result.state is S.NEGOTIATION and result.line is not None
    assert result.line.text == CALLER_LINE
    assert conv.outcome is None


def test_identify_caller_is_a_premade_line_and_speaks_the_configured_number() -> None:
    conv = conversation(callback_number="+14155550123")
    text = "I'm Alex, an AI assistant calling on behalf of Acme Finance. You can check this call"
    assert any(t.startswith(text) and "4 1 5, 5 5 5, 0 1 2 3" in t for t in conv.premade_lines())
    assert any(
        contains_line(t, "We'll send you a written notice by mail") for t in conv.premade_lines()
    )


def test_new_tools_need_the_debtor_heard_first_where_the_table_says() -> None:
    conv = conversation()
    assert not conv.add_tool_call("i", "identify_caller", "{}").ok  # greeting: not yet
    assert conv.add_tool_call("x", "report_hardship", '{"note": "x"}').reason is not None
    assert NOW.tzinfo is not None
