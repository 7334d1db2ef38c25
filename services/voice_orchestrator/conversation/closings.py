"""Which fixed line ends a call with a given outcome, and which lines are known at call start
(audio made ahead). Pure; the texts are in prompts/lines.md."""

from __future__ import annotations

import datetime as dt

from .enums import CallOutcome, EndReason
from .facts import CallFacts
from .lines import (
    FixedLine,
    callback_line,
    closing,
    derail_line,
    disclosure_line,
    greeting_text,
    identify_caller_line,
    plan_read_back_line,
    read_back_line,
)
from .plans import Plan
from .prompting import LinesDoc
from .records import Callback
from .verification import FactKind, premade_fact_lines


def closing_for(
    lines: LinesDoc,
    facts: CallFacts,
    now: dt.datetime,
    outcome: CallOutcome | None,
    plan: Plan | None,
    callback: Callback | None,
    *,
    derailed: bool,
) -> FixedLine:
    """The closing for the outcome; one place for each text."""
    today = facts.local_today(now)
    if derailed and callback is not None:
        return derail_line(lines, callback.scheduled_for)
    match outcome:
        case CallOutcome.PROMISE_TO_PAY if plan is not None:
            if len(plan.installments) > 1 or plan.settlement:
                return plan_read_back_line(lines, plan, facts.currency, today)
            return read_back_line(
                lines, plan.first.amount_minor, facts.currency, plan.first.date, today
            )
        case CallOutcome.CALLBACK_SCHEDULED if callback is not None:
            return callback_line(lines, callback.scheduled_for, today)
        case CallOutcome.DISPUTED:
            return closing(lines, "dispute_closing")
        case CallOutcome.OPTED_OUT:
            return closing(lines, "opt_out_closing")
        case CallOutcome.WRONG_PARTY:
            return closing(lines, "wrong_party_closing")
        case CallOutcome.UNVERIFIED:
            return closing(lines, "unverified_closing")
        case CallOutcome.VALIDATION_NOTICE_REQUESTED:
            return closing(lines, "validation_notice_closing")
        case _:
            return closing(lines, "goodbye")


def premade_texts(
    lines: LinesDoc, facts: CallFacts, now: dt.datetime, fact_kind: FactKind | None
) -> list[str]:
    """Every fixed line whose text is known at call start, for audio made ahead of time.

    The read-back and callback lines depend on what is agreed, and the derailment line on when
    it happens, so they are not here. `fact_kind`: the fact on file this call asks for, if any.
    """
    texts = [
        greeting_text(lines, facts),
        *(disclosure_line(lines, facts, now, ask_model_after=ask).text for ask in (False, True)),
        *(
            closing(lines, kind).text
            for kind in (
                "dispute_closing",
                "wrong_party_closing",
                "opt_out_closing",
                "validation_notice_closing",
                "goodbye",
            )
        ),
        identify_caller_line(lines, facts).text,
        *premade_fact_lines(lines, fact_kind),
        lines.render("apology"),
        lines.render("reprompt"),
        lines.render("silent_goodbye"),
    ]
    return list(dict.fromkeys(texts))  # unique, in order


def outcome_for_end(reason: EndReason, opt_out_heard: bool, unverified: bool) -> CallOutcome:
    """The outcome of a call that ended without one of its own (no tool settled it)."""
    match reason:
        case EndReason.NO_ANSWER | EndReason.BUSY:
            return CallOutcome.NO_ANSWER
        case EndReason.VOICEMAIL:
            return CallOutcome.VOICEMAIL
        case EndReason.ERROR:
            return CallOutcome.FAILED  # only our own faults
        case EndReason.HANGUP | EndReason.SILENCE:
            if opt_out_heard:
                # Safety net: "stop calling me" + hang-up is an opt-out even if the model never
                # called the tool.
                return CallOutcome.OPTED_OUT
            # A person who confirmed the name but not the fact is unverified. Otherwise a
            # hang-up is a hang-up, verified or not (the call's `verification` tells which):
            # not a refusal, which the debtor must say, and not a failure of ours.
            if unverified:
                return CallOutcome.UNVERIFIED
            if reason is EndReason.SILENCE:
                return CallOutcome.NO_RESPONSE
            return CallOutcome.HUNG_UP
    raise AssertionError(reason)  # pragma: no cover
