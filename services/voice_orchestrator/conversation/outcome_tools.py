"""The tools that record what a call comes to (promise, plan, hardship, callback, dispute,
wrong party, opt-out, written notice, end) and the one that says who is calling: their guards
and effects, as a base class of `Conversation` (conversation.py keeps turns, prompts,
verification and the dispatch of tool calls). Pure, like the rest of the core."""

from __future__ import annotations

import datetime as dt

from generated.money import Money

from .closings import closing_for
from .derailment import DerailmentWatch
from .enums import CallOutcome, CallStepReason, ConversationState
from .facts import CallFacts
from .guards import MAX_REASON_CHARS, check_callback, check_payment_plan, check_promise
from .lines import (
    FixedLine,
    callback_line,
    identify_caller_line,
    needs_model_after,
    promise_limit_line,
)
from .machine import NEXT_STATE, ConversationLimits, Event
from .plans import Installment, Plan, min_first_payment, single_counter, smallest_plan
from .prompting import PromptSet
from .records import (
    Callback,
    PromiseTerms,
    PromiseTooLate,
    ToolResult,
    TransitionRecord,
    refusal,
)
from .tools import (
    RecordPaymentPlanArgs,
    RecordPaymentPromiseArgs,
    ReportDisputeArgs,
    ReportHardshipArgs,
    ScheduleCallbackArgs,
)
from .verification import SecondFactor

S = ConversationState
R = CallStepReason


class OutcomeTools:
    """State and tool handlers shared with `Conversation` (which sets every attribute)."""

    _facts: CallFacts
    _now: dt.datetime
    _prompts: PromptSet
    _limits: ConversationLimits
    _state: ConversationState
    _verified: bool
    _rpv: SecondFactor
    _watch: DerailmentWatch
    _outcome: CallOutcome | None
    # The agreed payments: a single promise is a plan of one installment (never a settlement).
    _plan: Plan | None
    _callback: Callback | None
    _dispute_reason: str | None
    _hardship_note: str | None
    _hardship_reports: int
    _derailed: bool
    _finished: bool
    _disclosure_queued: bool
    _closing_pending: FixedLine | None
    _last_debtor_text: str
    _wrap_up_turns: int
    _log: list[TransitionRecord]

    @property
    def disclosure_owed(self) -> bool:
        raise NotImplementedError  # Conversation's

    @property
    def promise(self) -> PromiseTerms | None:
        """The first (or only) payment agreed; the whole plan is `plan`."""
        if self._plan is None:
            return None
        first = self._plan.first
        amount = Money(amount_minor=first.amount_minor, currency=self._facts.currency)
        return PromiseTerms(amount, first.date)

    @property
    def plan(self) -> Plan | None:
        return self._plan

    @property
    def hardship_note(self) -> str | None:
        return self._hardship_note

    # --- shared moves -----------------------------------------------------------------------------

    def _move(self, event: Event) -> None:
        target = NEXT_STATE[(self._state, event)]  # KeyError = a bug in the core, not the LLM
        self._log.append(TransitionRecord(self._state, event, target))
        self._state = target

    def _refuse(self, message: str, reason: R, offer: Plan | None = None) -> ToolResult:
        return ToolResult(False, message, False, self._state, reason=reason, offer=offer)

    def _ok(self, message: str, *, end_call: bool = False) -> ToolResult:
        return ToolResult(True, message, end_call, self._state)

    def _closing(self) -> FixedLine:
        """The closing for the outcome; one place for each text (prompts/lines.md)."""
        return closing_for(
            self._prompts.lines,
            self._facts,
            self._now,
            self._outcome,
            self._plan,
            self._callback,
            derailed=self._derailed,
        )

    def _spoken(
        self,
        message: str,
        line: FixedLine,
        ok: bool = True,
        reason: R | None = None,
        offer: Plan | None = None,
    ) -> ToolResult:
        """Accepted (or refused with a policy answer), and the shell speaks `line`: the model is
        told the words are already said, so it carries on from them, not repeat them."""
        said = f'The system has already said this to the debtor, word for word: "{line.text}"'
        if line.end_call_after:
            # The shell hangs up once the line is heard (add_agent_turn then finishes the call).
            self._closing_pending = line
            return ToolResult(
                True,
                f"{message} {said} The call ends once it is heard; say nothing more. If the "
                "debtor cuts in, answer briefly and call end_call when done.",
                True,
                self._state,
                line,
            )
        return ToolResult(
            ok,
            f"{message} {said} Do not repeat it; if you reply, answer only what the debtor "
            "asked, briefly.",
            False,
            self._state,
            line,
            reason,
            offer,
        )

    def _agreed(self, plan: Plan, event: Event, message: str) -> ToolResult:
        self._plan = plan
        self._outcome = CallOutcome.PROMISE_TO_PAY
        self._wrap_up_turns = 0
        self._move(event)
        return self._spoken(message, self._closing())

    def _check_agreement(self) -> None:
        if not self._verified:  # the table already implies it; belt and braces
            raise refusal("promise_unverified")
        if self.disclosure_owed and not self._disclosure_queued:
            # Compliance before speed: nothing is agreed before the disclosure was heard.
            raise refusal("disclosure_not_heard")

    # --- the tools --------------------------------------------------------------------------------

    def _record_promise(self, args: RecordPaymentPromiseArgs) -> ToolResult:
        self._check_agreement()
        today = self._facts.local_today(self._now)
        try:
            check_promise(args, self._facts, self._now)
        except PromiseTooLate as exc:
            ask = needs_model_after(self._last_debtor_text)
            line = promise_limit_line(self._prompts.lines, exc.latest, today, ask_model_after=ask)
            return self._spoken(str(exc), line, ok=False, reason=exc.code, offer=exc.offer)
        plan = Plan((Installment(args.amount_minor, args.date),))
        result = self._agreed(plan, Event.RECORD_PAYMENT_PROMISE, "Promise recorded.")
        assert result.line is not None and result.line.kind == "read_back"
        return result

    def _record_plan(self, args: RecordPaymentPlanArgs) -> ToolResult:
        self._check_agreement()
        plan = check_payment_plan(args, self._facts, self._now)
        return self._agreed(plan, Event.RECORD_PAYMENT_PLAN, "Payment plan recorded.")

    def _report_hardship(self, args: ReportHardshipArgs) -> ToolResult:
        if not self._verified:
            raise refusal("hardship_unverified")
        note = args.note.strip() or "unspecified"
        if self._hardship_note and note != self._hardship_note:
            note = f"{self._hardship_note}; {note}"
        self._hardship_note = note[:MAX_REASON_CHARS]
        self._hardship_reports += 1
        self._move(Event.REPORT_HARDSHIP)
        f = self._facts
        today = f.local_today(self._now)
        offer = smallest_plan(f.rules, f.balance_minor, today)
        if offer is not None and len(offer.installments) == 1:
            # No instalments allowed: a first part of the balance, if the rules take less.
            floor = min_first_payment(f.rules, f.balance_minor)
            offer = (
                None
                if floor >= f.balance_minor
                else single_counter(f.rules, f.balance_minor, today, floor, offer.first.date)
            )
        callback = (
            "do not press for payment; offer a callback at a time that suits them "
            "(schedule_callback) so they can come back to it when things settle."
        )
        if offer is None or self._hardship_reports > 1:
            return self._ok(f"Hardship noted. No plan fits right now, so {callback}")
        tool = "record_payment_plan" if len(offer.installments) > 1 else "record_payment_promise"
        return ToolResult(
            True,
            "Hardship noted. Acknowledge it with empathy, then gently offer the plan in this "
            "result, the lightest one available, in your own words as an option (amounts and "
            f"dates as words), not as a rule. If they agree, record exactly it with {tool}. If "
            f"they cannot manage even that: {callback}",
            False,
            self._state,
            offer=offer,
        )

    def _request_validation_notice(self) -> ToolResult:
        if not self._rpv.name_confirmed and not self._verified:
            raise refusal("notice_unverified")
        self._outcome = CallOutcome.VALIDATION_NOTICE_REQUESTED
        self._wrap_up_turns = 0
        self._move(Event.REQUEST_VALIDATION_NOTICE)
        return self._spoken("Written notice requested.", self._closing())

    def _identify_caller(self) -> ToolResult:
        line = identify_caller_line(self._prompts.lines, self._facts)
        return self._spoken("The system said who is calling and the company's number.", line)

    def _schedule_callback(self, args: ScheduleCallbackArgs) -> ToolResult:
        if self._state is S.CLOSING and self._outcome is not CallOutcome.CALLBACK_SCHEDULED:
            raise refusal("closing_other_outcome")
        local, reason = check_callback(args, self._facts, self._now, self._limits)
        self._callback = Callback(scheduled_for=local, reason=reason)
        self._outcome = CallOutcome.CALLBACK_SCHEDULED
        self._wrap_up_turns = 0
        self._move(Event.SCHEDULE_CALLBACK)
        today = self._facts.local_today(self._now)
        return self._spoken("Callback scheduled.", callback_line(self._prompts.lines, local, today))

    def _report_dispute(self, args: ReportDisputeArgs) -> ToolResult:
        if not self._verified:
            raise refusal("dispute_unverified")
        self._dispute_reason = args.reason.strip()[:MAX_REASON_CHARS] or "unspecified"
        if self._outcome is not CallOutcome.OPTED_OUT:  # an opt-out stays the final word
            self._outcome = CallOutcome.DISPUTED
            self._plan = None
            self._callback = None
        self._wrap_up_turns = 0
        self._move(Event.REPORT_DISPUTE)
        return self._spoken("Dispute recorded.", self._closing())

    def _report_wrong_party(self) -> ToolResult:
        self._verified = False  # hide the debt again: whoever this is, it is not the debtor
        self._rpv.lost()
        self._outcome = CallOutcome.WRONG_PARTY
        self._plan = None
        self._callback = None
        self._wrap_up_turns = 0
        self._move(Event.REPORT_WRONG_PARTY)
        return self._spoken("Wrong party recorded.", self._closing())

    def _no_further_calls(self) -> ToolResult:
        self._outcome = CallOutcome.OPTED_OUT
        self._plan = None
        self._callback = None
        self._wrap_up_turns = 0
        self._move(Event.REQUEST_NO_FURTHER_CALLS)
        return self._spoken("Recorded: no further calls.", self._closing())

    def _end_call(self) -> ToolResult:
        if self._state is S.NEGOTIATION:
            if not self._watch.refusal_heard:
                raise refusal("no_outcome_yet")
            self._outcome = CallOutcome.REFUSED
        self._move(Event.END_CALL)
        self._finished = True  # the model's own decision: over now, whatever is heard
        self._closing_pending = None
        line = self._closing()
        return ToolResult(
            True,
            f'Call ending. The system says the goodbye for you: "{line.text}"',
            True,
            self._state,
            line,
        )
