"""A cheap, deterministic reading of what the debtor said: keyword and phrase sets, no model.

It only feeds counters (derailment) and compliance safety nets (a "stop calling" that the model
failed to record). It never moves the state machine by itself and never changes amounts: those
come from the call facts and from validated tool calls only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def _phrases(*patterns: str) -> re.Pattern[str]:
    # Look-arounds instead of \b so that patterns may end in punctuation ("what?"); a hyphen
    # before a match also blocks it, so "uh-huh" (yes) is not "huh" (confused).
    return re.compile(r"(?<![\w-])(?:" + "|".join(patterns) + r")(?!\w)", re.IGNORECASE)


HOSTILE = _phrases(
    r"fuck\w*",
    r"shit\w*",
    r"bitch\w*",
    r"asshole\w*",
    r"bastard\w*",
    r"damn you",
    r"screw you",
    r"go to hell",
    r"shut up",
    r"piss off",
    r"get lost",
    r"idiot\w*",
    r"moron\w*",
    r"stupid",
    r"scum\w*",
    r"crook\w*",
    r"vulture\w*",
    r"clown\w*",
    r"leech\w*",
    r"parasite\w*",
    r"loser\w*",
    r"are you kidding me",
    r"i(?:'| wi)ll (?:kill|hurt) you",
)

CONFUSED = _phrases(
    r"what\?",
    r"huh",
    r"pardon",
    r"come again",
    r"say that again",
    r"i don'?t understand",
    r"i do not understand",
    r"i'?m confused",
    r"i am confused",
    r"what do you mean",
    r"what are you talking about",
    r"i don'?t follow",
    r"no idea what",
    r"makes no sense",
)

# Attempts to steer the agent through what the debtor says. Counted, never obeyed: the core
# validates every move against the facts and the transition table, whatever the text says.
INJECTION = _phrases(
    r"ignore (?:all |any |your |the |previous |prior |above )*(?:instructions|rules|prompt)",
    r"forget (?:all |your |the |previous )*(?:instructions|rules|prompt)",
    r"(?:system|developer) (?:prompt|message|mode)",
    r"new instructions",
    r"you are now",
    r"pretend (?:to be|you are|you're)",
    r"act as (?:a|an|my)",
    r"jailbreak",
    r"(?:the |my |this )?(?:debt|balance|account|loan) (?:is|was|has been) "
    r"(?:cancel+ed|forgiven|waived|void|erased|zero|paid off|settled)",
    r"(?:balance|amount) (?:is|to) (?:zero|0|nothing)",
    r"(?:say|tell me|confirm) (?:that )?(?:the|my) (?:debt|balance)",
)

OPT_OUT = _phrases(
    r"stop calling",
    r"quit calling",
    r"(?:don'?t|do not|never) (?:ever )?call (?:me |this number |here )?"
    r"(?:again|anymore|any more|ever)",
    r"(?:take|remove|put) (?:me|my number) (?:off|from|on) (?:your|the)? ?(?:list|do not call)",
    r"do not call list",
    r"no (?:more|further) calls",
    r"cease (?:and desist|contact|communication)",
)

DISPUTE = _phrases(
    r"(?:don'?t|do not|never) owe",
    r"not my (?:debt|account|loan|bill)",
    r"(?:isn'?t|is not|that'?s not|that is not) mine",
    r"i dispute",
    r"disput\w*",
    r"identity theft",
    r"never (?:had|opened|signed)",
    r"already paid",
    r"paid (?:it|that|this) (?:off|already)",
    r"(?:it'?s|this is|that'?s) (?:a )?(?:scam|fraud|mistake|wrong)",
)

REFUSAL = _phrases(
    r"(?:won'?t|will not|wo not|not going to|not gonna|never going to|refuse to|never) pay",
    r"i'?m not paying",
    r"i am not paying",
    r"not paying (?:that|this|it|you|anything)",
    r"not a (?:single )?(?:cent|penny|dime)",
)

# Words that tie a turn to the call: identity, money, dates, scheduling, answers. A long turn
# with none of them is off-topic.
_ON_TOPIC_WORDS = frozenset(
    """
    yes yeah yep yup no nope nah ok okay sure right correct fine alright speaking
    pay paid paying payment payments money cash balance bill bills account debt debts owe owed
    owing loan card credit bank check cheque dollar dollars cent cents amount due late overdue
    plan installment installments afford partial full fee fees interest charge charges
    today tomorrow tonight yesterday week weeks weekend month months year day days date time
    morning afternoon evening noon later soon now friday monday tuesday wednesday thursday
    saturday sunday january february march april may june july august september october
    november december first second third fourth fifth tenth fifteenth twentieth thirtieth
    call callback back busy work job driving number wrong person name who calling
    dispute lawyer attorney letter writing mail email stop
    husband wife spouse partner
    help understand repeat mean sorry
    """.split()
)
_WORD = re.compile(r"[a-z0-9']+")
OFF_TOPIC_MIN_WORDS = 6  # shorter turns ("who's this?", "hang on") are never off-topic


@dataclass(frozen=True)
class TurnSignals:
    hostile: bool = False
    confused: bool = False
    off_topic: bool = False
    injection: bool = False
    opt_out: bool = False
    dispute: bool = False
    refusal: bool = False


def classify(text: str) -> TurnSignals:
    """Flags for one debtor utterance. Deterministic, microseconds, documented in docs."""
    text = text.replace("\u2019", "'")  # STT may emit curly apostrophes
    words = _WORD.findall(text.lower())
    on_topic = any(w in _ON_TOPIC_WORDS or w.isdigit() for w in words)
    flags = {
        "hostile": bool(HOSTILE.search(text)),
        "confused": bool(CONFUSED.search(text)) or text.strip() in {"?", "What", "What?"},
        "injection": bool(INJECTION.search(text)),
        "opt_out": bool(OPT_OUT.search(text)),
        "dispute": bool(DISPUTE.search(text)),
        "refusal": bool(REFUSAL.search(text)),
    }
    # Off-topic is the fallback: a turn that says something specific is counted for that only.
    off_topic = len(words) >= OFF_TOPIC_MIN_WORDS and not on_topic and not any(flags.values())
    return TurnSignals(off_topic=off_topic, **flags)
