"""Fixed lines: what the system says itself, word for word, instead of asking the model again.

After an accepted tool call whose next words the policy already fixes (the disclosure and the
balance after confirm_identity, the read-back after record_payment_promise, the closings), the
shell speaks a `FixedLine` built here from prompts/lines.md and the accepted result: no second
model request, so no second wait for a first token. Two pure heuristics decide the rest:

- `needs_model_after(debtor_text)`: did the debtor's turn ask for something the line does not
  answer? Then the shell runs one more model round after the line, in the same turn.
- `commits_to_outcome(sentence)`: may a sentence the model streamed alongside a tool call be
  spoken before the core has accepted that call? Only if it commits to nothing a guard could
  refuse.

Both err on the safe side: asking the model once too often costs latency; dropping a harmless
"Thank you, Jordan." costs nothing; speaking "I've recorded fifty dollars" before a refusal would
mislead the debtor.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal, get_args

from .facts import CallFacts
from .heuristics import classify
from .plans import Plan
from .prompting import LinesDoc, one_line
from .speech import spoken_amount, spoken_date, spoken_number, spoken_phone, spoken_time

LineKind = Literal[
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
]
LINE_KINDS: tuple[LineKind, ...] = get_args(LineKind)


@dataclass(frozen=True)
class FixedLine:
    """A line the shell speaks word for word (TTS), then records with `add_agent_turn`.

    `ask_model_after`: after queuing the line, run one more model round in the same turn (its
    words follow the line). `end_call_after`: hang up once the line has been heard; the core
    has already finished the call.
    """

    text: str
    kind: LineKind
    ask_model_after: bool = False
    end_call_after: bool = False


# --- building lines from prompts/lines.md -------------------------------------------------------


def greeting_text(lines: LinesDoc, facts: CallFacts) -> str:
    return lines.render(
        "greeting",
        agent_name=facts.agent_name,
        company_name=facts.company_name,
        debtor_name=one_line(facts.debtor_name),
    )


def disclosure_text(lines: LinesDoc) -> str:
    return lines.render("disclosure")


def disclosure_line(
    lines: LinesDoc, facts: CallFacts, now: dt.datetime, *, ask_model_after: bool
) -> FixedLine:
    """Disclosure, then balance and due date; then a payment question, unless the model speaks
    next (its words follow, and a question it did not ask would hang in the middle)."""
    today = facts.local_today(now)
    past_due = facts.due_date < today
    balance = lines.render(
        "balance_past_due" if past_due else "balance_not_due",
        balance_spoken=spoken_amount(facts.balance_minor, facts.currency),
        due_date_spoken=spoken_date(facts.due_date, today=today),
    )
    parts = [disclosure_text(lines), balance]
    if not ask_model_after:
        parts.append(
            lines.render("payment_question_past_due" if past_due else "payment_question_not_due")
        )
    return FixedLine(" ".join(parts), "disclosure", ask_model_after=ask_model_after)


def read_back_line(
    lines: LinesDoc, amount_minor: int, currency: str, date: dt.date, today: dt.date
) -> FixedLine:
    text = lines.render(
        "read_back",
        amount_spoken=spoken_amount(amount_minor, currency),
        date_spoken=spoken_date(date, today=today),
    )
    return FixedLine(text, "read_back", end_call_after=True)


def plan_read_back_line(lines: LinesDoc, plan: Plan, currency: str, today: dt.date) -> FixedLine:
    """The read-back of an accepted plan: how many payments, the first (amount and date), the
    last date and the total; a settlement says it settles the account once paid as agreed."""
    n = len(plan.installments)
    kind: LineKind = "settlement_read_back" if plan.settlement else "plan_read_back"
    text = lines.render(
        kind,
        payments_spoken=f"{spoken_number(n)} payment{'' if n == 1 else 's'}",
        first_amount_spoken=spoken_amount(plan.first.amount_minor, currency),
        first_date_spoken=spoken_date(plan.first.date, today=today),
        last_date_spoken=spoken_date(plan.last.date, today=today),
        total_spoken=spoken_amount(plan.total_minor, currency),
    )
    return FixedLine(text, kind, end_call_after=True)


def identify_caller_line(lines: LinesDoc, facts: CallFacts) -> FixedLine:
    """Who is calling and the company's number to check it; nothing about the debt, so it is
    safe before verification. It ends on a question: the person answers, the model follows."""
    text = lines.render(
        "identify_caller",
        agent_name=facts.agent_name,
        company_name=facts.company_name,
        callback_number_spoken=spoken_phone(facts.callback_number),
    )
    return FixedLine(text, "identify_caller")


def promise_limit_line(
    lines: LinesDoc, latest: dt.date, today: dt.date, *, ask_model_after: bool
) -> FixedLine:
    """A promise refused for its date: the latest date the account allows, as a question."""
    text = lines.render("promise_limit", date_spoken=spoken_date(latest, today=today))
    return FixedLine(text, "promise_limit", ask_model_after=ask_model_after)


def callback_line(lines: LinesDoc, when: dt.datetime, today: dt.date) -> FixedLine:
    """`when` in the debtor's zone."""
    text = lines.render(
        "callback_confirm",
        date_spoken=spoken_date(when.date(), today=today, weekday=True),
        time_spoken=spoken_time(when),
    )
    return FixedLine(text, "callback_confirm", end_call_after=True)


def derail_line(lines: LinesDoc, when: dt.datetime) -> FixedLine:
    """The core's own callback after a derailment: says nothing about the debt (safe for anyone)."""
    text = lines.render("derail_closing", time_spoken=spoken_time(when))
    return FixedLine(text, "callback_confirm", end_call_after=True)


_CONSTANT_CLOSINGS: frozenset[LineKind] = frozenset(
    {
        "dispute_closing",
        "wrong_party_closing",
        "opt_out_closing",
        "unverified_closing",
        "validation_notice_closing",
        "goodbye",
    }
)


def closing(lines: LinesDoc, kind: LineKind) -> FixedLine:
    """The closings whose text never changes: dispute, wrong party, opt-out, unverified (says
    nothing about the debt), validation notice, goodbye (the kind is also the line's name in
    prompts/lines.md)."""
    if kind not in _CONSTANT_CLOSINGS:
        raise ValueError(f"{kind!r} is not a constant closing")
    return FixedLine(lines.render(kind), kind, end_call_after=True)


# --- was it heard? ------------------------------------------------------------------------------


def _words(text: str) -> str:
    """Lower-case words only: TTS and transcripts differ in case, punctuation and spacing."""
    t = text.lower().replace("\u2019", "'")
    return " ".join(re.findall(r"[a-z0-9']+", t))


def contains_line(heard: str, line: str) -> bool:
    """True when `heard` contains every word of `line`, in order and contiguous."""
    want = _words(line)
    return bool(want) and f" {want} " in f" {_words(heard)} "


# --- ask the model after the line? --------------------------------------------------------------

# Words that open a question (the first word of a clause, after fillers like "yes," or "okay,").
_QUESTION_OPENERS = frozenset(
    "what when where who whom whose why how which can could would will do does did is are am "
    "should shall may might have has".split()
)
_FILLERS = frozenset(
    "yes yeah yep yup ok okay sure well um uh so and but oh right hi hello hey alright".split()
)
# Questions the disclosure and balance line answers by itself.
_COVERED_QUESTIONS = frozenset(
    {
        "what is this about",
        "what is this regarding",
        "what is this for",
        "what is it about",
        "what is it regarding",
        "what is this",
        "what is it",
        "why are you calling",
        "why are you calling me",
        "what do you want",
        "how much do i owe",
        "how much is it",
        "how much is the balance",
        "what do i owe",
    }
)
# Requests the line does not take up: call me later, hold on, put it in writing, a lawyer...
_REQUESTS = re.compile(
    r"\b(?:call (?:me )?(?:back|later|again)|later|another time|not a good time|busy|at work|"
    r"driving|hold on|hang on|wait|one (?:moment|second|sec|minute)|speak (?:to|with)|"
    r"talk (?:to|with)|lawyer|attorney|in writing|send me|email|mail)\b"
)
# An offer (an amount, a date) answers the line's payment question before it is asked.
_OFFER = re.compile(
    r"\d|\b(?:dollars?|cents?|bucks?|today|tomorrow|tonight|week|month|weekend|monday|tuesday|"
    r"wednesday|thursday|friday|saturday|sunday|january|february|march|april|june|july|august|"
    r"september|october|november|december|paycheck|payday|half|full amount|all of it)\b"
)
_CONTRACTIONS = (
    ("what's", "what is"),
    ("who's", "who is"),
    ("how's", "how is"),
    ("where's", "where is"),
)


def _expand(text: str) -> str:
    for short, long in _CONTRACTIONS:
        text = re.sub(rf"\b{re.escape(short)}\b", long, text)
    return text


def _uncovered_question(sentence: str) -> bool:
    """One sentence: does it ask something (by "?" or an opener) the line does not answer?"""
    asked = sentence.rstrip().endswith("?")
    parts = []
    for part in sentence.split(","):
        words = re.findall(r"[a-z0-9']+", part)
        while words and words[0] in _FILLERS:
            words.pop(0)
        if words:
            parts.append(" ".join(words))
    questions = [p for p in parts if p.split()[0] in _QUESTION_OPENERS]
    if asked and not questions:
        questions = parts[-1:] or ["?"]  # "Right?" is all filler, but still asks
    return any(q not in _COVERED_QUESTIONS for q in questions)


def needs_model_after(debtor_text: str) -> bool:
    """Should the model speak after the disclosure line, in the same turn?

    True when the debtor's latest turn (the one that got them verified) asks or says something
    the disclosure-and-balance line does not answer: a question ("?" or a clause opening with
    who/what/how/can/is...; except "what is this about", "how much do I owe" and the like, which
    the line answers), a request (call me later, hold on, in writing), an offer (an amount or a
    date), or a dispute, stop request, refusal, confusion, hostility or injection as flagged by
    `heuristics.classify`. A plain "Yes, speaking." is False: the line is the whole answer.
    """
    t = _expand(" ".join(debtor_text.lower().replace("\u2019", "'").split()))
    if not t:
        return False
    s = classify(t)
    if s.dispute or s.opt_out or s.refusal or s.hostile or s.confused or s.injection:
        return True
    if _REQUESTS.search(t) or _OFFER.search(t):
        return True
    sentences = re.split(r"(?<=[.!?;])\s+", t)
    return any(_uncovered_question(x) for x in sentences)


# --- may the model's words alongside a tool call be spoken? -------------------------------------

_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty "
    "ninety hundred thousand million half quarter dozen first second third fourth fifth sixth "
    "seventh eighth ninth tenth eleventh twelfth thirteenth fifteenth twentieth thirtieth"
)
_TIME_WORDS = (
    "today tomorrow tonight yesterday week weeks month months weekend morning afternoon evening "
    "noon midnight o'clock am pm a.m p.m monday tuesday wednesday thursday friday saturday sunday "
    "january february march april june july august september october november december"
)
_COMMIT_WORDS = (
    "record recorded recording note noted noting schedule scheduled scheduling confirm confirmed "
    "confirming verify verified book booked arrange arranged register registered log logged "
    "mark marked remove removed update updated process processed cancel cancelled canceled "
    "waive waived settle settled"
)
_DEBT_WORDS = (
    "balance debt debts owe owed owes owing account payment payments pay paying paid amount due "
    "overdue collect collection collecting loan bill credit dollar dollars cent cents"
)
_COMMITS = re.compile(
    r"[\d$%]"
    rf"|\b(?:{'|'.join((_NUMBER_WORDS + ' ' + _TIME_WORDS).split())})\b"
    rf"|\b(?:{'|'.join((_COMMIT_WORDS + ' ' + _DEBT_WORDS).split())})\b"
    r"|\b(?:set (?:it |that |this |you |everything )?up|all set|put you down|take you off|"
    r"taken off|call (?:you )?(?:back|again|later)|won't call|will not call|not call you|"
    r"no more calls|stop calling|reach out|contact you|good-?bye|bye)\b"
)


def commits_to_outcome(sentence: str) -> bool:
    """True when a sentence streamed alongside a tool call commits to something a guard could
    still refuse, so the shell must not speak it before the result is known.

    Matches: any digit, "$" or "%"; number words and ordinals; dates and times (today, tomorrow,
    day and month names, morning, o'clock); outcome verbs (recorded, noted, scheduled, confirmed,
    verified, set up, booked, arranged, updated, cancelled, waived...); call-back or no-more-calls
    promises ("I'll call you back", "won't call"); anything about the debt (balance, owe,
    payment, account, dollars), since a refused confirm_identity means it must not be said; and
    goodbyes, since a refused end_call keeps the call going. "Thank you, Jordan." is False.
    Errs towards True: an acknowledgement left unsaid costs nothing.
    """
    t = " ".join(sentence.lower().replace("\u2019", "'").split())
    return bool(_COMMITS.search(t))
