"""Shared snapshots and helpers for the conversation-core tests."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from generated.negotiation_rules import NegotiationRules
from services.common.negotiation import DEFAULT_RULES
from services.voice_orchestrator.conversation import CallFacts, Conversation, DelinquencyStage

# 10:00 in New York on a Friday; `today` for the debtor is 2026-11-27.
NOW = dt.datetime(2026, 11, 27, 15, 0, tzinfo=dt.UTC)


CALLBACK_NUMBER = "+18005550100"


def default_rules(stage: str = "early", **changes: Any) -> NegotiationRules:
    """The stage's default negotiation terms (services/common/negotiation.py), with `changes`."""
    base = DEFAULT_RULES[DelinquencyStage(stage)]
    return NegotiationRules.model_validate({**base.model_dump(), **changes})


def facts(**overrides: Any) -> CallFacts:
    values: dict[str, Any] = {
        "call_id": "call-0001",
        "debtor_name": "Jane Doe",
        "company_name": "Acme Finance",
        "agent_name": "Alex",
        "stage": "early",
        "balance_minor": 45000,
        "currency": "USD",
        "due_date": dt.date(2026, 11, 1),
        "timezone": "America/New_York",
        "account_reference": "ACC-000123",
    }
    values.update(overrides)
    values.setdefault("rules", default_rules(str(values["stage"])))
    values.setdefault("callback_number", CALLBACK_NUMBER)
    return CallFacts(**values)


def conversation(now: dt.datetime = NOW, **overrides: Any) -> Conversation:
    return Conversation(facts(**overrides), now)


def verified(now: dt.datetime = NOW, *, heard: bool = True, **overrides: Any) -> Conversation:
    """A conversation that reached negotiation the ordinary way: the debtor confirmed, and (with
    `heard`) the shell spoke the disclosure line the core handed out, in full."""
    conv = conversation(now, **overrides)
    conv.add_debtor_turn("Hello?")
    conv.add_agent_turn(conv.greeting_line())
    conv.add_debtor_turn("Yes, speaking.")
    result = conv.add_tool_call("call_confirm", "confirm_identity", "{}")
    assert result.ok, result
    assert result.line is not None and result.line.kind == "disclosure"
    if heard:
        conv.add_agent_turn(result.line.text)
    return conv


def promise_args(amount: int = 45000, currency: str = "USD", date: str = "2026-12-01") -> str:
    return json.dumps({"amount_minor": amount, "currency": currency, "date": date})
