"""Sentence splitting for streamed TTS, the speakable() normaliser, numbers said as words."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.voice_orchestrator.conversation import (
    SentenceSplitter,
    speakable,
    spoken_amount,
    spoken_date,
    spoken_number,
    spoken_time,
)


def split_all(chunks: list[str], **kwargs: int) -> list[str]:
    splitter = SentenceSplitter(**kwargs)  # type: ignore[arg-type]
    out: list[str] = []
    for chunk in chunks:
        out += splitter.feed(chunk)
    tail = splitter.flush()
    return out + ([tail] if tail else [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello there. How are you?", ["Hello there.", "How are you?"]),
        ("Wow! Really? Yes.", ["Wow!", "Really?", "Yes."]),
        (
            "Mr. Smith called Dr. Jones. Then he left.",
            ["Mr. Smith called Dr. Jones.", "Then he left."],
        ),
        ("It costs $4.50 today. Okay?", ["It costs $4.50 today.", "Okay?"]),
        ("Pi is 3.14 roughly. Fine.", ["Pi is 3.14 roughly.", "Fine."]),
        ("Bring ID, e.g. a passport. Thanks.", ["Bring ID, e.g. a passport.", "Thanks."]),
        ("I'll call at 10 a.m. tomorrow. Bye.", ["I'll call at 10 a.m. tomorrow.", "Bye."]),
        ("I'll call at 10 a.m. Thanks!", ["I'll call at 10 a.m.", "Thanks!"]),
        ('She said "yes." Then left.', ['She said "yes."', "Then left."]),
        ("Wait... what? Okay.", ["Wait...", "what?", "Okay."]),
        ("This is J. Doe speaking. Hi.", ["This is J. Doe speaking.", "Hi."]),
        ("No. I won't.", ["No.", "I won't."]),
        ("First line\nSecond line", ["First line", "Second line"]),
        ("No terminator at all", ["No terminator at all"]),
    ],
)
def test_splits_whole_text(text: str, expected: list[str]) -> None:
    assert split_all([text]) == expected


def test_sentence_is_released_as_soon_as_it_is_complete() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Hello, this is Alex") == []
    # The reply's first sentence goes the moment its "." arrives: no number, title or
    # abbreviation can continue "Alex." (the delta after it is one token's wait for TTS).
    assert splitter.feed(".") == ["Hello, this is Alex."]
    assert splitter.feed(" Am I speaking with Jane") == []
    assert splitter.feed("?") == []  # later sentences wait for what follows, as before
    assert splitter.feed(" Good") == ["Am I speaking with Jane?"]
    assert splitter.flush() == "Good"
    assert splitter.flush() is None


@pytest.mark.parametrize(
    ("first", "then", "whole"),
    [
        ("That is $4.", "50 in total.", "That is $4.50 in total."),  # a number may go on
        ("Please ask for Mr.", " Smith now.", "Please ask for Mr. Smith now."),  # a title
        ("I am J.", " Doe, the agent.", "I am J. Doe, the agent."),  # an initial
        ("We open at 9 a.m.", " today.", "We open at 9 a.m. today."),  # an abbreviation
    ],
)
def test_first_sentence_end_waits_when_the_next_delta_may_continue_it(
    first: str, then: str, whole: str
) -> None:
    splitter = SentenceSplitter()
    assert splitter.feed(first) == []
    assert splitter.feed(then) == [whole]  # its own "." at the end is sure: released at once


def test_first_sentence_ends_at_once_on_a_question_or_exclamation() -> None:
    for text in ("Is this Jane?", "Great news!", 'He said "yes."'):
        assert SentenceSplitter().feed(text) == [text]


def test_decimal_split_across_deltas_is_not_cut() -> None:
    assert split_all(["That is $4", ".", "50 in total. Thanks."]) == [
        "That is $4.50 in total.",
        "Thanks.",
    ]


def test_early_first_fragment_at_a_comma() -> None:
    splitter = SentenceSplitter(early_comma_chars=20)
    first = splitter.feed("Thank you for taking my call today, Jane, I really appreciate it")
    assert first == ["Thank you for taking my call today,"]
    # Only the first fragment is cut early; later commas wait for the sentence end.
    assert splitter.feed(", truly, and I hope") == []
    assert splitter.flush() == "Jane, I really appreciate it, truly, and I hope"


def test_early_comma_at_the_end_of_the_buffer_goes_at_once_unless_a_number_may_go_on() -> None:
    splitter = SentenceSplitter(early_comma_chars=8)
    assert splitter.feed("Thank you,") == ["Thank you,"]
    splitter = SentenceSplitter(early_comma_chars=8)
    assert splitter.feed("You owe 1,") == []  # "1,000" may follow
    assert splitter.feed("000 today, Jane") == ["You owe 1,000 today,"]
    assert SentenceSplitter(early_comma_chars=8).feed("Hi Jo,") == []  # under 8 characters


def test_runaway_text_is_cut_at_max_chars() -> None:
    words = " ".join(["word"] * 100)
    pieces = split_all([words], max_chars=60)
    assert all(len(p) <= 60 for p in pieces)
    assert " ".join(pieces) == words


@given(
    st.lists(
        st.sampled_from(["Hi", " there", ".", " ", "Mr", "$4", "50", "!", "?", "\n", "e.g", ","]),
        max_size=40,
    )
)
def test_chunking_never_changes_the_words(chunks: list[str]) -> None:
    text = "".join(chunks)
    whole = split_all([text])
    streamed = split_all(chunks)
    if not re.search(r"[.!?][^\s.!?]", text):
        # The pieces too, unless a terminator runs straight into more text ("Hi!Mr"): the first
        # sentence's end is taken as sure when it arrives, before that text does.
        # (and the same words in each piece: a repeated "!" may stay with its sentence or go)
        assert [re.sub(r"\W", "", p) for p in streamed] == [re.sub(r"\W", "", p) for p in whole]
    # Every word and number is spoken; only punctuation with no word in its piece is dropped.
    assert re.sub(r"\W", "", "".join(streamed)) == re.sub(r"\W", "", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**Great!** Your balance is due.", "Great! Your balance is due."),
        ("- one\n- two\n- three", "one. two. three"),
        ("1. First\n2) Second", "First. Second"),
        ("## Heading\nBody text.", "Heading. Body text."),
        ("See [our site](https://example.com) now.", "See our site now."),
        ("Pay `now` please 🙂", "Pay now please"),
        ("That is $450.", "That is four hundred fifty dollars."),
        (
            "That is $1,234.56 total",
            "That is one thousand two hundred thirty-four dollars and fifty-six cents total",
        ),
        ("A 5% fee & more", "A 5 percent fee and more"),
        (
            "I noted 450 dollars on Friday, December 4.",
            "I noted four hundred fifty dollars on Friday, December fourth.",
        ),
        ("By December 21st, 2026 at 10:30", "By December twenty-first, 2026 at 10:30"),
        ("Call 1-800-555-0100 in May 2027", "Call 1-800-555-0100 in May 2027"),
        ("_Thanks_ for *that*.", "Thanks for that."),
    ],
)
def test_speakable(text: str, expected: str) -> None:
    assert speakable(text) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (45000, "USD", "four hundred fifty dollars"),
        (45025, "USD", "four hundred fifty dollars and twenty-five cents"),
        (100, "USD", "one dollar"),
        (1, "USD", "one cent"),
        (0, "USD", "zero dollars"),
        (123456, "USD", "one thousand two hundred thirty-four dollars and fifty-six cents"),
        (250000, "EUR", "two thousand five hundred euros"),
        (199, "GBP", "one pound and ninety-nine pence"),
        (5000, "JPY", "five thousand yen"),
        (1050, "CHF", "ten C H F and fifty hundredths"),
    ],
)
def test_spoken_amount(amount: int, currency: str, expected: str) -> None:
    assert spoken_amount(amount, currency) == expected


def test_spoken_dates_numbers_and_times() -> None:
    today = dt.date(2026, 11, 27)
    assert spoken_date(dt.date(2026, 12, 5), today=today) == "December fifth"
    assert spoken_date(dt.date(2027, 1, 2), today=today) == "January second, twenty twenty-seven"
    assert spoken_date(dt.date(2026, 11, 27), weekday=True) == "Friday, November twenty-seventh"
    assert spoken_number(1_000_101) == "one million one hundred one"
    assert spoken_time(dt.time(10, 0)) == "ten in the morning"
    assert spoken_time(dt.time(14, 30)) == "two thirty in the afternoon"
    assert spoken_time(dt.time(17, 5)) == "five oh five in the evening"
    assert spoken_time(dt.time(12, 0)) == "noon"
