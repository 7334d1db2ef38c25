"""Fixed lines: built from prompts/lines.md, handed out with accepted tool calls, the owed
disclosure, and the two heuristics that decide what else is said (tables of examples)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from conversation_support import NOW, conversation, facts, promise_args, verified

from services.voice_orchestrator.conversation import (
    LINE_KINDS,
    CallOutcome,
    Conversation,
    ConversationState,
    FixedLine,
    commits_to_outcome,
    default_prompt_set,
    needs_model_after,
    prompt_cache_key,
)
from services.voice_orchestrator.conversation.prompting import parse_lines

S = ConversationState
DISCLOSURE = (
    "This is an attempt to collect a debt, and any information obtained will be used for that "
    "purpose."
)
LINES = default_prompt_set().lines


def test_fixed_line_is_frozen_and_kinds_are_the_contract() -> None:
    line = FixedLine("Goodbye.", "goodbye", end_call_after=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        line.text = "x"  # type: ignore[misc]
    assert LINE_KINDS == (
        "disclosure",
        "fact_question",
        "read_back",
        "plan_read_back",
        "settlement_read_back",
        "promise_limit",
        "callback_confirm",
        "dispute_closing",
        "wrong_party_closing",
        "opt_out_closing",
        "unverified_closing",
        "validation_notice_closing",
        "identify_caller",
        "goodbye",
    )


# --- prompts/lines.md ---------------------------------------------------------------------------


def test_the_disclosure_comes_verbatim_from_prompts() -> None:
    assert LINES.render("disclosure") == DISCLOSURE
    assert LINES.version == "2026-12-06.1"


def _lines_file(**sections: str) -> str:
    body = "\n\n".join(f"## {k}\n{v}" for k, v in {**dict(LINES.templates), **sections}.items())
    return f"---\nversion: 1\n---\nPreamble.\n\n{body}\n"


def test_lines_file_is_validated_line_by_line() -> None:
    assert parse_lines(_lines_file()).templates == LINES.templates
    with pytest.raises(ValueError, match="may not use"):  # a debt value in the greeting
        parse_lines(_lines_file(greeting="Hi {debtor_name}, you owe {balance_spoken}."))
    with pytest.raises(ValueError, match="unknown or disallowed"):
        parse_lines(_lines_file(goodbye="Bye {account_reference}."))
    with pytest.raises(ValueError, match="unknown lines"):
        parse_lines(_lines_file(surprise="Hello."))
    text = _lines_file().replace("## apology\n", "## not_apology\n")
    with pytest.raises(ValueError, match="missing lines"):
        parse_lines(text)
    with pytest.raises(ValueError, match="empty"):
        parse_lines(_lines_file(reprompt=""))
    with pytest.raises(ValueError, match="front matter"):
        parse_lines("## greeting\nHello.")


# --- lines handed out with tool calls -----------------------------------------------------------


def test_confirm_identity_hands_out_disclosure_balance_and_a_payment_question() -> None:
    conv = verified(heard=False)
    result = conv.add_tool_call("again", "confirm_identity", "{}")
    assert result.ok and result.line is None  # the no-op says nothing new
    [first] = [m for m in conv.llm_messages() if m.get("tool_call_id") == "call_confirm"]
    message = json.loads(first["content"])["message"]
    line = conv.owed_line()
    assert line is not None
    expected = (
        f"{DISCLOSURE} Your balance of four hundred fifty dollars was due on November first. "
        "How would you like to take care of it?"
    )
    # The model is told the words were said, so it does not repeat them.
    assert f'word for word: "{expected}"' in message and "Do not repeat it" in message


def test_disclosure_line_for_a_plain_yes_and_for_a_question() -> None:
    conv = conversation()
    conv.add_debtor_turn("Hello?")
    conv.add_agent_turn(conv.greeting_line())
    conv.add_debtor_turn("Yes, speaking.")
    line = conv.add_tool_call("c", "confirm_identity", "{}").line
    assert line == FixedLine(
        f"{DISCLOSURE} Your balance of four hundred fifty dollars was due on November first. "
        "How would you like to take care of it?",
        "disclosure",
    )
    conv = conversation(stage="pre_delinquency", due_date=dt.date(2026, 12, 10))
    conv.add_debtor_turn("Yes, this is Jane. Can I pay by card?")
    line = conv.add_tool_call("c", "confirm_identity", "{}").line
    # The model answers the question after the line, so the line asks none of its own.
    assert line == FixedLine(
        f"{DISCLOSURE} You have a payment of four hundred fifty dollars due on December tenth.",
        "disclosure",
        ask_model_after=True,
    )


def test_accepted_outcomes_hand_out_their_closing_lines() -> None:
    conv = verified()
    result = conv.add_tool_call("p", "record_payment_promise", promise_args(date="2026-12-01"))
    assert result.ok and result.end_call and result.state is S.COMMITMENT
    assert result.line == FixedLine(
        "Thank you. I've recorded your payment of four hundred fifty dollars on December first. "
        "Have a good day, goodbye.",
        "read_back",
        end_call_after=True,
    )
    assert result.line.text in result.message and "say nothing more" in result.message
    assert conv.closing_line() == result.line.text  # one place for each text

    cases = [
        ("report_dispute", '{"reason": "not mine"}', "dispute_closing"),
        ("report_wrong_party", "{}", "wrong_party_closing"),
        ("request_no_further_calls", "{}", "opt_out_closing"),
    ]
    for name, args, kind in cases:
        conv = verified()
        result = conv.add_tool_call("t", name, args)
        assert result.ok and result.end_call and result.line is not None
        assert result.line.kind == kind and result.line.end_call_after
        assert not result.line.ask_model_after
        assert result.line.text == LINES.render(kind) == conv.closing_line()

    conv = verified()
    when = json.dumps({"when": "2026-11-28T17:00:00-05:00", "reason": "asked"})
    line = conv.add_tool_call("cb", "schedule_callback", when).line
    assert line == FixedLine(
        "Thank you. We'll call you back on Saturday, November twenty-eighth at five in the "
        "evening. Goodbye.",
        "callback_confirm",
        end_call_after=True,
    )


def test_end_call_hands_out_the_goodbye_and_finishes_at_once() -> None:
    conv = verified()
    conv.add_debtor_turn("I'm not paying that, forget it.")
    result = conv.add_tool_call("e", "end_call", '{"reason": "refused"}')
    assert result.ok and result.end_call and conv.finished
    assert result.line == FixedLine(
        "Thank you for your time. Goodbye.", "goodbye", end_call_after=True
    )


def test_refused_calls_hand_out_no_line() -> None:
    conv = verified()
    result = conv.add_tool_call("p", "record_payment_promise", promise_args(amount=99999))
    assert not result.ok and result.line is None
    conv = conversation()
    assert conv.add_tool_call("c", "confirm_identity", "{}").line is None  # nobody spoke yet


def test_a_promise_past_the_date_limit_is_answered_by_the_policy_line() -> None:
    # The refusal has one right answer, the latest date: said by the system, not asked for.
    conv = verified()
    result = conv.add_tool_call("p", "record_payment_promise", promise_args(date="2026-12-12"))
    assert not result.ok and conv.promise is None and conv.state is S.NEGOTIATION
    assert result.line == FixedLine(
        "I'm sorry, I can only note a payment up to December eleventh. Could you make it by then?",
        "promise_limit",
    )
    assert "too far out" in result.message and result.line.text in result.message
    # A question in the debtor's turn still gets the model after the line.
    conv = verified()
    conv.add_debtor_turn("Can I pay on the twelfth? What happens if I can't?")
    asked = conv.add_tool_call("p", "record_payment_promise", promise_args(date="2026-12-12"))
    assert asked.line is not None and asked.line.ask_model_after


def test_derailment_by_refused_moves_hands_out_the_core_closing() -> None:
    conv = verified()
    results = [conv.add_tool_call(f"c{i}", "end_call", '{"reason": "x"}') for i in range(3)]
    assert results[-1].line is not None and results[-1].line.end_call_after
    assert results[-1].line.text == conv.closing_line()
    assert "ten in the morning" in results[-1].line.text


def test_a_closing_heard_in_full_finishes_the_call_and_a_cut_one_does_not() -> None:
    conv = verified()
    line = conv.add_tool_call("p", "record_payment_promise", promise_args()).line
    assert line is not None
    conv.add_agent_turn(line.text[:30], interrupted=True)
    assert not conv.finished  # the debtor cut in: they may still correct the promise
    conv.add_debtor_turn("Wait, make it two hundred dollars.")
    amended = conv.add_tool_call("p2", "record_payment_promise", promise_args(amount=20000))
    assert amended.ok and amended.line is not None and "two hundred dollars" in amended.line.text
    conv.add_agent_turn(amended.line.text)
    assert conv.finished and conv.state is S.CLOSING
    assert conv.outcome is CallOutcome.PROMISE_TO_PAY


# --- the owed disclosure ------------------------------------------------------------------------


def test_no_promise_until_the_disclosure_was_heard_in_full() -> None:
    conv = verified(heard=False)
    assert conv.disclosure_owed
    refused = conv.add_tool_call("p", "record_payment_promise", promise_args())
    assert not refused.ok and "disclosure" in refused.message and conv.promise is None
    owed = conv.owed_line()
    assert owed is not None
    # Cut off in the middle: still owed, and offered again at the next turn.
    conv.add_agent_turn(owed.text[: len(owed.text) // 2], interrupted=True)
    assert conv.disclosure_owed
    assert not conv.add_tool_call("p2", "record_payment_promise", promise_args()).ok
    again = conv.owed_line()
    assert again == FixedLine(
        f"{DISCLOSURE} Your balance of four hundred fifty dollars was due on November first.",
        "disclosure",
        ask_model_after=True,
    )
    # Heard in full (case, punctuation and what follows do not matter): no longer owed.
    conv.add_agent_turn(f"{DISCLOSURE.upper().replace(',', '')} And how can I help?")
    assert not conv.disclosure_owed and conv.owed_line() is None
    assert conv.add_tool_call("p3", "record_payment_promise", promise_args()).ok


def test_a_disclosure_queued_ahead_in_the_same_turn_lets_the_promise_through() -> None:
    """The shell says the disclosure first in the turn, so a promise the model records in
    that turn is heard after it; a turn cut before the disclosure leaves it owed again."""
    conv = verified(heard=False)
    owed = conv.owed_line()
    assert owed is not None
    conv.line_queued(owed)
    assert conv.add_tool_call("p", "record_payment_promise", promise_args()).ok
    conv.add_agent_turn(owed.text[:20], interrupted=True)
    assert conv.disclosure_owed and conv.owed_line() is not None
    # Queued only for the turn it was said in: the next turn's guard refuses again.
    conv2 = verified(heard=False)
    conv2.line_queued(owed)
    conv2.add_agent_turn("", interrupted=True)
    assert not conv2.add_tool_call("p", "record_payment_promise", promise_args()).ok


def test_owed_line_only_for_a_verified_call_that_is_not_over() -> None:
    conv = conversation()
    conv.add_debtor_turn("Hello?")
    assert conv.owed_line() is None and not conv.disclosure_owed
    conv = verified(heard=False)
    assert conv.owed_line() is not None
    conv.add_tool_call("w", "report_wrong_party", "{}")  # un-verified: hide the debt again
    assert conv.owed_line() is None
    conv = verified(heard=False)
    conv.add_tool_call("s", "request_no_further_calls", "{}")
    conv.add_agent_turn(conv.closing_line())
    assert conv.finished and conv.owed_line() is None


def test_a_disclosure_heard_before_verification_does_not_count() -> None:
    conv = conversation()
    conv.add_debtor_turn("Hello?")
    conv.add_agent_turn(f"Hi. {DISCLOSURE}")
    conv.add_debtor_turn("Yes, speaking.")
    conv.add_tool_call("c", "confirm_identity", "{}")
    assert conv.disclosure_owed


# --- lines known at call start ------------------------------------------------------------------


def test_premade_and_session_lines() -> None:
    conv = conversation()
    premade = conv.premade_lines()
    assert (
        premade[0]
        == conv.greeting_line()
        == (
            "Hello, this is Alex, an AI assistant calling on behalf of Acme Finance. Am I speaking "
            "with Jane Doe?"
        )
    )
    assert conv.apology_line() == (
        "I'm sorry, we're having a technical problem on our side. We'll call you back later. "
        "Goodbye."
    )
    assert conv.reprompt_line() == "Hello? Are you still there?"
    assert conv.silent_goodbye_line() == (
        "It seems this isn't a good time. We'll try again later. Goodbye."
    )
    for kind in ("dispute_closing", "wrong_party_closing", "opt_out_closing", "goodbye"):
        assert LINES.render(kind) in premade
    assert {conv.apology_line(), conv.reprompt_line(), conv.silent_goodbye_line()} <= set(premade)
    assert len(premade) == len(set(premade))
    # Whatever the debtor says, the disclosure line is one of the two premade variants.
    for first in ("Yes, speaking.", "Yes. Who are you?"):
        c = conversation()
        c.add_debtor_turn(first)
        line = c.add_tool_call("c", "confirm_identity", "{}").line
        assert line is not None and line.text in premade
        owed = c.owed_line()
        assert owed is not None and owed.text in premade


# --- needs_model_after --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("debtor_text", "expected"),
    [
        ("Yes, speaking.", False),
        ("Yes.", False),
        ("This is she.", False),
        ("Yeah, that's me.", False),
        ("Speaking", False),
        ("Yes, this is me. What is this about?", False),  # the line answers it
        ("Yes. What's this regarding?", False),
        ("Yes, how much do I owe?", False),
        ("Yes, why are you calling?", False),
        ("", False),
        ("Yes, who is this?", True),
        ("Yes. Who are you with?", True),
        ("That's me. Is this a real person?", True),
        ("Yes, can I pay by card", True),  # an opener, no question mark (STT)
        ("Yes. How do I pay?", True),
        ("Yes it's me, are you a robot?", True),
        ("Yes, what is the interest rate?", True),
        ("Yes, I can pay 200 dollars on Friday.", True),  # an offer the line would ignore
        ("Yes, but I can pay tomorrow.", True),
        ("Yes, but call me back later, I'm driving.", True),
        ("Hold on, yes, this is Jane.", True),
        ("Yes, but I don't owe this.", True),  # dispute
        ("Yes, and stop calling me.", True),  # opt-out
        ("Yes. Huh?", True),  # confused
        ("Speaking. Right?", True),
    ],
)
def test_needs_model_after(debtor_text: str, expected: bool) -> None:
    assert needs_model_after(debtor_text) is expected


# --- commits_to_outcome -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Thank you, Jordan.", False),
        ("Thank you.", False),
        ("Okay.", False),
        ("Got it.", False),
        ("I understand.", False),
        ("Thanks for letting me know.", False),
        ("Sure, Jane.", False),
        ("I've recorded your payment of fifty dollars.", True),
        ("Your payment of $50 is set.", True),
        ("I'll note that down.", True),
        ("Great, that's scheduled.", True),
        ("Your callback is booked.", True),
        ("I've set that up for you.", True),
        ("Thanks, you're verified.", True),
        ("I've confirmed your identity.", True),
        ("I'll call you back tomorrow.", True),
        ("We won't call you again.", True),
        ("Okay, Friday works.", True),
        ("Perfect, December third it is.", True),
        ("At five in the evening.", True),
        ("That's 200.", True),
        ("Fifty dollars, got it.", True),
        ("Thank you, Jane, about your balance.", True),  # nothing about the debt before the line
        ("I'm calling about your account.", True),
        ("Thank you, goodbye.", True),  # a refused end_call keeps the call going
        ("You're all set.", True),
        ("Your debt is cancelled.", True),
    ],
)
def test_commits_to_outcome(sentence: str, expected: bool) -> None:
    assert commits_to_outcome(sentence) is expected


# --- prompt caching -----------------------------------------------------------------------------


def test_system_prompts_of_different_calls_share_the_static_policy_prefix() -> None:
    one = Conversation(facts(), NOW)
    other = Conversation(
        facts(
            call_id="call-9",
            debtor_name="Robert O'Neil",
            company_name="Harbor Auto Loans",
            agent_name="Sam",
            stage="late",
            timezone="America/Los_Angeles",
        ),
        NOW + dt.timedelta(days=3),
    )
    policy = default_prompt_set().policy.body
    x, y = one.system_prompt(), other.system_prompt()
    common = next((i for i, (c, d) in enumerate(zip(x, y, strict=False)) if c != d), len(x))
    assert common >= 0.9 * len(policy)
    assert x.startswith(policy) and y.startswith(policy)
    assert "{" not in policy and "Jane" not in policy and "Acme" not in policy


def test_prompt_cache_key_is_by_prompt_version_not_by_call() -> None:
    a, b = Conversation(facts(), NOW), Conversation(facts(call_id="call-2"), NOW)
    assert prompt_cache_key(a.prompt_version) == prompt_cache_key(b.prompt_version)
    assert prompt_cache_key(a.prompt_version) == f"prompts:{a.prompt_version}"
    late = Conversation(facts(stage="late"), NOW)
    assert prompt_cache_key(late.prompt_version) != prompt_cache_key(a.prompt_version)
    long = prompt_cache_key("policy@" + "x" * 100)
    assert len(long) <= 64 and long == prompt_cache_key("policy@" + "x" * 100)
