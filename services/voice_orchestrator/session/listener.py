"""Listener: the debtor's side of the call. Each inbound frame goes to the recording, to
Deepgram and to our energy VAD; VAD edges and Deepgram's events go to the turn policy, whose
actions the session carries out. Remembers when the debtor last made a sound and when the
current utterance started."""

from __future__ import annotations

from services.voice_orchestrator.media.recorder import StereoRecorder
from services.voice_orchestrator.media.vad import EnergyVad, VadConfig, VadEdge
from services.voice_orchestrator.ports import (
    SpeechToText,
    SttEvent,
    SttSpeechStarted,
    SttTranscript,
    SttUtteranceEnd,
)
from services.voice_orchestrator.turns import Action, TurnPolicy
from services.voice_orchestrator.vendors.twilio import BadFrame

# A debtor frame stamped further ahead of our stream clock than this is not Twilio's (its clock
# starts when it sends `start`, before ours): placing it would grow the recording to that time.
MAX_TIMESTAMP_LEAD_MS = 10_000.0


class Listener:
    def __init__(
        self,
        stt: SpeechToText,
        recorder: StereoRecorder,
        policy: TurnPolicy,
        vad: VadConfig,
        *,
        t0: float,
    ) -> None:
        self.stt = stt
        self.recorder = recorder
        self.policy = policy
        self.vad = EnergyVad(vad)
        self.t0 = t0
        self.last_voiced = 0.0  # loop time of the last voiced frame; 0: none yet
        self.last_activity = t0  # last voiced frame or transcribed word
        self.onset: float | None = None  # start of the utterance not yet answered
        self.stt_final_at: float | None = None
        self.latest_interim = ""  # Deepgram's newest interim words not yet final
        self.vad_end_at: float | None = None  # the VAD last heard the debtor stop
        self._paused = False  # silent for the VAD's pause_frames, not yet its end

    def on_media(self, frame: bytes, ts: float | None, now: float) -> tuple[list[Action], bool]:
        """One inbound frame. Returns the policy's actions and whether the VAD heard speech
        start, or resume after a pause (the session pauses the agent at once and drops an early
        request)."""
        stream_ms = (now - self.t0) * 1000.0
        if ts is not None and ts > stream_ms + MAX_TIMESTAMP_LEAD_MS:
            raise BadFrame("timestamp_ahead")
        self.recorder.debtor_frame(ts if ts is not None else stream_ms, frame)
        self.stt.send_audio(frame)
        r = self.vad.process(frame, int(stream_ms))
        if r.voiced:
            self.last_voiced = now
            self.last_activity = now
        if r.edge is VadEdge.START:
            if self.onset is None:
                self.onset = self.t0 + r.onset_ms / 1000.0
            return self.policy.vad_start(r.onset_ms), True
        if r.edge is VadEdge.END:
            self._paused = False
            return self.policy.vad_end(), False
        if r.edge is VadEdge.PAUSE:
            self._paused = True
            return self.policy.vad_pause(), False
        if self.vad.speaking and r.voiced:
            # Voice again after a pause: the debtor goes on, like a new start.
            resumed, self._paused = self._paused, False
            return self.policy.vad_voiced(r.voiced_ms), resumed
        return [], False

    def on_stt(self, event: SttEvent, now: float) -> list[Action]:
        if isinstance(event, SttTranscript):
            if event.text.strip():
                self.last_activity = now
                if self.onset is None:
                    self.onset = now
            if event.is_final:
                self.stt_final_at = now
                self.latest_interim = ""
                return self.policy.stt_final(event.text, event.speech_final, event.from_finalize)
            self.latest_interim = event.text
            return self.policy.stt_interim(event.text)
        if isinstance(event, SttUtteranceEnd):
            self.stt_final_at = self.stt_final_at or now
            return self.policy.utterance_end()
        if isinstance(event, SttSpeechStarted):
            self.last_activity = now
        return []

    def utterance_bounds(self, now: float) -> tuple[float | None, float | None]:
        """(onset, speech end) of the utterance that just ended; speech end is None when the
        VAD never heard it (a quiet speaker: Deepgram did)."""
        speech_end = self.last_voiced if self.last_voiced else None
        onset = self.onset
        if speech_end is not None and onset is not None and speech_end < onset:
            speech_end = None
        return onset, speech_end
