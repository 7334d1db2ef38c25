"""Payment plans in words: a plan the debtor proposes, and an offer put back to them.

``parse_plan`` reads a proposal such as "three payments of 150 dollars, one a month, starting in
two months", "I could pay 25 dollars a month for 18 months, starting Friday", "50 dollars every
two weeks" or "10 payments of 45 dollars, one every two months": a number of payments and/or an
amount each, a period (monthly unless weeks or two months are named) and a start day. The
installments cover the balance: a missing count is the balance over the amount (the last
payment takes the rest), a missing amount the balance over the count. ``spoken_offer`` says a
plan the way a collector would: how many payments, how much, the first and the last day, and
the total.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

from simulators.openai.facts import Facts, Installment, Offer
from simulators.openai.parsing import (
    _add_months,
    _number,
    parse_amount_minor,
    parse_date,
    spoken_date,
    spoken_money,
)

MAX_INSTALLMENTS = 36  # what record_payment_plan accepts at all (its schema)

_COUNT_WORD = (
    r"(\d+|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"thirteen|fourteen|fifteen|sixteen|eighteen|twenty|twenty[- ]four|thirty|thirty[- ]six)"
)
_COUNT_RE = re.compile(
    rf"\b{_COUNT_WORD}\s+(?:monthly |weekly |equal |small )?(?:payments|installments)\b"
)
_FOR_RE = re.compile(rf"\bfor\s+{_COUNT_WORD}\s+(months|weeks)\b")
_TWO_MONTHS_RE = re.compile(r"\bevery (?:two|2|other) months?\b|\bbimonthly\b|\bbi-monthly\b")
_BIWEEKLY_RE = re.compile(
    r"\b(?:every (?:two|2|other) weeks?|biweekly|bi-weekly|fortnight(?:ly)?)\b"
)
_WEEKLY_RE = re.compile(r"\b(?:a|per|each|every) week\b|\bweekly\b")
_MONTHLY_RE = re.compile(r"\b(?:a|per|each|every) month\b|\bmonthly\b|\bone a month\b")
_START_RE = re.compile(r"\b(?:starting|start|beginning|from|the first (?:one|payment)?)\b(.*)")


@dataclass(frozen=True, slots=True)
class Proposal:
    """What the debtor said about a plan; ``start`` None: they named no first day yet."""

    count: int | None
    amount_minor: int | None
    period: str  # "month" | "two_months" | "week" | "two_weeks"
    start: date | None

    def plan(self, balance_minor: int, start: date) -> Offer | None:
        """The installments, covering the balance, or None when they cannot be built."""
        if balance_minor <= 0:
            return None
        amount, count = self.amount_minor, self.count
        if count is None and amount:
            count = -(-balance_minor // amount)
        if count is None or count < 1 or count > MAX_INSTALLMENTS:
            return None
        if amount is None or amount * count < balance_minor:
            # Equal parts; the last takes the cents that do not divide.
            amount = balance_minor // count
        amounts = [amount] * (count - 1) + [balance_minor - amount * (count - 1)]
        if amounts[-1] <= 0:
            return None
        days = [_step(start, self.period, k) for k in range(count)]
        return Offer(tuple(Installment(a, d) for a, d in zip(amounts, days, strict=True)))


def _step(start: date, period: str, k: int) -> date:
    if period == "week":
        return start + timedelta(days=7 * k)
    if period == "two_weeks":
        return start + timedelta(days=14 * k)
    if period == "two_months":
        return _add_months(start, 2 * k)
    return _add_months(start, k)


def parse_plan(text: str, today: date, balance_minor: int) -> Proposal | None:
    """A plan proposal in one debtor turn, or None (a single payment is not a plan)."""
    t = " ".join(text.lower().replace("’", "'").split())
    count: int | None = None
    period: str | None = None
    if m := _COUNT_RE.search(t):
        count = _number(m.group(1).replace("-", " "))
    if m := _FOR_RE.search(t):
        count = count or _number(m.group(1).replace("-", " "))
        period = "week" if m.group(2) == "weeks" else "month"
    if _TWO_MONTHS_RE.search(t):
        period = "two_months"
    elif _BIWEEKLY_RE.search(t):
        period = "two_weeks"
    elif _WEEKLY_RE.search(t) and period is None:
        period = "week"
    elif _MONTHLY_RE.search(t) and period is None:
        period = "month"
    if count is None and period is None:
        return None
    amount = parse_amount_minor(t, None)
    if count is None and amount is None:
        return None
    if count is not None and count < 2:
        return None
    start_text = m.group(1) if (m := _START_RE.search(t)) else ""
    start = parse_date(start_text, today) if start_text else None
    return Proposal(count, amount, period or "month", start)


def spoken_offer(offer: Offer, facts: Facts) -> str:
    """The plan in a sentence: "three payments of 150 dollars, the first on Friday, December 4
    and the last on Monday, February 1, 450 dollars in total"."""
    items = offer.installments
    today, cur = facts.today, facts.currency

    def money(minor: int) -> str:
        return spoken_money(minor, cur)

    def day(d: date) -> str:
        return spoken_date(d, today)

    n = len(items)
    first, last = items[0], items[-1]
    if n == 1:
        text = f"one payment of {money(first.amount_minor)} {day(first.day)}"
    elif len({i.amount_minor for i in items}) == 1:
        text = (
            f"{n} payments of {money(first.amount_minor)}, the first {day(first.day)} "
            f"and the last {day(last.day)}"
        )
    elif len({i.amount_minor for i in items[1:]}) == 1:
        text = (
            f"a first payment of {money(first.amount_minor)} {day(first.day)}, then "
            f"{_count(n - 1)} of {money(items[1].amount_minor)}, the last {day(last.day)}"
        )
    elif len({i.amount_minor for i in items[:-1]}) == 1:
        text = (
            f"{_count(n - 1)} of {money(first.amount_minor)} starting {day(first.day)}, "
            f"and a last payment of {money(last.amount_minor)} {day(last.day)}"
        )
    elif n > 3:  # uneven cents: the usual amount, as a collector would round it in speech
        usual = Counter(i.amount_minor for i in items[1:]).most_common(1)[0][0]
        text = (
            f"a first payment of {money(first.amount_minor)} {day(first.day)}, then "
            f"{_count(n - 1)} of about {money(usual)}, the last {day(last.day)}"
        )
    else:
        text = ", ".join(f"{money(i.amount_minor)} {day(i.day)}" for i in items)
    total = f"{money(offer.total_minor)} in total"
    if offer.settlement:
        total += ", and that would settle the account in full"
    return f"{text}, {total}"


def _count(n: int) -> str:
    return "one more payment" if n == 1 else f"{n} payments"
