"""What the worker does with a due schedule row: pure, no I/O.

The shell (services/call_scheduler/worker.py) loads a `ClaimView` under the row's lock and
applies the decision. A rule can only hold a call back, never force one through: anything
uncertain (unknown debtor, a hold, the rules refusing) skips the row with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.common.calling_rules import Allowed, Refused


@dataclass(frozen=True)
class ClaimView:
    reason: str  # manual | callback | retry | campaign
    # Status of the call the row already names (a manual trigger's); None: the row has no call
    # yet (retry, callback: it is created at dispatch).
    call_status: str | None
    has_call: bool
    debtor_exists: bool
    holds: tuple[str, ...]  # kinds of the debtor's active holds
    other_live_call: bool  # the debtor has a queued or live call that is not this row's
    verdict: Allowed | Refused | None  # None when there is no debtor to ask the rules about
    now: datetime
    # An operator's override (the row's `override_reason`): holds and rules are set aside.
    override: bool = False


@dataclass(frozen=True)
class Dispatch:
    pass


@dataclass(frozen=True)
class Reschedule:
    at: datetime


@dataclass(frozen=True)
class Skip:
    reason: str
    end_call: bool  # the row's queued call ends too (canceled, with this reason)
    # The reason as a CallStepReason value (specs/schemas/call_step_reason.json), for the
    # call's `skipped` step; None when the row's call is not affected (nothing to record).
    code: str | None = field(default=None, compare=False)


Decision = Dispatch | Reschedule | Skip


def decide_claim(v: ClaimView) -> Decision:
    if v.has_call and v.call_status is None:
        return Skip("unknown call", end_call=False)
    if v.call_status is not None and v.call_status != "queued":
        # Redelivered, or the call ended some other way meanwhile: nothing to place.
        return Skip(f"call is {v.call_status}, not queued", end_call=False)
    if not v.debtor_exists:
        return Skip("unknown debtor", end_call=True, code="unknown_debtor")
    if v.holds and not v.override:
        return Skip(
            f"debtor on hold: {', '.join(sorted(v.holds))}", end_call=True, code="debtor_on_hold"
        )
    if v.other_live_call:
        # Only a row without its own call can meet one (one live call per debtor): a retry or
        # callback that another call to the debtor has overtaken.
        return Skip(
            "superseded: the debtor has another call queued or in progress",
            end_call=True,
            code="superseded",
        )
    if v.override:
        return Dispatch()  # now, whatever the rules say (audited with its reason)
    if isinstance(v.verdict, Refused):
        return Skip(f"calling rules: {v.verdict.reason}", end_call=True, code="calling_rules")
    if v.verdict is None:
        return Skip("unknown debtor", end_call=True, code="unknown_debtor")
    if v.verdict.at > v.now:
        return Reschedule(v.verdict.at)
    return Dispatch()
