"""Which time zones a debtor may be in.

The record's zone wins. Without one, every zone the number's area code may mean and the zone
of the ZIP code on file: the call must fit the window in all of them. Two maintained data sets
answer: `phonenumbers` (number prefix -> zones) misses part of some split area codes (541, 850,
308 each give one zone), so the area codes `zipcodes` lists per ZIP add the zones of every ZIP
that uses the code.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import zipcodes

from services.common.zones import zones_for_number


@dataclass(frozen=True)
class DebtorContact:
    phone: str  # E.164
    timezone: str | None = None  # IANA zone on the debtor record
    postal_code: str | None = None  # US ZIP (5 digits, or ZIP+4)


@lru_cache(maxsize=1)
def _zones_by_area_code() -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for z in zipcodes.list_all():
        if z.get("timezone"):
            for code in z.get("area_codes") or ():
                found[code].add(z["timezone"])
    return {code: frozenset(zones) for code, zones in found.items()}


@lru_cache(maxsize=4096)
def _number_zones(phone: str) -> frozenset[str]:
    zones = set(zones_for_number(phone))
    if phone.startswith("+1") and len(phone) >= 5:  # NANP: +1, then the area code
        zones |= _zones_by_area_code().get(phone[2:5], frozenset())
    return frozenset(zones)


@lru_cache(maxsize=4096)
def _postal_zone(postal_code: str) -> frozenset[str]:
    try:
        found = zipcodes.matching(postal_code[:5])
    except (ValueError, TypeError):
        return frozenset()
    return frozenset(z["timezone"] for z in found if z.get("timezone"))


def _known(zone: str) -> bool:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def possible_zones(contact: DebtorContact) -> frozenset[str]:
    """Every zone the debtor may be in; empty when nothing tells (then no call is allowed)."""
    if contact.timezone:
        return frozenset({contact.timezone}) if _known(contact.timezone) else frozenset()
    zones = set(_number_zones(contact.phone))
    if contact.postal_code:
        zones |= _postal_zone(contact.postal_code)
    return frozenset(z for z in zones if _known(z))
