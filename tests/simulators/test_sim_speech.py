"""Audio helpers and the two voices (espeak-ng when installed, the tone voice always)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from multidict import MultiDict

from simulators import SimConfig
from simulators.common.audio import SILENCE_FRAME, ulaw_decode, ulaw_encode, wav_bytes
from simulators.common.speech import Synthesizer, espeak_available, tone_speech
from simulators.common.utterance import Utterance
from simulators.deepgram.transcriber import ListenOptions, Transcriber
from simulators.network import PhoneNetwork


def test_ulaw_round_trip_and_silence() -> None:
    pcm = np.array([0, 100, -100, 1000, -1000, 32000, -32000], dtype=np.int16)
    back = ulaw_decode(ulaw_encode(pcm)).astype(np.int32)
    assert np.all(np.abs(back - pcm) <= np.maximum(8, np.abs(pcm) // 16))
    assert ulaw_encode(np.zeros(4)) == b"\xff" * 4
    assert wav_bytes([b"\xff" * 80, b"\x00" * 40])[:4] == b"RIFF"


def test_tone_voice_length_follows_text() -> None:
    s = tone_speech("Yes, I can pay today.", "debtor", 65.0)
    assert s.duration_s == pytest.approx(21 * 0.065, abs=0.001)
    assert [w.word for w in s.words] == ["yes", "i", "can", "pay", "today"]
    assert s.words[-1].end == pytest.approx(20 * 0.065)  # the final "." is not voiced
    assert s == tone_speech("Yes, I can pay today.", "debtor", 65.0)  # deterministic


async def _transcribe(speech_mode: str, text: str) -> str:
    net = PhoneNetwork(SimConfig(speech=speech_mode))
    speech = await net.synth.synth(text, "debtor")
    net.add_utterance(Utterance("CA1", 0, text, speech, asyncio.get_running_loop().time()))
    query = MultiDict(
        [("encoding", "mulaw"), ("sample_rate", "8000"), ("endpointing", "400"), ("tag", "CA1")]
    )
    tr = Transcriber(ListenOptions.from_query(query), net, "req", 250.0)
    out = tr.feed(SILENCE_FRAME * 10 + speech.audio + SILENCE_FRAME * 30)
    finals = [m for m in out if m["type"] == "Results" and m["is_final"]]
    return " ".join(m["channel"]["alternatives"][0]["transcript"] for m in finals).strip()


async def test_tone_voice_through_the_vad() -> None:
    assert await _transcribe("tone", "Call me back tomorrow.") == "call me back tomorrow"


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")
async def test_espeak_voice_through_the_vad() -> None:
    synth = Synthesizer("espeak")
    speech = await synth.synth("Yes, this is Jane.", "debtor")
    assert 0.6 < speech.duration_s < 3.0 and len(speech.words) == 4
    assert np.abs(ulaw_decode(speech.audio).astype(np.int32)).mean() > 500  # real speech energy
    assert await _transcribe("espeak", "I don't owe this money.") == "i don't owe this money"
