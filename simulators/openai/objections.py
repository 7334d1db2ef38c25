"""The collector's answers to issue 20's objections and its payment-plan negotiation.

Each route uses its tool only when the request offers it (so the simulator still plays the
product's older tool sets the old way):
- hardship ("lost my job", "can't afford", "struggling") -> ``report_hardship`` with the debtor's
  words as the note; an ``offer`` in the result is put to the debtor in words; no offer, or the
  debtor cannot pay even that -> ``schedule_callback`` a few days ahead, in calling hours;
- "I already paid" -> ``report_dispute`` with reason ``already paid: <what they said>``;
- "send me something in writing" / "a validation notice" -> ``request_validation_notice``;
- "is this a scam?" / "who is this?" / "how did you get my number?" -> ``identify_caller``;
- a plan the debtor proposes ("three payments of 150 dollars starting Friday") ->
  ``record_payment_plan``; a refusal's counter-offer is put to the debtor, who may counter again;
  accepting an offer -> ``record_payment_plan`` with the offer's installments, unchanged.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Any, Protocol

from simulators.openai.facts import (
    Facts,
    Offer,
    PolicyReply,
    args_json,
    parse_tool_result,
)
from simulators.openai.intents import Intent
from simulators.openai.parsing import parse_amount_minor, parse_date
from simulators.openai.plans import Proposal, parse_plan, spoken_offer

HARDSHIP_CALLBACK_DAYS = 3  # cannot pay even the smallest plan: ask again in a few days
HARDSHIP_CALLBACK_AT = time(10, 0)  # local, well inside calling hours
_FOR_MODEL = re.compile(r"\b(?:offer|tool|record|call|minimum|maximum|limit|rule|debtor)", re.I)
OFFER_TOOLS = frozenset({"report_hardship", "record_payment_plan", "record_payment_promise"})
DECLINE = frozenset({Intent.REFUSE, Intent.DENY, Intent.HARDSHIP})


class Collector(Protocol):
    """What these routes need of the collector (simulators/openai/policy.py)."""

    facts: Facts
    messages: list[dict[str, Any]]
    state: str

    def can(self, name: str) -> bool: ...
    def act(self, name: str, args: str = "{}") -> PolicyReply: ...
    def follow_up(
        self, parts: list[str], *, end_reason: str | None = None, answer: bool = True
    ) -> PolicyReply: ...
    def user_texts(self) -> list[str]: ...


def _tool_calls(messages: list[dict[str, Any]]) -> dict[str, str]:
    """Tool-call id -> tool name, over the whole conversation."""
    out: dict[str, str] = {}
    for msg in messages:
        for tc in msg.get("tool_calls") or [] if msg.get("role") == "assistant" else []:
            out[str(tc.get("id"))] = str((tc.get("function") or {}).get("name", ""))
    return out


def pending_offer(messages: list[dict[str, Any]]) -> tuple[str, Offer] | None:
    """The offer of the latest tool result (the tool's name with it), if it carried one: what
    the collector last put to the debtor and the debtor now answers."""
    names = _tool_calls(messages)
    for msg in reversed(messages):
        if msg.get("role") != "tool":
            continue
        name = names.get(str(msg.get("tool_call_id")), "")
        offer = parse_tool_result(msg.get("content")).offer
        return (name, offer) if offer is not None and name in OFFER_TOOLS else None
    return None


def hardship_reported(messages: list[dict[str, Any]]) -> bool:
    return "report_hardship" in _tool_calls(messages).values()


def hardship_callback(c: Collector) -> PolicyReply:
    """A callback a few days ahead (10 AM local; a Sunday moves to Monday)."""
    day = c.facts.today + timedelta(days=HARDSHIP_CALLBACK_DAYS)
    if day.weekday() == 6:
        day += timedelta(days=1)
    when = datetime.combine(day, HARDSHIP_CALLBACK_AT, tzinfo=c.facts.tzinfo)
    reason = "hardship: cannot pay the smallest plan now"
    return c.act("schedule_callback", args_json(when=when.isoformat(), reason=reason))


def caller_check(c: Collector, intents: set[Intent]) -> PolicyReply | None:
    """'Is this a scam?' / 'who is this?' (not while confirming who they are): identify_caller."""
    if Intent.CALLER_CHECK in intents and Intent.AFFIRM not in intents:
        if c.can("identify_caller"):
            return c.act("identify_caller")
    return None


def _latest_proposal(c: Collector) -> Proposal | None:
    """The plan proposed in the debtor's latest turns, its first day possibly said a turn later."""
    f = c.facts
    texts = c.user_texts()[-3:]
    for i in range(len(texts) - 1, -1, -1):
        proposal = parse_plan(texts[i], f.today, f.balance_minor)
        if proposal is None:
            continue
        if proposal.start is None:
            for later in texts[i + 1 :]:
                if (day := parse_date(later, f.today)) is not None:
                    return Proposal(proposal.count, proposal.amount_minor, proposal.period, day)
        return proposal
    return None


def negotiation_move(c: Collector, text: str, intents: set[Intent]) -> PolicyReply | None:
    """The move for an objection or a plan after verification, or None (the usual routes)."""
    f = c.facts
    if Intent.DISPUTE in intents:
        if Intent.ALREADY_PAID in intents:
            return c.act("report_dispute", args_json(reason=f"already paid: {text.strip()}"))
        return None
    if Intent.IN_WRITING in intents and c.can("request_validation_notice"):
        return c.act("request_validation_notice")
    if (move := caller_check(c, intents)) is not None:
        return move
    if Intent.CALLBACK in intents:
        return None
    if c.can("record_payment_plan") and (proposal := _latest_proposal(c)) is not None:
        if proposal.start is None:
            return PolicyReply("Okay. When would you like to make the first payment?")
        plan = proposal.plan(f.balance_minor, proposal.start)
        if plan is not None:
            return c.act("record_payment_plan", plan.arguments(f.currency))
    pending = pending_offer(c.messages)
    new_amount = parse_amount_minor(text, f.balance_minor) is not None
    if pending is not None and not new_amount:
        source, offer = pending
        if intents & {Intent.ACCEPT, Intent.AFFIRM} and not intents & DECLINE:
            if c.can("record_payment_plan"):
                return c.act("record_payment_plan", offer.arguments(f.currency))
            if len(offer.installments) == 1 and c.can("record_payment_promise"):
                first = offer.installments[0]
                return c.act(
                    "record_payment_promise",
                    args_json(
                        amount_minor=first.amount_minor,
                        currency=f.currency,
                        date=first.day.isoformat(),
                    ),
                )
        if intents & DECLINE and (source == "report_hardship" or hardship_reported(c.messages)):
            return hardship_callback(c)
    if Intent.HARDSHIP in intents and not new_amount and c.can("report_hardship"):
        if hardship_reported(c.messages):
            return hardship_callback(c)
        return c.act("report_hardship", args_json(note=text.strip()))
    return None


def _reason(message: str) -> list[str]:
    """The refusal's reason, when its first sentence is one to say to the debtor (the core words
    it so: "The first payment needs to come sooner."), not an instruction to the model."""
    first = re.split(r"(?<=[.!?])\s+", message.strip(), maxsplit=1)[0] if message else ""
    if not first or '"' in first or _FOR_MODEL.search(first) or len(first) > 120:
        return []
    return [first]


def put_offer(c: Collector, offer: Offer, lead: list[str]) -> PolicyReply:
    """An offer in words, then the question (no tool: the debtor answers it)."""
    return c.follow_up(
        [*lead, f"We could do {spoken_offer(offer, c.facts)}.", "Would that work for you?"]
    )


def after_objection_tool(
    c: Collector, name: str, args: dict[str, Any], last: dict[str, Any]
) -> PolicyReply | None:
    """The reply after one of these tools' results (None: the usual handling)."""
    result = parse_tool_result(last.get("content"))
    if not result.ok:
        if result.offer is not None and name in OFFER_TOOLS:
            lead = ["I'm sorry, I can't set it up quite that way.", *_reason(result.message)]
            return put_offer(c, result.offer, lead)
        if name == "record_payment_plan":
            return c.follow_up(
                [
                    "I'm sorry, I can't set up that arrangement.",
                    "What could you pay first, and when?",
                ]
            )
        return None
    if name == "report_hardship":
        lead = ["Thank you for telling me."]  # "I'm sorry to hear that" came with the call
        if result.offer is not None:
            return put_offer(c, result.offer, [*lead, "Let's find something that fits."])
        return hardship_callback(c)
    if name == "record_payment_plan":
        return c.follow_up(
            ["Thank you.", "Your payment plan is set up.", "Have a good day, goodbye."],
            end_reason="payment plan agreed",
        )
    if name == "request_validation_notice":
        parts = ["Of course.", "We'll send you a written notice of the debt.", "Goodbye."]
        return c.follow_up(parts, end_reason="validation notice requested", answer=False)
    if name == "identify_caller":
        f = c.facts
        check = f"by calling {f.company}" + (
            f" at {f.callback_number}" if f.callback_number else ""
        )
        return c.follow_up(
            [
                f"I'm {f.agent_name}, an AI assistant calling on behalf of {f.company}.",
                f"You can check this call {check}.",
                "Would you like to continue now, or would you prefer to call them yourself?",
            ],
            answer=False,
        )
    return None
