"""The calling rules: when, and how often, a debtor may be called. Pure, no I/O.

US rules (docs/operations.md, "Calling rules"):
- only between `window_start` and `window_end` (08:00-21:00) in the debtor's local time, and
  when the zone is not known, in every zone the number and the address could mean;
- at most `max_attempts` (7) dials in any `attempts_period` (7 days);
- none within `quiet_after_conversation` (7 days) of a conversation about the debt, unless the
  debtor asked for the call (Reg F 1006.14(b)(2));
- retries are capped per day and per week and spaced by exponential backoff with jitter.

A rule can only hold a call back, never force one through: whatever cannot be decided (no zone,
no time inside every zone's window) is refused with a reason.
"""

from services.common.calling_rules.limits import (
    Allowed,
    History,
    Intent,
    Refused,
    RulesConfig,
    earliest_allowed,
    retry_delay,
)
from services.common.calling_rules.window import in_window, next_window_start
from services.common.calling_rules.zones import DebtorContact, possible_zones

__all__ = [
    "Allowed",
    "DebtorContact",
    "History",
    "Intent",
    "Refused",
    "RulesConfig",
    "earliest_allowed",
    "in_window",
    "next_window_start",
    "possible_zones",
    "retry_delay",
]
