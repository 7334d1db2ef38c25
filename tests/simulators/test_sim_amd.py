"""Twilio simulator: asynchronous answering-machine detection (AnsweredBy verdicts and timing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from simulators import SimulatorStack
from simulators.personas import parse_persona
from simulators.personas.runtime import SpokenLine
from simulators.twilio.amd import AmdDetector, AmdRequest

FROM = "+15550001111"
DETECT_END = {"MachineDetection": "DetectMessageEnd", "AsyncAmd": "true"}


def _run(detector: AmdDetector, lines: list[tuple[int, int]], until_ms: int) -> tuple[str, int]:
    """Feed 20 ms ticks with persona lines spoken at (start_ms, end_ms) until a verdict."""
    for ms in range(0, until_ms, 20):
        spoken = [
            SpokenLine(i, "x", a, b if b <= ms else None)
            for i, (a, b) in enumerate(lines)
            if a <= ms
        ]
        verdict = detector.tick(ms, spoken)
        if verdict is not None:
            assert detector.tick(ms + 20, spoken) is None  # said once
            return verdict
    raise AssertionError("no verdict")


def _detector(params: dict[str, str], persona: dict[str, Any] | None = None) -> AmdDetector:
    request = AmdRequest.from_params(params, 1.0)
    assert request is not None
    return AmdDetector(request, parse_persona(persona or {"name": "p"}))


def test_defaults_follow_twilio_rules() -> None:
    # A short "Hello?" and 1200 ms of silence: a person.
    assert _run(_detector(DETECT_END), [(400, 900)], 10_000) == ("human", 2100)
    # A 3 s greeting is a machine; with DetectMessageEnd the verdict waits for its end.
    assert _run(_detector(DETECT_END), [(300, 3300)], 10_000) == ("machine_end_silence", 4500)
    enable = {**DETECT_END, "MachineDetection": "Enable"}
    assert _run(_detector(enable), [(300, 3300)], 10_000)[0] == "machine_start"
    # Nothing said for MachineDetectionSilenceTimeout: unknown.
    assert _run(_detector(DETECT_END), [], 10_000) == ("unknown", 5000)
    # Talking on and on past MachineDetectionTimeout (seconds): unknown.
    params = {**DETECT_END, "MachineDetectionTimeout": "4"}
    assert _run(_detector(params), [(100, 60_000)], 70_000) == ("unknown", 4000)


def test_a_persona_declares_its_verdict_and_thresholds_scale() -> None:
    persona = {
        "name": "vm",
        "amd": {"answered_by": "machine_end_beep", "after_line": 1, "delay_ms": 100},
        "lines": [{"text": "Leave a message.", "after": "answer"}, {"sound": "beep"}],
    }
    assert _run(_detector(DETECT_END, persona), [(0, 2000), (2400, 3000)], 10_000) == (
        "machine_end_beep",
        3100,
    )
    enable = {**DETECT_END, "MachineDetection": "Enable"}
    assert _run(_detector(enable, persona), [(0, 2000), (2400, 3000)], 10_000)[0] == (
        "machine_start"
    )
    fast = AmdRequest.from_params({**DETECT_END, "MachineDetectionTimeout": "30"}, 0.1)
    assert fast is not None
    assert (fast.timeout_ms, fast.speech_end_threshold_ms, fast.silence_timeout_ms) == (
        3000,
        120,
        500,
    )
    assert AmdRequest.from_params({"MachineDetection": "Disable"}, 1.0) is None


@pytest.fixture
async def client(sim: SimulatorStack, creds: tuple[str, str]) -> AsyncIterator[Client]:
    assert sim.urls is not None
    c = Client(*creds, http_client=AsyncTwilioHttpClient())
    c.api.base_url = sim.urls.twilio
    yield c
    await c.http_client.close()  # type: ignore[attr-defined]


async def _amd_callback(service: Any, sid: str, within: float = 10.0) -> dict[str, Any]:
    for _ in range(int(within / 0.05)):
        for cb in service.callbacks:
            if cb["params"].get("CallSid") == sid and "AnsweredBy" in cb["params"]:
                return dict(cb)
        await asyncio.sleep(0.05)
    raise AssertionError("no AMD callback")


@pytest.mark.parametrize(
    ("persona", "answered_by"), [("voicemail", "machine_end_beep"), ("fax", "fax")]
)
async def test_async_amd_posts_a_signed_verdict_while_media_flows(
    client: Client,
    service: Any,
    number_for: Any,
    call_record: Any,
    persona: str,
    answered_by: str,
) -> None:
    number = await number_for(persona, time_scale=0.5)
    call = await client.calls.create_async(
        to=number,
        from_=FROM,
        twiml=service.twiml(),
        machine_detection="DetectMessageEnd",
        async_amd="true",
        async_amd_status_callback=f"{service.base}/status?amd=1",
        async_amd_status_callback_method="POST",
    )
    cb = await _amd_callback(service, call.sid)
    # The stream was up before the verdict: async AMD does not hold the call.
    stream = await service.wait_stream(call.sid)
    assert stream.messages and stream.messages[0]["event"] in ("connected", "start")
    await client.calls(call.sid).update_async(status="completed")
    record = await call_record(call.sid, wait=5)
    assert cb["valid"], cb
    assert set(cb["params"]) == {"AccountSid", "CallSid", "AnsweredBy", "MachineDetectionDuration"}
    assert cb["params"]["AnsweredBy"] == answered_by
    assert record["answered_by"] == answered_by
    detected_ms = int(cb["params"]["MachineDetectionDuration"])
    lines = record["streams"][0]["debtor_lines"]
    if persona == "voicemail":
        beep = lines[1]
        assert beep["text"] == "[beep]"
        assert beep["end_ms"] <= detected_ms <= beep["end_ms"] + 500  # just after the beep
    else:
        assert 1000 <= detected_ms <= 1400  # 2200 ms, persona time scale 0.5
        assert lines and all(ln["text"] == "[fax]" for ln in lines)
