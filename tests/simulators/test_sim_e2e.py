"""A whole simulated call: a minimal voice agent built only from the vendors' SDKs and wire
protocols (Twilio REST + Media Stream, Deepgram live, OpenAI streaming, ElevenLabs multi-context)
talks to a persona. Proves the four simulators correlate one call through the shared network."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment
from openai import AsyncOpenAI
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from simulators import SimulatorStack
from tests.simulators.tool_lists import tool_defs

TOOLS = tool_defs(parameters={"type": "object"})
NEXT_STATE = {
    "confirm_identity": "negotiation",
    "record_payment_promise": "closing",
    "schedule_callback": "closing",
    "report_dispute": "closing",
    "report_wrong_party": "closing",
    "request_no_further_calls": "closing",
}


def prompt(state: str) -> str:
    return (
        "You are a collections voice agent.\n### CALL FACTS\n"
        f"state: {state}\nstage: early\ncompany: Acme Finance\nagent_name: Alex\n"
        "debtor_name: Jane Doe\nbalance_minor: 45000\ncurrency: USD\n"
        "balance_spoken: four hundred fifty dollars\ndue_date: 2026-11-01\n"
        "today: 2026-11-27\nlatest_promise_date: 2026-12-11\n"
    )


@dataclass
class AgentLog:
    heard: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    tools: list[tuple[str, str]] = field(default_factory=list)


async def mini_agent(
    sim: SimulatorStack,
    session: Any,
    call_sid: str,
    on_end: Callable[[], Awaitable[None]] | None = None,
) -> AgentLog:
    assert sim.urls is not None
    log = AgentLog()
    state = "greeting"
    messages: list[dict[str, Any]] = []
    finals: asyncio.Queue[str] = asyncio.Queue()
    ctx_done: dict[str, asyncio.Event] = {}
    env = DeepgramClientEnvironment(
        base=sim.urls.deepgram_http,
        production=sim.urls.deepgram_ws,
        agent=sim.urls.deepgram_ws,
        agent_rest=sim.urls.deepgram_http,
    )
    llm = AsyncOpenAI(api_key="sk-test", base_url=sim.urls.openai)
    tts = await websockets.connect(
        f"{sim.urls.elevenlabs_ws}/v1/text-to-speech/voice1/multi-stream-input"
        "?model_id=eleven_flash_v2_5&output_format=ulaw_8000",
        additional_headers={"xi-api-key": "xi-test"},
    )
    stt_ctx = AsyncDeepgramClient(api_key="dg", environment=env).listen.v1.connect(
        model="nova-3",
        encoding="mulaw",
        sample_rate="8000",
        interim_results="true",
        endpointing="300",
        punctuate="true",
        tag=call_sid,
    )

    async with stt_ctx as stt:

        async def uplink() -> None:  # Twilio -> Deepgram
            while True:
                msg = await session.queue.get()
                if msg["event"] == "media":
                    await stt.send_media(base64.b64decode(msg["media"]["payload"]))
                elif msg["event"] == "stop":
                    await stt.send_close_stream()
                    return

        async def transcripts() -> None:  # Deepgram -> turns
            pending = ""
            async for m in stt:
                if getattr(m, "type", None) == "Results" and m.is_final:
                    pending = (pending + " " + m.channel.alternatives[0].transcript).strip()
                    if m.speech_final and pending:
                        finals.put_nowait(pending)
                        pending = ""

        async def downlink() -> None:  # ElevenLabs -> Twilio
            async for raw in tts:
                m = json.loads(raw)
                if m.get("audio"):
                    await session.send_media(base64.b64decode(m["audio"]))
                if m.get("isFinal"):
                    ctx_done[m["contextId"]].set()

        async def speak(text: str) -> None:
            ctx = f"turn-{len(log.said)}"
            ctx_done[ctx] = asyncio.Event()
            for sentence in re.findall(r"[^.?!]+[.?!]", text):
                await tts.send(json.dumps({"text": sentence.strip() + " ", "context_id": ctx}))
                await tts.send(json.dumps({"context_id": ctx, "flush": True}))
            await tts.send(json.dumps({"context_id": ctx, "close_context": True}))
            await ctx_done[ctx].wait()
            await session.send(
                {"event": "mark", "streamSid": session.stream_sid, "mark": {"name": ctx}}
            )
            log.said.append(text)

        tasks = [asyncio.create_task(t()) for t in (uplink, transcripts, downlink)]
        try:
            ended = False
            while not ended:
                heard = await asyncio.wait_for(finals.get(), 10)
                log.heard.append(heard)
                messages.append({"role": "user", "content": heard})
                while True:
                    stream = await llm.chat.completions.create(
                        model="gpt-5-mini",
                        messages=[{"role": "system", "content": prompt(state)}, *messages],
                        tools=TOOLS,
                        reasoning_effort="minimal",
                        stream=True,
                    )
                    text, calls = "", {}
                    async for chunk in stream:
                        delta = chunk.choices[0].delta if chunk.choices else None
                        if delta and delta.content:
                            text += delta.content
                        for tc in (delta.tool_calls if delta else None) or []:
                            c = calls.setdefault(tc.index, {"id": "", "name": "", "args": ""})
                            c["id"] += tc.id or ""
                            c["name"] += tc.function.name or "" if tc.function else ""
                            c["args"] += tc.function.arguments or "" if tc.function else ""
                    if text:
                        await speak(text)
                    if not calls:
                        messages.append({"role": "assistant", "content": text})
                        break
                    messages.append(
                        {
                            "role": "assistant",
                            "content": text or None,
                            "tool_calls": [
                                {
                                    "id": c["id"],
                                    "type": "function",
                                    "function": {"name": c["name"], "arguments": c["args"]},
                                }
                                for c in calls.values()
                            ],
                        }
                    )
                    for c in calls.values():
                        log.tools.append((c["name"], c["args"]))
                        state = NEXT_STATE.get(c["name"], state)
                        ended = ended or c["name"] == "end_call"
                        result = {"ok": True, "message": "done", "state": state}
                        messages.append(
                            {"role": "tool", "tool_call_id": c["id"], "content": json.dumps(result)}
                        )
                    if ended:
                        break
            if on_end is not None:
                await on_end()  # e.g. hang up through the REST API
            # The persona hangs up after the goodbye has played.
            await asyncio.wait_for(tasks[0], 10)
            await asyncio.wait_for(tasks[1], 5)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await tts.close()
            await llm.close()
    return log


async def test_cooperative_call_end_to_end(
    sim: SimulatorStack,
    service: Any,
    number_for: Any,
    call_record: Any,
    creds: tuple[str, str],
    http: Any,
) -> None:
    assert sim.urls is not None
    number = await number_for("cooperative", time_scale=0.5)
    twilio = Client(*creds, http_client=AsyncTwilioHttpClient())
    twilio.api.base_url = sim.urls.twilio
    call = await twilio.calls.create_async(
        to=number,
        from_="+15550001111",
        twiml=service.twiml(),
        status_callback=f"{service.base}/status",
        status_callback_event=["answered", "completed"],
    )
    session = await service.wait_stream(call.sid)
    log = await asyncio.wait_for(mini_agent(sim, session, call.sid), 40)
    await twilio.http_client.close()  # type: ignore[attr-defined]

    # Deepgram returned exactly the persona's lines, found through tag=<CallSid>.
    assert log.heard == [
        "Hello?",
        "Yes, speaking.",
        "Oh, right. Yes, I can pay the full amount today.",
    ]
    assert [name for name, _ in log.tools] == [
        "confirm_identity",
        "record_payment_promise",
        "end_call",
    ]
    assert json.loads(log.tools[1][1]) == {
        "amount_minor": 45000,
        "currency": "USD",
        "date": "2026-11-27",
    }
    assert log.said[0].startswith("Hello, this is Alex, an AI assistant calling from Acme Finance")

    rec = await call_record(call.sid, wait=5)
    stream = rec["streams"][0]
    assert rec["status"] == "completed" and stream["stop_reason"] == "persona_hangup"
    assert [ln["text"] for ln in stream["debtor_lines"]] == log.heard
    assert stream["overlap_ms"] == 0 and stream["errors"] == []
    # One mark per text spoken: the greeting, then (as GPT-5 does) the words said with each tool
    # call ("Thank you, Jane.", "Okay.") and the text after each tool result.
    assert len(log.said) == 5 and log.said[1] == "Thank you, Jane."
    assert [m["name"] for m in stream["marks"]] == [f"turn-{i}" for i in range(len(log.said))]
    assert all(m["echoed_at_ms"] is not None and not m["cleared"] for m in stream["marks"])
    # Every word the agent said was played to the debtor (tone voice: ms_per_char each).
    said_chars = sum(len(s.strip()) for s in re.findall(r"[^.?!]+[.?!]", " ".join(log.said)))
    assert abs(stream["agent_audio_ms"] - said_chars * sim.config.ms_per_char) < 200
    statuses = [
        c["params"]["CallStatus"] for c in service.callbacks if c["params"]["CallSid"] == call.sid
    ]
    assert statuses == ["in-progress", "completed"]

    async with http.get(f"{sim.urls.control}/elevenlabs") as resp:
        tts = [r for r in await resp.json() if r["endpoint"] == "multi-stream-input"][-1]
    assert [c["context_id"] for c in tts["contexts"]] == [f"turn-{i}" for i in range(len(log.said))]
    assert tts["characters"] == sum(
        len(s.strip()) + 1 for s in re.findall(r"[^.?!]+[.?!]", " ".join(log.said))
    )


async def test_barge_in_detected_by_deepgram_and_cleared(
    sim: SimulatorStack, service: Any, number_for: Any, call_record: Any, creds: tuple[str, str]
) -> None:
    """The debtor talks over the agent: Deepgram (tag=CallSid) reports SpeechStarted, the agent
    sends Twilio ``clear``, the pending mark comes back at once and the overlap is short."""
    assert sim.urls is not None
    line = "Hold on, I already paid that."
    number = await number_for(
        {
            "name": "barge",
            "ring_ms": 50,
            "hangup": "after_last_line",
            "hangup_delay_ms": 600,
            "lines": [{"text": line, "after": "agent_start", "delay_ms": 400}],
        }
    )
    twilio = Client(*creds, http_client=AsyncTwilioHttpClient())
    twilio.api.base_url = sim.urls.twilio
    call = await twilio.calls.create_async(to=number, from_="+15550001111", twiml=service.twiml())
    await twilio.http_client.close()  # type: ignore[attr-defined]
    session = await service.wait_stream(call.sid)
    env = DeepgramClientEnvironment(
        base=sim.urls.deepgram_http,
        production=sim.urls.deepgram_ws,
        agent=sim.urls.deepgram_ws,
        agent_rest=sim.urls.deepgram_http,
    )
    stt_ctx = AsyncDeepgramClient(api_key="dg", environment=env).listen.v1.connect(
        model="nova-3",
        encoding="mulaw",
        sample_rate="8000",
        vad_events="true",
        endpointing="200",
        punctuate="true",
        tag=call.sid,
    )
    async with stt_ctx as stt:

        async def uplink() -> None:
            while True:
                msg = await session.queue.get()
                if msg["event"] == "media":
                    await stt.send_media(base64.b64decode(msg["media"]["payload"]))
                elif msg["event"] == "stop":
                    await stt.send_close_stream()
                    return

        forward = asyncio.create_task(uplink())
        await session.send_media(b"\x10" * 24000)  # 3 s of agent speech
        await session.send(
            {"event": "mark", "streamSid": session.stream_sid, "mark": {"name": "a"}}
        )
        transcript = ""
        started_at: list[float] = []  # SpeechStarted timestamps (audio time, s)
        async for m in stt:
            if m.type == "SpeechStarted":
                started_at.append(m.timestamp)
                await session.send({"event": "clear", "streamSid": session.stream_sid})
            elif m.type == "Results" and m.is_final:
                transcript += m.channel.alternatives[0].transcript
            elif m.type == "Metadata":
                break
        await asyncio.wait_for(forward, 5)

    assert transcript == line
    rec = await call_record(call.sid, wait=3)
    stream = rec["streams"][0]
    (mark,) = stream["marks"]
    assert mark["name"] == "a" and mark["cleared"]
    clear = stream["clears"][0]
    late_ms = 20 * stream["frames_late"]  # stream time skipped by a clock that fell behind
    # The pending mark is echoed on the next frame (ticks a busy machine skipped aside).
    assert clear["at_ms"] + 20 <= mark["echoed_at_ms"] <= clear["at_ms"] + 20 + late_ms
    debtor = stream["debtor_lines"][0]
    # Deepgram hears the debtor on the first voiced frame: its audio time is the stream's, less
    # the frames the clock skipped (never forwarded). Exact, whatever the load.
    (heard_ms,) = [round(t * 1000) for t in started_at]
    assert debtor["start_ms"] - late_ms <= heard_ms <= debtor["start_ms"]
    # Agent audio kept playing only until the clear: every frame from the debtor's first to the
    # clear's (or to the line's end), and none after (skipped ticks play nothing).
    reaction = clear["at_ms"] - debtor["start_ms"]
    spoken = min(reaction + 20, debtor["end_ms"] - debtor["start_ms"])
    assert spoken - late_ms <= stream["overlap_ms"] <= reaction + 20
    # The reaction itself is a few frames (the path through Deepgram and back: 20-60 ms when
    # the machine is idle); it is wall-clock time, so a busy machine gets a second of slack.
    assert 0 <= reaction <= 60 + 1000, reaction
    assert clear["dropped_bytes"] > 8000
