"""Text that is going to be spoken: numbers as words, markdown stripped, sentences split for TTS."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from num2words import num2words


@dataclass(frozen=True)
class CurrencyWords:
    major: str
    major_plural: str
    minor: str
    minor_plural: str
    exponent: int = 2  # ISO 4217 minor-unit digits


CURRENCY_WORDS: dict[str, CurrencyWords] = {
    "USD": CurrencyWords("dollar", "dollars", "cent", "cents"),
    "CAD": CurrencyWords("Canadian dollar", "Canadian dollars", "cent", "cents"),
    "AUD": CurrencyWords("Australian dollar", "Australian dollars", "cent", "cents"),
    "EUR": CurrencyWords("euro", "euros", "cent", "cents"),
    "GBP": CurrencyWords("pound", "pounds", "penny", "pence"),
    "MXN": CurrencyWords("peso", "pesos", "centavo", "centavos"),
    "JPY": CurrencyWords("yen", "yen", "", "", exponent=0),
}


def spoken_number(n: int) -> str:
    """American-style cardinal: 450 -> "four hundred fifty" (num2words says "and", we don't)."""
    if n < 0:
        return "minus " + spoken_number(-n)
    words = str(num2words(n, lang="en")).replace(",", "")
    return " ".join(w for w in words.split() if w != "and")


def spoken_ordinal(n: int) -> str:
    return str(num2words(n, lang="en", to="ordinal"))


def spoken_amount(amount_minor: int, currency: str) -> str:
    """45000 USD -> "four hundred fifty dollars"; 45025 -> "... dollars and twenty-five cents"."""
    words = CURRENCY_WORDS.get(currency.upper())
    if words is None:
        # Unknown currency: say the number and spell the code; better than guessing a name.
        spelled = " ".join(currency.upper())
        major, minor = divmod(amount_minor, 100)
        text = f"{spoken_number(major)} {spelled}"
        return f"{text} and {spoken_number(minor)} hundredths" if minor else text
    major, minor = divmod(amount_minor, 10**words.exponent)
    parts: list[str] = []
    if major or not minor:
        unit = words.major if major == 1 else words.major_plural
        parts.append(f"{spoken_number(major)} {unit}")
    if minor:
        unit = words.minor if minor == 1 else words.minor_plural
        parts.append(f"{spoken_number(minor)} {unit}")
    return " and ".join(parts)


def spoken_year(year: int) -> str:
    words = str(num2words(year, lang="en", to="year")).replace(",", "")
    return " ".join(w for w in words.split() if w != "and")


def spoken_date(day: dt.date, *, today: dt.date | None = None, weekday: bool = False) -> str:
    """2026-12-05 -> "December fifth"; the year is said only when it differs from today's."""
    text = f"{day.strftime('%B')} {spoken_ordinal(day.day)}"
    if weekday:
        text = f"{day.strftime('%A')}, {text}"
    if today is not None and day.year != today.year:
        text = f"{text}, {spoken_year(day.year)}"
    return text


def spoken_time(moment: dt.datetime | dt.time) -> str:
    """10:00 -> "ten in the morning", 14:30 -> "two thirty in the afternoon", 12:00 -> "noon"."""
    hour, minute = moment.hour, moment.minute
    if minute == 0 and hour == 12:
        return "noon"
    if minute == 0 and hour == 0:
        return "midnight"
    h12 = hour % 12 or 12
    text = spoken_number(h12)
    if minute:
        text += " oh " + spoken_number(minute) if minute < 10 else " " + spoken_number(minute)
    if hour < 12:
        period = "in the morning"
    elif hour < 17:
        period = "in the afternoon"
    else:
        period = "in the evening"
    return f"{text} {period}"


# --- markdown and symbols out ------------------------------------------------------------------

_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_CODE_FENCE = re.compile(r"```[a-zA-Z0-9_-]*")
_INLINE_CODE = re.compile(r"`([^`]*)`")
_EMPHASIS = re.compile(r"(\*{1,3}|_{2,3})(\S(?:.*?\S)?)\1")
_UNDERSCORE_EMPHASIS = re.compile(r"(?<!\w)_(\S(?:.*?\S)?)_(?!\w)")  # not snake_case
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.MULTILINE)
_QUOTE = re.compile(r"^\s*>\s?", re.MULTILINE)
_LIST_MARKER = re.compile(r"^\s*(?:[-*+•●▪–]|\d{1,3}[.)])\s+", re.MULTILINE)
_HRULE = re.compile(r"^\s*(?:[-*_]\s*){3,}$", re.MULTILINE)
_DOLLARS = re.compile(r"\$\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?(?!\d)")
_DIGIT_DOLLARS = re.compile(r"(?<![\w.$])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{2}))? dollars\b")
_MONTH_DAY = re.compile(
    r"\b(January|February|March|April|May|June|July|August|September|October|November|December)"
    r" (\d{1,2})(?:st|nd|rd|th)?\b(?!:)"
)
_PERCENT = re.compile(r"(\d)\s?%")
_EMOJI = re.compile("[\U0001f000-\U0001faff\U00002600-\U000027bf\U0000fe0f\U0000200d]")
_SPACES = re.compile(r"[ \t\r\f\v]+")


def _dollars(match: re.Match[str]) -> str:
    whole = int(match.group(1).replace(",", ""))
    cents = int((match.group(2) or "0").ljust(2, "0"))
    return spoken_amount(whole * 100 + cents, "USD")


def _month_day(match: re.Match[str]) -> str:
    day = int(match.group(2))
    if not 1 <= day <= 31:
        return match.group(0)
    return f"{match.group(1)} {spoken_ordinal(day)}"


def speakable(text: str) -> str:
    """Make model output safe for a TTS voice: no markdown, no list markers, no emoji.

    Lines become sentences (a list item without final punctuation gets a period) and dollar
    figures and month-day dates the model wrote as digits are said as words, so "$4.50" is "four
    dollars and fifty cents" rather than "dollar sign four point five zero", and "December 5" is
    "December fifth".
    """
    text = _LINK.sub(r"\1", text)
    text = _CODE_FENCE.sub("", text)
    text = _INLINE_CODE.sub(r"\1", text)
    text = _HRULE.sub("", text)
    text = _HEADING.sub("", text)
    text = _QUOTE.sub("", text)
    text = _LIST_MARKER.sub("", text)
    for _ in range(2):  # nested emphasis like ***x*** or **_x_**
        text = _EMPHASIS.sub(r"\2", text)
        text = _UNDERSCORE_EMPHASIS.sub(r"\1", text)
    text = text.replace("**", "").replace("__", "")
    text = _EMOJI.sub("", text)
    text = _DOLLARS.sub(_dollars, text)
    text = _DIGIT_DOLLARS.sub(_dollars, text)
    text = _MONTH_DAY.sub(_month_day, text)
    text = _PERCENT.sub(r"\1 percent", text)
    text = text.replace("&", " and ")
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) > 1:
        lines = [line if line[-1] in ".!?,;:" else line + "." for line in lines[:-1]] + lines[-1:]
    return _SPACES.sub(" ", " ".join(lines)).strip()


# --- streaming sentence splitter -----------------------------------------------------------------

# Words that end with a period but rarely end a sentence. Compared lower-case, without the final
# period ("e.g." -> "e.g").
_TITLES = frozenset({"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "e.g", "i.e"})
# These end sentences only when a capitalised word follows ("10 a.m. Thanks" but "10 a.m. today").
_SOFT_ABBREVIATIONS = frozenset({"a.m", "p.m", "u.s", "etc", "inc", "ltd", "co", "no"})
_TERMINATORS = ".!?"
_CLOSERS = "\"')]”’»"


def _has_words(piece: str) -> bool:
    return any(ch.isalnum() for ch in piece)


class SentenceSplitter:
    """Cuts a streamed reply into speakable sentences as soon as each one is complete.

    A sentence ends at `.`, `!` or `?` (plus any closing quotes) followed by whitespace, or at a
    newline. A terminator at the very end of the buffer waits for the next delta, because "$4."
    may continue as "$4.50", except in a reply's first sentence when it is sure
    (`_first_ends_here`). Titles ("Mr.", "Dr.", "e.g.") never end a sentence; "a.m."-style
    abbreviations end one only before a capital letter.

    Latency: with `early_comma_chars=N` the first fragment of a reply is released at the first
    comma found at least N characters in, so TTS can start before a long first sentence ends
    (off by default: a comma break slightly changes prosody). Runaway text without punctuation is
    cut at the last comma or space before `max_chars`.
    """

    def __init__(self, *, early_comma_chars: int | None = None, max_chars: int = 250) -> None:
        self._buf = ""
        self._emitted = False
        self._early = early_comma_chars
        self._max = max_chars

    def feed(self, delta: str) -> list[str]:
        self._buf += delta
        out: list[str] = []
        while True:
            cut = self._boundary()
            if cut is None:
                break
            piece, self._buf = self._buf[:cut].strip(), self._buf[cut:].lstrip()
            if _has_words(piece):
                out.append(piece)
                self._emitted = True
        return out

    def flush(self) -> str | None:
        piece, self._buf = self._buf.strip(), ""
        self._emitted = False  # the next feed starts a new reply
        # Punctuation alone says nothing: the ".." of "Well." + ".." after an early cut.
        return piece if _has_words(piece) else None

    def _boundary(self) -> int | None:
        buf = self._buf
        i = 0
        n = len(buf)
        while i < n:
            ch = buf[i]
            if ch == "\n":
                return i + 1
            if ch in _TERMINATORS:
                j = i + 1
                while j < n and (buf[j] in _TERMINATORS or buf[j] in _CLOSERS):
                    j += 1
                if j >= n:
                    if not self._emitted and self._first_ends_here(buf, i):
                        return n  # the reply's first sentence: no token's wait for a space
                    break  # undecidable until more text (or flush) arrives
                if buf[j].isspace() and self._ends_sentence(buf, i, j):
                    return j
                i = j
                continue
            i += 1
        if not self._emitted and self._early is not None and len(buf) > self._early:
            k = buf.find(", ", self._early)
            if k != -1:
                return k + 1
            if buf.endswith(",") and len(buf) - 1 >= self._early and not buf[-2].isdigit():
                return n  # "1,000" may go on; "Thank you," does not
        if len(buf) > self._max:
            head = buf[: self._max]
            k = head.rfind(", ")
            k = k + 1 if k != -1 else head.rfind(" ")
            return k if k > 0 else self._max
        return None

    @classmethod
    def _first_ends_here(cls, buf: str, i: int) -> bool:
        """A terminator at the very end of the buffer that surely ends the first sentence: `!`,
        `?`, or a `.` after a word that is no number, title, initial or abbreviation. Saves the
        reply's first words one token's wait (~11 ms at 90 tokens/s) before TTS; later sentences
        still wait for the space, so "acme.com" is never cut."""
        if buf[i] != ".":
            return True
        if i == 0 or not buf[i - 1].isalpha():
            return False  # "$4." may go on as "$4.50"
        start = i
        while start > 0 and (buf[start - 1].isalpha() or buf[start - 1] == "."):
            start -= 1
        word = buf[start:i].lower()
        return word not in _SOFT_ABBREVIATIONS and cls._ends_sentence(buf, i, len(buf))

    @staticmethod
    def _ends_sentence(buf: str, i: int, j: int) -> bool:
        if buf[i] != ".":
            return True
        start = i
        while start > 0 and (buf[start - 1].isalpha() or buf[start - 1] == "."):
            start -= 1
        word = buf[start:i].lower()
        if word in _TITLES:
            return False
        if len(word) == 1 and buf[start].isupper():
            return False  # an initial: "J. Doe"
        if word in _SOFT_ABBREVIATIONS:
            k = j
            while k < len(buf) and buf[k].isspace():
                k += 1
            return k < len(buf) and buf[k].isupper()
        return True


def spoken_phone(number: str) -> str:
    """+18005550199 -> "8 0 0, 5 5 5, 0 1 9 9": digit by digit, grouped as people say them."""
    digits = "".join(c for c in number if c.isdigit())
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    groups = [digits[:3], digits[3:6], digits[6:]] if len(digits) == 10 else [digits]
    return ", ".join(" ".join(g) for g in groups if g)
