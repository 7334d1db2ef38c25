"""The simulated collector's issue-20 routes (pure policy): hardship, "already paid", in writing,
"is this a scam?", can't talk, and payment plans with counter-offers. Each new tool is used only
when the request offers it."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pytest

from simulators.openai.facts import Installment, Offer, parse_tool_result
from simulators.openai.plans import parse_plan, spoken_offer
from simulators.openai.policy import parse_facts, respond
from tests.simulators.tool_lists import MVP_TOOL_NAMES, PLAN_TOOL_NAMES, tool_defs

TODAY = date(2026, 11, 27)  # a Friday
OLD_TOOLS = MVP_TOOL_NAMES
NEW_TOOLS = PLAN_TOOL_NAMES


def tools(names: tuple[str, ...]) -> list[dict[str, Any]]:
    return tool_defs(names)


def system(state: str) -> dict[str, Any]:
    return {
        "role": "system",
        "content": (
            "You are a collector.\n\n### CALL FACTS\n"
            f"state: {state}\nstage: early\ncompany: Acme Finance\nagent_name: Alex\n"
            "debtor_name: Jane Doe\nbalance_minor: 45000\ncurrency: USD\n"
            "balance_spoken: four hundred fifty dollars\ndue_date: 2026-11-01\n"
            "today: 2026-11-27\nlatest_promise_date: 2026-12-11\n"
            "timezone: America/New_York\ncallback_number: +15550001111\n"
        ),
    }


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def call(name: str, args: dict[str, Any], cid: str = "call_1") -> dict[str, Any]:
    fn = {"name": name, "arguments": json.dumps(args)}
    return {"role": "assistant", "content": None, "tool_calls": [{"id": cid, "function": fn}]}


def result(ok: bool, state: str, offer: Offer | None = None, cid: str = "call_1") -> dict[str, Any]:
    content: dict[str, Any] = {"ok": ok, "message": "m", "state": state}
    if offer is not None:
        content["offer"] = {
            "installments": [
                {"amount_minor": i.amount_minor, "date": i.day.isoformat()}
                for i in offer.installments
            ],
            "settlement": offer.settlement,
        }
    return {"role": "tool", "tool_call_id": cid, "content": json.dumps(content)}


def said(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def only_call(reply: Any) -> tuple[str, dict[str, Any]]:
    assert len(reply.tool_calls) == 1, reply
    name, args = reply.tool_calls[0]
    return name, json.loads(args)


OFFER = Offer(
    (
        Installment(4500, date(2026, 12, 4)),
        Installment(8100, date(2027, 1, 4)),
        Installment(8100, date(2027, 2, 4)),
        Installment(8100, date(2027, 3, 4)),
        Installment(8100, date(2027, 4, 4)),
        Installment(8100, date(2027, 5, 4)),
    )
)


def installments(args: dict[str, Any]) -> list[tuple[int, str]]:
    return [(int(i["amount_minor"]), str(i["date"])) for i in args["installments"]]


def test_hardship_is_reported_with_the_debtors_words() -> None:
    words = "I lost my job last month and I'm struggling. I can't afford that right now."
    reply = respond([system("negotiation"), user(words)], tools(NEW_TOOLS))
    assert only_call(reply) == ("report_hardship", {"note": words})
    # Without the tool: the old answer (a smaller payment), no new tool invented.
    old = respond([system("negotiation"), user(words)], tools(OLD_TOOLS))
    assert old.tool_calls == [] and "smaller payment" in (old.text or "")


def test_hardship_offer_is_put_in_words_then_accepted_unchanged() -> None:
    hardship = [user("I'm struggling, I lost my job."), call("report_hardship", {"note": "x"})]
    msgs = [system("negotiation"), *hardship, result(True, "negotiation", OFFER)]
    reply = respond(msgs, tools(NEW_TOOLS))
    assert reply.tool_calls == []
    text = reply.text or ""
    assert "45 dollars on Friday, December 4" in text
    assert "5 payments of 81 dollars" in text and "the last on Tuesday, May 4" in text
    assert "450 dollars in total" in text and text.endswith("Would that work for you?")
    msgs += [said(text), user("Yes, I can manage that.")]
    name, args = only_call(respond(msgs, tools(NEW_TOOLS)))
    assert name == "record_payment_plan"
    assert installments(args) == [(i.amount_minor, i.day.isoformat()) for i in OFFER.installments]
    assert args["currency"] == "USD" and args["settlement"] is False


def test_hardship_without_offer_or_declined_offer_schedules_a_callback() -> None:
    hardship = [user("I can't afford anything."), call("report_hardship", {"note": "x"})]
    for after in (
        [result(True, "negotiation")],  # no plan fits
        [
            result(True, "negotiation", OFFER),
            said("We could do..."),
            user("No, I can't pay even that."),
        ],
    ):
        name, args = only_call(
            respond([system("negotiation"), *hardship, *after], tools(NEW_TOOLS))
        )
        assert name == "schedule_callback"
        when = datetime.fromisoformat(args["when"])
        assert when.date() == date(2026, 11, 30)  # three days ahead (a Monday), 10 AM local
        assert (when.hour, str(when.utcoffset())) == (10, "-1 day, 19:00:00")
        assert args["reason"].startswith("hardship")


def test_already_paid_is_a_dispute_with_the_reason_kept() -> None:
    words = "I already paid this last month. I sent 450 dollars on October 28."
    for names in (NEW_TOOLS, OLD_TOOLS):
        reply = respond([system("negotiation"), user(words)], tools(names))
        assert only_call(reply) == ("report_dispute", {"reason": f"already paid: {words}"})
    reply = respond([system("negotiation"), user("I don't owe this.")], tools(NEW_TOOLS))
    assert only_call(reply) == ("report_dispute", {"reason": "I don't owe this."})


@pytest.mark.parametrize(
    "words",
    [
        "Can you send me something in writing first?",
        "I want a validation notice before I pay anything.",
    ],
)
def test_in_writing_requests_a_validation_notice(words: str) -> None:
    reply = respond([system("negotiation"), user(words)], tools(NEW_TOOLS))
    assert only_call(reply) == ("request_validation_notice", {})
    msgs = [system("negotiation"), user(words), call("request_validation_notice", {})]
    after = respond([*msgs, result(True, "closing")], tools(NEW_TOOLS))
    assert after.tool_calls and after.tool_calls[0][0] == "end_call"


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ("verification", "Who is this? Is this a scam?"),
        ("verification", "How did you get my number?"),
        ("negotiation", "Wait, is this a scam?"),
    ],
)
def test_caller_check_identifies_the_caller(state: str, words: str) -> None:
    msgs = [system(state), said("Hello, this is Alex."), user(words)]
    assert only_call(respond(msgs, tools(NEW_TOOLS))) == ("identify_caller", {})
    old = respond(msgs, tools(OLD_TOOLS))  # without the tool: answered in words, as before
    assert all(name != "identify_caller" for name, _ in old.tool_calls)


def test_after_identify_caller_the_flow_goes_on() -> None:
    msgs = [system("verification"), user("Who is this?"), call("identify_caller", {})]
    msgs.append(result(True, "verification"))
    # Asked after the tool (no fixed line said): the identification, with the callback number.
    reply = respond(msgs, tools(NEW_TOOLS))
    assert "AI assistant calling on behalf of Acme Finance" in (reply.text or "")
    assert "+15550001111" in (reply.text or "") and reply.tool_calls == []
    msgs += [said(reply.text or ""), user("Okay. Yes, this is me.")]
    assert only_call(respond(msgs, tools(NEW_TOOLS))) == ("confirm_identity", {})


def test_confirming_while_asking_who_is_calling_still_confirms() -> None:
    msgs = [system("verification"), said("Hello."), user("Yes, this is Jane. Who are you with?")]
    assert only_call(respond(msgs, tools(NEW_TOOLS)))[0] == "confirm_identity"


def test_cant_talk_schedules_a_callback_in_any_state() -> None:
    for state in ("verification", "negotiation"):
        msgs = [system(state), said("Hello."), user("Sorry, I can't talk now. I'm driving.")]
        name, args = only_call(respond(msgs, tools(NEW_TOOLS)))
        assert name == "schedule_callback"
        assert args["when"].startswith("2026-11-28T10:00")


def test_plan_proposal_is_recorded_as_said() -> None:
    words = "Could I do three payments of 150 dollars, one a month, starting in two months?"
    name, args = only_call(respond([system("negotiation"), user(words)], tools(NEW_TOOLS)))
    assert name == "record_payment_plan"
    assert installments(args) == [
        (15000, "2027-01-27"),
        (15000, "2027-02-27"),
        (15000, "2027-03-27"),
    ]
    # Without the plan tool, the old single-promise route (an amount, asked for a date).
    old = respond([system("negotiation"), user(words)], tools(OLD_TOOLS))
    assert all(n != "record_payment_plan" for n, _ in old.tool_calls)


def test_plan_without_a_first_day_asks_for_it_then_records() -> None:
    msgs = [system("negotiation"), user("I could pay 50 dollars every two weeks.")]
    ask = respond(msgs, tools(NEW_TOOLS))
    assert ask.tool_calls == [] and "first payment" in (ask.text or "")
    msgs += [said(ask.text or ""), user("Starting next Friday.")]
    name, args = only_call(respond(msgs, tools(NEW_TOOLS)))
    assert name == "record_payment_plan"
    got = installments(args)
    assert len(got) == 9 and got[0] == (5000, "2026-12-04") and got[1][1] == "2026-12-18"
    assert sum(a for a, _ in got) == 45000


def test_refused_plan_counter_offer_then_a_second_counter_then_accepted() -> None:
    first = "Could I do three payments of 150 dollars, one a month, starting in two months?"
    counter1 = Offer(
        (
            Installment(15000, date(2026, 12, 11)),
            Installment(15000, date(2027, 1, 11)),
            Installment(15000, date(2027, 2, 11)),
        )
    )
    msgs = [system("negotiation"), user(first), call("record_payment_plan", {}, "c1")]
    msgs.append(result(False, "negotiation", counter1, "c1"))
    reply = respond(msgs, tools(NEW_TOOLS))
    text = reply.text or ""
    assert reply.tool_calls == [] and "can't set it up quite that way" in text
    assert "3 payments of 150 dollars, the first on Friday, December 11" in text
    second = (
        "That's too much each month. I could pay 25 dollars a month for 18 months, starting Friday."
    )
    msgs += [said(text), user(second)]
    name, args = only_call(respond(msgs, tools(NEW_TOOLS)))
    assert name == "record_payment_plan" and len(args["installments"]) == 18
    msgs += [call("record_payment_plan", args, "c2"), result(False, "negotiation", OFFER, "c2")]
    reply = respond(msgs, tools(NEW_TOOLS))
    assert "a first payment of 45 dollars" in (reply.text or "")
    msgs += [said(reply.text or ""), user("Okay, that works for me.")]
    name, args = only_call(respond(msgs, tools(NEW_TOOLS)))
    assert name == "record_payment_plan"
    assert installments(args) == [(i.amount_minor, i.day.isoformat()) for i in OFFER.installments]


def test_refused_promise_with_offer_is_put_to_the_debtor() -> None:
    msgs = [system("negotiation"), user("I can do 5 dollars today.")]
    msgs += [
        call(
            "record_payment_promise", {"amount_minor": 500, "currency": "USD", "date": "2026-11-27"}
        )
    ]
    small = Offer((Installment(4500, date(2026, 11, 27)),))
    msgs.append(result(False, "negotiation", small))
    reply = respond(msgs, tools(OLD_TOOLS))
    assert "one payment of 45 dollars today" in (reply.text or "")
    msgs += [said(reply.text or ""), user("Okay, fine.")]
    # The plan tool absent: the one-payment offer becomes a promise.
    name, args = only_call(respond(msgs, tools(OLD_TOOLS)))
    assert (name, args["amount_minor"], args["date"]) == (
        "record_payment_promise",
        4500,
        "2026-11-27",
    )


def test_accepted_plan_says_goodbye_and_ends() -> None:
    msgs = [system("negotiation"), user("3 payments"), call("record_payment_plan", {})]
    reply = respond([*msgs, result(True, "commitment")], tools(NEW_TOOLS))
    assert reply.tool_calls and reply.tool_calls[0][0] == "end_call"


def test_tool_result_and_plan_parsing() -> None:
    bad = {"installments": [{"amount_minor": 0, "date": "x"}]}
    r = parse_tool_result(json.dumps({"ok": False, "message": "m", "state": "n", "offer": bad}))
    assert (r.ok, r.state, r.offer) == (False, "n", None)  # a malformed offer is none
    p = parse_plan("I could pay 50 a month for 9 months", TODAY, 45000)
    assert p is not None and (p.count, p.period, p.start) == (9, "month", None)
    p = parse_plan("10 payments of 45 dollars, one every two months, starting Friday", TODAY, 45000)
    assert p is not None and (p.count, p.amount_minor, p.period) == (10, 4500, "two_months")
    plan = p.plan(45000, date(2026, 12, 4))
    assert plan is not None and plan.installments[1].day == date(2027, 2, 4)
    assert plan.installments[-1].day == date(2028, 6, 4) and plan.total_minor == 45000
    assert parse_plan("Can I pay in installments?", TODAY, 45000) is None
    assert parse_plan("I could do 150 dollars next Friday.", TODAY, 45000) is None
    facts = parse_facts([system("negotiation")])
    settle = Offer((Installment(30000, TODAY),), settlement=True)
    assert spoken_offer(settle, facts) == (
        "one payment of 300 dollars today, 300 dollars in total, and that would settle the "
        "account in full"
    )


def test_counter_offer_says_the_reason_meant_for_the_debtor_and_rounds_uneven_cents() -> None:
    uneven = Offer(
        (
            Installment(4500, date(2026, 12, 4)),
            Installment(3690, date(2027, 1, 4)),
            *(Installment(3681, date(2027, m, 4)) for m in range(2, 12)),
        )
    )
    msgs = [system("negotiation"), user("25 dollars a month for 18 months, starting Friday")]
    msgs.append(call("record_payment_plan", {}))
    content = {
        "ok": False,
        "message": "That needs fewer payments. The offer in this result works: propose it.",
        "state": "negotiation",
        "offer": {
            "installments": [
                {"amount_minor": i.amount_minor, "date": i.day.isoformat()}
                for i in uneven.installments
            ]
        },
    }
    msgs.append({"role": "tool", "tool_call_id": "call_1", "content": json.dumps(content)})
    text = respond(msgs, tools(NEW_TOOLS)).text or ""
    assert "That needs fewer payments." in text and "propose" not in text
    assert (
        "then 11 payments of about 36 dollars and 81 cents, the last on Thursday, November 4"
        in text
    )
