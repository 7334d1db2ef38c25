"""What the voice loop needs from each vendor, independent of the vendor.

`vendors/` implements these (Deepgram, ElevenLabs, OpenAI); the session and its parts import only
from here, so a vendor can be swapped or faked without touching the loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

# ---- speech to text ------------------------------------------------------------------------


@dataclass(frozen=True)
class SttTranscript:
    text: str
    is_final: bool
    speech_final: bool
    from_finalize: bool


@dataclass(frozen=True)
class SttSpeechStarted:
    pass


@dataclass(frozen=True)
class SttUtteranceEnd:
    pass


@dataclass(frozen=True)
class SttFailed:
    error: str


SttEvent = SttTranscript | SttSpeechStarted | SttUtteranceEnd | SttFailed


class SpeechToText(Protocol):
    audio_seconds: float

    def send_audio(self, frame: bytes) -> None:
        """Queue inbound μ-law audio (never blocks)."""
        ...

    def finalize(self) -> None: ...

    async def run(self, on_event: Callable[[SttEvent], None]) -> None:
        """Stream until `close()`, reconnecting on failure; reports events via `on_event`."""
        ...

    async def close(self) -> None: ...


# ---- text to speech ------------------------------------------------------------------------


@dataclass(frozen=True)
class Alignment:
    chars: list[str]
    start_ms: list[int]
    duration_ms: list[int]


@dataclass(frozen=True)
class TtsAudio:
    context_id: str
    audio: bytes
    alignment: Alignment | None


@dataclass(frozen=True)
class TtsDone:
    context_id: str


@dataclass(frozen=True)
class TtsContextLost:
    """The socket dropped while these contexts were open; their pending audio will not come."""

    context_ids: list[str]


@dataclass(frozen=True)
class TtsFailed:
    error: str


TtsEvent = TtsAudio | TtsDone | TtsContextLost | TtsFailed


class TtsUnavailable(RuntimeError):
    pass


class TextToSpeech(Protocol):
    characters: int

    async def open_context(self, context_id: str) -> None: ...

    async def send_text(self, context_id: str, text: str, *, flush: bool = True) -> None: ...

    async def close_context(self, context_id: str) -> None: ...

    async def run(self, on_event: Callable[[TtsEvent], None]) -> None: ...

    async def close(self) -> None: ...


# ---- language model ------------------------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Completed:
    tool_calls: list[ToolCall]
    finish_reason: str | None


LlmEvent = TextDelta | Completed


@dataclass
class LlmUsage:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    # The last request that reported its usage: its prompt tokens and `prompt_chars`, the
    # call's own tokens-per-character, to estimate what a request cancelled before its usage
    # chunk was billed for its prompt (early.py).
    last_prompt_tokens: int = 0
    last_prompt_chars: int = 0


def prompt_chars(messages: list[dict[str, Any]]) -> int:
    """A request's size in characters of its messages' text: what its prompt tokens scale with."""
    total = 0
    for m in messages:
        content = m.get("content")
        total += len(content) if isinstance(content, str) else 0
        for call in m.get("tool_calls") or ():
            total += len(str((call.get("function") or {}).get("arguments", "")))
    return total


class LlmError(RuntimeError):
    def __init__(self, message: str, *, mid_stream: bool = False) -> None:
        super().__init__(message)
        self.mid_stream = mid_stream  # the response had started: some deltas were delivered


class LanguageModel(Protocol):
    usage: LlmUsage

    def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> AsyncIterator[LlmEvent]: ...


# ---- pre-made lines ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PremadeAudio:
    """A whole line synthesized ahead of time."""

    text: str
    audio: bytes  # μ-law 8 kHz, as the live TTS delivers it
    alignment: Alignment  # char timings over the whole audio, ms from its start

    @property
    def duration_ms(self) -> int:
        return len(self.audio) // 8


class PremadeLines(Protocol):
    """One call's view of lines made ahead (`premade.PremadeLines`): never raises; None means
    'not there, speak it live'."""

    characters: int  # TTS characters this call's syntheses cost

    def prefetch(self, texts: Iterable[str]) -> None: ...

    def get(self, text: str) -> PremadeAudio | None: ...

    def is_pending(self, text: str) -> bool: ...

    async def wait(self, text: str, timeout_s: float) -> PremadeAudio | None: ...

    async def aclose(self) -> None: ...
