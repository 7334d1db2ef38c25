"""Twilio answering-machine detection (AMD) on the simulated phone.

Only asynchronous AMD is simulated (`AsyncAmd=true`): the call connects and media flows at once,
and the verdict is posted, signed like every callback, to `AsyncAmdStatusCallback` with
`CallSid`, `AccountSid`, `AnsweredBy` and `MachineDetectionDuration` (ms since the answer).

The verdict comes from the persona: an `amd:` block says what Twilio would conclude and when
(e.g. `machine_end_beep` just after the beep line ended). Without one it is derived from the
script with Twilio's rules and defaults: a first utterance shorter than
`MachineDetectionSpeechThreshold` (2400 ms) followed by `MachineDetectionSpeechEndThreshold`
(1200 ms) of silence is `human`; a longer one is a machine's greeting, over once that much
silence follows (`machine_end_silence` with DetectMessageEnd, `machine_start` with Enable);
`MachineDetectionSilenceTimeout` (5000 ms) of silence at the start is `unknown`, and so is no
verdict within `MachineDetectionTimeout` (30 s). With `Enable` a declared `machine_end_*` is
reported as `machine_start`. Every threshold is multiplied by the simulator's
`twilio_amd_time_scale` (tests run it faster).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulators.personas import Persona
from simulators.personas.runtime import SpokenLine


def _ms(params: dict[str, str], key: str, default: int, scale: float) -> int:
    try:
        value = int(params.get(key) or default)
    except ValueError:
        value = default
    return int(value * scale)


@dataclass(frozen=True, slots=True)
class AmdRequest:
    mode: str  # "Enable" | "DetectMessageEnd"
    is_async: bool
    callback: str | None
    method: str
    timeout_ms: int
    speech_threshold_ms: int
    speech_end_threshold_ms: int
    silence_timeout_ms: int

    @classmethod
    def from_params(cls, first: dict[str, str], scale: float) -> AmdRequest | None:
        """The create-call request's AMD parameters (first value of each), or None."""
        mode = first.get("MachineDetection")
        if mode not in ("Enable", "DetectMessageEnd"):
            return None
        return cls(
            mode=mode,
            is_async=(first.get("AsyncAmd") or "").lower() == "true",
            callback=first.get("AsyncAmdStatusCallback") or None,
            method=(first.get("AsyncAmdStatusCallbackMethod") or "POST").upper(),
            # MachineDetectionTimeout is in seconds, the other three in milliseconds.
            timeout_ms=_ms(first, "MachineDetectionTimeout", 30, scale * 1000),
            speech_threshold_ms=_ms(first, "MachineDetectionSpeechThreshold", 2400, scale),
            speech_end_threshold_ms=_ms(first, "MachineDetectionSpeechEndThreshold", 1200, scale),
            silence_timeout_ms=_ms(first, "MachineDetectionSilenceTimeout", 5000, scale),
        )


class AmdDetector:
    """Fed the persona's spoken lines every 20 ms; answers (AnsweredBy, ms) once."""

    def __init__(self, request: AmdRequest, persona: Persona) -> None:
        self.request = request
        self.persona = persona
        self.decided = False

    def tick(self, ms: int, spoken: list[SpokenLine]) -> tuple[str, int] | None:
        if self.decided:
            return None
        verdict = self._verdict(ms, spoken)
        if verdict is None and ms >= self.request.timeout_ms:
            verdict = "unknown"
        if verdict is None:
            return None
        self.decided = True
        if self.request.mode == "Enable" and verdict.startswith("machine_end"):
            verdict = "machine_start"
        return verdict, ms

    def _verdict(self, ms: int, spoken: list[SpokenLine]) -> str | None:
        spec = self.persona.amd
        if spec is not None:
            if spec.after_line is None:
                return spec.answered_by if ms >= spec.delay_ms else None
            ended = [s for s in spoken if s.index == spec.after_line and s.end_ms is not None]
            if ended and ms >= (ended[0].end_ms or 0) + spec.delay_ms:
                return spec.answered_by
            return None
        r = self.request
        if not spoken:
            return "unknown" if ms >= r.silence_timeout_ms else None
        first, last = spoken[0], spoken[-1]
        if last.end_ms is None or ms < last.end_ms + r.speech_end_threshold_ms:
            return None  # speaking, or not silent long enough yet
        long_greeting = (first.end_ms or ms) - first.start_ms >= r.speech_threshold_ms
        if not long_greeting:
            return "human"
        return "machine_end_silence" if r.mode == "DetectMessageEnd" else "machine_start"
