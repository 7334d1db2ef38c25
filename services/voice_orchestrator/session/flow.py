"""CallFlow: the call's timers, pure. When to greet, when to re-prompt a silent line, when to
give up, and how a closing line is said in full before we hang up.

Times are plain numbers (seconds on any monotonic clock); the session's ticker asks `tick()`
ten times a second and carries out what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FlowTiming:
    greeting_wait_s: float = 1.0  # wait this long for the callee's "Hello?" before greeting
    greeting_after_voice_s: float = 0.7  # greet once the "Hello?" has been over this long
    resume_after_s: float = 1.2  # after a wordless barge-in, resume once quiet this long
    silence_reprompt_s: float = 6.0  # debtor silent this long after the agent: re-prompt
    max_reprompts: int = 2
    max_closing_attempts: int = 2  # a closing line cut off is said again, once


@dataclass(frozen=True)
class SayLine:
    kind: str  # "reprompt" | "goodbye" | "closing"
    text: str
    end_call_after: bool


@dataclass(frozen=True)
class HangUp:
    pass


@dataclass(frozen=True)
class AnswerNow:
    """Debtor words (or a wordless barge-in) waited long enough: let the turn policy decide."""


FlowAction = SayLine | HangUp | AnswerNow


class CallFlow:
    def __init__(
        self, timing: FlowTiming, *, t0: float, reprompt_line: str, silent_goodbye_line: str
    ) -> None:
        self.timing = timing
        self.t0 = t0
        self.reprompt_line = reprompt_line
        self.silent_goodbye_line = silent_goodbye_line
        self.greeting_released = False
        self.reprompts = 0
        self.agent_idle_since: float | None = None
        # Set once the call is ending on our side (goodbye, apology): the line is said in full,
        # again after an interruption (at most twice), and then we hang up; no more replies.
        self.closing_line: str | None = None
        self.closing_attempts = 0
        # Set when the re-prompts ran out: the call ends because the line stayed silent.
        self.gave_up_on_silence = False

    # ---- what happened ------------------------------------------------------------------
    def agent_started(self) -> None:
        self.agent_idle_since = None

    def agent_idle(self, now: float) -> None:
        self.agent_idle_since = now

    def debtor_spoke(self) -> None:
        self.reprompts = 0

    def closing(self, text: str) -> None:
        """A line after which the call ends is about to be said."""
        self.closing_line = text
        self.closing_attempts += 1

    # ---- decisions ----------------------------------------------------------------------
    def greeting_due(
        self, now: float, *, speech_active: bool, words_waiting: bool, last_voiced: float
    ) -> bool:
        """Greet once the callee's "Hello?" is over, or after a short wait if they say
        nothing. Past three waits it is released anyway: the output gate still waits for a
        pause in any speech."""
        t = self.timing
        if now - self.t0 >= 3 * t.greeting_wait_s:
            return True
        if speech_active:
            return False
        if words_waiting:
            return True
        if last_voiced:
            return now - last_voiced >= t.greeting_after_voice_s
        return now - self.t0 >= t.greeting_wait_s

    def tick(
        self, now: float, *, last_activity: float, words_waiting: bool, stt_active: bool
    ) -> FlowAction | None:
        """Called while nothing is playing or being prepared and the debtor is quiet."""
        t = self.timing
        quiet = now - max(last_activity, self.agent_idle_since or 0.0)
        if self.closing_line is not None:
            if quiet < t.resume_after_s:
                return None
            if self.closing_attempts >= t.max_closing_attempts:
                return HangUp()
            return SayLine("closing", self.closing_line, end_call_after=True)
        if words_waiting:
            if quiet >= t.resume_after_s and not stt_active:
                return AnswerNow()
            return None
        if self.agent_idle_since is not None and quiet >= t.silence_reprompt_s:
            self.reprompts += 1
            if self.reprompts > t.max_reprompts:
                self.gave_up_on_silence = True
                return SayLine("goodbye", self.silent_goodbye_line, end_call_after=True)
            return SayLine("reprompt", self.reprompt_line, end_call_after=False)
        return None
