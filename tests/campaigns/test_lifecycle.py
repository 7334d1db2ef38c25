"""The campaign lifecycle and pacing core (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common import campaign_lifecycle as lc
from services.common.models.campaigns import CAMPAIGN_ITEM_STATUSES, CAMPAIGN_STATUSES

ACTIONS: tuple[lc.Action, ...] = ("start", "pause", "resume", "cancel", "complete")


def test_allowed_transitions() -> None:
    table = {
        (status, action): _try(status, action) for status in CAMPAIGN_STATUSES for action in ACTIONS
    }
    assert {k: v for k, v in table.items() if v is not None} == {
        ("draft", "start"): "running",
        ("draft", "cancel"): "cancelled",
        ("running", "pause"): "paused",
        ("running", "cancel"): "cancelled",
        ("running", "complete"): "completed",
        ("paused", "resume"): "running",
        ("paused", "cancel"): "cancelled",
    }


def _try(status: str, action: lc.Action) -> str | None:
    try:
        return lc.next_status(status, action)
    except lc.IllegalTransition as exc:
        assert exc.status == status and action in str(exc)
        return None


def test_final_statuses_allow_nothing() -> None:
    for status in ("completed", "cancelled"):
        assert lc.allowed_actions(status) == ()
        assert not lc.accepts_debtors(status)
        assert not lc.editable(status)
    assert lc.editable("draft") and lc.editable("paused") and not lc.editable("running")
    assert lc.accepts_debtors("running")


@pytest.mark.parametrize(
    ("max_concurrent", "per_minute", "live", "recent", "expected"),
    [
        (5, 20, 0, 0, 5),  # concurrency binds
        (5, 3, 0, 0, 3),  # rate binds
        (5, 20, 4, 0, 1),
        (5, 20, 5, 0, 0),
        (5, 20, 0, 20, 0),
        (5, 20, 7, 0, 0),  # a lowered limit waits, never negative
        (5, 20, 2, 18, 2),
    ],
)
def test_releasable(
    max_concurrent: int, per_minute: int, live: int, recent: int, expected: int
) -> None:
    pacing = lc.Pacing(max_concurrent, per_minute)
    assert lc.releasable(pacing, live=live, released_last_minute=recent) == expected


@given(
    st.integers(1, 50),
    st.integers(1, 50),
    st.integers(0, 60),
    st.integers(0, 60),
)
def test_releasing_what_is_allowed_never_exceeds_either_limit(
    max_concurrent: int, per_minute: int, live: int, recent: int
) -> None:
    n = lc.releasable(lc.Pacing(max_concurrent, per_minute), live=live, released_last_minute=recent)
    assert n >= 0
    if n:
        assert live + n <= max_concurrent
        assert recent + n <= per_minute


def test_item_status_follows_the_call() -> None:
    assert lc.item_status_for_call("queued", placed=False) == "scheduled"
    for live in ("dispatched", "dialing", "ringing", "in_progress"):
        assert lc.item_status_for_call(live, placed=True) == "in_progress"
    for ended in ("completed", "busy", "no_answer", "failed"):
        assert lc.item_status_for_call(ended, placed=True) == "done"
    assert lc.item_status_for_call("canceled", placed=False) == "skipped"
    assert lc.item_status_for_call("failed", placed=False) == "skipped"
    with pytest.raises(ValueError):
        lc.item_status_for_call("exploded", placed=True)


def test_completion() -> None:
    none = dict.fromkeys(CAMPAIGN_ITEM_STATUSES, 0)
    assert not lc.should_complete("running", none)  # nothing to finish: never started
    assert lc.should_complete("running", {**none, "done": 3, "skipped": 1, "cancelled": 2})
    for unfinished in ("pending", "scheduled", "in_progress"):
        assert not lc.should_complete("running", {**none, "done": 3, unfinished: 1})
    assert not lc.should_complete("paused", {**none, "done": 3})
