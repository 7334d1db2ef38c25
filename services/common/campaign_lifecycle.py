"""Campaign lifecycle and pacing: pure, no I/O (the Client API and the Call Scheduler ask it).

Statuses: draft -> running <-> paused; draft, running or paused -> cancelled (an operator);
running -> completed (the scheduler, when every item is finished). completed and cancelled are
final. Pacing: at most `max_concurrent_calls` of a campaign's calls queued or live at once, at
most `calls_per_minute` items released in any rolling minute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

Action = Literal["start", "pause", "resume", "cancel", "complete"]

# action -> (the statuses it may be taken from, the status it leads to)
TRANSITIONS: dict[Action, tuple[frozenset[str], str]] = {
    "start": (frozenset({"draft"}), "running"),
    "pause": (frozenset({"running"}), "paused"),
    "resume": (frozenset({"paused"}), "running"),
    "cancel": (frozenset({"draft", "running", "paused"}), "cancelled"),
    "complete": (frozenset({"running"}), "completed"),
}
FINAL_STATUSES = frozenset({"completed", "cancelled"})
EDITABLE_STATUSES = frozenset({"draft", "paused"})
PACING_WINDOW = timedelta(minutes=1)


class IllegalTransition(ValueError):
    def __init__(self, status: str, action: Action) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[action][0]))
        super().__init__(f"a {status} campaign cannot {action}; only from: {allowed}")
        self.status = status
        self.action = action


def next_status(status: str, action: Action) -> str:
    """The status after `action`, or IllegalTransition."""
    sources, target = TRANSITIONS[action]
    if status not in sources:
        raise IllegalTransition(status, action)
    return target


def allowed_actions(status: str) -> tuple[Action, ...]:
    return tuple(a for a, (sources, _) in TRANSITIONS.items() if status in sources)


def editable(status: str) -> bool:
    """Settings (name, stage, pacing, prompt variants, metadata) change only while not calling."""
    return status in EDITABLE_STATUSES


def accepts_debtors(status: str) -> bool:
    return status not in FINAL_STATUSES


@dataclass(frozen=True)
class Pacing:
    max_concurrent_calls: int
    calls_per_minute: int


def releasable(pacing: Pacing, *, live: int, released_last_minute: int) -> int:
    """How many pending items may be released now: the room under both limits.

    `live`: the campaign's calls queued or in progress; `released_last_minute`: items released
    within the last PACING_WINDOW. Never negative (a lowered limit just waits)."""
    room = min(pacing.max_concurrent_calls - live, pacing.calls_per_minute - released_last_minute)
    return max(room, 0)


# The item status that mirrors its call's status (the call exists once the item is released).
LIVE_CALL_STATUSES = frozenset({"dispatched", "dialing", "ringing", "in_progress"})
ENDED_CALL_STATUSES = frozenset({"completed", "busy", "no_answer", "failed", "canceled"})


def item_status_for_call(call_status: str, placed: bool) -> str:
    """`placed`: the call was dispatched (dialing was attempted). An ended call that never was
    is `skipped` (a hold, the rules, another live call); one that was is `done`."""
    if call_status == "queued":
        return "scheduled"
    if call_status in LIVE_CALL_STATUSES:
        return "in_progress"
    if call_status in ENDED_CALL_STATUSES:
        return "done" if placed else "skipped"
    raise ValueError(f"unknown call status {call_status!r}")


UNFINISHED_ITEM_STATUSES = frozenset({"pending", "scheduled", "in_progress"})


def finished(counts: Mapping[str, int]) -> bool:
    """Every item is done, skipped or cancelled (counts: item status -> number)."""
    return all(counts.get(s, 0) == 0 for s in UNFINISHED_ITEM_STATUSES)


def should_complete(status: str, counts: Mapping[str, int]) -> bool:
    """A running campaign completes when its last item finished (an empty one never starts)."""
    return status == "running" and sum(counts.values()) > 0 and finished(counts)
