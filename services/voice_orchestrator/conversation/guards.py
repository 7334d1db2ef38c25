"""The checks a proposed move's arguments must pass against the call facts and the limits.
Pure: each returns the accepted value or raises `Refused` with what the model should hear."""

from __future__ import annotations

import datetime as dt

from .enums import CallStepReason
from .facts import CallFacts
from .machine import ConversationLimits
from .plans import (
    REASON_WORDS,
    Installment,
    Plan,
    check_plan,
    counter_offer,
    min_first_payment,
    single_counter,
)
from .records import PromiseTooLate, Refused
from .speech import spoken_amount, spoken_date
from .tools import RecordPaymentPlanArgs, RecordPaymentPromiseArgs, ScheduleCallbackArgs

MAX_REASON_CHARS = 500


def check_promise(args: RecordPaymentPromiseArgs, f: CallFacts, now: dt.datetime) -> None:
    if args.currency != f.currency:
        raise Refused(
            f"Currency must be {f.currency}, the account's currency.",
            CallStepReason.CURRENCY_MISMATCH,
        )
    if args.amount_minor > f.balance_minor:
        raise Refused(
            f"Amount {args.amount_minor} is above the balance of {f.balance_minor} "
            f"({spoken_amount(f.balance_minor, f.currency)}).",
            CallStepReason.AMOUNT_ABOVE_BALANCE,
        )
    today = f.local_today(now)
    latest = f.latest_promise_date(now)
    if args.amount_minor < min_first_payment(f.rules, f.balance_minor):
        offer = single_counter(f.rules, f.balance_minor, today, args.amount_minor, args.date)
        raise Refused(
            f"{REASON_WORDS[CallStepReason.FIRST_PAYMENT_TOO_SMALL]} {OFFER_HINT}",
            CallStepReason.FIRST_PAYMENT_TOO_SMALL,
            offer,
        )
    if args.date < today:
        raise Refused(
            f"Date {args.date.isoformat()} is in the past; today is {today}.",
            CallStepReason.DATE_IN_PAST,
        )
    if args.date > latest:
        raise PromiseTooLate(
            f"Date {args.date.isoformat()} is too far out: the latest allowed date for this "
            f"account is {latest.isoformat()} ({spoken_date(latest, today=today)}).",
            latest,
        )


# Said with every counter-offer: the model proposes it in its own words, never the rules.
OFFER_HINT = (
    "The offer in this result is a plan that works: suggest it in your own words as an "
    "option (amounts and dates as words), not as a rule. If the debtor agrees, record exactly "
    "it; if not, ask what they can do."
)


def plan_of(args: RecordPaymentPlanArgs) -> Plan:
    return Plan(
        tuple(Installment(i.amount_minor, i.date) for i in args.installments), args.settlement
    )


def check_payment_plan(args: RecordPaymentPlanArgs, f: CallFacts, now: dt.datetime) -> Plan:
    """The plan as accepted, or `Refused` with the reason and the closest plan that works."""
    plan = plan_of(args)
    today = f.local_today(now)
    if args.currency != f.currency:
        reason: CallStepReason | None = CallStepReason.CURRENCY_MISMATCH
        words = f"Currency must be {f.currency}, the account's currency."
    else:
        reason = check_plan(f.rules, f.balance_minor, today, plan)
        words = REASON_WORDS.get(reason, "") if reason is not None else ""
    if reason is None:
        return plan
    offer = counter_offer(f.rules, f.balance_minor, today, plan)
    raise Refused(f"{words} {OFFER_HINT}" if offer else words, reason, offer)


def check_callback(
    args: ScheduleCallbackArgs, f: CallFacts, now: dt.datetime, lim: ConversationLimits
) -> tuple[dt.datetime, str]:
    """The callback time in the debtor's zone, and the reason as kept."""
    reason = args.reason.strip()[:MAX_REASON_CHARS]
    if not reason:
        raise Refused(
            "Give a short reason for the callback.", CallStepReason.CALLBACK_REASON_MISSING
        )
    if args.when <= now:
        local_now = now.astimezone(f.tz).isoformat(timespec="minutes")
        raise Refused(
            f"The callback time must be in the future; now is {local_now}.",
            CallStepReason.CALLBACK_IN_PAST,
        )
    if args.when > now + dt.timedelta(days=lim.callback_horizon_days):
        raise Refused(
            f"The callback must be within {lim.callback_horizon_days} days from now.",
            CallStepReason.CALLBACK_TOO_FAR,
        )
    local = args.when.astimezone(f.tz)
    start, end = lim.calling_hours
    if not start <= local.hour < end:
        raise Refused(
            f"Calls are allowed only between {start}:00 and {end}:00 in the debtor's time "
            f"zone ({f.timezone}); that time is {local:%H:%M} there.",
            CallStepReason.OUTSIDE_CALLING_HOURS,
        )
    return local, reason
