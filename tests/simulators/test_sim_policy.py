"""The OpenAI simulator's collector policy and its parsers (pure functions)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from simulators.openai.parsing import (
    parse_amount_minor,
    parse_callback_time,
    parse_date,
    words_to_int,
)
from simulators.openai.policy import Intent, classify, parse_facts, respond
from tests.simulators.tool_lists import tool_defs

TODAY = date(2026, 11, 27)  # a Friday
TOOLS = tool_defs()


def system(state: str) -> dict[str, Any]:
    return {
        "role": "system",
        "content": (
            "You are a collector. Follow the rules.\n\n### CALL FACTS\n"
            f"state: {state}\nstage: early\ncompany: Acme Finance\nagent_name: Alex\n"
            "debtor_name: Jane Doe\nbalance_minor: 45000\ncurrency: USD\n"
            "balance_spoken: four hundred fifty dollars\ndue_date: 2026-11-01\n"
            "today: 2026-11-27\nlatest_promise_date: 2026-12-11\n"
        ),
    }


def convo(state: str, *turns: str) -> list[dict[str, Any]]:
    """System prompt, then alternating assistant/user turns ending with the user."""
    msgs = [system(state)]
    for i, text in enumerate(turns):
        role = "user" if (len(turns) - i) % 2 == 1 else "assistant"
        msgs.append({"role": role, "content": text})
    return msgs


def tool_result(state: str, name: str, args: str, ok: bool, new_state: str) -> list[dict[str, Any]]:
    return [
        system(state),
        {"role": "user", "content": "..."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": name, "arguments": args}}
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_9",
            "content": json.dumps({"ok": ok, "message": "m", "state": new_state}),
        },
    ]


@pytest.mark.parametrize(
    ("text", "minor"),
    [
        ("I can pay $120", 12000),
        ("$1,200.50 today", 120050),
        ("120 dollars", 12000),
        ("maybe 75.5 dollars", 7550),
        ("one hundred twenty dollars", 12000),
        ("a hundred bucks", 10000),
        ("I'll pay the full amount", 45000),
        ("I can pay it all", 45000),
        ("half of it now", 22500),
        ("on December 5", None),
        ("in 10 days", None),
    ],
)
def test_parse_amount(text: str, minor: int | None) -> None:
    assert parse_amount_minor(text, balance_minor=45000) == minor


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("today", date(2026, 11, 27)),
        ("tomorrow", date(2026, 11, 28)),
        ("the day after tomorrow", date(2026, 11, 29)),
        ("on December 5", date(2026, 12, 5)),
        ("December 5th", date(2026, 12, 5)),
        ("the 5th of December", date(2026, 12, 5)),
        ("on November 3", date(2027, 11, 3)),  # already past this year
        ("in 10 days", date(2026, 12, 7)),
        ("in two weeks", date(2026, 12, 11)),
        ("next Friday", date(2026, 12, 4)),  # said on a Friday: a week later
        ("on Monday", date(2026, 11, 30)),
        ("by the end of the month", date(2026, 11, 30)),
        ("on the 3rd", date(2026, 12, 3)),
        ("2026-12-01", date(2026, 12, 1)),
        ("I have no idea", None),
        ("I can't pay all of that right now", None),
    ],
)
def test_parse_date(text: str, expected: date | None) -> None:
    assert parse_date(text, TODAY) == expected


def test_words_to_int() -> None:
    assert words_to_int("two thousand three hundred and five") == 2305
    assert words_to_int("ninety-nine") == 99
    assert words_to_int("lots") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call me back tomorrow at 5pm", datetime(2026, 11, 28, 17, 0)),
        ("tomorrow afternoon", datetime(2026, 11, 28, 15, 0)),
        ("Monday morning", datetime(2026, 11, 30, 10, 0)),
        ("later this evening", datetime(2026, 11, 27, 18, 0)),
        ("at 3:30 p.m. on Tuesday", datetime(2026, 12, 1, 15, 30)),
        ("call me back later", datetime(2026, 11, 28, 10, 0)),
        ("tomorrow at 5", datetime(2026, 11, 28, 17, 0)),
    ],
)
def test_parse_callback_time(text: str, expected: datetime) -> None:
    got = parse_callback_time(text, TODAY)
    assert got.when == expected.replace(tzinfo=UTC)


def test_classify() -> None:
    assert Intent.STOP in classify("Please stop calling me.")
    assert Intent.WRONG_PARTY in classify("There's no one by that name here")
    assert Intent.DISPUTE in classify("I don't owe you anything")
    assert Intent.CALLBACK in classify("Can you call me back tomorrow?")
    assert Intent.AI_QUESTION in classify("Wait, are you a robot?")
    assert Intent.AFFIRM in classify("Yes, speaking.")
    assert Intent.PAY in classify("I could do 150 dollars")
    assert Intent.DATE in classify("Next Friday.")
    assert classify("   ") == {Intent.EMPTY}
    assert classify("Did you see the game last night?") == {Intent.UNKNOWN}


def test_facts_block_is_parsed() -> None:
    f = parse_facts([system("negotiation")])
    assert f.state == "negotiation" and f.company == "Acme Finance"
    assert f.balance_minor == 45000 and f.today == TODAY
    assert f.latest_promise_date == date(2026, 12, 11) and f.first_name == "Jane"


def test_greeting_identifies_as_ai_and_asks_for_the_debtor() -> None:
    r = respond(convo("greeting", "Hello?"), TOOLS)
    assert r.tool_calls == []
    assert r.text == (
        "Hello, this is Alex, an AI assistant calling from Acme Finance. "
        "May I please speak with Jane Doe?"
    )
    assert "debt" not in (r.text or "")  # nothing about the debt before verification
    assert respond([system("greeting")], TOOLS).text == r.text  # agent speaks first


@pytest.mark.parametrize(
    ("state", "said", "tool", "args"),
    [
        ("verification", "Yes, speaking.", "confirm_identity", {}),
        ("verification", "Sorry, wrong number.", "report_wrong_party", {}),
        ("verification", "Stop calling me!", "request_no_further_calls", {}),
        ("negotiation", "I don't owe this. That's not my debt.", "report_dispute", None),
        (
            "negotiation",
            "Yes, I can pay the full amount today.",
            "record_payment_promise",
            {"amount_minor": 45000, "currency": "USD", "date": "2026-11-27"},
        ),
        (
            "negotiation",
            "I can send $120 on December 5",
            "record_payment_promise",
            {"amount_minor": 12000, "currency": "USD", "date": "2026-12-05"},
        ),
        (
            "negotiation",
            "I'm at work. Call me back tomorrow at 5pm.",
            "schedule_callback",
            {"when": "2026-11-28T17:00:00+00:00", "reason": "debtor asked to be called back"},
        ),
    ],
)
def test_tool_calls(state: str, said: str, tool: str, args: dict[str, Any] | None) -> None:
    r = respond(convo(state, "Earlier question?", said), TOOLS)
    assert [name for name, _ in r.tool_calls] == [tool]
    if args is not None:
        assert json.loads(r.tool_calls[0][1]) == args


def test_offer_over_two_turns() -> None:
    msgs = convo(
        "negotiation",
        "Your balance is four hundred fifty dollars.",
        "I can't pay all of that right now. I could do 150 dollars.",
    )
    ask = respond(msgs, TOOLS)
    assert ask.tool_calls == [] and "When can you make that payment?" in (ask.text or "")
    msgs += [
        {"role": "assistant", "content": ask.text},
        {"role": "user", "content": "Next Friday."},
    ]
    r = respond(msgs, TOOLS)
    assert r.tool_calls == [
        ("record_payment_promise", '{"amount_minor":15000,"currency":"USD","date":"2026-12-04"}')
    ]


def test_tool_results_lead_to_disclosure_and_goodbye() -> None:
    r = respond(tool_result("verification", "confirm_identity", "{}", True, "negotiation"), TOOLS)
    assert r.tool_calls == []
    assert "attempt to collect a debt" in (r.text or "")
    assert "four hundred fifty dollars" in (r.text or "")
    args = '{"amount_minor":45000,"currency":"USD","date":"2026-11-28"}'
    done = respond(
        tool_result("negotiation", "record_payment_promise", args, True, "closing"), TOOLS
    )
    assert "450 dollars tomorrow" in (done.text or "") and "goodbye" in (done.text or "").lower()
    assert [n for n, _ in done.tool_calls] == ["end_call"]
    after_end = respond(
        tool_result("closing", "end_call", '{"reason":"x"}', True, "closing"), TOOLS
    )
    assert after_end.text is None and after_end.tool_calls == []


def test_refused_tool_results_make_it_ask_again() -> None:
    args = '{"amount_minor":45000,"currency":"USD","date":"2027-03-01"}'
    r = respond(
        tool_result("negotiation", "record_payment_promise", args, False, "negotiation"), TOOLS
    )
    assert r.tool_calls == [] and "Friday, December 11" in (r.text or "")
    r = respond(tool_result("verification", "confirm_identity", "{}", False, "verification"), TOOLS)
    assert "Jane Doe" in (r.text or "")


def test_derailment_ends_in_a_callback() -> None:
    lines = [
        "Are you kidding me? You people are vultures.",
        "Did you see the game last night? What a joke.",
        "I'm not paying a cent to you clowns.",
    ]
    # The core re-renders the system prompt every turn: the facts say "negotiation" now.
    msgs = tool_result("negotiation", "confirm_identity", "{}", True, "negotiation")
    replies = []
    for line in lines:
        msgs.append({"role": "user", "content": line})
        reply = respond(msgs, TOOLS)
        replies.append(reply)
        msgs.append({"role": "assistant", "content": reply.text})
    assert all(r.tool_calls == [] for r in replies[:2])
    assert replies[2].tool_calls == [
        (
            "schedule_callback",
            '{"when":"2026-11-28T10:00:00+00:00","reason":"conversation derailed"}',
        )
    ]


def test_no_tools_means_text_only_and_ai_disclosure() -> None:
    r = respond(convo("verification", "Hi", "Yes, speaking."), None)
    assert r.tool_calls == [] and r.text
    r = respond(convo("negotiation", "Hi", "Wait, am I talking to a real person?"), TOOLS)
    assert (r.text or "").startswith("Yes, I'm an AI assistant calling on behalf of Acme Finance.")


def test_deterministic() -> None:
    msgs = convo("negotiation", "Hi", "I could do 150 dollars next Friday")
    assert respond(msgs, TOOLS) == respond(msgs, TOOLS)


def _said_with_tool(state: str, said: str, reply: Any, result_state: str, ok: bool = True):
    """The conversation after `reply` (text + one tool call) and the core's tool result, with
    the reply's words put back into the tool-call message."""
    name, args = reply.tool_calls[0]
    return [
        system(result_state),
        {"role": "assistant", "content": "May I please speak with Jane Doe?"},
        {"role": "user", "content": said},
        {
            "role": "assistant",
            "content": reply.text,
            "tool_calls": [
                {"id": "call_7", "type": "function", "function": {"name": name, "arguments": args}}
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_7",
            "content": json.dumps({"ok": ok, "message": "m", "state": result_state}),
        },
    ]


def test_text_and_tool_call_in_one_reply_then_no_repetition() -> None:
    r = respond(convo("verification", "May I speak with Jane Doe?", "Yes, speaking."), TOOLS)
    assert r.text == "Thank you, Jane." and [n for n, _ in r.tool_calls] == ["confirm_identity"]
    after = respond(_said_with_tool("verification", "Yes, speaking.", r, "negotiation"), TOOLS)
    assert after.tool_calls == []
    text = after.text or ""
    assert "Thank you" not in text  # already said with the tool call
    assert text.startswith("Acme Finance is a debt collector") and "four hundred fifty" in text


def test_question_with_a_tool_call_is_answered_after_the_result() -> None:
    said = "Yes, this is Jane. Who are you with again?"
    r = respond(convo("verification", "May I speak with Jane Doe?", said), TOOLS)
    assert [n for n, _ in r.tool_calls] == ["confirm_identity"]
    msgs = _said_with_tool("verification", said, r, "negotiation")
    after = respond(msgs, TOOLS)
    assert "attempt to collect a debt" in (after.text or "")
    assert "I'm Alex, an AI assistant with Acme Finance." in (after.text or "")
    # The shell spoke the disclosure itself, then asks the model to go on: only the answer.
    msgs.append(
        {
            "role": "assistant",
            "content": "Acme Finance is a debt collector, and this is an attempt to collect a "
            "debt. Any information obtained will be used for that purpose. Your current balance "
            "is four hundred fifty dollars.",
        }
    )
    more = respond(msgs, TOOLS)
    assert more.tool_calls == []
    assert more.text is not None and "debt collector" not in more.text
    assert "I'm Alex, an AI assistant with Acme Finance." in more.text


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("How much is it exactly?", "Your balance is exactly four hundred fifty dollars."),
        ("When was it due?", "The payment was due on Sunday, November 1."),
        ("Can I pay part of it now?", "Yes, a partial payment is fine."),
        ("Sorry, who are you with again?", "I'm Alex, an AI assistant with Acme Finance"),
    ],
)
def test_questions_get_plain_answers_from_the_facts(said: str, expected: str) -> None:
    r = respond(convo("negotiation", "Your balance is four hundred fifty dollars.", said), TOOLS)
    assert r.tool_calls == [] and expected in (r.text or "")
    assert (r.text or "").rstrip().endswith("?")  # and the negotiation goes on


def test_no_debt_details_before_verification() -> None:
    r = respond(
        convo("verification", "May I speak with Jane Doe?", "How much is it exactly?"), TOOLS
    )
    assert "four hundred" not in (r.text or "") and r.tool_calls == []


def test_negotiation_over_several_turns_then_a_refused_and_an_accepted_promise() -> None:
    msgs = convo("negotiation", "Your balance is four hundred fifty dollars.", "Maybe 100 dollars.")
    ask = respond(msgs, TOOLS)
    assert ask.tool_calls == [] and "When can you make that payment?" in (ask.text or "")
    msgs += [
        {"role": "assistant", "content": ask.text},
        {"role": "user", "content": "Could I wait until next month?"},
    ]
    r = respond(msgs, TOOLS)
    assert [n for n, _ in r.tool_calls] == ["record_payment_promise"]
    refused = respond(
        [
            *msgs[:-1],
            *_said_with_tool("negotiation", msgs[-1]["content"], r, "negotiation", False)[2:],
        ],
        TOOLS,
    )
    assert refused.tool_calls == [] and "Friday, December 11" in (refused.text or "")
    r2 = respond(convo("negotiation", "Hi", "Okay. 100 dollars next Friday then."), TOOLS)
    args = json.loads(r2.tool_calls[0][1])
    assert args == {"amount_minor": 10000, "currency": "USD", "date": "2026-12-04"}
    assert r2.text in (
        "Okay.",
        "Great, thank you.",
        "Okay, so that's 100 dollars on Friday, December 4.",
    )
    done = respond(_said_with_tool("negotiation", "Okay.", r2, "closing"), TOOLS)
    assert "100 dollars on Friday, December 4" in (done.text or "")
    assert [n for n, _ in done.tool_calls] == ["end_call"]
