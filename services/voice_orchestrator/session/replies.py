"""What the session does when the debtor's turn ends: record it, start (or keep) the reply's
model request, and keep the transcript in spoken order when the callee spoke first; and
`produce`, the task that turns one agent turn's text into audio."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from services.common.logging import get_logger
from services.voice_orchestrator.ports import LlmError, TtsUnavailable

from . import ending, voicemail

if TYPE_CHECKING:
    from .call_session import CallSession
    from .turn import AgentTurn

log = get_logger(__name__)

# The greeting is held for the callee's "Hello?" anyway: worth a short wait for its audio if it
# is being made (at dial time) rather than a second, live synthesis.
GREETING_MADE_WAIT_S = 0.5


def start_early(s: CallSession, *, end_of_speech: bool) -> None:
    """Our VAD heard the debtor pause or stop, or new words came while an early request
    waits: have the reply's model request running on the words so far, rather than waiting for
    Deepgram's final (early.py). A request already on these words is kept."""
    if end_of_speech:
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


async def produce(s: CallSession, turn: AgentTurn) -> None:
    """Text for one agent turn → TTS context. Cancelled by `interrupt`."""
    synthesis = s.synthesis
    try:
        wait_s = GREETING_MADE_WAIT_S if turn.kind == "greeting" else 0.0
        await synthesis.open(turn, made_wait_s=wait_s)
        if turn.fixed_text is not None:
            await synthesis.speak(turn, turn.fixed_text)
        else:
            async with contextlib.aclosing(s.responder.reply(turn)) as sentences:
                async for sentence in sentences:
                    await synthesis.speak(turn, sentence)
        if not await synthesis.text_done(turn):
            s._turn_played(turn)
    except asyncio.CancelledError:
        raise
    except LlmError as exc:
        ending.vendor_failure(s, "llm", str(exc))
    except TtsUnavailable as exc:
        ending.vendor_failure(s, "tts", str(exc))
    except Exception as exc:  # a bug must not leave the line silent: apologise and end
        log.exception("turn_failed", turn=turn.id)
        ending.vendor_failure(s, "internal", repr(exc))
