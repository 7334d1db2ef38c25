"""Speech synthesis for the simulated phone network: the debtor's voice and the TTS voice.

Two back ends, chosen by ``mode``:
- ``espeak``: real speech from ``espeak-ng --stdout`` (Debian package ``espeak-ng``), resampled
  to 8 kHz μ-law. Character timings are spread over the voiced span in proportion to the text.
- ``tone``: a deterministic speech-like signal (harmonic buzz with syllable-rate modulation) whose
  length is exactly ``ms_per_char`` per character. Never drops below the VAD threshold inside a
  line, so a line is one speech segment for the Deepgram simulator.
``auto`` picks espeak when the binary is on PATH.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import numpy as np

from simulators.common.audio import SAMPLE_RATE, pcm16_from_wav_bytes, resample, ulaw_encode

SpeechMode = Literal["auto", "espeak", "tone"]
Voice = Literal["agent", "debtor"]

_ESPEAK_VOICES: dict[str, str] = {"agent": "en-us+f3", "debtor": "en-us"}
_TONE_F0: dict[str, float] = {"agent": 205.0, "debtor": 125.0}
_WORD_RE = re.compile(r"\S+")
_STRIP_RE = re.compile(r"[^\w'$.%-]+")


@dataclass(frozen=True, slots=True)
class SpokenWord:
    word: str  # Deepgram "word": lower case, punctuation stripped
    punctuated: str  # Deepgram "punctuated_word": as written
    start: float  # seconds from the start of the utterance audio
    end: float


@dataclass(frozen=True, slots=True)
class Speech:
    text: str
    audio: bytes  # μ-law, 8 kHz, mono
    char_starts_ms: tuple[int, ...]  # one per character of ``text``
    char_durations_ms: tuple[int, ...]
    words: tuple[SpokenWord, ...]

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def normalize_word(token: str) -> str:
    """What Deepgram puts in ``word`` for a written token: lower case, no punctuation."""
    w = _STRIP_RE.sub("", token).lower()
    return w.strip(".-'$%") or w


def words_from_char_times(text: str, starts: list[int], durs: list[int]) -> tuple[SpokenWord, ...]:
    out: list[SpokenWord] = []
    for m in _WORD_RE.finditer(text):
        word = normalize_word(m.group())
        if not word:
            continue
        first, last = m.start(), m.end() - 1
        # Trailing punctuation is not voiced: end the word on its last letter or digit.
        while last > first and not text[last].isalnum():
            last -= 1
        out.append(
            SpokenWord(
                word=word,
                punctuated=m.group(),
                start=starts[first] / 1000,
                end=(starts[last] + durs[last]) / 1000,
            )
        )
    return tuple(out)


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


class Synthesizer:
    """Turns text into :class:`Speech`, caching results (capacity runs repeat the same lines)."""

    def __init__(
        self, mode: SpeechMode = "auto", ms_per_char: float = 65.0, cache_size: int = 1024
    ) -> None:
        if mode == "auto":
            mode = "espeak" if espeak_available() else "tone"
        if mode == "espeak" and not espeak_available():
            raise RuntimeError("speech mode 'espeak' needs the espeak-ng binary on PATH")
        self.mode: Literal["espeak", "tone"] = mode
        self.ms_per_char = ms_per_char
        self._cache: OrderedDict[tuple[str, str], asyncio.Future[Speech]] = OrderedDict()
        self._cache_size = cache_size

    async def synth(self, text: str, voice: Voice = "debtor") -> Speech:
        key = (voice, text)
        fut = self._cache.get(key)
        if fut is not None:
            self._cache.move_to_end(key)
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._cache[key] = fut
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        try:
            if self.mode == "espeak" and text.strip():
                speech = await self._espeak(text, voice)
            else:
                speech = tone_speech(text, voice, self.ms_per_char)
        except BaseException as exc:
            self._cache.pop(key, None)
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: other waiters re-raise it themselves
            raise
        fut.set_result(speech)
        return speech

    async def _espeak(self, text: str, voice: Voice) -> Speech:
        proc = await asyncio.create_subprocess_exec(
            "espeak-ng",
            "--stdout",
            "-v",
            _ESPEAK_VOICES[voice],
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        # Text goes through stdin so a line starting with "-" is never taken for an option.
        wav, _ = await proc.communicate(text.encode())
        pcm, rate = pcm16_from_wav_bytes(wav)
        return espeak_speech(text, pcm, rate)


def espeak_speech(text: str, pcm: np.ndarray, rate: int) -> Speech:
    """Trim espeak's silence, resample to 8 kHz μ-law and spread character times over it."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 300)
    if len(loud):
        margin = rate // 100
        pcm = pcm[max(0, loud[0] - margin) : loud[-1] + margin]
    pcm8k = resample(pcm, rate, SAMPLE_RATE)
    audio = ulaw_encode(pcm8k)
    total_ms = len(audio) / SAMPLE_RATE * 1000
    # Spaces take half the time of a letter: a rough but monotonic alignment.
    weights = np.array([0.5 if c.isspace() else 1.0 for c in text], dtype=np.float64)
    if weights.sum() == 0:
        weights[:] = 1.0
    edges = np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum() * total_ms
    starts = [round(e) for e in edges[:-1]]
    durs = [max(1, round(edges[i + 1] - edges[i])) for i in range(len(text))]
    return Speech(
        text, audio, tuple(starts), tuple(durs), words_from_char_times(text, starts, durs)
    )


def tone_speech(text: str, voice: Voice, ms_per_char: float) -> Speech:
    """Speech-like tone, deterministic for a given text, ``ms_per_char`` per character."""
    n_chars = len(text)
    starts = [round(i * ms_per_char) for i in range(n_chars)]
    durs = [max(1, round((i + 1) * ms_per_char) - starts[i]) for i in range(n_chars)]
    words = words_from_char_times(text, starts, durs)
    n = round(n_chars * ms_per_char * SAMPLE_RATE / 1000)
    if n == 0 or not text.strip():
        return Speech(text, b"", tuple(starts), tuple(durs), words)
    seed = zlib.crc32(text.encode())
    per_char = n / n_chars
    idx = np.minimum((np.arange(n) / per_char).astype(np.int64), n_chars - 1)
    # Envelope per character: letters loud, punctuation softer, spaces a dip that stays voiced.
    level = np.array(
        [0.45 if c.isspace() else (1.0 if c.isalnum() else 0.7) for c in text], dtype=np.float32
    )[idx]
    win = max(1, SAMPLE_RATE // 100)
    env = np.convolve(level, np.ones(win, dtype=np.float32) / win, mode="same")
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    # Pitch wanders per word so consecutive words do not sound (or look) identical.
    word_of_char = np.cumsum([1 if c.isspace() else 0 for c in text])
    f0 = _TONE_F0[voice] * (1 + 0.08 * np.sin(0.9 * word_of_char[idx] + (seed % 7)))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    buzz = np.sin(phase) + 0.5 * np.sin(2 * phase) + 0.25 * np.sin(3 * phase)
    buzz += 0.12 * np.sin(4 * phase)
    syllables = 0.75 + 0.25 * np.sin(2 * np.pi * 4.5 * t)
    noise = np.random.default_rng(seed).normal(0.0, 0.04, n)
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.01 * SAMPLE_RATE))
    signal = 5200.0 * env * syllables * (buzz + noise) * np.maximum(fade, 0.3)
    return Speech(text, ulaw_encode(signal), tuple(starts), tuple(durs), words)
