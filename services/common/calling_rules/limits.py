"""Attempt caps, the quiet period after a conversation, retry backoff, and the verdict."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Literal

from services.common.calling_rules.window import next_time_in_all
from services.common.calling_rules.zones import DebtorContact, possible_zones

# How far ahead the rules look for a time inside every zone's window before refusing.
SEARCH_HORIZON = timedelta(days=14)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class RulesConfig:
    window_start: time = time(8, 0)
    window_end: time = time(21, 0)
    max_attempts: int = 7
    attempts_period: timedelta = WEEK
    quiet_after_conversation: timedelta = WEEK
    retry_base: timedelta = timedelta(minutes=15)
    retry_cap: timedelta = timedelta(hours=4)
    retry_max_per_day: int = 3
    retry_max_per_week: int = 6

    def __post_init__(self) -> None:
        if not self.window_start < self.window_end:
            raise ValueError("window_start must be before window_end")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


@dataclass(frozen=True)
class History:
    attempts: Sequence[datetime] = field(default_factory=tuple)  # every dial, any reason
    retries: Sequence[datetime] = field(default_factory=tuple)  # the dials that were retries
    last_conversation_at: datetime | None = None  # last conversation about the debt


@dataclass(frozen=True)
class Intent:
    reason: Literal["manual", "callback", "retry", "campaign"]
    debtor_requested: bool = False  # the debtor asked for this call (a callback they agreed to)


@dataclass(frozen=True)
class Allowed:
    at: datetime  # the earliest instant the call may be placed (>= now)


@dataclass(frozen=True)
class Refused:
    reason: str


def _free_of_cap(at: datetime, dials: Sequence[datetime], cap: int, period: timedelta) -> datetime:
    """The earliest instant >= at with fewer than `cap` of `dials` in the `period` before it."""
    recent = sorted(d for d in dials if d > at - period)
    if len(recent) < cap:
        return at
    # The oldest dials must age out until cap - 1 remain.
    return max(at, recent[len(recent) - cap] + period)


def earliest_allowed(
    now: datetime, contact: DebtorContact, history: History, intent: Intent, cfg: RulesConfig
) -> Allowed | Refused:
    zones = possible_zones(contact)
    if not zones:
        return Refused("the debtor's time zone is unknown (no zone on file, none from the number)")
    at = _free_of_cap(now, history.attempts, cfg.max_attempts, cfg.attempts_period)
    if intent.reason == "retry":
        if cfg.retry_max_per_day == 0 or cfg.retry_max_per_week == 0:
            return Refused("retries are switched off")
        at = _free_of_cap(at, history.retries, cfg.retry_max_per_day, DAY)
        at = _free_of_cap(at, history.retries, cfg.retry_max_per_week, WEEK)
    if history.last_conversation_at is not None and not intent.debtor_requested:
        at = max(at, history.last_conversation_at + cfg.quiet_after_conversation)
    # Caps and the quiet period only loosen as time passes, so moving into the window keeps them.
    found = next_time_in_all(at, zones, cfg.window_start, cfg.window_end, SEARCH_HORIZON)
    if found is None:
        return Refused(
            "no time inside the calling window in every zone the debtor may be in: "
            + ", ".join(sorted(zones))
        )
    return Allowed(found)


def retry_delay(failed_attempt: int, cfg: RulesConfig, rng: random.Random) -> timedelta:
    """Exponential backoff from `retry_base`, capped, with equal jitter: between half and all
    of the step, so retries of many debtors do not line up."""
    step = min(cfg.retry_cap, cfg.retry_base * 2 ** max(0, failed_attempt - 1))
    return step / 2 + step / 2 * rng.random()
