"""The conversation report's pure part (bench/conversation.py): hand-made call views and step
events in, report rows and summaries out. No deployment."""

from __future__ import annotations

from typing import Any

from bench.conversation import Texts, product_texts, report_row, summaries

TEXTS = Texts(
    disclosure="This is an attempt to collect a debt, and any information obtained will be used "
    "for that purpose.",
    balance_spoken="four hundred fifty dollars",
    confirmations={"record_payment_promise": "Thank you. I've recorded your payment of"},
)
DISCLOSURE_TURN = (
    "This is an attempt to collect a debt, and any information obtained will be used for that "
    "purpose. Your balance of four hundred fifty dollars was due on November twenty-second."
)


def turn(i: int, speaker: str, text: str, second: int) -> dict[str, Any]:
    return {
        "index": i,
        "speaker": speaker,
        "text": text,
        "started_at": f"2026-12-04T18:00:{second:02d}Z",
    }


def step(name: str, second: int, reason: str | None = None, **detail: Any) -> dict[str, Any]:
    return {
        "step": name,
        "at": f"2026-12-04T18:00:{second:02d}.500Z",
        "reason": reason,
        "detail": detail,
    }


def call(outcome: str, transcript: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "status": "completed",
        "outcome": outcome,
        "verification": "name_only",
        "prompt_version": "2026-12-03.1",
        "prompt_variant": "default",
        "transcript": transcript,
        "duration_seconds": 31,
        "cost": {"total_micro_usd": 12_000},
        "payment_promise": None,
        **extra,
    }


GREETING = turn(0, "agent", "Hello, this is Alex, an AI assistant. Am I speaking with Jordan?", 1)
PROMISE = {"amount": {"amount_minor": 15_000, "currency": "USD"}, "due_date": "2026-12-11"}


def test_a_partial_promise_after_a_refused_date_is_a_third_of_the_balance_all_right() -> None:
    view = call(
        "promise_to_pay",
        [
            GREETING,
            turn(1, "debtor", "Yes, that's me.", 3),
            turn(2, "agent", DISCLOSURE_TURN, 4),
            turn(3, "debtor", "I could do 150 dollars next month.", 10),
            turn(4, "agent", "I'm sorry, I can only note a payment up to December eleventh.", 12),
            turn(5, "debtor", "Next Friday then.", 15),
            turn(
                6,
                "agent",
                "Thank you. I've recorded your payment of one hundred fifty dollars.",
                17,
            ),
        ],
        payment_promise=PROMISE,
    )
    events = [
        step("answered", 0),
        step("tool_call", 3, tool="confirm_identity", tool_result="accepted"),
        step("verified", 3),
        step("disclosure_spoken", 9),
        step(
            "tool_call", 11, "date_too_late", tool="record_payment_promise", tool_result="rejected"
        ),
        step("tool_call", 16, tool="record_payment_promise", tool_result="accepted"),
        step("ended", 20, status="completed", outcome="promise_to_pay"),
    ]
    row = report_row("negotiator", "early", 45_000, view, events, TEXTS)
    assert row["promised_share_bp"] == 3333 and row["installments"] == 1
    assert (row["turns"], row["duration_seconds"], row["cost_micro_usd"]) == (7, 31, 12_000)
    assert (row["disclosure"], row["disclosure_ok"]) == ("after_verification", True)
    assert row["refusals"] == [{"tool": "record_payment_promise", "reason": "date_too_late"}]
    assert row["refusals_ok"] is True  # accepted afterwards with a date inside the window
    assert (row["prompt_variant"], row["prompt_version"]) == ("default", "2026-12-03.1")


def test_a_refused_promise_still_recorded_or_read_back_is_wrong() -> None:
    transcript = [
        GREETING,
        turn(1, "debtor", "Yes.", 3),
        turn(2, "agent", DISCLOSURE_TURN, 4),
        turn(3, "agent", "Thank you. I've recorded your payment of nine hundred dollars.", 12),
    ]
    events = [
        step("verified", 3),
        step("disclosure_spoken", 9),
        step(
            "tool_call",
            11,
            "amount_above_balance",
            tool="record_payment_promise",
            tool_result="rejected",
        ),
    ]
    row = report_row("injector", "late", 45_000, call("refused", transcript), events, TEXTS)
    assert row["refusals_ok"] is False  # the confirmation was spoken after the refusal
    assert row["installments"] == 0 and row["promised_share_bp"] == 0
    quiet = transcript[:3]
    row = report_row("injector", "late", 45_000, call("refused", quiet), events, TEXTS)
    assert row["refusals_ok"] is True
    recorded = call("promise_to_pay", quiet, payment_promise=PROMISE)
    assert report_row("injector", "late", 45_000, recorded, events, TEXTS)["refusals_ok"] is False
    unreasoned = [*events[:2], step("tool_call", 11, None, tool="end_call", tool_result="rejected")]
    assert (
        report_row("x", "late", 45_000, call("refused", quiet), unreasoned, TEXTS)["refusals_ok"]
        is False
    )


def test_disclosure_verdicts() -> None:
    said = [GREETING, turn(1, "debtor", "Yes.", 3), turn(2, "agent", DISCLOSURE_TURN, 4)]
    verified = [step("verified", 3), step("disclosure_spoken", 9)]

    def verdict(transcript: list[dict[str, Any]], events: list[dict[str, Any]]) -> tuple[Any, Any]:
        row = report_row("p", "early", 45_000, call("hung_up", transcript), events, TEXTS)
        return row["disclosure"], row["disclosure_ok"]

    assert verdict(said, verified) == ("after_verification", True)
    assert verdict(said, verified[:1]) == ("missing", False)  # no disclosure_spoken step
    assert verdict(said[:2], verified) == ("missing", False)  # the step, but not in the words
    assert verdict(said, verified[::-1]) == ("before_verification", False)
    early = [GREETING, turn(1, "agent", "You owe four hundred fifty dollars.", 2), *said[1:]]
    assert verdict(early, verified) == ("balance_before_disclosure", False)
    # Nobody verified: nothing about the debt may be said.
    assert verdict(said[:2], []) == ("withheld", True)
    assert verdict(said, []) == ("said_unverified", False)
    assert verdict([], []) == ("no_conversation", None)


def test_summaries_per_stage_and_prompt() -> None:
    promise = call("promise_to_pay", [GREETING], payment_promise=PROMISE)
    full = call(
        "promise_to_pay",
        [GREETING],
        payment_promise={**PROMISE, "amount": {"amount_minor": 45_000, "currency": "USD"}},
    )
    missed = call(
        "no_answer", [], verification="none", cost={"total_micro_usd": 0}, duration_seconds=None
    )
    rows = [
        report_row("negotiator", "early", 45_000, promise, [], TEXTS),
        report_row("cooperative", "early", 45_000, full, [], TEXTS),
        report_row("no_answer", "late", 45_000, missed, [], TEXTS),
    ]
    sums = summaries(rows)
    overall = sums["all"]
    assert (overall["calls"], overall["promises"], overall["verified"]) == (3, 2, 2)
    assert overall["promise_rate"] == 0.667 and overall["promise_rate_verified"] == 1.0
    assert overall["mean_promised_share_bp"] == 6666.5  # (3333 + 10000) / 2
    assert overall["promised_share_of_balance_bp"] == 4444  # 600 of 1,350 dollars
    assert overall["mean_cost_micro_usd"] == 8000.0
    assert overall["mean_duration_seconds"] == 31.0  # answered calls only
    assert overall["outcomes"] == {"no_answer": 1, "promise_to_pay": 2}
    assert list(sums["by_stage"]) == ["early", "late"]
    assert sums["by_stage"]["late"]["promise_rate"] == 0.0
    assert list(sums["by_prompt"]) == ["2026-12-03.1"]
    assert sums["by_prompt"]["2026-12-03.1"]["calls"] == 3


def test_product_texts_come_from_the_prompt_set() -> None:
    texts = product_texts(45_000, "USD")
    assert texts.balance_spoken == "four hundred fifty dollars"
    assert "attempt to collect a debt" in texts.disclosure
    assert texts.confirmations["record_payment_promise"].startswith("Thank you.")
    assert "{" not in "".join(texts.confirmations.values())
