"""Settings → the calling rules' configuration (one place, used by the scheduler and the API)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, cast

from services.call_scheduler.rules import Intent, RulesConfig
from services.common.settings import Settings


def rules_config(settings: Settings) -> RulesConfig:
    return RulesConfig(
        window_start=settings.call_window_start,
        window_end=settings.call_window_end,
        max_attempts=settings.call_max_attempts,
        attempts_period=timedelta(days=settings.call_attempts_period_days),
        quiet_after_conversation=timedelta(days=settings.call_quiet_after_conversation_days),
        retry_base=timedelta(seconds=settings.retry_base_seconds),
        retry_cap=timedelta(seconds=settings.retry_cap_seconds),
        retry_max_per_day=settings.retry_max_per_day,
        retry_max_per_week=settings.retry_max_per_week,
    )


Reason = Literal["manual", "callback", "retry", "campaign"]


def intent(reason: str, debtor_requested: bool = False) -> Intent:
    """A schedule row's reason (checked by the table's constraint) as the rules' intent."""
    return Intent(reason=cast(Reason, reason), debtor_requested=debtor_requested)
