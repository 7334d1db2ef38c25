"""Connections that never finish a request are closed; real requests and calls are not.

Raw TCP sockets against the real Voice Orchestrator app on an in-process uvicorn server, run
with the options every service's `__main__` uses (`server_options`), here with a 1 s header
deadline and keep-alive so the tests are quick. A server without them is the control: the same
idle socket stays open there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import uvicorn
import websockets
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from twilio.request_validator import RequestValidator

from services.common import models
from services.common.server_timeouts import server_options
from services.common.settings import Settings
from services.voice_orchestrator.app import WS_SERVER_OPTIONS, Overrides, create_app
from services.voice_orchestrator.session import SessionTuning
from services.voice_orchestrator.stream_token import media_path, stream_token
from simulators import SimulatorStack
from tests.helpers import vendor_settings
from tests.orchestrator.conftest import free_port

HEADER_TIMEOUT_S = 1.0
KEEP_ALIVE_S = 1
# The deadline fires on the event loop: allow for a busy 2-core box.
SLACK_S = 1.0
SILENCE_20MS = base64.b64encode(b"\xff" * 160).decode()


@dataclass
class Server:
    settings: Settings
    port: int


async def _serve(settings: Settings, options: dict[str, Any]) -> AsyncIterator[Server]:
    port = free_port()
    s = settings.model_copy(update={"orchestrator_public_url": f"http://127.0.0.1:{port}"})
    app = create_app(
        s,
        Overrides(
            tuning=SessionTuning(silence_reprompt_s=30.0),
            run_consumer=False,
            run_relay=False,
            run_sweeper=False,
        ),
    )
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **options
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    try:
        yield Server(s, port)
    finally:
        server.should_exit = True
        await task


def _settings(settings: Settings, sim: SimulatorStack) -> Settings:
    assert sim.urls is not None
    return settings.model_copy(
        update={
            **vendor_settings(sim.urls, "http://127.0.0.1:9"),
            "http_header_timeout_seconds": HEADER_TIMEOUT_S,
            "http_keep_alive_seconds": KEEP_ALIVE_S,
        }
    )


@pytest.fixture(scope="module")
async def guarded(settings: Settings, sim: SimulatorStack) -> AsyncIterator[Server]:
    s = _settings(settings, sim)
    async for server in _serve(s, {**WS_SERVER_OPTIONS, **server_options(s)}):
        yield server


@pytest.fixture(scope="module")
async def unguarded(settings: Settings, sim: SimulatorStack) -> AsyncIterator[Server]:
    s = _settings(settings, sim)
    async for server in _serve(s, {**WS_SERVER_OPTIONS, "timeout_keep_alive": KEEP_ALIVE_S}):
        yield server


async def _open_for(port: int, send: list[tuple[float, bytes]], within: float) -> float | None:
    """Connect, send each (delay, bytes); seconds from connecting until the server closed the
    connection, or None if it was still open after `within`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.monotonic()
    try:

        async def feed() -> None:
            for delay, data in send:
                await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()

        feeder = asyncio.create_task(feed())
        try:
            async with asyncio.timeout(within):
                while await reader.read(65536):
                    pass  # a response, if any; then EOF
            return time.monotonic() - t0
        except TimeoutError:
            return None
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
    finally:
        writer.close()


HALF_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow"


async def test_idle_and_half_header_connections_stay_open_without_the_guard(
    unguarded: Server,
) -> None:
    """The control: uvicorn alone never times these out (issue 19 saw 150 s and 60 s)."""
    for send in ([], [(0.0, HALF_HEADERS)]):
        assert await _open_for(unguarded.port, send, within=4 * HEADER_TIMEOUT_S) is None


@pytest.mark.parametrize(
    "case",
    ["idle", "half headers", "a byte every 0.3 s", "idle after a response"],
)
async def test_a_connection_without_a_whole_request_is_closed_within_the_limit(
    guarded: Server, case: str
) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    send = {
        "idle": [],
        "half headers": [(0.0, HALF_HEADERS)],
        # Each byte would cancel uvicorn's own keep-alive timer; the deadline is not reset.
        "a byte every 0.3 s": [(0.3, bytes([b])) for b in HALF_HEADERS[:20]],
        "idle after a response": [(0.0, request)],
    }[case]
    limit = KEEP_ALIVE_S if case == "idle after a response" else HEADER_TIMEOUT_S
    closed_after = await _open_for(guarded.port, send, within=limit + 5)
    assert closed_after is not None, case
    assert limit * 0.8 <= closed_after <= limit + SLACK_S, (case, closed_after)


async def test_a_second_request_after_a_stalled_half_is_not_served(guarded: Server) -> None:
    """After a response, the next request's headers are on the same deadline."""
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(
            next(
                line.split(b":", 1)[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
        )
        await reader.readexactly(length)
        t0 = time.monotonic()
        with contextlib.suppress(ConnectionError):
            for b in HALF_HEADERS[:20]:
                writer.write(bytes([b]))
                await writer.drain()
                await asyncio.sleep(0.2)  # each byte well inside keep-alive
        try:
            rest = await asyncio.wait_for(reader.read(), HEADER_TIMEOUT_S + 5)
        except ConnectionError:  # our drip hit the closed socket
            rest = b""
        assert rest == b""  # closed, nothing served
        assert time.monotonic() - t0 <= HEADER_TIMEOUT_S + SLACK_S
    finally:
        writer.close()


async def test_whole_requests_are_served_on_one_connection(guarded: Server) -> None:
    """Keep-alive still works: two requests, the second well inside the keep-alive window."""
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
    try:
        for _ in range(2):
            # A request written in pieces over most of the deadline is still in time.
            for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.15)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(
                next(
                    line.split(b":", 1)[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
            )
            assert json.loads(await reader.readexactly(length))["status"] == "ok"
            await asyncio.sleep(0.2)
    finally:
        writer.close()


async def _ringing_call(sessions: async_sessionmaker[AsyncSession]) -> tuple[uuid.UUID, str]:
    sid = "CA" + uuid.uuid4().hex
    now = datetime.now(UTC)
    async with sessions() as s, s.begin():
        debtor = models.Debtor(
            name="Jane Doe",
            phone=f"+1555{uuid.uuid4().int % 10**7:07d}",
            timezone="America/New_York",
            stage="early",
            amount_owed_minor=45000,
            currency="USD",
            due_date=date.today() - timedelta(days=20),
            account_reference="ACC-1",
        )
        s.add(debtor)
        await s.flush()
        call = models.Call(
            debtor_id=debtor.id,
            status="ringing",
            stage="early",
            twilio_call_sid=sid,
            dispatched_at=now,
            started_at=now,
            dial_started_at=now,
            dial_attempts=1,
        )
        s.add(call)
        await s.flush()
        return call.id, sid


async def test_a_media_websocket_outlives_the_header_deadline(
    guarded: Server, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A call's stream runs for many header deadlines and ends only when Twilio stops it."""
    call_id, sid = await _ringing_call(sessions)
    url = f"ws://127.0.0.1:{guarded.port}" + media_path(stream_token(guarded.settings, call_id, 1))
    token = guarded.settings.twilio_auth_token.get_secret_value()
    sig = RequestValidator(token).compute_signature(url, {})
    stream_sid = "MZ" + uuid.uuid4().hex
    got_media = 0
    async with websockets.connect(url, additional_headers={"X-Twilio-Signature": sig}) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(
            json.dumps(
                {
                    "event": "start",
                    "streamSid": stream_sid,
                    "start": {
                        "streamSid": stream_sid,
                        "callSid": sid,
                        "tracks": ["inbound"],
                        "mediaFormat": {
                            "encoding": "audio/x-mulaw",
                            "sampleRate": 8000,
                            "channels": 1,
                        },
                        "customParameters": {"call_id": str(call_id), "attempt": "1"},
                    },
                }
            )
        )
        t0 = time.monotonic()
        ts = 0
        while time.monotonic() - t0 < 4 * HEADER_TIMEOUT_S:
            ts += 20
            media = {"track": "inbound", "timestamp": str(ts), "payload": SILENCE_20MS}
            await ws.send(json.dumps({"event": "media", "streamSid": stream_sid, "media": media}))
            try:
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 0.02))
                    got_media += frame.get("event") == "media"
            except TimeoutError:
                pass
        assert got_media > 0  # the agent's greeting, over a socket older than the deadline
        await ws.send(json.dumps({"event": "stop", "streamSid": stream_sid}))
        with pytest.raises(websockets.ConnectionClosedOK):
            async with asyncio.timeout(15):
                while True:
                    await ws.recv()
