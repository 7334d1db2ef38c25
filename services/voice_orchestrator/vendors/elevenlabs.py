"""ElevenLabs streaming TTS over the documented multi-context WebSocket (`multi-stream-input`).

The `elevenlabs` SDK has no asyncio client for this socket, so we speak its wire protocol with
`websockets`, building the URL from settings (which is how tests reach the simulator). One
socket per call, one context per agent turn: a barge-in closes that context (`close_context`)
without reconnecting. Output is `ulaw_8000`, exactly what Twilio plays, so nothing is resampled.
Each audio message carries character alignment (times relative to that chunk), which the session
uses to cut an interrupted turn to the words the debtor heard.

A socket that drops (a close, a refused handshake) is reopened at once, at most `max_reconnects`
times per call; the contexts open on it are reported lost (`TtsContextLost`) and the session
re-sends what they had not synthesized yet in new contexts. Past that: `TtsFailed`.

`connect()` opens the socket ahead of `run()` (the orchestrator does it when it dials, so the
TLS and WebSocket handshakes are done before the debtor picks up); events that come before
`run()` gives the callback are held and handed to it first.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import websockets
from websockets.asyncio.client import ClientConnection, connect

from services.common.logging import get_logger
from services.common.settings import Settings
from services.voice_orchestrator.ports import (
    Alignment,
    TtsAudio,
    TtsContextLost,
    TtsDone,
    TtsEvent,
    TtsFailed,
    TtsUnavailable,
)

log = get_logger(__name__)

KEEPALIVE_SECONDS = 10.0  # the server closes idle contexts after 20 s by default
CONNECT_WAIT_SECONDS = 3.0


def _alignment(raw: Any) -> Alignment | None:
    if not isinstance(raw, dict):
        return None
    chars = raw.get("chars")
    starts = raw.get("charStartTimesMs") or raw.get("char_start_times_ms")
    durations = raw.get("charDurationsMs") or raw.get("char_durations_ms")
    if not chars or starts is None or durations is None:
        return None
    return Alignment(list(chars), [int(x) for x in starts], [int(x) for x in durations])


def parse_server_message(data: str | bytes) -> TtsAudio | TtsDone | None:
    msg = json.loads(data)
    context_id = str(msg.get("contextId") or msg.get("context_id") or "")
    if msg.get("error") or (msg.get("message") and not msg.get("audio")):
        log.warning("tts_error_message", error=str(msg.get("error") or msg.get("message")))
        return None
    audio_b64 = msg.get("audio")
    if audio_b64:
        return TtsAudio(context_id, base64.b64decode(audio_b64), _alignment(msg.get("alignment")))
    if msg.get("isFinal") or msg.get("is_final"):
        return TtsDone(context_id)
    return None


class ElevenLabsTts:
    def __init__(self, settings: Settings, *, max_reconnects: int = 2) -> None:
        self.settings = settings
        self.max_reconnects = max_reconnects
        self.characters = 0
        self.reconnects = 0
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._open_contexts: set[str] = set()
        self._closing = False
        self._failed = False
        self._last_send = time.monotonic()
        self._on_event: Callable[[TtsEvent], None] | None = None
        self._held: list[TtsEvent] = []  # events before `run()` gave the callback
        self._owned = False  # `run()` took the connection over
        self._task: asyncio.Task[None] | None = None  # the connection loop `connect()` started

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def usable(self) -> bool:
        """Not closed and not given up: a socket opened ahead (`connect()`) can still be used."""
        return not (self._closing or self._failed or (self._task is not None and self._task.done()))

    def url(self) -> str:
        s = self.settings
        query = urlencode(
            {
                "model_id": s.elevenlabs_model_id,
                "output_format": "ulaw_8000",
                "auto_mode": "true",
                "sync_alignment": "true",
                "inactivity_timeout": "180",
            }
        )
        base = s.elevenlabs_ws_url.rstrip("/")
        return f"{base}/v1/text-to-speech/{s.elevenlabs_voice_id}/multi-stream-input?{query}"

    # ---- sending ---------------------------------------------------------------------------
    async def _send(self, payload: dict[str, Any]) -> None:
        if self._failed:
            raise TtsUnavailable("text-to-speech is unavailable")
        if not self._connected.is_set():
            try:
                await asyncio.wait_for(self._connected.wait(), CONNECT_WAIT_SECONDS)
            except TimeoutError as exc:
                raise TtsUnavailable("text-to-speech socket not connected") from exc
            context_id = payload.get("context_id")
            if "text" in payload and context_id not in self._open_contexts:
                return  # lost with the old socket: the session re-sends its text in a new one
        ws = self._ws
        if ws is None:
            raise TtsUnavailable("text-to-speech socket not connected")
        try:
            await ws.send(json.dumps(payload))
        except websockets.ConnectionClosed as exc:
            if self._closing:
                raise TtsUnavailable(repr(exc)) from exc
            # The socket dropped under us. `run()` reconnects and reports the contexts lost
            # with it (TtsContextLost); the session then sends their unspoken text again, this
            # message's included. Failing the turn here would end a call that can go on.
            log.info("tts_send_on_dropped_socket", error=repr(exc))
            return
        self._last_send = time.monotonic()

    async def open_context(self, context_id: str) -> None:
        self._open_contexts.add(context_id)
        await self._send({"text": " ", "context_id": context_id})

    async def send_text(self, context_id: str, text: str, *, flush: bool = True) -> None:
        # The protocol wants text to end with a space; flush makes it speak now.
        text = text if text.endswith(" ") else text + " "
        # Metered as sent (trailing space included); the " " that opens a context is not text.
        self.characters += len(text)
        await self._send({"text": text, "context_id": context_id, "flush": flush})

    async def close_context(self, context_id: str) -> None:
        if context_id not in self._open_contexts:
            return
        self._open_contexts.discard(context_id)
        with contextlib.suppress(TtsUnavailable):
            await self._send({"context_id": context_id, "close_context": True})

    async def close(self) -> None:
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.send(json.dumps({"close_socket": True}))
            with contextlib.suppress(Exception):
                await ws.close()
        task = self._task
        if task is not None and not self._owned and not task.done():
            # Opened ahead and never handed to a session (`run()` owns the task once it is).
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # ---- connection ------------------------------------------------------------------------
    def connect(self) -> None:
        """Start opening the socket now (needs a running loop); `run()` takes it over."""
        if self._task is None and not self._closing:
            self._task = asyncio.create_task(self._loop(), name="tts-connect")

    async def run(self, on_event: Callable[[TtsEvent], None]) -> None:
        self._on_event = on_event
        self._owned = True
        held, self._held = self._held, []
        for event in held:
            on_event(event)
        try:
            if self._task is None:
                await self._loop()
            else:
                # Cancelling `run()` cancels the loop, as when it runs here.
                await self._task
        finally:
            # The callback is the session's: holding it past the call is a reference cycle
            # (session -> tts -> callback -> session) that keeps the recording in memory.
            self._on_event = None

    def _emit(self, event: TtsEvent) -> None:
        if self._on_event is None:
            self._held.append(event)
        else:
            self._on_event(event)

    async def _loop(self) -> None:
        failures = 0
        headers = {"xi-api-key": self.settings.elevenlabs_api_key.get_secret_value()}
        while not self._closing:
            busy = bool(self._open_contexts)
            try:
                async with connect(
                    self.url(),
                    additional_headers=headers,
                    max_size=None,
                    open_timeout=5,
                    compression=None,  # audio in base64: deflate costs CPU, saves little
                ) as ws:
                    if self._closing:
                        return  # closed while the handshake was under way
                    self._ws = ws
                    self._connected.set()
                    keepalive = asyncio.create_task(self._keepalive())
                    try:
                        async for raw in ws:
                            event = parse_server_message(raw)
                            if event is None:
                                continue
                            if isinstance(event, TtsDone):
                                self._open_contexts.discard(event.context_id)
                            self._emit(event)
                    finally:
                        keepalive.cancel()
                        self._connected.clear()
                        self._ws = None
                busy = bool(self._open_contexts)
                if self._closing:
                    return
                if not busy:
                    # An idle socket closed (inactivity): reopen quietly.
                    continue
                raise ConnectionError("ElevenLabs closed the socket mid-turn")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._closing:
                    return
                lost = sorted(self._open_contexts)
                self._open_contexts.clear()
                if lost:
                    self._emit(TtsContextLost(lost))
                failures += 1
                if failures > self.max_reconnects:
                    self._failed = True
                    log.warning("tts_failed", error=repr(exc))
                    self._emit(TtsFailed(repr(exc)))
                    return
                self.reconnects += 1
                log.warning("tts_reconnecting", error=repr(exc), attempt=failures)
                await asyncio.sleep(0.05 * failures)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS / 2)
            if time.monotonic() - self._last_send < KEEPALIVE_SECONDS:
                continue
            for context_id in list(self._open_contexts):
                with contextlib.suppress(TtsUnavailable):
                    await self._send({"text": "", "context_id": context_id})
