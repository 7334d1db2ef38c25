"""The time zone a conversation speaks in when the debtor record names none.

The calling rules (services/common/calling_rules) check the window in every zone the number could
mean; the conversation needs one zone to say "today" and "tomorrow", so it takes the record's, or
the first one the number's area code gives, or Eastern (most US numbers are there).
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import timezone as pn_timezone

FALLBACK_ZONE = "America/New_York"


@lru_cache(maxsize=4096)
def zones_for_number(phone: str) -> tuple[str, ...]:
    """IANA zones the number's prefix may be in; empty when unknown."""
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return ()
    return tuple(z for z in pn_timezone.time_zones_for_number(number) if z != "Etc/Unknown")


def conversation_zone(timezone: str | None, phone: str) -> str:
    if timezone:
        return timezone
    zones = zones_for_number(phone)
    return zones[0] if zones else FALLBACK_ZONE
