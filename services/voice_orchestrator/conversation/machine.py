"""The state machine as data: every allowed transition is one row of `TRANSITIONS`.

The conversation core looks a move up here before anything else; a (state, event) pair that is
not in the table is refused, whatever the LLM or the debtor said. Guards (the "when" column) are
enforced in `conversation.py`; the column text documents them and is rendered into
docs/conversation.md by `transitions_markdown()` (a test keeps the two in sync).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from .enums import ConversationState, ToolName


class Event(StrEnum):
    # Tool calls: one event per tool, its string ToolName's (the one list of tool names).
    CONFIRM_IDENTITY = ToolName.CONFIRM_IDENTITY.value
    VERIFY_FACT = ToolName.VERIFY_FACT.value
    RECORD_PAYMENT_PROMISE = ToolName.RECORD_PAYMENT_PROMISE.value
    SCHEDULE_CALLBACK = ToolName.SCHEDULE_CALLBACK.value
    REPORT_DISPUTE = ToolName.REPORT_DISPUTE.value
    REPORT_WRONG_PARTY = ToolName.REPORT_WRONG_PARTY.value
    REQUEST_NO_FURTHER_CALLS = ToolName.REQUEST_NO_FURTHER_CALLS.value
    END_CALL = ToolName.END_CALL.value
    RECORD_PAYMENT_PLAN = ToolName.RECORD_PAYMENT_PLAN.value
    REPORT_HARDSHIP = ToolName.REPORT_HARDSHIP.value
    REQUEST_VALIDATION_NOTICE = ToolName.REQUEST_VALIDATION_NOTICE.value
    IDENTIFY_CALLER = ToolName.IDENTIFY_CALLER.value
    # Core and shell events.
    AGENT_SPOKE = "agent_spoke"
    NAME_CONFIRMED = "name_confirmed"  # confirm_identity with a fact on file: ask for it
    FACT_MISMATCH = "fact_mismatch"
    FACT_FAILED = "fact_failed"
    DERAIL = "derail"
    WRAP_UP_LIMIT = "wrap_up_limit"
    FINALIZE = "finalize"

    @classmethod
    def of_tool(cls, tool: ToolName) -> Event:
        return cls(tool.value)


# A tool added to ToolName without its event fails at import, not at its first call.
if missing := {t.value for t in ToolName} - {e.value for e in Event}:
    raise RuntimeError(f"tools without an Event: {sorted(missing)}")

S = ConversationState
E = Event


@dataclass(frozen=True)
class Transition:
    source: ConversationState
    event: Event
    target: ConversationState
    when: str


_PRE_OUTCOME = (S.GREETING, S.VERIFICATION, S.NEGOTIATION)
_ALL = tuple(S)

TRANSITIONS: tuple[Transition, ...] = (
    Transition(S.GREETING, E.AGENT_SPOKE, S.VERIFICATION, "the agent's greeting was heard"),
    *(
        Transition(
            s,
            E.CONFIRM_IDENTITY,
            S.NEGOTIATION,
            "the debtor has said something; no fact on file (name_only)",
        )
        for s in (S.GREETING, S.VERIFICATION)
    ),
    *(
        Transition(
            s, E.NAME_CONFIRMED, S.VERIFICATION, "confirm_identity with a fact on file: asked for"
        )
        for s in (S.GREETING, S.VERIFICATION)
    ),
    Transition(
        S.VERIFICATION,
        E.VERIFY_FACT,
        S.NEGOTIATION,
        "name confirmed; the answer matches the fact on file (name_and_fact)",
    ),
    Transition(
        S.VERIFICATION, E.FACT_MISMATCH, S.VERIFICATION, "first wrong answer: asked once more"
    ),
    Transition(
        S.VERIFICATION, E.FACT_FAILED, S.CLOSING, "second wrong answer -> unverified, no disclosure"
    ),
    Transition(S.NEGOTIATION, E.CONFIRM_IDENTITY, S.NEGOTIATION, "no-op: already confirmed"),
    *(
        Transition(s, E.REPORT_WRONG_PARTY, S.CLOSING, "always; clears any promise")
        for s in (S.GREETING, S.VERIFICATION, S.NEGOTIATION, S.COMMITMENT)
    ),
    Transition(
        S.NEGOTIATION,
        E.RECORD_PAYMENT_PROMISE,
        S.COMMITMENT,
        "verified; account currency; first-payment floor <= amount <= balance; "
        "today <= date <= today + latest_first_payment_days",
    ),
    Transition(
        S.COMMITMENT,
        E.RECORD_PAYMENT_PROMISE,
        S.COMMITMENT,
        "same guards; replaces the recorded promise",
    ),
    Transition(
        S.NEGOTIATION,
        E.RECORD_PAYMENT_PLAN,
        S.COMMITMENT,
        "verified; the plan is inside the negotiation rules (plans.check_plan)",
    ),
    Transition(
        S.COMMITMENT,
        E.RECORD_PAYMENT_PLAN,
        S.COMMITMENT,
        "same guards; replaces the recorded promise or plan",
    ),
    Transition(
        S.NEGOTIATION,
        E.REPORT_HARDSHIP,
        S.NEGOTIATION,
        "verified; note kept; the smallest plan is offered (none fits: a callback)",
    ),
    *(
        Transition(
            s,
            E.REQUEST_VALIDATION_NOTICE,
            S.CLOSING,
            "the name is confirmed -> validation_notice_requested",
        )
        for s in (S.VERIFICATION, S.NEGOTIATION)
    ),
    *(
        Transition(
            s, E.IDENTIFY_CALLER, s, "after the greeting; says who calls, nothing of the debt"
        )
        for s in (S.VERIFICATION, S.NEGOTIATION, S.COMMITMENT, S.CLOSING)
    ),
    *(
        Transition(
            s,
            E.SCHEDULE_CALLBACK,
            S.CLOSING,
            "after now, within the callback horizon, inside local calling hours",
        )
        for s in _PRE_OUTCOME
    ),
    Transition(
        S.CLOSING, E.SCHEDULE_CALLBACK, S.CLOSING, "outcome is callback_scheduled (reschedule)"
    ),
    *(
        Transition(s, E.REPORT_DISPUTE, S.CLOSING, "right party verified; clears any promise")
        for s in (S.NEGOTIATION, S.COMMITMENT, S.CLOSING)
    ),
    *(
        Transition(s, E.REQUEST_NO_FURTHER_CALLS, S.CLOSING, "always; overrides other outcomes")
        for s in _ALL
    ),
    Transition(
        S.NEGOTIATION, E.END_CALL, S.CLOSING, "the debtor explicitly refused to pay -> refused"
    ),
    Transition(S.COMMITMENT, E.END_CALL, S.CLOSING, "a promise is recorded"),
    Transition(S.CLOSING, E.END_CALL, S.CLOSING, "an outcome is recorded"),
    *(
        Transition(s, E.DERAIL, S.CLOSING, "no outcome yet; a derailment limit was reached")
        for s in _PRE_OUTCOME
    ),
    *(
        Transition(s, E.WRAP_UP_LIMIT, S.CLOSING, "outcome set; agent spoke N turns since")
        for s in (S.COMMITMENT, S.CLOSING)
    ),
    *(Transition(s, E.FINALIZE, S.CLOSING, "the shell ended the call") for s in _ALL),
)

NEXT_STATE: MappingProxyType[tuple[ConversationState, Event], ConversationState] = MappingProxyType(
    {(t.source, t.event): t.target for t in TRANSITIONS}
)
assert len(NEXT_STATE) == len(TRANSITIONS), "duplicate (state, event) rows"

# The state graph the property tests check every visit against.
ALLOWED_EDGES: frozenset[tuple[ConversationState, ConversationState]] = frozenset(
    (t.source, t.target) for t in TRANSITIONS
)


@dataclass(frozen=True)
class ConversationLimits:
    """Derailment and wrap-up limits. Data, so a campaign can tune them without code."""

    max_consecutive_invalid_tools: int = 3  # refused tool calls in a row
    max_invalid_tools: int = 5  # refused tool calls in the whole call
    max_consecutive_off_topic: int = 3
    max_off_topic: int = 5
    max_hostile: int = 2
    max_confused: int = 3
    max_injection: int = 2
    max_debtor_turns: int = 30  # debtor turns without any outcome
    wrap_up_agent_turns: int = 3  # agent turns after an outcome before the core ends the call
    callback_horizon_days: int = 14  # how far ahead schedule_callback may be
    calling_hours: tuple[int, int] = (8, 21)  # local [start, end) hours for any call
    derail_callback_hours: tuple[int, int] = (9, 19)  # clamp for "same hour tomorrow"


def transitions_markdown() -> str:
    """The transition table as markdown, one row per allowed move."""
    lines = ["| from | event | to | when |", "|---|---|---|---|"]
    lines += [f"| {t.source} | {t.event} | {t.target} | {t.when} |" for t in TRANSITIONS]
    return "\n".join(lines)
