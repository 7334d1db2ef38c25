"""One `CallSession` per live call: Twilio media in and out, Deepgram, the LLM, ElevenLabs.

Tasks of a session, joined by small queues and the turn policy:

    reader   Twilio WS → decode, local VAD, recorder, Deepgram queue; marks; stop
    stt      Deepgram socket (reconnecting) → transcripts → TurnPolicy
    tts      ElevenLabs socket (reconnecting) → audio chunks → 20 ms frames → outbound deque
    producer one per agent turn: LLM stream → SentenceSplitter → TTS context (cancellable)
    pacer    outbound deque → Twilio `media` frames, paced ~100 ms ahead of real time, + marks
    ticker   silence handling, stuck-TTS watchdog; heartbeat: `calls.heartbeat_at`

All state lives on the event loop thread, so handlers mutate it directly; the only awaits on the
hot path are WebSocket sends. Time is `loop.time()` (monotonic); "stream ms" is milliseconds since
Twilio's `start` message, the time line of the recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from services.common.logging import bind_call_id, get_logger
from services.voice_orchestrator.core import (
    CallOutcome,
    Conversation,
    EndReason,
    SentenceSplitter,
    speakable,
)
from services.voice_orchestrator.latency import TurnTimings
from services.voice_orchestrator.media.framing import FrameChunker, PlayoutClock
from services.voice_orchestrator.media.mulaw import FRAME_BYTES, FRAME_MS
from services.voice_orchestrator.media.recorder import StereoRecorder
from services.voice_orchestrator.media.vad import EnergyVad, VadConfig, VadEdge
from services.voice_orchestrator.ports import (
    Alignment,
    Completed,
    LanguageModel,
    LlmError,
    SpeechToText,
    SttEvent,
    SttFailed,
    SttSpeechStarted,
    SttTranscript,
    SttUtteranceEnd,
    TextDelta,
    TextToSpeech,
    ToolCall,
    TtsAudio,
    TtsContextLost,
    TtsDone,
    TtsEvent,
    TtsFailed,
    TtsUnavailable,
)
from services.voice_orchestrator.turns import (
    Action,
    CancelPending,
    Interrupt,
    SendFinalize,
    StartResponse,
    TurnPolicy,
)
from services.voice_orchestrator.vendors.twilio import (
    BadFrame,
    IgnoredFrames,
    MediaOut,
    StreamStart,
    Telephony,
    parse_mark,
    parse_media,
    parse_message,
)

log = get_logger(__name__)

APOLOGY_LINE = (
    "I'm sorry, we're having a technical problem on our side. We'll call you back later. Goodbye."
)
REPROMPT_LINE = "Hello? Are you still there?"
SILENT_GOODBYE_LINE = "It seems this isn't a good time. We'll try again later. Goodbye."
# A debtor frame stamped further ahead of our stream clock than this is not Twilio's (its clock
# starts when it sends `start`, before ours): placing it would grow the recording to that time.
MAX_TIMESTAMP_LEAD_MS = 10_000.0


class TransportClosed(Exception):
    pass


class MediaTransport(Protocol):
    """The Twilio Media Streams WebSocket, reduced to what the session needs."""

    async def send_text(self, data: str) -> None: ...

    async def receive_text(self) -> str:
        """Next text frame; raises TransportClosed when the socket is gone and BadFrame for a
        frame that is not text (Twilio sends text frames only)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class SessionTuning:
    # Audio queued at Twilio ahead of real time. With two frames per message the pacer tops it up
    # once 80 ms are left: the loop may stall that long before playback runs dry.
    lead_ms: float = 120.0
    # 20 ms frames per outbound media message: fewer, larger sends halve the pacer's wakeups
    # and the socket writes per call (~16 % of the loop at 100 calls, py-spy).
    frames_per_message: int = 2
    greeting_wait_s: float = 1.0  # wait this long for the callee's "Hello?" before greeting
    resume_after_s: float = 1.2  # after a wordless barge-in, resume once quiet this long
    silence_reprompt_s: float = 6.0  # debtor silent this long after the agent: re-prompt
    max_reprompts: int = 2
    heartbeat_s: float = 10.0
    hangup_grace_s: float = 5.0  # after our REST hang-up, wait this long for Twilio's `stop`
    tts_stall_s: float = 2.0  # text complete, no audio for this long: the turn's audio is done
    max_tool_rounds: int = 4
    barge_in_min_speech_ms: int = 200
    vad: VadConfig = field(default_factory=VadConfig)


@dataclass
class TranscriptEntry:
    speaker: str
    text: str
    state: str
    started_at: datetime
    ended_at: datetime
    interrupted: bool = False


@dataclass
class SessionResult:
    """Everything `finalize` persists about a call that had a media session."""

    call_id: str
    call_sid: str
    outcome: CallOutcome
    failure_reason: str | None
    transcript: list[TranscriptEntry]
    latency: list[dict[str, Any]]
    conversation: Conversation
    recording_wav: bytes
    started_at: datetime
    ended_at: datetime
    usage: dict[str, Any]
    end_reason: str


@dataclass(slots=True)
class _Segment:
    audio_ms: float  # offset in the turn's audio
    stream_ms: float  # when it starts playing
    duration_ms: float


@dataclass
class AgentTurn:
    id: int
    kind: str
    context_id: str
    timings: TurnTimings
    fixed_text: str | None = None
    end_call_after: bool = False
    held: bool = False  # audio waits for an explicit release (the greeting)
    sentences: list[str] = field(default_factory=list)
    # Alignment, flattened over the turn's audio: where the middle of each non-space character
    # plays (ms). One array, not a tuple per character: thousands of those, alive for a whole
    # turn at 100 calls, made every young garbage collection slower.
    char_mids: array[float] = field(default_factory=lambda: array("d"))
    aligned_chars: int = 0
    aligned_nonspace: int = 0
    aligned_end_ms: float = 0.0  # where the last aligned character ends in the turn's audio
    sent_nonspace: int = 0
    alignment_missing: bool = False
    close_sent: bool = False
    audio_ms_received: float = 0.0
    chunker: FrameChunker = field(default_factory=FrameChunker)
    segments: list[_Segment] = field(default_factory=list)
    audio_ms_sent: float = 0.0
    heard_ms_by_mark: float = 0.0
    mark_seq: int = 0
    playing: bool = False
    text_complete: bool = False
    tts_done: bool = False
    cancelled: bool = False
    committed: bool = False
    last_tts_activity: float = 0.0
    started_stream_ms: float | None = None
    task: asyncio.Task[None] | None = None
    resends: int = 0
    paused_at: float | None = None  # our last early `clear` (debtor sound, not yet confirmed)

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


@dataclass(slots=True)
class _OutItem:
    """Queued for Twilio: whole 20 ms frames of a turn's audio, as TTS delivered them (one
    item per chunk, not per frame: thousands of queued objects made every full garbage
    collection longer and more frequent), or a mark."""

    turn: AgentTurn
    audio: bytes | None = None
    mark: str | None = None
    mark_offset_ms: float = 0.0
    end: bool = False


RECENT_ITEMS = 64  # audio messages and marks: well beyond what Twilio holds unplayed (`lead_ms`)
BYTES_PER_MS = FRAME_BYTES / FRAME_MS  # μ-law at 8 kHz


def _frames_started(start_ms: float, now_ms: float) -> int:
    """Of audio that starts playing at `start_ms`, how many 20 ms frames have started by
    `now_ms` (a frame starting exactly at `now_ms` has not)."""
    return max(0, int(-(-(now_ms - start_ms) // FRAME_MS)))


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
    ) -> None:
        self.call_id = call_id
        self.start = start
        self.transport = transport
        self.conv = conversation
        self.stt = stt
        self.tts = tts
        self.llm = llm
        self.telephony = telephony
        self.tuning = tuning
        self._heartbeat_fn = heartbeat
        self.media_out = MediaOut(start.stream_sid)
        self.policy = TurnPolicy(min_speech_ms=tuning.barge_in_min_speech_ms)
        self.vad = EnergyVad(tuning.vad)
        self.recorder = StereoRecorder()
        self.clock = PlayoutClock()
        self.loop = asyncio.get_running_loop()
        # Stream time 0 = when Twilio's `start` arrived (not when this object was built, after
        # the database round trips), so our clock lines up with Twilio's media timestamps.
        now = self.loop.time()
        self.t0 = started_at if started_at is not None else now
        self.t0_wall = datetime.now(UTC) - timedelta(seconds=now - self.t0)
        self._send_lock = asyncio.Lock()
        self._out: deque[_OutItem] = deque()
        self._out_wake = asyncio.Event()
        # Set by a pause: ends the pacer's wait for its next 40 ms slot, so the `clear` goes
        # out now rather than up to a message later.
        self._clear_wake = asyncio.Event()
        self._marks: dict[str, _OutItem] = {}
        self._turn_seq = 0
        self.current: AgentTurn | None = None
        self._turns_by_ctx: dict[str, AgentTurn] = {}
        self.transcript: list[TranscriptEntry] = []
        self.latency: list[dict[str, Any]] = []
        self._ended = asyncio.Event()
        self.end_reason = ""
        self.failure_reason: str | None = None
        self._hanging_up = False
        self._last_activity = self.t0
        self._last_voiced = 0.0
        self._debtor_onset: float | None = None
        self._debtor_spoke = False
        self._agent_idle_since: float | None = None
        self._reprompts = 0
        self._stt_final_at: float | None = None
        self._greeting_released = False
        # Set once the call is ending on our side (goodbye, apology): the line is said in full,
        # again after an interruption (at most twice), and then we hang up; no more replies.
        self._closing_line: str | None = None
        self._closing_attempts = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self._background_tasks: set[asyncio.Task[Any]] = set()
        self.ignored = IgnoredFrames()
        # What went to Twilio lately, in order: (item, start ms for a frame, None for a mark).
        # A pause takes back the part Twilio had not played yet.
        self._recent: deque[tuple[_OutItem, float | None]] = deque(maxlen=RECENT_ITEMS)
        self._pending_clear = False

    # ---- clocks ----------------------------------------------------------------------------
    def _now(self) -> float:
        return self.loop.time()

    def _stream_ms(self, at: float | None = None) -> float:
        return ((self._now() if at is None else at) - self.t0) * 1000.0

    def _wall(self, at: float) -> datetime:
        return self.t0_wall + timedelta(seconds=at - self.t0)

    def _wall_ms(self, stream_ms: float) -> datetime:
        return self.t0_wall + timedelta(milliseconds=stream_ms)

    # ---- lifecycle -------------------------------------------------------------------------
    async def run(self) -> SessionResult:
        bind_call_id(self.call_id)
        spawn = self._spawn
        spawn(self.stt.run(self._on_stt), "stt")
        spawn(self.tts.run(self._on_tts), "tts")
        spawn(self._reader(), "reader")
        spawn(self._pacer(), "pacer")
        spawn(self._ticker(), "ticker")
        spawn(self._heartbeat(), "heartbeat")
        self._start_greeting()
        await self._ended.wait()
        return await self._shutdown()

    def _background(self, coro: Any) -> None:
        """Fire-and-forget work (a `clear`, a context close) that must not be awaited inline."""
        task = asyncio.create_task(coro)
        self._background_tasks.add(task)
        task.add_done_callback(self._background_tasks.discard)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"{name}:{self.call_id}")
        task.add_done_callback(self._task_done)
        self._tasks.append(task)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not self._ended.is_set():
            log.error("session_task_crashed", task=task.get_name(), error=repr(exc))
            self.failure_reason = self.failure_reason or f"internal: {exc!r}"[:500]
            self._end("internal_error")

    def _end(self, reason: str) -> None:
        if not self._ended.is_set():
            self.end_reason = reason
            self._ended.set()

    async def _shutdown(self) -> SessionResult:
        now = self._now()
        turn = self.current
        if turn is not None and not turn.committed:
            # The line went down mid-turn: keep what the debtor heard of it.
            self._cut_turn(turn, now, interrupted=turn.playing)
        turn_tasks = [t.task for t in self._turns_by_ctx.values() if t.task is not None]
        for task in turn_tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await self.stt.close()
        with contextlib.suppress(Exception):
            await self.tts.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *turn_tasks, return_exceptions=True)
        for task in list(self._background_tasks):
            task.cancel()
        # A finished task keeps its CancelledError, whose traceback keeps the coroutine's frame
        # and with it this session: a cycle only a full collection frees, and full collections
        # are rare (GC_THRESHOLDS). Held like that, every ended call kept its recording in
        # memory (RSS grew ~2.5 MB per call, 1.4 GB over a capacity run). Turn tasks let go of
        # their turns themselves (`_forget_task`).
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.transport.close()
        self.ignored.summary()
        if self.failure_reason:
            outcome = self.conv.finalize(EndReason.ERROR)
        elif not self._debtor_spoke:
            outcome = self.conv.finalize(EndReason.NO_ANSWER)
        else:
            outcome = self.conv.finalize(EndReason.HANGUP)
        ended = datetime.now(UTC)
        wav = await asyncio.to_thread(self.recorder.to_wav)
        self.recorder.release()  # the WAV holds it now; never two copies per ended call
        llm_usage = self.llm.usage
        own_seconds = max(0, int((ended - self.t0_wall).total_seconds() + 0.999))
        twilio_seconds = await self._twilio_duration()
        usage = {
            # Billed from Twilio's own duration; our stream clock only if Twilio has none yet.
            "telephony_seconds": own_seconds if twilio_seconds is None else twilio_seconds,
            "stt_audio_seconds": int(self.stt.audio_seconds + 0.999),
            "llm_input_tokens": llm_usage.input_tokens,
            "llm_cached_input_tokens": llm_usage.cached_input_tokens,
            "llm_output_tokens": llm_usage.output_tokens,
            "tts_characters": self.tts.characters,
        }
        return SessionResult(
            call_id=self.call_id,
            call_sid=self.start.call_sid,
            outcome=outcome,
            failure_reason=self.failure_reason,
            transcript=self.transcript,
            latency=self.latency,
            conversation=self.conv,
            recording_wav=wav,
            started_at=self.t0_wall,
            ended_at=ended,
            usage=usage,
            end_reason=self.end_reason,
        )

    async def _twilio_duration(self) -> int | None:
        """Twilio's duration for the call: it appears once Twilio has completed the call,
        moments after the stream stops, so ask a few times, briefly."""
        for attempt in range(4):
            try:
                seconds = await asyncio.wait_for(
                    self.telephony.call_duration(self.start.call_sid), 2.0
                )
            except Exception as exc:
                log.warning("twilio_duration_unavailable", error=repr(exc))
                return None
            if seconds is not None:
                return seconds
            await asyncio.sleep(0.25 * (attempt + 1))
        return None

    # ---- Twilio inbound ---------------------------------------------------------------------
    async def _reader(self) -> None:
        try:
            while True:
                # A frame Twilio would never send is ignored (logged, counted): it neither ends
                # the debtor's call nor reaches the recording, the STT or the turn policy.
                try:
                    msg = parse_message(await self.transport.receive_text())
                    event = msg["event"]
                    if event == "media":
                        self._on_media(msg)
                    elif event == "mark":
                        self._on_mark(parse_mark(msg))
                    elif event == "stop":
                        self._end("agent_hangup" if self._hanging_up else "remote_stop")
                        return
                    elif event != "dtmf":  # `connected` / `start` again
                        raise BadFrame("unexpected_event", event)
                except BadFrame as exc:
                    self.ignored.note(exc)
        except TransportClosed:
            self._end("agent_hangup" if self._hanging_up else "transport_closed")

    def _on_media(self, msg: dict[str, Any]) -> None:
        media = parse_media(msg)
        if media is None:
            return
        frame, ts = media
        now = self._now()
        stream_ms = (now - self.t0) * 1000.0
        if ts is not None and ts > stream_ms + MAX_TIMESTAMP_LEAD_MS:
            raise BadFrame("timestamp_ahead")
        self.recorder.debtor_frame(ts if ts is not None else stream_ms, frame)
        self.stt.send_audio(frame)
        r = self.vad.process(frame, int(stream_ms))
        actions: list[Action] = []
        if r.voiced:
            self._last_voiced = now
            self._last_activity = now
        if r.edge is VadEdge.START:
            if self._debtor_onset is None:
                self._debtor_onset = self.t0 + r.onset_ms / 1000.0
            actions = self.policy.vad_start(r.onset_ms)
            turn = self.current
            if turn is not None and turn.playing and not turn.cancelled:
                self._pause(turn)
        elif r.edge is VadEdge.END:
            actions = self.policy.vad_end()
        elif self.vad.speaking and r.voiced:
            actions = self.policy.vad_voiced(r.voiced_ms)
        if actions:
            self._apply(actions)

    def _on_mark(self, name: str) -> None:
        item = self._marks.pop(name, None)
        if item is None:
            return
        turn = item.turn
        if turn.cancelled:
            return  # echoed because of our `clear`, not played
        turn.heard_ms_by_mark = max(turn.heard_ms_by_mark, item.mark_offset_ms)
        if item.end:
            self._turn_played(turn)

    # ---- Deepgram ---------------------------------------------------------------------------
    def _on_stt(self, event: SttEvent) -> None:
        now = self._now()
        actions: list[Action] = []
        if isinstance(event, SttTranscript):
            if event.text.strip():
                self._last_activity = now
                if self._debtor_onset is None:
                    self._debtor_onset = now
            if event.is_final:
                self._stt_final_at = now
                actions = self.policy.stt_final(event.text, event.speech_final, event.from_finalize)
            else:
                actions = self.policy.stt_interim(event.text)
        elif isinstance(event, SttUtteranceEnd):
            self._stt_final_at = self._stt_final_at or now
            actions = self.policy.utterance_end()
        elif isinstance(event, SttSpeechStarted):
            self._last_activity = now
        elif isinstance(event, SttFailed):
            self._vendor_failure("stt", event.error)
        if actions:
            self._apply(actions)

    # ---- policy actions ---------------------------------------------------------------------
    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendFinalize):
                self.stt.finalize()
            elif isinstance(action, Interrupt):
                self._interrupt(action)
            elif isinstance(action, CancelPending):
                self._cancel_pending(action.reason)
            elif isinstance(action, StartResponse):
                self._on_debtor_turn_end(action.text)

    def _interrupt(self, action: Interrupt) -> None:
        turn = self.current
        if turn is None or turn.cancelled:
            return
        now = self._now()
        onset = self.t0 + action.onset_ms / 1000.0 if action.onset_ms is not None else now
        turn.timings.barge_in_onset_at = min(onset, now)
        turn.timings.barge_in_detected_at = now
        if turn.end_call_after and self._closing_line is None:
            # The model's goodbye was cut off: the call still ends, with the core's closing line.
            self._closing_line = self.conv.closing_line()
        self._cut_turn(turn, now, interrupted=True)
        log.info("barge_in", reason=action.reason, turn=turn.id)

    def _cut_turn(self, turn: AgentTurn, now: float, *, interrupted: bool) -> None:
        """Stop a turn now: cancel its producer, `clear` Twilio, keep only what was heard."""
        turn.cancelled = True
        if turn.task is not None:
            turn.task.cancel()
        self._close_context(turn)
        self._drop_queued(turn)
        now_ms = self._stream_ms(now)
        if turn.playing:
            if turn.paused_at is None:  # paused: Twilio holds nothing of it already
                self._send_soon(self.media_out.clear())
            if turn.timings.barge_in_detected_at is not None:
                # The early clear of the pause this barge-in confirmed, if it paused us.
                turn.timings.clear_sent_at = turn.paused_at or self._now()
            self.clock.clear(now_ms)
            self.recorder.agent_cleared(now_ms)
            heard_ms = self._heard_ms(turn, now_ms)
            text = self._heard_text(turn, heard_ms)
            self._commit_agent_turn(turn, text, interrupted=interrupted, end_stream_ms=now_ms)
        else:
            self._forget_turn(turn)
        self.policy.response_finished()
        self._agent_idle_since = now

    def _cancel_pending(self, reason: str) -> None:
        turn = self.current
        if turn is None:
            return
        if turn.playing:
            self._cut_turn(turn, self._now(), interrupted=True)
            return
        log.info("reply_dropped", reason=reason, turn=turn.id)
        turn.cancelled = True
        if turn.task is not None:
            turn.task.cancel()
        self._close_context(turn)
        self._drop_queued(turn)
        self._forget_turn(turn)

    def _forget_turn(self, turn: AgentTurn) -> None:
        turn.committed = True
        self._turns_by_ctx.pop(turn.context_id, None)
        if self.current is turn:
            self.current = None

    def _drop_queued(self, turn: AgentTurn) -> None:
        if any(item.turn is turn for item in self._out):
            self._out = deque(item for item in self._out if item.turn is not turn)

    def _close_context(self, turn: AgentTurn) -> None:
        self._background(self._safe(self.tts.close_context(turn.context_id)))

    @staticmethod
    async def _safe(coro: Any) -> None:
        with contextlib.suppress(Exception):
            await coro

    # ---- turns --------------------------------------------------------------------------
    def _new_turn(self, kind: str, trigger_at: float, fixed_text: str | None = None) -> AgentTurn:
        self._turn_seq += 1
        turn = AgentTurn(
            id=self._turn_seq,
            kind=kind,
            context_id=f"{self.start.call_sid[-8:] or 'ctx'}-{self._turn_seq}",
            timings=TurnTimings(kind=kind, trigger_at=trigger_at),
            fixed_text=fixed_text,
        )
        self._turns_by_ctx[turn.context_id] = turn
        self.current = turn
        self._agent_idle_since = None
        return turn

    def _start_greeting(self) -> None:
        turn = self._new_turn("greeting", self.t0, fixed_text=self.conv.greeting_line())
        turn.held = True
        self.policy.response_started(cancellable=False)
        self._start_producing(turn)

    def _maybe_release_greeting(self, now: float) -> None:
        """Greet once the callee's "Hello?" is over, or after a short wait if they say nothing."""
        p = self.policy
        if now - self.t0 >= 3 * self.tuning.greeting_wait_s:
            self._release_greeting()  # the output gate still waits for a pause in any speech
            return
        if p.user_vad or p.stt_active:
            return
        if p.pending:
            self._release_greeting()
        elif self._last_voiced:
            if now - self._last_voiced >= 0.7:
                self._release_greeting()
        elif now - self.t0 >= self.tuning.greeting_wait_s:
            self._release_greeting()

    def _release_greeting(self) -> None:
        self._greeting_released = True
        turn = self.current
        if turn is not None:
            turn.held = False
            self._out_wake.set()

    def _on_debtor_turn_end(self, text: str) -> None:
        """The policy ended the debtor's turn (StartResponse): record it and start replying."""
        now = self._now()
        if self._hanging_up or self.conv.finished or self._closing_line is not None:
            self.policy.response_finished()
            return
        kind = "reply" if text else "resume"
        speech_end = self._last_voiced if self._last_voiced else None
        onset = self._debtor_onset
        if speech_end is not None and onset is not None and speech_end < onset:
            speech_end = None  # the VAD never heard this utterance (quiet speaker)
        if text:
            self._debtor_spoke = True
            self._reprompts = 0
            started = onset if onset is not None else now
            ended = speech_end if speech_end is not None else now
            last = self.transcript[-1] if self.transcript else None
            if last is not None and last.speaker == "debtor":
                # The debtor went on after a pause that dropped our reply: one turn, not two.
                last.text = f"{last.text} {text}"
                last.ended_at = self._wall(ended)
            else:
                self.transcript.append(
                    TranscriptEntry(
                        "debtor",
                        text,
                        self.conv.state.value,
                        self._wall(started),
                        self._wall(ended),
                    )
                )
            self.conv.add_debtor_turn(text)
        self._debtor_onset = None
        trigger = speech_end or self._stt_final_at or now
        fixed: str | None = None
        end_after = False
        if text and self.conv.check_derailment():
            fixed, end_after = self.conv.closing_line(), True
            self._closing_line = fixed
            self._closing_attempts += 1
        turn = self._new_turn(kind, trigger, fixed_text=fixed)
        turn.end_call_after = end_after
        t = turn.timings
        if text and speech_end is not None:
            t.speech_end_at = speech_end
            t.speech_end_wall = self._wall(speech_end)
            t.stt_final_at = max(self._stt_final_at or now, speech_end)
            t.vendor_waits.append((speech_end, t.stt_final_at))
        self._start_producing(turn)

    def _start_fixed_turn(self, kind: str, text: str, *, end_call_after: bool) -> None:
        if self.current is not None and not self.current.committed:
            self._cut_turn(self.current, self._now(), interrupted=False)
        turn = self._new_turn(kind, self._now(), fixed_text=text)
        turn.end_call_after = end_call_after
        turn.held = not self._greeting_released  # nothing before the callee's "Hello?"
        if end_call_after:
            self._closing_line = text
            self._closing_attempts += 1
        self.policy.response_started()
        self._start_producing(turn)

    def _start_producing(self, turn: AgentTurn) -> None:
        task = asyncio.create_task(self._produce(turn))
        turn.task = task
        task.add_done_callback(functools.partial(_forget_task, turn))

    async def _produce(self, turn: AgentTurn) -> None:
        """Text for one agent turn → TTS context. Cancelled on barge-in."""
        try:
            await self.tts.open_context(turn.context_id)
            if turn.fixed_text is not None:
                await self._speak(turn, turn.fixed_text)
            else:
                await self._llm_turn(turn)
            turn.text_complete = True
            turn.last_tts_activity = self._now()
            if not turn.sentences:
                await self.tts.close_context(turn.context_id)
                self._turn_played(turn)
                return
            self._check_tts_complete(turn)
        except asyncio.CancelledError:
            raise
        except LlmError as exc:
            self._vendor_failure("llm", str(exc))
        except TtsUnavailable as exc:
            self._vendor_failure("tts", str(exc))
        except Exception as exc:  # a bug must not leave the line silent: apologise and end
            log.exception("turn_failed", turn=turn.id)
            self._vendor_failure("internal", repr(exc))

    async def _speak(self, turn: AgentTurn, sentence: str) -> None:
        text = speakable(sentence)
        if not text:
            return
        now = self._now()
        t = turn.timings
        if t.llm_request_at is not None and t.llm_first_sentence_at is None:
            t.llm_first_sentence_at = now
            t.vendor_waits.append((t.llm_request_at, now))
        t.mark_once("tts_first_text_at", now)
        turn.sentences.append(text)
        turn.sent_nonspace += _nonspace(text)
        turn.last_tts_activity = now
        await self.tts.send_text(turn.context_id, text, flush=True)

    async def _llm_turn(self, turn: AgentTurn) -> None:
        round_texts: dict[str, str] = {}
        end_call = False
        for _ in range(self.tuning.max_tool_rounds):
            messages = _with_round_texts(self.conv.llm_messages(), round_texts)
            spoken = len(turn.sentences)
            try:
                round_text, tool_calls = await self._llm_round(turn, messages)
            except LlmError as exc:
                # The stream broke (or stalled) after it started. If none of its words were
                # spoken yet, nothing is lost by asking again (once); else the session ends
                # the call with the apology rather than say half a reply twice.
                if not exc.mid_stream or len(turn.sentences) > spoken:
                    raise
                log.warning("llm_round_retry", error=str(exc)[:300])
                round_text, tool_calls = await self._llm_round(turn, messages)
            if not tool_calls:
                break
            text = "".join(round_text).strip()
            for call in tool_calls:
                result = self.conv.add_tool_call(call.id, call.name, call.arguments)
                end_call = end_call or result.end_call
                log.info("tool_call", tool=call.name, ok=result.ok, state=result.state.value)
            if text:
                round_texts[tool_calls[0].id] = text
            if end_call or self.conv.finished:
                turn.end_call_after = True
                if turn.sentences:
                    break
                # Nothing said yet: one more round for the goodbye (tools are refused now).
        if (end_call or self.conv.finished) and not turn.sentences:
            await self._speak(turn, self.conv.closing_line())
        if end_call or self.conv.finished:
            turn.end_call_after = True

    async def _llm_round(
        self, turn: AgentTurn, messages: list[dict[str, Any]]
    ) -> tuple[list[str], list[ToolCall]]:
        """One LLM request: its sentences are spoken as they complete; returns the text pieces
        and the tool calls it asked for."""
        splitter = SentenceSplitter()
        turn.timings.mark_once("llm_request_at", self._now())
        round_text: list[str] = []
        tool_calls: list[ToolCall] = []
        first = True
        stream = self.llm.stream(messages, self.conv.tools())
        try:
            async for event in stream:
                if first:
                    first = False
                    turn.timings.mark_once("llm_first_token_at", self._now())
                if isinstance(event, TextDelta):
                    round_text.append(event.text)
                    for sentence in splitter.feed(event.text):
                        await self._speak(turn, sentence)
                elif isinstance(event, Completed):
                    tool_calls = event.tool_calls
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        turn.timings.llm_done_at = self._now()
        tail = splitter.flush()
        if tail:
            await self._speak(turn, tail)
        return round_text, tool_calls

    # ---- TTS audio ----------------------------------------------------------------------
    def _on_tts(self, event: TtsEvent) -> None:
        if isinstance(event, TtsFailed):
            self._vendor_failure("tts", event.error)
            return
        if isinstance(event, TtsContextLost):
            for ctx in event.context_ids:
                turn = self._turns_by_ctx.get(ctx)
                if turn is not None and not turn.cancelled and not turn.tts_done:
                    self._background(self._resend(turn))
            return
        turn = self._turns_by_ctx.get(event.context_id)
        if turn is None or turn.cancelled:
            return
        now = self._now()
        turn.last_tts_activity = now
        if isinstance(event, TtsAudio):
            if turn.tts_done and not self._reopen_tail(turn):
                return  # trailing audio after the turn's end mark went out: nothing to add
            self._on_tts_audio(turn, event.audio, event.alignment, now)
        elif isinstance(event, TtsDone):
            self._on_tts_done(turn)

    def _on_tts_audio(
        self, turn: AgentTurn, audio: bytes, alignment: Alignment | None, now: float
    ) -> None:
        t = turn.timings
        if t.tts_first_byte_at is None:
            t.tts_first_byte_at = now
            if t.tts_first_text_at is not None:
                t.vendor_waits.append((t.tts_first_text_at, now))
        if alignment is not None:
            base = turn.audio_ms_received
            mids = turn.char_mids
            end = turn.aligned_end_ms
            for c, s, d in zip(
                alignment.chars, alignment.start_ms, alignment.duration_ms, strict=False
            ):
                end = base + s + d
                if not c.isspace():
                    mids.append(base + s + d / 2)
            turn.aligned_end_ms = max(turn.aligned_end_ms, end)
            turn.aligned_chars += len(alignment.chars)
            turn.aligned_nonspace += sum(1 for c in alignment.chars if not c.isspace())
        else:
            turn.alignment_missing = True
        turn.audio_ms_received += len(audio) / 8.0
        frames = turn.chunker.push(audio)
        if frames:
            self._out.append(_OutItem(turn, audio=frames))
        turn.mark_seq += 1
        self._out.append(_OutItem(turn, mark=f"{turn.context_id}.{turn.mark_seq}"))
        self._out_wake.set()
        if turn.tts_done:
            self._on_tts_done(turn, force=True)
        else:
            self._check_tts_complete(turn)

    def _reopen_tail(self, turn: AgentTurn) -> bool:
        """More audio after we judged a turn complete: take its end mark back if not yet sent."""
        for i, item in enumerate(self._out):
            if item.turn is turn and item.end:
                del self._out[i]
                return True
        return False

    def _check_tts_complete(self, turn: AgentTurn) -> None:
        """Has all of the turn's text come back as audio?

        The alignment tells: once it covers every character we sent, the turn's audio is
        complete and its context is closed. Without alignment we close the context and wait
        for `isFinal` (the API keeps flushing text already flushed). A `close_context` is never
        sent earlier, because the simulator drops audio not yet sent on close (see docs).
        """
        if not turn.text_complete or turn.tts_done or turn.cancelled:
            return
        if turn.alignment_missing:
            if not turn.close_sent:
                turn.close_sent = True
                self._close_context(turn)
            return
        if (
            turn.aligned_nonspace >= turn.sent_nonspace
            and turn.audio_ms_received + FRAME_MS >= turn.aligned_end_ms
        ):
            self._on_tts_done(turn)
            turn.close_sent = True
            self._close_context(turn)

    def _on_tts_done(self, turn: AgentTurn, *, force: bool = False) -> None:
        # An isFinal before all text went out can only be a server-side close: ignore it (the
        # stall watchdog or the resend path deals with the turn).
        if not force and (turn.tts_done or not turn.text_complete):
            return
        turn.tts_done = True
        tail = turn.chunker.flush()
        if tail is not None:
            self._out.append(_OutItem(turn, audio=tail))
        self._out.append(_OutItem(turn, mark=f"{turn.context_id}.end", end=True))
        self._out_wake.set()

    async def _resend(self, turn: AgentTurn) -> None:
        """The TTS socket dropped mid-turn: speak the not-yet-synthesized rest in a new context."""
        if turn.resends >= 2:
            self._vendor_failure("tts", "context lost repeatedly")
            return
        turn.resends += 1
        sent = " ".join(turn.sentences)
        remainder = (
            unspoken_rest(sent, turn.aligned_nonspace) if turn.aligned_chars else sent.strip()
        )
        old = turn.context_id
        turn.context_id = f"{old.split('~')[0]}~{turn.resends}"
        self._turns_by_ctx.pop(old, None)
        self._turns_by_ctx[turn.context_id] = turn
        try:
            await self.tts.open_context(turn.context_id)
            if remainder:
                await self.tts.send_text(turn.context_id, remainder, flush=True)
        except TtsUnavailable as exc:
            self._vendor_failure("tts", str(exc))

    # ---- outbound pacing --------------------------------------------------------------
    async def _pacer(self) -> None:
        lead = self.tuning.lead_ms
        per_message = self.tuning.frames_per_message
        while True:
            if self._pending_clear:
                # Before anything else goes out: a frame sent ahead of it would be dropped.
                self._pending_clear = False
                await self._send(self.media_out.clear())
                continue
            if not self._out:
                self._out_wake.clear()
                await self._out_wake.wait()
                continue
            item = self._out[0]
            turn = item.turn
            if turn.cancelled:
                self._out.popleft()
                continue
            if item.audio is None:
                self._out.popleft()
                assert item.mark is not None
                if not turn.playing and not item.end:
                    continue  # nothing of this turn played yet: the mark would say nothing
                item.mark_offset_ms = turn.audio_ms_sent
                self._marks[item.mark] = item
                self._recent.append((item, None))
                await self._send(self.media_out.mark(item.mark))
                continue
            if not turn.playing and (turn.held or not self.policy.can_speak()):
                # Never start talking over the debtor (or before the greeting is released).
                await asyncio.sleep(0.01)
                continue
            if turn.playing and (self.policy.user_vad or self._still_paused(turn)):
                # Duck: the debtor just made a sound. Feed Twilio nothing new until the policy
                # decides: a confirmed barge-in clears the rest, a cough lets us carry on. The
                # debtor hears at most the lead already queued instead of the whole
                # confirmation window.
                await asyncio.sleep(0.01)
                continue
            now_ms = self._stream_ms()
            wait_ms = self.clock.wait_before_next(now_ms, lead, FRAME_MS * per_message)
            if wait_ms > 0:
                self._clear_wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_ms / 1000.0):
                        await self._clear_wake.wait()
                continue
            # Up to `per_message` frames of this turn, as far as they are here already (a
            # turn's first audio never waits for a second frame).
            audio = bytearray()
            budget = FRAME_BYTES * per_message
            while len(audio) < budget and self._out:
                item = self._out[0]
                if item.turn is not turn or item.audio is None:
                    break
                take = budget - len(audio)
                if len(item.audio) > take:
                    sent = _OutItem(turn, audio=item.audio[:take])
                    item.audio = item.audio[take:]
                else:
                    sent = self._out.popleft()
                assert sent.audio is not None
                start_ms = self.clock.schedule(now_ms, len(sent.audio) / BYTES_PER_MS)
                self._place_audio(turn, sent.audio, start_ms)
                self._recent.append((sent, start_ms))
                audio += sent.audio
            turn.paused_at = None  # playing again
            await self._send(self.media_out.media(bytes(audio)))

    def _pause(self, turn: AgentTurn) -> None:
        """The debtor made a sound while the agent talks: silence the agent now (`clear`), before
        the policy has decided. What Twilio had queued but not played goes back to the front of
        our queue, so if it was only a cough the agent carries on without losing a word; a
        confirmed barge-in then drops it with the rest."""
        now_ms = self._stream_ms()
        recent = list(self._recent)
        first = next(
            (
                i
                for i, (item, start) in enumerate(recent)
                if item.turn is turn
                and item.audio is not None
                and start is not None
                and _frames_started(start, now_ms) * FRAME_BYTES < len(item.audio)
            ),
            None,
        )
        if first is None:
            return  # nothing of this turn left unplayed at Twilio
        kept = recent[:first]
        back = [item for item, _ in recent[first:] if item.turn is turn]
        partial, start = recent[first]
        assert partial.audio is not None and start is not None
        cut = _frames_started(start, now_ms) * FRAME_BYTES
        if cut:
            # Its first frames have started playing: they stay played, the rest goes back.
            kept.append((_OutItem(turn, audio=partial.audio[:cut]), start))
            back[0] = _OutItem(turn, audio=partial.audio[cut:])
        self._recent = deque(kept, maxlen=RECENT_ITEMS)
        self._pending_clear = True
        self._clear_wake.set()
        turn.paused_at = self._now()
        self.clock.clear(now_ms)
        self.recorder.agent_cleared(now_ms)
        turn.audio_ms_sent -= sum(len(item.audio) for item in back if item.audio) / BYTES_PER_MS
        self._trim_segments(turn, now_ms)
        for item in back:
            if item.mark is not None:
                # Twilio echoes it for the clear, unplayed: forget it, send it again renamed.
                self._marks.pop(item.mark, None)
                turn.mark_seq += 1
                item.mark = f"{item.mark.rsplit('~', 1)[0]}~{turn.mark_seq}"
        self._out.extendleft(reversed(back))
        self._out_wake.set()

    def _still_paused(self, turn: AgentTurn) -> bool:
        """After a pause, carry on only once the debtor has been quiet for a moment: the VAD
        can flicker between words, and each flicker would let a burst of audio out."""
        return turn.paused_at is not None and self._now() - self._last_voiced < RESUME_AFTER_S

    @staticmethod
    def _trim_segments(turn: AgentTurn, now_ms: float) -> None:
        """Forget the frames that were to start at or after `now_ms` (they were cleared)."""
        kept: list[_Segment] = []
        for seg in turn.segments:
            if seg.stream_ms >= now_ms:
                continue
            started_ms = _frames_started(seg.stream_ms, now_ms) * FRAME_MS
            seg.duration_ms = min(seg.duration_ms, started_ms)
            kept.append(seg)
        turn.segments = kept

    def _place_audio(self, turn: AgentTurn, audio: bytes, start_ms: float) -> None:
        duration_ms = len(audio) / BYTES_PER_MS
        seg = turn.segments[-1] if turn.segments else None
        if seg is not None and abs(seg.stream_ms + seg.duration_ms - start_ms) < 1.0:
            seg.duration_ms += duration_ms
        else:
            turn.segments.append(_Segment(turn.audio_ms_sent, start_ms, duration_ms))
        turn.audio_ms_sent += duration_ms
        self.recorder.agent_frame(start_ms, audio)
        if not turn.playing:
            turn.playing = True
            turn.started_stream_ms = start_ms
            turn.timings.first_audio_out_at = self._now()
            self.policy.audio_started()
            if turn.kind == "greeting" and self.policy.pending:
                # The callee's "Hello?" came first; keep the transcript in spoken order.
                text = " ".join(self.policy.pending)
                self.policy.pending = []
                self._record_early_debtor_turn(text)

    def _record_early_debtor_turn(self, text: str) -> None:
        now = self._now()
        onset = self._debtor_onset or now
        end = self._last_voiced or now
        self.transcript.append(
            TranscriptEntry(
                "debtor", text, self.conv.state.value, self._wall(onset), self._wall(end)
            )
        )
        self.conv.add_debtor_turn(text)
        self._debtor_spoke = True
        self._debtor_onset = None

    async def _send(self, data: str) -> None:
        async with self._send_lock:
            try:
                await self.transport.send_text(data)
            except TransportClosed:
                self._end("agent_hangup" if self._hanging_up else "transport_closed")

    def _send_soon(self, data: str) -> None:
        self._background(self._send(data))

    # ---- playback accounting ------------------------------------------------------------
    def _heard_ms(self, turn: AgentTurn, now_ms: float) -> float:
        """Audio of `turn` played by `now_ms`: our playout clock, floored by returned marks.

        Our clock assumes playback starts when a frame is sent; Twilio starts it one network
        hop later, but our `clear` also arrives one hop later, so the two cancel out.
        """
        by_clock = sum(min(max(now_ms - s.stream_ms, 0.0), s.duration_ms) for s in turn.segments)
        return min(max(by_clock, turn.heard_ms_by_mark), turn.audio_ms_sent)

    @staticmethod
    def _heard_text(turn: AgentTurn, heard_ms: float) -> str:
        return heard_text(turn.char_mids, turn.text, heard_ms, turn.audio_ms_received)

    def _turn_played(self, turn: AgentTurn) -> None:
        """All of a turn's audio was played (its last mark came back) or it had none."""
        if turn.committed:
            return
        end_ms = self._stream_ms()
        if turn.segments:
            last = turn.segments[-1]
            end_ms = last.stream_ms + last.duration_ms
        if turn.sentences:
            self._commit_agent_turn(turn, turn.text, interrupted=False, end_stream_ms=end_ms)
        else:
            self._forget_turn(turn)
        self.policy.response_finished()
        self._agent_idle_since = self._now()
        if turn.end_call_after or self.conv.finished:
            self._hangup()
        elif self.policy.pending and not self.policy.user_vad:
            # Words that arrived while the reply was being prepared are answered now.
            self._apply(self.policy.silence_timeout())

    def _commit_agent_turn(
        self, turn: AgentTurn, text: str, *, interrupted: bool, end_stream_ms: float
    ) -> None:
        if turn.committed:
            return
        turn.committed = True
        self._turns_by_ctx.pop(turn.context_id, None)
        if self.current is turn:
            self.current = None
        start_ms = turn.started_stream_ms if turn.started_stream_ms is not None else end_stream_ms
        index = len(self.transcript)
        self.transcript.append(
            TranscriptEntry(
                "agent",
                text,
                self.conv.state.value,
                self._wall_ms(start_ms),
                self._wall_ms(max(end_stream_ms, start_ms)),
                interrupted,
            )
        )
        self.conv.add_agent_turn(text, interrupted=interrupted)
        self.latency.append(turn.timings.record(index))

    # ---- failures and the end of the call ---------------------------------------------
    def _vendor_failure(self, vendor: str, error: str) -> None:
        if self._hanging_up or self._ended.is_set():
            return
        log.warning("vendor_failure", vendor=vendor, error=error[:300])
        self.failure_reason = self.failure_reason or f"{vendor} failure: {error}"[:1000]
        if vendor == "tts":
            if self.current is not None and not self.current.committed:
                self._cut_turn(self.current, self._now(), interrupted=False)
            self._hangup()
            return
        # The voice still works: apologise and end the call rather than go silent.
        self._start_fixed_turn("apology", APOLOGY_LINE, end_call_after=True)

    def _hangup(self) -> None:
        if self._hanging_up:
            return
        self._hanging_up = True
        self._background(self._do_hangup())

    async def _do_hangup(self) -> None:
        try:
            await asyncio.wait_for(self.telephony.hangup(self.start.call_sid), 5.0)
        except Exception as exc:
            log.warning("hangup_failed", error=repr(exc))
        try:
            await asyncio.wait_for(self._ended.wait(), self.tuning.hangup_grace_s)
        except TimeoutError:
            self._end("agent_hangup")

    # ---- timers -------------------------------------------------------------------------
    async def _ticker(self) -> None:
        tuning = self.tuning
        while True:
            await asyncio.sleep(0.1)
            now = self._now()
            if not self._greeting_released:
                self._maybe_release_greeting(now)
            turn = self.current
            if (
                turn is not None
                and turn.text_complete
                and not turn.tts_done
                and not turn.cancelled
                and now - turn.last_tts_activity > tuning.tts_stall_s
            ):
                log.warning("tts_stalled", turn=turn.id)
                turn.text_complete = True
                self._on_tts_done(turn)
            if self._hanging_up or turn is not None or self.policy.user_vad:
                continue
            quiet = now - max(self._last_activity, self._agent_idle_since or 0.0)
            if self._closing_line is not None:
                if quiet >= tuning.resume_after_s:
                    if self._closing_attempts >= 2:
                        self._hangup()
                    else:
                        self._start_fixed_turn("closing", self._closing_line, end_call_after=True)
                continue
            if self.policy.pending or self.policy.interrupted:
                if quiet >= tuning.resume_after_s and not self.policy.stt_active:
                    self._apply(self.policy.silence_timeout())
                continue
            if self._agent_idle_since is not None and quiet >= tuning.silence_reprompt_s:
                self._reprompts += 1
                if self._reprompts > tuning.max_reprompts:
                    self._start_fixed_turn("goodbye", SILENT_GOODBYE_LINE, end_call_after=True)
                else:
                    self._start_fixed_turn("reprompt", REPROMPT_LINE, end_call_after=False)

    async def _heartbeat(self) -> None:
        if self._heartbeat_fn is None:
            return
        while True:
            try:
                await self._heartbeat_fn()
            except Exception as exc:  # a missed heartbeat is not worth ending a call
                log.warning("heartbeat_failed", error=repr(exc))
            await asyncio.sleep(self.tuning.heartbeat_s)


def _nonspace(text: str) -> int:
    return sum(1 for c in text if not c.isspace())


def unspoken_rest(text: str, synthesized_nonspace: int) -> str:
    """What of `text` is left after its first `synthesized_nonspace` non-space characters came
    back as audio, from the start of the word they end in: a word cut mid-way is said again
    whole. Counted without spaces, because the alignment's spacing between generations is not
    our text's."""
    if synthesized_nonspace <= 0:
        return text.strip()
    seen = 0
    for i, c in enumerate(text):
        if c.isspace():
            continue
        seen += 1
        if seen == synthesized_nonspace:
            cut = i + 1
            if cut < len(text) and not text[cut].isspace():
                cut = text.rfind(" ", 0, cut) + 1  # mid-word: back to its start
            return text[cut:].strip()
    return ""


def _forget_task(turn: AgentTurn, task: asyncio.Task[None]) -> None:
    """A finished turn task lets go of its turn: a cancelled one keeps its traceback, whose
    frames keep the session, and turn -> task -> traceback -> turn is a cycle that only a full
    collection frees."""
    if turn.task is task:
        turn.task = None


def heard_text(char_mids: Sequence[float], full_text: str, heard_ms: float, audio_ms: float) -> str:
    """The words of a turn the debtor heard by `heard_ms` of its audio.

    With alignment (ElevenLabs char timings, flattened over the turn: the middle of each
    non-space character) we count the characters whose middle was played and cut our own text
    after as many non-space characters (the alignment's own spacing between generations is not
    reliable); without it, the cut is in proportion to the audio played. A word counts as heard
    if at least half of it was.
    """
    if heard_ms <= 0 or not full_text:
        return ""
    words = full_text.split()
    if char_mids:
        heard = sum(1 for mid in char_mids if mid <= heard_ms)
    elif audio_ms > 0:
        heard = round(_nonspace(full_text) * min(1.0, heard_ms / audio_ms))
    else:
        return ""
    kept: list[str] = []
    for word in words:
        if heard <= 0:
            break
        if heard >= len(word) or heard * 2 >= len(word):
            kept.append(word)
        heard -= len(word)
    return " ".join(kept)


def _with_round_texts(
    messages: list[dict[str, Any]], round_texts: dict[str, str]
) -> list[dict[str, Any]]:
    """Put text the model said alongside a tool call back into that assistant message.

    The core records tool calls as content-less assistant messages and the agent's words only
    once the turn was heard; within one turn the model must still see what it already said, or
    it would say it again after the tool result.
    """
    if not round_texts:
        return messages
    for msg in messages:
        if msg.get("role") != "assistant" or not msg.get("tool_calls"):
            continue
        first_id = msg["tool_calls"][0].get("id")
        if first_id in round_texts and not msg.get("content"):
            msg["content"] = round_texts[first_id]
    return messages
