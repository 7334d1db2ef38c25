"""Deepgram live transcription: the documented `/v1/listen` WebSocket, with the official SDK's
socket client (deepgram-sdk 7) for its message types.

We open the socket ourselves rather than through `listen.v1.connect`: the SDK's connect offers
permessage-deflate, which costs CPU on every audio message and can't be turned off through it
(py-spy at 100 calls: 7 % of the orchestrator's loop), and it builds a new TLS context per call.

One stream per call, opened with `tag=<CallSid>` (the simulator uses it to know which persona is
speaking). Audio is queued without blocking and sent by a writer task in 40 ms messages
(`SEND_BATCH_BYTES`: half the sends of Twilio's 20 ms frames); `Finalize` travels through the same
queue and flushes what is waiting, so it always follows the audio it should cover.

A dropped socket (a close, an error, a refused handshake) is reopened at once (at most
`max_reconnects` times per call; past that the session is told the stream failed), and nothing
the debtor said is lost: interim words not yet final are handed to the session as a final, and
the new socket first gets the audio after the last word Deepgram reported (up to
`REPLAY_SECONDS`), then what arrived while it was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable
from importlib import metadata
from typing import Any
from urllib.parse import urlencode

from deepgram.listen.v1.socket_client import AsyncV1SocketClient
from websockets.asyncio.client import connect

from services.common.logging import get_logger
from services.common.settings import Settings
from services.voice_orchestrator.ports import (
    SttEvent,
    SttFailed,
    SttSpeechStarted,
    SttTranscript,
    SttUtteranceEnd,
)

log = get_logger(__name__)

KEEPALIVE_SECONDS = 5.0
# Audio kept while reconnecting (10 s of 20 ms frames); older audio is dropped.
MAX_BACKLOG_FRAMES = 500
# Audio already sent that Deepgram had not yet reported words for, replayed on a new socket.
REPLAY_SECONDS = 5.0
BYTES_PER_SECOND = 8000  # μ-law, 8 kHz mono
REPLAY_BYTES = int(REPLAY_SECONDS * BYTES_PER_SECOND)
# Audio goes out once 40 ms are waiting (Deepgram suggests 20-100 ms per message). A turn's end
# never waits for it: `Finalize` flushes the queue.
SEND_BATCH_BYTES = 2 * 160


class _Finalize:
    pass


class _Close:
    pass


_FINALIZE = _Finalize()
_CLOSE = _Close()


class DeepgramListen:
    """Opens `/v1/listen` sockets; one per process (it holds the TLS context and headers)."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.deepgram_ws_url.rstrip("/") + "/v1/listen"
        try:
            version = metadata.version("deepgram-sdk")
        except metadata.PackageNotFoundError:
            version = "unknown"
        self.headers = {
            "Authorization": f"Token {settings.deepgram_api_key.get_secret_value()}",
            "User-Agent": f"deepgram-sdk/{version}",
        }
        self.ssl = ssl.create_default_context() if self.url.startswith("wss:") else None

    @contextlib.asynccontextmanager
    async def connect(self, params: dict[str, str]) -> AsyncIterator[AsyncV1SocketClient]:
        ws = await connect(
            f"{self.url}?{urlencode(params)}",
            additional_headers=self.headers,
            ssl=self.ssl,
            compression=None,
            open_timeout=5,
            close_timeout=1,
        )
        try:
            yield AsyncV1SocketClient(websocket=ws)  # type: ignore[arg-type]
        finally:
            # A normal close (1000) even when the call's end cancels us mid-stream; websockets'
            # own context manager would say 1011, an internal error, to Deepgram.
            await ws.close()


class DeepgramStt:
    def __init__(
        self,
        settings: Settings,
        call_sid: str,
        *,
        listen: DeepgramListen | None = None,
        max_reconnects: int = 2,
    ) -> None:
        self.settings = settings
        self.call_sid = call_sid
        self.listen = listen or DeepgramListen(settings)
        self.max_reconnects = max_reconnects
        self.audio_seconds = 0.0
        self.reconnects = 0
        self._queue: deque[bytes | _Finalize | _Close] = deque()
        self._queued_bytes = 0  # audio in the queue
        self._queued_controls = 0  # Finalize / CloseStream in the queue
        self._wake = asyncio.Event()
        self._closing = False
        # The current socket: audio sent on it (the last REPLAY_SECONDS kept), how much of it
        # Deepgram's results have covered, and interim words not yet final.
        self._recent = bytearray()
        self._sent_bytes = 0
        self._covered_bytes = 0
        self._interim = ""

    # ---- producer side (called from the session, never blocks) -----------------------------
    def send_audio(self, frame: bytes) -> None:
        if self._closing:
            return
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        oldest = self._queue[0]
        if len(self._queue) > MAX_BACKLOG_FRAMES and isinstance(oldest, bytes):
            self._queue.popleft()
            self._queued_bytes -= len(oldest)
        if self._queued_bytes >= SEND_BATCH_BYTES:
            self._wake.set()

    def finalize(self) -> None:
        self._queue_control(_FINALIZE)

    async def close(self) -> None:
        self._closing = True
        self._queue_control(_CLOSE)

    def _queue_control(self, control: _Finalize | _Close) -> None:
        self._queue.append(control)
        self._queued_controls += 1
        self._wake.set()

    # ---- the stream ----------------------------------------------------------------------
    def _params(self) -> dict[str, str]:
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
                async with self.listen.connect(self._params()) as socket:
                    self._resume()
                    await self._serve(socket, on_event)
                if self._closing:
                    return
                raise ConnectionError("Deepgram closed the stream")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._closing:
                    return
                if self._interim:
                    # Words Deepgram had heard but not finalized would die with the socket.
                    on_event(SttTranscript(self._interim, True, False, False))
                    self._interim = ""
                failures += 1
                if failures > self.max_reconnects:
                    log.warning("stt_failed", error=repr(exc), reconnects=self.reconnects)
                    on_event(SttFailed(repr(exc)))
                    return
                self.reconnects += 1
                log.warning("stt_reconnecting", error=repr(exc), attempt=failures)
                await asyncio.sleep(0.05 * failures)

    def _resume(self) -> None:
        """A socket just opened: replay the audio the previous one had no results for yet."""
        unreported = self._sent_bytes - self._covered_bytes
        if unreported > 0 and self._recent:
            replay = bytes(self._recent[-unreported:])
            self._queue.appendleft(replay)
            self._queued_bytes += len(replay)
            self._wake.set()
        self._recent.clear()
        self._sent_bytes = self._covered_bytes = 0

    def _covered(self, message: Any) -> None:
        """How far into this socket's audio Deepgram has reported: a final covers all it
        spans, an interim its last word."""
        if getattr(message, "type", None) != "Results":
            return
        if getattr(message, "is_final", False):
            end = float(getattr(message, "start", 0.0)) + float(getattr(message, "duration", 0.0))
            self._interim = ""
        else:
            channel = getattr(message, "channel", None)
            alternatives = getattr(channel, "alternatives", None) or []
            words = (getattr(alternatives[0], "words", None) or []) if alternatives else []
            if not words:
                return
            end = float(getattr(words[-1], "end", 0.0))
            self._interim = str(getattr(alternatives[0], "transcript", "") or "")
        self._covered_bytes = max(self._covered_bytes, int(end * BYTES_PER_SECOND))

    async def _serve(self, socket: Any, on_event: Callable[[SttEvent], None]) -> None:
        writer = asyncio.create_task(self._write(socket))
        keepalive = asyncio.create_task(self._keepalive(socket))
        try:
            async for message in socket:
                self._covered(message)
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
            if self._queued_bytes < SEND_BATCH_BYTES and not self._queued_controls:
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
            self._queued_bytes -= len(batch)
            if batch:
                data = bytes(batch)
                batch.clear()
                self._recent += data  # before sending: a failed send is replayed too
                if len(self._recent) > REPLAY_BYTES:
                    del self._recent[: len(self._recent) - REPLAY_BYTES]
                self._sent_bytes += len(data)
                await socket.send_media(data)
                self.audio_seconds += len(data) / BYTES_PER_SECOND
            if self._queue and not isinstance(self._queue[0], bytes):
                control = self._queue.popleft()
                self._queued_controls -= 1
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
