"""Deepgram live transcription on the official SDK (deepgram-sdk 7, `listen.v1.connect`).

One stream per call, opened with `tag=<CallSid>` (the simulator uses it to know which persona is
speaking). Audio is queued without blocking and sent by a writer task; `Finalize` travels through
the same queue so it always follows the audio it should cover. A dropped socket is reopened (at
most `max_reconnects` times per call), replaying audio that arrived while it was down; past that
the session is told the stream failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment

from services.common.logging import get_logger
from services.common.settings import Settings

log = get_logger(__name__)

KEEPALIVE_SECONDS = 5.0
# Audio kept while reconnecting (10 s of 20 ms frames); older audio is dropped.
MAX_BACKLOG_FRAMES = 500


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


class _Finalize:
    pass


class _Close:
    pass


_FINALIZE = _Finalize()
_CLOSE = _Close()


def deepgram_client(settings: Settings) -> AsyncDeepgramClient:
    env = DeepgramClientEnvironment(
        base=settings.deepgram_base_url,
        production=settings.deepgram_ws_url,
        agent=settings.deepgram_ws_url,
        agent_rest=settings.deepgram_base_url,
    )
    return AsyncDeepgramClient(
        api_key=settings.deepgram_api_key.get_secret_value(), environment=env
    )


class DeepgramStt:
    def __init__(
        self,
        settings: Settings,
        call_sid: str,
        *,
        client: AsyncDeepgramClient | None = None,
        max_reconnects: int = 2,
    ) -> None:
        self.settings = settings
        self.call_sid = call_sid
        self.client = client or deepgram_client(settings)
        self.max_reconnects = max_reconnects
        self.audio_seconds = 0.0
        self.reconnects = 0
        self._queue: deque[bytes | _Finalize | _Close] = deque()
        self._wake = asyncio.Event()
        self._closing = False

    # ---- producer side (called from the session, never blocks) -----------------------------
    def send_audio(self, frame: bytes) -> None:
        if self._closing:
            return
        self._queue.append(frame)
        if len(self._queue) > MAX_BACKLOG_FRAMES:
            self._queue.popleft()
        self._wake.set()

    def finalize(self) -> None:
        self._queue.append(_FINALIZE)
        self._wake.set()

    async def close(self) -> None:
        self._closing = True
        self._queue.append(_CLOSE)
        self._wake.set()

    # ---- the stream ----------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        s = self.settings
        return {
            "model": s.deepgram_model,
            "encoding": "mulaw",
            "sample_rate": "8000",
            "channels": "1",
            "interim_results": "true",
            "punctuate": "true",
            "smart_format": "true",
            "endpointing": str(s.deepgram_endpointing_ms),
            "utterance_end_ms": str(s.deepgram_utterance_end_ms),
            "vad_events": "true",
            "tag": self.call_sid,
        }

    async def run(self, on_event: Callable[[SttEvent], None]) -> None:
        failures = 0
        while not self._closing:
            try:
                async with self.client.listen.v1.connect(**self._params()) as socket:
                    await self._serve(socket, on_event)
                if self._closing:
                    return
                raise ConnectionError("Deepgram closed the stream")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._closing:
                    return
                failures += 1
                if failures > self.max_reconnects:
                    log.warning("stt_failed", error=repr(exc), reconnects=self.reconnects)
                    on_event(SttFailed(repr(exc)))
                    return
                self.reconnects += 1
                log.warning("stt_reconnecting", error=repr(exc), attempt=failures)
                await asyncio.sleep(0.05 * failures)

    async def _serve(self, socket: Any, on_event: Callable[[SttEvent], None]) -> None:
        writer = asyncio.create_task(self._write(socket))
        keepalive = asyncio.create_task(self._keepalive(socket))
        try:
            async for message in socket:
                event = self._parse(message)
                if event is not None:
                    on_event(event)
            if writer.done() and writer.exception() is not None:
                raise writer.exception()  # type: ignore[misc]
        finally:
            for task in (writer, keepalive):
                task.cancel()
            for task in (writer, keepalive):
                with contextlib.suppress(BaseException):
                    await task

    async def _write(self, socket: Any) -> None:
        batch = bytearray()
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            # Drain what is queued; consecutive frames go out as one message.
            while self._queue:
                head = self._queue[0]
                if not isinstance(head, bytes):
                    break
                batch += head
                self._queue.popleft()
            if batch:
                data = bytes(batch)
                batch.clear()
                await socket.send_media(data)
                self.audio_seconds += len(data) / 8000
            if self._queue and not isinstance(self._queue[0], bytes):
                control = self._queue.popleft()
                if isinstance(control, _Finalize):
                    await socket.send_finalize()
                else:
                    await socket.send_close_stream()
                    return

    async def _keepalive(self, socket: Any) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            await socket.send_keep_alive()

    @staticmethod
    def _parse(message: Any) -> SttEvent | None:
        kind = getattr(message, "type", None)
        if kind == "Results":
            channel = getattr(message, "channel", None)
            alternatives = getattr(channel, "alternatives", None) or []
            text = str(getattr(alternatives[0], "transcript", "") or "") if alternatives else ""
            return SttTranscript(
                text=text,
                is_final=bool(getattr(message, "is_final", False)),
                speech_final=bool(getattr(message, "speech_final", False)),
                from_finalize=bool(getattr(message, "from_finalize", False)),
            )
        if kind == "SpeechStarted":
            return SttSpeechStarted()
        if kind == "UtteranceEnd":
            return SttUtteranceEnd()
        if kind == "Error":
            log.warning("stt_error_message", description=str(getattr(message, "description", "")))
        return None
