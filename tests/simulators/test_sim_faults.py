"""Vendor faults on demand (``/_sim/faults``): each fault looks on the wire like the real outage
(OpenAI's error JSON and ``retry-after``, a hung request, a stream cut short; Deepgram and
ElevenLabs refusing the handshake or closing the socket with 1011), through the vendors' own SDKs
where the services use them. Every rule is scoped to this test (``match`` / ``tag``), so tests
sharing the simulators are not hit."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
import websockets
from openai import AsyncOpenAI

from simulators import SimulatorStack
from tests.simulators.test_sim_deepgram import send_realtime, silence, speak

MESSAGES = [
    {"role": "system", "content": "You are Alex.\n### CALL FACTS\nstate: greeting\n"},
    {"role": "user", "content": "Hello?"},
]


@pytest.fixture
async def control(sim: SimulatorStack, http: aiohttp.ClientSession) -> AsyncIterator[str]:
    assert sim.urls is not None
    yield sim.urls.control
    async with http.delete(f"{sim.urls.control}/faults") as r:
        assert r.status == 204


async def add(http: aiohttp.ClientSession, control: str, body: Any) -> list[dict[str, Any]]:
    async with http.post(f"{control}/faults", json=body) as r:
        assert r.status == 201, await r.text()
        rules: list[dict[str, Any]] = (await r.json())["rules"]
        return rules


async def faults(http: aiohttp.ClientSession, control: str) -> dict[str, Any]:
    async with http.get(f"{control}/faults") as r:
        data: dict[str, Any] = await r.json()
        return data


def client(sim: SimulatorStack, **kw: Any) -> AsyncOpenAI:
    assert sim.urls is not None
    return AsyncOpenAI(api_key="sk-test", base_url=sim.urls.openai, **kw)


async def ask(c: AsyncOpenAI, key: str) -> str:
    r = await c.chat.completions.create(
        model="gpt-5-mini", messages=MESSAGES, prompt_cache_key=key, reasoning_effort="minimal"
    )
    return r.choices[0].message.content or ""


def openai_records(sim: SimulatorStack, key: str) -> list[dict[str, Any]]:
    assert sim.network is not None
    return [r for r in sim.network.records.openai if r["params"].get("prompt_cache_key") == key]


# ---- the control API ------------------------------------------------------------------------


async def test_faults_are_validated_listed_cleared_and_reset(
    sim: SimulatorStack, http: aiohttp.ClientSession, control: str
) -> None:
    for bad in (
        [],
        {"twilio": {"status": 500}},
        {"openai": {"status": 200}},
        {"openai": {"status": 500, "hang_s": 1}},
        {"openai": {"count": 1}},
        {"openai": {"hang_s": 1, "retry_after_s": 1}},
        {"deepgram": {"drop_after_texts": 1}},
        {"elevenlabs": {"drop_after_texts": -1}},
        {"elevenlabs": {"drop_after_texts": 1, "count": "once"}},
        {"deepgram": {"drop_after_s": 1, "close_code": 1005}},
    ):
        async with http.post(f"{control}/faults", json=bad) as r:
            assert r.status == 400, bad
    rules = await add(
        http,
        control,
        {
            "openai": [{"status": 429, "count": 2, "retry_after_s": 1}, {"hang_s": 30}],
            "deepgram": {"drop_after_s": 2.0, "number": "+1 555 000 1234", "count": None},
            "elevenlabs": {"drop_after_texts": 3, "match": "Jane"},
        },
    )
    assert [r["vendor"] for r in rules] == ["openai", "openai", "deepgram", "elevenlabs"]
    assert rules[0] | {"id": 0} == {
        "id": 0,
        "vendor": "openai",
        "status": 429,
        "retry_after_s": 1,
        "remaining": 2,
        "fired": 0,
    }
    assert rules[2]["number"] == "+15550001234" and rules[2]["remaining"] is None
    assert rules[2]["close_code"] == 1011
    listed = await faults(http, control)
    assert [r["id"] for r in listed["rules"]] == [r["id"] for r in rules]
    assert listed["fired"] == []
    async with http.delete(f"{control}/faults") as r:
        assert r.status == 204
    assert (await faults(http, control))["rules"] == []
    await add(http, control, {"openai": {"status": 500, "match": "nobody-sends-this"}})
    async with http.post(f"{control}/reset") as r:
        assert r.status == 204
    assert (await faults(http, control))["rules"] == []


# ---- OpenAI ----------------------------------------------------------------------------------


async def test_openai_429_carries_retry_after_and_the_sdk_honours_it(
    sim: SimulatorStack, http: aiohttp.ClientSession, control: str
) -> None:
    key = f"rl-{uuid.uuid4()}"
    await add(
        http, control, {"openai": {"status": 429, "count": 2, "retry_after_s": 0.4, "match": key}}
    )
    assert sim.urls is not None
    # On the wire: OpenAI's rate-limit error, with the delay in both headers.
    body = {"model": "gpt-5-mini", "messages": MESSAGES, "prompt_cache_key": key}
    headers = {"Authorization": "Bearer sk-test"}
    async with http.post(f"{sim.urls.openai}/chat/completions", json=body, headers=headers) as r:
        assert r.status == 429
        assert r.headers["retry-after"] == "1" and r.headers["retry-after-ms"] == "400"
        error = (await r.json())["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "tokens"
    assert "Please try again in 0.4s" in error["message"]
    # The SDK retries after the server's delay (retry-after-ms) and gets the answer.
    loop = asyncio.get_running_loop()
    c = client(sim, max_retries=2)
    t0 = loop.time()
    assert "Alex" in await ask(c, key)
    # Two waits of 0.4 s; the SDK's sleep may wake a millisecond early (CI saw 0.7996 s).
    assert loop.time() - t0 >= 2 * 0.4 - 0.02
    await c.close()
    recs = openai_records(sim, key)
    assert [r["fault"]["status"] if "fault" in r else 200 for r in recs] == [429, 429, 200]
    assert recs[0]["usage"]["total_tokens"] == 0 and recs[0]["reply"] is None
    state = await faults(http, control)
    assert state["rules"][0]["remaining"] == 0 and state["rules"][0]["fired"] == 2
    assert [f["kind"] for f in state["fired"]] == ["status", "status"]


async def test_openai_500_is_scoped_by_match_and_count(
    sim: SimulatorStack, http: aiohttp.ClientSession, control: str
) -> None:
    key, other = f"se-{uuid.uuid4()}", f"ok-{uuid.uuid4()}"
    await add(http, control, {"openai": {"status": 500, "count": 1, "match": key}})
    c = client(sim, max_retries=0)
    assert await ask(c, other)  # another caller is not hit
    with pytest.raises(openai.InternalServerError) as err:
        await ask(c, key)
    assert err.value.status_code == 500
    assert err.value.body == {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert await ask(c, key)  # count spent
    await c.close()
    assert ["fault" in r for r in openai_records(sim, key)] == [True, False]


async def test_openai_hang_outlasts_the_client_timeout(
    sim: SimulatorStack, http: aiohttp.ClientSession, control: str
) -> None:
    key = f"hang-{uuid.uuid4()}"
    await add(
        http, control, {"openai": [{"hang_s": 30, "match": key}, {"hang_s": 0.3, "match": key}]}
    )
    loop = asyncio.get_running_loop()
    c = client(sim, max_retries=0, timeout=0.5)
    t0 = loop.time()
    with pytest.raises(openai.APITimeoutError):
        await ask(c, key)
    # The client's read timeout (0.5 s) fires no sooner; a busy machine may make it late.
    gave_up = loop.time() - t0
    assert 0.5 - 0.02 <= gave_up < 0.5 + 1.0, gave_up
    # A hang shorter than the timeout is just a slow answer.
    await c.close()
    c = client(sim, max_retries=0, timeout=5.0)
    t0 = loop.time()
    assert await ask(c, key)
    assert loop.time() - t0 >= 0.3 + sim.config.openai_ttft_ms / 1000
    await c.close()
    recs = openai_records(sim, key)
    assert len(recs) == 2
    assert recs[0]["fault"]["hang_s"] == 30
    # Measured by the simulator from when its handler started (after the client's timer did),
    # polling every 50 ms: about 0.5 s, and late by at most about a second on a busy machine.
    assert 0.5 - 0.25 <= recs[0]["fault"]["client_gave_up_after_s"] < 0.5 + 1.0
    assert "fault" not in recs[1] and recs[1]["usage"]["total_tokens"] > 0


async def test_openai_stream_dropped_mid_way(
    sim: SimulatorStack, http: aiohttp.ClientSession, control: str
) -> None:
    key = f"drop-{uuid.uuid4()}"
    await add(http, control, {"openai": {"drop_mid_stream_after_chunks": 3, "match": key}})
    c = client(sim, max_retries=0)
    stream = await c.chat.completions.create(
        model="gpt-5-mini",
        messages=MESSAGES,
        prompt_cache_key=key,
        stream=True,
        stream_options={"include_usage": True},
    )
    got: list[Any] = []
    with pytest.raises(openai.APIConnectionError):  # the SDK's name for a cut transport
        async for chunk in stream:
            got.append(chunk)
    assert len(got) == 3 and all(ch.choices[0].finish_reason is None for ch in got)
    await c.close()
    (rec,) = openai_records(sim, key)
    assert rec["fault"]["drop_mid_stream_after_chunks"] == 3
    assert rec["usage"]["total_tokens"] == 0


# ---- Deepgram --------------------------------------------------------------------------------

LISTEN = "encoding=mulaw&sample_rate=8000&interim_results=true&endpointing=300&punctuate=true"


async def _listen(sim: SimulatorStack, tag: str) -> Any:
    assert sim.urls is not None
    return await websockets.connect(
        f"{sim.urls.deepgram_ws}/v1/listen?{LISTEN}&tag={tag}",
        additional_headers={"Authorization": "Token k"},
    )


async def _read(ws: Any, out: list[dict[str, Any]]) -> None:
    try:
        async for raw in ws:
            out.append(json.loads(raw))
    except websockets.ConnectionClosed:
        pass


async def test_deepgram_refuses_the_handshake_for_one_tag(
    sim: SimulatorStack, http: aiohttp.ClientSession, control: str
) -> None:
    tag = f"CA-down-{uuid.uuid4().hex[:8]}"
    await add(http, control, {"deepgram": {"status": 503, "tag": tag, "count": None}})
    for _ in range(2):
        with pytest.raises(websockets.InvalidStatus) as err:
            await _listen(sim, tag)
        assert err.value.response.status_code == 503
        assert json.loads(err.value.response.body)["err_code"] == "SERVICE_UNAVAILABLE"
    ws = await _listen(sim, "CA-someone-else")
    await ws.close()
    assert [f["tags"] for f in (await faults(http, control))["fired"]] == [[tag], [tag]]


async def test_deepgram_drops_after_seconds_of_audio_with_1011(
    sim: SimulatorStack, http: aiohttp.ClientSession, control: str
) -> None:
    tag = f"CA-drop-{uuid.uuid4().hex[:8]}"
    await add(http, control, {"deepgram": {"drop_after_s": 0.5, "tag": tag}})
    ws = await _listen(sim, tag)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await send_realtime(ws.send, silence(2.0))
        await ws.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1011, "NET-0000")
    async with http.get(f"{control}/deepgram", params={"tag": tag}) as r:
        (rec,) = await r.json()
    assert rec["close_code"] == 1011 and rec["fault"] is not None
    assert rec["audio_seconds"] == pytest.approx(0.5, abs=0.05)
    ws = await _listen(sim, tag)  # count spent: the next connection is fine
    await send_realtime(ws.send, silence(0.6))
    await ws.close()
    assert ws.close_code == 1000


async def test_deepgram_drop_mid_line_then_a_new_connection_hears_the_rest(
    sim: SimulatorStack, http: aiohttp.ClientSession, control: str
) -> None:
    """Cut after two words; a client reconnecting and sending the audio from there on gets the
    remaining words only: together, the line, word for word."""
    tag = f"CA-mid-{uuid.uuid4().hex[:8]}"
    await add(http, control, {"deepgram": {"drop_after_words": 2, "tag": tag}})
    ws = await _listen(sim, tag)
    first: list[dict[str, Any]] = []
    reader = asyncio.create_task(_read(ws, first))
    text = "Oh, right. Yes, I can pay the full amount today."
    speech = speak(sim, tag, text)
    sent = 0
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while not reader.done() and sent < len(speech.audio):  # real time, until the drop
        try:
            await ws.send(speech.audio[sent : sent + 160])
        except websockets.ConnectionClosed:
            break
        sent += 160
        await asyncio.sleep(max(0.0, t0 + sent / 8000 - loop.time()))
    await asyncio.wait_for(reader, 2)
    assert ws.close_code == 1011
    heard = [m["channel"]["alternatives"][0]["transcript"] for m in first if m["type"] == "Results"]
    assert heard and heard[-1] == "Oh, right."
    # The client reconnects and sends the audio after the last word it got (kept, plus what
    # the phone said meanwhile) at once, then goes on in real time.
    last_end = max(
        w["end"]
        for m in first
        if m["type"] == "Results"
        for w in m["channel"]["alternatives"][0]["words"]
    )
    resume = int(last_end * 8000) // 160 * 160
    ws2 = await _listen(sim, tag)
    second: list[dict[str, Any]] = []
    reader2 = asyncio.create_task(_read(ws2, second))
    now = int((loop.time() - t0) * 8000) // 160 * 160
    await ws2.send(speech.audio[resume:now])
    await send_realtime(ws2.send, speech.audio[now:] + silence(0.5))
    await ws2.send(json.dumps({"type": "CloseStream"}))
    await asyncio.wait_for(reader2, 3)
    finals = [m for m in second if m["type"] == "Results" and m["is_final"]]
    rest = " ".join(m["channel"]["alternatives"][0]["transcript"] for m in finals).strip()
    assert f"{heard[-1]} {rest}" == text


# ---- ElevenLabs ------------------------------------------------------------------------------


def _tts_url(sim: SimulatorStack) -> str:
    assert sim.urls is not None
    return (
        f"{sim.urls.elevenlabs_ws}/v1/text-to-speech/v1/multi-stream-input"
        "?model_id=eleven_flash_v2_5&output_format=ulaw_8000&auto_mode=true"
    )


async def test_elevenlabs_drops_the_socket_after_matching_texts(
    sim: SimulatorStack, http: aiohttp.ClientSession, control: str
) -> None:
    name = f"Jane {uuid.uuid4().hex[:6]}"
    await add(
        http, control, {"elevenlabs": {"drop_after_texts": 3, "match": name, "delay_ms": 300}}
    )
    other = await websockets.connect(_tts_url(sim), additional_headers={"xi-api-key": "k"})
    ws = await websockets.connect(_tts_url(sim), additional_headers={"xi-api-key": "k"})
    got: list[dict[str, Any]] = []
    reader = asyncio.create_task(_read(ws, got))
    await ws.send(json.dumps({"text": " ", "context_id": "c1"}))
    await ws.send(json.dumps({"text": "Good morning. ", "context_id": "c1", "flush": True}))
    await ws.send(json.dumps({"text": f"Am I speaking with {name}? ", "context_id": "c1"}))
    await other.send(json.dumps({"text": f"Hello {name}. ", "context_id": "x"}))  # not armed
    await ws.send(json.dumps({"text": "Thank you. ", "context_id": "c1", "flush": True}))
    loop = asyncio.get_running_loop()
    sent_third = loop.time()
    await ws.send(json.dumps({"text": "Your balance is due. ", "context_id": "c1"}))
    await asyncio.wait_for(reader, 3)
    assert loop.time() - sent_third >= 0.3
    assert ws.close_code == 1011
    assert got[-1] == {"message": "An internal server error occurred.", "error": "internal_error"}
    assert any("audio" in m for m in got)  # it spoke before it failed
    await other.send(json.dumps({"text": "Still here. ", "context_id": "x", "flush": True}))
    assert "audio" in json.loads(await asyncio.wait_for(other.recv(), 2))
    await other.close()
    fired = (await faults(http, control))["fired"]
    assert len(fired) == 1 and fired[0]["close_code"] == 1011


async def test_elevenlabs_refuses_the_handshake(
    sim: SimulatorStack, http: aiohttp.ClientSession, control: str
) -> None:
    await add(http, control, {"elevenlabs": {"status": 503, "count": 1}})
    with pytest.raises(websockets.InvalidStatus) as err:
        await websockets.connect(_tts_url(sim), additional_headers={"xi-api-key": "k"})
    assert err.value.response.status_code == 503
    ws = await websockets.connect(_tts_url(sim), additional_headers={"xi-api-key": "k"})
    await ws.close()
