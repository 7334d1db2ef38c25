"""One simulated call, step by step, read back through `GET /v1/calls/{call_id}/events`.

The questioner is triggered through the Client API (in-process), its schedule row decided by
the Call Scheduler's worker (in-process, that row only: other packages' rows are not ours to
dial), and placed by this package's orchestrator (its outbox relay publishes the dispatch).
She confirms, asks to pay next month (the guard refuses the date) and then promises: the
steps are stored in order with their guard results and reasons, and each is in the JSON logs
with the call id."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from services.call_scheduler.worker import ScheduleWorker
from services.common.logging import configure_logging
from services.common.models import Debtor, ScheduledCall
from tests.call_steps.steps_support import all_events, api_client, steps
from tests.orchestrator.conftest import BALANCE_MINOR, TZ, Orch
from tests.scheduler.schedule_support import scheduler_settings


def _subsequence(wanted: list[Any], seen: list[Any]) -> bool:
    it = iter(seen)
    return all(any(w == s for s in it) for w in wanted)


async def test_questioner_call_steps_in_order(orch: Orch) -> None:
    logs = io.StringIO()
    configure_logging("test", "INFO", stream=logs)
    try:
        events = await _run_questioner(orch)
    finally:
        configure_logging("test", "INFO")

    names = steps(events)
    assert names[:5] == ["scheduled", "dispatched", "dialing", "ringing", "answered"], names
    assert names[-2:] == ["ended", "recording_stored"], names
    assert names.count("ended") == 1 and names.count("verified") == 1
    assert "amd_result" in names
    ats = [(datetime.fromisoformat(e["at"]), e["sequence"]) for e in events]
    assert ats == sorted(ats)

    by_step = {e["step"]: e for e in events}
    assert by_step["amd_result"]["detail"] == {"answered_by": "human"}
    assert by_step["dialing"]["detail"] == {"dial_attempt": 1}
    assert by_step["verified"]["detail"] == {"verification": "name_only"}
    ended = by_step["ended"]
    assert ended["reason"] is None
    assert ended["detail"]["status"] == "completed"
    assert ended["detail"]["outcome"] == "promise_to_pay"
    assert ended["detail"]["duration_seconds"] > 0

    tools = [
        (e["detail"]["tool"], e["detail"]["tool_result"], e["reason"])
        for e in events
        if e["step"] == "tool_call"
    ]
    assert _subsequence(
        [
            ("confirm_identity", "accepted", None),
            ("record_payment_promise", "rejected", "date_too_late"),
            ("record_payment_promise", "accepted", None),
        ],
        tools,
    ), tools
    # Verified by confirm_identity, the disclosure heard after it, the promise after that.
    order = [(e["step"], e["detail"].get("tool")) for e in events if e["step"] != "amd_result"]
    assert _subsequence(
        [
            ("tool_call", "confirm_identity"),
            ("verified", None),
            ("disclosure_spoken", None),
            ("tool_call", "record_payment_promise"),
            ("ended", None),
        ],
        order,
    ), order

    # The same events went to the JSON logs, with the call id.
    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    logged = {
        line["step_event_id"]: line
        for line in lines
        if line.get("event") == "call_step" and line.get("call_id") == events[0]["call_id"]
    }
    assert set(logged) == {e["id"] for e in events}
    for e in events:
        assert logged[e["id"]]["step"] == e["step"] and logged[e["id"]]["reason"] == e["reason"]


async def _run_questioner(orch: Orch) -> list[dict[str, Any]]:
    number = await orch.assign("questioner")
    today = datetime.now(ZoneInfo(TZ)).date()
    async with orch.sessions() as s, s.begin():
        debtor = Debtor(
            name="Jordan Steps",
            phone=number,
            timezone=TZ,
            stage="early",
            amount_owed_minor=BALANCE_MINOR,
            currency="USD",
            due_date=today - timedelta(days=20),
            account_reference="ACC-1",
        )
        s.add(debtor)
    cfg = scheduler_settings(orch.settings)
    async with api_client(cfg) as client:
        resp = await client.post(f"/v1/debtors/{debtor.id}/calls", json={})
        assert resp.status_code == 202, resp.text
        call_id = uuid.UUID(resp.json()["id"])
        worker = ScheduleWorker(orch.sessions, cfg)
        async with orch.sessions() as s, s.begin():
            row = await s.scalar(
                select(ScheduledCall).where(ScheduledCall.call_id == call_id).with_for_update()
            )
            assert row is not None
            await worker._decide_row(s, row, datetime.now(UTC))
        call = await orch.wait_terminal(call_id, within=120)
        assert call.outcome == "promise_to_pay", call.failure_reason
        for _ in range(40):  # the finalize transaction has committed once the status is terminal
            events = await all_events(client, call_id)
            if "recording_stored" in steps(events):
                return events
            await asyncio.sleep(0.1)
        return events
