"""The checks a proposed move's arguments must pass against the call facts and the limits.
Pure: each returns the accepted value or raises `Refused` with what the model should hear."""

from __future__ import annotations

import datetime as dt

from .enums import CallStepReason
from .facts import CallFacts
from .machine import ConversationLimits
from .records import PromiseTooLate, Refused
from .speech import spoken_amount, spoken_date
from .tools import RecordPaymentPromiseArgs, ScheduleCallbackArgs

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
