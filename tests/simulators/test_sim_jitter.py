"""Latency jitter (seeded log-normal draws) and the Twilio media-leg delay of the `jittery`
bench profile."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from simulators import SimConfig, SimulatorStack
from simulators.config import load_config
from simulators.network import PhoneNetwork


def _draws(seed: int, n: int, median_s: float = 0.65, sigma: float = 0.32) -> list[float]:
    net = PhoneNetwork(SimConfig(latency_seed=seed))
    return [net.jittered("openai", median_s, sigma) for _ in range(n)]


def test_jitter_is_seeded_log_normal() -> None:
    a, b = _draws(7, 4000), _draws(7, 4000)
    assert a == b  # same seed, same latencies
    assert _draws(8, 50) != a[:50]
    ms = sorted(x * 1000 for x in a)
    assert statistics.median(ms) == pytest.approx(650, rel=0.05)
    assert ms[int(0.95 * len(ms))] == pytest.approx(1100, rel=0.07)
    net = PhoneNetwork(SimConfig())
    assert net.jittered("openai", 0.65, 0.0) == 0.65  # sigma 0: the fixed latency
    # One sequence per vendor: Deepgram draws do not shift OpenAI's.
    mixed = PhoneNetwork(SimConfig(latency_seed=7))
    out = []
    for _ in range(20):
        mixed.jittered("deepgram", 0.1, 0.35)
        out.append(mixed.jittered("openai", 0.65, 0.32))
    assert out == a[:20]


def test_jitter_settings_are_flags_and_env() -> None:
    cfg = load_config(
        ["--openai-ttft-sigma", "0.32", "--twilio-media-latency-ms", "40"],
        {"SIM_LATENCY_SEED": "11", "SIM_ELEVENLABS_TTFB_SIGMA": "0.3"},
    )
    assert cfg.openai_ttft_sigma == 0.32 and cfg.twilio_media_latency_ms == 40
    assert cfg.latency_seed == 11 and cfg.elevenlabs_ttfb_sigma == 0.3


@pytest.fixture(scope="module")
async def slow_leg(sim: SimulatorStack) -> AsyncIterator[SimulatorStack]:
    # The tests' settings, on other free ports, with a 40 ms media leg each way.
    async with SimulatorStack(replace(sim.config, twilio_media_latency_ms=40.0)) as stack:
        yield stack


async def test_media_leg_latency_delays_both_directions(
    slow_leg: SimulatorStack, service: Any, creds: tuple[str, str]
) -> None:
    assert slow_leg.urls is not None
    number = "+15559990040"
    async with aiohttp.ClientSession() as http:
        body = {"number": number, "persona": {"name": "listener", "ring_ms": 50, "hangup": "never"}}
        async with http.post(f"{slow_leg.urls.control}/numbers", json=body) as resp:
            assert resp.status == 201
        client = Client(*creds, http_client=AsyncTwilioHttpClient())
        client.api.base_url = slow_leg.urls.twilio
        try:
            call = await client.calls.create_async(
                to=number, from_="+15550001111", twiml=service.twiml()
            )
            session = await service.wait_stream(call.sid)
            loop = asyncio.get_running_loop()
            await asyncio.sleep(0.5)
            lags = [
                at - float(m["media"]["timestamp"]) / 1000
                for m, at in zip(session.messages, session.arrivals, strict=True)
                if m["event"] == "media"
            ]
            # Us → phone → us: 0.5 s of audio and a mark come back after 0.5 s + 2 × 40 ms.
            sent_at = loop.time()
            await session.send_media(b"\x10" * 4000)
            await session.send(
                {"event": "mark", "streamSid": session.stream_sid, "mark": {"name": "m"}}
            )
            await session.next_event("mark", within=3)
            back = loop.time() - sent_at
            # A clear takes effect 40 ms after we send it: that much more audio is heard.
            await session.send_media(b"\x20" * 8000)
            await asyncio.sleep(0.3)
            await session.send({"event": "clear", "streamSid": session.stream_sid})
            await asyncio.sleep(0.2)
            await client.calls(call.sid).update_async(status="completed")
            async with http.get(
                f"{slow_leg.urls.control}/calls/{call.sid}", params={"wait": "3"}
            ) as r:
                rec = await r.json()
        finally:
            await client.http_client.close()  # type: ignore[attr-defined]
    stream = rec["streams"][0]
    late_ms = 20 * stream["frames_late"]  # stream time skipped by a clock that fell behind
    # Phone → us: frame n leaves two frames (40 ms) after its tick, and a tick is never early
    # (the clock runs at absolute times from `t0`): no frame arrives before t0 + timestamp + 40 ms.
    # A busy machine makes frames late, never early, so the upper bound has a second of slack.
    assert 0.04 - 0.005 <= min(lags) - stream["t0"] < 0.04 + 1.0, min(lags) - stream["t0"]
    # The way back: the audio waits 40 ms before a tick plays it (25 ticks), and the echo leaves
    # two ticks after the one that played the last byte: 0.04 + 0.48 + 0.04 s. Ticks are never
    # early, but a clock that fell behind plays its backlog at once (at most 200 ms and a tick;
    # further behind it skips frames), so that much earlier; late by at most about a second.
    assert 0.56 - 0.22 - 0.005 <= back < 0.56 + 1.0, back
    # On the stream timeline, exact: the mark is due when the 25th frame of its audio plays.
    first, second = stream["agent_audio"]
    echoed = stream["marks"][0]["echoed_at_ms"]
    assert (
        first["bytes"] == 4000
        and first["start_ms"] + 480 <= echoed <= first["start_ms"] + 480 + late_ms
    )
    # The clear drops the unplayed rest of the second second, whenever it took effect: how much
    # was played depends on the scheduling (nominally 300 + 40 ms of it), the sum does not.
    clear = stream["clears"][0]
    assert 0 < clear["dropped_bytes"] < 8000 and clear["dropped_bytes"] + second["bytes"] == 8000
    # It takes effect at the top of a tick, so the audio stops at that tick.
    assert second["end_ms"] <= clear["at_ms"] <= second["end_ms"] + late_ms, (clear, second)
    assert stream["errors"] == []
