"""Prompt files (policy + one per stage), their versions, and rendering the system prompt.

`load_prompt_set()` is the core's only file read: it runs once per process (cached by
`default_prompt_set()`) and hands immutable text to the pure rendering functions below. Tests and
the orchestrator can pass their own `PromptSet` instead.
"""

from __future__ import annotations

import datetime as dt
import functools
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from .enums import ConversationState, DelinquencyStage
from .facts import CallFacts
from .speech import spoken_amount, spoken_date, spoken_number

DEFAULT_PROMPTS_DIR = Path(__file__).resolve().parents[3] / "prompts"

# Placeholders the policy may use: it is in the prompt before the right party is confirmed, so
# nothing about the debt may be among them. Stage prompts are rendered only after verification.
POLICY_FIELDS = frozenset(
    {"agent_name", "company_name", "debtor_name", "timezone", "utc_offset", "today_spoken"}
)
STAGE_FIELDS = POLICY_FIELDS | {
    "balance_spoken",
    "due_date_spoken",
    "latest_promise_date_spoken",
    "promise_window_days_spoken",
    "days_past_due_spoken",
}


@dataclass(frozen=True)
class PromptDoc:
    name: str  # "policy" or a stage value
    version: str
    body: str


@dataclass(frozen=True)
class PromptSet:
    policy: PromptDoc
    stages: Mapping[DelinquencyStage, PromptDoc]

    def version(self, stage: DelinquencyStage) -> str:
        """Combined version recorded with the call: `policy@2026-11-27.1+early@2026-11-27.1`."""
        doc = self.stages[stage]
        return f"{self.policy.name}@{self.policy.version}+{doc.name}@{doc.version}"


def parse_prompt(name: str, text: str, allowed: frozenset[str]) -> PromptDoc:
    """Split `---` front matter (needs `version:`) from the body and check its placeholders."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---" or "---" not in (x.strip() for x in lines[1:]):
        raise ValueError(f"prompt {name!r}: missing front matter")
    end = next(i for i, x in enumerate(lines[1:], start=1) if x.strip() == "---")
    meta = dict(
        (k.strip(), v.strip()) for k, _, v in (x.partition(":") for x in lines[1:end] if ":" in x)
    )
    version = meta.get("version", "")
    if not version:
        raise ValueError(f"prompt {name!r}: front matter has no version")
    body = "\n".join(lines[end + 1 :]).strip()
    used = {field for _, field, _, _ in string.Formatter().parse(body) if field is not None}
    unknown = used - allowed
    if unknown:
        raise ValueError(f"prompt {name!r}: unknown or disallowed placeholders {sorted(unknown)}")
    return PromptDoc(name=name, version=version, body=body)


def load_prompt_set(directory: Path = DEFAULT_PROMPTS_DIR) -> PromptSet:
    policy = parse_prompt("policy", (directory / "policy.md").read_text("utf-8"), POLICY_FIELDS)
    stages = {
        stage: parse_prompt(
            stage.value,
            (directory / "stages" / f"{stage.value}.md").read_text("utf-8"),
            STAGE_FIELDS,
        )
        for stage in DelinquencyStage
    }
    return PromptSet(policy=policy, stages=MappingProxyType(stages))


@functools.cache
def default_prompt_set() -> PromptSet:
    return load_prompt_set()


def one_line(value: str, limit: int = 200) -> str:
    """Client-supplied text as one plain line: a newline or control character in a debtor's name
    must not open a new `key: value` row (or a fake `###` section) in what the model reads."""
    cleaned = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in value)
    return " ".join(cleaned.split())[:limit]


def template_values(facts: CallFacts, now: dt.datetime) -> dict[str, str]:
    today = facts.local_today(now)
    late_days = facts.days_past_due(now)
    offset = now.astimezone(facts.tz).strftime("%z")  # "-0500" -> "-05:00" below
    return {
        "agent_name": facts.agent_name,
        "company_name": facts.company_name,
        "debtor_name": one_line(facts.debtor_name),
        "timezone": facts.timezone,
        "utc_offset": f"{offset[:3]}:{offset[3:]}",
        "today_spoken": spoken_date(today, weekday=True),
        "balance_spoken": spoken_amount(facts.balance_minor, facts.currency),
        "due_date_spoken": spoken_date(facts.due_date, today=today),
        "latest_promise_date_spoken": spoken_date(facts.latest_promise_date(now), today=today),
        "promise_window_days_spoken": spoken_number(facts.promise_window_days),
        "days_past_due_spoken": f"{spoken_number(late_days)} day{'' if late_days == 1 else 's'}",
    }


def call_facts_block(
    facts: CallFacts, now: dt.datetime, state: ConversationState, *, verified: bool
) -> str:
    """The `### CALL FACTS` block of docs/internal-contracts.md, keys always present.

    Until the right party is verified, `balance_minor`, `balance_spoken` and `due_date` are
    blank (`key: ` with an empty value), so neither the model nor a third party can hear them.
    """
    today = facts.local_today(now)
    show = verified

    def debt(value: str) -> str:
        return value if show else ""

    rows = [
        ("state", state.value),
        ("stage", facts.stage.value),
        ("company", facts.company_name),
        ("agent_name", facts.agent_name),
        ("debtor_name", one_line(facts.debtor_name)),
        ("balance_minor", debt(str(facts.balance_minor))),
        ("currency", facts.currency),
        ("balance_spoken", debt(spoken_amount(facts.balance_minor, facts.currency))),
        ("due_date", debt(facts.due_date.isoformat())),
        ("today", today.isoformat()),
        ("latest_promise_date", facts.latest_promise_date(now).isoformat()),
        ("timezone", facts.timezone),
    ]
    return "### CALL FACTS\n" + "\n".join(f"{k}: {v}" for k, v in rows)


def render_system_prompt(
    prompts: PromptSet,
    facts: CallFacts,
    now: dt.datetime,
    state: ConversationState,
    *,
    verified: bool,
) -> str:
    values = template_values(facts, now)
    parts = [prompts.policy.body.format_map(values)]
    if verified:
        # Stage guidance talks about the debt: only once the right party is on the line.
        parts.append(prompts.stages[facts.stage].body.format_map(values))
    parts.append(call_facts_block(facts, now, state, verified=verified))
    return "\n\n".join(parts)
