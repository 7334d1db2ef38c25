"""Twilio simulator, driven through the official ``twilio`` SDK and a stand-in service side."""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from simulators import SimulatorStack

FROM = "+15550001111"


@pytest.fixture
async def client(sim: SimulatorStack, creds: tuple[str, str]) -> AsyncIterator[Client]:
    assert sim.urls is not None
    c = Client(*creds, http_client=AsyncTwilioHttpClient())
    c.api.base_url = sim.urls.twilio  # the one setting that points the SDK at the simulator
    yield c
    await c.http_client.close()  # type: ignore[attr-defined]


def _callbacks(service: Any, sid: str) -> list[dict[str, Any]]:
    return [c for c in service.callbacks if c["params"].get("CallSid") == sid]


async def test_call_lifecycle_stream_and_signed_callbacks(
    client: Client,
    service: Any,
    number_for: Any,
    call_record: Any,
    creds: tuple[str, str],
    sim: SimulatorStack,
) -> None:
    number = await number_for(
        {
            "name": "says-hello",
            "ring_ms": 100,
            "hangup": "after_last_line",
            "hangup_delay_ms": 300,
            "lines": [{"text": "Hello?", "after": "answer", "delay_ms": 200}],
        }
    )
    call = await client.calls.create_async(
        to=number,
        from_=FROM,
        twiml=service.twiml(FirstName="Jane", DebtId="d-1"),
        status_callback=f"{service.base}/status?tenant=t1",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
        status_callback_method="POST",
        time_limit=600,
    )
    assert re.fullmatch(r"CA[0-9a-f]{32}", call.sid)
    assert call.status == "queued" and call.to == number and call.account_sid == creds[0]

    session = await service.wait_stream(call.sid)
    assert session.signature and session.signature_valid  # handshake X-Twilio-Signature
    stop = await session.next_event("stop", within=5)
    assert stop["stop"] == {"accountSid": creds[0], "callSid": call.sid}
    await asyncio.wait_for(session.closed.wait(), 2)

    msgs = session.messages
    assert msgs[0] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = msgs[1]
    assert start["event"] == "start" and start["sequenceNumber"] == "1"
    assert re.fullmatch(r"MZ[0-9a-f]{32}", start["streamSid"])
    assert start["start"] == {
        "accountSid": creds[0],
        "streamSid": start["streamSid"],
        "callSid": call.sid,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"FirstName": "Jane", "DebtId": "d-1"},
    }
    media = [(m, t) for m, t in zip(msgs, session.arrivals, strict=True) if m["event"] == "media"]
    assert len(media) > 20
    rec = await call_record(call.sid, wait=5)
    stream = rec["streams"][0]
    # A clock more than 200 ms behind (a busy machine) skips frames and counts them: the
    # timestamps then jump by that many frames, and nothing else changes.
    late = stream["frames_late"]
    stamps = [int(m["media"]["timestamp"]) for m, _ in media]
    assert stamps[0] == 0 and all(b > a and b % 20 == 0 for a, b in itertools.pairwise(stamps))
    assert stamps[-1] // 20 + 1 == len(media) + late
    for m, _ in media:
        assert m["streamSid"] == start["streamSid"]
        assert m["media"]["track"] == "inbound"
        assert m["media"]["chunk"] == str(int(m["media"]["timestamp"]) // 20 + 1)
        assert len(base64.b64decode(m["media"]["payload"])) == 160
    seqs = [int(m["sequenceNumber"]) for m in msgs[1:]]
    assert seqs == list(range(1, len(seqs) + 1))
    # Real time: frame n leaves at t0 + n × 20 ms (absolute times), never earlier; a busy
    # machine makes the last one late, by at most about a second.
    last_due = stream["t0"] + stamps[-1] / 1000
    assert all(
        at >= stream["t0"] + ts / 1000 - 0.005 for ts, (_, at) in zip(stamps, media, strict=True)
    )
    assert media[-1][1] < last_due + 1.0, media[-1][1] - last_due
    # "Hello?" (6 characters of tone voice) starts 200 ms in; silence (0xFF) elsewhere. The
    # line is spoken frame by frame, so skipped frames only move its start (to the next tick).
    payloads = [base64.b64decode(m["media"]["payload"]) for m, _ in media]
    voiced = [ts for ts, p in zip(stamps, payloads, strict=True) if p != b"\xff" * 160]
    line_frames = 6 * sim.config.ms_per_char / 20
    assert voiced and 200 <= voiced[0] <= 200 + 20 * late
    assert len(voiced) == pytest.approx(line_frames, abs=1)

    assert rec["status"] == "completed" and rec["end_reason"] == "persona_hangup"
    assert rec["streams"][0]["debtor_lines"][0]["text"] == "Hello?"
    cbs = _callbacks(service, call.sid)
    assert [c["params"]["CallStatus"] for c in cbs] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert all(c["valid"] for c in cbs)  # RequestValidator accepts every signature
    assert [c["params"]["SequenceNumber"] for c in cbs] == ["0", "1", "2", "3"]
    assert all(c["params"]["CallbackSource"] == "call-progress-events" for c in cbs)
    done = cbs[-1]["params"]
    # Whole seconds from answer to hang-up (about 0.6 s of stream, rounded): never less, and a
    # busy machine may stretch it by a second.
    assert done["CallDuration"] in ("1", "2") and done["To"] == number and done["From"] == FROM

    fetched = await client.calls(call.sid).fetch_async()
    assert fetched.status == "completed" and fetched.duration == done["CallDuration"]
    assert fetched.start_time is not None and fetched.end_time is not None


async def test_playback_marks_clear_and_rest_hangup(
    client: Client, service: Any, number_for: Any, call_record: Any, sim: SimulatorStack, http: Any
) -> None:
    number = await number_for({"name": "listener", "ring_ms": 50, "hangup": "never"})
    call = await client.calls.create_async(to=number, from_=FROM, twiml=service.twiml())
    session = await service.wait_stream(call.sid)
    loop = asyncio.get_running_loop()
    # 1 s of audio in odd-sized pieces, a mark, 1 s more, another mark.
    sent_at = loop.time()
    for size in (3000, 5000):
        await session.send_media(b"\x10" * size)
    await session.send({"event": "mark", "streamSid": session.stream_sid, "mark": {"name": "one"}})
    await session.send_media(b"\x20" * 8000)
    await session.send({"event": "mark", "streamSid": session.stream_sid, "mark": {"name": "two"}})

    first = await session.next_event("mark", within=3)
    assert first["mark"] == {"name": "one"} and first["streamSid"] == session.stream_sid
    # Played at 8000 bytes/s: the mark is due on the 50th tick; ticks are never early, but a
    # clock that fell behind plays its backlog at once (at most 200 ms and a tick; further
    # behind it skips frames); late by at most about a second. Exact on the stream timeline.
    played_in = loop.time() - sent_at
    assert 0.98 - 0.22 - 0.005 <= played_in < 0.98 + 1.0, played_in

    await asyncio.sleep(0.3)
    await session.send({"event": "clear", "streamSid": session.stream_sid})
    second = await session.next_event("mark", within=2)
    assert second["mark"] == {"name": "two"}

    updated = await client.calls(call.sid).update_async(status="completed")
    assert updated.status == "completed"
    await session.next_event("stop", within=2)

    rec = await call_record(call.sid, wait=3)
    stream = rec["streams"][0]
    assert stream["stop_reason"] == "rest_hangup" and rec["end_reason"] == "rest_hangup"
    assert [(m["name"], m["cleared"]) for m in stream["marks"]] == [("one", False), ("two", True)]
    late_ms = 20 * stream["frames_late"]  # stream time skipped by a clock that fell behind
    (played,) = stream["agent_audio"]  # one segment: the second second followed the first
    one, two = stream["marks"]
    assert played["start_ms"] + 980 <= one["echoed_at_ms"] <= played["start_ms"] + 980 + late_ms
    # How much was played before the clear depends on the scheduling (nominally 1.3 s); what
    # was dropped is the rest, and the pending mark is echoed on the next tick, not played.
    clear = stream["clears"][0]
    assert clear["marks_echoed"] == ["two"]
    assert 0 < clear["dropped_bytes"] <= 8000 and clear["dropped_bytes"] + played["bytes"] == 16000
    assert stream["agent_audio_ms"] == played["bytes"] // 8
    assert clear["at_ms"] <= two["echoed_at_ms"] <= clear["at_ms"] + 20 + late_ms
    assert [r["event"] for r in stream["received"]] == ["mark", "mark", "clear"]
    assert stream["media_bytes_received"] == 16000 and stream["errors"] == []

    assert sim.urls is not None
    async with http.get(f"{sim.urls.control}/calls/{call.sid}/audio") as resp:
        wav = await resp.read()
    assert resp.status == 200 and wav[:4] == b"RIFF" and wav[22] == 2  # stereo
    async with http.get(
        f"{sim.urls.control}/calls/{call.sid}/audio", params={"track": "agent", "format": "ulaw"}
    ) as resp:
        agent = await resp.read()
    assert agent.count(b"\x10") == 8000  # the first second was played in full


async def test_persona_barge_in_is_recorded_as_overlap(
    client: Client, service: Any, number_for: Any, call_record: Any, sim: SimulatorStack
) -> None:
    line = "Wait, wait, stop right there."
    number = await number_for(
        {
            "name": "barger",
            "ring_ms": 50,
            "hangup": "after_last_line",
            "hangup_delay_ms": 100,
            "lines": [{"text": line, "after": "agent_start", "delay_ms": 300}],
        }
    )
    call = await client.calls.create_async(to=number, from_=FROM, twiml=service.twiml())
    session = await service.wait_stream(call.sid)
    await session.send_media(b"\x10" * 16000)  # 2 s of agent speech
    await session.next_event("stop", within=4)
    rec = await call_record(call.sid, wait=3)
    stream = rec["streams"][0]
    spoken = stream["debtor_lines"][0]
    line_ms = len(line) * sim.config.ms_per_char
    assert spoken["text"] == line
    # On the stream timeline, from the agent's first played frame (which depends on when our
    # media arrived): exact, but for frames a busy machine's clock skipped.
    late_ms = 20 * stream["frames_late"]
    agent_from = stream["agent_audio"][0]["start_ms"]
    assert agent_from + 300 <= spoken["start_ms"] <= agent_from + 300 + late_ms
    assert line_ms - 20 <= spoken["end_ms"] - spoken["start_ms"] <= line_ms + 20 + late_ms
    # The debtor spoke entirely over the agent's 2 s of audio.
    assert stream["overlap_ms"] == pytest.approx(line_ms, abs=40)
    assert len(stream["overlaps"]) == 1


@pytest.mark.parametrize("outcome", ["busy", "no-answer", "failed"])
async def test_unanswered_calls(
    outcome: str, client: Client, service: Any, number_for: Any, call_record: Any
) -> None:
    number = await number_for({"name": f"p-{outcome}", "answer": outcome, "ring_ms": 100})
    call = await client.calls.create_async(
        to=number, from_=FROM, twiml=service.twiml(), status_callback=f"{service.base}/status"
    )
    rec = await call_record(call.sid, wait=3)
    assert rec["status"] == outcome and rec["streams"] == []
    cbs = _callbacks(service, call.sid)
    # No events named: Twilio posts only the final status.
    assert len(cbs) == 1 and cbs[0]["valid"]
    assert cbs[0]["params"]["CallStatus"] == outcome and cbs[0]["params"]["CallDuration"] == "0"
    assert call.sid not in service.streams
    assert (await client.calls(call.sid).fetch_async()).status == outcome


async def test_twiml_url_with_sync_client_and_auth(
    sim: SimulatorStack, service: Any, number_for: Any, call_record: Any, creds: tuple[str, str]
) -> None:
    assert sim.urls is not None
    sync = Client(*creds)
    sync.api.base_url = sim.urls.twilio
    number = await number_for({"name": "quiet", "ring_ms": 50, "hangup": "never"})
    call = await asyncio.to_thread(
        sync.calls.create, to=number, from_=FROM, url=f"{service.base}/twiml"
    )
    session = await service.wait_stream(call.sid)
    assert session.start["start"]["customParameters"] == {"source": "url"}
    fetch = next(r for r in service.twiml_requests if r["params"]["CallSid"] == call.sid)
    assert fetch["valid"] and fetch["params"]["CallStatus"] == "in-progress"
    await asyncio.to_thread(sync.calls(call.sid).update, status="completed")
    rec = await call_record(call.sid, wait=3)
    assert rec["status"] == "completed"

    bad = Client(creds[0], "not-the-token")
    bad.api.base_url = sim.urls.twilio
    with pytest.raises(TwilioRestException) as err:
        await asyncio.to_thread(bad.calls.create, to=number, from_=FROM, twiml="<Response/>")
    assert err.value.status == 401 and err.value.code == 20003


async def test_time_limit_and_get_callbacks(
    client: Client, service: Any, number_for: Any, call_record: Any
) -> None:
    number = await number_for({"name": "mute", "ring_ms": 50, "hangup": "never"})
    call = await client.calls.create_async(
        to=number,
        from_=FROM,
        twiml=service.twiml(),
        time_limit=1,
        status_callback=f"{service.base}/status",
        status_callback_method="GET",
    )
    session = await service.wait_stream(call.sid)
    await session.next_event("stop", within=3)
    rec = await call_record(call.sid, wait=3)
    # Never short of the limit; a busy machine may make the hang-up late (rounded seconds).
    assert rec["end_reason"] == "time_limit" and rec["duration"] in (1, 2)
    (cb,) = _callbacks(service, call.sid)
    assert cb["method"] == "GET" and cb["valid"] and cb["params"]["CallStatus"] == "completed"
