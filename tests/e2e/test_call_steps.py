"""Each call's steps through all three services, read at `GET /v1/calls/{call_id}/events`
(harness.py reads them once every call ended and its webhook arrived): the Client API's
trigger and webhook deliveries, the Call Scheduler's dispatch, the orchestrator's dial,
answer, conversation and end, in order; and each stored event written exactly once to the
JSON log of the service that recorded it, with the call id (docs/call-events.md)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest

from .harness import EXPECT, PERSONAS, SERVICES, E2ERun, Run, read_log

# Who records each step (docs/call-events.md).
OWNER = {
    "scheduled": "client-api",
    "dispatched": "call-scheduler",
    "webhook_delivered": "client-api",
    "webhook_failed": "client-api",
}
UNANSWERED_REASON = {"busy": "busy", "no_answer": "no_answer"}


@pytest.mark.parametrize("persona", PERSONAS)
def test_steps_in_order(runs: dict[str, Run], persona: str) -> None:
    run, want = runs[persona], EXPECT[persona]
    events = run.events
    names = [e["step"] for e in events]
    assert names[:3] == ["scheduled", "dispatched", "dialing"], names
    keys = [(datetime.fromisoformat(e["at"]), e["sequence"]) for e in events]
    assert keys == sorted(keys)
    assert all(e["call_id"] == run.call["id"] for e in events)
    (ended,) = [e for e in events if e["step"] == "ended"]
    assert (ended["detail"]["status"], ended["detail"]["outcome"]) == (want.status, want.outcome)
    assert ended["reason"] == UNANSWERED_REASON.get(persona), ended
    # The call.completed webhook, delivered once to the run's endpoint, after the end.
    (hook,) = [
        e
        for e in events
        if e["step"] == "webhook_delivered" and e["detail"]["event_type"] == "call.completed"
    ]
    assert names.index("webhook_delivered") > names.index("ended")
    assert hook["detail"]["status_code"] == 200 and hook["detail"]["webhook_attempt"] == 1
    if not want.answered:
        assert "answered" not in names and "recording_stored" not in names, names
        return
    assert {"ringing", "answered", "amd_result", "recording_stored"} <= set(names), names
    assert names.index("answered") < names.index("ended") < names.index("recording_stored")


@pytest.mark.parametrize("persona", [p for p, e in EXPECT.items() if e.outcome == "promise_to_pay"])
def test_a_promise_follows_verification(runs: dict[str, Run], persona: str) -> None:
    events = runs[persona].events
    names = [e["step"] for e in events]
    promised = [
        i
        for i, e in enumerate(events)
        if e["step"] == "tool_call"
        and e["detail"]["tool"] == "record_payment_promise"
        and e["detail"]["tool_result"] == "accepted"
    ]
    assert promised, names
    # The disclosure is heard before the promise is made, or in the turn that reads it back
    # (a disclosure said ahead in a turn lets the promise through; it is recorded as spoken
    # when that turn was heard in full, after the tool call).
    assert names.index("verified") < promised[0] and "disclosure_spoken" in names, names


def test_wrong_dob_fails_verification_and_nothing_is_disclosed(runs: dict[str, Run]) -> None:
    names = [e["step"] for e in runs["wrong_dob"].events]
    failed = [e for e in runs["wrong_dob"].events if e["step"] == "verification_failed"]
    assert [e["reason"] for e in failed] == ["fact_not_matched"]
    assert "verified" not in names and "disclosure_spoken" not in names, names


def test_injector_moves_are_rejected_with_their_reasons(runs: dict[str, Run]) -> None:
    tools = [e for e in runs["injector"].events if e["step"] == "tool_call"]
    rejected = [e for e in tools if e["detail"]["tool_result"] == "rejected"]
    assert rejected, tools
    assert all(e["reason"] is not None for e in rejected)
    assert all(e["reason"] is None for e in tools if e not in rejected)


def test_each_step_is_logged_once_by_its_service_with_the_call_id(e2e_run: E2ERun) -> None:
    logged: Counter[str] = Counter()
    where: dict[str, tuple[str, dict[str, object]]] = {}
    for service in SERVICES:
        for line in read_log(e2e_run, service):
            if line.data is None or line.data.get("event") != "call_step":
                continue
            event_id = str(line.data["step_event_id"])
            logged[event_id] += 1
            where[event_id] = (service, line.data)
    for run in e2e_run.runs.values():
        for e in run.events:
            assert logged[e["id"]] == 1, e
            service, data = where[e["id"]]
            assert service == OWNER.get(e["step"], "voice-orchestrator"), (service, e)
            assert data["call_id"] == e["call_id"]
            assert (data["step"], data["reason"], data["detail"]) == (
                e["step"],
                e["reason"],
                e["detail"],
            )
