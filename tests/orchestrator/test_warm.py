"""Connections opened ahead: OpenAI's kept alive across turns, a call's ElevenLabs socket opened
when it is dialed (and closed when it is not used), the prompt cache key by prompt version."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from twilio.base.exceptions import TwilioRestException

from generated.call_dispatch import CallDispatch
from services.common.models import Call, Debtor
from services.common.negotiation import DEFAULT_RULES
from services.common.settings import Settings
from services.voice_orchestrator.app import Orchestrator
from services.voice_orchestrator.calls import WarmCalls, facts_from_dispatch
from services.voice_orchestrator.core import CallFacts, Conversation, DelinquencyStage
from services.voice_orchestrator.core import prompt_cache_key as core_key
from services.voice_orchestrator.dispatch import Dispatcher
from services.voice_orchestrator.ports import Completed, TextDelta, TtsAudio, TtsDone, TtsEvent
from services.voice_orchestrator.premade import PremadeSynthesizer
from services.voice_orchestrator.session.tuning import SessionTuning
from services.voice_orchestrator.vendors.elevenlabs import ElevenLabsTts
from services.voice_orchestrator.vendors.openai_llm import (
    OpenAiLlm,
    openai_client,
    openai_http_client,
)
from simulators import SimulatorStack
from tests.helpers import vendor_settings


def settings_for(sim: SimulatorStack, **extra: Any) -> Settings:
    assert sim.urls is not None
    return Settings(**{**vendor_settings(sim.urls, "http://127.0.0.1:9"), **extra})


# ---- OpenAI: one warm connection across turns ---------------------------------------------


class CountingProxy:
    """A TCP forwarder in front of the simulator: counts the connections the client opens."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.connections = 0
        self.server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        pipes = [
            asyncio.create_task(_pipe(reader, up_writer)),
            asyncio.create_task(_pipe(up_reader, writer)),
        ]
        self._pipes.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)
        self._pipes.difference_update(pipes)

    async def close(self) -> None:
        for task in list(self._pipes):
            task.cancel()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def facts() -> CallFacts:
    return CallFacts(
        call_id="c-warm",
        debtor_name="Jane Doe",
        company_name="Acme Finance",
        agent_name="Alex",
        stage=DelinquencyStage.EARLY,
        balance_minor=45000,
        currency="USD",
        due_date=date(2026, 11, 1),
        timezone="America/New_York",
        account_reference="ACC-1",
        rules=DEFAULT_RULES[DelinquencyStage.EARLY],
        callback_number="+18005550100",
    )


async def _turn(llm: OpenAiLlm, conv: Conversation, said: str) -> tuple[float, str]:
    """One streamed request; seconds to its first event, and the text."""
    messages = [*conv.llm_messages(), {"role": "user", "content": said}]
    t0 = time.perf_counter()
    first: float | None = None
    text = []
    async for event in llm.stream(messages, conv.tools()):
        first = first if first is not None else time.perf_counter() - t0
        if isinstance(event, TextDelta):
            text.append(event.text)
        assert isinstance(event, TextDelta | Completed)
    assert first is not None
    return first, "".join(text)


@pytest.fixture
async def proxied(sim: SimulatorStack) -> AsyncIterator[tuple[CountingProxy, Settings]]:
    assert sim.urls is not None
    target = urlsplit(sim.urls.openai)
    proxy = CountingProxy(target.hostname or "127.0.0.1", target.port or 80)
    port = await proxy.start()
    base = urlunsplit(target._replace(netloc=f"127.0.0.1:{port}"))
    yield proxy, settings_for(sim, openai_base_url=base, openai_timeout_seconds=5.0)
    await proxy.close()


async def test_sequential_turns_reuse_one_connection_past_httpx_default_expiry(
    proxied: tuple[CountingProxy, Settings],
) -> None:
    proxy, s = proxied
    client = openai_client(s)
    try:
        conv = Conversation(facts(), datetime.now(UTC))
        llm = OpenAiLlm(s, client, cache_key=core_key(conv.prompt_version))
        cold, text = await _turn(llm, conv, "Hello?")
        assert text and proxy.connections == 1
        # Longer than httpx's default keep-alive expiry (5 s), as a debtor's turn often is.
        await asyncio.sleep(5.5)
        warm, _ = await _turn(llm, conv, "Yes, speaking.")
        assert proxy.connections == 1, "the second turn opened a new connection"
        assert llm.usage.requests == 2
        print(f"first event: cold {cold * 1000:.1f} ms, warm {warm * 1000:.1f} ms")
    finally:
        await client.close()


async def test_http2_is_asked_for_but_plain_http_speaks_http11(sim: SimulatorStack) -> None:
    assert sim.urls is not None
    s = settings_for(sim)
    assert s.openai_http2 and s.openai_keepalive_seconds >= 60
    http = openai_http_client(s)
    try:
        resp = await http.post(
            f"{sim.urls.openai.rstrip('/')}/chat/completions",
            json={"model": "gpt-5-mini", "messages": [{"role": "user", "content": "Hello?"}]},
            headers={"Authorization": "Bearer sk-test"},
        )
        # No h2c on plain http: HTTP/2 is negotiated by ALPN on https only.
        assert resp.http_version == "HTTP/1.1"
    finally:
        await http.aclose()


def test_prompt_cache_key_is_by_prompt_version_not_by_call() -> None:
    orch = _orchestrator(Settings(), WarmCalls(1.0), None)
    a = Conversation(facts(), datetime.now(UTC))
    other = CallFacts(**{**facts().__dict__, "call_id": "c-other", "debtor_name": "Sam Roe"})
    b = Conversation(other, datetime.now(UTC))
    key_a = orch.llm("c-warm", a.prompt_version).cache_key  # type: ignore[attr-defined]
    key_b = orch.llm("c-other", b.prompt_version).cache_key  # type: ignore[attr-defined]
    assert key_a == key_b == core_key(a.prompt_version)
    assert "c-warm" not in key_a


# ---- ElevenLabs: the call's socket opened at dial time --------------------------------------


def _orchestrator(s: Settings, warm: WarmCalls, synth: PremadeSynthesizer | None) -> Orchestrator:
    none: Any = None
    return Orchestrator(
        settings=s,
        engine=none,
        sessions=none,
        blobstore=none,
        telephony=none,
        openai=openai_client(s),
        deepgram=none,
        verifier=none,
        tuning=SessionTuning(),
        overrides=none,
        warm=warm,
        premade_synth=synth,
    )


def _dispatch(call_id: uuid.UUID | None = None) -> CallDispatch:
    return CallDispatch.model_validate(
        {
            "call_id": str(call_id or uuid.uuid4()),
            "debtor": {
                "debtor_id": str(uuid.uuid4()),
                "external_id": None,
                "name": "Jane Doe",
                "phone": "+15555550100",
                "timezone": "America/New_York",
                "stage": "early",
                "amount_owed": {"amount_minor": 45000, "currency": "USD"},
                "due_date": "2026-11-01",
                "account_reference": "ACC-1",
            },
            "stage": "early",
            "prompt_version": None,
            "dispatched_at": datetime.now(UTC).isoformat(),
        }
    )


def _records(sim: SimulatorStack) -> list[Any]:
    return [c for c in sim.network.records.elevenlabs if c.endpoint == "multi-stream-input"]


async def _until(cond: Any, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_the_socket_is_open_before_the_media_stream_and_the_session_gets_it(
    sim: SimulatorStack,
) -> None:
    s = settings_for(sim, premade_at_dial=True)
    synth = PremadeSynthesizer(s)
    orch = _orchestrator(s, WarmCalls(30.0), synth)
    msg = _dispatch()
    call_id = str(msg.call_id)
    before = len(_records(sim))
    t0 = time.perf_counter()
    orch.prepare_call(msg)
    warm = orch.warm._items[call_id].tts
    assert isinstance(warm, ElevenLabsTts)
    await _until(lambda: warm.connected)
    connect_ms = (time.perf_counter() - t0) * 1000
    # Open at the simulator, and no media stream anywhere yet.
    opened = _records(sim)[before:]
    assert any(r.closed_at is None for r in opened)

    # The media stream starts: the session is handed that socket, not a new one.
    tts = orch.tts(call_id)
    assert tts is warm
    events: list[TtsEvent] = []
    runner = asyncio.create_task(tts.run(events.append))
    t1 = time.perf_counter()
    await tts.open_context("t1")
    await tts.send_text("t1", "Hello, Jane.", flush=True)
    await _until(lambda: any(isinstance(e, TtsAudio) for e in events))
    first_audio_ms = (time.perf_counter() - t1) * 1000
    await tts.close_context("t1")
    await _until(lambda: any(isinstance(e, TtsDone) for e in events))
    # One socket for the TTS (the premade synthesizer has its own).
    call_sockets = [r for r in _records(sim)[before:] if any(c == "t1" for c in r.contexts)]
    assert len(call_sockets) == 1
    # The greeting was started at dial time, for the session to take.
    premade = orch.premade(call_id)
    conv = Conversation(facts_from_dispatch(msg, s), datetime.now(UTC))
    greeting = await premade.wait(conv.greeting_line(), timeout_s=15)
    assert greeting is not None and premade.characters == len(conv.greeting_line()) + 1
    assert call_id not in orch.warm  # both taken
    # A second media stream for the call (or none pre-opened) gets a fresh socket.
    assert orch.tts(call_id) is not warm
    await tts.close()
    await asyncio.gather(runner, return_exceptions=True)
    await synth.aclose()
    await orch.openai.close()
    print(f"dial-time connect {connect_ms:.1f} ms; warm first audio {first_audio_ms:.1f} ms")


async def test_a_call_that_never_streams_has_its_socket_closed_after_the_expiry(
    sim: SimulatorStack,
) -> None:
    s = settings_for(sim)
    orch = _orchestrator(s, WarmCalls(0.5), None)
    msg = _dispatch()
    before = len(_records(sim))
    orch.prepare_call(msg)
    tts = orch.warm._items[str(msg.call_id)].tts
    assert tts is not None
    await _until(lambda: tts.connected)
    mine = _records(sim)[before:]
    assert len(mine) == 1 and mine[0].closed_at is None
    await _until(lambda: mine[0].closed_at is not None, within=3.0)
    assert str(msg.call_id) not in orch.warm
    assert not tts.usable
    # Taken too late: a new socket.
    fresh = orch.tts(str(msg.call_id))
    assert fresh is not tts
    await orch.openai.close()


async def test_a_call_that_ends_without_a_session_closes_its_socket_at_once(
    sim: SimulatorStack,
) -> None:
    s = settings_for(sim)
    orch = _orchestrator(s, WarmCalls(60.0), None)
    msg = _dispatch()
    before = len(_records(sim))
    orch.prepare_call(msg)
    tts = orch.warm._items[str(msg.call_id)].tts
    assert tts is not None
    await _until(lambda: tts.connected)
    orch.release_call(str(msg.call_id))  # busy / no-answer / canceled
    mine = _records(sim)[before:]
    await _until(lambda: mine[0].closed_at is not None, within=3.0)
    assert str(msg.call_id) not in orch.warm
    # Closed while the handshake is still under way: it does not stay open either.
    msg2 = _dispatch()
    n = len(_records(sim))
    orch.prepare_call(msg2)
    orch.release_call(str(msg2.call_id))
    await orch.warm.aclose()
    await asyncio.sleep(0.3)
    assert all(r.closed_at is not None for r in _records(sim)[n:])
    await orch.openai.close()


async def test_a_warm_socket_that_failed_is_replaced() -> None:
    s = Settings(elevenlabs_ws_url="ws://127.0.0.1:9")  # nothing listens
    orch = _orchestrator(s, WarmCalls(30.0), None)
    msg = _dispatch()
    orch.prepare_call(msg)
    tts = orch.warm._items[str(msg.call_id)].tts
    assert tts is not None
    await _until(lambda: not tts.usable)
    fresh = orch.tts(str(msg.call_id))
    assert fresh is not tts and isinstance(fresh, ElevenLabsTts)
    await orch.warm.aclose()
    await orch.openai.close()


# ---- the dispatcher's hooks ---------------------------------------------------------------


async def _dispatched(sessions: async_sessionmaker[AsyncSession]) -> CallDispatch:
    """A real `dispatched` call row (the dispatcher claims it in the database) and its dispatch."""
    async with sessions() as db, db.begin():
        debtor = Debtor(
            name="Jane Doe",
            phone="+15555550100",
            timezone="America/New_York",
            stage="early",
            amount_owed_minor=45000,
            currency="USD",
            due_date=date(2026, 11, 1),
        )
        db.add(debtor)
        await db.flush()
        call = Call(debtor_id=debtor.id, status="dispatched", stage="early")
        db.add(call)
        await db.flush()
        return _dispatch(call.id)


class _Telephony:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.prepared_at_dial: bool | None = None
        self.warm: WarmCalls | None = None

    async def create_call(self, **kwargs: Any) -> str:
        assert self.warm is not None
        self.prepared_at_dial = len(self.warm) == 1
        if self.fail is not None:
            raise self.fail
        return "CA" + uuid.uuid4().hex


async def test_the_dispatcher_prepares_before_dialing_and_undoes_when_not_placed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from services.common.bus import CloudEvent
    from services.voice_orchestrator.calls import SnapshotCache

    warm = WarmCalls(30.0)
    prepared: list[str] = []

    def on_dialing(msg: CallDispatch) -> None:
        prepared.append(str(msg.call_id))
        warm.put(str(msg.call_id), tts=None, premade=None)

    s = Settings()
    ok = _Telephony()
    ok.warm = warm
    d = Dispatcher(
        s,
        ok,  # type: ignore[arg-type]
        SnapshotCache(),
        sessions,
        on_dialing=on_dialing,
        on_not_placed=warm.discard,
    )
    msg = await _dispatched(sessions)
    event = CloudEvent.create("call.dispatch", "/tests", msg.model_dump(mode="json"))
    await d(event)
    assert prepared == [str(msg.call_id)] and ok.prepared_at_dial is True
    assert str(msg.call_id) in warm  # kept for the media stream

    down = _Telephony(TwilioRestException(503, "uri", "unavailable"))
    down.warm = warm
    warm.discard(str(msg.call_id))
    d2 = Dispatcher(
        s,
        down,  # type: ignore[arg-type]
        SnapshotCache(),
        sessions,
        on_dialing=on_dialing,
        on_not_placed=warm.discard,
    )
    msg2 = await _dispatched(sessions)
    event2 = CloudEvent.create("call.dispatch", "/tests", msg2.model_dump(mode="json"))
    with pytest.raises(TwilioRestException):
        await d2(event2)
    assert down.prepared_at_dial is True
    assert str(msg2.call_id) not in warm  # redelivery will dial (and prepare) again
    async with sessions() as db:
        assert await db.scalar(select(Call.status).where(Call.id == msg2.call_id)) == "dispatched"

    def broken(msg: CallDispatch) -> None:
        raise RuntimeError("no loop")

    ok2 = _Telephony()
    ok2.warm = WarmCalls(1.0)
    d3 = Dispatcher(s, ok2, SnapshotCache(), sessions, on_dialing=broken)  # type: ignore[arg-type]
    msg3 = await _dispatched(sessions)
    event3 = CloudEvent.create("call.dispatch", "/tests", msg3.model_dump(mode="json"))
    await d3(event3)  # still dials
    assert ok2.prepared_at_dial is False
    await warm.aclose()
