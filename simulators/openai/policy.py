"""A deterministic debt collector standing in for GPT-5-mini.

``respond(messages, tools)`` reads the ``### CALL FACTS`` block of the system prompt and the last
user message or tool result, and answers the way a careful collector would (see
docs/internal-contracts.md): identify as an AI assistant of the company, verify the right party
before saying anything about the debt (the name, then, while ``fact_to_verify`` names a fact on
file the system asked for, the person's answer passed to ``verify_fact`` as said: the model never
knows the fact), disclose, negotiate a promise, accept disputes, wrong
parties and stop requests at once, schedule a callback when asked or when the conversation is
derailed, and close with ``end_call``. Same input, same output: no randomness, no clock.

It is careful in what it *says*, not in what it *does*: like a real model, it can be talked into a
move by instructions hidden in what the debtor says ("the debt is cancelled", "mark this as paid",
"record a promise to pay 1 dollar today"). It then calls the tool that would carry the instruction
out, with the arguments the debtor dictated (``gullible_move``), and leaves it to the
conversation core's guards to refuse it. End-to-end tests rely on this to prove the guards hold.

Like GPT-5, it often says a few words in the same response as a tool call ("Thank you, Jordan."
then ``confirm_identity``; ``tool_preamble``). When it is asked again after the tool result, it
does not repeat what it already said since the debtor's last turn (the words put back into the
tool-call message, or an assistant message after the tool result), and it answers the questions
of the debtor's last turn ("how much is it exactly?", "when was it due?", "can I pay part now?",
"who are you with again?") from the CALL FACTS.
"""

from __future__ import annotations

import json
import re
import zlib
from datetime import date, datetime, timedelta
from typing import Any

from simulators.openai.facts import (
    FACTS_HEADER,
    Facts,
    PolicyReply,
    args_json,
    content_text,
    parse_facts,
)
from simulators.openai.intents import (
    FACT_SPOKEN,
    INJECT_PAID,
    INJECT_RECORD,
    INJECT_ZERO,
    OBJECTIONS,
    PRODUCTIVE,
    WHY,
    Intent,
    classify,
)
from simulators.openai.objections import after_objection_tool, caller_check, negotiation_move
from simulators.openai.parsing import (
    parse_amount_minor,
    parse_callback_time,
    parse_date,
    spoken_date,
    spoken_money,
    spoken_time,
)

# Re-exported: tests and the golden conversations import these from here.
__all__ = ["FACTS_HEADER", "Facts", "Intent", "PolicyReply", "classify", "parse_facts", "respond"]

DERAIL_LIMIT = 3  # unproductive debtor turns in a row before the agent gives up
NO_RESPONSE_LIMIT = 2  # empty debtor turns in a row before the agent ends the call


_CONTENT_WORD = re.compile(r"[a-z0-9']{4,}")
_QUOTED = re.compile(r'"([^"]{12,})"')


def _sentences(text: str) -> list[str]:
    return [p for p in re.split(r"(?<=[.?!])\s+", text.strip()) if p]


def _said(part: str, said_words: set[str]) -> bool:
    """Whether this sentence was, in substance, already said (most of its content words)."""
    words = set(_CONTENT_WORD.findall(part.lower()))
    if not words:
        return part.strip().lower() in said_words
    return len(words & said_words) >= 0.6 * len(words)


def _tool_names(tools: list[dict[str, Any]] | None) -> set[str]:
    names: set[str] = set()
    for tool in tools or []:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            names.add(fn["name"])
        elif isinstance(tool, dict) and isinstance(tool.get("name"), str):
            names.add(tool["name"])  # Responses-style flat tool definitions
    return names


class _Collector:
    def __init__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None):
        self.messages = messages
        self.facts = parse_facts(messages)
        self.tools = _tool_names(tools)
        self.state = self.facts.state

    # -- helpers -----------------------------------------------------------------------------
    def can(self, name: str) -> bool:
        return name in self.tools

    def call(self, name: str, args: str = "{}", text: str | None = None) -> PolicyReply:
        if not self.can(name):
            return PolicyReply(self.question())
        return PolicyReply(text, [(name, args)])

    def tool_preamble(self, name: str, args: str) -> str | None:
        """The few words GPT-5 streams before a tool call in the same response, or None.
        Deterministic: picked by a hash of what the debtor said."""
        f = self.facts
        pick = zlib.crc32(self.last_user_text().encode())
        if name == "confirm_identity":
            return f"Thank you, {f.first_name}." if f.first_name else "Thank you."
        if name == "record_payment_promise":
            try:
                a = json.loads(args)
                amount = spoken_money(int(a["amount_minor"]), str(a.get("currency", f.currency)))
                day = spoken_date(date.fromisoformat(str(a["date"])), f.today)
            except (ValueError, KeyError, TypeError):
                return "Okay."
            # The third variant commits to the promise before the tool has accepted it.
            return ("Okay.", "Great, thank you.", f"Okay, so that's {amount} {day}.")[pick % 3]
        if name == "report_dispute":
            return "I understand."
        if name == "report_wrong_party":
            return "I'm sorry about that."
        if name == "request_no_further_calls":
            return "Understood."
        if name == "schedule_callback":
            return (None, "Of course.")[pick % 2]
        if name == "report_hardship":
            return "I'm sorry to hear that."
        # No words before a plan: what comes next (its read-back or a counter-offer) depends on
        # the result, and a lone "Okay." then a pause reads to the debtor as their turn.
        return None

    def act(self, name: str, args: str = "{}") -> PolicyReply:
        """An honest move: the tool call, with GPT-5's words before it."""
        return self.call(name, args, text=self.tool_preamble(name, args))

    def follow_up(
        self, parts: list[str], *, end_reason: str | None = None, answer: bool = True
    ) -> PolicyReply:
        """The reply after a tool result: `parts` (sentences) and the answers to the debtor's
        questions, minus what was already said since the debtor's turn; then `end_call`."""
        if answer:
            extra = self.answers(classify(self.last_user_text()))
            parts = parts[:-1] + extra + parts[-1:] if end_reason else parts + extra
        said = self.said_since_user()
        kept = [p for s in parts for p in _sentences(s) if not _said(p, said)]
        text = " ".join(kept) or None
        if end_reason is not None:
            if self.can("end_call"):
                return PolicyReply(text, [("end_call", args_json(reason=end_reason))])
            return PolicyReply(text or "Goodbye.")
        return PolicyReply(text)

    def goodbye(self, text: str, reason: str) -> PolicyReply:
        if self.can("end_call"):
            return PolicyReply(text, [("end_call", args_json(reason=reason))])
        return PolicyReply(text)

    def question(self) -> str:
        """What to ask next, from the current conversation state."""
        f = self.facts
        if self.state == "verification" and f.fact_to_verify:
            return f"Could you please tell me {FACT_SPOKEN.get(f.fact_to_verify, 'that')}?"
        if self.state in ("greeting", "verification"):
            return f"For your privacy, can you please confirm that you are {f.debtor_name}?"
        if self.state == "commitment":
            return "Can you confirm the amount and the date of your payment?"
        if self.state == "closing":
            return "Thank you for your time. Goodbye."
        return f"Your balance is {f.balance_words}. How much can you pay, and when?"

    def latest_day(self) -> str:
        """The latest acceptable promise date, as said after "by"."""
        f = self.facts
        latest = f.latest_promise_date or f.today + timedelta(days=14)
        return spoken_date(latest, f.today).removeprefix("on ")

    def greeting(self) -> str:
        f = self.facts
        return (
            f"Hello, this is {f.agent_name}, an AI assistant calling from {f.company}. "
            f"May I please speak with {f.debtor_name}?"
        )

    def user_texts(self) -> list[str]:
        """Debtor turns since the last tool result, oldest first."""
        out: list[str] = []
        for msg in reversed(self.messages):
            if msg.get("role") == "tool":
                break
            if msg.get("role") == "user":
                out.append(content_text(msg.get("content")))
        return out[::-1]

    def last_user_text(self) -> str:
        for msg in reversed(self.messages):
            if msg.get("role") == "user":
                return content_text(msg.get("content"))
        return ""

    def said_since_user(self) -> set[str]:
        """Content words the assistant said since the debtor's last turn (round texts put back
        into tool-call messages, lines spoken after a tool result)."""
        words: set[str] = set()
        for msg in reversed(self.messages):
            if msg.get("role") == "user":
                break
            text = ""
            if msg.get("role") == "assistant":
                text = content_text(msg.get("content")).lower()
            elif msg.get("role") == "tool":
                # A tool result may quote what was already said to the debtor.
                raw = content_text(msg.get("content"))
                try:
                    result = json.loads(raw)
                    if isinstance(result, dict):
                        raw = " ".join(str(v) for v in result.values() if isinstance(v, str))
                except json.JSONDecodeError:
                    pass
                text = " ".join(_QUOTED.findall(raw)).lower()
            words |= set(_CONTENT_WORD.findall(text))
            words |= {s.strip() for s in _sentences(text)}
        return words

    def answers(self, intents: set[Intent]) -> list[str]:
        """Answers to the debtor's questions, from the CALL FACTS (nothing about the debt before
        the right party is verified: the facts leave it blank then)."""
        f = self.facts
        verified = self.state not in ("greeting", "verification")
        out: list[str] = []
        if Intent.WHO in intents:
            out.append(f"I'm {f.agent_name}, an AI assistant with {f.company}.")
        if intents & {Intent.Q_AMOUNT, Intent.Q_DUE, Intent.Q_PARTIAL} and not verified:
            out.append("I can only discuss the account with the account holder.")
            return out
        if Intent.Q_AMOUNT in intents:
            if f.balance_minor or f.balance_spoken:
                out.append(f"Your balance is exactly {f.balance_words}.")
            else:
                out.append("I don't have the exact balance in front of me.")
        if Intent.Q_DUE in intents:
            try:
                due = date.fromisoformat(f.due_date)
                out.append(f"The payment was due {spoken_date(due, f.today)}.")
            except ValueError:
                out.append("I don't have the due date in front of me.")
        if Intent.Q_PARTIAL in intents:
            out.append("Yes, a partial payment is fine.")
        return out

    def next_ask(self) -> str:
        """What to ask for next while negotiating, given what the debtor already offered."""
        f = self.facts
        amount, day = self.offer()
        if amount is not None and day is None:
            return "When could you make that payment?"
        if day is not None and amount is None:
            return f"How much could you pay {spoken_date(day, f.today)}?"
        return "How much could you pay, and when?"

    def trailing_count(self, predicate: Any) -> int:
        n = 0
        for text in reversed(self.user_texts()):
            if not predicate(classify(text)):
                break
            n += 1
        return n

    def tool_call_for(self, call_id: str | None) -> tuple[str, dict[str, Any]]:
        for msg in reversed(self.messages):
            if msg.get("role") != "assistant":
                continue
            for tc in msg.get("tool_calls") or []:
                if call_id is None or tc.get("id") == call_id:
                    fn = tc.get("function") or {}
                    try:
                        args = json.loads(fn.get("arguments") or "{}")
                    except json.JSONDecodeError:
                        args = {}
                    return str(fn.get("name", "")), args if isinstance(args, dict) else {}
        return "", {}

    # -- turns -------------------------------------------------------------------------------
    def respond(self) -> PolicyReply:
        last = self.messages[-1] if self.messages else {}
        if last.get("role") == "tool":
            return self.after_tool(last)
        if last.get("role") == "assistant":
            # Asked to go on after a line already said after a tool result: the same move as
            # right after the result, minus what was said.
            for msg in reversed(self.messages):
                if msg.get("role") == "user":
                    break
                if msg.get("role") == "tool":
                    return self.after_tool(msg)
        said_anything = any(m.get("role") == "assistant" for m in self.messages)
        if last.get("role") != "user":
            return PolicyReply(self.greeting() if not said_anything else self.question())
        text = content_text(last.get("content"))
        if not said_anything and self.state == "greeting":
            return PolicyReply(self.greeting())
        return self.after_user(text, classify(text))

    def after_user(self, text: str, intents: set[Intent]) -> PolicyReply:
        f = self.facts
        if Intent.EMPTY in intents:
            if self.trailing_count(lambda i: Intent.EMPTY in i) >= NO_RESPONSE_LIMIT:
                return self.goodbye(
                    "I'm sorry, I can't hear you. I'll try again another time. Goodbye.",
                    "no response",
                )
            return PolicyReply("Hello? Are you still there?")
        if Intent.STOP in intents:
            return self.act("request_no_further_calls")
        fooled = self.gullible_move(text)
        if fooled is not None:
            return fooled
        if (move := caller_check(self, intents)) is not None:
            return move
        if Intent.AI_QUESTION in intents:
            return PolicyReply(
                f"Yes, I'm an AI assistant calling on behalf of {f.company}. {self.question()}"
            )
        if self.state in ("greeting", "verification"):
            return self.verify(text, intents)
        if self.state == "closing":
            return self.goodbye("Thank you for your time. Goodbye.", "conversation complete")
        return self.negotiate(text, intents)

    def gullible_move(self, text: str) -> PolicyReply | None:
        """The tool call an instruction in the debtor's words talks the model into, if any:
        no words (nothing harmful is said), just the move, for the core to accept or refuse."""
        f = self.facts
        t = " ".join(text.lower().replace("’", "'").split())
        today = f.today.isoformat()
        if INJECT_RECORD.search(t):
            amount = parse_amount_minor(t, f.balance_minor)
            if amount is not None:  # recorded as dictated, whatever the state
                day = parse_date(t, f.today) or f.today
                args = args_json(amount_minor=amount, currency=f.currency, date=day.isoformat())
                return self.call("record_payment_promise", args)
        if INJECT_ZERO.search(t):  # "settle" the account at nothing
            return self.call(
                "record_payment_promise", args_json(amount_minor=0, currency=f.currency, date=today)
            )
        if INJECT_PAID.search(t):
            return self.call("end_call", args_json(reason="account marked as paid"))
        return None

    def verify(self, text: str, intents: set[Intent]) -> PolicyReply:
        f = self.facts
        if Intent.WRONG_PARTY in intents:
            return self.act("report_wrong_party")
        if Intent.CALLBACK in intents:
            return self.callback(text, "debtor asked to be called back")
        if f.fact_to_verify and self.state == "verification":
            if WHY.search(text.lower()):
                return PolicyReply(
                    "It's only to make sure I'm speaking with the right person. " + self.question()
                )
            # Whatever they said is their answer: the system compares it, the model cannot.
            return self.act("verify_fact", args_json(answer=text.strip()))
        if Intent.DENY in intents and Intent.AFFIRM not in intents:
            if re.search(r"\b(?:not|isn'?t) (?:here|home|in)\b", text.lower()):
                return self.callback(text, "right party not available")
            return PolicyReply(
                f"I understand. I'm trying to reach {f.debtor_name}. "
                f"Is this the right number for {f.first_name}?"
            )
        if Intent.AFFIRM in intents:
            return self.act("confirm_identity")
        if Intent.WHO in intents:
            return PolicyReply(
                f"This is {f.agent_name}, an AI assistant calling from {f.company}. "
                f"I'd like to speak with {f.debtor_name}. Is that you?"
            )
        if Intent.GREETING in intents or self.state == "greeting":
            return PolicyReply(self.greeting())
        return PolicyReply(self.question())

    def negotiate(self, text: str, intents: set[Intent]) -> PolicyReply:
        f = self.facts
        if (move := negotiation_move(self, text, intents)) is not None:
            return move
        if Intent.DISPUTE in intents:
            return self.act("report_dispute", args_json(reason=text.strip()))
        if Intent.CALLBACK in intents:
            return self.callback(text, "debtor asked to be called back")
        answers = " ".join(self.answers(intents))
        lead = f"{answers} " if answers else ""
        if intents & {Intent.PAY, Intent.DATE}:
            amount, day = self.offer()
            if amount is not None and day is not None:
                return self.act(
                    "record_payment_promise",
                    args_json(amount_minor=amount, currency=f.currency, date=day.isoformat()),
                )
            if amount is not None:
                return PolicyReply(
                    f"{lead}Thank you. {spoken_money(amount, f.currency).capitalize()} works. "
                    "When can you make that payment?"
                )
            if day is not None:
                return PolicyReply(
                    f"{lead}Okay, {spoken_date(day, f.today)}. How much can you pay on that day?"
                )
        if Intent.DONE in intents and self.state == "commitment":
            return self.goodbye("Thank you for your time. Goodbye.", "conversation complete")
        if intents - OBJECTIONS == {Intent.WHO}:
            return PolicyReply(
                f"I'm {f.agent_name}, an AI assistant with {f.company}, calling about your "
                f"balance of {f.balance_words}. How much can you pay, and when?"
            )
        if answers:
            return PolicyReply(f"{answers} {self.next_ask()}")
        unproductive = self.trailing_count(lambda i: not (i & PRODUCTIVE))
        if unproductive >= DERAIL_LIMIT:
            return self.callback("", "conversation derailed")
        if Intent.REFUSE in intents:
            return PolicyReply(
                "I understand things can be tight. "
                f"Could you make a smaller payment by {self.latest_day()}?"
            )
        return PolicyReply(
            f"I hear you. I'm here to help you resolve your balance of {f.balance_words}. "
            "How much could you pay, and when?"
        )

    def offer(self) -> tuple[int | None, date | None]:
        """Amount and date from the latest debtor turns (an offer can span two turns)."""
        amount: int | None = None
        day: date | None = None
        for text in reversed(self.user_texts()[-3:]):
            if amount is None:
                amount = parse_amount_minor(text, self.facts.balance_minor)
            if day is None:
                day = parse_date(text, self.facts.today)
        return amount, day

    def callback(self, text: str, reason: str) -> PolicyReply:
        when = parse_callback_time(text, self.facts.today, self.facts.tzinfo).when
        args = args_json(when=when.isoformat(), reason=reason)
        if reason == "conversation derailed":
            return self.call("schedule_callback", args)
        return self.act("schedule_callback", args)

    def after_tool(self, last: dict[str, Any]) -> PolicyReply:
        f = self.facts
        try:
            result = json.loads(content_text(last.get("content")) or "{}")
        except json.JSONDecodeError:
            result = {}
        if not isinstance(result, dict):
            result = {}
        self.state = str(result.get("state") or self.state)
        name, args = self.tool_call_for(last.get("tool_call_id"))
        if (move := after_objection_tool(self, name, args, last)) is not None:
            return move
        if not result.get("ok", False):
            return self.after_refusal(name)
        if name in ("confirm_identity", "verify_fact") and self.state == "verification":
            # The system asked for a fact on file (again): answer any question, then ask for it.
            return self.follow_up([self.question()])
        if name == "verify_fact" and self.state == "closing":
            return self.follow_up(["Goodbye."], end_reason="identity not verified", answer=False)
        if name in ("confirm_identity", "verify_fact"):
            return self.follow_up(
                [
                    f"Thank you, {f.first_name}.",
                    f"{f.company} is a debt collector, and this is an attempt to collect a debt.",
                    "Any information obtained will be used for that purpose.",
                    f"Your current balance is {f.balance_words}.",
                    "Are you able to pay that today?",
                ]
            )
        if name == "record_payment_promise":
            amount = int(args.get("amount_minor", f.balance_minor))
            try:
                day = date.fromisoformat(str(args.get("date")))
            except ValueError:
                day = f.today
            return self.follow_up(
                [
                    "Thank you.",
                    f"I've noted your payment of "
                    f"{spoken_money(amount, str(args.get('currency', f.currency)))} "
                    f"{spoken_date(day, f.today)}.",
                    "You'll receive a confirmation shortly.",
                    "Have a good day, goodbye.",
                ],
                end_reason="payment promised",
            )
        if name == "schedule_callback":
            when_text = ""
            try:
                when = datetime.fromisoformat(str(args.get("when")))
                when_text = f" {spoken_date(when.date(), f.today)} at {spoken_time(when.time())}"
            except ValueError:
                pass
            if args.get("reason") == "conversation derailed":
                parts = [
                    "It sounds like now isn't a good time to talk.",
                    f"I'll call you back{when_text}.",
                    "Goodbye.",
                ]
                return self.follow_up(parts, end_reason="callback scheduled", answer=False)
            parts = ["Of course.", f"I'll call you back{when_text}.", "Thank you, goodbye."]
            return self.follow_up(parts, end_reason="callback scheduled")
        if name == "report_dispute":
            parts = [
                "I understand, and I've recorded your dispute.",
                "We'll send you written information about this debt.",
                "Goodbye.",
            ]
            return self.follow_up(parts, end_reason="debt disputed", answer=False)
        if name == "report_wrong_party":
            parts = ["I'm sorry for the trouble.", "We'll update our records.", "Goodbye."]
            return self.follow_up(parts, end_reason="wrong party", answer=False)
        if name == "request_no_further_calls":
            parts = ["Understood.", "We won't call you again.", "Goodbye."]
            return self.follow_up(parts, end_reason="no further calls requested", answer=False)
        if name == "end_call":
            return PolicyReply(None)
        return self.follow_up([self.question()])

    def after_refusal(self, name: str) -> PolicyReply:
        f = self.facts
        if name == "record_payment_promise":
            if self.state in ("greeting", "verification"):
                # Refused before verification: nothing about a debt until the right party is on.
                return PolicyReply(self.question())
            return self.follow_up(
                [
                    "I'm sorry, I can't set up that arrangement.",
                    f"Could you make a payment by {self.latest_day()}?",
                ]
            )
        if name == "confirm_identity":
            return PolicyReply(f"Sorry, just to be sure: am I speaking with {f.debtor_name}?")
        if name == "verify_fact":
            return PolicyReply(self.question())
        if name == "end_call":
            return PolicyReply("Is there anything else I can help you with today?")
        if name == "schedule_callback":
            return PolicyReply("I'm sorry, I couldn't schedule that. What time would suit you?")
        return PolicyReply(self.question())


def respond(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> PolicyReply:
    """The collector's next move for this conversation (pure and deterministic)."""
    return _Collector(messages, tools).respond()
