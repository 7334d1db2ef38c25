"""The pure allocation and lifecycle rules (services/common/promise_tracking.py)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.promise_tracking import (
    FINAL,
    STATUSES,
    IllegalTransition,
    OpenPromise,
    allocate,
    conversion_rate,
    is_overdue,
    status_after_payment,
    status_at_deadline,
    transition,
)

D = date(2026, 12, 1)


def test_earliest_due_first_then_the_rest_unallocated() -> None:
    later = OpenPromise(key=1, amount_minor=5000, paid_minor=0, due_date=D + timedelta(days=5))
    sooner = OpenPromise(key=2, amount_minor=3000, paid_minor=1000, due_date=D)
    result = allocate(4000, [later, sooner])
    assert result.parts == ((2, 2000), (1, 2000))
    assert result.unallocated == 0
    assert allocate(9000, [later, sooner]).parts == ((2, 2000), (1, 5000))
    assert allocate(9000, [later, sooner]).unallocated == 2000


def test_grace_period_boundary() -> None:
    # Due Dec 1 with 3 days of grace: Dec 4 is still in time, Dec 5 is overdue.
    assert not is_overdue(D, 3, D + timedelta(days=3))
    assert is_overdue(D, 3, D + timedelta(days=4))
    assert not is_overdue(D, 0, D)
    assert is_overdue(D, 0, D + timedelta(days=1))


def test_deadline_verdicts() -> None:
    assert status_at_deadline("pending", 1000, 0) == "broken"
    assert status_at_deadline("pending", 1000, 1) == "partially_kept"
    assert status_at_deadline("pending", 1000, 1000) == "kept"
    assert status_at_deadline("cancelled", 1000, 0) == "cancelled"


def test_final_statuses_never_move() -> None:
    for final in FINAL:
        for target in STATUSES:
            with pytest.raises(IllegalTransition):
                transition(final, target)
    with pytest.raises(IllegalTransition):
        transition("pending", "pending")


def test_conversion_rate_counts_judged_promises_only() -> None:
    assert conversion_rate(["pending", "cancelled"]) is None
    assert conversion_rate(["kept", "broken", "partially_kept", "pending", "cancelled"]) == 1 / 3


promises = st.lists(
    st.builds(
        lambda key, amount, paid_share, days: OpenPromise(
            key=key,
            amount_minor=amount,
            paid_minor=amount * paid_share // 100,
            due_date=D + timedelta(days=days),
        ),
        st.integers(0, 10_000),
        st.integers(1, 10**12),
        st.integers(0, 100),
        st.integers(-30, 30),
    ),
    max_size=8,
    unique_by=lambda p: p.key,
)


@given(st.integers(0, 10**13), promises)
def test_allocation_never_creates_or_loses_money(
    amount: int, open_promises: list[OpenPromise]
) -> None:
    result = allocate(amount, open_promises)
    assert sum(part for _, part in result.parts) + result.unallocated == amount
    by_key = {p.key: p for p in open_promises}
    assert len({k for k, _ in result.parts}) == len(result.parts)
    for key, part in result.parts:
        assert 0 < part <= by_key[key].outstanding  # nobody is paid beyond the promise
    # Money is left over only when every promise is fully paid.
    if result.unallocated:
        assert sum(p.outstanding for p in open_promises) == amount - result.unallocated


@given(st.integers(1, 10**13), promises)
def test_earlier_due_promise_is_filled_before_a_later_one_gets_anything(
    amount: int, open_promises: list[OpenPromise]
) -> None:
    parts = dict(allocate(amount, open_promises).parts)
    ordered = sorted(open_promises, key=lambda p: (p.due_date, p.key))
    for i, earlier in enumerate(ordered):
        for later in ordered[i + 1 :]:
            if parts.get(later.key):
                assert parts.get(earlier.key, 0) == earlier.outstanding


@given(
    st.sampled_from(STATUSES),
    st.integers(1, 10**9),
    st.integers(0, 10**9),
)
def test_statuses_follow_the_lifecycle(current, amount: int, paid: int) -> None:  # type: ignore[no-untyped-def]
    paid = min(paid, amount)
    for new in (
        status_after_payment(current, amount, paid),
        status_at_deadline(current, amount, paid),
    ):
        assert new == current or (current == "pending" and new in FINAL)
    if current == "pending":
        assert (status_after_payment(current, amount, paid) == "kept") == (paid >= amount)
        verdict = status_at_deadline(current, amount, paid)
        assert verdict == ("kept" if paid == amount else "partially_kept" if paid else "broken")
