"""Pre-made audio of fixed lines: synthesized over a real socket to the ElevenLabs simulator,
cached process-wide by bytes, billed once, and never an exception when the TTS is down."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from services.common.negotiation import DEFAULT_RULES
from services.common.settings import Settings
from services.voice_orchestrator.core import CallFacts, Conversation, DelinquencyStage
from services.voice_orchestrator.ports import Alignment, PremadeAudio
from services.voice_orchestrator.premade import (
    OUTPUT_FORMAT,
    PremadeCache,
    PremadeLines,
    PremadeSynthesizer,
)
from simulators import SimulatorStack
from tests.helpers import vendor_settings

TEXT = "Hello, this is Alex, an AI assistant calling on behalf of Acme Finance."


def settings_for(sim: SimulatorStack, **extra: object) -> Settings:
    assert sim.urls is not None
    return Settings(**{**vendor_settings(sim.urls, "http://127.0.0.1:9"), **extra})  # type: ignore[arg-type]


def nonspace(text: str) -> str:
    return "".join(c for c in text if not c.isspace())


def facts() -> CallFacts:
    return CallFacts(
        call_id="c-premade",
        debtor_name="Jane Doe",
        company_name="Acme Finance",
        agent_name="Alex",
        stage=DelinquencyStage.EARLY,
        balance_minor=45000,
        currency="USD",
        due_date=datetime(2026, 11, 1, tzinfo=UTC).date(),
        timezone="America/New_York",
        account_reference="ACC-1",
        rules=DEFAULT_RULES[DelinquencyStage.EARLY],
        callback_number="+18005550100",
    )


@pytest.fixture
async def synth(sim: SimulatorStack) -> AsyncIterator[PremadeSynthesizer]:
    s = PremadeSynthesizer(settings_for(sim))
    yield s
    await s.aclose()


async def test_a_line_comes_back_whole_with_alignment_over_all_of_it(
    synth: PremadeSynthesizer, sim: SimulatorStack
) -> None:
    lines = PremadeLines(synth)
    # Other calls on this package's simulator say the same greeting: count only our socket's.
    earlier = {id(c) for c in sim.network.records.elevenlabs}
    assert lines.get(TEXT) is None
    lines.prefetch([TEXT])
    audio = await lines.wait(TEXT, timeout_s=15)
    assert audio is not None and audio.text == TEXT
    assert lines.get(TEXT) is audio  # ready now, without waiting
    a = audio.alignment
    # Every non-space character of the text, in order, over the whole audio.
    assert nonspace("".join(a.chars)) == nonspace(TEXT)
    assert len(a.chars) == len(a.start_ms) == len(a.duration_ms)
    assert a.start_ms == sorted(a.start_ms)
    assert a.start_ms[0] < 200
    # Offsets were added chunk by chunk (the wire's times are per chunk): the last character
    # ends near the end of the audio, not within the first chunk.
    end = a.start_ms[-1] + a.duration_ms[-1]
    assert audio.duration_ms > 1000
    assert audio.duration_ms - 100 <= end <= audio.duration_ms + 20
    # μ-law at 8 kHz: one byte a sample.
    assert audio.duration_ms == len(audio.audio) // 8
    # Billed as the live TTS meters (text plus the trailing space the protocol wants).
    assert lines.characters == len(TEXT) + 1
    assert synth.syntheses == 1
    # The simulator saw one context with exactly this text on one socket.
    conns = [
        c
        for c in sim.network.records.elevenlabs
        if c.endpoint == "multi-stream-input" and id(c) not in earlier
    ]
    texts = [ctx.text for c in conns for ctx in c.contexts.values()]
    assert texts.count(TEXT + " ") == 1
    assert dict(conns[-1].query)["output_format"] == OUTPUT_FORMAT


async def test_a_second_call_gets_the_line_from_the_cache_at_no_cost(
    synth: PremadeSynthesizer,
) -> None:
    first = PremadeLines(synth)
    first.prefetch([TEXT])
    made = await first.wait(TEXT, timeout_s=15)
    assert made is not None
    characters = synth.characters

    second = PremadeLines(synth)
    second.prefetch([TEXT])
    assert second.get(TEXT) is made  # at once: nothing to synthesize
    assert await second.wait(TEXT, timeout_s=0.01) is made
    assert second.characters == 0
    assert synth.syntheses == 1 and synth.characters == characters == first.characters
    await first.aclose()
    await second.aclose()


async def test_two_calls_asking_at_once_share_one_synthesis(synth: PremadeSynthesizer) -> None:
    text = "Thank you for your time today. Goodbye."
    a, b = PremadeLines(synth), PremadeLines(synth)
    a.prefetch([text])
    b.prefetch([text])  # in flight: joins it
    got_a, got_b = await asyncio.gather(a.wait(text, 15), b.wait(text, 15))
    assert got_a is not None and got_a is got_b
    assert synth.syntheses == 1
    assert a.characters == len(text) + 1 and b.characters == 0


async def test_greeting_and_fixed_lines_of_a_conversation(synth: PremadeSynthesizer) -> None:
    conv = Conversation(facts(), datetime.now(UTC))
    texts = conv.premade_lines()
    lines = PremadeLines(synth)
    lines.prefetch(texts)
    greeting = await lines.wait(conv.greeting_line(), timeout_s=20)
    assert greeting is not None
    assert nonspace("".join(greeting.alignment.chars)) == nonspace(conv.greeting_line())
    done = await asyncio.gather(*(lines.wait(t, 30) for t in texts))
    assert all(d is not None for d in done)
    assert synth.syntheses == len(texts)
    assert lines.characters == sum(len(t) + 1 for t in texts)


def _audio(text: str, size: int) -> PremadeAudio:
    return PremadeAudio(
        text, b"\xff" * size, Alignment(list(text), [0] * len(text), [1] * len(text))
    )


def test_the_cache_evicts_the_least_recently_used_by_bytes() -> None:
    cache = PremadeCache(max_bytes=1000)

    def key(t: str) -> tuple[str, str, str, str]:
        return ("voice", "model", OUTPUT_FORMAT, t)

    cache.put(key("a"), _audio("a", 400))
    cache.put(key("b"), _audio("b", 400))
    assert cache.bytes == 800
    assert cache.get(key("a")) is not None  # a is now the most recently used
    cache.put(key("c"), _audio("c", 400))  # 1200 > 1000: b goes
    assert key("b") not in cache and key("a") in cache and key("c") in cache
    assert cache.bytes == 800
    cache.put(key("d"), _audio("d", 900))  # needs both out
    assert len(cache) == 1 and key("d") in cache and cache.bytes == 900
    cache.put(key("huge"), _audio("huge", 1001))  # bigger than the cache: not kept
    assert key("huge") not in cache and key("d") in cache
    cache.put(key("d"), _audio("d", 100))  # replaced, bytes follow
    assert cache.bytes == 100
    # Another voice is another line.
    assert cache.get(("other-voice", "model", OUTPUT_FORMAT, "d")) is None


async def test_lines_past_the_byte_bound_are_synthesized_again(sim: SimulatorStack) -> None:
    synth = PremadeSynthesizer(settings_for(sim))
    try:
        lines = PremadeLines(synth)
        one, two = "The first line is this one.", "And this one is the second line."
        assert await lines.wait(one, 15) is not None
        assert await lines.wait(two, 15) is not None
        # Room for these two and 100 bytes more (the audio is real: sizes are measured).
        synth.cache.max_bytes = synth.cache.bytes + 100
        assert lines.get(one) is not None  # `one` is now the most recently used
        three = "A third, short line."  # smaller than `two`
        assert await lines.wait(three, 15) is not None
        assert lines.get(two) is None  # the least recently used went
        assert lines.get(one) is not None and lines.get(three) is not None
        assert synth.cache.bytes <= synth.cache.max_bytes
        before = synth.syntheses
        assert await lines.wait(two, 15) is not None  # made again
        assert synth.syntheses == before + 1
    finally:
        await synth.aclose()


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_dead_tts_endpoint_gives_none_not_an_exception() -> None:
    s = Settings(elevenlabs_ws_url=f"ws://127.0.0.1:{_dead_port()}")
    synth = PremadeSynthesizer(s, retry_after_s=30)
    try:
        lines = PremadeLines(synth)
        lines.prefetch([TEXT, "Goodbye."])  # never raises
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await lines.wait(TEXT, timeout_s=10) is None
        assert loop.time() - t0 < 5  # the failed socket ends the wait, not the timeout
        assert lines.get(TEXT) is None
        # Down: nothing is retried for a while, answers come at once.
        t1 = loop.time()
        assert await lines.wait("Another line.", timeout_s=10) is None
        assert loop.time() - t1 < 0.1
        assert synth.request("Another line.") is None
        assert lines.characters == 0 and synth.syntheses == 0
        await lines.aclose()
    finally:
        await synth.aclose()


async def test_turned_off_is_always_none() -> None:
    lines = PremadeLines(None)
    lines.prefetch([TEXT])
    assert lines.get(TEXT) is None
    assert await lines.wait(TEXT, 0.1) is None
    off = PremadeSynthesizer(Settings(premade_cache_max_bytes=0))
    assert off.request(TEXT) is None
    await off.aclose()
