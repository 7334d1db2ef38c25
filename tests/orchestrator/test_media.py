"""μ-law codec, energy VAD, framing/pacing and the stereo recorder (pure, fast)."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from services.voice_orchestrator.media import mulaw
from services.voice_orchestrator.media.framing import FrameChunker, PlayoutClock
from services.voice_orchestrator.media.recorder import StereoRecorder
from services.voice_orchestrator.media.vad import EnergyVad, VadConfig, VadEdge


def tone(ms: int, amplitude: float = 6000.0, freq: float = 220.0) -> bytes:
    n = ms * 8
    t = np.arange(n) / 8000.0
    pcm = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return mulaw.encode(pcm)


def frames(data: bytes) -> list[bytes]:
    return [data[i : i + 160] for i in range(0, len(data), 160)]


# ---- codec ---------------------------------------------------------------------------------


def test_decode_table_matches_g711_reference_points() -> None:
    assert mulaw.DECODE_TABLE[0xFF] == 0
    assert mulaw.DECODE_TABLE[0x7F] == 0
    assert mulaw.DECODE_TABLE[0x00] == -32124
    assert mulaw.DECODE_TABLE[0x80] == 32124


def test_every_mulaw_byte_survives_decode_then_encode() -> None:
    codes = np.arange(256, dtype=np.uint8).tobytes()
    again = mulaw.encode(mulaw.decode(codes))
    # 0x7F and 0xFF both mean zero; everything else must round-trip exactly.
    for a, b in zip(codes, again, strict=True):
        assert a == b or {a, b} <= {0x7F, 0xFF}


def test_encode_error_is_within_quantisation_step() -> None:
    pcm = np.linspace(-32000, 32000, 5001).astype(np.int16)
    back = mulaw.decode(mulaw.encode(pcm)).astype(np.int32)
    err = np.abs(back - pcm.astype(np.int32))
    # μ-law steps grow with amplitude: relative error stays under ~3.2 % (+ small absolute).
    assert np.all(err <= np.abs(pcm.astype(np.int32)) * 0.032 + 8)


def test_rms_of_silence_and_tone() -> None:
    assert mulaw.rms(mulaw.SILENCE_FRAME) == 0.0
    assert 3800 < mulaw.rms(tone(20, 6000)) < 4600  # 6000/sqrt(2) ≈ 4243


# ---- VAD -----------------------------------------------------------------------------------


def run_vad(vad: EnergyVad, audio: bytes, start_ms: int = 0) -> list[tuple[VadEdge, int]]:
    edges = []
    for i, f in enumerate(frames(audio)):
        r = vad.process(f, start_ms + i * 20)
        if r.edge is not VadEdge.NONE:
            edges.append((r.edge, r.onset_ms if r.edge is VadEdge.START else r.last_voiced_end_ms))
    return edges


def test_vad_detects_speech_onset_and_end_with_hangover() -> None:
    vad = EnergyVad(VadConfig(start_frames=3, end_frames=10))
    audio = mulaw.SILENCE_FRAME * 10 + tone(400) + mulaw.SILENCE_FRAME * 20
    edges = run_vad(vad, audio)
    # A pause 5 frames into the silence (early generation may start), the end after 10.
    assert edges == [(VadEdge.START, 200), (VadEdge.PAUSE, 600), (VadEdge.END, 600)]


def test_vad_pause_comes_once_per_silence_and_again_after_the_debtor_goes_on() -> None:
    vad = EnergyVad(VadConfig(start_frames=3, end_frames=10, pause_frames=4))
    breath = mulaw.SILENCE_FRAME * 6  # longer than the pause, shorter than the end
    audio = tone(300) + breath + tone(200) + mulaw.SILENCE_FRAME * 12
    edges = run_vad(vad, audio)
    assert edges == [
        (VadEdge.START, 0),
        (VadEdge.PAUSE, 300),  # still speaking: the breath was not the end
        (VadEdge.PAUSE, 620),
        (VadEdge.END, 620),
    ]
    assert [e for e, _ in run_vad(EnergyVad(VadConfig(pause_frames=0)), audio)] == [
        VadEdge.START,
        VadEdge.END,
    ]


def test_vad_ignores_a_click_shorter_than_start_frames() -> None:
    vad = EnergyVad(VadConfig(start_frames=3))
    audio = mulaw.SILENCE_FRAME * 5 + tone(40) + mulaw.SILENCE_FRAME * 20
    assert run_vad(vad, audio) == []


def test_vad_adapts_to_a_noisy_line() -> None:
    rng = np.random.default_rng(1)
    noise = mulaw.encode((rng.normal(0, 900, 8000 * 3)).astype(np.int16))  # loud hiss, 3 s
    vad = EnergyVad()
    # The fixed floor alone (320) would call this speech; the adaptive floor must not, for long.
    edges = run_vad(vad, noise)
    assert len(edges) <= 2
    assert not vad.speaking
    # Real speech well above the noise is still detected.
    assert any(e is VadEdge.START for e, _ in run_vad(vad, tone(300, 12000), 3000))


def test_vad_counts_voiced_ms() -> None:
    vad = EnergyVad(VadConfig(start_frames=3))
    r = None
    for i, f in enumerate(frames(mulaw.SILENCE_FRAME * 5 + tone(300))):
        r = vad.process(f, i * 20)
    assert r is not None and r.voiced_ms == 300


# ---- framing / pacing ----------------------------------------------------------------------


def test_chunker_cuts_at_160_byte_frames_and_pads_the_tail() -> None:
    c = FrameChunker()
    assert c.push(b"\x01" * 100) == b""
    out = c.push(b"\x02" * 300)
    assert out == b"\x01" * 100 + b"\x02" * 220
    tail = c.flush()
    assert tail is not None and len(tail) == 160
    assert tail[:80] == b"\x02" * 80 and tail[80:] == bytes([0xFF]) * 80
    assert c.flush() is None


def test_playout_clock_paces_to_the_lead() -> None:
    clock = PlayoutClock()
    now = 1000.0
    sent = 0
    # Burst: with a 100 ms lead, 5 frames go at once, then the clock says wait.
    while clock.wait_before_next(now, 100) == 0:
        clock.schedule(now)
        sent += 1
    assert sent == 5
    assert clock.wait_before_next(now, 100) == pytest.approx(20)
    assert clock.buffered_ms(now + 50) == pytest.approx(50)
    # An underrun restarts playback at "now".
    assert clock.schedule(2000.0) == 2000.0


def test_playout_clock_clear_drops_the_buffer() -> None:
    clock = PlayoutClock()
    for _ in range(5):
        clock.schedule(0.0)
    assert clock.clear(30.0) == pytest.approx(70)
    assert clock.buffered_ms(30.0) == 0
    assert clock.schedule(30.0) == 30.0


# ---- recorder -----------------------------------------------------------------------------


def read_wav(data: bytes) -> tuple[np.ndarray, int, int]:
    with wave.open(io.BytesIO(data)) as w:
        assert w.getsampwidth() == 2
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return pcm.reshape(-1, w.getnchannels()), w.getnchannels(), w.getframerate()


def test_recorder_is_stereo_time_aligned_debtor_left_agent_right() -> None:
    rec = StereoRecorder()
    loud = tone(20, 8000)
    rec.debtor_frame(0, loud)
    rec.debtor_frame(100, loud)
    rec.agent_frame(500, loud)
    pcm, channels, rate = read_wav(rec.to_wav())
    assert (channels, rate) == (2, 8000)
    assert len(pcm) == 520 * 8
    left, right = pcm[:, 0], pcm[:, 1]
    assert np.abs(left[100 * 8 : 120 * 8]).max() > 4000
    assert np.abs(left[20 * 8 : 100 * 8]).max() == 0  # gap filled with silence
    assert np.abs(right[: 500 * 8]).max() == 0
    assert np.abs(right[500 * 8 :]).max() > 4000


def test_recorder_clear_erases_agent_audio_that_never_played() -> None:
    rec = StereoRecorder()
    for i in range(10):
        rec.agent_frame(i * 20, tone(20, 8000))
    rec.agent_cleared(100.0)
    assert len(rec.agent.data) == 100 * 8
    rec.agent_frame(300, tone(20, 8000))
    pcm, _, _ = read_wav(rec.to_wav())
    right = pcm[:, 1]
    assert np.abs(right[100 * 8 : 300 * 8]).max() == 0
    assert np.abs(right[300 * 8 :]).max() > 4000
