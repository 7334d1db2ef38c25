"""The orchestrator's process-wide state (`Orchestrator`) and its test seams (`Overrides`).

Built once in the app's lifespan (app.py) and read by the routes (routes/) from `app.state.orch`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from openai import AsyncOpenAI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from generated.call_dispatch import CallDispatch
from services.common.blobstore import BlobStore
from services.common.bus import PubSubBus
from services.common.outbox import OutboxRelay
from services.common.settings import Settings
from services.voice_orchestrator import calls
from services.voice_orchestrator.core import Conversation, prompt_cache_key
from services.voice_orchestrator.ports import LanguageModel, SpeechToText, TextToSpeech
from services.voice_orchestrator.premade import PremadeLines, PremadeSynthesizer
from services.voice_orchestrator.session import CallSession, SessionTuning
from services.voice_orchestrator.session.voicemail import dial_lines, plan_from_settings
from services.voice_orchestrator.vendors.deepgram import DeepgramListen, DeepgramStt
from services.voice_orchestrator.vendors.elevenlabs import ElevenLabsTts
from services.voice_orchestrator.vendors.openai_llm import OpenAiLlm
from services.voice_orchestrator.vendors.twilio import SignatureVerifier, Telephony


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
