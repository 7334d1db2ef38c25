"""ElevenLabs simulator: stream-input and multi-stream-input WebSockets (plain websockets: the
SDK's realtime helper always dials wss://, so services build this URL from the base URL)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
import websockets

from simulators import SimulatorStack

VOICE = "21m00Tcm4TlvDq8ikWAM"


def _url(sim: SimulatorStack, endpoint: str, **query: str) -> str:
    assert sim.urls is not None
    q = "&".join(f"{k}={v}" for k, v in {"model_id": "eleven_flash_v2_5", **query}.items())
    return f"{sim.urls.elevenlabs_ws}/v1/text-to-speech/{VOICE}/{endpoint}?{q}"


async def _records(sim: SimulatorStack, http: Any) -> list[dict[str, Any]]:
    assert sim.urls is not None
    async with http.get(f"{sim.urls.control}/elevenlabs") as resp:
        data: list[dict[str, Any]] = await resp.json()
        return data


async def test_stream_input_flush_alignment_and_close(sim: SimulatorStack, http: Any) -> None:
    loop = asyncio.get_running_loop()
    ws = await websockets.connect(
        _url(sim, "stream-input", output_format="ulaw_8000"),
        additional_headers={"xi-api-key": "xi-test"},
    )
    await ws.send(json.dumps({"text": " ", "voice_settings": {"stability": 0.5, "speed": 1.0}}))
    sentence = "Hello, this is Alex from Acme Finance. "
    for word in sentence.split(" ")[:-1]:
        await ws.send(json.dumps({"text": word + " ", "try_trigger_generation": False}))
    await asyncio.sleep(0.3)  # under 120 characters buffered: nothing is generated yet
    flushed_at = loop.time()
    await ws.send(json.dumps({"text": "", "flush": True}))
    first = json.loads(await asyncio.wait_for(ws.recv(), 2))
    ttfb = sim.config.elevenlabs_ttfb_ms / 1000
    # The simulator sleeps until (time it read the flush) + ttfb, so the first audio is never
    # early; on a busy machine it may be late, hence a second of slack (no wait still fails).
    waited = loop.time() - flushed_at
    assert ttfb - 0.005 <= waited < ttfb + 1.0, waited
    audio_msgs = [first]
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 2))
        audio_msgs.append(msg)
        chars = sum(len(m["alignment"]["chars"]) for m in audio_msgs)
        if chars >= len(sentence.strip()):
            break
    for m in audio_msgs:
        assert set(m) == {"audio", "isFinal", "normalizedAlignment", "alignment"}
        al = m["alignment"]
        assert len(al["chars"]) == len(al["charStartTimesMs"]) == len(al["charDurationsMs"])
        assert al["charStartTimesMs"][0] < 200  # relative to the chunk, per the docs
    text = "".join(c for m in audio_msgs for c in m["alignment"]["chars"])
    assert text == sentence.strip()
    audio = b"".join(base64.b64decode(m["audio"]) for m in audio_msgs)
    assert len(audio) == pytest.approx(len(sentence.strip()) * sim.config.ms_per_char * 8, abs=8)

    await ws.send(json.dumps({"text": "Goodbye. "}))
    await ws.send(json.dumps({"text": ""}))  # end of input
    rest = [json.loads(m) async for m in ws]
    assert rest[-1] == {"isFinal": True}
    assert "".join(c for m in rest[:-1] for c in m["alignment"]["chars"]) == "Goodbye."
    assert ws.close_code == 1000

    rec = (await _records(sim, http))[-1]
    ctx = rec["contexts"][0]
    assert rec["endpoint"] == "stream-input" and rec["voice_id"] == VOICE
    assert ctx["characters"] == len(sentence) + len("Goodbye. ")
    assert ctx["generations"] == [sentence.strip(), "Goodbye."] and ctx["flushes"] == 1


async def test_multi_context_close_context_and_close_socket(sim: SimulatorStack, http: Any) -> None:
    ws = await websockets.connect(_url(sim, "multi-stream-input", output_format="ulaw_8000"))
    long = "This is a long answer that the debtor will interrupt halfway through it. " * 3
    await ws.send(json.dumps({"text": " ", "context_id": "turn-1", "xi_api_key": "xi-test"}))
    # No flush: the first 120+ characters are generated (chunk_length_schedule), the rest waits.
    await ws.send(json.dumps({"text": long, "context_id": "turn-1"}))
    got: list[dict[str, Any]] = []
    while len(got) < 2:
        got.append(json.loads(await asyncio.wait_for(ws.recv(), 2)))
    assert all(m["contextId"] == "turn-1" and "audio" in m for m in got)
    await ws.send(json.dumps({"context_id": "turn-1", "close_context": True}))
    await ws.send(json.dumps({"text": "Sure. ", "context_id": "turn-2"}))
    await ws.send(json.dumps({"context_id": "turn-2", "flush": True}))
    await ws.send(json.dumps({"text": "", "context_id": "turn-2"}))  # keep-alive
    await ws.send(json.dumps({"close_socket": True}))
    rest = got + [json.loads(m) async for m in ws]
    finals = [m for m in rest if m.get("isFinal")]
    assert {m["contextId"] for m in finals} == {"turn-1", "turn-2"}
    turn1 = [m for m in rest if m.get("contextId") == "turn-1" and "audio" in m]
    turn2 = [m for m in rest if m.get("contextId") == "turn-2" and "audio" in m]
    assert "".join(c for m in turn2 for c in m["alignment"]["chars"]) == "Sure."

    rec = (await _records(sim, http))[-1]
    by_id = {c["context_id"]: c for c in rec["contexts"]}
    t1 = by_id["turn-1"]
    assert t1["characters"] == len(long) and t1["closed_by"] == "close_context"
    # Only the generation already triggered was spoken; the unflushed rest was dropped.
    assert len(t1["generations"]) == 1 and 120 <= t1["characters_generated"] < len(long)
    assert "".join(c for m in turn1 for c in m["alignment"]["chars"]) == t1["generations"][0]
    assert by_id["turn-2"]["characters"] == len("Sure. ")
    assert rec["characters"] == len(long) + len("Sure. ")


async def test_auth_and_context_limit(sim: SimulatorStack) -> None:
    ws = await websockets.connect(_url(sim, "stream-input", output_format="ulaw_8000"))
    await ws.send(json.dumps({"text": " "}))  # no xi-api-key anywhere
    err = json.loads(await asyncio.wait_for(ws.recv(), 2))
    assert err["error"] == "auth_error"
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 2)
    assert ws.close_code == 1008

    ws = await websockets.connect(
        _url(sim, "multi-stream-input", output_format="pcm_16000"),
        additional_headers={"xi-api-key": "xi-test"},
    )
    for i in range(6):
        await ws.send(json.dumps({"text": " ", "context_id": f"c{i}"}))
    err = json.loads(await asyncio.wait_for(ws.recv(), 2))
    assert err["error"] == "max_active_conversations"
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 2)
    assert ws.close_code == 1008


def test_every_character_goes_out_once_even_when_timed_past_the_audio() -> None:
    """Trailing punctuation can be timed after the last audio sample: it rides on the last
    chunk, or the client waits forever for the line's final characters."""
    from simulators.common.speech import Speech
    from simulators.elevenlabs.server import chunk_alignment

    speech = Speech(
        text="Hi, ok.",
        audio=bytes(320),  # 40 ms: two 20 ms chunks
        char_starts_ms=(0, 5, 12, 21, 30, 39, 44),  # "." starts after the audio ends
        char_durations_ms=(5, 7, 9, 9, 9, 5, 3),
        words=(),
    )
    first = chunk_alignment(speech, 0, 20, first=True, last=False)
    last = chunk_alignment(speech, 20, 40, first=False, last=True)
    assert "".join(first["chars"]) + "".join(last["chars"]) == speech.text
    assert last["charStartTimesMs"] == [1, 10, 19, 24]  # relative to the chunk
    only = chunk_alignment(speech, 0, 20, first=True, last=True)
    assert "".join(only["chars"]) == speech.text
