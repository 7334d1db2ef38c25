"""What the simulated collector reads from the request (the ``### CALL FACTS`` block of the
system prompt, docs/internal-contracts.md, and the JSON content of tool results) and the shape of
its answer (``PolicyReply``).

A tool result is ``{"ok", "message", "state"}`` plus, for a refused plan or promise or an
accepted ``report_hardship``, an optional ``"offer"``: a concrete plan inside the client's rules
(``{"installments": [{"amount_minor", "date"}], "settlement"}``) the collector may put to the
debtor in its own words.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from simulators.openai.parsing import spoken_money

FACTS_HEADER = "### CALL FACTS"


@dataclass(frozen=True, slots=True)
class PolicyReply:
    text: str | None
    tool_calls: list[tuple[str, str]] = field(default_factory=list)  # (name, arguments JSON)


def args_json(**kwargs: Any) -> str:
    """Tool-call arguments as the model writes them (compact JSON)."""
    return json.dumps(kwargs, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Facts:
    state: str = "greeting"
    stage: str = ""
    company: str = "the company"
    agent_name: str = "Alex"
    debtor_name: str = "the account holder"
    balance_minor: int = 0
    currency: str = "USD"
    balance_spoken: str = ""
    due_date: str = ""
    today: date = date(2000, 1, 1)
    latest_promise_date: date | None = None
    timezone: str = "UTC"
    fact_to_verify: str = ""  # the kind of fact on file the system asked for, if any
    callback_number: str = ""  # the company's number for the debtor to check the call

    @property
    def tzinfo(self) -> tzinfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return UTC

    @property
    def first_name(self) -> str:
        return self.debtor_name.split()[0] if self.debtor_name else ""

    @property
    def balance_words(self) -> str:
        return self.balance_spoken or spoken_money(self.balance_minor, self.currency)


def content_text(content: Any) -> str:
    """Message content as plain text (a string, or a list of content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return str(content)


def parse_facts(messages: list[dict[str, Any]]) -> Facts:
    """The ``### CALL FACTS`` block of the latest system (or developer) message."""
    raw: dict[str, str] = {}
    for msg in reversed(messages):
        if msg.get("role") not in ("system", "developer"):
            continue
        text = content_text(msg.get("content"))
        idx = text.rfind(FACTS_HEADER)
        if idx < 0:
            continue
        for line in text[idx + len(FACTS_HEADER) :].splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() and " " not in key.strip():
                raw[key.strip()] = value.strip()
            elif line.strip().startswith("#"):
                break
        break

    def as_date(value: str | None) -> date | None:
        try:
            return date.fromisoformat(value) if value else None
        except ValueError:
            return None

    try:
        balance = int(raw.get("balance_minor", "0"))
    except ValueError:
        balance = 0
    return Facts(
        state=raw.get("state", "greeting"),
        stage=raw.get("stage", ""),
        company=raw.get("company", "the company"),
        agent_name=raw.get("agent_name", "Alex"),
        debtor_name=raw.get("debtor_name", "the account holder"),
        balance_minor=balance,
        currency=raw.get("currency", "USD"),
        balance_spoken=raw.get("balance_spoken", ""),
        due_date=raw.get("due_date", ""),
        today=as_date(raw.get("today")) or date(2000, 1, 1),
        latest_promise_date=as_date(raw.get("latest_promise_date")),
        timezone=raw.get("timezone") or "UTC",
        fact_to_verify=raw.get("fact_to_verify", ""),
        callback_number=raw.get("callback_number", ""),
    )


@dataclass(frozen=True, slots=True)
class Installment:
    amount_minor: int
    day: date


@dataclass(frozen=True, slots=True)
class Offer:
    """A plan the system offered (or the debtor proposed): installments in date order."""

    installments: tuple[Installment, ...]
    settlement: bool = False

    @property
    def total_minor(self) -> int:
        return sum(i.amount_minor for i in self.installments)

    def arguments(self, currency: str) -> str:
        """``record_payment_plan`` arguments for exactly this plan."""
        items = [
            {"amount_minor": i.amount_minor, "date": i.day.isoformat()} for i in self.installments
        ]
        return json.dumps(
            {"installments": items, "currency": currency, "settlement": self.settlement},
            separators=(",", ":"),
        )


def parse_offer(raw: Any) -> Offer | None:
    """The ``offer`` of a tool result, or None when absent or malformed."""
    if not isinstance(raw, dict) or not isinstance(raw.get("installments"), list):
        return None
    items: list[Installment] = []
    for item in raw["installments"]:
        try:
            amount = int(item["amount_minor"])
            day = date.fromisoformat(str(item["date"]))
        except (KeyError, TypeError, ValueError):
            return None
        if amount <= 0:
            return None
        items.append(Installment(amount, day))
    if not items:
        return None
    return Offer(tuple(items), bool(raw.get("settlement", False)))


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """A tool message's content, parsed (malformed content reads as a refusal)."""

    ok: bool
    message: str
    state: str | None
    offer: Offer | None
    raw: dict[str, Any]


def parse_tool_result(content: Any) -> ToolOutcome:
    try:
        result = json.loads(content_text(content) or "{}")
    except json.JSONDecodeError:
        result = {}
    if not isinstance(result, dict):
        result = {}
    state = result.get("state")
    return ToolOutcome(
        ok=bool(result.get("ok", False)),
        message=str(result.get("message") or ""),
        state=str(state) if state else None,
        offer=parse_offer(result.get("offer")),
        raw=result,
    )
