"""Right-party verification's second factor (conversation/verification.py): reading answers,
comparing them, the two-strikes rule, name_only, and that the model never sees the fact."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from conversation_support import NOW, facts

from services.voice_orchestrator.conversation import CallOutcome, Conversation, EndReason
from services.voice_orchestrator.conversation.verification import (
    FactKind,
    VerificationLevel,
    fact_to_ask,
    matches,
    spoken_dates,
    spoken_digits,
)

DOB = dt.date(1985, 3, 4)
ZIP = "62704"
LAST4 = "2291"
# Every way the values on file could leak into what the model reads.
DOB_FORMS = (
    "1985-03-04",
    "03/04",
    "3/4/",
    "1985",
    "nineteen eighty",
    "eighty-five",
    "March 4",
    "March fourth",
)
ZIP_FORMS = (ZIP, "six two seven", "sixty-two")
LAST4_FORMS = (LAST4, "two two nine", "twenty-two")


@pytest.mark.parametrize(
    "said",
    [
        "March 4th 1985",
        "March fourth, nineteen eighty-five.",
        "It's March the fourth, 85.",
        "the fourth of March eighty-five",
        "4 March 1985",
        "3/4/85",
        "03-04-1985",
        "1985-03-04",
        "Sure. Mar 4, 1985",
        "march four nineteen eighty five",
    ],
)
def test_date_of_birth_said_many_ways_matches(said: str) -> None:
    assert matches(FactKind.DATE_OF_BIRTH, said, facts(date_of_birth=DOB)), spoken_dates(said)


@pytest.mark.parametrize(
    "said",
    [
        "March 5th 1985",  # wrong day
        "April 4th 1985",  # wrong month
        "March 4th 1986",  # wrong year
        "March 4th",  # no year
        "4/3/85",  # US order: that is April 3rd
        "March 4th 1985 or maybe April 5th 1986",  # two guesses at once never pass
        "nineteen eighty-five",  # a year alone
        "I'd rather not say.",
        "",
    ],
)
def test_date_of_birth_wrong_or_unclear_does_not_match(said: str) -> None:
    assert not matches(FactKind.DATE_OF_BIRTH, said, facts(date_of_birth=DOB))


def test_year_forms() -> None:
    assert spoken_dates("May fifth two thousand and three") == [(2003, 5, 5)]
    assert spoken_dates("January first, twenty oh three") == [(2003, 1, 1)]
    assert spoken_dates("March twenty-first nineteen oh five") == [(1905, 3, 21)]
    assert spoken_dates("I may have been born in 1985") == []  # "may" next to no day


@pytest.mark.parametrize(
    ("said", "digits"),
    [
        ("six two seven oh four", "62704"),
        ("62704", "62704"),
        ("sixty-two seven oh four", "62704"),
        ("Oh, sure, it's 6 2 7 0 4.", "62704"),  # a leading "Oh" is no zero
        ("double seven one two", "7712"),
        ("it ends in twenty-two ninety-one", "2291"),
        ("Wait a second, 62704", "62704"),  # "second" is no digit here
    ],
)
def test_digits_said_as_words_or_digits(said: str, digits: str) -> None:
    assert spoken_digits(said) == digits


def test_zip_and_last4_must_be_exactly_the_digits_said() -> None:
    f = facts(postal_code=ZIP, account_last4=LAST4)
    assert matches(FactKind.POSTAL_CODE, "My zip is six two seven oh four.", f)
    assert not matches(FactKind.POSTAL_CODE, "62705", f)
    assert not matches(FactKind.POSTAL_CODE, "62704 or 62705", f)  # spraying guesses fails
    assert not matches(FactKind.POSTAL_CODE, "I live at 12 Main Street, 62704", f)
    assert matches(FactKind.ACCOUNT_LAST4, "two two nine one", f)
    assert matches(FactKind.ACCOUNT_LAST4, "It's 2291.", f)
    assert not matches(FactKind.ACCOUNT_LAST4, "2219", f)


def test_fact_asked_for_is_the_first_on_file() -> None:
    assert fact_to_ask(facts()) is None
    assert fact_to_ask(facts(account_last4=LAST4)) is FactKind.ACCOUNT_LAST4
    assert fact_to_ask(facts(postal_code=ZIP, account_last4=LAST4)) is FactKind.POSTAL_CODE
    both = facts(date_of_birth=DOB, postal_code=ZIP)
    assert fact_to_ask(both) is FactKind.DATE_OF_BIRTH


# --- the flow -----------------------------------------------------------------------------------


def _named(**overrides: Any) -> tuple[Conversation, Any]:
    """Greeted, the name confirmed: returns the conversation and confirm_identity's result."""
    conv = Conversation(facts(**overrides), NOW)
    conv.add_debtor_turn("Hello?")
    conv.add_agent_turn(conv.greeting_line())
    conv.add_debtor_turn("Yes, speaking.")
    result = conv.add_tool_call("c1", "confirm_identity", "{}")
    assert result.ok
    if result.line is not None:
        conv.add_agent_turn(result.line.text)
    return conv, result


def _answer(conv: Conversation, said: str, call_id: str = "c2") -> Any:
    conv.add_debtor_turn(said)
    result = conv.add_tool_call(call_id, "verify_fact", json.dumps({"answer": said}))
    if result.line is not None:
        conv.add_agent_turn(result.line.text)
    return result


def _facts_row(conv: Conversation, key: str) -> str:
    block = conv.system_prompt().rsplit("### CALL FACTS", 1)[1]
    return next(v.strip() for k, _, v in (x.partition(":") for x in block.splitlines()) if k == key)


def test_name_then_date_of_birth_then_disclosure() -> None:
    conv, named = _named(date_of_birth=DOB)
    assert named.line is not None and named.line.kind == "fact_question"
    assert "your date of birth" in named.line.text
    assert conv.state.value == "verification" and not conv.verified
    assert _facts_row(conv, "fact_to_verify") == "date_of_birth"
    assert _facts_row(conv, "balance_minor") == ""  # nothing about the debt yet
    assert "four hundred fifty" not in named.line.text
    # Refused moves while the fact is pending: nothing about the debt can be recorded.
    assert not conv.add_tool_call("p", "record_payment_promise", _promise()).ok

    result = _answer(conv, "March fourth, nineteen eighty-five.")
    assert result.ok and json.loads(result.content())["message"].startswith("Matched")
    assert result.line is not None and result.line.kind == "disclosure"
    assert not result.line.ask_model_after  # the date alone asks nothing of the model
    assert conv.state.value == "negotiation" and conv.verified
    assert conv.verification == (VerificationLevel.NAME_AND_FACT, FactKind.DATE_OF_BIRTH)
    assert _facts_row(conv, "fact_to_verify") == ""
    assert [t.event.value for t in conv.transitions][-2:] == ["name_confirmed", "verify_fact"]


def test_one_wrong_answer_then_the_right_one() -> None:
    conv, _ = _named(postal_code=ZIP)
    retry = _answer(conv, "six two seven oh five")
    assert retry.ok and json.loads(retry.content())["message"].startswith("Not matched")
    assert retry.line is not None and retry.line.kind == "fact_question"
    assert "ZIP code once more" in retry.line.text
    assert conv.state.value == "verification" and not conv.verified
    result = _answer(conv, "Sorry, six two seven oh four.", "c3")
    assert result.line is not None and result.line.kind == "disclosure"
    assert conv.verification == (VerificationLevel.NAME_AND_FACT, FactKind.POSTAL_CODE)


def test_two_wrong_answers_end_unverified_with_nothing_disclosed() -> None:
    conv, _ = _named(date_of_birth=DOB)
    _answer(conv, "January first, 1990.")
    last = _answer(conv, "Um, February second, 1991?", "c3")
    assert last.ok and last.end_call
    assert last.line is not None and last.line.kind == "unverified_closing"
    assert conv.outcome is CallOutcome.UNVERIFIED
    assert conv.finished and not conv.verified and conv.state.value == "closing"
    assert conv.verification == (VerificationLevel.NONE, None)
    assert conv.finalize(EndReason.HANGUP) is CallOutcome.UNVERIFIED
    agent_said = " ".join(t.text for t in conv.transcript if t.speaker.value == "agent")
    for debt_word in ("debt", "balance", "four hundred fifty", "collect", "November"):
        assert debt_word not in agent_said
    for prompt in (conv.system_prompt(), json.dumps(conv.llm_messages())):
        assert "45000" not in prompt and "four hundred fifty" not in prompt


def test_no_fact_on_file_means_name_only() -> None:
    conv, named = _named()
    assert named.line is not None and named.line.kind == "disclosure"
    assert conv.verification == (VerificationLevel.NAME_ONLY, None)
    assert not conv.add_tool_call("v", "verify_fact", '{"answer": "1985"}').ok


def test_guards_and_no_ops_of_the_fact_step() -> None:
    conv = Conversation(facts(date_of_birth=DOB), NOW)
    conv.add_debtor_turn("Hello?")
    conv.add_agent_turn(conv.greeting_line())
    early = conv.add_tool_call("v", "verify_fact", '{"answer": "March 4th 1985"}')
    assert not early.ok and "confirm_identity first" in early.message
    conv.add_debtor_turn("Yes, speaking.")
    assert conv.add_tool_call("c1", "confirm_identity", "{}").line is not None
    again = conv.add_tool_call("c2", "confirm_identity", "{}")
    assert again.ok and again.line is None and "already confirmed" in again.message
    assert not conv.add_tool_call("v2", "verify_fact", '{"answer": "  "}').ok
    assert conv.state.value == "verification"


def test_hang_up_while_the_fact_is_pending_is_unverified() -> None:
    conv, _ = _named(account_last4=LAST4)
    assert conv.finalize(EndReason.HANGUP) is CallOutcome.UNVERIFIED


def test_wrong_party_after_verification_resets_the_level() -> None:
    conv, _ = _named(date_of_birth=DOB)
    _answer(conv, "March 4th 1985")
    conv.add_debtor_turn("Actually, I'm her sister.")
    assert conv.add_tool_call("w", "report_wrong_party", "{}").ok
    assert conv.verification == (VerificationLevel.NONE, None)


def test_fact_lines_are_made_ahead_only_when_a_fact_is_on_file() -> None:
    with_fact = Conversation(facts(date_of_birth=DOB), NOW).premade_lines()
    assert any("date of birth" in t for t in with_fact)
    assert any("wasn't able to verify" in t for t in with_fact)
    assert not any("verify" in t for t in Conversation(facts(), NOW).premade_lines())


@pytest.mark.parametrize(
    ("overrides", "forms", "right", "wrong"),
    [
        ({"date_of_birth": DOB}, DOB_FORMS, "March 4th 1985", "July 9th 1970"),
        ({"postal_code": ZIP}, ZIP_FORMS, "62704", "10001"),
        ({"account_last4": LAST4}, LAST4_FORMS, "2291", "4321"),
    ],
)
def test_the_model_never_sees_the_fact(
    overrides: dict[str, Any], forms: tuple[str, ...], right: str, wrong: str
) -> None:
    """Every prompt, tool schema, tool result and system line, at every step, is free of the
    value; only the person's own answer (and the model's verify_fact call quoting it) may
    contain it."""
    seen: list[str] = []

    def look(conv: Conversation) -> None:
        seen.append(conv.system_prompt())
        seen.append(json.dumps(conv.tools()))
        seen.extend(
            json.dumps(m)
            for m in conv.llm_messages()
            if m["role"] in ("system", "tool") or (m["role"] == "assistant" and m["content"])
        )
        seen.extend(conv.premade_lines())

    # Two wrong answers: the value never appears anywhere, user messages included.
    conv, _ = _named(**overrides)
    look(conv)
    _answer(conv, wrong)
    look(conv)
    _answer(conv, wrong, "c3")
    look(conv)
    everything = json.dumps(conv.llm_messages())
    # And the right answer: only the user's own message carries it.
    conv, _ = _named(**overrides)
    _answer(conv, right)
    look(conv)
    for form in forms:
        assert form not in everything
        for text in seen:
            assert form not in text, (form, text[:200])


def _promise() -> str:
    return json.dumps({"amount_minor": 1000, "currency": "USD", "date": "2026-11-30"})
