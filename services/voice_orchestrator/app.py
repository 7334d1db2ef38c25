"""The Voice Orchestrator's FastAPI app: `/healthz`, Twilio status callbacks, `/media-stream`.

The lifespan starts the `call-dispatch` consumer, the outbox relay (publishes `call.completed`)
and the sweeper (ends calls whose session vanished). Tests may swap the telephony client, blob
store and tuning (`Overrides`); vendor failures are injected by the simulators instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response, WebSocket
from openai import AsyncOpenAI
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from generated.call_dispatch import CallDispatch
from generated.call_step_reason import CallStepReason
from services.common.blobstore import BlobStore, GcsBlobStore
from services.common.bus import PubSubBus
from services.common.db import create_engine, session_factory
from services.common.logging import bind_call_id, get_logger
from services.common.looplag import GcPauseMonitor, LoopLagMonitor
from services.common.models import Call
from services.common.outbox import OutboxRelay
from services.common.settings import Settings, get_settings
from services.common.topology import subscription_for
from services.voice_orchestrator import amd, calls, reconcile
from services.voice_orchestrator.core import Conversation, default_prompt_set, prompt_cache_key
from services.voice_orchestrator.dispatch import MEDIA_PATH, STATUS_PATH, Dispatcher
from services.voice_orchestrator.finalize import end_without_session
from services.voice_orchestrator.media_stream import StarletteTransport, run_media_session
from services.voice_orchestrator.ports import LanguageModel, SpeechToText, TextToSpeech
from services.voice_orchestrator.premade import PremadeLines, PremadeSynthesizer
from services.voice_orchestrator.session import CallSession, SessionTuning
from services.voice_orchestrator.session.voicemail import dial_lines, plan_from_settings
from services.voice_orchestrator.vendors.deepgram import DeepgramListen, DeepgramStt
from services.voice_orchestrator.vendors.elevenlabs import ElevenLabsTts
from services.voice_orchestrator.vendors.openai_llm import OpenAiLlm, openai_client
from services.voice_orchestrator.vendors.twilio import (
    MAX_FRAME_BYTES,
    SignatureVerifier,
    Telephony,
    TwilioTelephony,
)

log = get_logger(__name__)

SWEEP_INTERVAL_S = 60.0
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
# Twilio's status callbacks are ~1 KiB of form fields; a bigger body is refused with 413 before
# it is read whole. (A candidate for a setting.)
MAX_CALLBACK_BODY_BYTES = 64 * 1024

# Twilio CallStatus → (our terminal status, outcome) for calls that never reached a person.
UNANSWERED = {
    "busy": ("busy", "no_answer"),
    "no-answer": ("no_answer", "no_answer"),
    "failed": ("failed", "failed"),
    "canceled": ("canceled", "failed"),
}
UNANSWERED_REASONS = {  # ... and the reason of the call's `ended` step
    "busy": CallStepReason.BUSY,
    "no-answer": CallStepReason.NO_ANSWER,
    "failed": CallStepReason.TWILIO_FAILED,
    "canceled": CallStepReason.TWILIO_CANCELED,
}


@dataclass
class Overrides:
    """Test seams; None means "build from settings". Vendor faults come from the simulators
    (`/_sim/faults`), not from here."""

    tuning: SessionTuning | None = None
    telephony: Telephony | None = None
    blobstore: BlobStore | None = None
    run_consumer: bool = True
    run_relay: bool = True
    run_sweeper: bool = True


@dataclass
class Orchestrator:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    blobstore: BlobStore
    telephony: Telephony
    openai: AsyncOpenAI
    deepgram: DeepgramListen
    verifier: SignatureVerifier
    tuning: SessionTuning
    overrides: Overrides
    cache: calls.SnapshotCache = field(default_factory=calls.SnapshotCache)
    live: dict[str, CallSession] = field(default_factory=dict)
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set while no call is live
    relay: OutboxRelay | None = None
    bus: PubSubBus | None = None
    heartbeats: calls.HeartbeatBatcher | None = None
    # Opened when a call is dialed, taken when its media stream starts (see `prepare_call`).
    warm: calls.WarmCalls = field(default_factory=lambda: calls.WarmCalls(90.0))
    premade_synth: PremadeSynthesizer | None = None  # None: pre-made audio is off

    def stt(self, call_id: str, call_sid: str) -> SpeechToText:
        return DeepgramStt(self.settings, call_sid, listen=self.deepgram)

    def tts(self, call_id: str) -> TextToSpeech:
        """The socket opened when the call was dialed, if it is still good; else a new one."""
        warm = self.warm.take_tts(call_id)
        if warm is not None:
            if warm.usable:
                return warm
            self.warm.close_later(warm)
        return ElevenLabsTts(self.settings)

    def llm(self, call_id: str, prompt_version: str) -> LanguageModel:
        # Keyed by prompt version, not by call: every call on the same prompts shares the
        # provider's cache of the static prefix (policy and tools).
        return OpenAiLlm(
            self.settings,
            self.openai,
            cache_key=prompt_cache_key(prompt_version),
            call_id=call_id,
        )

    def premade(self, call_id: str) -> PremadeLines:
        """The call's pre-made lines: the ones started when it was dialed (its greeting), or a
        fresh view of the process-wide cache."""
        return self.warm.take_premade(call_id) or PremadeLines(self.premade_synth, call_id)

    def prepare_call(self, msg: CallDispatch) -> None:
        """At dial time (the dispatcher's `on_dialing`): open the call's TTS socket and start
        its greeting's audio while the phone rings."""
        call_id = str(msg.call_id)
        tts = ElevenLabsTts(self.settings)
        tts.connect()
        premade = PremadeLines(self.premade_synth, call_id)
        if self.premade_synth is not None and self.settings.premade_at_dial:
            facts = calls.facts_from_dispatch(msg, self.settings)
            premade.prefetch([Conversation(facts, datetime.now(UTC)).greeting_line()])
        premade.prefetch(dial_lines(self.tuning.voicemail))  # before a machine's beep
        self.warm.put(call_id, tts=tts, premade=premade)

    def release_call(self, call_id: str) -> None:
        """The call ends (or was not placed) with no session here: close what it had open."""
        self.warm.discard(call_id)


def default_tuning(settings: Settings) -> SessionTuning:
    return SessionTuning(
        barge_in_min_speech_ms=settings.barge_in_min_speech_ms,
        voicemail=plan_from_settings(settings),
    )


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
            background.append(asyncio.create_task(_sweeper(orch), name="sweeper"))
            # Dials whose outcome was lost, dispatches never received (docs/reliability.md).
            rec = reconcile.for_orchestrator(orch, dispatcher, partial(_on_status, orch))
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

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        orch: Orchestrator = request.app.state.orch
        states = orch.bus.consumer_states() if orch.bus else []
        failing = {s.subscription: s.error for s in states if s.error}
        return {
            "status": "degraded" if failing else "ok",
            "live_calls": len(orch.live),
            **({"pubsub": failing} if failing else {}),
            **lag.snapshot(),
            **gc_pauses.snapshot(),
        }

    @app.post(STATUS_PATH)
    async def twilio_status(request: Request) -> Response:
        orch: Orchestrator = request.app.state.orch
        body = await _read_body(request, MAX_CALLBACK_BODY_BYTES)
        if body is None:
            log.warning("twilio_callback_too_large", path=request.url.path)
            # The rest of the body is read and discarded by the server (no reset mid-upload).
            return Response(status_code=413)
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        signature = request.headers.get("x-twilio-signature", "")
        try:
            # Twilio posts application/x-www-form-urlencoded UTF-8; parsed without
            # python-multipart. A body that is not UTF-8 cannot carry a valid signature.
            params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            params, signature = {}, ""
        if not orch.verifier.verify_http(path, params, signature):
            log.warning("twilio_signature_rejected", path=request.url.path)
            return Response(status_code=403)
        try:
            call_id = uuid.UUID(request.query_params.get("call_id", ""))
        except ValueError:
            return Response(status_code=400)
        bind_call_id(str(call_id))
        await _on_status(orch, call_id, params)
        return Response(status_code=204)

    amd.add_amd_route(app, lambda: app.state.orch)  # Twilio's AMD verdicts (signed)

    # No route for a URL without a token: its handshake is refused with 403.
    @app.websocket(MEDIA_PATH + "/{token}")
    async def media_stream(ws: WebSocket, token: str) -> None:
        orch: Orchestrator = ws.app.state.orch
        path = ws.url.path + (f"?{ws.url.query}" if ws.url.query else "")
        if not orch.verifier.verify_websocket(path, ws.headers.get("x-twilio-signature", "")):
            log.warning("twilio_signature_rejected", path=ws.url.path)
            await ws.close(code=1008)  # before accept: the handshake is refused with 403
            return
        await ws.accept()
        await run_media_session(orch, StarletteTransport(ws), token)

    return app


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it is over `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _warm_up(orch: Orchestrator) -> None:
    """Trigger the SDKs' lazy imports now, not on the first live call (where the imports would
    stall the event loop, and with it every other call's audio, for a few hundred ms)."""
    from deepgram.core.unchecked_base_model import construct_type
    from deepgram.listen.v1.socket_client import V1SocketClientResponse

    _ = orch.openai.chat.completions
    construct_type(type_=V1SocketClientResponse, object_={"type": "SpeechStarted"})  # type: ignore[arg-type]
    if isinstance(orch.telephony, TwilioTelephony):
        _ = orch.telephony.client.api.v2010.account.calls


async def _on_status(orch: Orchestrator, call_id: uuid.UUID, params: dict[str, str]) -> None:
    status = params.get("CallStatus", "")
    if (status in UNANSWERED or status == "completed") and str(call_id) not in orch.live:
        orch.release_call(str(call_id))  # ended before its media stream started here
    async with orch.sessions() as session, session.begin():
        await reconcile.adopt_call_sid(session, call_id, params.get("CallSid", ""))
        if status == "ringing":
            await calls.mark_ringing(session, call_id)
        elif status in ("in-progress", "answered"):
            await calls.mark_answered(session, call_id)
        elif status in UNANSWERED:
            ours, outcome = UNANSWERED[status]
            reason = None
            if status in ("failed", "canceled"):
                code = params.get("ErrorCode") or params.get("SipResponseCode") or "unknown"
                reason = f"Twilio reported the call {status} ({code})"
            await end_without_session(
                session,
                orch.settings,
                call_id,
                status=ours,
                outcome=outcome,
                failure_reason=reason,
                reason=UNANSWERED_REASONS[status],
            )
        elif status == "completed" and str(call_id) not in orch.live:
            # Completed with no live session here: if no session ever started, the media
            # stream never connected. (A session on another instance has a heartbeat.)
            row = (
                await session.execute(
                    select(Call.heartbeat_at).where(Call.id == call_id).with_for_update()
                )
            ).first()
            if row is not None and row[0] is None:
                await end_without_session(
                    session,
                    orch.settings,
                    call_id,
                    status="completed",
                    outcome="failed",
                    failure_reason="the call was answered but the media stream never connected",
                    reason=CallStepReason.MEDIA_NEVER_CONNECTED,
                )
    if orch.relay is not None:
        orch.relay.wake()


async def _sweeper(orch: Orchestrator) -> None:
    """End calls stuck in a live status whose session vanished (crash, lost instance)."""
    stale = timedelta(seconds=orch.settings.call_sweeper_stale_seconds)
    # A third of the staleness: a vanished call ends at most ~1.33 x stale after its last beat.
    interval = min(SWEEP_INTERVAL_S, max(1.0, stale.total_seconds() / 3))
    while True:
        await asyncio.sleep(interval)
        try:
            cutoff = datetime.now(UTC) - stale
            async with orch.sessions() as session, session.begin():
                ids = (
                    await session.scalars(
                        select(Call.id).where(
                            Call.status.in_(("dialing", "ringing", "in_progress")),
                            # A dial with no CallSid yet is the reconciler's to settle.
                            Call.twilio_call_sid.is_not(None) | Call.dial_started_at.is_(None),
                            or_(
                                Call.heartbeat_at < cutoff,
                                (Call.heartbeat_at.is_(None)) & (Call.started_at < cutoff),
                            ),
                        )
                    )
                ).all()
                for call_id in ids:
                    if str(call_id) in orch.live:
                        continue
                    orch.release_call(str(call_id))
                    await end_without_session(
                        session,
                        orch.settings,
                        call_id,
                        status="failed",
                        outcome="failed",
                        failure_reason="the call's session vanished (no heartbeat)",
                        reason=CallStepReason.SESSION_VANISHED,
                    )
            if ids and orch.relay is not None:
                orch.relay.wake()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("sweeper_error", error=repr(exc))
