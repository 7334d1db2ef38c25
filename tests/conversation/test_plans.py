"""Payment plans against the negotiation rules (conversation/plans.py): the refusal reasons in
the contract's order, and properties of every counter-offer and smallest plan."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generated.call_step_reason import CallStepReason as R
from generated.negotiation_rules import NegotiationRules
from services.common.negotiation import DEFAULT_RULES
from services.voice_orchestrator.conversation.enums import DelinquencyStage
from services.voice_orchestrator.conversation.plans import (
    Installment,
    Plan,
    check_plan,
    counter_offer,
    latest_first_date,
    latest_last_date,
    min_first_payment,
    single_counter,
    smallest_plan,
)

TODAY = dt.date(2026, 11, 27)
EARLY = DEFAULT_RULES[DelinquencyStage.EARLY]  # 10% first, 14 days, 6 payments, 180 days
LATE = DEFAULT_RULES[DelinquencyStage.LATE]  # 10% first, 7 days, 12 payments, 365 days


def rules(**changes: object) -> NegotiationRules:
    return NegotiationRules.model_validate({**EARLY.model_dump(), **changes})


def plan(*items: tuple[int, int], settlement: bool = False) -> Plan:
    """(amount, days from TODAY) pairs."""
    return Plan(tuple(Installment(a, TODAY + dt.timedelta(days=d)) for a, d in items), settlement)


def test_min_first_payment_is_the_larger_floor_capped_at_the_balance() -> None:
    assert min_first_payment(EARLY, 45000) == 4500
    assert min_first_payment(rules(min_first_payment_minor=6000), 45000) == 6000
    assert min_first_payment(rules(min_first_payment_bp=3333), 100) == 34  # rounded up
    assert min_first_payment(rules(min_first_payment_minor=99999), 45000) == 45000
    assert min_first_payment(DEFAULT_RULES[DelinquencyStage.PRE_DELINQUENCY], 45000) == 0


@pytest.mark.parametrize(
    ("r", "proposal", "reason"),
    [
        (EARLY, plan((15000, 1), (15000, 30), (15000, 60)), None),
        (EARLY, plan((15000, 30), (15000, 1), (15000, 60)), R.INSTALLMENTS_OUT_OF_ORDER),
        (EARLY, plan((15000, 1), (15000, 1), (15000, 60)), R.INSTALLMENTS_OUT_OF_ORDER),
        (EARLY, plan((15000, -1), (15000, 30), (15000, 60)), R.DATE_IN_PAST),
        (EARLY, plan(*((5000, d) for d in range(1, 10))), R.TOO_MANY_INSTALLMENTS),
        (EARLY, plan((4000, 1), (20500, 30), (20500, 60)), R.FIRST_PAYMENT_TOO_SMALL),
        (EARLY, plan((4500, 0), (20250, 30), (20250, 60)), None),  # at the floor, today
        (EARLY, plan((15000, 15), (15000, 30), (15000, 60)), R.FIRST_PAYMENT_TOO_LATE),
        (EARLY, plan((15000, 14), (15000, 30), (15000, 60)), None),
        (EARLY, plan((15000, 1), (15000, 30), (15000, 181)), R.PLAN_TOO_LONG),
        (EARLY, plan((15000, 1), (15000, 30), settlement=True), R.SETTLEMENT_NOT_OFFERED),
        (
            rules(settlement_floor_bp=7000),
            plan((15000, 1), (15000, 30), settlement=True),
            R.SETTLEMENT_BELOW_FLOOR,
        ),
        (rules(settlement_floor_bp=7000), plan((15750, 1), (15750, 30), settlement=True), None),
        (EARLY, plan((15000, 1), (15000, 30)), R.PLAN_TOTAL_SHORT),
        (EARLY, plan((15000, 1), (15000, 30), (15001, 60)), R.PLAN_TOTAL_ABOVE_BALANCE),
        (
            rules(settlement_floor_bp=7000),
            plan((30000, 1), (15001, 30), settlement=True),
            R.PLAN_TOTAL_ABOVE_BALANCE,
        ),
        (rules(max_installments=1), plan((45000, 3)), None),
        (rules(max_installments=1), plan((22500, 3), (22500, 5)), R.TOO_MANY_INSTALLMENTS),
    ],
)
def test_refusal_reasons(r: NegotiationRules, proposal: Plan, reason: R | None) -> None:
    assert check_plan(r, 45000, TODAY, proposal) is reason


def test_the_first_failing_check_wins_in_the_contract_order() -> None:
    # Too many, too small a first payment, too late and too long all at once: the count first.
    p = plan((100, 20), *((100, d) for d in range(30, 400, 30)))
    assert check_plan(EARLY, 45000, TODAY, p) is R.TOO_MANY_INSTALLMENTS


def test_counter_offer_keeps_the_count_and_dates_and_resizes_the_amounts() -> None:
    offer = counter_offer(EARLY, 45000, TODAY, plan((10000, 7), (10000, 37), (10000, 67)))
    assert offer == plan((15000, 7), (15000, 37), (15000, 67))


def test_counter_offer_raises_a_small_first_payment_and_shares_out_the_rest() -> None:
    offer = counter_offer(EARLY, 45000, TODAY, plan((1000, 7), (22000, 37), (22000, 67)))
    assert offer == plan((4500, 7), (20250, 37), (20250, 67))


def test_counter_offer_moves_a_late_first_date_and_a_long_plan_in() -> None:
    # Shifted 16 days sooner (first on day 14), then squeezed to end on day 180: 14, 82, 180.
    offer = counter_offer(EARLY, 45000, TODAY, plan((15000, 30), (15000, 100), (15000, 200)))
    assert offer == plan((15000, 14), (15000, 82), (15000, 180))


def test_a_counter_offer_keeps_the_plans_rhythm() -> None:
    """Twelve monthly payments starting in two months, on the late terms (first within 7 days,
    the last within 365): the offer starts within the week and stays about monthly to the end,
    never bunching its last payments on consecutive days."""
    proposal = plan(*((3750, 60 + 30 * i) for i in range(12)))
    offer = counter_offer(LATE, 45000, TODAY, proposal)
    assert offer is not None and check_plan(LATE, 45000, TODAY, offer) is None
    days = [(i.date - TODAY).days for i in offer.installments]
    assert days[0] == 7 and len(days) == 12
    gaps = [b - a for a, b in itertools.pairwise(days)]
    assert min(gaps) >= 29 and max(gaps) <= 31, days


def test_counter_offer_cuts_the_count_to_the_rules() -> None:
    offer = counter_offer(EARLY, 45000, TODAY, plan(*((3750, 30 * i) for i in range(12))))
    assert offer is not None and len(offer.installments) == 6
    assert check_plan(EARLY, 45000, TODAY, offer) is None


def test_counter_offer_for_a_settlement_without_a_floor_is_the_full_balance() -> None:
    offer = counter_offer(EARLY, 45000, TODAY, plan((10000, 1), (10000, 30), settlement=True))
    assert offer == plan((22500, 1), (22500, 30))


def test_counter_offer_for_a_settlement_below_the_floor_is_at_the_floor() -> None:
    r = rules(settlement_floor_bp=7000)
    offer = counter_offer(r, 45000, TODAY, plan((10000, 1), (10000, 30), settlement=True))
    assert offer == plan((15750, 1), (15750, 30), settlement=True)


def test_smallest_plan_for_each_stage_default() -> None:
    early = smallest_plan(EARLY, 45000, TODAY)
    assert early is not None
    assert [i.amount_minor for i in early.installments] == [7500] * 6
    assert early.first.date == TODAY + dt.timedelta(days=14)
    assert early.last.date == TODAY + dt.timedelta(days=180)
    for stage, r in DEFAULT_RULES.items():
        p = smallest_plan(r, 45000, TODAY)
        assert p is not None and len(p.installments) == r.max_installments, stage
        assert check_plan(r, 45000, TODAY, p) is None


def test_smallest_plan_with_a_high_first_floor_puts_the_first_at_its_floor() -> None:
    r = rules(min_first_payment_bp=5000)
    p = smallest_plan(r, 45000, TODAY)
    assert p is not None and p.first.amount_minor == 22500
    assert [i.amount_minor for i in p.installments[1:]] == [4500] * 5


def test_no_plan_for_nothing_owed() -> None:
    assert smallest_plan(EARLY, 0, TODAY) is None
    assert counter_offer(EARLY, 0, TODAY, plan((100, 1))) is None


def test_single_counter_is_raised_to_the_floor_and_moved_into_the_window() -> None:
    assert single_counter(EARLY, 45000, TODAY, 2000, TODAY + dt.timedelta(days=40)) == plan(
        (4500, 14)
    )


# --- properties ----------------------------------------------------------------------------------

rules_st = st.builds(
    NegotiationRules,
    min_first_payment_minor=st.integers(0, 200_000),
    min_first_payment_bp=st.integers(0, 10_000),
    latest_first_payment_days=st.integers(0, 90),
    max_installments=st.integers(1, 36),
    max_plan_days=st.integers(0, 1095),
    settlement_floor_bp=st.none() | st.integers(1, 10_000),
)
balance_st = st.integers(1, 10_000_000)
proposal_st = st.builds(
    Plan,
    st.lists(
        st.builds(
            Installment,
            st.integers(1, 5_000_000),
            st.dates(TODAY - dt.timedelta(days=30), TODAY + dt.timedelta(days=1500)),
        ),
        min_size=1,
        max_size=36,
    ).map(tuple),
    st.booleans(),
)


def inside_rules(r: NegotiationRules, balance: int, p: Plan) -> None:
    assert check_plan(r, balance, TODAY, p) is None, p
    assert 0 < p.total_minor <= balance
    dates = [i.date for i in p.installments]
    assert dates == sorted(set(dates))
    assert TODAY <= dates[0] <= latest_first_date(r, TODAY)
    assert dates[-1] <= latest_last_date(r, TODAY)
    assert all(i.amount_minor > 0 for i in p.installments)


@settings(max_examples=400, deadline=None)
@given(rules_st, balance_st, proposal_st)
def test_every_counter_offer_is_inside_the_rules(
    r: NegotiationRules, balance: int, proposal: Plan
) -> None:
    offer = counter_offer(r, balance, TODAY, proposal)
    assert offer is not None
    inside_rules(r, balance, offer)
    if offer.settlement:
        assert r.settlement_floor_bp is not None and proposal.settlement
    if check_plan(r, balance, TODAY, proposal) is None:
        assert offer.total_minor == proposal.total_minor  # an accepted plan is its own offer


@settings(max_examples=300, deadline=None)
@given(rules_st, balance_st)
def test_the_smallest_plan_is_inside_the_rules_and_covers_the_balance(
    r: NegotiationRules, balance: int
) -> None:
    p = smallest_plan(r, balance, TODAY)
    assert p is not None
    inside_rules(r, balance, p)
    assert p.total_minor == balance and not p.settlement
    # Never fewer installments than the rules and the days allow (lowest per-payment amounts).
    floor = max(1, min_first_payment(r, balance))
    assert len(p.installments) == max(
        1, min(r.max_installments, r.max_plan_days + 1, balance - floor + 1)
    )


@settings(max_examples=300, deadline=None)
@given(rules_st, balance_st, st.integers(1, 5_000_000), st.dates(TODAY, TODAY + dt.timedelta(999)))
def test_a_single_counter_is_a_payment_the_rules_accept(
    r: NegotiationRules, balance: int, amount: int, date: dt.date
) -> None:
    p = single_counter(r, balance, TODAY, amount, date)
    (only,) = p.installments
    assert min_first_payment(r, balance) <= only.amount_minor <= balance
    assert TODAY <= only.date <= latest_first_date(r, TODAY)


def test_the_reply_limit_holds_the_longest_plan_the_terms_allow() -> None:
    """A record_payment_plan call with 36 installments (the schema's and the terms' maximum),
    counted as the simulated model counts (about 4 characters a token), fits the model's reply
    limit with room for the reasoning tokens of `minimal` effort: cut at the limit, the call
    would be lost and the debtor would hear nothing."""
    import json

    from services.common.settings import Settings
    from simulators.openai.tokens import count_tokens

    args = {
        "installments": [
            {"amount_minor": 1_250_000 + i, "date": (TODAY + dt.timedelta(days=30 * i)).isoformat()}
            for i in range(36)
        ],
        "currency": "USD",
        "settlement": False,
    }
    needed = count_tokens("record_payment_plan") + count_tokens(json.dumps(args))
    assert needed * 1.5 < Settings().openai_max_completion_tokens, needed
