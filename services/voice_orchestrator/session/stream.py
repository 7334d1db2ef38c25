"""The Twilio Media Streams side of a call: the WebSocket's read loop and sends.

All of the wire JSON is built and parsed in vendors/twilio.py; this adapter turns frames into
calls on the session's handlers and keeps sends in order. A frame Twilio would never send is
ignored (logged, counted): it neither ends the debtor's call nor reaches the recording, the STT
or the turn policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from services.voice_orchestrator.vendors.twilio import (
    BadFrame,
    IgnoredFrames,
    MediaOut,
    parse_mark,
    parse_media,
    parse_message,
)


class TransportClosed(Exception):
    pass


class MediaTransport(Protocol):
    """The Twilio Media Streams WebSocket, reduced to what the session needs."""

    async def send_text(self, data: str) -> None: ...

    async def receive_text(self) -> str:
        """Next text frame; raises TransportClosed when the socket is gone and BadFrame for a
        frame that is not text (Twilio sends text frames only)."""
        ...

    async def close(self) -> None: ...


class TwilioStream:
    def __init__(
        self,
        transport: MediaTransport,
        stream_sid: str,
        *,
        on_media: Callable[[bytes, float | None], None],
        on_mark: Callable[[str], None],
        on_closed: Callable[[str], None],
    ) -> None:
        self.transport = transport
        self.out = MediaOut(stream_sid)
        self.ignored = IgnoredFrames()
        self._on_media = on_media
        self._on_mark = on_mark
        self._on_closed = on_closed  # "remote_stop" (Twilio's `stop`) or "transport_closed"
        self._send_lock = asyncio.Lock()

    async def read(self) -> None:
        try:
            while True:
                try:
                    msg = parse_message(await self.transport.receive_text())
                    event = msg["event"]
                    if event == "media":
                        media = parse_media(msg)
                        if media is not None:
                            self._on_media(*media)  # may raise BadFrame too
                    elif event == "mark":
                        self._on_mark(parse_mark(msg))
                    elif event == "stop":
                        self._on_closed("remote_stop")
                        return
                    elif event != "dtmf":  # `connected` / `start` again
                        raise BadFrame("unexpected_event", event)
                except BadFrame as exc:
                    self.ignored.note(exc)
        except TransportClosed:
            self._on_closed("transport_closed")

    async def send(self, data: str) -> None:
        async with self._send_lock:
            try:
                await self.transport.send_text(data)
            except TransportClosed:
                self._on_closed("transport_closed")

    async def close(self) -> None:
        await self.transport.close()
