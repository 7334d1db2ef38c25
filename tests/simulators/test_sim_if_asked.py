"""A persona answers the fact question only if it was asked: lines with `if_asked` are spoken
when the agent audio the phone played says those words, and skipped otherwise."""

from __future__ import annotations

from simulators import SimConfig
from simulators.common.speech import Speech, tone_speech
from simulators.network import PhoneNetwork
from simulators.personas import load_personas, parse_persona
from simulators.personas.runtime import PersonaRuntime

QUESTION = "Before we go on, could you please tell me your date of birth?"
PERSONA = parse_persona(
    {
        "name": "asked",
        "facts": {"date_of_birth": "1985-03-04"},
        "lines": [
            {"text": "Yes, speaking.", "after": "answer", "delay_ms": 0},
            {"text": "March fourth, 1985.", "if_asked": "Date of Birth", "delay_ms": 100},
            {"text": "I can pay today.", "delay_ms": 100},
        ],
    }
)


def _spoken(asked: bool) -> list[str]:
    speeches: list[Speech | None] = [tone_speech(ln.text, "debtor", 5) for ln in PERSONA.lines]
    calls: list[tuple[str, int]] = []

    def heard(words: str, since_ms: int) -> bool:
        calls.append((words, since_ms))
        return asked

    rt = PersonaRuntime(PERSONA, speeches, heard=heard)
    for n in range(200):  # 4 s: the agent speaks from 0.5 s to 1 s, and again from 2 s to 2.5 s
        ms = n * 20
        rt.tick(ms, agent_playing=500 <= ms < 1000 or 2000 <= ms < 2500)
    assert all(words == "date of birth" for words, _ in calls)
    return [line.text for line in rt.spoken]


def test_if_asked_line_is_spoken_only_when_asked() -> None:
    assert _spoken(asked=True) == ["Yes, speaking.", "March fourth, 1985.", "I can pay today."]
    assert _spoken(asked=False) == ["Yes, speaking.", "I can pay today."]


def test_the_network_knows_which_words_a_phone_played() -> None:
    net = PhoneNetwork(SimConfig(speech="tone"))
    question, other = tone_speech(QUESTION, "agent", 45), tone_speech("Hello there.", "agent", 45)
    net.note_agent_speech(question)
    net.note_agent_speech(other)
    played = b"\xff" * 800 + question.audio[:2400] + b"\xff" * 80 + other.audio
    assert net.agent_said("date of birth", played)
    assert not net.agent_said("date of birth", b"\xff" * 800 + other.audio)
    assert not net.agent_said("zip code", played)


def test_personas_with_facts_answer_when_asked() -> None:
    personas = load_personas()
    assert personas["cooperative"].facts == {"date_of_birth": "1985-03-04"}
    assert [ln.if_asked for ln in personas["wrong_dob"].lines].count("date of birth") == 2
    assert personas["negotiator"].facts == {"postal_code": "62704"}
