"""G.711 μ-law, WAV and small signal helpers (numpy, no audioop: it is gone in Python 3.13)."""

from __future__ import annotations

import io
import struct
import wave

import numpy as np

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000  # 160 μ-law bytes = 20 ms
SILENCE_BYTE = 0xFF  # μ-law "zero"; Twilio pads with it when nobody speaks
SILENCE_FRAME = bytes([SILENCE_BYTE]) * FRAME_BYTES

_BIAS = 0x84
_CLIP = 32635


def _build_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    sample = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -sample, sample).astype(np.int16)


ULAW_TO_PCM: np.ndarray = _build_decode_table()
# |sample| per μ-law byte, precomputed so the VAD needs one table lookup per byte.
ULAW_TO_ABS: np.ndarray = np.abs(ULAW_TO_PCM.astype(np.int32)).astype(np.float32)


def ulaw_decode(data: bytes) -> np.ndarray:
    """μ-law bytes -> int16 PCM samples."""
    return ULAW_TO_PCM[np.frombuffer(data, dtype=np.uint8)]


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """int16 (or float in [-32768, 32767]) PCM samples -> μ-law bytes (ITU-T G.711)."""
    x = np.asarray(pcm, dtype=np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), _CLIP) + _BIAS
    exponent = np.clip(np.floor(np.log2(mag)).astype(np.int32) - 7, 0, 7)
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def resample(pcm: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Linear-interpolation resampling with a crude box low-pass when downsampling.

    Good enough for speech over a phone line; the simulators need plausible audio, not hi-fi.
    """
    if src_rate == dst_rate or len(pcm) == 0:
        return pcm.astype(np.float32)
    x = pcm.astype(np.float32)
    if dst_rate < src_rate:
        width = max(1, round(src_rate / dst_rate))
        if width > 1:
            kernel = np.ones(width, dtype=np.float32) / width
            x = np.convolve(x, kernel, mode="same").astype(np.float32)
    n_out = int(len(x) * dst_rate / src_rate)
    t_out = np.arange(n_out, dtype=np.float64) * (src_rate / dst_rate)
    return np.interp(t_out, np.arange(len(x)), x).astype(np.float32)


def pcm16_from_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Parse a PCM16 mono WAV, tolerating the bogus sizes espeak-ng writes to a pipe."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file")
    pos = 12
    rate = 22050
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            rate = struct.unpack("<I", data[body + 4 : body + 8])[0]
        elif chunk_id == b"data":
            # A streamed WAV has size 0x7FFFFFFF-ish: take everything to the end.
            end = min(len(data), body + size)
            raw = data[body:end]
            raw = raw[: len(raw) - (len(raw) % 2)]
            return np.frombuffer(raw, dtype="<i2").astype(np.int16), rate
        pos = body + size + (size & 1)
    raise ValueError("WAV without data chunk")


def wav_bytes(channels: list[bytes], rate: int = SAMPLE_RATE) -> bytes:
    """μ-law tracks (equal or unequal length) -> a PCM16 WAV with one channel per track."""
    n = max((len(c) for c in channels), default=0)
    pcm = np.zeros((n, len(channels)), dtype=np.int16)
    for i, track in enumerate(channels):
        if track:
            pcm[: len(track), i] = ulaw_decode(track)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(len(channels))
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def is_silence(frame: bytes) -> bool:
    """Fast path for the all-0xFF frames Twilio sends between utterances."""
    return frame.count(SILENCE_BYTE) == len(frame)


def frame_levels(data: bytes, frame_bytes: int = FRAME_BYTES) -> np.ndarray:
    """Mean absolute amplitude of each whole frame of μ-law data (the VAD's energy measure)."""
    n = len(data) // frame_bytes
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    a = ULAW_TO_ABS[np.frombuffer(data, dtype=np.uint8, count=n * frame_bytes)]
    return a.reshape(n, frame_bytes).mean(axis=1)


def pcm16_frame_levels(data: bytes, samples_per_frame: int) -> np.ndarray:
    """Same energy measure for linear16 little-endian audio."""
    count = len(data) // (2 * samples_per_frame) * samples_per_frame
    if count == 0:
        return np.zeros(0, dtype=np.float32)
    a = np.abs(np.frombuffer(data, dtype="<i2", count=count).astype(np.float32))
    return a.reshape(-1, samples_per_frame).mean(axis=1)
