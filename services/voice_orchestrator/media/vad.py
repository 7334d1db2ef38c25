"""A cheap energy voice-activity detector over 20 ms μ-law frames.

It only has to be fast and decisive, not clever: Deepgram's transcript confirms speech (a cough
reaches the VAD but produces no words). The threshold adapts to the line's noise floor (minimum
statistics over ~1.5 s) so a noisy line does not look like permanent speech. Pure: feed frames
with their stream time; O(1) per frame.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from services.voice_orchestrator.media.mulaw import FRAME_MS, rms


class VadEdge(Enum):
    NONE = "none"
    START = "start"
    PAUSE = "pause"  # speaking, and silent for `pause_frames`: the words so far may be all
    END = "end"


@dataclass(frozen=True)
class VadConfig:
    # Absolute floor for speech RMS (int16 units; about -40 dBFS).
    min_rms: float = 320.0
    # Speech must be this many times louder than the tracked noise floor...
    noise_ratio: float = 3.0
    # ...but a threshold above this (about -29 dBFS) would miss ordinary speech: cap it. Also
    # keeps one long continuous utterance from raising the floor over its own quieter parts.
    max_threshold: float = 1200.0
    # Consecutive voiced frames before speech "starts" (60 ms rejects clicks).
    start_frames: int = 3
    # Silent frames after the last voiced one before speech "ends" (hangover).
    end_frames: int = 12
    # Silent frames before a "pause" edge (once per silence, while still speaking). Early
    # generation starts here: 180 ms before the end, at the price of a cancelled request when
    # the debtor only drew breath. 0 or >= end_frames: no pause edge.
    pause_frames: int = 3
    # Noise floor = the quietest frame of the last `floor_blocks` blocks of `floor_block_frames`
    # (minimum statistics: speech always has quieter gaps, steady line noise does not).
    floor_block_frames: int = 25
    floor_blocks: int = 3


@dataclass
class VadResult:
    edge: VadEdge
    voiced: bool
    # Stream time (ms) of the first voiced frame of the current run (valid while speaking).
    onset_ms: int
    # Stream time (ms) when the last voiced frame ended.
    last_voiced_end_ms: int
    # Voiced time accumulated in the current speech run.
    voiced_ms: int


class EnergyVad:
    def __init__(self, config: VadConfig | None = None) -> None:
        self.config = config or VadConfig()
        self.noise_floor = 0.0
        self._block_min = float("inf")
        self._block_len = 0
        self._mins: deque[float] = deque(maxlen=self.config.floor_blocks)
        self.speaking = False
        self._run = 0  # consecutive voiced frames (before start) or silent frames (after)
        self._candidate_onset_ms = 0
        self.onset_ms = 0
        self.last_voiced_end_ms = 0
        self.voiced_ms = 0
        self._result = VadResult(VadEdge.NONE, False, 0, 0, 0)

    def threshold(self) -> float:
        cfg = self.config
        return max(cfg.min_rms, min(self.noise_floor * cfg.noise_ratio, cfg.max_threshold))

    def _track_floor(self, energy: float) -> None:
        self._block_min = min(self._block_min, energy)
        self._block_len += 1
        if self._block_len >= self.config.floor_block_frames:
            self._mins.append(self._block_min)
            self._block_min = float("inf")
            self._block_len = 0
        current = min(self._mins) if self._mins else self._block_min
        self.noise_floor = min(current, self._block_min)

    def process(self, frame: bytes, at_ms: int) -> VadResult:
        """Classify one frame that starts at stream time `at_ms`; report speech edges."""
        energy = rms(frame)
        cfg = self.config
        self._track_floor(energy)
        voiced = energy >= self.threshold()
        edge = VadEdge.NONE
        frame_ms = max(FRAME_MS, len(frame) // 8)
        if voiced:
            self.last_voiced_end_ms = at_ms + frame_ms
        if not self.speaking:
            if voiced:
                if self._run == 0:
                    self._candidate_onset_ms = at_ms
                self._run += 1
                if self._run >= cfg.start_frames:
                    self.speaking = True
                    self.onset_ms = self._candidate_onset_ms
                    self.voiced_ms = self._run * frame_ms
                    self._run = 0
                    edge = VadEdge.START
            else:
                self._run = 0
        else:
            if voiced:
                self.voiced_ms += frame_ms
                self._run = 0
            else:
                self._run += 1
                if self._run >= cfg.end_frames:
                    self.speaking = False
                    self._run = 0
                    edge = VadEdge.END
                elif self._run == cfg.pause_frames:
                    edge = VadEdge.PAUSE
        r = self._result
        r.edge = edge
        r.voiced = voiced
        r.onset_ms = self.onset_ms
        r.last_voiced_end_ms = self.last_voiced_end_ms
        r.voiced_ms = self.voiced_ms
        return r
