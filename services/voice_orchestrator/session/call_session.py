"""`CallSession`: one live call. Supervises the parts and carries out what they decide:
stream (Twilio WS) → Listener (VAD, Deepgram, recording) → turn policy; Responder (model) →
Synthesis (TTS) → playout buffer → Pacer → Twilio; CallFlow and the timers (timers.py).

All state lives on the event loop thread, so handlers mutate it directly; the only awaits on the
hot path are WebSocket sends. Time is `loop.time()` (monotonic); "stream ms" is milliseconds since
Twilio's `start` message, the time line of the recording.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from generated.call_step import CallStep
from services.common.call_steps import StepBuffer
from services.common.logging import bind_call_id, get_logger
from services.voice_orchestrator.core import Conversation
from services.voice_orchestrator.latency import TurnTimings
from services.voice_orchestrator.media.recorder import StereoRecorder
from services.voice_orchestrator.ports import (
    LanguageModel,
    PremadeLines,
    SpeechToText,
    SttEvent,
    SttFailed,
    SttTranscript,
    TextToSpeech,
)
from services.voice_orchestrator.turns import (
    Action,
    CancelPending,
    Interrupt,
    SendFinalize,
    StartEarly,
    StartResponse,
    TurnPolicy,
)
from services.voice_orchestrator.vendors.twilio import StreamStart, Telephony

from . import ending, replies, voicemail
from .flow import CallFlow
from .listener import Listener
from .pacer import Pacer
from .playout import PlayoutBuffer
from .responder import Responder
from .stream import MediaTransport, TwilioStream
from .synthesis import Synthesis
from .timers import heartbeat, tick
from .transcript import Transcript
from .tuning import SessionTuning
from .turn import AgentTurn
from .wrapup import SessionResult, shut_down

log = get_logger(__name__)
_PARTS = ("stream", "listener", "buffer", "pacer", "synthesis", "responder", "flow")

RESUME_AFTER_S = 0.3  # quiet after a pause before the agent carries on


class CallSession:
    def __init__(
        self,
        *,
        call_id: str,
        start: StreamStart,
        transport: MediaTransport,
        conversation: Conversation,
        stt: SpeechToText,
        tts: TextToSpeech,
        llm: LanguageModel,
        telephony: Telephony,
        tuning: SessionTuning,
        heartbeat: Callable[[], Any] | None = None,
        started_at: float | None = None,
        premade: PremadeLines | None = None,
    ) -> None:
        self.call_id = call_id
        self.start = start
        self.conv = conversation
        self.stt = stt
        self.tts = tts
        self.llm = llm
        self.telephony = telephony
        self.tuning = tuning
        self._heartbeat_fn = heartbeat
        self.loop = asyncio.get_running_loop()
        # Stream time 0 = when Twilio's `start` arrived (not when this object was built, after
        # the database round trips), so our clock lines up with Twilio's media timestamps.
        now = self.loop.time()
        self.t0 = started_at if started_at is not None else now
        self.t0_wall = datetime.now(UTC) - timedelta(seconds=now - self.t0)
        self.policy = TurnPolicy(min_speech_ms=tuning.barge_in_min_speech_ms)
        self.recorder = StereoRecorder()
        self.stream = TwilioStream(
            transport,
            start.stream_sid,
            on_media=self._on_media,
            on_mark=self._on_mark,
            on_closed=self._on_closed,
        )
        self.listener = Listener(stt, self.recorder, self.policy, tuning.vad, t0=self.t0)
        self.buffer = PlayoutBuffer(self.recorder)
        self.pacer = Pacer(
            self.buffer,
            self.policy,
            self.stream.out,
            self.stream.send,
            self._stream_ms,
            self._still_paused,
            functools.partial(replies.on_first_audio, self),
            lead_ms=tuning.lead_ms,
            frames_per_message=tuning.frames_per_message,
        )
        self.synthesis = Synthesis(
            tts,
            self.buffer,
            wake=self.pacer.wake.set,
            background=self.background,
            on_failure=functools.partial(ending.vendor_failure, self, "tts"),
            now=self.now,
            premade=premade,
        )
        self.premade = premade
        # The call's steps while it is live: in memory only, stored by the heartbeat batcher
        # and, what is left, when it ends (finalize).
        self.steps = StepBuffer()
        self.responder = Responder(
            conversation,
            llm,
            steps=self.steps,
            max_tool_rounds=tuning.max_tool_rounds,
            first_clause_chars=tuning.first_clause_chars,
            now=self.now,
        )
        self.flow = CallFlow(
            tuning.flow_timing(),
            t0=self.t0,
            reprompt_line=conversation.reprompt_line(),
            silent_goodbye_line=conversation.silent_goodbye_line(),
        )
        self.transcript = Transcript()
        self.latency: list[dict[str, Any]] = []
        self.current: AgentTurn | None = None
        self._turn_seq = 0
        self.ended = asyncio.Event()
        self.end_reason = ""
        self.failure_reason: str | None = None
        self.hanging_up = False
        self.debtor_spoke = False
        self.tasks: list[asyncio.Task[Any]] = []
        self.background_tasks: set[asyncio.Task[Any]] = set()
        self.turn_tasks: set[asyncio.Task[None]] = set()
        self.amd = voicemail.AmdGate(tuning.voicemail)  # who answered (Twilio AMD)

    # ---- clocks ----------------------------------------------------------------------------
    def now(self) -> float:
        return self.loop.time()

    def _stream_ms(self, at: float | None = None) -> float:
        return ((self.now() if at is None else at) - self.t0) * 1000.0

    def wall(self, at: float) -> datetime:
        return self.t0_wall + timedelta(seconds=at - self.t0)

    # ---- lifecycle -------------------------------------------------------------------------
    async def run(self) -> SessionResult:
        bind_call_id(self.call_id)
        spawn = self._spawn
        spawn(self.stt.run(self._on_stt), "stt")
        spawn(self.tts.run(self.synthesis.on_event), "tts")
        spawn(self.stream.read(), "reader")
        spawn(self.pacer.run(), "pacer")
        spawn(tick(self), "ticker")
        spawn(heartbeat(self._heartbeat_fn, self.tuning.heartbeat_s), "heartbeat")
        if self.premade is not None:
            self.premade.prefetch(self.conv.premade_lines())
        voicemail.start(self)
        self.start_turn("greeting", self.t0, text=self.conv.greeting_line(), held=True)
        await self.ended.wait()
        return voicemail.settle(self, await shut_down(self))

    def background(self, coro: Awaitable[Any]) -> None:
        """Fire-and-forget work (a `clear`, a context close) that must not be awaited inline."""
        task = asyncio.ensure_future(coro)
        self.background_tasks.add(task)
        task.add_done_callback(self.background_tasks.discard)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"{name}:{self.call_id}")
        task.add_done_callback(self._task_done)
        self.tasks.append(task)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not self.ended.is_set():
            log.error("session_task_crashed", task=task.get_name(), error=repr(exc))
            self.failure_reason = self.failure_reason or f"internal: {exc!r}"[:500]
            self.end("internal_error")

    def end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.end_reason = reason
            self.ended.set()

    def release_parts(self) -> None:
        """The parts hold the session's bound methods as callbacks: session -> part -> session
        is a cycle only a full collection frees (rare on purpose, GC_THRESHOLDS), and it would
        keep the call's recording in memory. Cut once the call is over."""
        for name in _PARTS:
            vars(self).pop(name, None)

    def _on_closed(self, reason: str) -> None:
        self.end("agent_hangup" if self.hanging_up else reason)

    # ---- inbound ----------------------------------------------------------------------------
    def _on_media(self, frame: bytes, ts: float | None) -> None:
        actions, speech_started = self.listener.on_media(frame, ts, self.now())
        if speech_started:
            self.responder.discard_early()  # the debtor goes on: those words were not all
            turn = self.current
            if turn is not None and turn.playing and not turn.cancelled:
                if self.pacer.pause(turn):
                    turn.paused_at = self.now()
        if actions:
            self.apply(actions)

    def _on_mark(self, name: str) -> None:
        item = self.buffer.mark_echoed(name)
        if item is not None and item.end:
            self._turn_played(item.turn)

    def _on_stt(self, event: SttEvent) -> None:
        if isinstance(event, SttFailed):
            ending.vendor_failure(self, "stt", event.error)
            return
        actions = self.listener.on_stt(event, self.now())
        early = self.responder.early
        if early is not None and isinstance(event, SttTranscript) and not event.is_final:
            # New words while an early request waits: it must be on the words so far.
            replies.start_early(self, end_of_speech=False)
        if actions:
            self.apply(actions)

    def apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendFinalize):
                self.stt.finalize()
                replies.start_early(self, end_of_speech=True)
            elif isinstance(action, StartEarly):
                replies.start_early(self, end_of_speech=False)
            elif isinstance(action, Interrupt):
                self._barge_in(action)
            elif isinstance(action, CancelPending):
                turn = self.current
                if turn is not None:
                    log.info("reply_dropped", reason=action.reason, turn=turn.id)
                    self.interrupt(turn, interrupted=True)
            elif isinstance(action, StartResponse):
                replies.on_debtor_turn_end(self, action.text)

    # ---- interruption: the one way a turn stops early ----------------------------------------
    def _barge_in(self, action: Interrupt) -> None:
        turn = self.current
        if turn is None or turn.cancelled:
            return
        now = self.now()
        onset = self.t0 + action.onset_ms / 1000.0 if action.onset_ms is not None else now
        turn.timings.barge_in_onset_at = min(onset, now)
        turn.timings.barge_in_detected_at = now
        if turn.end_call_after and self.flow.closing_line is None:
            # The model's goodbye was cut off: the call still ends, with the core's closing line.
            self.flow.closing_line = self.conv.closing_line()
        self.interrupt(turn, interrupted=True)
        log.info("barge_in", reason=action.reason, turn=turn.id)

    def interrupt(self, turn: AgentTurn, *, interrupted: bool) -> None:
        """Stop `turn` now. Each part clears itself: the responder's task is cancelled,
        synthesis drops the TTS context, playout drops what is queued and, if the turn was
        playing, Twilio gets a `clear` and the transcript keeps only the words heard."""
        now = self.now()
        turn.cancelled = True
        if turn.task is not None:
            turn.task.cancel()
        self.synthesis.clear(turn)
        now_ms = self._stream_ms(now)
        heard = self.buffer.cut(turn, now_ms)
        if turn.playing:
            if turn.paused_at is None:  # paused: Twilio holds nothing of it already
                self.background(self.stream.send(self.stream.out.clear()))
            if turn.timings.barge_in_detected_at is not None:
                # The early clear of the pause this barge-in confirmed, if it paused us.
                turn.timings.clear_sent_at = turn.paused_at or now
            self._commit_agent_turn(turn, heard, interrupted=interrupted, end_stream_ms=now_ms)
        else:
            self._forget_turn(turn)
        self.policy.response_finished()
        self.flow.agent_idle(now)

    def _still_paused(self, turn: AgentTurn) -> bool:
        """After a pause, carry on only once the debtor has been quiet for a moment: the VAD
        can flicker between words, and each flicker would let a burst of audio out."""
        return (
            turn.paused_at is not None and self.now() - self.listener.last_voiced < RESUME_AFTER_S
        )

    # ---- agent turns ------------------------------------------------------------------------
    def start_turn(
        self,
        kind: str,
        trigger_at: float,
        *,
        text: str | None = None,
        held: bool = False,
        end_call_after: bool = False,
    ) -> AgentTurn:
        """A new agent turn: `text` is a fixed line; without it the model is asked."""
        self._turn_seq += 1
        turn = AgentTurn(
            id=self._turn_seq,
            kind=kind,
            context_id=f"{self.start.call_sid[-8:] or 'ctx'}-{self._turn_seq}",
            timings=TurnTimings(kind=kind, trigger_at=trigger_at),
            fixed_text=text,
            held=held,
            end_call_after=end_call_after,
        )
        turn.timings.fixed_line = text is not None
        self.current = turn
        self.flow.agent_started()
        self.policy.response_started(cancellable=kind != "greeting")
        task = asyncio.create_task(replies.produce(self, turn))
        turn.task = task
        self.turn_tasks.add(task)
        task.add_done_callback(self.turn_tasks.discard)
        task.add_done_callback(functools.partial(_forget_task, turn))
        return turn

    def say_fixed(self, kind: str, text: str, *, end_call_after: bool) -> None:
        if self.current is not None and not self.current.committed:
            self.interrupt(self.current, interrupted=False)
        if end_call_after:
            self.flow.closing(text)
        held = not self.flow.greeting_released  # nothing before the callee's "Hello?"
        self.start_turn(kind, self.now(), text=text, held=held, end_call_after=end_call_after)

    def _turn_played(self, turn: AgentTurn) -> None:
        """All of a turn's audio was played (its last mark came back) or it had none."""
        if turn.committed:
            return
        end_ms = self.buffer.played_until_ms(turn, self._stream_ms())
        if turn.sentences:
            self._commit_agent_turn(turn, turn.text, interrupted=False, end_stream_ms=end_ms)
        else:
            self._forget_turn(turn)
        self.policy.response_finished()
        self.flow.agent_idle(self.now())
        if turn.end_call_after or self.conv.finished:
            ending.hangup(self)
        elif self.policy.pending and not self.policy.user_vad:
            # Words that arrived while the reply was being prepared are answered now.
            self.apply(self.policy.silence_timeout())

    def _forget_turn(self, turn: AgentTurn) -> None:
        turn.committed = True
        self.synthesis.forget(turn)
        if self.current is turn:
            self.current = None

    def _commit_agent_turn(
        self, turn: AgentTurn, text: str, *, interrupted: bool, end_stream_ms: float
    ) -> None:
        if turn.committed:
            return
        self._forget_turn(turn)
        start_ms = turn.started_stream_ms if turn.started_stream_ms is not None else end_stream_ms
        index = self.transcript.add_agent(
            text,
            self.conv.state.value,
            self.t0_wall + timedelta(milliseconds=start_ms),
            self.t0_wall + timedelta(milliseconds=end_stream_ms),
            interrupted=interrupted,
        )
        owed = self.conv.disclosure_owed
        self.conv.add_agent_turn(text, interrupted=interrupted)
        if owed and self.conv.verified and not self.conv.disclosure_owed:
            self.steps.add(
                CallStep.DISCLOSURE_SPOKEN,
                at=self.t0_wall + timedelta(milliseconds=end_stream_ms),
            )
        self.latency.append(turn.timings.record(index))


def _forget_task(turn: AgentTurn, task: asyncio.Task[None]) -> None:
    """A finished turn task lets go of its turn: a cancelled one keeps its traceback, whose
    frames keep the session, and turn -> task -> traceback -> turn is a cycle that only a full
    collection frees."""
    if turn.task is task:
        turn.task = None
