"""What an ended call leads to: a hold, a retry, a callback, or nothing. Pure, no I/O."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime

from services.common.call_ending import NOT_PLACED
from services.common.calling_rules import RulesConfig, retry_delay

# The debtor said so in the call: kept on the debtor until an operator lifts it.
HOLD_BY_OUTCOME = {
    "opted_out": "opt_out",
    "disputed": "dispute",
    "wrong_party": "wrong_number",
    # No call until the written notice is out: an operator lifts the hold then.
    "validation_notice_requested": "validation_notice",
}
HOLD_REASONS = {
    "opt_out": "the debtor asked not to be called again",
    "dispute": "the debtor disputes the debt",
    "wrong_number": "the person who answered is not the debtor",
    "validation_notice": "the debtor asked for the debt in writing (validation notice)",
}
RETRY_STATUSES = ("busy", "no_answer", "failed")
# Nobody (or only a machine) was reached, the line stayed silent, the person hung up before any
# outcome, or the call broke: try again later (the caps, and after a verified hang-up Reg F's
# quiet period, still hold). `voicemail_left` and `machine` arrive with answering-machine
# detection.
RETRY_OUTCOMES = (
    "no_answer",
    "voicemail",
    "voicemail_left",
    "machine",
    "failed",
    "hung_up",
    "no_response",
)


@dataclass(frozen=True)
class EndedCall:
    call_id: uuid.UUID
    status: str
    outcome: str | None
    failure_reason: str | None
    attempt: int
    ended_at: datetime
    callback_at: datetime | None


@dataclass(frozen=True)
class PlaceHold:
    kind: str
    reason: str


@dataclass(frozen=True)
class ScheduleRetry:
    attempt: int  # the attempt the retry will be
    not_before: datetime


@dataclass(frozen=True)
class ScheduleCallback:
    not_before: datetime
    debtor_requested: bool


@dataclass(frozen=True)
class NoFollowUp:
    why: str


FollowUp = PlaceHold | ScheduleRetry | ScheduleCallback | NoFollowUp


def follow_up(call: EndedCall, cfg: RulesConfig) -> FollowUp:
    """The retry's jitter is seeded by the call id: the same ended call always gives the same
    time, however often its event is redelivered."""
    if call.outcome in HOLD_BY_OUTCOME:
        kind = HOLD_BY_OUTCOME[call.outcome]
        return PlaceHold(kind, f"{HOLD_REASONS[kind]} (call outcome {call.outcome})")
    if call.status == "canceled":
        return NoFollowUp("canceled")
    if call.failure_reason and call.failure_reason.startswith(NOT_PLACED):
        return NoFollowUp("never placed")
    if call.callback_at is not None:
        # Agreed in the conversation: the debtor asked for this call (Reg F's quiet period
        # does not hold it back; the calling window still does).
        return ScheduleCallback(call.callback_at, debtor_requested=True)
    if call.status in RETRY_STATUSES or call.outcome in RETRY_OUTCOMES:
        delay = retry_delay(call.attempt, cfg, random.Random(call.call_id.int))
        return ScheduleRetry(call.attempt + 1, call.ended_at + delay)
    return NoFollowUp(f"outcome {call.outcome}")
