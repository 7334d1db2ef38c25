"""The client's negotiation terms: the defaults per delinquency stage, the deployment's
overrides (`NEGOTIATION_RULES`), and which terms a call gets (its campaign's, else its stage's).

Pure: plain values in, generated `NegotiationRules` out. The conversation core checks proposals
against the terms (services/voice_orchestrator/conversation/); docs/negotiation.md explains them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from generated.delinquency_stage import DelinquencyStage
from generated.negotiation_rules import NegotiationRules

if TYPE_CHECKING:
    from services.common.settings import Settings

# The later the stage, the sooner the first payment and the larger it must be, and the longer
# a plan may run: a late account needs money soon but is better served by a plan it can keep
# than by a promise it breaks. No settlement unless the client sets a floor.
DEFAULT_RULES: Mapping[DelinquencyStage, NegotiationRules] = MappingProxyType(
    {
        DelinquencyStage.PRE_DELINQUENCY: NegotiationRules(
            min_first_payment_minor=0,
            min_first_payment_bp=0,
            latest_first_payment_days=30,
            max_installments=3,
            max_plan_days=90,
            settlement_floor_bp=None,
        ),
        DelinquencyStage.EARLY: NegotiationRules(
            min_first_payment_minor=0,
            min_first_payment_bp=1000,
            latest_first_payment_days=14,
            max_installments=6,
            max_plan_days=180,
            settlement_floor_bp=None,
        ),
        DelinquencyStage.LATE: NegotiationRules(
            min_first_payment_minor=0,
            min_first_payment_bp=1000,
            latest_first_payment_days=7,
            max_installments=12,
            max_plan_days=365,
            settlement_floor_bp=None,
        ),
    }
)


def inconsistencies(rules: NegotiationRules) -> list[tuple[str, str]]:
    """(field, why) for terms the schema accepts field by field but no call could keep: the
    agent would refuse every plan (the conversation core checks dates against both limits)."""
    problems = []
    if rules.max_plan_days < rules.latest_first_payment_days:
        problems.append(
            (
                "max_plan_days",
                f"must be at least latest_first_payment_days ({rules.latest_first_payment_days}):"
                " a plan ends no earlier than its first payment",
            )
        )
    if rules.max_installments > 1 and rules.max_plan_days == 0:
        problems.append(
            (
                "max_plan_days",
                "must be above 0 when max_installments is above 1: installments fall on"
                " different days (set max_installments to 1 for single payments only)",
            )
        )
    return problems


def overridden(raw: str) -> dict[DelinquencyStage, NegotiationRules]:
    """The defaults with `raw` (NEGOTIATION_RULES: JSON, stage -> fields to change) applied."""
    rules = dict(DEFAULT_RULES)
    if not raw.strip():
        return rules
    try:
        changes: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"NEGOTIATION_RULES is not JSON: {exc.msg}") from None
    if not isinstance(changes, dict):
        raise ValueError("NEGOTIATION_RULES must be a JSON object: stage -> fields")
    for stage_name, fields in changes.items():
        try:
            stage = DelinquencyStage(stage_name)
        except ValueError:
            known = ", ".join(s.value for s in DelinquencyStage)
            raise ValueError(
                f"NEGOTIATION_RULES: unknown stage {stage_name!r} (one of {known})"
            ) from None
        if not isinstance(fields, dict):
            raise ValueError(f"NEGOTIATION_RULES: {stage_name} must be an object of fields")
        try:
            rules[stage] = NegotiationRules.model_validate({**rules[stage].model_dump(), **fields})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]
            )
            raise ValueError(f"NEGOTIATION_RULES: {stage_name}: {problems}") from None
        if wrong := inconsistencies(rules[stage]):
            problems = "; ".join(f"{name}: {why}" for name, why in wrong)
            raise ValueError(f"NEGOTIATION_RULES: {stage_name}: {problems}")
    return rules


@lru_cache(maxsize=16)
def _cached(raw: str) -> dict[DelinquencyStage, NegotiationRules]:
    return overridden(raw)


def stage_rules(settings: Settings) -> dict[DelinquencyStage, NegotiationRules]:
    """Each stage's terms in this deployment (raises ValueError on a bad NEGOTIATION_RULES)."""
    return dict(_cached(settings.negotiation_rules))


def rules_for(
    settings: Settings, stage: DelinquencyStage | str, campaign_rules: Mapping[str, Any] | None
) -> NegotiationRules:
    """The terms a call negotiates within: its campaign's own, else its stage's."""
    if campaign_rules is not None:
        return NegotiationRules.model_validate(campaign_rules)
    return stage_rules(settings)[DelinquencyStage(stage)]
