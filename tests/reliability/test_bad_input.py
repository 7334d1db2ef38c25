"""Bad input gets a clear 4xx or a clean close, and no stored data changes.

Voice Orchestrator: the Twilio Media Streams WebSocket (signed handshake, then garbage of every
kind before and during a live session) and the Twilio status callback (forged, replayed,
undecodable, oversized), against the real app under uvicorn (with the server options production
uses), the vendor simulators over real sockets and the session's PostgreSQL and GCS emulator.

Client API: hostile text in every string field, header and query parameter, and unknown ids,
against the service as its own process.

Already covered elsewhere (not repeated here): a handshake without or with a wrong signature
(tests/orchestrator/test_security.py::test_media_stream_handshake_needs_a_valid_signature), a
status callback without a signature, signed with another token or with a genuine signature over
other parameters (::test_forged_status_callback_gets_403), the field rules of the debtor body
(tests/client_api/test_api.py::test_invalid_debtor_is_422_naming_the_field_and_stores_nothing),
bodies over the limit with and without Content-Length (::test_oversized_body_is_413).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
import re
import socket
import uuid
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
import websockets
from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from twilio.request_validator import RequestValidator

from services.common import models
from services.common.blobstore import GcsBlobStore
from services.common.logging import configure_logging
from services.common.settings import Settings
from services.voice_orchestrator.app import WS_SERVER_OPTIONS, Overrides, create_app
from services.voice_orchestrator.session import SessionTuning
from services.voice_orchestrator.stream_token import stream_token
from simulators import SimConfig, SimulatorStack
from tests.client_api.conftest import API_KEY, TEST_OVERRIDES, client_api_process, debtor_body
from tests.helpers import close_earlier_tests_work, drain_backlog_of, vendor_settings

# ================================================================================================
# Voice Orchestrator
# ================================================================================================

TZ = "America/New_York"
SIM = SimConfig(
    twilio_port=0,
    deepgram_port=0,
    openai_port=0,
    elevenlabs_port=0,
    speech="tone",
    ms_per_char=55.0,
    deepgram_latency_ms=0.0,
    openai_ttft_ms=0.0,
    elevenlabs_ttfb_ms=0.0,
)
SILENCE_160 = base64.b64encode(b"\xff" * 160).decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


@dataclass
class Voice:
    settings: Settings
    base_url: str
    ws_url: str
    sessions: async_sessionmaker[AsyncSession]
    logs: io.StringIO
    http: httpx.AsyncClient
    created: list[uuid.UUID] = dataclasses.field(default_factory=list)

    @property
    def token(self) -> str:
        return self.settings.twilio_auth_token.get_secret_value()

    def stream_url(self, call_id: uuid.UUID | None = None) -> str:
        """The stream URL Twilio is given for the call's first dial (per-call token)."""
        token = stream_token(self.settings, call_id or uuid.uuid4(), 0)
        return f"{self.ws_url}/{token}"

    def connect(self, call_id: uuid.UUID | None = None) -> Any:
        url = self.stream_url(call_id)
        return websockets.connect(
            url,
            additional_headers={
                "X-Twilio-Signature": RequestValidator(self.token).compute_signature(url, {})
            },
            max_size=None,
        )

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.logs.getvalue().splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                lines.append({"event": raw, "level": "unstructured"})
        return lines

    def mark_logs(self) -> int:
        return len(self.logs.getvalue().splitlines())

    def logs_since(self, mark: int) -> list[dict[str, Any]]:
        return self.log_lines()[mark:]

    async def new_call(
        self, status: str = "ringing", *, heartbeat: bool = False
    ) -> tuple[uuid.UUID, str]:
        """A debtor and a call in `status` that Twilio placed (it has a CallSid)."""
        sid = _sid("CA")
        now = datetime.now(UTC)
        async with self.sessions() as s, s.begin():
            debtor = models.Debtor(
                name="Jane Doe",
                phone=f"+1555{uuid.uuid4().int % 10**7:07d}",
                timezone=TZ,
                stage="early",
                amount_owed_minor=45000,
                currency="USD",
                due_date=date.today() - timedelta(days=20),
                account_reference="ACC-1",
            )
            s.add(debtor)
            await s.flush()
            terminal = status in ("completed", "failed", "busy", "no_answer", "canceled")
            call = models.Call(
                debtor_id=debtor.id,
                status=status,
                stage="early",
                twilio_call_sid=sid,
                dispatched_at=now,
                started_at=now,
                answered_at=now if status in ("in_progress", "completed") else None,
                heartbeat_at=now if heartbeat else None,
                ended_at=now if terminal else None,
                outcome="no_answer" if terminal else None,
            )
            s.add(call)
            await s.flush()
            self.created.append(call.id)
            return call.id, sid

    async def snapshot(self, call_id: uuid.UUID) -> dict[str, Any]:
        """The call row, its transcript rows and its outbox events, as stored."""
        async with self.sessions() as s:
            call = await s.get(models.Call, call_id)
            assert call is not None
            row = {c.key: getattr(call, c.key) for c in inspect(models.Call).column_attrs}
            turns = (
                await s.execute(
                    select(models.CallTurn.index, models.CallTurn.speaker, models.CallTurn.text)
                    .where(models.CallTurn.call_id == call_id)
                    .order_by(models.CallTurn.index)
                )
            ).all()
            events = await s.scalar(
                select(func.count())
                .select_from(models.OutboxMessage)
                .where(models.OutboxMessage.payload["call"]["id"].astext == str(call_id))
            )
        return {"call": row, "turns": [tuple(t) for t in turns], "events": events}

    async def counts(self) -> dict[str, int]:
        """Rows of every call and debtor, and the turns and events of the calls made here (other
        processes sharing the database may add events of their own meanwhile)."""
        ids = [str(c) for c in self.created]
        async with self.sessions() as s:
            return {
                "calls": await s.scalar(select(func.count()).select_from(models.Call)) or 0,
                "debtors": await s.scalar(select(func.count()).select_from(models.Debtor)) or 0,
                "call_turns": await s.scalar(
                    select(func.count())
                    .select_from(models.CallTurn)
                    .where(models.CallTurn.call_id.in_(self.created))
                )
                or 0,
                "outbox": await s.scalar(
                    select(func.count())
                    .select_from(models.OutboxMessage)
                    .where(
                        func.coalesce(
                            models.OutboxMessage.payload["call_id"].astext,
                            models.OutboxMessage.payload["call"]["id"].astext,
                        ).in_(ids)
                    )
                )
                or 0,
            }


def _start(call_id: str, call_sid: str, stream_sid: str | None = None) -> dict[str, Any]:
    stream_sid = stream_sid or _sid("MZ")
    return {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": stream_sid,
        "start": {
            "accountSid": "AC" + "0" * 32,
            "streamSid": stream_sid,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"call_id": call_id, "attempt": "0"},
        },
    }


CONNECTED = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


async def _close_code(ws: Any, within: float = 5.0) -> int | None:
    """Read (and drop) server frames until the server closes; the close code it sent."""
    try:
        async with asyncio.timeout(within):
            while True:
                await ws.recv()
    except websockets.ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None
    raise AssertionError("unreachable")


async def _still_open(ws: Any) -> None:
    pong = await ws.ping()
    await asyncio.wait_for(pong, 2.0)


def _assert_clean_logs(lines: list[dict[str, Any]]) -> None:
    """No server exception, no traceback, no phone number or amount in what we logged."""
    text = json.dumps(lines)
    for line in lines:
        assert line.get("level") not in ("error", "critical", "unstructured"), line
        assert "exception" not in line and "exc_info" not in line, line
    assert "Traceback" not in text and "Exception in ASGI" not in text
    _assert_no_personal_data(lines)


def _values(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _values(v)
    elif isinstance(value, list):
        for v in value:
            yield from _values(v)
    else:
        yield value


def _assert_no_personal_data(lines: list[dict[str, Any]]) -> None:
    """No phone number (ours all start +1555 / +1415) and no balance (45000 minor units)."""
    for line in lines:
        for value in _values(line):
            assert value not in (45000, "45000", "450.00"), line
            assert not (isinstance(value, str) and ("+1555" in value or "+1415" in value)), line


@pytest.fixture(scope="module")
async def voice(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Voice]:
    logs = io.StringIO()
    configure_logging("voice-orchestrator", "INFO", stream=logs)
    async with SimulatorStack(SIM) as sim:
        assert sim.urls is not None
        port = _free_port()
        s = settings.model_copy(
            update={
                **vendor_settings(sim.urls, f"http://127.0.0.1:{port}"),
            }
        )
        # No consumer, relay or sweeper: these tests drive the media stream and callbacks only.
        overrides = Overrides(
            tuning=SessionTuning(silence_reprompt_s=30.0),
            run_consumer=False,
            run_relay=False,
            run_sweeper=False,
        )
        app = create_app(s, overrides)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                lifespan="on",
                log_config=None,  # uvicorn's own errors reach our JSON log (as in __main__)
                **WS_SERVER_OPTIONS,
            )
        )
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                yield Voice(s, base, f"ws://127.0.0.1:{port}/media-stream", sessions, logs, http)
        finally:
            server.should_exit = True
            await task
            configure_logging("tests")


# ---- the media WebSocket ---------------------------------------------------------------------


def _garbage(live_call_id: str, live_sid: str) -> list[str | bytes]:
    """Frames no Twilio ever sends, or not at this point: each must be ignored."""
    media = {"event": "media", "streamSid": "MZ1", "media": {"payload": SILENCE_160}}
    return [
        "this is not JSON",
        "{",
        "",
        "[" * 5000 + "]" * 5000,  # deeper than the JSON parser's recursion limit
        "[1, 2, 3]",
        '"start"',
        "null",
        "42",
        json.dumps({"no_event": True}),
        json.dumps({"event": 5}),
        json.dumps({"event": ["start"]}),
        json.dumps({"event": "hangup"}),
        json.dumps({"event": "dmtf", "dtmf": {"digit": "1"}}),
        json.dumps({"event": "Start", "start": {}}),
        b"\x00\xff\xfe binary",
        # A binary frame that carries a valid `start` for a live call: not a Twilio text frame.
        json.dumps(_start(live_call_id, live_sid)).encode(),
        json.dumps(media),  # out of order: media before start
        json.dumps({"event": "mark", "mark": {"name": "x"}}),
    ]


async def test_garbage_before_start_is_ignored_and_changes_nothing(voice: Voice) -> None:
    call_id, sid = await voice.new_call("ringing")
    before, counts = await voice.snapshot(call_id), await voice.counts()
    mark = voice.mark_logs()
    garbage = _garbage(str(call_id), sid)
    async with voice.connect() as ws:
        await ws.send(CONNECTED)
        for frame in garbage:
            await ws.send(frame)
        await _still_open(ws)
        # The connection is still served: a `start` naming no known call is refused cleanly.
        await ws.send(json.dumps(_start(str(uuid.uuid4()), _sid("CA"))))
        assert await _close_code(ws) == 1008
    assert await voice.snapshot(call_id) == before
    assert await voice.counts() == counts
    lines = voice.logs_since(mark)
    _assert_clean_logs(lines)
    summary = [x for x in lines if x["event"] == "media_frames_ignored"]
    assert summary and summary[-1]["count"] == len(garbage), summary
    assert any(x["event"] == "media_frame_ignored" for x in lines)


async def test_oversized_frame_closes_with_1009_and_changes_nothing(voice: Voice) -> None:
    call_id, sid = await voice.new_call("ringing")
    before, counts = await voice.snapshot(call_id), await voice.counts()
    mark = voice.mark_logs()
    async with voice.connect() as ws:
        await ws.send(CONNECTED)
        start = _start(str(call_id), sid)
        start["start"]["customParameters"]["pad"] = "x" * (1 << 20)  # a 1 MiB `start`
        await ws.send(json.dumps(start))
        assert await _close_code(ws) == 1009  # "message too big"
    await asyncio.sleep(0.2)
    assert await voice.snapshot(call_id) == before
    assert await voice.counts() == counts
    _assert_clean_logs(voice.logs_since(mark))


@pytest.mark.parametrize(
    "case",
    [
        "unknown call id",
        "call id not a uuid",
        "completed call",
        "failed call",
        "callSid of another call",
        "session already live elsewhere",
        "start not an object",
        "customParameters not an object",
    ],
)
async def test_start_for_a_call_it_may_not_stream_is_closed_with_1008(
    voice: Voice, case: str
) -> None:
    status = {"completed call": "completed", "failed call": "failed"}.get(case, "ringing")
    if case == "session already live elsewhere":
        status = "in_progress"
    call_id, sid = await voice.new_call(status, heartbeat=case == "session already live elsewhere")
    start = _start(str(call_id), sid)
    if case == "unknown call id":
        start["start"]["customParameters"]["call_id"] = str(uuid.uuid4())
    elif case == "call id not a uuid":
        start["start"]["customParameters"]["call_id"] = "'; DROP TABLE calls; --"
    elif case == "callSid of another call":
        start["start"]["callSid"] = _sid("CA")  # a replayed handshake naming a call it is not
    elif case == "start not an object":
        start["start"] = "x"
    elif case == "customParameters not an object":
        start["start"]["customParameters"] = [str(call_id)]
    before, counts = await voice.snapshot(call_id), await voice.counts()
    mark = voice.mark_logs()
    async with voice.connect(call_id) as ws:
        await ws.send(CONNECTED)
        await ws.send(json.dumps(start))
        assert await _close_code(ws) == 1008
    assert await voice.snapshot(call_id) == before
    assert await voice.counts() == counts
    lines = voice.logs_since(mark)
    _assert_clean_logs(lines)
    assert any(x["event"].startswith("media_stream_") for x in lines), lines


async def _frames_for(ws: Any, seconds: float) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            got.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
        except TimeoutError:
            break
    return got


async def test_garbage_during_a_live_call_is_ignored_and_the_call_goes_on(
    voice: Voice, settings: Settings
) -> None:
    call_id, sid = await voice.new_call("ringing")
    counts = await voice.counts()
    mark = voice.mark_logs()
    stream_sid = _sid("MZ")
    ts = 0

    def media(payload: Any = SILENCE_160, **extra: Any) -> str:
        nonlocal ts
        ts += 20
        body = {"track": "inbound", "chunk": "1", "timestamp": str(ts), "payload": payload}
        return json.dumps({"event": "media", "streamSid": stream_sid, "media": {**body, **extra}})

    garbage: list[str | bytes] = [
        *_garbage(str(call_id), sid)[:-2],  # less the media and mark: valid from now on
        json.dumps({"event": "stop"}).encode(),  # a binary `stop` must not end the call
        media("!!! not base64 !!!"),
        media("AAAA====="),
        media(base64.b64encode(b"\xff" * 7).decode()),  # not a whole 20 ms frame
        media(base64.b64encode(b"\xff" * 161).decode()),
        media(""),
        media(12345),
        media(timestamp="soon"),
        media(timestamp="NaN"),
        media(timestamp="inf"),
        media(timestamp=-40),
        media(timestamp=[1]),
        media(timestamp=str(3_600_000)),  # an hour ahead of the stream
        json.dumps({"event": "media", "streamSid": stream_sid, "media": "x"}),
        json.dumps({"event": "media", "streamSid": stream_sid}),
        json.dumps({"event": "mark", "streamSid": stream_sid, "mark": ["x"]}),
        json.dumps(_start(str(uuid.uuid4()), _sid("CA"))),  # a second start
    ]
    async with voice.connect(call_id) as ws:
        await ws.send(CONNECTED)
        await ws.send(json.dumps(_start(str(call_id), sid, stream_sid)))
        # Debtor silence until the agent's greeting plays.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 8
        while True:
            assert loop.time() < deadline, "no greeting"
            await ws.send(media())
            frames = await _frames_for(ws, 0.02)
            if any(f.get("event") == "media" for f in frames):
                break
        live = await voice.snapshot(call_id)
        assert live["call"]["status"] == "in_progress" and live["turns"] == []

        for frame in garbage:
            await ws.send(frame)
        await ws.send(media())
        # The call goes on: the agent's audio keeps coming, nothing was stored or ended.
        after = await _frames_for(ws, 0.5)
        assert sum(f.get("event") == "media" for f in after) >= 5
        now = await voice.snapshot(call_id)
        for snap in (live, now):
            snap["call"].pop("heartbeat_at")  # refreshed while the session is live
        assert now == live

        await ws.send(json.dumps({"event": "stop", "streamSid": stream_sid}))
        assert await _close_code(ws, within=15) == 1000

    call = await _wait_ended(voice, call_id)
    assert call["call"]["status"] == "completed"
    assert call["call"]["failure_reason"] is None, call["call"]["failure_reason"]
    assert call["call"]["outcome"] != "failed"
    assert {speaker for _, speaker, _ in call["turns"]} <= {"agent"}
    assert call["events"] == 1
    # The frame an hour ahead did not stretch the recording to an hour.
    wav = await GcsBlobStore(voice.settings).get(f"calls/{call_id}/recording.wav")
    with wave.open(io.BytesIO(wav)) as w:
        assert w.getnframes() / w.getframerate() < 30
    grown = await voice.counts()
    assert grown["calls"] == counts["calls"] and grown["debtors"] == counts["debtors"]
    lines = voice.logs_since(mark)
    _assert_clean_logs([x for x in lines if x["event"] != "twilio_duration_unavailable"])
    ignored = [x for x in lines if x["event"] == "media_frames_ignored"]
    assert ignored and ignored[-1]["count"] == len(garbage), ignored


async def _wait_ended(voice: Voice, call_id: uuid.UUID, within: float = 15) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        snap = await voice.snapshot(call_id)
        if snap["call"]["status"] not in ("dialing", "ringing", "in_progress"):
            return snap
        assert loop.time() < deadline, snap["call"]["status"]
        await asyncio.sleep(0.1)


async def test_handshake_signed_for_another_url_is_refused_with_403(voice: Voice) -> None:
    """Twilio signs the stream URL only; a signature captured for another URL is no key."""
    validator = RequestValidator(voice.token)
    here = voice.stream_url()
    for url, signed_for in [
        (here, "wss://evil.example/media-stream"),
        (here, here + "?call_id=1"),
        (here + "?call_id=1", here),
    ]:
        sig = validator.compute_signature(signed_for, {})
        with pytest.raises(websockets.InvalidStatus) as err:
            async with websockets.connect(url, additional_headers={"X-Twilio-Signature": sig}):
                pass
        assert err.value.response.status_code == 403, (url, signed_for)
    # The same signer over this URL is accepted (the refusals above are about the URL).
    async with voice.connect() as ws:
        await _still_open(ws)


# ---- Twilio status callbacks -----------------------------------------------------------------


def _params(call_sid: str, status: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": call_sid,
        "CallStatus": status,
        "Direction": "outbound-api",
    }


async def test_replayed_status_callback_signatures_change_nothing(voice: Voice) -> None:
    a, a_sid = await voice.new_call("ringing")
    b, b_sid = await voice.new_call("ringing")
    validator = RequestValidator(voice.token)
    url_a = f"{voice.base_url}/twilio/status?call_id={a}"
    url_b = f"{voice.base_url}/twilio/status?call_id={b}"
    before_b, counts = await voice.snapshot(b), await voice.counts()
    mark = voice.mark_logs()

    # Genuine: "busy" for call A, signed over A's URL.
    busy_a = _params(a_sid, "busy")
    sig_a = validator.compute_signature(url_a, busy_a)
    # Replayed onto call B's URL (same body, or with B's CallSid): the URL is signed too.
    for params in (busy_a, _params(b_sid, "busy")):
        r = await voice.http.post(url_b, data=params, headers={"X-Twilio-Signature": sig_a})
        assert r.status_code == 403
    # Signed for another host than ours (a capture from another deployment).
    foreign = validator.compute_signature(
        f"https://evil.example/twilio/status?call_id={b}", _params(b_sid, "busy")
    )
    r = await voice.http.post(
        url_b, data=_params(b_sid, "busy"), headers={"X-Twilio-Signature": foreign}
    )
    assert r.status_code == 403
    # Moved into the query string instead of the body.
    r = await voice.http.post(
        url_b + "&" + "&".join(f"{k}={quote(v)}" for k, v in busy_a.items()),
        headers={"X-Twilio-Signature": sig_a},
    )
    assert r.status_code == 403
    assert await voice.snapshot(b) == before_b
    assert await voice.counts() == counts

    # The genuine request works once; replaying it as is (Twilio signatures carry no nonce)
    # finds the call ended and changes nothing more.
    r = await voice.http.post(url_a, data=busy_a, headers={"X-Twilio-Signature": sig_a})
    assert r.status_code == 204
    ended = await voice.snapshot(a)
    assert ended["call"]["status"] == "busy" and ended["events"] == 1
    # An older "ringing" delivered late, correctly signed, does not move the call back.
    ringing = _params(a_sid, "ringing")
    for params in (busy_a, ringing):
        sig = validator.compute_signature(url_a, params)
        r = await voice.http.post(url_a, data=params, headers={"X-Twilio-Signature": sig})
        assert r.status_code == 204
    assert await voice.snapshot(a) == ended
    assert await voice.snapshot(b) == before_b
    _assert_clean_logs(voice.logs_since(mark))


async def test_unreadable_or_oversized_status_callbacks_are_refused(voice: Voice) -> None:
    call_id, sid = await voice.new_call("ringing")
    url = f"{voice.base_url}/twilio/status?call_id={call_id}"
    before, counts = await voice.snapshot(call_id), await voice.counts()
    mark = voice.mark_logs()
    form = {"content-type": "application/x-www-form-urlencoded"}
    sig = RequestValidator(voice.token).compute_signature(url, _params(sid, "busy"))

    # Not UTF-8: no signature can be over it.
    r = await voice.http.post(
        url, content=b"CallStatus=busy&x=\xff\xfe", headers={**form, "X-Twilio-Signature": sig}
    )
    assert r.status_code == 403
    # Over the size limit, declared or streamed without Content-Length.
    big = b"CallStatus=busy&pad=" + b"x" * (1 << 20)  # 16 times the limit
    r = await voice.http.post(url, content=big, headers={**form, "X-Twilio-Signature": sig})
    assert r.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        yield b"CallStatus=busy&pad="
        for _ in range(256):  # 1 MiB
            yield b"x" * 4096

    r = await voice.http.post(url, content=chunks(), headers={**form, "X-Twilio-Signature": sig})
    assert r.status_code == 413
    # Correctly signed, but naming no call: nothing to change.
    for target in (str(uuid.uuid4()), "'; DROP TABLE calls; --"):
        other = f"{voice.base_url}/twilio/status?call_id={quote(target)}"
        params = _params(sid, "busy")
        s = RequestValidator(voice.token).compute_signature(other, params)
        r = await voice.http.post(other, data=params, headers={"X-Twilio-Signature": s})
        assert r.status_code in (204, 400)
    assert await voice.snapshot(call_id) == before
    assert await voice.counts() == counts
    _assert_clean_logs(voice.logs_since(mark))


# ================================================================================================
# Client API
# ================================================================================================

SQL_1 = "'; DROP TABLE debtors; --"
SQL_2 = "Robert'); DELETE FROM calls;--"
# Text PostgreSQL and JSON carry unchanged: accepted wherever free text is, returned byte-exact.
ACCEPTED_TEXT = [
    SQL_1,
    SQL_2,
    "\u202eevil.exe\u202c",  # RTL override
    "Jo\u200dhn\u200b Do\u200ce\ufeff",  # zero-width joiner, space, non-joiner, BOM
    "Ze\u0301\u0351\u0352\u0353\u0300lda",  # combining marks
    "👨‍👩‍👧‍👦 💸 🇺🇸",  # emoji: ZWJ sequence, flag
    "%00",
    "../../etc/passwd",
    "{{7*7}}",
    "${jndi:ldap://127.0.0.1:9/a}",
    "<script>alert(1)</script>",
    "\\x00\\u0000",  # the escapes as text, not the characters
]
# Refused wherever free text is: 422 naming the field, nothing stored.
REFUSED_TEXT = {
    "lone surrogate": "a\ud800b",
    "NUL": "a\u0000b",
    "10k characters": "x" * 10_000,
}


def _json_body(body: dict[str, Any]) -> bytes:
    # ensure_ascii: lone surrogates travel as the JSON escape "\ud800", as a client would send.
    return json.dumps(body).encode()


@dataclass
class Api:
    client: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]

    async def post(
        self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.client.post(
            path,
            content=_json_body(body),
            headers={"content-type": "application/json", **(headers or {})},
        )

    async def counts(self) -> dict[str, int]:
        out = {}
        async with self.sessions() as s:
            for model in (models.Debtor, models.Call, models.WebhookEndpoint, models.CallTurn):
                out[model.__tablename__] = await s.scalar(select(func.count()).select_from(model))
            # What a request could write: the Client API's own events, not the webhook
            # deliveries its fan-out asks for when another service's event arrives meanwhile
            # (services an earlier test left running judge promises, end calls), nor those
            # services' events themselves.
            out["outbox"] = await s.scalar(
                select(func.count())
                .select_from(models.OutboxMessage)
                .where(
                    models.OutboxMessage.ce_source == "/client-api",
                    models.OutboxMessage.topic != "webhook-deliveries",
                )
            )
        return out


@pytest.fixture(scope="module")
async def api(
    settings: Settings, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Api]:
    # The no-change checks count rows of the whole shared database: what earlier tests left
    # for a Client API to do (retries due, events waiting) must not happen during them.
    await close_earlier_tests_work(engine)
    await drain_backlog_of(settings, ("client-api", "webhook-worker", "import-worker"))
    server = client_api_process("client-api-bad-input-")
    log_path = server.log_path
    assert log_path is not None
    server.start()
    try:
        await asyncio.to_thread(server.wait_healthy, 60)
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
        ) as client:
            yield Api(client, sessions)
    finally:
        server.stop()
    log = log_path.read_text()
    assert "Traceback" not in log and "unhandled_error" not in log, log[-3000:]
    _assert_no_personal_data([json.loads(x) for x in log.splitlines() if x.startswith("{")])


_URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")


def _utf8(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True).encode()


def _url(path: str, params: dict[str, str]) -> str:
    """`path?query`, percent-encoded by hand: a lone surrogate can only travel as the bytes
    of its (invalid) UTF-8 form, which httpx would refuse to encode."""
    query = "&".join(
        f"{quote(k.encode('utf-8', 'surrogatepass'), safe='')}="
        f"{quote(v.encode('utf-8', 'surrogatepass'), safe='')}"
        for k, v in params.items()
    )
    return f"{path}?{query}"


def _problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    """RFC 9457 problem details with the status asked for."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    problem: dict[str, Any] = resp.json()
    assert problem["status"] == status and problem["type"] and problem["title"], problem
    return problem


def _names_field(problem: dict[str, Any], field: str) -> None:
    assert problem["type"] == "urn:problem:validation-error", problem
    fields = [e["field"] for e in problem.get("errors") or []]
    assert any(f == field or f.startswith(field + ".") for f in fields), (field, fields)


def _unique(text: str) -> str:
    """`text` made unique (external ids are unique), still hostile."""
    return f"{text}-{uuid.uuid4().hex[:6]}"


async def test_hostile_text_in_debtor_fields_round_trips_or_is_refused(api: Api) -> None:
    sentinel = (await api.post("/v1/debtors", debtor_body())).json()
    before = await api.counts()
    accepted = 0
    # Free-text fields: hostile text is kept exactly as sent.
    for text in ACCEPTED_TEXT:
        body = debtor_body(
            name=text,
            account_reference=text[:64],
            external_id=_unique(text)[:128],
            metadata={text[:40]: text, "k": text},
        )
        resp = await api.post("/v1/debtors", body)
        assert resp.status_code == 201, (text, resp.text)
        accepted += 1
        got = await api.client.get(f"/v1/debtors/{resp.json()['id']}")
        assert got.status_code == 200
        stored = got.json()
        for key in ("name", "account_reference", "external_id", "metadata"):
            assert stored[key] == body[key], (key, text)
            # Byte-exact as UTF-8 (JSON objects are unordered: metadata keys compared sorted).
            assert _utf8(stored[key]) == _utf8(body[key]), (key, text)
    # Refused in every string field, each naming the field.
    fields: dict[str, Any] = {
        "name": lambda v: {"name": v},
        "phone": lambda v: {"phone": v},
        "timezone": lambda v: {"timezone": v},
        "stage": lambda v: {"stage": v},
        "amount_owed.currency": lambda v: {"amount_owed": {"amount_minor": 1, "currency": v}},
        "due_date": lambda v: {"due_date": v},
        "account_reference": lambda v: {"account_reference": v},
        "external_id": lambda v: {"external_id": v},
        "metadata.k": lambda v: {"metadata": {"k": v}},
        "metadata": lambda v: {"metadata": {v: "value"}},
    }
    free_text = {"name", "account_reference", "external_id", "metadata.k", "metadata"}
    for field, make in fields.items():
        values = list(REFUSED_TEXT.values())
        if field not in free_text:  # formats: SQL and friends are not a phone number either
            values += ACCEPTED_TEXT
        for value in values:
            resp = await api.post("/v1/debtors", debtor_body(**make(value)))
            _names_field(_problem(resp, 422), f"body.{field}")
    # Hostile property names are unknown properties.
    resp = await api.post("/v1/debtors", {**debtor_body(), SQL_1: "x"})
    _names_field(_problem(resp, 422), "body")
    after = await api.counts()
    assert after == {**before, "debtors": before["debtors"] + accepted}
    assert (await api.client.get(f"/v1/debtors/{sentinel['id']}")).json() == sentinel


async def _all_endpoints(api: Api) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/v1/webhook-endpoints", params=params)).json()
        found.update({e["id"]: e for e in page["data"]})
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def test_hostile_text_in_webhook_endpoint_fields_round_trips_or_is_refused(
    api: Api,
) -> None:
    before = await api.counts()
    created: list[tuple[str, dict[str, Any]]] = []
    # Nothing listens on port 9: deliveries to these endpoints fail at once, locally.
    for text in ACCEPTED_TEXT:
        body = {
            "url": "http://127.0.0.1:9/hooks/" + quote(text, safe=""),
            "description": text,
            "events": ["call.completed"],
        }
        resp = await api.post("/v1/webhook-endpoints", body)
        assert resp.status_code == 201, (text, resp.text)
        created.append((resp.json()["id"], body))
    try:
        listed = await _all_endpoints(api)
        for endpoint_id, body in created:
            assert listed[endpoint_id]["url"] == body["url"]
            assert listed[endpoint_id]["description"] == body["description"]
        hostile = [*ACCEPTED_TEXT, *REFUSED_TEXT.values()]
        # Characters RFC 3986 does not allow in a URI, sent raw (not percent-encoded).
        not_uri = [t for t in hostile if not _URI_CHARS.fullmatch(t)]
        refusals: list[tuple[str, dict[str, Any]]] = [
            *(("url", {"url": v}) for v in hostile),
            *(("url", {"url": "http://127.0.0.1:9/" + v}) for v in not_uri),
            *(("url", {"url": f"http://{v}/h"}) for v in hostile),
            *(
                ("description", {"url": "http://127.0.0.1:9/h", "description": v})
                for v in REFUSED_TEXT.values()
            ),
            *(("events", {"url": "http://127.0.0.1:9/h", "events": [v]}) for v in hostile),
        ]
        for field, body in refusals:
            resp = await api.post("/v1/webhook-endpoints", body)
            _names_field(_problem(resp, 422), f"body.{field}")
        after = await api.counts()
        assert after["webhook_endpoints"] == before["webhook_endpoints"] + len(created)
        assert after["debtors"] == before["debtors"] and after["calls"] == before["calls"]
    finally:
        # Leave no live endpoint behind for other tests' events.
        async with api.sessions() as s, s.begin():
            for endpoint_id, _ in created:
                row = await s.get(models.WebhookEndpoint, uuid.UUID(endpoint_id))
                assert row is not None
                row.active = False


async def test_hostile_idempotency_keys_and_call_metadata_are_kept_exactly(api: Api) -> None:
    keys: list[str | bytes] = [
        SQL_1,
        SQL_2,
        "%00",
        "../../etc/passwd",
        "{{7*7}}",
        "${jndi:ldap://127.0.0.1:9/a}",
        "\u202eevil\u202c 👨‍👩‍👧".encode(),  # raw UTF-8 bytes in the header
    ]
    before = await api.counts()
    for raw, text in zip(keys, ACCEPTED_TEXT, strict=False):
        key = f"{uuid.uuid4().hex[:6]}-".encode() + (
            raw if isinstance(raw, bytes) else raw.encode()
        )
        debtor = (await api.post("/v1/debtors", debtor_body())).json()
        path = f"/v1/debtors/{debtor['id']}/calls"
        body = {"metadata": {text[:40]: text}}
        headers: Any = {"Idempotency-Key": key}
        first = await api.post(path, body, headers)
        assert first.status_code == 202, (raw, first.text)
        again = await api.post(path, body, headers)
        assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        got = (await api.client.get(f"/v1/calls/{first.json()['id']}")).json()
        assert _utf8(got["metadata"]) == _utf8(body["metadata"])
        async with api.sessions() as s:
            call = await s.get(models.Call, uuid.UUID(first.json()["id"]))
        assert call is not None and call.idempotency_key is not None
        # Stored as the header's octets (HTTP field values are ISO-8859-1 on the wire).
        assert call.idempotency_key.encode("latin-1") == key
    # Text that cannot be stored is refused in the trigger's metadata too, naming it.
    debtor = (await api.post("/v1/debtors", debtor_body())).json()
    for value in REFUSED_TEXT.values():
        for metadata in ({"k": value}, {value: "v"}):
            resp = await api.post(f"/v1/debtors/{debtor['id']}/calls", {"metadata": metadata})
            _names_field(_problem(resp, 422), "body.metadata")
    after = await api.counts()
    assert after["calls"] == before["calls"] + len(keys)
    assert after["debtors"] == before["debtors"] + len(keys) + 1


async def test_hostile_query_parameters_are_422_or_400_and_read_nothing(api: Api) -> None:
    before = await api.counts()
    hostile = [*ACCEPTED_TEXT, *REFUSED_TEXT.values()]
    for path, name in [
        ("/v1/calls", "debtor_id"),
        ("/v1/calls", "status"),
        ("/v1/webhook-deliveries", "event"),
        ("/v1/webhook-deliveries", "status"),
        ("/v1/webhook-deliveries", "endpoint_id"),
        ("/v1/stats/cost", "from"),
        ("/v1/debtors", "limit"),
    ]:
        for value in hostile:
            extra = {"to": "2026-12-01T00:00:00Z"} if name == "from" else {}
            resp = await api.client.get(_url(path, {name: value, **extra}))
            _names_field(_problem(resp, 422), f"query.{name}")
    for path in ("/v1/debtors", "/v1/calls", "/v1/webhook-endpoints", "/v1/webhook-deliveries"):
        for value in hostile:
            resp = await api.client.get(_url(path, {"cursor": value}))
            if len(value) > 1024:
                _names_field(_problem(resp, 422), "query.cursor")
            else:
                assert _problem(resp, 400)["type"] == "urn:problem:invalid-cursor"
        # A parameter nobody defined is ignored; the hostile name does nothing.
        resp = await api.client.get(path, params={SQL_1: SQL_2})
        assert resp.status_code == 200, resp.text
    assert await api.counts() == before


async def test_unknown_or_malformed_ids_are_404_or_422_everywhere(api: Api) -> None:
    before = await api.counts()
    debtor = (await api.post("/v1/debtors", debtor_body())).json()
    random_ids = [str(uuid.uuid4()), str(uuid.UUID(int=0)), str(uuid.uuid4()).upper()]
    malformed = [SQL_1, SQL_2, "not-a-uuid", "%00", "{{7*7}}", "\u202e" + str(uuid.uuid4())]
    routes = [
        ("GET", "/v1/debtors/{id}", "path.debtor_id"),
        ("POST", "/v1/debtors/{id}/calls", "path.debtor_id"),
        ("GET", "/v1/calls/{id}", "path.call_id"),
    ]
    for method, template, field in routes:
        for value in random_ids:
            resp = await api.client.request(method, template.format(id=value))
            assert _problem(resp, 404)["type"] == "urn:problem:not-found"
        for value in malformed:
            resp = await api.client.request(method, template.format(id=quote(value, safe="")))
            _names_field(_problem(resp, 422), field)
        # A path that escapes its segment matches no route.
        resp = await api.client.request(method, template.format(id="..%2F..%2Fetc%2Fpasswd"))
        assert resp.status_code in (404, 422) and resp.headers["content-type"].startswith(
            "application/problem+json"
        )
    # Filters naming nothing known find nothing.
    for path, name in [("/v1/calls", "debtor_id"), ("/v1/webhook-deliveries", "endpoint_id")]:
        resp = await api.client.get(path, params={name: str(uuid.uuid4())})
        assert resp.status_code == 200 and resp.json() == {"data": [], "next_cursor": None}
    after = await api.counts()
    assert after == {**before, "debtors": before["debtors"] + 1}
    assert (await api.client.get(f"/v1/debtors/{debtor['id']}")).json() == debtor


async def test_chunked_bodies_over_the_limit_are_413_on_every_route(api: Api) -> None:
    limit = TEST_OVERRIDES["max_request_body_bytes"]
    debtor = (await api.post("/v1/debtors", debtor_body())).json()
    before = await api.counts()
    for path in ("/v1/debtors", f"/v1/debtors/{debtor['id']}/calls", "/v1/webhook-endpoints"):

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            yield b'{"metadata": {"k": "'
            for _ in range(limit // 1024 + 2):
                yield b"x" * 1024
            yield b'"}}'

        resp = await api.client.post(
            path, content=chunks(), headers={"content-type": "application/json"}
        )
        assert _problem(resp, 413)["type"] == "urn:problem:payload-too-large"
    assert await api.counts() == before
