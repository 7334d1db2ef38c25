"""Debtor personas: YAML scripts of what the person on the phone says, and when.

See ``simulators/README.md`` for the format. ``load_personas()`` reads every ``*.yaml`` here (and
any extra directory), ``parse_persona()`` builds one from a dict (the control API accepts inline
personas in the same shape).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

Answer = Literal["answered", "busy", "no-answer", "failed"]
Trigger = Literal["answer", "agent_done", "agent_start", "line_end"]
Hangup = Literal["after_agent_done", "after_last_line", "never"]

PERSONA_DIR = Path(__file__).parent
_ANSWERS = ("answered", "busy", "no-answer", "failed")
_TRIGGERS = ("answer", "agent_done", "agent_start", "line_end")
_HANGUPS = ("after_agent_done", "after_last_line", "never")
# Twilio AMD's AnsweredBy values (simulators/twilio/amd.py); a persona may declare its own.
ANSWERED_BY = (
    "human",
    "machine_start",
    "machine_end_beep",
    "machine_end_silence",
    "machine_end_other",
    "fax",
    "unknown",
)
SOUNDS = ("beep", "fax")  # non-speech lines: tones, with no words for Deepgram


class PersonaError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    # answer: delay after the call is answered (stream started)
    # agent_done: agent audio played since our last line, then stopped for delay_ms
    # agent_start: agent audio started since our last line; speak delay_ms later (barge-in)
    # line_end: delay_ms after our previous line ended
    after: Trigger = "agent_done"
    delay_ms: int = 600
    timeout_ms: int | None = None  # speak anyway this long after our previous line ended
    sound: str | None = None  # a tone (SOUNDS) instead of speech; `text` only labels it
    # Spoken only if the agent said these words since our previous line (e.g. "date of birth":
    # the answer to the fact question); otherwise skipped. Case-insensitive.
    if_asked: str | None = None


@dataclass(frozen=True, slots=True)
class AmdSpec:
    """What Twilio's answering-machine detection says about this callee, and when: `delay_ms`
    after line `after_line` ended (None: after the answer). Without one, the simulator derives
    `human` or `unknown` from the script as Twilio's defaults would (simulators/twilio/amd.py)."""

    answered_by: str
    after_line: int | None = None
    delay_ms: int = 0


@dataclass(frozen=True, slots=True)
class Persona:
    name: str
    description: str = ""
    number_suffix: str | None = None  # default mapping: To numbers ending with these digits
    answer: Answer = "answered"
    ring_ms: int = 1000
    lines: tuple[Line, ...] = ()
    loop_from: int | None = None  # after the last line, continue from this index (derailers)
    hangup: Hangup = "after_agent_done"
    hangup_delay_ms: int = 800
    max_call_s: float = 180.0
    amd: AmdSpec | None = None
    # What this person would give if asked to verify who they are (FACT_KEYS), as the debtor
    # record a test or the demo creates for them should hold it; the lines say it (if_asked).
    facts: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def scaled(self, factor: float) -> Persona:
        """Same script with every delay multiplied (tests and benchmarks run faster)."""
        if factor == 1.0:
            return self
        lines = tuple(
            replace(
                ln,
                delay_ms=int(ln.delay_ms * factor),
                timeout_ms=None if ln.timeout_ms is None else int(ln.timeout_ms * factor),
            )
            for ln in self.lines
        )
        amd = self.amd and replace(self.amd, delay_ms=int(self.amd.delay_ms * factor))
        return replace(
            self,
            ring_ms=int(self.ring_ms * factor),
            hangup_delay_ms=int(self.hangup_delay_ms * factor),
            lines=lines,
            amd=amd,
        )


def _int(d: dict[str, Any], key: str, default: int | None) -> int | None:
    v = d.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise PersonaError(f"{key} must be a number, got {v!r}")
    return int(v)


def parse_persona(data: dict[str, Any], name: str | None = None) -> Persona:
    if not isinstance(data, dict):
        raise PersonaError("a persona is a mapping")
    pname = str(data.get("name") or name or "")
    if not pname:
        raise PersonaError("a persona needs a name")
    answer = data.get("answer", "answered")
    if answer not in _ANSWERS:
        raise PersonaError(f"answer must be one of {_ANSWERS}")
    hangup = data.get("hangup", "after_agent_done")
    if hangup not in _HANGUPS:
        raise PersonaError(f"hangup must be one of {_HANGUPS}")
    lines: list[Line] = []
    for i, raw in enumerate(data.get("lines") or []):
        if isinstance(raw, str):
            raw = {"text": raw}
        if isinstance(raw, dict) and raw.get("sound") is not None:
            if raw["sound"] not in SOUNDS:
                raise PersonaError(f"line {i}: sound must be one of {SOUNDS}")
            raw = {"text": f"[{raw['sound']}]", **raw}
        if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
            raise PersonaError(f"line {i} needs a text")
        after = raw.get("after", "answer" if i == 0 and data.get("speaks_first") else "agent_done")
        if after not in _TRIGGERS:
            raise PersonaError(f"line {i}: after must be one of {_TRIGGERS}")
        lines.append(
            Line(
                text=raw["text"],
                after=after,
                delay_ms=_int(raw, "delay_ms", 600) or 0,
                timeout_ms=_int(raw, "timeout_ms", None),
                sound=raw.get("sound"),
                if_asked=_if_asked(raw, i),
            )
        )
    loop_from = _int(data, "loop_from", None)
    if loop_from is not None and not 0 <= loop_from < max(1, len(lines)):
        raise PersonaError("loop_from must index a line")
    suffix = data.get("number_suffix")
    known = {
        "name",
        "description",
        "number_suffix",
        "answer",
        "ring_ms",
        "lines",
        "loop_from",
        "hangup",
        "hangup_delay_ms",
        "max_call_s",
        "speaks_first",
        "amd",
        "facts",
    }
    return Persona(
        name=pname,
        description=str(data.get("description", "")).strip(),
        number_suffix=None if suffix is None else str(suffix),
        answer=answer,
        ring_ms=_int(data, "ring_ms", 1000) or 0,
        lines=tuple(lines),
        loop_from=loop_from,
        hangup=hangup,
        hangup_delay_ms=_int(data, "hangup_delay_ms", 800) or 0,
        max_call_s=float(data.get("max_call_s", 180.0)),
        amd=_amd(data.get("amd"), len(lines)),
        facts=_facts(data.get("facts")),
        extra={k: v for k, v in data.items() if k not in known},
    )


FACT_KEYS = ("date_of_birth", "postal_code", "account_reference")


def _if_asked(raw: dict[str, Any], i: int) -> str | None:
    value = raw.get("if_asked")
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise PersonaError(f"line {i}: if_asked must be a non-empty string")
    return value.strip().lower() if value else None


def _facts(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not set(raw) <= set(FACT_KEYS):
        raise PersonaError(f"facts must be a mapping with keys from {FACT_KEYS}")
    return {k: str(v) for k, v in raw.items()}


def _amd(raw: Any, n_lines: int) -> AmdSpec | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"answered_by": raw}
    if not isinstance(raw, dict) or raw.get("answered_by") not in ANSWERED_BY:
        raise PersonaError(f"amd.answered_by must be one of {ANSWERED_BY}")
    after = _int(raw, "after_line", None)
    if after is not None and not 0 <= after < n_lines:
        raise PersonaError("amd.after_line must index a line")
    return AmdSpec(str(raw["answered_by"]), after, _int(raw, "delay_ms", 0) or 0)


def load_personas(*extra_dirs: Path) -> dict[str, Persona]:
    """Built-in personas plus any ``*.yaml`` in ``extra_dirs`` (later ones override)."""
    personas: dict[str, Persona] = {}
    for d in (PERSONA_DIR, *extra_dirs):
        for path in sorted(Path(d).glob("*.yaml")):
            with path.open() as f:
                data = yaml.safe_load(f)
            try:
                p = parse_persona(data, name=path.stem)
            except PersonaError as exc:
                raise PersonaError(f"{path}: {exc}") from exc
            personas[p.name] = p
    return personas
