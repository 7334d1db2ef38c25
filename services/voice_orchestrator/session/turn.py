"""`AgentTurn`: one thing the agent says (a greeting, a reply, a fixed line), and the record each
part keeps of it. Each part reads and writes only its own group of fields."""

from __future__ import annotations

import asyncio
from array import array
from dataclasses import dataclass, field

from services.voice_orchestrator.latency import TurnTimings
from services.voice_orchestrator.media.framing import FrameChunker


@dataclass(slots=True)
class Segment:
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
    cancelled: bool = False
    committed: bool = False
    task: asyncio.Task[None] | None = None
    # ---- Synthesis: text sent, audio and alignment received --------------------------------
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
    text_complete: bool = False
    tts_done: bool = False
    last_tts_activity: float = 0.0
    resends: int = 0
    premade: bool = False  # the whole turn is a pre-made line: no live TTS context
    # ---- Playout: what went to Twilio and what was heard -----------------------------------
    segments: list[Segment] = field(default_factory=list)
    audio_ms_sent: float = 0.0
    heard_ms_by_mark: float = 0.0
    mark_seq: int = 0
    playing: bool = False
    started_stream_ms: float | None = None
    paused_at: float | None = None  # our last early `clear` (debtor sound, not yet confirmed)

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


@dataclass(slots=True)
class OutItem:
    """Queued for Twilio: whole 20 ms frames of a turn's audio, as TTS delivered them (one
    item per chunk, not per frame: thousands of queued objects made every full garbage
    collection longer and more frequent), or a mark."""

    turn: AgentTurn
    audio: bytes | None = None
    mark: str | None = None
    mark_offset_ms: float = 0.0
    end: bool = False


def nonspace(text: str) -> int:
    return sum(1 for c in text if not c.isspace())
