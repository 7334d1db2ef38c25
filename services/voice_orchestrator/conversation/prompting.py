"""Prompt files (policy, the variants of each stage, the fixed lines), versions, and rendering.

`load_prompt_set()` is the core's only file read: it runs once per process (cached by
`default_prompt_set()`) and hands immutable text to the pure rendering functions below. Tests and
the orchestrator can pass their own `PromptSet` instead. Every variant of every stage
(`prompts/stages/<stage>/<variant>.md`, services/common/prompt_variants.py) is loaded then, so
picking a call's variant is a dictionary lookup.
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

from services.common.prompt_variants import DEFAULT_VARIANT, VARIANT_ID

from .enums import ConversationState, DelinquencyStage
from .facts import CallFacts
from .speech import spoken_amount, spoken_date, spoken_number

DEFAULT_PROMPTS_DIR = Path(__file__).resolve().parents[3] / "prompts"

# The policy takes no placeholders at all: it opens every call's system prompt, so keeping it
# byte-identical across calls lets the provider's prompt cache reuse it. Per-call values (names,
# today, time zone) are in the CALL FACTS block at the end. (Nothing about the debt may be in it
# either way: it is in the prompt before the right party is confirmed.)
POLICY_FIELDS: frozenset[str] = frozenset()
# Stage prompts are rendered only after verification, after the static policy.
STAGE_FIELDS = frozenset({"agent_name", "company_name", "debtor_name", "today_spoken"}) | {
    "balance_spoken",
    "due_date_spoken",
    "latest_promise_date_spoken",
    "promise_window_days_spoken",
    "days_past_due_spoken",
}


@dataclass(frozen=True)
class PromptDoc:
    name: str  # "policy", or "<stage>/<variant>" for a stage's guidance
    version: str
    body: str


# prompts/lines.md: every fixed line the system speaks, and the placeholders each may use. The
# disclosure takes none: it is said word for word on every call.
_NO_FIELDS: frozenset[str] = frozenset()
_PLAN_FIELDS = frozenset(
    {
        "payments_spoken",
        "first_amount_spoken",
        "first_date_spoken",
        "last_date_spoken",
        "total_spoken",
    }
)
LINE_FIELDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "greeting": frozenset({"agent_name", "company_name", "debtor_name"}),
        "disclosure": _NO_FIELDS,
        "balance_past_due": frozenset({"balance_spoken", "due_date_spoken"}),
        "balance_not_due": frozenset({"balance_spoken", "due_date_spoken"}),
        "payment_question_past_due": _NO_FIELDS,
        "payment_question_not_due": _NO_FIELDS,
        "read_back": frozenset({"amount_spoken", "date_spoken"}),
        "plan_read_back": _PLAN_FIELDS,
        "settlement_read_back": _PLAN_FIELDS,
        "promise_limit": frozenset({"date_spoken"}),
        "callback_confirm": frozenset({"date_spoken", "time_spoken"}),
        "derail_closing": frozenset({"time_spoken"}),
        "dispute_closing": _NO_FIELDS,
        "wrong_party_closing": _NO_FIELDS,
        "opt_out_closing": _NO_FIELDS,
        "goodbye": _NO_FIELDS,
        "apology": _NO_FIELDS,
        "reprompt": _NO_FIELDS,
        "silent_goodbye": _NO_FIELDS,
        # Right-party verification's second factor (verification.py): names the fact, never its
        # value; the closing after two wrong answers says nothing about the debt.
        "fact_question": frozenset({"fact_spoken"}),
        "fact_retry": frozenset({"fact_spoken"}),
        "unverified_closing": _NO_FIELDS,
        # A written notice of the debt was asked for: the call ends on that promise.
        "validation_notice_closing": _NO_FIELDS,
        # "Who is this? Is this a scam?": who calls and the company's number; never the debt.
        "identify_caller": frozenset({"agent_name", "company_name", "callback_number_spoken"}),
        # Left on an answering machine: a limited-content message (Reg F §1006.2(j)).
        "voicemail": frozenset({"caller_name", "business_name", "callback_number_spoken"}),
    }
)


@dataclass(frozen=True)
class LinesDoc:
    """prompts/lines.md: `## name` sections, each one spoken paragraph (a format template)."""

    name: str
    version: str
    templates: Mapping[str, str]

    def render(self, line: str, **values: str) -> str:
        return self.templates[line].format_map(values)


@dataclass(frozen=True)
class PromptSet:
    policy: PromptDoc
    # stage -> variant id -> its guidance; every stage has DEFAULT_VARIANT.
    variants: Mapping[DelinquencyStage, Mapping[str, PromptDoc]]
    lines: LinesDoc

    @property
    def stages(self) -> Mapping[DelinquencyStage, PromptDoc]:
        """Each stage's default variant."""
        return {stage: docs[DEFAULT_VARIANT] for stage, docs in self.variants.items()}

    def resolve(self, stage: DelinquencyStage, variant: str) -> str:
        """`variant` if the stage has it here, else the default (a dispatch naming a variant
        this process does not know is still placed, on the default text, and records that)."""
        return variant if variant in self.variants[stage] else DEFAULT_VARIANT

    def stage_doc(self, stage: DelinquencyStage, variant: str = DEFAULT_VARIANT) -> PromptDoc:
        return self.variants[stage][self.resolve(stage, variant)]

    def version(self, stage: DelinquencyStage, variant: str = DEFAULT_VARIANT) -> str:
        """Combined version recorded with the call:
        `policy@2026-12-03.2+early/plan_first@2026-12-04.1`."""
        doc = self.stage_doc(stage, variant)
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
    unknown = _fields(body) - allowed
    if unknown:
        raise ValueError(f"prompt {name!r}: unknown or disallowed placeholders {sorted(unknown)}")
    return PromptDoc(name=name, version=version, body=body)


def _fields(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def parse_lines(text: str, name: str = "lines") -> LinesDoc:
    """prompts/lines.md: front matter, free text, then one `## name` section per fixed line.

    Exactly the lines of `LINE_FIELDS` must be there, each with only its own placeholders: a
    missing line, an unknown one or a stray placeholder fails at load time, not mid-call.
    """
    allowed_anywhere = frozenset().union(*LINE_FIELDS.values())
    doc = parse_prompt(name, text, allowed_anywhere)
    templates: dict[str, str] = {}
    current: str | None = None
    body: list[str] = []
    for raw in [*doc.body.splitlines(), "## "]:  # the sentinel flushes the last section
        if raw.startswith("## "):
            if current is not None:
                if current in templates:
                    raise ValueError(f"prompt {name!r}: line {current!r} is defined twice")
                templates[current] = " ".join(" ".join(body).split())
            current, body = raw[3:].strip(), []
        elif current is not None:
            body.append(raw)
    missing = set(LINE_FIELDS) - set(templates)
    unknown = set(templates) - set(LINE_FIELDS)
    if missing or unknown:
        raise ValueError(
            f"prompt {name!r}: missing lines {sorted(missing)}, unknown lines {sorted(unknown)}"
        )
    for line, template in templates.items():
        if not template:
            raise ValueError(f"prompt {name!r}: line {line!r} is empty")
        stray = _fields(template) - LINE_FIELDS[line]
        if stray:
            raise ValueError(f"prompt {name!r}: line {line!r} may not use {sorted(stray)}")
    return LinesDoc(name=name, version=doc.version, templates=MappingProxyType(templates))


def load_prompt_set(directory: Path = DEFAULT_PROMPTS_DIR) -> PromptSet:
    policy = parse_prompt("policy", (directory / "policy.md").read_text("utf-8"), POLICY_FIELDS)
    variants = {stage: _load_variants(directory, stage) for stage in DelinquencyStage}
    lines = parse_lines((directory / "lines.md").read_text("utf-8"))
    return PromptSet(policy=policy, variants=MappingProxyType(variants), lines=lines)


def _load_variants(directory: Path, stage: DelinquencyStage) -> Mapping[str, PromptDoc]:
    """`prompts/stages/<stage>/<variant>.md`, each parsed and checked like any stage prompt."""
    docs = {
        path.stem: parse_prompt(f"{stage.value}/{path.stem}", path.read_text("utf-8"), STAGE_FIELDS)
        for path in sorted((directory / "stages" / stage.value).glob("*.md"))
        if VARIANT_ID.match(path.stem)
    }
    if DEFAULT_VARIANT not in docs:
        raise ValueError(f"prompts for stage {stage.value!r}: no {DEFAULT_VARIANT}.md")
    return MappingProxyType(docs)


@functools.cache
def default_prompt_set() -> PromptSet:
    return load_prompt_set()


def one_line(value: str, limit: int = 200) -> str:
    """Client-supplied text as one plain line: a newline or control character in a debtor's name
    must not open a new `key: value` row (or a fake `###` section) in what the model reads."""
    cleaned = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in value)
    return " ".join(cleaned.split())[:limit]


def utc_offset(facts: CallFacts, now: dt.datetime) -> str:
    """The debtor's current UTC offset, "-05:00" (it changes with daylight saving time)."""
    offset = now.astimezone(facts.tz).strftime("%z")  # "-0500"
    return f"{offset[:3]}:{offset[3:]}"


def template_values(facts: CallFacts, now: dt.datetime) -> dict[str, str]:
    today = facts.local_today(now)
    late_days = facts.days_past_due(now)
    return {
        "agent_name": facts.agent_name,
        "company_name": facts.company_name,
        "debtor_name": one_line(facts.debtor_name),
        "timezone": facts.timezone,
        "utc_offset": utc_offset(facts, now),
        "today_spoken": spoken_date(today, weekday=True),
        "balance_spoken": spoken_amount(facts.balance_minor, facts.currency),
        "due_date_spoken": spoken_date(facts.due_date, today=today),
        "latest_promise_date_spoken": spoken_date(facts.latest_promise_date(now), today=today),
        "promise_window_days_spoken": spoken_number(facts.promise_window_days),
        "days_past_due_spoken": f"{spoken_number(late_days)} day{'' if late_days == 1 else 's'}",
    }


def call_facts_block(
    facts: CallFacts,
    now: dt.datetime,
    state: ConversationState,
    *,
    verified: bool,
    fact_to_verify: str = "",
) -> str:
    """The `### CALL FACTS` block of docs/internal-contracts.md, keys always present.

    Until the right party is verified, `balance_minor`, `balance_spoken` and `due_date` are
    blank (`key: ` with an empty value), so neither the model nor a third party can hear them.
    `fact_to_verify` names the kind of fact on file the system asked for (blank: none pending);
    the facts themselves (date of birth, ZIP, account digits) are never in the prompt.
    Every per-call value is here (and the policy above has none), so the long policy text is the
    same prefix on every call and the provider's prompt cache can reuse it.
    """
    today = facts.local_today(now)
    show = verified

    def debt(value: str) -> str:
        return value if show else ""

    rows = [
        ("state", state.value),
        ("fact_to_verify", fact_to_verify),
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
        ("utc_offset", utc_offset(facts, now)),
        ("today_spoken", spoken_date(today, weekday=True)),
    ]
    return "### CALL FACTS\n" + "\n".join(f"{k}: {v}" for k, v in rows)


def render_system_prompt(
    prompts: PromptSet,
    facts: CallFacts,
    now: dt.datetime,
    state: ConversationState,
    *,
    verified: bool,
    fact_to_verify: str = "",
) -> str:
    values = template_values(facts, now)
    parts = [prompts.policy.body]  # static: the shared prefix (see POLICY_FIELDS)
    if verified:
        # Stage guidance talks about the debt: only once the right party is on the line.
        parts.append(prompts.stage_doc(facts.stage, facts.prompt_variant).body.format_map(values))
    parts.append(
        call_facts_block(facts, now, state, verified=verified, fact_to_verify=fact_to_verify)
    )
    return "\n\n".join(parts)
