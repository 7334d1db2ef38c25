"""When a requested call may be dispatched: pure rules, no I/O.

MVP: at once, if the debtor exists and the call is still queued. Later rules (calling windows in
the debtor's local time, attempt limits, campaigns) are added to `DEFAULT_RULES` without touching
the shell; a rule can only hold a call back, never force one through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CallRequestView:
    """What the rules may look at, loaded by the shell."""

    call_status: str | None  # None: the call row does not exist
    debtor_exists: bool
    now: datetime


@dataclass(frozen=True)
class Dispatch:
    pass


@dataclass(frozen=True)
class Skip:
    reason: str


Decision = Dispatch | Skip
Rule = Callable[[CallRequestView], Skip | None]


def call_must_exist(view: CallRequestView) -> Skip | None:
    return Skip("unknown call") if view.call_status is None else None


def call_must_be_queued(view: CallRequestView) -> Skip | None:
    # A redelivered or repeated request for a call already dispatched (or ended) does nothing.
    if view.call_status is not None and view.call_status != "queued":
        return Skip(f"call is {view.call_status}, not queued")
    return None


def debtor_must_exist(view: CallRequestView) -> Skip | None:
    return None if view.debtor_exists else Skip("unknown debtor")


DEFAULT_RULES: tuple[Rule, ...] = (call_must_exist, call_must_be_queued, debtor_must_exist)


def decide(view: CallRequestView, rules: Sequence[Rule] = DEFAULT_RULES) -> Decision:
    for rule in rules:
        skip = rule(view)
        if skip is not None:
            return skip
    return Dispatch()
