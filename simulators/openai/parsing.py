"""Pure parsers for what a debtor says: money amounts, dates and callback times.

Relative expressions are resolved against ``today`` from the prompt's CALL FACTS block, so the
same words always give the same answer (the collector policy must be deterministic).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

_UNITS = {
    "zero": 0, "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1000}
_NUMBER_WORD = r"(?:" + "|".join(sorted([*_UNITS, *_SCALES, "and"], key=len, reverse=True)) + r")"
_WORDS_NUMBER_RE = re.compile(rf"\b({_NUMBER_WORD}(?:[\s-]+{_NUMBER_WORD})*)\b")

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_MONTHS["sept"] = 9
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
_WEEKDAY_RE = "|".join(_WEEKDAYS)
_ORD = r"(?:st|nd|rd|th)?"

_CURRENCY_WORDS = r"(?:dollars?|bucks|usd|euros?|eur|pounds?|gbp)"
_DIGIT_AMOUNT = r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?"
_SYMBOL_AMOUNT_RE = re.compile(rf"[$€£]\s?({_DIGIT_AMOUNT})(?:\s*(?:and\s+)?(\d{{1,2}})\s*cents?)?")
_SUFFIX_AMOUNT_RE = re.compile(rf"\b({_DIGIT_AMOUNT})\s*{_CURRENCY_WORDS}\b")
_FULL_RE = re.compile(
    r"\b(full amount|full balance|whole amount|whole balance|whole thing|entire balance|"
    r"entire amount|in full|all of it|everything|pay it all|pay it off|the balance|total amount)\b"
)
_HALF_RE = re.compile(r"\bhalf\b")


def words_to_int(text: str) -> int | None:
    """'one hundred fifty' -> 150; None when the words are not a number."""
    total, current, seen = 0, 0, False
    for tok in re.split(r"[\s-]+", text.strip().lower()):
        if tok == "and" or not tok:
            continue
        if tok in _UNITS:
            current += _UNITS[tok]
            seen = True
        elif tok == "hundred":
            current = max(current, 1) * 100
            seen = True
        elif tok == "thousand":
            total += max(current, 1) * 1000
            current = 0
            seen = True
        else:
            return None
    return total + current if seen else None


def _number(token: str) -> int | None:
    token = token.strip().lower()
    if token.isdigit():
        return int(token)
    return words_to_int(token)


def parse_amount_minor(text: str, balance_minor: int | None = None) -> int | None:
    """Money the debtor offers, in minor units: '$120', '120 dollars', 'one hundred dollars',
    'the full amount' (needs ``balance_minor``), 'half'. Bare numbers are not money."""
    t = text.lower()
    m = _SYMBOL_AMOUNT_RE.search(t)
    if m:
        cents = int(m.group(2)) if m.group(2) else 0
        return round(float(m.group(1).replace(",", "")) * 100) + cents
    m = _SUFFIX_AMOUNT_RE.search(t)
    if m:
        return round(float(m.group(1).replace(",", "")) * 100)
    for m in _WORDS_NUMBER_RE.finditer(t):
        rest = t[m.end() :].lstrip()
        if re.match(_CURRENCY_WORDS, rest):
            value = words_to_int(m.group(1))
            if value:
                return value * 100
    if balance_minor is not None:
        if _FULL_RE.search(t):
            return balance_minor
        if _HALF_RE.search(t):
            return balance_minor // 2
    return None


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    y += d.year
    return date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1]))


def _next_weekday(today: date, weekday: int) -> date:
    """Next occurrence strictly after today ('Friday' said on a Friday means a week later)."""
    days = (weekday - today.weekday()) % 7
    return today + timedelta(days=days or 7)


def _month_day(today: date, month: int, day: int) -> date | None:
    for year in (today.year, today.year + 1):
        try:
            d = date(year, month, day)
        except ValueError:
            return None
        if d >= today:
            return d
    return None


def parse_date(text: str, today: date) -> date | None:
    """A day the debtor names: 'today', 'tomorrow', 'on December 5', 'the 5th of December',
    'in 10 days', 'in two weeks', 'in two months', 'next Friday', 'end of the month',
    '2026-12-05'."""
    t = text.lower()
    m = re.search(r"\b(\d{4})-(\d{2})-(\d{2})\b", t)
    if m:
        try:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
    if re.search(r"\bday after tomorrow\b", t):
        return today + timedelta(days=2)
    if re.search(r"\btomorrow\b", t):
        return today + timedelta(days=1)
    if re.search(r"\b(today|tonight|right away|this afternoon|this evening)\b", t):
        return today
    m = re.search(
        rf"\bin\s+(\d+|{_NUMBER_WORD}(?:[\s-]+{_NUMBER_WORD})*)\s+(days?|weeks?|months?)\b", t
    )
    if m:
        n = _number(m.group(1))
        if n is not None and m.group(2).startswith("month"):
            return _add_months(today, n)
        if n is not None:
            return today + timedelta(days=n * (7 if m.group(2).startswith("week") else 1))
    if re.search(r"\bnext week\b", t):
        return today + timedelta(days=7)
    if re.search(r"\bend of (the|this) month\b", t):
        return date(today.year, today.month, calendar.monthrange(today.year, today.month)[1])
    if re.search(r"\bnext month\b", t):
        return _add_months(today, 1)
    m = re.search(rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}}){_ORD}\b", t)
    if m:
        return _month_day(today, _MONTHS[m.group(1)], int(m.group(2)))
    m = re.search(rf"\b(\d{{1,2}}){_ORD}\s+of\s+({_MONTH_RE})\b", t)
    if m:
        return _month_day(today, _MONTHS[m.group(2)], int(m.group(1)))
    m = re.search(rf"\b({_WEEKDAY_RE})\b", t)
    if m:
        return _next_weekday(today, _WEEKDAYS[m.group(1)])
    m = re.search(r"\bthe\s+(\d{1,2})(?:st|nd|rd|th)\b", t)
    if m:
        day = int(m.group(1))
        for months in (0, 1, 2):
            first = _add_months(today.replace(day=1), months)
            if day <= calendar.monthrange(first.year, first.month)[1]:
                d = first.replace(day=day)
                if d >= today:
                    return d
    return None


_TIME_RE = re.compile(r"\b(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(a\.?m\.?|p\.?m\.?)(?=\W|$)")
_AT_TIME_RE = re.compile(r"\bat\s+(\d{1,2})(?::(\d{2}))?\b(?!\s*(?:days?|weeks?))")
_PARTS_OF_DAY = {
    "morning": time(10, 0),
    "noon": time(12, 0),
    "lunch": time(12, 0),
    "afternoon": time(15, 0),
    "evening": time(18, 0),
    "tonight": time(18, 0),
}


@dataclass(frozen=True, slots=True)
class CallbackTime:
    when: datetime
    has_time: bool


def parse_callback_time(text: str, today: date, tz: tzinfo = UTC) -> CallbackTime:
    """When to call back: 'tomorrow at 5pm', 'tomorrow afternoon', 'Monday morning', 'later'.

    No day named: later today if a part of the day or a time is named, else tomorrow.
    No time named: 10:00, in ``tz`` (the debtor's zone from the CALL FACTS).
    """
    t = text.lower()
    day = parse_date(t, today)
    at: time | None = None
    m = _TIME_RE.search(t)
    if m:
        hour = int(m.group(1)) % 12
        if m.group(3).startswith("p"):
            hour += 12
        at = time(hour, int(m.group(2) or 0))
    else:
        m = _AT_TIME_RE.search(t)
        if m and int(m.group(1)) <= 12:
            hour = int(m.group(1))
            if hour < 8:  # "at 5" from someone at work means the afternoon
                hour += 12
            at = time(hour % 24, int(m.group(2) or 0))
    if at is None:
        for word, part_time in _PARTS_OF_DAY.items():
            if re.search(rf"\b{word}\b", t):
                at = part_time
                break
    if day is None:
        day = today if at is not None and re.search(r"\b(later|this|tonight)\b", t) else None
        day = day or today + timedelta(days=1)
    return CallbackTime(datetime.combine(day, at or time(10, 0), tzinfo=tz), at is not None)


def spoken_money(amount_minor: int, currency: str = "USD") -> str:
    names = {"USD": "dollars", "CAD": "dollars", "AUD": "dollars", "EUR": "euros", "GBP": "pounds"}
    major, minor = divmod(amount_minor, 100)
    unit = names.get(currency.upper(), currency.upper())
    if minor:
        return f"{major} {unit} and {minor} cents"
    return f"{major} {unit}"


def spoken_date(d: date, today: date) -> str:
    if d == today:
        return "today"
    if d == today + timedelta(days=1):
        return "tomorrow"
    return f"on {calendar.day_name[d.weekday()]}, {calendar.month_name[d.month]} {d.day}"


def spoken_time(t: time) -> str:
    hour = t.hour % 12 or 12
    suffix = "AM" if t.hour < 12 else "PM"
    return f"{hour} {suffix}" if t.minute == 0 else f"{hour}:{t.minute:02d} {suffix}"
