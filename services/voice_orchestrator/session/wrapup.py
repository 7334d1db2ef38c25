"""The end of a live call: stop every part, keep what the debtor heard of a cut turn, settle the
outcome, and gather the recording and the usage that `finalize` persists."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from generated.call_usage import CallUsage
from generated.early_generation_usage import EarlyGenerationUsage
from services.common.call_steps import StepRecord
from services.common.logging import get_logger
from services.voice_orchestrator.core import CallOutcome, Conversation, EndReason
from services.voice_orchestrator.vendors.twilio import Telephony

from .transcript import Transcript

if TYPE_CHECKING:
    from .call_session import CallSession

log = get_logger(__name__)


@dataclass
class SessionResult:
    """Everything `finalize` persists about a call that had a media session."""

    call_id: str
    call_sid: str
    outcome: CallOutcome
    failure_reason: str | None
    transcript: Transcript
    latency: list[dict[str, Any]]
    conversation: Conversation
    recording_wav: bytes
    started_at: datetime
    ended_at: datetime
    usage: CallUsage
    end_reason: str
    # The call's steps recorded during the session (verification, disclosure, tool calls),
    # stored with the call's end.
    steps: list[StepRecord] = field(default_factory=list)


async def shut_down(s: CallSession) -> SessionResult:
    s.responder.discard_early()
    turn = s.current
    if turn is not None and not turn.committed:
        # The line went down mid-turn: keep what the debtor heard of it.
        s.interrupt(turn, interrupted=turn.playing)
    turn_tasks = [t for t in s.turn_tasks if not t.done()]
    for task in turn_tasks:
        task.cancel()
    with contextlib.suppress(Exception):
        await s.stt.close()
    with contextlib.suppress(Exception):
        await s.tts.close()
    if s.premade is not None:
        with contextlib.suppress(Exception):
            await s.premade.aclose()
    for task in s.tasks:
        task.cancel()
    await asyncio.gather(*s.tasks, *turn_tasks, return_exceptions=True)
    for task in list(s.background_tasks):
        task.cancel()
    # A finished task keeps its CancelledError, whose traceback keeps the coroutine's frame
    # and with it this session: a cycle only a full collection frees, and full collections
    # are rare (GC_THRESHOLDS). Held like that, every ended call kept its recording in
    # memory (RSS grew ~2.5 MB per call, 1.4 GB over a capacity run). Turn tasks let go of
    # their turns themselves (`_forget_task`).
    s.tasks.clear()
    s.turn_tasks.clear()
    with contextlib.suppress(Exception):
        await s.stream.close()
    s.stream.ignored.summary()
    if s.failure_reason:
        outcome = s.conv.finalize(EndReason.ERROR)
    elif s.flow.gave_up_on_silence:
        outcome = s.conv.finalize(EndReason.SILENCE)
    elif not s.debtor_spoke:
        outcome = s.conv.finalize(EndReason.NO_ANSWER)
    else:
        outcome = s.conv.finalize(EndReason.HANGUP)
    ended = datetime.now(UTC)
    wav = await asyncio.to_thread(s.recorder.to_wav)
    s.recorder.release()  # the WAV holds it now; never two copies per ended call
    llm_usage = s.llm.usage
    own_seconds = max(0, int((ended - s.t0_wall).total_seconds() + 0.999))
    twilio_seconds = await twilio_duration(s.telephony, s.start.call_sid)
    usage = CallUsage(
        # Billed from Twilio's own duration; our stream clock only if Twilio has none yet.
        telephony_seconds=own_seconds if twilio_seconds is None else twilio_seconds,
        stt_audio_seconds=int(s.stt.audio_seconds + 0.999),
        llm_input_tokens=llm_usage.input_tokens,
        llm_cached_input_tokens=llm_usage.cached_input_tokens,
        llm_output_tokens=llm_usage.output_tokens,
        # Live syntheses, and the lines this call had made ahead (one another call made first
        # cost this one nothing).
        tts_characters=s.tts.characters + (s.premade.characters if s.premade else 0),
        early_generation=EarlyGenerationUsage(**s.responder.early_stats.as_usage()),
    )
    result = SessionResult(
        call_id=s.call_id,
        call_sid=s.start.call_sid,
        outcome=outcome,
        failure_reason=s.failure_reason,
        transcript=s.transcript,
        latency=s.latency,
        conversation=s.conv,
        recording_wav=wav,
        started_at=s.t0_wall,
        ended_at=ended,
        usage=usage,
        end_reason=s.end_reason,
        steps=s.steps.take(),
    )
    s.release_parts()
    return result


async def twilio_duration(telephony: Telephony, call_sid: str) -> int | None:
    """Twilio's duration for the call: it appears once Twilio has completed the call, moments
    after the stream stops, so ask a few times, briefly."""
    for attempt in range(4):
        try:
            seconds = await asyncio.wait_for(telephony.call_duration(call_sid), 2.0)
        except Exception as exc:
            log.warning("twilio_duration_unavailable", error=repr(exc))
            return None
        if seconds is not None:
            return seconds
        await asyncio.sleep(0.25 * (attempt + 1))
    return None
