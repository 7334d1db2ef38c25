"""Payment plans against the client's negotiation rules: the check, the counter-offer, the
smallest plan. Pure: the rules, the balance and the debtor's local "today" in, values out.

A plan is a list of (amount, date) installments that covers the whole balance, or, when the
client set a settlement floor, at least that share of it as payment in full. A refused plan
gets a reason (a generated `CallStepReason`) and a counter-offer: a concrete plan inside the
rules, as close to the proposal as the rules allow, so the model negotiates from a plan it can
offer, never from the raw limits (docs/conversation.md, "Payment plans").
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any

from generated.negotiation_rules import NegotiationRules

from .enums import CallStepReason

R = CallStepReason
_BP = 10_000


@dataclass(frozen=True)
class Installment:
    amount_minor: int
    date: dt.date


@dataclass(frozen=True)
class Plan:
    """Installments in date order; `settlement`: the total is accepted as payment in full."""

    installments: tuple[Installment, ...]
    settlement: bool = False

    @property
    def total_minor(self) -> int:
        return sum(i.amount_minor for i in self.installments)

    @property
    def first(self) -> Installment:
        return self.installments[0]

    @property
    def last(self) -> Installment:
        return self.installments[-1]

    def as_offer(self) -> dict[str, Any]:
        """The `offer` of a tool result (docs/internal-contracts.md)."""
        return {
            "installments": [
                {"amount_minor": i.amount_minor, "date": i.date.isoformat()}
                for i in self.installments
            ],
            "settlement": self.settlement,
        }


def _ceil_bp(amount: int, bp: int) -> int:
    return -(-amount * bp // _BP)


def min_first_payment(rules: NegotiationRules, balance_minor: int) -> int:
    """The smallest first (or only) payment: the larger of the floor by amount and by share,
    capped at the balance."""
    floor = max(rules.min_first_payment_minor, _ceil_bp(balance_minor, rules.min_first_payment_bp))
    return min(balance_minor, floor)


def latest_first_date(rules: NegotiationRules, today: dt.date) -> dt.date:
    return today + dt.timedelta(days=rules.latest_first_payment_days)


def latest_last_date(rules: NegotiationRules, today: dt.date) -> dt.date:
    return today + dt.timedelta(days=rules.max_plan_days)


def settlement_floor_minor(rules: NegotiationRules, balance_minor: int) -> int | None:
    if rules.settlement_floor_bp is None:
        return None
    return _ceil_bp(balance_minor, rules.settlement_floor_bp)


def check_plan(rules: NegotiationRules, balance_minor: int, today: dt.date, plan: Plan) -> R | None:
    """Why `plan` is refused (None: it is inside the rules). The currency is the caller's
    check (the first in the contract's order). Order: dates in order, none in the past, count,
    first payment's size and date, length, settlement, total."""
    items = plan.installments
    if not items or any(i.amount_minor <= 0 for i in items):
        return R.INVALID_ARGUMENTS  # the tool schema already refuses both
    if any(b.date <= a.date for a, b in itertools.pairwise(items)):
        return R.INSTALLMENTS_OUT_OF_ORDER
    if items[0].date < today:
        return R.DATE_IN_PAST
    if len(items) > rules.max_installments:
        return R.TOO_MANY_INSTALLMENTS
    if items[0].amount_minor < min_first_payment(rules, balance_minor):
        return R.FIRST_PAYMENT_TOO_SMALL
    if items[0].date > latest_first_date(rules, today):
        return R.FIRST_PAYMENT_TOO_LATE
    if items[-1].date > latest_last_date(rules, today):
        return R.PLAN_TOO_LONG
    total = plan.total_minor
    if plan.settlement:
        floor = settlement_floor_minor(rules, balance_minor)
        if floor is None:
            return R.SETTLEMENT_NOT_OFFERED
        if total < floor:
            return R.SETTLEMENT_BELOW_FLOOR
    elif total < balance_minor:
        return R.PLAN_TOTAL_SHORT
    if total > balance_minor:
        return R.PLAN_TOTAL_ABOVE_BALANCE
    return None


# --- building plans inside the rules -----------------------------------------------------------


def _first_floor(rules: NegotiationRules, balance_minor: int) -> int:
    return max(1, min_first_payment(rules, balance_minor))  # a payment is never zero


def _max_count(rules: NegotiationRules, total: int, first_floor: int) -> int:
    """How many installments fit: the rules' count, one date per day of the plan, and at
    least a cent for each installment after a first one at its floor."""
    return max(1, min(rules.max_installments, rules.max_plan_days + 1, total - first_floor + 1))


def _spread(first: dt.date, last: dt.date, n: int) -> list[dt.date]:
    if n == 1:
        return [first]
    span = max((last - first).days, n - 1)
    return [first + dt.timedelta(days=i * span // (n - 1)) for i in range(n)]


def _fit_dates(
    dates: list[dt.date], rules: NegotiationRules, today: dt.date
) -> tuple[dt.date, ...]:
    """`dates` moved into the rules keeping their rhythm: the whole schedule shifted so the
    first falls between today and its latest date, then, if it still ends too late, squeezed
    evenly toward the first date (a plan with its last payments on consecutive days is no
    offer a debtor can keep); each later than the one before."""
    last_allowed = latest_last_date(rules, today)
    first_allowed = min(latest_first_date(rules, today), last_allowed)
    first = min(max(dates[0], today), first_allowed)
    out = [d + (first - dates[0]) for d in dates]
    if len(out) > 1 and out[-1] > last_allowed:
        span, room = (out[-1] - first).days, (last_allowed - first).days
        out = [first + dt.timedelta(days=(d - first).days * room // span) for d in out]
    for i in range(1, len(out)):
        out[i] = max(out[i], out[i - 1] + dt.timedelta(days=1))
    out[-1] = min(out[-1], last_allowed)
    for i in range(len(out) - 2, -1, -1):
        out[i] = min(out[i], out[i + 1] - dt.timedelta(days=1))
    return tuple(out)


def _fit_amounts(amounts: list[int], total: int, first_floor: int) -> list[int]:
    """`amounts` (summing to `total`) with a first below its floor raised to it and the rest
    shared equally by the later installments."""
    if amounts[0] >= first_floor:
        return list(amounts)
    if len(amounts) == 1:
        return [total]
    return [first_floor, *_even(total - first_floor, len(amounts) - 1)]


def _even(total: int, n: int) -> list[int]:
    """Equal installments; the first carries the odd cents."""
    base, rest = divmod(total, n)
    return [base + rest] + [base] * (n - 1)


def _build(
    rules: NegotiationRules,
    balance_minor: int,
    today: dt.date,
    *,
    total: int,
    settlement: bool,
    count: int,
    dates: list[dt.date],
    amounts: list[int] | None,
) -> Plan:
    first_floor = min(_first_floor(rules, balance_minor), total)
    n = max(1, min(count, _max_count(rules, total, first_floor)))
    if len(dates) != n:
        dates = _spread(dates[0], dates[-1], n)
    if amounts is None or len(amounts) != n or sum(amounts) != total:
        amounts = _even(total, n)
    amounts = _fit_amounts(amounts, total, first_floor)
    fitted = _fit_dates(dates, rules, today)
    return Plan(tuple(Installment(a, d) for a, d in zip(amounts, fitted, strict=True)), settlement)


def counter_offer(
    rules: NegotiationRules, balance_minor: int, today: dt.date, proposal: Plan
) -> Plan | None:
    """The plan inside the rules closest to `proposal`: the same number of payments when the
    rules allow it, its dates moved the least, its amounts kept when they add up and resized
    otherwise; a settlement only where the client offers one, at the floor at the lowest.
    None when there is nothing to pay."""
    if balance_minor <= 0 or not proposal.installments:
        return None
    floor = settlement_floor_minor(rules, balance_minor)
    settlement = proposal.settlement and floor is not None
    if settlement and floor is not None:
        lowest = max(floor, _first_floor(rules, balance_minor), 1)
        total = min(max(proposal.total_minor, lowest), balance_minor)
    else:
        total = balance_minor
    dates = sorted({i.date for i in proposal.installments})
    ordered = len(dates) == len(proposal.installments)
    return _build(
        rules,
        balance_minor,
        today,
        total=total,
        settlement=settlement and total < balance_minor,
        count=len(proposal.installments),
        dates=dates if ordered else _spread(dates[0], dates[-1], len(proposal.installments)),
        amounts=[i.amount_minor for i in proposal.installments] if ordered else None,
    )


def smallest_plan(rules: NegotiationRules, balance_minor: int, today: dt.date) -> Plan | None:
    """The plan with the lowest payments the rules allow, for a debtor in hardship: as many
    installments as allowed, equal, spread to the plan's latest date, the first on its latest
    date (sooner when the installments need the days) and never below its floor."""
    if balance_minor <= 0:
        return None
    last = latest_last_date(rules, today)
    first = min(latest_first_date(rules, today), last)
    return _build(
        rules,
        balance_minor,
        today,
        total=balance_minor,
        settlement=False,
        count=rules.max_installments,
        dates=[first, last],
        amounts=None,
    )


def single_counter(
    rules: NegotiationRules, balance_minor: int, today: dt.date, amount_minor: int, date: dt.date
) -> Plan:
    """For a refused single promise: the same payment, raised to the first payment's floor and
    moved into its window."""
    amount = min(max(amount_minor, _first_floor(rules, balance_minor)), balance_minor)
    latest = latest_first_date(rules, today)
    return Plan((Installment(amount, min(max(date, today), latest)),))


# What the model hears for each refusal: words it may use with the debtor, never a limit.
REASON_WORDS: dict[R, str] = {
    R.CURRENCY_MISMATCH: "Use the account's currency.",
    R.INSTALLMENTS_OUT_OF_ORDER: "The payment dates must be in order, each after the one before.",
    R.DATE_IN_PAST: "A payment date is in the past.",
    R.TOO_MANY_INSTALLMENTS: "That is more payments than can be set up; it needs fewer payments.",
    R.FIRST_PAYMENT_TOO_SMALL: "The first payment needs to be a bit larger.",
    R.FIRST_PAYMENT_TOO_LATE: "The first payment needs to come sooner.",
    R.PLAN_TOO_LONG: "The plan needs to finish sooner.",
    R.SETTLEMENT_NOT_OFFERED: (
        "A reduced payoff is not available on this account: the payments need to cover the "
        "full balance."
    ),
    R.SETTLEMENT_BELOW_FLOOR: "That reduced payoff is too low; it would need to be larger.",
    R.PLAN_TOTAL_SHORT: (
        "The payments add up to less than the balance; together they must cover it."
    ),
    R.PLAN_TOTAL_ABOVE_BALANCE: "The payments add up to more than the balance.",
    R.AMOUNT_ABOVE_BALANCE: "That is more than the balance.",
}
