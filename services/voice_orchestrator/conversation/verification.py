"""Right-party verification's second factor: which fact on file to ask for, and whether what the
person said matches it. Pure.

After the person confirms the debtor's name, the system asks for one fact on file the agent never
says (date of birth, ZIP code, or the last 4 digits of the account reference, in that order of
preference). The model passes the person's answer to `verify_fact`; the code here compares it
and the model hears only "matched" or "not matched": never the value, never how close it was.
Two wrong answers end the call with outcome `unverified` and nothing about the debt said. With
no fact on file, the name alone is accepted (`name_only`).

Answers are read the way people say them: "March 4th 1985", "3/4/85", "the fourth of March
eighty-five", "nineteen eighty-five"; ZIP and last-4 digits as digits or words ("six two seven
oh four", "double seven"). Every digit the answer contains must be the fact (a ZIP answer with
another number in it does not match), and a date answer must name one date only, so reading out
several guesses at once never passes.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import Enum

from generated.verification_fact_kind import VerificationFactKind
from generated.verification_level import VerificationLevel

from .enums import CallStepReason
from .facts import CallFacts
from .lines import FixedLine
from .prompting import LinesDoc
from .records import Refused

FactKind = VerificationFactKind
MAX_FACT_ATTEMPTS = 2  # wrong answers before the call ends as `unverified`
FACT_ORDER = (FactKind.DATE_OF_BIRTH, FactKind.POSTAL_CODE, FactKind.ACCOUNT_LAST4)

# How the system names each fact when it asks (prompts/lines.md `{fact_spoken}`).
FACT_SPOKEN: dict[FactKind, str] = {
    FactKind.DATE_OF_BIRTH: "your date of birth",
    FactKind.POSTAL_CODE: "your five-digit ZIP code",
    FactKind.ACCOUNT_LAST4: "the last four digits of your account number",
}


def fact_to_ask(facts: CallFacts) -> FactKind | None:
    """The first fact on file, in FACT_ORDER; None when there is none (name only)."""
    on_file = {
        FactKind.DATE_OF_BIRTH: facts.date_of_birth is not None,
        FactKind.POSTAL_CODE: bool(facts.postal_code),
        FactKind.ACCOUNT_LAST4: bool(facts.account_last4),
    }
    return next((kind for kind in FACT_ORDER if on_file[kind]), None)


# --- reading numbers as people say them -----------------------------------------------------

_UNITS = {
    "zero": 0, "oh": 0, "o": 0, "nought": 0, "one": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4,
    "apr": 4, "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11, "nov": 11,
    "december": 12, "dec": 12,
}  # fmt: skip
_REPEAT = {"double": 2, "triple": 3}
_NUMBER_WORDS = frozenset(_UNITS) | set(_TEENS) | set(_TENS) | set(_ORDINALS)
_SPOKEN_NUMBER_WORDS = _NUMBER_WORDS | {"hundred", "thousand", "and", "double", "triple"}


@dataclass(frozen=True)
class _Num:
    """One number as said: its value, its digits as said ("oh four" -> "04"), ordinal or not."""

    value: int
    digits: str
    ordinal: bool = False


def _words(text: str) -> list[str]:
    t = text.lower().replace("\u2019", "'").replace("-", " ")
    # "4th" -> "4 th" is not wanted: keep ordinals of digits whole; split on anything else.
    return re.findall(r"\d+(?:st|nd|rd|th)?|[a-z]+", t)


def _digit_token(word: str) -> _Num | None:
    m = re.fullmatch(r"(\d+)(st|nd|rd|th)?", word)
    if m is None:
        return None
    return _Num(int(m.group(1)), m.group(1), bool(m.group(2)))


def _is_number_word(word: str) -> bool:
    return word in _NUMBER_WORDS or _digit_token(word) is not None


def _atoms(words: list[str], *, dates: bool) -> list[_Num | str]:
    """Number words and digit tokens as `_Num`s, other words as themselves.

    "twenty one" and "twenty first" are one number; "six hundred" and "two thousand and three"
    too. `dates`: "oh four" is 4 (a day or the end of a year), and ordinals count; else ("oh"
    only next to another number: "Oh, sure" is no zero) ordinals are words.
    """
    out: list[_Num | str] = []
    i = 0
    while i < len(words):
        w, nxt = words[i], words[i + 1] if i + 1 < len(words) else ""
        num = _digit_token(w)
        step = 1
        if num is not None:
            pass
        elif w in _REPEAT and nxt in _UNITS:
            d = str(_UNITS[nxt]) * _REPEAT[w]
            num, step = _Num(int(d), d), 2
        elif w in _TENS:
            unit = _UNITS.get(nxt, 0) if nxt not in ("oh", "o") else 0
            ordinal = _ORDINALS.get(nxt, 10) if dates else 10
            if unit:
                num, step = _Num(_TENS[w] + unit, str(_TENS[w] + unit)), 2
            elif ordinal < 10:
                num, step = _Num(_TENS[w] + ordinal, str(_TENS[w] + ordinal), True), 2
            else:
                num = _Num(_TENS[w], str(_TENS[w]))
        elif w in ("oh", "o"):
            prev = words[i - 1] if i else ""
            if dates and nxt in _UNITS:
                num, step = _Num(_UNITS[nxt], f"0{_UNITS[nxt]}"), 2
            elif not dates and (_is_number_word(nxt) or _is_number_word(prev)):
                num = _Num(0, "0")
        elif w in _UNITS or w in _TEENS:
            value = _UNITS.get(w, _TEENS.get(w, 0))
            num = _Num(value, str(value))
        elif w in _ORDINALS and dates:
            num = _Num(_ORDINALS[w], str(_ORDINALS[w]), True)
        out.append(num if num is not None else w)
        i += step
    return _scaled(out)


def _scaled(atoms: list[_Num | str]) -> list[_Num | str]:
    """[6, "hundred"] -> 600; [2, "thousand", "and", 3] -> 2003."""
    out: list[_Num | str] = []
    i = 0
    while i < len(atoms):
        a = atoms[i]
        if a in ("hundred", "thousand") and out and isinstance(out[-1], _Num):
            scale = 100 if a == "hundred" else 1000
            base = out.pop()
            assert isinstance(base, _Num)
            value, j = base.value * scale, i + 1
            if j < len(atoms) and atoms[j] == "and":
                j += 1
            nxt = atoms[j] if j < len(atoms) else None
            if isinstance(nxt, _Num) and nxt.value < scale:
                value, ordinal, i = value + nxt.value, nxt.ordinal, j + 1
            else:
                ordinal, i = False, i + 1
            out.append(_Num(value, str(value), ordinal))
            continue
        out.append(a)
        i += 1
    return out


def spoken_digits(text: str) -> str:
    """Every digit the text says, in order: "six two seven oh four" and "62704" -> "62704";
    "sixty-two seven oh four" -> "62704"; "double seven" -> "77"."""
    return "".join(a.digits for a in _atoms(_words(text), dates=False) if isinstance(a, _Num))


def _year(nums: list[_Num]) -> int | None:
    """The year from the numbers after the day: 1985, "nineteen eighty-five", "eighty-five",
    "two thousand three", "twenty oh three". A two-digit year is returned as-is (0..99)."""
    if len(nums) == 1:
        n = nums[0]
        return n.value if (n.value < 100 or 1000 <= n.value <= 9999) and not n.ordinal else None
    if len(nums) == 2 and not any(n.ordinal for n in nums):
        hi, lo = nums
        if 10 <= hi.value <= 29 and 0 <= lo.value <= 99:
            return hi.value * 100 + lo.value
    return None


def _numeric_dates(text: str) -> list[tuple[int, int, int]]:
    """(year, month, day) from "3/4/85", "03-04-1985", "3.4.1985" (US order) and "1985-03-04"."""
    out = []
    for m in re.finditer(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)", text):
        out.append((int(m.group(1)), int(m.group(2)), int(m.group(3))))
    for m in re.finditer(r"(?<!\d)(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})(?!\d)", text):
        out.append((int(m.group(3)), int(m.group(1)), int(m.group(2))))
    return out


def spoken_dates(text: str) -> list[tuple[int, int, int]]:
    """Every (year, month, day) the text names; a two-digit year stays two-digit (85)."""
    found = _numeric_dates(text)
    stripped = re.sub(r"\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}", " ", text)
    atoms = _atoms(_words(stripped), dates=True)
    for i, atom in enumerate(atoms):
        if not isinstance(atom, str) or atom not in _MONTHS:
            continue
        if atom == "may" and not _is_date_may(atoms, i):
            continue
        month = _MONTHS[atom]
        day: _Num | None = None
        after = i + 1
        # "March 4th", "March the fourth"
        j = i + 1 + (1 if i + 1 < len(atoms) and atoms[i + 1] == "the" else 0)
        if j < len(atoms) and isinstance(atoms[j], _Num) and 1 <= atoms[j].value <= 31:  # type: ignore[union-attr]
            day, after = atoms[j], j + 1  # type: ignore[assignment]
        else:
            # "the fourth of March", "4 March"
            k = i - 1 - (1 if i >= 1 and atoms[i - 1] == "of" else 0)
            if k >= 0 and isinstance(atoms[k], _Num) and 1 <= atoms[k].value <= 31:  # type: ignore[union-attr]
                day = atoms[k]  # type: ignore[assignment]
        if day is None:
            continue
        rest: list[_Num] = []
        for a in atoms[after:]:
            if isinstance(a, _Num):
                rest.append(a)
            elif rest or a not in ("of", "in", "the", "and"):
                break
        year = (_year(rest[:2]) if len(rest) >= 2 else None) or (_year(rest[:1]) if rest else None)
        if year is not None:
            found.append((year, month, day.value))
    return found


def _is_date_may(atoms: list[_Num | str], i: int) -> bool:
    """ "may" is the month only next to a number ("May 4th", "the fourth of May")."""
    near = atoms[max(0, i - 2) : i] + atoms[i + 1 : i + 3]
    return any(isinstance(a, _Num) for a in near)


def _same_date(said: tuple[int, int, int], dob: dt.date) -> bool:
    year, month, day = said
    year_ok = year == dob.year or (year < 100 and year == dob.year % 100)
    return year_ok and (month, day) == (dob.month, dob.day)


def matches(kind: FactKind, answer: str, facts: CallFacts) -> bool:
    """Whether `answer` states the fact on file. Strict: one date only; for digits, every digit
    said must be the fact, in order."""
    if kind is FactKind.DATE_OF_BIRTH:
        dob = facts.date_of_birth
        dates = set(spoken_dates(answer))
        return dob is not None and len(dates) == 1 and _same_date(dates.pop(), dob)
    expected = facts.postal_code if kind is FactKind.POSTAL_CODE else facts.account_last4
    return bool(expected) and spoken_digits(answer) == expected


def without_fact_words(text: str) -> str:
    """The answer without its numbers and month names, so that "March fourth, 1985." alone is
    not taken for an offer that needs the model to reply after the disclosure."""
    kept = [w for w in re.split(r"(\s+)", text) if _plain(w) not in _DATE_WORDS]
    return re.sub(r"\d[\d/.,-]*(?:st|nd|rd|th)?", "", "".join(kept))


_DATE_WORDS = _SPOKEN_NUMBER_WORDS | set(_MONTHS) - {"may"} | {"the", "of", "th"}


def _plain(word: str) -> str:
    return re.sub(r"[^a-z]", "", word.lower())


# --- the step in the conversation ---------------------------------------------------------------


class Step(Enum):
    MATCHED = "matched"
    RETRY = "retry"  # not matched; asked once more
    FAILED = "failed"  # not matched twice: outcome unverified


class SecondFactor:
    """Where the call is in right-party verification. Holds the kind of fact asked for, never
    its value (the value stays in the call facts and is only compared)."""

    def __init__(self, facts: CallFacts) -> None:
        self.kind = fact_to_ask(facts)
        self.name_confirmed = False
        self.failures = 0
        self.level = VerificationLevel.NONE
        self.fact: FactKind | None = None  # the fact given correctly

    @property
    def pending(self) -> FactKind | None:
        """The fact asked for and not answered correctly yet (the CALL FACTS `fact_to_verify`)."""
        if self.name_confirmed and self.level is VerificationLevel.NONE:
            return self.kind if self.failures < MAX_FACT_ATTEMPTS else None
        return None

    def confirm_name(self) -> None:
        self.name_confirmed = True
        if self.kind is None:
            self.level = VerificationLevel.NAME_ONLY

    def check(self, answer: str, facts: CallFacts) -> Step:
        kind = self.pending
        if kind is None:
            if self.kind is None:
                raise Refused(
                    "There is no fact on file to verify: when the person confirms their name, "
                    "call confirm_identity.",
                    CallStepReason.NOT_ALLOWED_IN_STATE,
                )
            raise Refused(
                "Call confirm_identity first, once the person confirms their name.",
                CallStepReason.NOT_ALLOWED_IN_STATE,
            )
        if not answer.strip():
            raise Refused(
                "Pass the person's answer, word for word, as `answer`.",
                CallStepReason.INVALID_ARGUMENTS,
            )
        if matches(kind, answer, facts):
            self.level, self.fact = VerificationLevel.NAME_AND_FACT, kind
            return Step.MATCHED
        self.failures += 1
        return Step.RETRY if self.failures < MAX_FACT_ATTEMPTS else Step.FAILED

    def lost(self) -> None:
        """A wrong party after all: whoever confirmed, it was not the debtor."""
        self.level, self.fact = VerificationLevel.NONE, None

    def asked_message(self) -> str:
        assert self.kind is not None
        return (
            f"Name confirmed. Before anything about the account, the person must give a fact on "
            f"file: {_label(self.kind)}. You do not know it: never guess it or hint at it. When "
            "they answer, call verify_fact with their answer, word for word."
        )


def _label(kind: FactKind) -> str:
    return FACT_SPOKEN[kind].replace("your ", "their ")


def fact_question_line(lines: LinesDoc, kind: FactKind | None, *, retry: bool = False) -> FixedLine:
    assert kind is not None, "no fact on file to ask for"
    text = lines.render("fact_retry" if retry else "fact_question", fact_spoken=FACT_SPOKEN[kind])
    return FixedLine(text, "fact_question")


def premade_fact_lines(lines: LinesDoc, kind: FactKind | None) -> list[str]:
    """The fact lines this call may say, known at call start (audio made ahead)."""
    if kind is None:
        return []
    return [fact_question_line(lines, kind, retry=r).text for r in (False, True)] + [
        lines.render("unverified_closing")
    ]
