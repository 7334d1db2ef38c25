"""Persona files, the number -> persona mapping, the persona clock and the CLI settings."""

from __future__ import annotations

from typing import Any

import pytest

from simulators import SimConfig, load_config
from simulators.common.speech import Speech, tone_speech
from simulators.network import PhoneNetwork
from simulators.personas import Persona, PersonaError, load_personas, parse_persona
from simulators.personas.runtime import PersonaRuntime

REQUIRED = {
    "cooperative",
    "negotiator",
    "wrong_person",
    "disputes",
    "callback_later",
    "hostile",
    "stop_calling",
    "interrupter",
    "silent",
    "no_answer",
    "busy",
    "injector",
}


def test_builtin_personas_load_with_unique_suffixes() -> None:
    personas = load_personas()
    assert REQUIRED <= set(personas)
    suffixes = [p.number_suffix for p in personas.values()]
    assert len(suffixes) == len(set(suffixes)) and all(s and len(s) == 3 for s in suffixes)
    assert personas["no_answer"].answer == "no-answer" and personas["busy"].answer == "busy"
    assert personas["hostile"].loop_from is not None
    assert any(ln.after == "agent_start" for ln in personas["interrupter"].lines)
    # Instructions instead of answers, from before the identity is confirmed.
    lines = [ln.text for ln in personas["injector"].lines]
    assert "Yes, speaking." in lines and lines.index("Yes, speaking.") > 1


async def test_number_mapping() -> None:
    net = PhoneNetwork(SimConfig(speech="tone", persona_time_scale=0.5))
    assert net.persona_for("+1 (555) 000-1006").name == "hostile"  # last three digits
    assert net.persona_for("+15550009999").name == "cooperative"  # the default
    net.assign("+15550009999", "busy", time_scale=0.2)
    p = net.persona_for("+1-555-000-9999")
    assert p.name == "busy" and p.ring_ms == int(300 * 0.5 * 0.2)
    inline = net.assign("+15550000042", {"name": "mine", "lines": ["Hi there."]})
    assert inline.lines[0].text == "Hi there." and inline.lines[0].after == "agent_done"


def test_parse_errors() -> None:
    with pytest.raises(PersonaError):
        parse_persona({"name": "x", "answer": "maybe"})
    with pytest.raises(PersonaError):
        parse_persona({"name": "x", "lines": [{"text": "a", "after": "whenever"}]})
    with pytest.raises(PersonaError):
        parse_persona({"name": "x", "lines": ["a"], "loop_from": 3})


def _speech(text: str) -> Speech:
    return tone_speech(text, "debtor", 20.0)  # 1 frame per character


def _run(rt: PersonaRuntime, agent: Any, until_ms: int) -> list[int]:
    """Tick from 0 to ``until_ms``; ``agent(ms)`` says whether agent audio plays. Returns the
    frames (ms) in which the debtor spoke."""
    spoke = []
    for ms in range(0, until_ms, 20):
        if rt.hangup:
            break
        if rt.tick(ms, agent(ms)) is not None:
            spoke.append(ms)
    return spoke


def test_runtime_waits_for_the_agent_then_replies_and_hangs_up() -> None:
    p = parse_persona(
        {
            "name": "t",
            "hangup": "after_agent_done",
            "hangup_delay_ms": 200,
            "lines": [
                {"text": "Hello", "after": "answer", "delay_ms": 100},
                {"text": "Yes it is", "delay_ms": 300},
            ],
        }
    )
    rt = PersonaRuntime(p, [_speech(ln.text) for ln in p.lines])

    def agent(ms: int) -> bool:  # agent talks 400-1000 ms and 1700-2000 ms
        return 400 <= ms < 1000 or 1700 <= ms < 2000

    spoke = _run(rt, agent, 5000)
    hello, reply = rt.spoken
    assert (hello.start_ms, hello.end_ms) == (100, 200)
    assert reply.start_ms == 1300  # agent quiet from 1000 ms, plus 300 ms
    assert reply.end_ms == 1300 + 9 * 20
    assert len(spoke) == 5 + 9
    assert rt.hangup and rt.hangup_reason == "after_agent_done"


def test_runtime_barge_in_and_loop() -> None:
    p = Persona(
        name="t",
        hangup="never",
        loop_from=1,
        max_call_s=3,
        lines=tuple(
            parse_persona(
                {
                    "name": "x",
                    "lines": [
                        {"text": "Hi", "after": "answer", "delay_ms": 0},
                        {"text": "Stop", "after": "agent_start", "delay_ms": 200},
                    ],
                }
            ).lines
        ),
    )
    rt = PersonaRuntime(p, [_speech("Hi"), _speech("Stop")])
    _run(rt, lambda ms: ms >= 500, 3200)  # the agent never stops talking
    starts = [ln.start_ms for ln in rt.spoken]
    assert starts[:3] == [0, 700, 980]  # barge-in 200 ms after the agent starts, then again
    assert rt.hangup_reason == "max_call_s"


def test_config_from_env_and_flags() -> None:
    cfg = load_config(
        ["--openai-ttft-ms", "123", "--speech", "tone"],
        env={"SIM_TWILIO_PORT": "9999", "SIM_OPENAI_TTFT_MS": "5", "SIM_PERSONA_DIRS": "/a:/b"},
    )
    assert cfg.twilio_port == 9999 and cfg.openai_ttft_ms == 123.0 and cfg.speech == "tone"
    assert [str(p) for p in cfg.persona_dirs] == ["/a", "/b"]
