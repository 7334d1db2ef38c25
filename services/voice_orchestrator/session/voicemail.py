"""Answering machines in a live call: what the session does with Twilio AMD's verdict (amd.py).

Until a person is confirmed, nothing that reveals a debt is said. The greeting stays as it is
(agent, company, the person asked for: prompts/lines.md), and so do the flow's own lines
(re-prompt, goodbye). Everything else comes from a reply turn: the model's words and, through
its confirm_identity call, the disclosure and the balance. So the gate is on reply turns: while
the verdict is pending, the reply to the callee's words is held (the model is not asked), and:

- `human`: the held reply goes ahead; verification as on any call (the conversation core).
- `machine_end_beep|silence|other`: VOICEMAIL_MODE=message says the limited-content message
  (Reg F §1006.2(j), prompts/lines.md "voicemail"; pre-made at dial time) once the greeting
  and beep are over, then hangs up; `hangup` hangs up at once. Outcome `voicemail_left` when the
  message was heard in full, else `machine`.
- `fax`: hang up; `machine`.
- `unknown`, `machine_start`, or no verdict within AMD's timeout (+ grace): no person is
  confirmed. A callee who said something we would answer gets the message (or the hang-up)
  instead of a reply, outcome `machine`; a silent line goes its usual way (re-prompt, goodbye).

A voicemail greeting ("You've reached Jordan...") therefore never reaches the model: it cannot
pass verification. With no plan (AMD off) the gate is open and verdicts are only recorded.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from services.common.logging import get_logger
from services.common.settings import Settings
from services.voice_orchestrator.conversation.speech import spoken_phone
from services.voice_orchestrator.core import CallOutcome, Speaker, default_prompt_set

from . import ending

if TYPE_CHECKING:
    from .call_session import CallSession
    from .wrapup import SessionResult

log = get_logger(__name__)

KIND = "voicemail"  # the agent turn (and latency record) of the message
# Twilio posts the verdict within MachineDetectionTimeout; past it (plus this) none will come.
VERDICT_GRACE_S = 5.0
# Verdicts that came before their call's session started here, by CallSid (a few, briefly).
_EARLY: OrderedDict[str, str] = OrderedDict()
_EARLY_MAX = 1000


def keep_early(call_sid: str, answered_by: str) -> None:
    """A verdict for a call with no live session (yet): `start` picks it up."""
    _EARLY[call_sid] = answered_by
    while len(_EARLY) > _EARLY_MAX:
        _EARLY.popitem(last=False)


@dataclass(frozen=True)
class VoicemailPlan:
    mode: str  # "message" | "hangup"
    message: str  # the limited-content message, as said
    verdict_wait_s: float  # no verdict this long after the stream started: nobody confirmed


class Verdict(Enum):
    PENDING = "pending"
    PERSON = "person"
    MACHINE = "machine"  # a machine's greeting ended: the message may start
    FAX = "fax"
    UNSURE = "unsure"  # unknown, machine_start, or no verdict in time


VERDICTS = {
    "human": Verdict.PERSON,
    "machine_end_beep": Verdict.MACHINE,
    "machine_end_silence": Verdict.MACHINE,
    "machine_end_other": Verdict.MACHINE,
    "fax": Verdict.FAX,
    "machine_start": Verdict.UNSURE,
    "unknown": Verdict.UNSURE,
}


def plan_from_settings(settings: Settings) -> VoicemailPlan | None:
    if not settings.amd_enabled:
        return None
    message = default_prompt_set().lines.render(
        "voicemail",
        caller_name=settings.voicemail_caller_name,
        business_name=settings.voicemail_business_name,
        callback_number_spoken=spoken_phone(settings.voicemail_callback_number),
    )
    return VoicemailPlan(
        settings.voicemail_mode, message, settings.amd_timeout_seconds + VERDICT_GRACE_S
    )


def dial_lines(plan: VoicemailPlan | None) -> list[str]:
    """What to pre-make when the call is dialed: the message, ready before any beep."""
    return [plan.message] if plan is not None and plan.mode == "message" else []


class AmdGate:
    """One call's AMD state; plain data, the functions below act on the session."""

    def __init__(self, plan: VoicemailPlan | None) -> None:
        self.plan = plan
        self.verdict = Verdict.PENDING
        self.answered_by: str | None = None
        self.held = False  # a reply is waiting for the verdict
        self.acted = False  # the message was started, or we hung up, because of a machine


def start(s: CallSession) -> None:
    """At session start: have the message's audio ready, and stop waiting for a verdict once
    Twilio's detection has timed out."""
    plan = s.amd.plan
    if plan is None:
        return
    if s.premade is not None and plan.mode == "message":
        s.premade.prefetch([plan.message])
    s.background(_verdict_timeout(s, plan.verdict_wait_s))
    early = _EARLY.pop(s.start.call_sid, None)
    if early is not None:
        on_answered_by(s, early)


async def _verdict_timeout(s: CallSession, wait_s: float) -> None:
    await asyncio.sleep(wait_s)
    if s.amd.verdict is Verdict.PENDING:
        log.warning("amd_no_verdict", waited_s=wait_s)
        _decide(s, Verdict.UNSURE)


def on_answered_by(s: CallSession, answered_by: str) -> None:
    """Twilio's verdict for this call (amd.py has checked its signature)."""
    gate = s.amd
    verdict = VERDICTS.get(answered_by)
    if verdict is None or gate.acted or gate.verdict not in (Verdict.PENDING, Verdict.UNSURE):
        return
    gate.answered_by = answered_by
    if gate.plan is not None:
        _decide(s, verdict)


def hold_reply(s: CallSession) -> bool:
    """The callee's turn ended and a reply would start: True if it must not (yet)."""
    gate = s.amd
    if gate.plan is None or gate.verdict is Verdict.PERSON:
        return False
    s.responder.discard_early()
    s.policy.response_finished()
    s.flow.agent_started()  # no re-prompt while we wait: the callee is not silent
    if gate.verdict is Verdict.PENDING:
        gate.held = True
    else:
        _act(s)  # nobody confirmed: never a model reply
    return True


def _decide(s: CallSession, verdict: Verdict) -> None:
    gate = s.amd
    gate.verdict = verdict
    log.info("amd_verdict", verdict=verdict.value, held=gate.held)
    if s.hanging_up or s.ended.is_set():
        return
    if verdict is Verdict.PERSON:
        if gate.held:
            gate.held = False
            # Answer the held words as after a wordless pause: the turn policy starts the reply
            # once nothing plays and the callee is quiet (now, or from the ticker).
            s.policy.interrupted = True
            if s.current is None and not s.policy.user_vad:
                s.apply(s.policy.silence_timeout())
    elif verdict is not Verdict.UNSURE or gate.held:
        _act(s)


def _act(s: CallSession) -> None:
    gate = s.amd
    plan = gate.plan
    if gate.acted or plan is None or s.hanging_up or s.flow.closing_line is not None:
        return
    gate.acted = True
    gate.held = False
    if gate.verdict is Verdict.FAX or plan.mode != "message":
        log.info("amd_hang_up", verdict=gate.verdict.value)
        if s.current is not None and not s.current.committed:
            s.interrupt(s.current, interrupted=True)
        ending.hangup(s)
        return
    log.info("voicemail_message_started", verdict=gate.verdict.value)
    # Cuts the greeting if it still plays; said once the line is quiet (after the beep), then
    # the call ends. Cut off, it is said again once (CallFlow's closing line).
    s.say_fixed(KIND, plan.message, end_call_after=True)


def settle(s: CallSession, result: SessionResult) -> SessionResult:
    """The outcome of a call the gate ended: `voicemail_left` or `machine`."""
    gate = s.amd
    if not gate.acted or result.failure_reason or gate.plan is None:
        return result
    message = gate.plan.message
    left = gate.verdict is Verdict.MACHINE and any(
        t.speaker == Speaker.AGENT and not t.interrupted and message in t.text
        for t in result.transcript
    )
    result.outcome = CallOutcome.VOICEMAIL_LEFT if left else CallOutcome.MACHINE
    return result
