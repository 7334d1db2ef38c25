"""The Voice Orchestrator's FastAPI app: its creation and lifespan; the routes are in routes/
(`/healthz`, Twilio status callbacks, `/media-stream`) and amd.py (Twilio's AMD verdicts).

The lifespan starts the `call-dispatch` consumer, the outbox relay (publishes `call.completed`)
and the sweeper (ends calls whose session vanished). Tests may swap the telephony client, blob
store and tuning (`Overrides`); vendor failures are injected by the simulators instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI

from services.common.blobstore import GcsBlobStore
from services.common.bus import PubSubBus
from services.common.db import create_engine, session_factory
from services.common.logging import get_logger
from services.common.looplag import GcPauseMonitor, LoopLagMonitor
from services.common.outbox import OutboxRelay
from services.common.settings import Settings, get_settings
from services.common.topology import subscription_for
from services.voice_orchestrator import amd, calls, reconcile
from services.voice_orchestrator.core import default_prompt_set
from services.voice_orchestrator.dispatch import Dispatcher
from services.voice_orchestrator.orchestrator import Orchestrator, Overrides, default_tuning
from services.voice_orchestrator.premade import PremadeSynthesizer
from services.voice_orchestrator.routes import health, media, status
from services.voice_orchestrator.sweeper import run_sweeper
from services.voice_orchestrator.vendors.deepgram import DeepgramListen
from services.voice_orchestrator.vendors.openai_llm import openai_client
from services.voice_orchestrator.vendors.twilio import (
    MAX_FRAME_BYTES,
    SignatureVerifier,
    TwilioTelephony,
)

__all__ = ["WS_SERVER_OPTIONS", "Orchestrator", "Overrides", "create_app", "default_tuning"]

log = get_logger(__name__)

SHUTDOWN_DRAIN_S = 8.0
# Collect the young generation after 5,000 net new objects instead of 700, and the old one
# after 100 middle-generation collections instead of 10. Fewer collections: a call's per-frame
# and per-token objects mostly die before one sees them, and full collections (each stops every
# call for ~100 ms) stay rare; none ran during a 100-call step. Not larger: a collection costs
# ~1 µs per live young object on our 2-core VM, and with 20,000 a young collection took up to
# 48 ms and a middle one up to 211 ms, which made the overhead tail. At 100 calls (bench.capacity
# --steps 100 --repeat 3), per-run overhead p99 was 17-35 ms in 6 runs with 5,000; 21-258 ms in
# 11 runs with 20,000, 3 of them over 50.
GC_THRESHOLDS = (5_000, 10, 100)
# Worker threads for blocking work off the loop (recording WAVs, blob uploads). Each runnable one
# competes with the loop for the GIL; with asyncio's default (cores + 4) the calls that end in the
# same second each held one, and the live calls' turns around them waited (capacity bench: the
# overhead tail came from the seconds when calls ended). Two keep uploads flowing meanwhile.
BACKGROUND_THREADS = 2

# uvicorn's options for the media WebSocket; `__main__` runs the server with them (tests too).
WS_SERVER_OPTIONS: dict[str, Any] = {
    # Twilio sends its own keep-alive traffic (media every 20 ms); ping only idle sockets.
    "ws_ping_interval": 20.0,
    # Base64 μ-law compresses poorly; deflating every 20 ms frame cost CPU (py-spy).
    "ws_per_message_deflate": False,
    # A bigger message is refused by the protocol layer (close 1009) before it is buffered.
    "ws_max_size": MAX_FRAME_BYTES,
}


def create_app(settings: Settings | None = None, overrides: Overrides | None = None) -> FastAPI:
    settings = settings or get_settings()
    overrides = overrides or Overrides()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        sessions = session_factory(engine)
        # Read prompt files once, off the loop, before the first call needs them.
        await asyncio.to_thread(default_prompt_set)
        tuning = overrides.tuning or default_tuning(settings)
        orch = Orchestrator(
            settings=settings,
            engine=engine,
            sessions=sessions,
            blobstore=overrides.blobstore or GcsBlobStore(settings),
            telephony=overrides.telephony or TwilioTelephony(settings),
            # One client each per process: building one costs ~50 ms of blocking SSL setup.
            openai=openai_client(settings),
            deepgram=DeepgramListen(settings),
            verifier=SignatureVerifier(settings),
            tuning=tuning,
            overrides=overrides,
            warm=calls.WarmCalls(settings.elevenlabs_prewarm_ttl_seconds),
            premade_synth=(
                PremadeSynthesizer(settings) if settings.premade_cache_max_bytes > 0 else None
            ),
        )
        app.state.orch = orch
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=BACKGROUND_THREADS, thread_name_prefix="background")
        )
        orch.idle.set()
        _warm_up(orch)
        # Everything alive now (SDK modules, their type tables: hundreds of thousands of objects)
        # lives for the whole process. Freezing it keeps full GC passes from walking it: such a
        # pass otherwise stalls the loop, and every live call's audio pacing, for ~200 ms.
        gc.collect()
        gc.freeze()
        gc_thresholds = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        background: list[asyncio.Task[Any]] = []
        bus: PubSubBus | None = None
        if overrides.run_relay:
            bus = PubSubBus(settings)
            orch.relay = OutboxRelay(
                sessions, bus, poll_interval=settings.outbox_poll_interval_seconds
            )
            background.append(asyncio.create_task(orch.relay.run(), name="outbox-relay"))
        dispatcher = Dispatcher(
            settings,
            orch.telephony,
            orch.cache,
            sessions,
            on_dialing=orch.prepare_call,
            on_not_placed=orch.release_call,
        )
        if overrides.run_consumer:
            bus = bus or PubSubBus(settings)
            sub = subscription_for(settings, settings.pubsub_topic_call_dispatch).name
            bus.subscribe(sub, dispatcher)
        orch.bus = bus
        if overrides.run_sweeper:
            background.append(asyncio.create_task(run_sweeper(orch), name="sweeper"))
            # Dials whose outcome was lost, dispatches never received (docs/reliability.md).
            rec = reconcile.for_orchestrator(orch, dispatcher, partial(status.on_status, orch))
            background.append(asyncio.create_task(rec.run(), name="reconciler"))
        background.append(asyncio.create_task(lag.run(), name="loop-lag"))
        orch.heartbeats = calls.HeartbeatBatcher(sessions)
        background.append(asyncio.create_task(orch.heartbeats.run(), name="heartbeats"))
        log.info("voice_orchestrator_started")
        try:
            yield
        finally:
            # Let live calls finish their finalize (rows, blobs, outbox) before the pools close;
            # a call cut short here is ended by the sweeper of another instance.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(orch.idle.wait(), SHUTDOWN_DRAIN_S)
            if bus is not None:
                await bus.aclose()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await orch.warm.aclose()
            if orch.premade_synth is not None:
                await orch.premade_synth.aclose()
            await orch.telephony.aclose()
            await orch.openai.close()
            await engine.dispose()
            gc_pauses.close()
            gc.set_threshold(*gc_thresholds)

    # A blocked loop delays every live call's audio: health reports how late it wakes, and how
    # long the garbage collector held it.
    lag = LoopLagMonitor()
    gc_pauses = GcPauseMonitor()
    app = FastAPI(title="Voice Orchestrator", lifespan=lifespan)
    app.state.lag, app.state.gc_pauses = lag, gc_pauses  # read by /healthz
    app.include_router(health.router)
    app.include_router(status.router)
    amd.add_amd_route(app, lambda: app.state.orch)  # Twilio's AMD verdicts (signed)
    app.include_router(media.router)

    return app


def _warm_up(orch: Orchestrator) -> None:
    """Trigger the SDKs' lazy imports now, not on the first live call (where the imports would
    stall the event loop, and with it every other call's audio, for a few hundred ms)."""
    from deepgram.core.unchecked_base_model import construct_type
    from deepgram.listen.v1.socket_client import V1SocketClientResponse

    _ = orch.openai.chat.completions
    construct_type(type_=V1SocketClientResponse, object_={"type": "SpeechStarted"})  # type: ignore[arg-type]
    if isinstance(orch.telephony, TwilioTelephony):
        _ = orch.telephony.client.api.v2010.account.calls
