"""Fixtures for the simulator tests: the whole simulator stack on free ports, and a stand-in for
the service side of a call (TwiML, status callbacks and the media-stream WebSocket)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from simulators import SimConfig, SimulatorStack

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "sim-test-auth-token"

# Fast but still real-time settings: every timing the tests measure is configured here.
TEST_CONFIG = SimConfig(
    twilio_port=0,
    deepgram_port=0,
    openai_port=0,
    elevenlabs_port=0,
    speech="tone",
    ms_per_char=15.0,
    deepgram_latency_ms=0.0,
    deepgram_idle_timeout_s=1.5,
    openai_ttft_ms=250.0,
    openai_tokens_per_s=200.0,
    elevenlabs_ttfb_ms=120.0,
    elevenlabs_speed=20.0,
    elevenlabs_chunk_ms=200,
)


@pytest.fixture(scope="session")
async def sim() -> AsyncIterator[SimulatorStack]:
    async with SimulatorStack(TEST_CONFIG) as stack:
        yield stack


@pytest.fixture(scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@dataclass
class StreamSession:
    """One media-stream WebSocket as the service sees it."""

    ws: web.WebSocketResponse
    url: str
    signature: str | None
    signature_valid: bool
    messages: list[dict[str, Any]] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    arrivals: list[float] = field(default_factory=list)  # loop time each message arrived
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def start(self) -> dict[str, Any]:
        return next(m for m in self.messages if m["event"] == "start")

    @property
    def stream_sid(self) -> str:
        return str(self.start["streamSid"])

    async def send(self, msg: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(msg))

    async def send_media(self, audio: bytes) -> None:
        import base64

        await self.send(
            {
                "event": "media",
                "streamSid": self.stream_sid,
                "media": {"payload": base64.b64encode(audio).decode()},
            }
        )

    async def next_event(self, event: str, within: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                msg = await self.queue.get()
                if msg.get("event") == event:
                    return msg


class ServiceSide:
    """What the orchestrator exposes to Twilio: TwiML, status callbacks, the media stream."""

    def __init__(self) -> None:
        self.validator = RequestValidator(AUTH_TOKEN)
        self.callbacks: list[dict[str, Any]] = []
        self.twiml_requests: list[dict[str, Any]] = []
        self.streams: dict[str, StreamSession] = {}
        self.stream_waiters: dict[str, asyncio.Future[StreamSession]] = {}
        self.base = ""

    def stream_url(self, **query: str) -> str:
        ws = self.base.replace("http://", "ws://") + "/media"
        return ws + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")

    def twiml(self, **params: str) -> str:
        inner = "".join(f'<Parameter name="{k}" value="{v}"/>' for k, v in params.items())
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
            f'<Stream url="{self.stream_url(call="x")}">{inner}</Stream></Connect></Response>'
        )

    async def status(self, request: web.Request) -> web.Response:
        form = await request.post()
        params = {k: str(v) for k, v in form.items()}
        url = str(request.url)
        sig = request.headers.get("X-Twilio-Signature", "")
        self.callbacks.append(
            {"url": url, "params": params, "valid": self.validator.validate(url, params, sig)}
        )
        return web.Response(text="")

    async def status_get(self, request: web.Request) -> web.Response:
        # GET callbacks carry the parameters in the query string, which the signature covers:
        # validate the URL exactly as requested (raw_path), not a re-encoded one.
        url = self.base + request.raw_path
        sig = request.headers.get("X-Twilio-Signature", "")
        self.callbacks.append(
            {
                "url": url,
                "params": dict(request.query),
                "valid": self.validator.validate(url, {}, sig),
                "method": "GET",
            }
        )
        return web.Response(text="")

    async def twiml_handler(self, request: web.Request) -> web.Response:
        form = await request.post()
        params = {k: str(v) for k, v in form.items()}
        url = str(request.url)
        sig = request.headers.get("X-Twilio-Signature", "")
        self.twiml_requests.append(
            {"params": params, "valid": self.validator.validate(url, params, sig)}
        )
        return web.Response(text=self.twiml(source="url"), content_type="text/xml")

    async def media(self, request: web.Request) -> web.WebSocketResponse:
        # Twilio signs the <Stream url> exactly as written, ws:// scheme included.
        url = str(request.url).replace("http://", "ws://", 1)
        sig = request.headers.get("X-Twilio-Signature")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = StreamSession(ws, url, sig, self.validator.validate(url, {}, sig or ""))
        reader = asyncio.create_task(self._read(session))
        try:
            await asyncio.wait_for(session.started.wait(), 5)
            call_sid = session.start["start"]["callSid"]
            self.streams[call_sid] = session
            waiter = self.stream_waiters.pop(call_sid, None)
            if waiter and not waiter.done():
                waiter.set_result(session)
            await reader  # the test drives the session; the socket lives until one side closes
        finally:
            reader.cancel()
            await ws.close()
        return ws

    async def _read(self, session: StreamSession) -> None:
        async for msg in session.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            session.arrivals.append(asyncio.get_running_loop().time())
            session.messages.append(data)
            session.queue.put_nowait(data)
            if data.get("event") == "start":
                session.started.set()
        session.closed.set()

    async def wait_stream(self, call_sid: str, within: float = 10.0) -> StreamSession:
        if call_sid in self.streams:
            return self.streams[call_sid]
        fut = self.stream_waiters.setdefault(call_sid, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(fut, within)


@pytest.fixture(scope="session")
async def service() -> AsyncIterator[ServiceSide]:
    side = ServiceSide()
    app = web.Application()
    app.router.add_post("/status", side.status)
    app.router.add_get("/status", side.status_get)
    app.router.add_post("/twiml", side.twiml_handler)
    app.router.add_get("/media", side.media)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    side.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield side
    await runner.cleanup()


_number_counter = iter(range(100, 10_000))


@pytest.fixture(scope="session")
def creds() -> tuple[str, str]:
    return ACCOUNT_SID, AUTH_TOKEN


@pytest.fixture(scope="session")
def number_for(http: aiohttp.ClientSession, sim: SimulatorStack) -> Callable[..., Awaitable[str]]:
    """Assign a persona (name or inline definition) to a fresh number and return the number."""

    async def assign(persona: str | dict[str, Any], time_scale: float = 1.0) -> str:
        number = f"+1555{next(_number_counter):07d}"
        assert sim.urls is not None
        body = {"number": number, "persona": persona, "time_scale": time_scale}
        async with http.post(f"{sim.urls.control}/numbers", json=body) as resp:
            assert resp.status == 201, await resp.text()
        return number

    return assign


@pytest.fixture(scope="session")
def call_record(
    http: aiohttp.ClientSession, sim: SimulatorStack
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """The control API's record of a call; ``wait`` seconds for it to finish first."""

    async def get(sid: str, wait: float = 0) -> dict[str, Any]:
        assert sim.urls is not None
        async with http.get(f"{sim.urls.control}/calls/{sid}", params={"wait": str(wait)}) as r:
            assert r.status == 200
            data: dict[str, Any] = await r.json()
            return data

    return get
