"""Payment promise tracking: allocation of payments and the promise lifecycle (pure, no I/O).

Lifecycle (specs/schemas/promise_status.json):

    pending --payments reach the amount-------------------------> kept
    pending --due date + grace passed, nothing paid-------------> broken
    pending --due date + grace passed, part paid----------------> partially_kept
    pending --the client cancels---------------------------------> cancelled

Only `pending` moves; the four others are final. A promise is judged on UTC calendar days: due
on D with G days of grace, it is overdue from the start of day D + G + 1 (UTC), so a payment
made on the last day of grace still counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

Status = Literal["pending", "kept", "partially_kept", "broken", "cancelled"]
STATUSES: tuple[Status, ...] = ("pending", "kept", "partially_kept", "broken", "cancelled")
FINAL: frozenset[Status] = frozenset({"kept", "partially_kept", "broken", "cancelled"})
# The only moves there are: from `pending`, to any final status.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    "pending": FINAL,
    **{s: frozenset() for s in FINAL},
}


class IllegalTransition(ValueError):
    pass


@dataclass(frozen=True)
class OpenPromise:
    """A pending promise as allocation needs it (`key` is whatever id the caller uses)."""

    key: int
    amount_minor: int
    paid_minor: int
    due_date: date

    @property
    def outstanding(self) -> int:
        return max(0, self.amount_minor - self.paid_minor)


@dataclass(frozen=True)
class Allocation:
    parts: tuple[tuple[int, int], ...]  # (promise key, amount applied), earliest due first
    unallocated: int


def allocate(amount_minor: int, promises: Sequence[OpenPromise]) -> Allocation:
    """Apply a payment to pending promises, earliest due first (ties: lowest key, i.e. oldest).

    Each promise takes at most what it still lacks; what no promise needs stays unallocated.
    """
    if amount_minor < 0:
        raise ValueError("a payment is never negative")
    remaining = amount_minor
    parts: list[tuple[int, int]] = []
    for promise in sorted(promises, key=lambda p: (p.due_date, p.key)):
        if remaining == 0:
            break
        take = min(remaining, promise.outstanding)
        if take > 0:
            parts.append((promise.key, take))
            remaining -= take
    return Allocation(tuple(parts), remaining)


def transition(current: Status, new: Status) -> Status:
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"{current} -> {new}")
    return new


def status_after_payment(current: Status, amount_minor: int, paid_minor: int) -> Status:
    """A pending promise whose payments reach its amount is kept; otherwise nothing changes."""
    if current == "pending" and paid_minor >= amount_minor:
        return transition(current, "kept")
    return current


def judgement_day(due_date: date, grace_days: int) -> date:
    """The first UTC day on which an unpaid pending promise counts as broken."""
    return due_date + timedelta(days=grace_days + 1)


def is_overdue(due_date: date, grace_days: int, today: date) -> bool:
    return today >= judgement_day(due_date, grace_days)


def status_at_deadline(current: Status, amount_minor: int, paid_minor: int) -> Status:
    """What an overdue promise becomes: broken with nothing paid, partially_kept with part."""
    if current != "pending":
        return current
    if paid_minor >= amount_minor:
        return transition(current, "kept")
    return transition(current, "partially_kept" if paid_minor > 0 else "broken")


def conversion_rate(statuses: Sequence[Status]) -> float | None:
    """Promise-to-payment conversion: kept / promises that reached a verdict (cancelled and
    pending excluded). None when nothing has been judged yet."""
    judged = [s for s in statuses if s in ("kept", "partially_kept", "broken")]
    if not judged:
        return None
    return sum(1 for s in judged if s == "kept") / len(judged)
