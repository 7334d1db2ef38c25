"""`Conversation`: the pure core of one collections call (API in docs/internal-contracts.md).

The LLM proposes moves (tool calls) and words; this class decides. Every tool call is looked up
in the transition table, parsed against its Pydantic model and checked against the call facts
and the policy before it changes anything; a refused move leaves the state as it was and tells
the model why. Nothing the debtor says can change an amount, a date window or the state except
through a validated tool call.

After an accepted move whose next words the policy fixes (disclosure and balance, read-back,
closings), the result carries a `FixedLine` the shell speaks word for word instead of asking the
model again (see lines.py and docs/conversation.md, "Fixed lines").
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from .closings import outcome_for_end, premade_texts
from .derailment import DerailmentWatch, derail_callback_time
from .enums import CallOutcome, CallStepReason, ConversationState, EndReason, Speaker, ToolName
from .facts import CallFacts
from .heuristics import classify
from .lines import (
    FixedLine,
    contains_line,
    disclosure_line,
    disclosure_text,
    greeting_text,
    needs_model_after,
)
from .machine import NEXT_STATE, ConversationLimits, Event
from .outcome_tools import OutcomeTools
from .plans import Plan
from .prompting import PromptSet, default_prompt_set, render_system_prompt
from .records import (
    STATE_HINTS,
    Callback,
    Refused,
    ToolResult,
    TransitionRecord,
    Turn,
    refusal,
)
from .tools import (
    TOOLS_BY_NAME,
    ArgumentError,
    RecordPaymentPlanArgs,
    RecordPaymentPromiseArgs,
    ReportDisputeArgs,
    ReportHardshipArgs,
    ScheduleCallbackArgs,
    VerifyFactArgs,
    parse_arguments,
    tool_schemas,
)
from .verification import (
    SecondFactor,
    Step,
    VerificationFactKind,
    VerificationLevel,
    fact_question_line,
    without_fact_words,
)

S = ConversationState
R = CallStepReason


class Conversation(OutcomeTools):
    def __init__(
        self,
        facts: CallFacts,
        now: dt.datetime,
        *,
        prompts: PromptSet | None = None,
        limits: ConversationLimits | None = None,
    ) -> None:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        self._facts = facts
        self._now = now
        self._prompts = prompts or default_prompt_set()
        self._limits = limits or ConversationLimits()
        self._tools = tool_schemas()

        self._state = S.GREETING
        self._verified = False
        self._rpv = SecondFactor(facts)  # right-party verification: name, then a fact on file
        self._outcome: CallOutcome | None = None
        self._plan: Plan | None = None  # what was agreed (a single promise: one installment)
        self._callback: Callback | None = None
        self._dispute_reason: str | None = None
        self._hardship_note: str | None = None
        self._hardship_reports = 0
        self._end_call_reason: str | None = None
        self._finished = False
        self._finalized = False

        self._last_debtor_text = ""
        # The disclosure is owed from confirm_identity until one agent turn contained it in full.
        self._disclosure_heard = False
        self._disclosure_queued = False  # being said in the turn now in progress
        # A closing line handed out with an accepted outcome: the call is finished once an agent
        # turn contains it in full. Cut off by the debtor, the conversation can still go on.
        self._closing_pending: FixedLine | None = None

        self._history: list[dict[str, Any]] = []
        self._transcript: list[Turn] = []
        self._log: list[TransitionRecord] = []

        # Derailment and safety-net bookkeeping.
        self._derailed = False
        self._derail_cause: str | None = None
        self._watch = DerailmentWatch(self._limits)
        self._wrap_up_turns = 0

    # --- read-only views ----------------------------------------------------------------------

    @property
    def facts(self) -> CallFacts:
        return self._facts

    @property
    def state(self) -> ConversationState:
        return self._state

    @property
    def verified(self) -> bool:
        return self._verified

    @property
    def verification(self) -> tuple[VerificationLevel, VerificationFactKind | None]:
        """How far the person was verified, and the kind of fact they gave (never its value)."""
        return self._rpv.level, self._rpv.fact

    @property
    def outcome(self) -> CallOutcome | None:
        return self._outcome

    @property
    def callback(self) -> Callback | None:
        return self._callback

    @property
    def dispute_reason(self) -> str | None:
        return self._dispute_reason

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def derailed(self) -> bool:
        return self._derailed

    @property
    def derail_cause(self) -> str | None:
        return self._derail_cause

    @property
    def disclosure_owed(self) -> bool:
        """Verified, but no agent turn since has contained the disclosure word for word."""
        return self._verified and not self._disclosure_heard

    @property
    def prompt_variant(self) -> str:
        """The stage prompt's variant this call renders (the default if the facts name one
        these prompts do not have)."""
        return self._prompts.resolve(self._facts.stage, self._facts.prompt_variant)

    @property
    def prompt_version(self) -> str:
        return self._prompts.version(self._facts.stage, self._facts.prompt_variant)

    @property
    def transitions(self) -> tuple[TransitionRecord, ...]:
        return tuple(self._log)

    @property
    def transcript(self) -> tuple[Turn, ...]:
        return tuple(self._transcript)

    # --- what the LLM gets ----------------------------------------------------------------------

    def system_prompt(self) -> str:
        return render_system_prompt(
            self._prompts,
            self._facts,
            self._now,
            self._state,
            verified=self._verified,
            fact_to_verify=self._rpv.pending or "",
        )

    def tools(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._tools)

    def llm_messages(self) -> list[dict[str, Any]]:
        system = {"role": "system", "content": self.system_prompt()}
        return [system, *copy.deepcopy(self._history)]

    # --- lines the shell speaks without asking the model ------------------------------------------

    def greeting_line(self) -> str:
        """A deterministic opener the shell may play at pickup instead of waiting for the LLM."""
        return greeting_text(self._prompts.lines, self._facts)

    def closing_line(self) -> str:
        """A polite goodbye matching the outcome; says nothing about the debt to a third party."""
        return self._closing().text

    def owed_line(self) -> FixedLine | None:
        """The disclosure (and balance) again while it is owed; the shell calls this at the start
        of each reply turn and speaks it before anything else. The model is asked after it: the
        debtor's turn (often the barge-in that cut the disclosure) still needs an answer."""
        if not self.disclosure_owed or self._finished:
            return None
        return disclosure_line(self._prompts.lines, self._facts, self._now, ask_model_after=True)

    def apology_line(self) -> str:
        """Said when the call must end on a failure on our side."""
        return self._prompts.lines.render("apology")

    def reprompt_line(self) -> str:
        """Said when the debtor has been silent for a while."""
        return self._prompts.lines.render("reprompt")

    def silent_goodbye_line(self) -> str:
        """Said before hanging up on a debtor who stayed silent."""
        return self._prompts.lines.render("silent_goodbye")

    def premade_lines(self) -> list[str]:
        """Every fixed line whose text is known at call start (closings.premade_texts)."""
        return premade_texts(self._prompts.lines, self._facts, self._now, self._rpv.kind)

    # --- turns ------------------------------------------------------------------------------------

    def add_debtor_turn(self, text: str) -> None:
        self._transcript.append(Turn(Speaker.DEBTOR, text))
        self._history.append({"role": "user", "content": text})
        self._last_debtor_text = text
        if self._finished:
            return
        signals = classify(text)
        self._watch.debtor_turn(signals, verified=self._verified)
        if not signals.dispute:  # give the model this turn to record a dispute
            self._evaluate_derailment()

    def line_queued(self, line: FixedLine) -> None:
        """The shell is saying `line` in the current agent turn, ahead of anything the model
        says in it. A queued disclosure lets the model record a promise in the same turn (the
        debtor hears the disclosure first); if the turn is cut before it was heard in full,
        `add_agent_turn` leaves it owed and `owed_line()` has it said again next turn."""
        if line.kind == "disclosure":
            self._disclosure_queued = True

    def add_agent_turn(self, text: str, interrupted: bool = False) -> None:
        """Record what the debtor actually heard (cut at the interruption point)."""
        self._transcript.append(Turn(Speaker.AGENT, text, interrupted))
        self._disclosure_queued = False
        if self._verified and contains_line(text, disclosure_text(self._prompts.lines)):
            self._disclosure_heard = True  # heard in full; a cut-off turn leaves it owed
        heard = text.strip()
        if heard:
            self._history.append({"role": "assistant", "content": text})
        if self._finished or not heard:
            return
        if self._state is S.GREETING:
            self._move(Event.AGENT_SPOKE)
        elif self._closing_pending is not None and contains_line(text, self._closing_pending.text):
            # The goodbye was heard: the call is over, as after an accepted end_call.
            self._closing_pending = None
            self._move(Event.END_CALL)
            self._finished = True
        elif self._derailed:
            self._finished = True  # the closing line was said
        elif self._outcome is not None:
            # Read-back and goodbye get a few turns; then the core ends the call itself.
            self._wrap_up_turns += 1
            if self._wrap_up_turns >= self._limits.wrap_up_agent_turns:
                self._move(Event.WRAP_UP_LIMIT)
                self._finished = True

    def add_tool_call(self, call_id: str, name: str, arguments: str) -> ToolResult:
        self._history.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }
                ],
            }
        )
        result = self._handle_tool(name, arguments)
        self._watch.tool_result(result.ok)
        if not result.ok:
            was_derailed = self._derailed
            self._evaluate_derailment()
            if self._derailed and not was_derailed:
                # The model is not asked again: the shell says the core's own closing.
                line = self._closing()
                result = ToolResult(
                    False,
                    f"{result.message} Too many refused moves: a callback was scheduled and the "
                    f'call is closing. The system has said to the debtor: "{line.text}"',
                    True,
                    self._state,
                    line,
                    result.reason,
                )
        self._history.append({"role": "tool", "tool_call_id": call_id, "content": result.content()})
        return result

    # --- derailment and forced ends ---------------------------------------------------------------

    def check_derailment(self) -> bool:
        """True once the core scheduled a callback and moved to closing on its own.

        The shell then speaks `closing_line()` (recording it with `add_agent_turn`) and hangs up.
        """
        self._evaluate_derailment()
        return self._derailed

    def finalize(self, reason: EndReason | str) -> CallOutcome:
        """End forced by the shell. Keeps an outcome already recorded; otherwise maps `reason`."""
        reason = EndReason(reason)
        if not self._finalized:
            if self._outcome is None:
                self._outcome = outcome_for_end(
                    reason, self._watch.opt_out_heard, self._rpv.pending is not None
                )
            self._move(Event.FINALIZE)
            self._finished = True
            self._finalized = True
        assert self._outcome is not None
        return self._outcome

    def _evaluate_derailment(self) -> None:
        # Only a call with no outcome yet derails; an opt-out heard must never become a callback.
        if (
            self._derailed
            or self._finished
            or self._outcome is not None
            or self._watch.opt_out_heard
        ):
            return
        cause = self._watch.cause()
        if cause is None:
            return
        self._derailed = True
        self._derail_cause = cause
        self._callback = Callback(
            scheduled_for=derail_callback_time(
                self._now, self._facts.tz, self._limits.derail_callback_hours
            ),
            reason=f"derailed: {cause}",
        )
        self._outcome = CallOutcome.CALLBACK_SCHEDULED
        self._move(Event.DERAIL)

    # --- tools ------------------------------------------------------------------------------------

    def _handle_tool(self, name: str, arguments: str) -> ToolResult:
        if self._finished:
            return self._refuse("The call has ended; no further actions.", R.CALL_FINISHED)
        try:
            tool = ToolName(name)
        except ValueError:
            known = ", ".join(t.value for t in ToolName)
            return self._refuse(f"Unknown tool {name!r}. Available tools: {known}.", R.UNKNOWN_TOOL)
        event = Event.of_tool(tool)
        if (self._state, event) not in NEXT_STATE:
            return self._refuse(
                f"{tool.value} is not allowed in state {self._state.value}. "
                + STATE_HINTS[self._state],
                R.NOT_ALLOWED_IN_STATE,
            )
        try:
            args = parse_arguments(TOOLS_BY_NAME[tool], arguments)
        except ArgumentError as exc:
            return self._refuse(f"Invalid arguments for {tool.value}: {exc}", R.INVALID_ARGUMENTS)
        try:
            match tool:
                case ToolName.CONFIRM_IDENTITY:
                    return self._confirm_identity()
                case ToolName.VERIFY_FACT:
                    assert isinstance(args, VerifyFactArgs)
                    return self._verify_fact(args.answer)
                case ToolName.RECORD_PAYMENT_PROMISE:
                    assert isinstance(args, RecordPaymentPromiseArgs)
                    return self._record_promise(args)
                case ToolName.SCHEDULE_CALLBACK:
                    assert isinstance(args, ScheduleCallbackArgs)
                    return self._schedule_callback(args)
                case ToolName.REPORT_DISPUTE:
                    assert isinstance(args, ReportDisputeArgs)
                    return self._report_dispute(args)
                case ToolName.REPORT_WRONG_PARTY:
                    return self._report_wrong_party()
                case ToolName.REQUEST_NO_FURTHER_CALLS:
                    return self._no_further_calls()
                case ToolName.END_CALL:
                    return self._end_call()
                case ToolName.RECORD_PAYMENT_PLAN:
                    assert isinstance(args, RecordPaymentPlanArgs)
                    return self._record_plan(args)
                case ToolName.REPORT_HARDSHIP:
                    assert isinstance(args, ReportHardshipArgs)
                    return self._report_hardship(args)
                case ToolName.REQUEST_VALIDATION_NOTICE:
                    return self._request_validation_notice()
                case ToolName.IDENTIFY_CALLER:
                    return self._identify_caller()
        except Refused as exc:
            return self._refuse(str(exc), exc.code, exc.offer)
        raise AssertionError(tool)  # pragma: no cover

    def _confirm_identity(self) -> ToolResult:
        if self._state is S.NEGOTIATION:
            return self._ok("Identity was already confirmed.")
        if self._watch.debtor_turns == 0:
            raise refusal("nothing_said")
        rpv = self._rpv
        if rpv.kind is None:  # no fact on file: the name is all there is to confirm
            rpv.confirm_name()
            return self._disclose("Identity confirmed.", self._last_debtor_text)
        if rpv.name_confirmed:
            return self._ok(f"The name is already confirmed. {rpv.asked_message()}")
        rpv.confirm_name()  # nothing about the debt until the fact on file is given
        self._move(Event.NAME_CONFIRMED)
        return self._spoken(rpv.asked_message(), fact_question_line(self._prompts.lines, rpv.kind))

    def _verify_fact(self, answer: str) -> ToolResult:
        step = self._rpv.check(answer, self._facts)  # the model hears matched or not, no more
        if step is Step.MATCHED:
            said = without_fact_words(self._last_debtor_text)
            return self._disclose("Matched: identity verified.", said, Event.VERIFY_FACT)
        if step is Step.RETRY:
            self._move(Event.FACT_MISMATCH)
            line = fact_question_line(self._prompts.lines, self._rpv.kind, retry=True)
            return self._spoken("Not matched. The system asked for it once more.", line)
        self._outcome = CallOutcome.UNVERIFIED
        self._wrap_up_turns = 0
        self._move(Event.FACT_FAILED)
        return self._spoken(
            "Not matched again: the identity is not verified, so nothing about the account may "
            "be said.",
            self._closing(),
        )

    def _disclose(
        self, message: str, debtor_text: str, event: Event = Event.CONFIRM_IDENTITY
    ) -> ToolResult:
        """The right party is verified: the disclosure and the balance follow at once."""
        self._verified = True
        self._disclosure_heard = False
        self._move(event)
        ask = needs_model_after(debtor_text)
        line = disclosure_line(self._prompts.lines, self._facts, self._now, ask_model_after=ask)
        return self._spoken(message, line)
