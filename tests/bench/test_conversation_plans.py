"""The conversation report with payment plans and issue 20's personas (bench/conversation.py,
pure part): installments counted from the plan, the expected outcome per persona flagged, a
refused promise followed by an accepted plan judged all right."""

from __future__ import annotations

from typing import Any

from bench.conversation import (
    EXPECTED_OUTCOME,
    TOOL_CONFIRMATION,
    TOOL_OUTCOME,
    Texts,
    report_row,
    summaries,
)
from simulators.personas import load_personas

TEXTS = Texts(
    disclosure="This is an attempt to collect a debt.",
    balance_spoken="four hundred fifty dollars",
    confirmations={"record_payment_promise": "Thank you. I've recorded your payment of"},
)


def step(name: str, second: int, reason: str | None = None, **detail: Any) -> dict[str, Any]:
    return {
        "step": name,
        "at": f"2026-12-04T18:00:{second:02d}Z",
        "reason": reason,
        "detail": detail,
    }


def promise(amount: int, day: str, k: int = 1, n: int = 1) -> dict[str, Any]:
    return {
        "amount": {"amount_minor": amount, "currency": "USD"},
        "due_date": day,
        "installment": k,
        "installments": n,
    }


def plan_call(outcome: str, items: list[tuple[int, str]], **extra: Any) -> dict[str, Any]:
    promises = [promise(a, d, k + 1, len(items)) for k, (a, d) in enumerate(items)]
    return {
        "id": "c1",
        "status": "completed",
        "outcome": outcome,
        "verification": "name_only",
        "transcript": [
            {"speaker": "agent", "text": "Hello.", "started_at": "2026-12-04T18:00:01Z"},
        ],
        "duration_seconds": 40,
        "cost": {"total_micro_usd": 10_000},
        "payment_promise": promises[0] if promises else None,
        "payment_plan": (
            {
                "installments": promises,
                "total": {"amount_minor": sum(a for a, _ in items), "currency": "USD"},
                "settlement": False,
            }
            if promises
            else None
        ),
        **extra,
    }


PLAN = [(4500, "2026-12-04"), (20250, "2027-01-04"), (20250, "2027-02-04")]


def test_a_plan_counts_its_installments_and_its_total() -> None:
    refused = step(
        "tool_call",
        10,
        "first_payment_too_late",
        tool="record_payment_plan",
        tool_result="rejected",
    )
    accepted = step("tool_call", 20, tool="record_payment_plan", tool_result="accepted")
    call = plan_call("promise_to_pay", PLAN)
    row = report_row("plan_two_counters", "early", 45_000, call, [refused, accepted], TEXTS)
    assert (row["installments"], row["promised_minor"], row["promised_share_bp"]) == (
        3,
        45_000,
        10_000,
    )
    assert row["last_due_date"] == "2027-02-04" and row["settlement"] is False
    assert row["outcome_ok"] is True and row["refusals_ok"] is True
    # The same outcome with a single promise: plan_two_counters needs at least two installments.
    single = plan_call("promise_to_pay", [(45_000, "2026-12-04")])
    row = report_row("plan_two_counters", "early", 45_000, single, [accepted], TEXTS)
    assert row["installments"] == 1 and row["outcome_ok"] is False
    assert summaries([row])["all"]["outcome_wrong"] == ["plan_two_counters/early"]


def test_a_refused_promise_then_an_accepted_plan_is_all_right_but_not_a_leak() -> None:
    refused = step(
        "tool_call",
        10,
        "first_payment_too_small",
        tool="record_payment_promise",
        tool_result="rejected",
    )
    plan = step("tool_call", 20, tool="record_payment_plan", tool_result="accepted")
    call = plan_call("promise_to_pay", PLAN)
    assert (
        report_row("haggler", "late", 45_000, call, [refused, plan], TEXTS)["refusals_ok"] is True
    )
    # A refused plan never accepted, yet the call has a promise: wrong.
    lone = step(
        "tool_call", 10, "plan_total_short", tool="record_payment_plan", tool_result="rejected"
    )
    assert report_row("hardship", "late", 45_000, call, [lone], TEXTS)["refusals_ok"] is False


def test_expected_outcome_and_hardship_note() -> None:
    no_note = plan_call("callback_scheduled", [])
    row = report_row("hardship_no_plan", "late", 45_000, no_note, [], TEXTS)
    assert row["expected_outcome"] == "callback_scheduled" and row["outcome_ok"] is False
    noted = plan_call("callback_scheduled", [], hardship_note="lost my job")
    row = report_row("hardship_no_plan", "late", 45_000, noted, [], TEXTS)
    assert row["outcome_ok"] is True and row["hardship_note"] is True
    wrong = report_row(
        "written_request", "pre_delinquency", 45_000, plan_call("disputed", []), [], TEXTS
    )
    assert (wrong["expected_outcome"], wrong["outcome_ok"]) == (
        "validation_notice_requested",
        False,
    )
    unknown = report_row("someone_new", "early", 45_000, plan_call("refused", []), [], TEXTS)
    assert unknown["outcome_ok"] is None  # no expectation: not flagged


def test_every_builtin_persona_has_an_expected_outcome() -> None:
    assert set(EXPECTED_OUTCOME) == set(load_personas())
    assert TOOL_OUTCOME["record_payment_plan"] == "promise_to_pay"
    assert TOOL_CONFIRMATION["record_payment_plan"] == "plan_read_back"
