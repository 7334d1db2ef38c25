"""The pacer: moves the playout buffer to Twilio in real time, ~`lead_ms` ahead of playback.

It never starts a turn's audio over the debtor (the turn policy's gate) or before the turn is
released, ducks while the debtor makes a sound during agent speech, and sends a pending `clear`
before anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from services.voice_orchestrator.media.mulaw import FRAME_BYTES, FRAME_MS
from services.voice_orchestrator.turns import TurnPolicy
from services.voice_orchestrator.vendors.twilio import MediaOut

from .playout import PlayoutBuffer
from .turn import AgentTurn


class Pacer:
    def __init__(
        self,
        buffer: PlayoutBuffer,
        policy: TurnPolicy,
        media_out: MediaOut,
        send: Callable[[str], Awaitable[None]],
        stream_ms: Callable[[], float],
        still_paused: Callable[[AgentTurn], bool],
        on_first_audio: Callable[[AgentTurn], None],
        *,
        lead_ms: float,
        frames_per_message: int,
    ) -> None:
        self.buffer = buffer
        self.policy = policy
        self.media_out = media_out
        self._send = send
        self._stream_ms = stream_ms
        self._still_paused = still_paused
        self._on_first_audio = on_first_audio
        self.lead_ms = lead_ms
        self.frames_per_message = frames_per_message
        self.wake = asyncio.Event()  # something was queued or released
        # Set by a pause: ends the wait for the next 40 ms slot, so the `clear` goes out now
        # rather than up to a message later.
        self.clear_wake = asyncio.Event()

    def pause(self, turn: AgentTurn) -> bool:
        if not self.buffer.pause(turn, self._stream_ms()):
            return False
        self.clear_wake.set()
        self.wake.set()
        return True

    async def run(self) -> None:
        buf = self.buffer
        per_message = self.frames_per_message
        while True:
            if buf.pending_clear:
                # Before anything else goes out: a frame sent ahead of it would be dropped.
                buf.pending_clear = False
                await self._send(self.media_out.clear())
                continue
            if not buf.out:
                self.wake.clear()
                await self.wake.wait()
                continue
            item = buf.out[0]
            turn = item.turn
            if turn.cancelled:
                buf.out.popleft()
                continue
            if item.audio is None:
                buf.out.popleft()
                assert item.mark is not None
                if not turn.playing and not item.end:
                    continue  # nothing of this turn played yet: the mark would say nothing
                buf.mark_sent(item)
                await self._send(self.media_out.mark(item.mark))
                continue
            if not turn.playing and (turn.held or not self.policy.can_speak()):
                # Never start talking over the debtor (or before the greeting is released).
                await asyncio.sleep(0.01)
                continue
            if turn.playing and (self.policy.user_vad or self._still_paused(turn)):
                # Duck: the debtor just made a sound. Feed Twilio nothing new until the policy
                # decides: a confirmed barge-in clears the rest, a cough lets us carry on. The
                # debtor hears at most the lead already queued instead of the whole
                # confirmation window.
                await asyncio.sleep(0.01)
                continue
            now_ms = self._stream_ms()
            wait_ms = buf.clock.wait_before_next(now_ms, self.lead_ms, FRAME_MS * per_message)
            if wait_ms > 0:
                self.clear_wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_ms / 1000.0):
                        await self.clear_wake.wait()
                continue
            first = not turn.playing
            audio = buf.take_audio(turn, now_ms, FRAME_BYTES * per_message)
            if first:
                self._on_first_audio(turn)
            await self._send(self.media_out.media(audio))
