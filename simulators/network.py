"""The shared in-memory "phone network": it correlates one simulated call across vendors.

The Twilio simulator owns the calls (``simulators/twilio/calls.py``) and the debtor's side
(personas); the network knows a call only by its CallSid and To number. When the persona speaks a
line it is registered here as an :class:`~simulators.common.utterance.Utterance`; the Deepgram
simulator, given ``tag=<CallSid>``, asks which utterance that phone is speaking so the words it
returns match the audio it hears.
Every simulator also leaves what it received here, for the control API (``/_sim/...``).
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from simulators.common.speech import Speech, SpeechMode, Synthesizer
from simulators.common.utterance import Utterance
from simulators.config import SimConfig
from simulators.faults import FaultRule, Faults
from simulators.personas import Persona, load_personas, parse_persona

_DIGITS = re.compile(r"\D")


@dataclass(slots=True)
class NumberAssignment:
    number: str
    persona: Persona
    time_scale: float = 1.0  # on top of config.persona_time_scale


@dataclass(slots=True)
class Records:
    """Bounded logs of what the non-Twilio simulators received (oldest dropped first)."""

    deepgram: deque[Any] = field(default_factory=lambda: deque(maxlen=5000))
    elevenlabs: deque[Any] = field(default_factory=lambda: deque(maxlen=5000))
    openai: deque[Any] = field(default_factory=lambda: deque(maxlen=20000))


class PhoneNetwork:
    def __init__(self, config: SimConfig, synthesizer: Synthesizer | None = None) -> None:
        self.config = config
        mode: SpeechMode = "tone" if config.speech == "tone" else "auto"
        if config.speech == "espeak":
            mode = "espeak"
        self.synth = synthesizer or Synthesizer(mode, config.ms_per_char)
        self.personas: dict[str, Persona] = load_personas(*config.persona_dirs)
        if config.default_persona not in self.personas:
            raise ValueError(f"unknown default persona {config.default_persona!r}")
        self.numbers: dict[str, NumberAssignment] = {}
        # CallSid -> To number (normalized) of every call the Twilio simulator keeps.
        self.call_numbers: dict[str, str] = {}
        self.utterances: dict[str, list[Utterance]] = {}
        # Scripted transcripts for Deepgram tags that are not calls (tests of Deepgram alone).
        self.transcripts: dict[str, deque[str]] = {}
        self.auth_tokens: dict[str, str] = {}  # Twilio account SID -> auth token (learned)
        self.records = Records()
        self.faults = Faults()
        self._suffixes: dict[str, Persona] = {
            p.number_suffix: p for p in self.personas.values() if p.number_suffix
        }
        self._jitter: dict[str, random.Random] = {}
        # What the TTS simulator synthesized, so a phone can tell which words it played
        # (`agent_said`): a persona answers a question only if it was asked.
        self.agent_speech: OrderedDict[str, Speech] = OrderedDict()

    # -- latency jitter ---------------------------------------------------------------------
    def jittered(self, stream: str, median_s: float, sigma: float) -> float:
        """``median_s`` times a log-normal factor (median 1) when ``sigma`` > 0, else itself.

        One seeded sequence per ``stream`` ("openai", "deepgram", "elevenlabs"): the same seed
        and the same order of requests give the same latencies, run after run.
        """
        if sigma <= 0 or median_s <= 0:
            return median_s
        rng = self._jitter.get(stream)
        if rng is None:
            rng = self._jitter[stream] = random.Random(f"{self.config.latency_seed}/{stream}")
        return median_s * math.exp(sigma * rng.gauss(0.0, 1.0))

    # -- personas ---------------------------------------------------------------------------
    @staticmethod
    def normalize_number(number: str) -> str:
        digits = _DIGITS.sub("", number)
        return f"+{digits}" if digits else number

    def assign(
        self, number: str, persona: str | dict[str, Any], time_scale: float = 1.0
    ) -> Persona:
        if isinstance(persona, str):
            if persona not in self.personas:
                raise KeyError(persona)
            p = self.personas[persona]
        else:
            p = parse_persona(persona, name=persona.get("name") or "inline")
        key = self.normalize_number(number)
        self.numbers[key] = NumberAssignment(key, p, time_scale)
        return p

    def persona_for(self, number: str) -> Persona:
        """Explicit assignment first, then the number's last three digits, then the default."""
        key = self.normalize_number(number)
        assigned = self.numbers.get(key)
        scale = self.config.persona_time_scale
        if assigned:
            persona = assigned.persona
            scale *= assigned.time_scale
        else:
            persona = self._suffixes.get(key[-3:], self.personas[self.config.default_persona])
        return persona.scaled(scale)

    def suffix_table(self) -> dict[str, str]:
        return {suffix: p.name for suffix, p in sorted(self._suffixes.items())}

    # -- call correlation -------------------------------------------------------------------
    def add_call(self, sid: str, to: str) -> None:
        self.call_numbers[sid] = self.normalize_number(to)

    def forget_call(self, sid: str) -> None:
        """The Twilio simulator dropped the call: forget its number and what its phone said."""
        self.call_numbers.pop(sid, None)
        self.utterances.pop(sid, None)

    def note_agent_speech(self, speech: Speech) -> None:
        self.agent_speech[speech.text] = speech
        self.agent_speech.move_to_end(speech.text)
        while len(self.agent_speech) > 4096:
            self.agent_speech.popitem(last=False)

    def agent_said(self, words: str, played: bytes) -> bool:
        """Whether `played` (agent audio a phone heard) contains speech whose text has `words`.

        Audio is passed through unchanged (μ-law), so a slice from inside the synthesized audio
        (past its fade-in) is found in what was played byte for byte.
        """
        words = words.lower()
        for text, speech in reversed(self.agent_speech.items()):
            if words in text.lower():
                audio = speech.audio
                probe = audio[160:800] if len(audio) >= 960 else audio
                if probe and probe in played:
                    return True
        return False

    def add_utterance(self, utt: Utterance) -> None:
        self.utterances.setdefault(utt.call_sid, []).append(utt)

    def utterance_for(self, tag: str, now: float, exclude: set[int]) -> Utterance | None:
        """The most recent line the phone of call ``tag`` started speaking (not yet used)."""
        for utt in reversed(self.utterances.get(tag, ())):
            if utt.started_at <= now + 0.05 and id(utt) not in exclude:
                return utt
        return None

    def fault_scope_matches(self, rule: FaultRule, tags: list[str]) -> bool:
        """A Deepgram fault's scope: the connection's ``tag``, or the To number of its call."""
        if rule.tag is not None and rule.tag not in tags:
            return False
        if rule.number is not None:
            return any(self.call_numbers.get(t) == rule.number for t in tags)
        return True

    def next_scripted_transcript(self, tag: str) -> str | None:
        queue = self.transcripts.get(tag)
        return queue.popleft() if queue else None

    async def speech_for_text(self, text: str) -> Speech:
        return await self.synth.synth(text, "debtor")

    def reset(self) -> None:
        """Forget all records, scripted transcripts and faults (the calls are the Twilio
        simulator's: ``CallBook.forget_finished``)."""
        self.records = Records()
        self.transcripts.clear()
        self.faults.clear()


async def wait_until(predicate: Any, within: float, interval: float = 0.02) -> bool:
    """Poll ``predicate()`` until true or ``within`` seconds pass (control API helper)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


# The one aiohttp app key under which every simulator app finds the shared network.
NETWORK_KEY = web.AppKey("network", PhoneNetwork)
