"""Per-turn timings: monotonic stamps taken in the session, turned into the TurnLatency record.

All stamps are `loop.time()` seconds (monotonic). The stored record follows
specs/schemas/turn_latency.json (integer ms, null when not applicable) plus a few extra keys
that consumers ignore: `kind`, `llm_first_sentence_ms` (the LLM keeps us waiting until a whole
sentence exists, not just until its first token, and through any tool-call round), `own_overhead_ms`
(voice-to-voice minus the union of every interval spent waiting on a vendor; the schema's
`orchestrator_overhead_ms` subtracts only the three headline vendor latencies),
`barge_in_detect_to_clear_ms`, `llm_total_ms` and `audio_before_llm_done_ms`; and, for the
latency bench, `llm_requests_before_audio`, `llm_first_token_ms_each`, `tool_calls`,
`fixed_line`, `early` and `turn_kind` (see `turn_kind()`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from generated.turn_latency import TurnLatency


def _ms(start: float | None, end: float | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start) * 1000))


def union_length(intervals: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Total length of the union of `intervals`, clipped to [lo, hi]."""
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in intervals if b > lo and a < hi)
    total = 0.0
    cur_a: float | None = None
    cur_b = 0.0
    for a, b in clipped:
        if b <= a:
            continue
        if cur_a is None or a > cur_b:
            if cur_a is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_a is not None:
        total += cur_b - cur_a
    return total


@dataclass
class TurnTimings:
    kind: str  # "greeting" | "reply" | "resume" | "apology"
    trigger_at: float  # debtor speech end, or stream start for the greeting
    speech_end_at: float | None = None
    speech_end_wall: datetime | None = None
    vad_end_at: float | None = None  # our VAD declared end of speech (Finalize, early start)
    stt_final_at: float | None = None
    llm_request_at: float | None = None
    llm_first_token_at: float | None = None
    llm_first_sentence_at: float | None = None
    llm_done_at: float | None = None  # the last LLM stream of the turn ended
    tts_first_text_at: float | None = None
    tts_first_byte_at: float | None = None
    first_audio_out_at: float | None = None
    barge_in_onset_at: float | None = None
    barge_in_detected_at: float | None = None
    clear_sent_at: float | None = None
    # Every interval spent waiting on a vendor (STT final, LLM until a sentence, TTS first byte).
    vendor_waits: list[tuple[float, float]] = field(default_factory=list)
    # Set by the session, for the per-kind latency report:
    # Model requests the turn's first sound waited for: started before anything of the turn
    # went to speech (a request started after its fixed line was handed over does not count).
    llm_requests_before_audio: int = 0
    llm_first_token_ats: list[float] = field(default_factory=list)  # per request, in order
    fixed_line: bool = False  # the turn's first audio is a line our code speaks (no model)
    tool_calls: int = 0  # tool calls the model made in this turn
    early: str | None = None  # early generation: "hit" (kept) | "discard" | None (not tried)
    premade_audio: bool = False  # the turn's first audio was made ahead (no TTS round trip)
    # Why the model was asked again in this turn: "refused:<tool>" (a guard said no),
    # "unlined:<tool>" (accepted, no fixed line), "asked:<tool>" (the line left a question).
    asked_again: list[str] = field(default_factory=list)

    def mark_once(self, name: str, at: float) -> None:
        if getattr(self, name) is None:
            setattr(self, name, at)

    def turn_kind(self) -> str:
        """greeting | fixed_line (code spoke first, no model request before it) | tool_turn
        (the model called a tool) | plain_turn (the model just answered)."""
        if self.kind == "greeting":
            return "greeting"
        if self.fixed_line and self.llm_requests_before_audio == 0:
            return "fixed_line"
        if self.tool_calls > 0:
            return "tool_turn"
        return "plain_turn"

    def record(self, turn_index: int) -> dict[str, Any]:
        stt = _ms(self.speech_end_at, self.stt_final_at)
        llm = _ms(self.llm_request_at, self.llm_first_token_at)
        tts = _ms(self.tts_first_text_at, self.tts_first_byte_at)
        v2v = _ms(self.speech_end_at, self.first_audio_out_at)
        overhead: int | None = None
        own: int | None = None
        if v2v is not None:
            overhead = max(0, v2v - (stt or 0) - (llm or 0) - (tts or 0))
            assert self.speech_end_at is not None and self.first_audio_out_at is not None
            waited = union_length(self.vendor_waits, self.speech_end_at, self.first_audio_out_at)
            own = max(0, round(v2v - waited * 1000))
        # Once per turn, not per frame: the schema's fields through the generated model.
        contract = TurnLatency(
            turn_index=turn_index,
            debtor_speech_end_at=self.speech_end_wall,
            stt_final_ms=stt,
            llm_first_token_ms=llm,
            tts_first_byte_ms=tts,
            first_audio_out_ms=_ms(self.trigger_at, self.first_audio_out_at),
            voice_to_voice_ms=v2v,
            # What our code added: voice-to-voice minus every interval spent waiting on a vendor.
            # (Subtracting only the three headline latencies would charge us for the second LLM
            # request a tool call needs; that figure stays available as headline_residual_ms.)
            orchestrator_overhead_ms=own,
            barge_in_to_clear_ms=_ms(self.barge_in_onset_at, self.clear_sent_at),
        )
        return {
            **contract.model_dump(mode="json"),
            # Extras (not in the schema; consumers ignore unknown keys).
            "kind": self.kind,
            "llm_first_sentence_ms": _ms(self.llm_request_at, self.llm_first_sentence_at),
            "own_overhead_ms": own,
            "headline_residual_ms": overhead,
            "barge_in_detect_to_clear_ms": _ms(self.barge_in_detected_at, self.clear_sent_at),
            "llm_total_ms": _ms(self.llm_request_at, self.llm_done_at),
            # > 0: the debtor was already hearing the reply while the model was still writing it.
            "audio_before_llm_done_ms": (
                round((self.llm_done_at - self.first_audio_out_at) * 1000)
                if self.llm_done_at is not None and self.first_audio_out_at is not None
                else None
            ),
            "turn_kind": self.turn_kind(),
            "llm_requests_before_audio": self.llm_requests_before_audio,
            # First token of each model request, on the turn's timeline: ms after the debtor's
            # speech end (the trigger for a turn without one).
            "llm_first_token_ms_each": [
                _ms(self.speech_end_at or self.trigger_at, at) for at in self.llm_first_token_ats
            ],
            "end_of_speech_wait_ms": _ms(self.speech_end_at, self.vad_end_at),
            # When the reply's (first) model request started, after the debtor's last word: less
            # than the end-of-speech wait when early generation started at a pause.
            "llm_request_after_speech_end_ms": _ms(self.speech_end_at, self.llm_request_at),
            "tool_calls": self.tool_calls,
            "fixed_line": self.fixed_line,
            "early": self.early,
            "premade_audio": self.premade_audio,
            "asked_again": self.asked_again,
        }
