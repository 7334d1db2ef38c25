"""Tones a phone line carries besides speech: a voicemail beep, a fax machine's calling tone.

They are `Speech` with no words, so the Deepgram simulator hears energy but transcribes nothing
(as real speech-to-text does with a pure tone), and the orchestrator's VAD still hears a sound.
"""

from __future__ import annotations

import numpy as np

from simulators.common.audio import SAMPLE_RATE, ulaw_encode
from simulators.common.speech import Speech

# name -> (frequency Hz, duration ms). A voicemail beep is a ~1 kHz tone; a fax machine's CNG
# tone is 1100 Hz for 0.5 s, repeated every 3.5 s (ITU-T T.30; the persona repeats the line).
_TONES: dict[str, tuple[float, int]] = {"beep": (1000.0, 600), "fax": (1100.0, 500)}


def sound_speech(name: str) -> Speech:
    freq, ms = _TONES[name]
    n = SAMPLE_RATE * ms // 1000
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.005 * SAMPLE_RATE))
    audio = ulaw_encode(8000.0 * np.sin(2 * np.pi * freq * t) * fade)
    text = f"[{name}]"
    per = ms / len(text)
    starts = tuple(round(i * per) for i in range(len(text)))
    durs = tuple(max(1, round((i + 1) * per) - starts[i]) for i in range(len(text)))
    return Speech(text, audio, starts, durs, ())
