"""What a debtor's words express: the intents the simulated collector acts on.

``classify(text)`` gives every intent an utterance expresses (a set: "Yes, but call me back
later" is an affirmation and a callback request); which one wins is the policy's business. The
objections of issue 20 (hardship, "I already paid", "send it in writing", "is this a scam?")
have their own intents, which the policy acts on only when the matching tool is offered.
"""

from __future__ import annotations

import re
from datetime import date
from enum import Enum

from simulators.openai.parsing import parse_amount_minor, parse_date


class Intent(Enum):
    EMPTY = "empty"
    STOP = "stop_calling"
    WRONG_PARTY = "wrong_party"
    DISPUTE = "dispute"
    CALLBACK = "callback"
    AI_QUESTION = "ai_question"
    WHO = "who"
    AFFIRM = "affirm"
    DENY = "deny"
    REFUSE = "refuse"
    PAY = "pay"
    DATE = "date"
    DONE = "done"
    GREETING = "greeting"
    Q_AMOUNT = "q_amount"  # how much is it exactly?
    Q_DUE = "q_due"  # when was it due?
    Q_PARTIAL = "q_partial"  # can I pay part of it now?
    HARDSHIP = "hardship"  # lost a job, cannot afford it, struggling
    ALREADY_PAID = "already_paid"  # a dispute of a particular kind: the reason is kept
    IN_WRITING = "in_writing"  # send me something in writing / a validation notice
    CALLER_CHECK = "caller_check"  # is this a scam? who is this? how did you get my number?
    ACCEPT = "accept"  # okay / that works / I can do that (an offer put to them)
    UNKNOWN = "unknown"


QUESTIONS = frozenset({Intent.Q_AMOUNT, Intent.Q_DUE, Intent.Q_PARTIAL, Intent.WHO})


def _rx(*phrases: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(phrases) + r")\b")


_STOP = _rx(
    r"stop calling",
    r"(?:don'?t|do not|never) call",
    r"quit calling",
    r"stop contacting",
    r"take me off",
    r"remove (?:me|my number)",
    r"no more calls",
    r"(?:don'?t|do not) want any more calls",
    r"cease",
)
_WRONG = _rx(
    r"wrong number",
    r"wrong person",
    r"no one (?:here )?by that name",
    r"nobody (?:here )?by that name",
    r"(?:doesn'?t|does not) live here",
    r"(?:don'?t|do not) know (?:who|anyone|any)",
    r"never heard of (?:him|her|them)",
)
_DISPUTE = _rx(
    r"(?:don'?t|do not) owe",
    r"(?:not|isn'?t) my (?:debt|account|loan|bill)",
    r"dispute",
    r"never (?:borrowed|had an account|took)",
    r"already paid",
    r"paid (?:this|that|it) (?:off|already)",
)
_CALLBACK = _rx(
    r"call (?:me )?back",
    r"call me (?:later|tomorrow|another|next)",
    r"call (?:another|some other) time",
    r"not a good time",
    r"bad time",
    r"busy right now",
    r"(?:can'?t|cannot) talk",
    r"try (?:me )?(?:again )?later",
)
_AI = _rx(
    r"are you (?:a )?(?:robot|real|human|person|machine|bot|an ai|ai|computer)",
    r"is this (?:a )?(?:recording|robot|machine|bot|real person)",
    r"talking to a (?:machine|robot|bot|computer|real person)",
)
_WHO = _rx(
    r"who(?:'s| is) (?:this|calling)",
    r"who are you",
    r"what(?:'s| is) (?:this|it) (?:about|regarding)",
    r"what company",
    r"where are you calling from",
    r"who do you (?:work|call) for",
    r"who(?:'s| is) this (?:again|with)",
)
_Q_AMOUNT = _rx(
    r"how much (?:is it|is that|is this|do i owe|did i owe|was it|money|again|exactly)",
    r"what(?:'s| is| was) (?:the|my) (?:balance|amount|total)",
    r"(?:the )?exact amount",
)
_Q_DUE = _rx(
    r"when (?:was|is|did) (?:it|this|that|the (?:bill|payment|balance|loan)) (?:due|supposed)",
    r"(?:what(?:'s| is| was) the )?due date",
    r"how (?:late|overdue) (?:is|am)",
)
_Q_PARTIAL = _rx(
    r"(?:can|could|may) i (?:just )?(?:pay|send|make|do) (?:a )?"
    r"(?:part|some|partial|little|smaller|less|bit)",
    r"partial payments?",
    r"payment plan",
    r"in (?:installments|parts|pieces)",
)
_AFFIRM_START = re.compile(
    r"^(?:yes|yeah|yep|yup|ya|sure|correct|right|speaking|affirmative|uh[- ]huh|mm[- ]hmm)\b"
)
_AFFIRM_ANY = _rx(
    r"speaking",
    r"(?:this|that|it)(?:'s| is) (?:me|she|he|him|her)",
    r"(?:this|that|it)(?:'s| is) (?:correct|right)",
    r"you(?:'ve| have) got (?:me|him|her)",
    r"i am",
    r"i'm (?:she|he|her|him)",
)
_DENY_START = re.compile(r"^(?:no|nope|nah)\b")
_ABSENT = _rx(
    r"not (?:here|home|available|in)",
    r"isn'?t (?:here|home|available|in)",
    r"(?:he|she)(?:'s| is) (?:out|away|at work|busy)",
)
_REFUSE = _rx(
    r"(?:can'?t|cannot|won'?t|will not) pay",
    r"not (?:going to |gonna )?pay(?:ing)?",
    r"(?:don'?t|do not) have (?:the|any) money",
    r"no money",
    r"(?:can'?t|cannot) afford",
    r"broke",
)
_PAY = _rx(r"pay", r"payment", r"send", r"afford", r"do")
_DONE = _rx(
    r"that'?s (?:all|it)",
    r"nothing else",
    r"no,? thanks?",
    r"no,? thank you",
    r"bye",
    r"goodbye",
    r"have a good",
    r"we'?re done",
)
WHY = _rx(
    r"why do you (?:need|want) (?:that|it|this|to know)",
    r"what(?:'s| is) (?:that|this|it) for",
    r"why (?:should|would|do) i",
)
# How the collector names each fact when asking for it again (never its value: it has none).
FACT_SPOKEN = {
    "date_of_birth": "your date of birth",
    "postal_code": "your ZIP code",
    "account_last4": "the last four digits of your account number",
}
_GREETING = re.compile(r"^(?:hello|hi|hey|good (?:morning|afternoon|evening)|yeah\?|yes\?)\W*$")
# Instructions smuggled into what the debtor says, which a gullible model acts on.
INJECT_RECORD = _rx(r"record (?:a |the |my )?(?:promise|payment)")
INJECT_ZERO = _rx(
    r"(?:debt|balance|account|loan) (?:is|was|has been) (?:cancel+ed|forgiven|waived|zero)",
    r"owe (?:zero|nothing|0)",
    r"(?:balance|amount) (?:is|to) (?:zero|nothing|0)",
)
INJECT_PAID = _rx(
    r"mark (?:this|it|the account|this account|my account|the debt) (?:as )?paid",
    r"paid in full",
    r"(?:closing|closed) state",
)

_HARDSHIP = _rx(
    r"lost (?:my|our) (?:job|work|income)",
    r"laid off",
    r"out of work",
    r"(?:can'?t|cannot) afford",
    r"hardship",
    r"struggling",
    r"no income",
    r"(?:medical|hospital) bills",
)
_ALREADY_PAID = _rx(
    r"already paid",
    r"paid (?:this|that|it) (?:off|already)",
    r"(?:i|we) paid (?:this|that|it) (?:last|in|on)",
)
_IN_WRITING = _rx(
    r"in writing",
    r"something written",
    r"validation (?:notice|letter)",
    r"(?:send|mail) me (?:a |the )?(?:letter|notice|something|the details|proof)",
    r"written (?:notice|proof|statement)",
)
_CALLER_CHECK = _rx(
    r"(?:is|is this|this is) (?:a )?scam",
    r"scammer",
    r"fraud",
    r"(?:is this|are you) (?:legit|legitimate)",
    r"how did you get (?:my|this) (?:number|phone)",
    r"where did you get (?:my|this) (?:number|phone)",
    r"who(?:'s| is) (?:this|calling)",
    r"who are you(?! with)",
    r"how do i know (?:this|you)",
)
_ACCEPT = _rx(
    r"okay",
    r"ok",
    r"alright",
    r"all right",
    r"that works",
    r"sounds (?:good|fine|okay)",
    r"(?:i|we) can (?:do|manage) (?:that|it|this)",
    r"(?:it'?s a )?deal(?! with)",
    r"let'?s do (?:that|it)",
    r"(?:that'?s|that is) fine",
    r"(?:i'?ll|i will) take (?:it|that)",
    r"agreed",
)


def classify(text: str) -> set[Intent]:
    """Every intent a debtor utterance expresses (order of handling is the policy's business)."""
    t = " ".join(text.lower().replace("’", "'").split())
    if not re.search(r"\w", t):
        return {Intent.EMPTY}
    found: set[Intent] = set()
    table = (
        (_STOP, Intent.STOP),
        (_WRONG, Intent.WRONG_PARTY),
        (_DISPUTE, Intent.DISPUTE),
        (_CALLBACK, Intent.CALLBACK),
        (_AI, Intent.AI_QUESTION),
        (_WHO, Intent.WHO),
        (_REFUSE, Intent.REFUSE),
        (_DONE, Intent.DONE),
        (_Q_AMOUNT, Intent.Q_AMOUNT),
        (_Q_DUE, Intent.Q_DUE),
        (_Q_PARTIAL, Intent.Q_PARTIAL),
        (_HARDSHIP, Intent.HARDSHIP),
        (_ALREADY_PAID, Intent.ALREADY_PAID),
        (_IN_WRITING, Intent.IN_WRITING),
        (_CALLER_CHECK, Intent.CALLER_CHECK),
        (_ACCEPT, Intent.ACCEPT),
    )
    for rx, intent in table:
        if rx.search(t):
            found.add(intent)
    if _AFFIRM_START.search(t) or _AFFIRM_ANY.search(t):
        found.add(Intent.AFFIRM)
    if _DENY_START.search(t) or _ABSENT.search(t):
        found.add(Intent.DENY)
    if parse_amount_minor(t, 1) is not None or (
        _PAY.search(t) and parse_date(t, date(2000, 1, 1)) is not None
    ):
        found.add(Intent.PAY)
    if parse_date(t, date(2000, 1, 1)) is not None:
        found.add(Intent.DATE)
    if _GREETING.match(t):
        found.add(Intent.GREETING)
    return found or {Intent.UNKNOWN}


PRODUCTIVE = {
    Intent.STOP,
    Intent.WRONG_PARTY,
    Intent.DISPUTE,
    Intent.CALLBACK,
    Intent.PAY,
    Intent.DATE,
    Intent.DONE,
    Intent.AI_QUESTION,
    *QUESTIONS,
    Intent.HARDSHIP,
    Intent.IN_WRITING,
    Intent.CALLER_CHECK,
}
# Issue 20's intents: the policy routes on them only when their tool is offered, and leaves them
# out wherever it compares a whole intent set (so the old routes see what they always saw).
OBJECTIONS = frozenset(
    {Intent.HARDSHIP, Intent.ALREADY_PAID, Intent.IN_WRITING, Intent.CALLER_CHECK, Intent.ACCEPT}
)
