"""Deepgram simulator: the live /v1/listen WebSocket through deepgram-sdk v7 and plain
websockets. Audio is sent in real time, so the timings asserted are the ones a service sees."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from typing import Any

import numpy as np
import pytest
import websockets
from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment

from simulators import SimulatorStack
from simulators.common.audio import SILENCE_FRAME, ulaw_decode
from simulators.common.speech import Speech, tone_speech
from simulators.common.utterance import Utterance


def speak(sim: SimulatorStack, tag: str, text: str) -> Speech:
    """Make the phone of call ``tag`` speak ``text`` now, as the Twilio side would."""
    assert sim.network is not None
    speech = tone_speech(text, "debtor", sim.config.ms_per_char)
    sim.network.add_utterance(Utterance(tag, 0, text, speech, asyncio.get_running_loop().time()))
    return speech


async def send_realtime(send: Any, audio: bytes) -> None:
    """20 ms frames at the real pace, like a Twilio stream forwarded by the orchestrator."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(0, len(audio), 160):
        await send(audio[i : i + 160].ljust(160, b"\xff"))
        delay = t0 + (i // 160 + 1) * 0.02 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)


def silence(seconds: float) -> bytes:
    return SILENCE_FRAME * round(seconds / 0.02)


async def test_live_transcription_through_the_sdk(sim: SimulatorStack, http: Any) -> None:
    assert sim.urls is not None
    env = DeepgramClientEnvironment(
        base=sim.urls.deepgram_http,
        production=sim.urls.deepgram_ws,
        agent=sim.urls.deepgram_ws,
        agent_rest=sim.urls.deepgram_http,
    )
    client = AsyncDeepgramClient(api_key="dg-test-key", environment=env)
    text = "Yes, I can pay 120 dollars on Friday."
    loop = asyncio.get_running_loop()
    got: list[tuple[float, Any]] = []
    async with client.listen.v1.connect(
        model="nova-3",
        encoding="mulaw",
        sample_rate="8000",
        interim_results="true",
        endpointing="300",
        utterance_end_ms="1000",
        vad_events="true",
        punctuate="true",
        smart_format="true",
        tag="CA-dg-sdk",
    ) as conn:

        async def receive() -> None:
            async for msg in conn:
                got.append((loop.time(), msg))

        reader = asyncio.create_task(receive())
        await send_realtime(conn.send_media, silence(0.2))
        speech = speak(sim, "CA-dg-sdk", text)
        await send_realtime(conn.send_media, speech.audio)
        speech_end_sent = loop.time()
        await send_realtime(conn.send_media, silence(1.5))
        await conn.send_close_stream()
        await asyncio.wait_for(reader, 3)

    kinds = [m.type for _, m in got]
    assert kinds[0] == "SpeechStarted" and kinds[-1] == "Metadata"
    assert got[0][1].timestamp == pytest.approx(0.2, abs=0.001)
    results = [(t, m) for t, m in got if m.type == "Results"]
    interims = [m for _, m in results if not m.is_final]
    finals = [(t, m) for t, m in results if m.is_final]
    # Interim results grow word by word while the speech goes on.
    counts = [len(m.channel.alternatives[0].words) for m in interims]
    assert counts == list(range(1, len(counts) + 1)) and len(counts) >= 6
    for a, b in itertools.pairwise(interims):
        assert b.channel.alternatives[0].transcript.startswith(a.channel.alternatives[0].transcript)
    assert len(finals) == 1
    t_final, final = finals[0]
    alt = final.channel.alternatives[0]
    assert final.speech_final and not final.from_finalize
    assert alt.transcript == text
    assert [w.word for w in alt.words] == [
        "yes",
        "i",
        "can",
        "pay",
        "120",
        "dollars",
        "on",
        "friday",
    ]
    assert alt.words[0].punctuated_word == "Yes," and alt.words[0].start == pytest.approx(0.2)
    # Final after `endpointing` ms of silence, in audio time and in wall time.
    speech_end = 0.2 + len(text) * sim.config.ms_per_char / 1000
    assert final.start + final.duration == pytest.approx(speech_end + 0.3, abs=0.025)
    # In wall time: audio goes in real time (each frame never before its slot) and the simulator
    # answers on the frame that completes the silence (no latency configured), so the final is
    # never earlier than that frame's slot after the speech was sent; late by at most ~1 s.
    silence_from = 0.2 + math.ceil(len(speech.audio) / 160) * 0.02  # audio time
    final_due = final.start + final.duration - silence_from - 0.02
    waited = t_final - speech_end_sent
    assert final_due - 0.005 <= waited < final_due + 1.0, (waited, final_due)
    assert final.metadata.model_info.arch == "nova-3" and final.channel_index == [0, 1]
    ue = next(m for _, m in got if m.type == "UtteranceEnd")
    assert ue.last_word_end == pytest.approx(alt.words[-1].end)
    ue_at = next(t for t, m in got if m.type == "UtteranceEnd")
    # UtteranceEnd on the first frame 1 s (utterance_end_ms) of audio after the last word: the
    # same bound, from the frame's slot (not from the final, which may itself have been late).
    ue_due = ue.last_word_end + 1.0 - silence_from - 0.02
    waited = ue_at - speech_end_sent
    assert ue_due - 0.005 <= waited < ue_due + 1.0, (waited, ue_due)
    meta = got[-1][1]
    assert meta.duration == pytest.approx(0.2 + speech.duration_s + 1.5, abs=0.03)
    assert meta.channels == 1 and meta.request_id == final.metadata.request_id

    async with http.get(f"{sim.urls.control}/deepgram", params={"tag": "CA-dg-sdk"}) as r:
        rec = (await r.json())[-1]
    assert rec["audio_seconds"] == pytest.approx(meta.duration, abs=0.001)
    assert rec["query"]["endpointing"] == ["300"] and rec["close_code"] == 1000
    assert [m["type"] for m in rec["text_received"]] == ["CloseStream"]


async def _connect(sim: SimulatorStack, query: str, key: str | None = "k") -> Any:
    assert sim.urls is not None
    headers = {"Authorization": f"Token {key}"} if key else {}
    return await websockets.connect(
        f"{sim.urls.deepgram_ws}/v1/listen?{query}", additional_headers=headers
    )


async def _collect(
    ws: Any, out: list[dict[str, Any]], arrived: asyncio.Event | None = None
) -> None:
    async for raw in ws:
        out.append(json.loads(raw))
        if arrived is not None:
            arrived.set()


async def test_finalize_flushes_what_was_heard(sim: SimulatorStack) -> None:
    ws = await _connect(
        sim, "encoding=mulaw&sample_rate=8000&interim_results=false&endpointing=200&tag=CA-fin"
    )
    got: list[dict[str, Any]] = []
    arrived = asyncio.Event()
    reader = asyncio.create_task(_collect(ws, got, arrived))
    text = "I can pay the full amount tomorrow morning."
    speech = speak(sim, "CA-fin", text)
    await send_realtime(ws.send, speech.audio[:4800])  # 0.6 s of the line
    await ws.send(json.dumps({"type": "Finalize"}))
    async with asyncio.timeout(2):  # the answer to Finalize, however busy the machine
        while not any(m.get("from_finalize") for m in got):
            arrived.clear()
            await arrived.wait()
    flushed = [m for m in got if m.get("from_finalize")]
    assert len(flushed) == 1 and flushed[0]["is_final"]
    first_words = [w["word"] for w in flushed[0]["channel"]["alternatives"][0]["words"]]
    assert first_words and all(w.start < 0.62 for w in speech.words[: len(first_words)])
    await send_realtime(ws.send, speech.audio[4800:] + silence(0.4))
    await ws.send(json.dumps({"type": "CloseStream"}))
    await asyncio.wait_for(reader, 2)
    finals = [m for m in got if m["type"] == "Results"]
    assert all(m["is_final"] for m in finals)  # interim_results=false
    words = [w["word"] for m in finals for w in m["channel"]["alternatives"][0]["words"]]
    assert words == [w.word for w in speech.words]  # nothing lost, nothing repeated
    assert finals[-1]["speech_final"] and not finals[-1]["from_finalize"]
    assert got[-1]["type"] == "Metadata"


async def test_linear16_and_scripted_transcript(sim: SimulatorStack, http: Any) -> None:
    assert sim.urls is not None
    async with http.post(
        f"{sim.urls.control}/transcripts", json={"tag": "no-call", "texts": ["hello there"]}
    ) as r:
        assert r.status == 201
    ws = await _connect(sim, "encoding=linear16&sample_rate=16000&endpointing=100&tag=no-call")
    got: list[dict[str, Any]] = []
    reader = asyncio.create_task(_collect(ws, got))
    pcm = ulaw_decode(tone_speech("hello there friend", "debtor", sim.config.ms_per_char).audio)
    pcm16k = np.repeat(pcm, 2).astype("<i2").tobytes() + bytes(16000)  # + 0.5 s of silence
    for i in range(0, len(pcm16k), 6400):  # 200 ms messages, faster than real time
        await ws.send(pcm16k[i : i + 6400])
    await ws.send(json.dumps({"type": "CloseStream"}))
    await asyncio.wait_for(reader, 2)
    final = next(m for m in got if m["type"] == "Results" and m["speech_final"])
    assert final["channel"]["alternatives"][0]["transcript"] == "hello there"


async def test_keepalive_then_idle_timeout(sim: SimulatorStack) -> None:
    ws = await _connect(sim, "encoding=mulaw&sample_rate=8000")
    loop = asyncio.get_running_loop()
    for _ in range(4):  # 2 s of KeepAlive: longer than the 1.5 s idle timeout
        await asyncio.sleep(0.5)
        await ws.send(json.dumps({"type": "KeepAlive"}))
    quiet_from = loop.time()
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 3)
    # The watchdog looks every 0.25 s and closes 1.5 s after the last message: never sooner;
    # a busy machine may make it late (a second of slack).
    quiet = loop.time() - quiet_from
    assert 1.5 - 0.02 <= quiet < 1.5 + 0.25 + 1.0, quiet
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1011 and closed.value.rcvd.reason == "NET-0001"


async def test_handshake_errors(sim: SimulatorStack) -> None:
    with pytest.raises(websockets.InvalidStatus) as no_key:
        await _connect(sim, "encoding=mulaw&sample_rate=8000", key=None)
    assert no_key.value.response.status_code == 401
    with pytest.raises(websockets.InvalidStatus) as bad:
        await _connect(sim, "encoding=opus&sample_rate=48000")
    assert bad.value.response.status_code == 400
