"""Starts the four simulators in one process, one port each, around one shared phone network."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from types import TracebackType

import aiohttp
from aiohttp import web

from simulators.config import SimConfig
from simulators.control import URLS_KEY, add_control_routes
from simulators.deepgram.server import add_deepgram_routes
from simulators.elevenlabs.server import add_elevenlabs_routes
from simulators.network import NETWORK_KEY, PhoneNetwork
from simulators.openai.server import add_openai_routes
from simulators.twilio.calls import CALLS_KEY, CallBook
from simulators.twilio.server import HTTP_KEY, add_twilio_routes

log = logging.getLogger("simulators")


@dataclass(frozen=True, slots=True)
class SimulatorUrls:
    twilio: str  # set as the Twilio SDK's API base URL (client.api.base_url)
    control: str  # the control API, on the Twilio port
    deepgram_http: str  # DeepgramClientEnvironment.base
    deepgram_ws: str  # DeepgramClientEnvironment.production
    openai: str  # AsyncOpenAI(base_url=...)
    elevenlabs_http: str  # ElevenLabs client base_url
    elevenlabs_ws: str  # where the stream-input WebSocket URLs start

    def as_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in self.__slots__}


class SimulatorStack:
    """``async with SimulatorStack(config) as stack:`` runs all simulators until the block ends."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.network: PhoneNetwork | None = None
        self.calls: CallBook | None = None  # the Twilio simulator's calls
        self.http: aiohttp.ClientSession | None = None
        self.urls: SimulatorUrls | None = None
        self._runners: list[web.AppRunner] = []

    async def _serve(self, app: web.Application, port: int) -> int:
        # No access log: 50 media frames a second per call must not each cost a log line.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, port)
        await site.start()
        self._runners.append(runner)
        return int(runner.addresses[0][1])

    async def start(self) -> SimulatorUrls:
        cfg = self.config
        self.network = network = PhoneNetwork(cfg)
        self.calls = calls = CallBook(network)
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
        )

        def app() -> web.Application:
            a = web.Application(client_max_size=16 * 1024 * 1024)
            a[NETWORK_KEY] = network
            return a

        twilio_app = app()
        twilio_app[HTTP_KEY] = self.http
        twilio_app[CALLS_KEY] = calls
        add_twilio_routes(twilio_app)
        add_control_routes(twilio_app)
        urls: dict[str, str] = {}
        twilio_app[URLS_KEY] = urls
        deepgram_app, openai_app, eleven_app = app(), app(), app()
        add_deepgram_routes(deepgram_app)
        add_openai_routes(openai_app)
        add_elevenlabs_routes(eleven_app)

        host = cfg.host
        tw = await self._serve(twilio_app, cfg.twilio_port)
        dg = await self._serve(deepgram_app, cfg.deepgram_port)
        oa = await self._serve(openai_app, cfg.openai_port)
        el = await self._serve(eleven_app, cfg.elevenlabs_port)
        self.urls = SimulatorUrls(
            twilio=f"http://{host}:{tw}",
            control=f"http://{host}:{tw}/_sim",
            deepgram_http=f"http://{host}:{dg}",
            deepgram_ws=f"ws://{host}:{dg}",
            openai=f"http://{host}:{oa}/v1",
            elevenlabs_http=f"http://{host}:{el}",
            elevenlabs_ws=f"ws://{host}:{el}",
        )
        urls.update(self.urls.as_dict())
        return self.urls

    async def stop(self) -> None:
        if self.calls is not None:
            await self.calls.cancel_live()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self.http is not None:
            await self.http.close()
            self.http = None

    async def __aenter__(self) -> SimulatorStack:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve_forever(config: SimConfig) -> None:
    async with SimulatorStack(config) as stack:
        assert stack.urls is not None and stack.network is not None
        u = stack.urls
        print(f"Twilio      REST    {u.twilio}  (client.api.base_url)", flush=True)
        print(f"Control API         {u.control}", flush=True)
        print(
            f"Deepgram    live    {u.deepgram_ws}/v1/listen  (base {u.deepgram_http})", flush=True
        )
        print(f"OpenAI      chat    {u.openai}/chat/completions", flush=True)
        print(
            f"ElevenLabs  TTS WS  {u.elevenlabs_ws}/v1/text-to-speech/{{voice_id}}/stream-input",
            flush=True,
        )
        print(f"speech: {stack.network.synth.mode}; Ctrl-C stops.", flush=True)
        await asyncio.Event().wait()
