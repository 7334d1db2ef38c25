"""What an operator's retry or cancel of a call does: pure decisions, no I/O.

The shell (services/client_api/routers/operator.py) loads the facts under the call's row lock,
asks these functions, and applies the answer with its audit row in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from services.client_api.problems import (
    CALL_ALREADY_ACTIVE,
    CALL_ALREADY_PLACED,
    CALL_NOT_ALLOWED,
    CALL_NOT_ENDED,
    DEBTOR_ON_HOLD,
    NOTHING_TO_CANCEL,
)
from services.common.calling_rules import Allowed, Refused
from services.common.models import LIVE_CALL_STATUSES

# A call not placed yet: the scheduler has it (queued) or released it and the orchestrator has
# not claimed it (dispatched; its claim only moves a `dispatched` call to `dialing`).
CANCELLABLE_STATUSES = ("queued", "dispatched")


@dataclass(frozen=True)
class Hold:
    kind: str
    reason: str


@dataclass(frozen=True)
class Refusal:
    """The 409 to answer: a problem type and a human detail."""

    type: str
    detail: str


@dataclass(frozen=True)
class RetryAt:
    at: datetime  # when the new attempt will be placed (UTC)
    overridden: tuple[str, ...]  # what an override set aside; empty otherwise


def _utc(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def plan_retry(
    *,
    call_status: str,
    other_live_call: bool,
    holds: Sequence[Hold],
    verdict: Allowed | Refused,
    now: datetime,
    override: bool,
) -> RetryAt | Refusal:
    """A retry of an ended call: when it is placed, or why not. With `override` the holds and
    the rules' refusal or wait are set aside (and listed); a live call never is."""
    if call_status in LIVE_CALL_STATUSES:
        return Refusal(
            CALL_NOT_ENDED,
            f"The call is {call_status}: only an ended call can be retried "
            "(cancel it first with POST /v1/calls/{call_id}/cancel).",
        )
    if other_live_call:
        return Refusal(CALL_ALREADY_ACTIVE, "The debtor has a call queued or in progress already.")
    overridden: list[str] = []
    if holds:
        named = "; ".join(f"{h.kind}: {h.reason}" for h in holds)
        if not override:
            return Refusal(
                DEBTOR_ON_HOLD,
                f"The debtor is on hold ({named}). Lift the hold, or retry with "
                '"override": true and a reason.',
            )
        overridden += [f"hold {h.kind}: {h.reason}" for h in holds]
    if isinstance(verdict, Refused):
        if not override:
            return Refusal(
                CALL_NOT_ALLOWED,
                f"The calling rules do not allow this call: {verdict.reason}. Retry with "
                '"override": true and a reason to place it anyway.',
            )
        overridden.append(f"calling rules: {verdict.reason}")
        return RetryAt(now, tuple(overridden))
    at = max(verdict.at, now)
    if at > now and override:
        overridden.append(f"calling rules: not before {_utc(at)}")
        return RetryAt(now, tuple(overridden))
    return RetryAt(at, tuple(overridden))


@dataclass(frozen=True)
class CancelCall:
    """End the call (`canceled`, not placed) and drop its pending schedule entries."""


@dataclass(frozen=True)
class CancelFollowUps:
    """The call ended: drop its pending retry or callback."""


def plan_cancel(
    call_status: str, pending_follow_ups: int
) -> CancelCall | CancelFollowUps | Refusal:
    if call_status in CANCELLABLE_STATUSES:
        return CancelCall()
    if call_status in LIVE_CALL_STATUSES:
        return Refusal(
            CALL_ALREADY_PLACED,
            f"The call is {call_status}: it is being placed and finishes normally.",
        )
    if pending_follow_ups:
        return CancelFollowUps()
    return Refusal(NOTHING_TO_CANCEL, f"The call ended ({call_status}) and has nothing scheduled.")
