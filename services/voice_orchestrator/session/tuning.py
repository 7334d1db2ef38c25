"""`SessionTuning`: the knobs of one live call's loop, with the reasons for their values."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.voice_orchestrator.media.vad import VadConfig

from .flow import FlowTiming
from .voicemail import VoicemailPlan


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
    # The reply's first words go to TTS at the first comma this many characters in, not at the
    # end of the first sentence (~80 ms sooner at 90 tokens/s); None: whole sentences only. Three
    # lets an opening "Yes," / "Okay," / "Sure," go alone: 8 left 8 of 79 reply turns in the
    # jittery bench waiting ~90 ms more for "Yes, a partial payment is fine."
    first_clause_chars: int | None = 3
    barge_in_min_speech_ms: int = 200
    vad: VadConfig = field(default_factory=VadConfig)
    # What to do on an answering machine (session/voicemail.py); None: AMD verdicts are only
    # recorded, the call goes on as if a person answered.
    voicemail: VoicemailPlan | None = None

    def flow_timing(self) -> FlowTiming:
        return FlowTiming(
            greeting_wait_s=self.greeting_wait_s,
            resume_after_s=self.resume_after_s,
            silence_reprompt_s=self.silence_reprompt_s,
            max_reprompts=self.max_reprompts,
        )
