"""Stereo call recording: debtor on the left, agent on the right, on one time line.

Both channels are kept as μ-law bytes at their stream-time positions (8 samples per ms) and
only decoded at the end of the call. The debtor's frames are placed by Twilio's media
`timestamp`; the agent's by when Twilio will play them (PlayoutClock), and a `clear` erases what
was scheduled but never played, so the file sounds like what the debtor heard.
"""

from __future__ import annotations

import io
import wave

import numpy as np

from services.voice_orchestrator.media.mulaw import DECODE_TABLE, SAMPLE_RATE, SILENCE_BYTE

_SAMPLES_PER_MS = SAMPLE_RATE // 1000


class _Track:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, at_ms: float, frame: bytes) -> None:
        pos = max(0, round(at_ms * _SAMPLES_PER_MS))
        end = pos + len(frame)
        if end > len(self.data):
            self.data += bytes([SILENCE_BYTE]) * (end - len(self.data))
        self.data[pos:end] = frame

    def erase_from(self, at_ms: float) -> None:
        pos = max(0, round(at_ms * _SAMPLES_PER_MS))
        if pos < len(self.data):
            del self.data[pos:]


class StereoRecorder:
    def __init__(self) -> None:
        self.debtor = _Track()
        self.agent = _Track()

    def debtor_frame(self, at_ms: float, frame: bytes) -> None:
        self.debtor.write(at_ms, frame)

    def agent_frame(self, at_ms: float, frame: bytes) -> None:
        self.agent.write(at_ms, frame)

    def agent_cleared(self, at_ms: float) -> None:
        """Twilio dropped everything not yet played at `at_ms`."""
        self.agent.erase_from(at_ms)

    def release(self) -> None:
        """Free both tracks (once the WAV is made)."""
        self.debtor = _Track()
        self.agent = _Track()

    def duration_ms(self) -> int:
        return max(len(self.debtor.data), len(self.agent.data)) // _SAMPLES_PER_MS

    def to_wav(self) -> bytes:
        """16-bit PCM stereo WAV at 8 kHz (interleaved L=debtor, R=agent)."""
        n = max(len(self.debtor.data), len(self.agent.data))
        stereo = np.empty((n, 2), dtype=np.int16)
        for ch, track in enumerate((self.debtor, self.agent)):
            raw = np.frombuffer(bytes(track.data), dtype=np.uint8)
            stereo[: len(raw), ch] = DECODE_TABLE[raw]
            stereo[len(raw) :, ch] = 0
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(stereo.astype("<i2", copy=False).tobytes())
        return buf.getvalue()
