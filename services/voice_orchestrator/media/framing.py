"""20 ms framing and a model of Twilio's playout buffer, used to pace outbound audio.

Twilio plays what we send back to back. We keep only a small lead (120 ms) queued there:
enough to ride out scheduling jitter, little enough that a `clear` drops almost nothing and the
agent's transcript can be cut precisely.
"""

from __future__ import annotations

from services.voice_orchestrator.media.mulaw import FRAME_BYTES, FRAME_MS, SILENCE_BYTE


class FrameChunker:
    """Cuts arbitrary μ-law byte chunks at 160-byte (20 ms) frame boundaries."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def push(self, data: bytes) -> bytes:
        """The whole frames buffered so far, as one bytes (empty if none); keeps the rest."""
        self._buf += data
        cut = len(self._buf) // FRAME_BYTES * FRAME_BYTES
        if cut == 0:
            return b""
        frames = bytes(self._buf[:cut])
        del self._buf[:cut]
        return frames

    def flush(self) -> bytes | None:
        """The trailing partial frame padded with silence, if any."""
        if not self._buf:
            return None
        frame = bytes(self._buf) + bytes([SILENCE_BYTE]) * (FRAME_BYTES - len(self._buf))
        self._buf.clear()
        return frame

    def reset(self) -> None:
        self._buf.clear()


class PlayoutClock:
    """Where Twilio's playback is, estimated from what we sent and when (stream ms)."""

    def __init__(self) -> None:
        self.play_end_ms = 0.0

    def schedule(self, now_ms: float, duration_ms: float = FRAME_MS) -> float:
        """Record a frame sent at `now_ms`; returns when it will start playing."""
        start = max(now_ms, self.play_end_ms)
        self.play_end_ms = start + duration_ms
        return start

    def buffered_ms(self, now_ms: float) -> float:
        return max(0.0, self.play_end_ms - now_ms)

    def wait_before_next(self, now_ms: float, lead_ms: float, send_ms: float = FRAME_MS) -> float:
        """How long to wait before sending `send_ms` more audio to keep at most `lead_ms` queued."""
        return max(0.0, self.buffered_ms(now_ms) + send_ms - lead_ms)

    def clear(self, now_ms: float) -> float:
        """Twilio dropped its buffer; returns how many ms of queued audio were dropped."""
        dropped = self.buffered_ms(now_ms)
        self.play_end_ms = min(self.play_end_ms, now_ms)
        return dropped
