"""When the next attempt of a failed webhook delivery is due: exponential, jitter-free.

The wait after failed attempt n is `min(max, base * 2**(n-1))`: with the defaults (base 2 s,
max 600 s, 5 attempts) 2, 4, 8 and 16 s. No jitter, so the schedule is predictable for clients
and deterministic in tests; the many endpoints of a busy system are spread anyway because their
first attempts are.
"""

from __future__ import annotations

from datetime import timedelta

from services.common.settings import Settings


def retry_delay(failed_attempt: int, settings: Settings) -> timedelta:
    seconds = settings.webhook_backoff_base_seconds * (2 ** max(0, failed_attempt - 1))
    return timedelta(seconds=min(settings.webhook_backoff_max_seconds, seconds))


def attempt_lease(settings: Settings) -> timedelta:
    """How long a requested attempt may stay unanswered before the pump requests it again
    (a lost or dead-lettered message must not leave a delivery pending forever)."""
    return timedelta(seconds=max(30.0, 3 * settings.webhook_timeout_seconds))


def pump_interval(settings: Settings) -> float:
    """How often the retry pump looks for due attempts: often enough for the shortest wait."""
    return min(1.0, max(0.02, settings.webhook_backoff_base_seconds / 2))
