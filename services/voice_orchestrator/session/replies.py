"""What the session does when the debtor's turn ends: record it, start (or keep) the reply's
model request, and keep the transcript in spoken order when the callee spoke first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import voicemail

if TYPE_CHECKING:
    from .call_session import CallSession
    from .turn import AgentTurn


def start_early(s: CallSession) -> None:
    """Our VAD heard the debtor stop: start the reply's model request now, on the words so
    far, rather than after Deepgram's final (early.py)."""
    s.listener.vad_end_at = s.now()
    if s.current is not None or s.hanging_up or s.conv.finished:
        return
    if s.flow.closing_line is not None:
        return
    words = " ".join([*s.policy.pending, s.listener.latest_interim]).strip()
    if words:
        s.responder.start_early(words)


def on_debtor_turn_end(s: CallSession, text: str) -> None:
    """The policy ended the debtor's turn (StartResponse): record it and start replying."""
    now = s.now()
    if s.hanging_up or s.conv.finished or s.flow.closing_line is not None:
        s.policy.response_finished()
        return
    onset, speech_end = s.listener.utterance_bounds(now)
    if text:
        s.debtor_spoke = True
        s.flow.debtor_spoke()
        started = onset if onset is not None else now
        ended = speech_end if speech_end is not None else now
        s.transcript.add_debtor(
            text, s.conv.state.value, s.wall(started), s.wall(ended), merge=True
        )
        s.conv.add_debtor_turn(text)
    s.listener.onset = None
    stt_final_at = s.listener.stt_final_at
    trigger = speech_end or stt_final_at or now
    fixed: str | None = None
    if text and s.conv.check_derailment():
        fixed = s.conv.closing_line()
        s.flow.closing(fixed)
    if fixed is not None or not text:
        s.responder.discard_early()
    if fixed is None and voicemail.hold_reply(s):
        return  # no person confirmed yet, or a machine (voicemail.py)
    kind = "reply" if text else "resume"
    turn = s.start_turn(kind, trigger, text=fixed, end_call_after=fixed is not None)
    t = turn.timings
    if s.listener.vad_end_at is not None and s.listener.vad_end_at >= (onset or 0.0):
        t.vad_end_at = s.listener.vad_end_at
    if text and speech_end is not None:
        t.speech_end_at = speech_end
        t.speech_end_wall = s.wall(speech_end)
        t.stt_final_at = max(stt_final_at or now, speech_end)
        t.vendor_waits.append((speech_end, t.stt_final_at))


def on_first_audio(s: CallSession, turn: AgentTurn) -> None:
    turn.timings.first_audio_out_at = s.now()
    s.policy.audio_started()
    if turn.kind == "greeting" and s.policy.pending:
        # The callee's "Hello?" came first; keep the transcript in spoken order.
        text = " ".join(s.policy.pending)
        s.policy.pending = []
        now = s.now()
        onset = s.listener.onset or now
        end = s.listener.last_voiced or now
        s.transcript.add_debtor(text, s.conv.state.value, s.wall(onset), s.wall(end), merge=False)
        s.conv.add_debtor_turn(text)
        s.debtor_spoke = True
        s.listener.onset = None
