"""The schedule through the Client API: a trigger's scheduled time, holds that refuse triggers
until an operator lifts them (with a reason that is kept), the debtor's pending schedule and the
schedule parts of the debtor view. Against the real server process and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scripts.processes import ServiceProcess
from services.common.models import DebtorHold
from tests.client_api.conftest import API_KEY, client_api_process, create_debtor
from tests.scheduler.schedule_support import zone_at_night


async def _hold(
    sessions: async_sessionmaker[AsyncSession], debtor_id: str, kind: str = "opt_out"
) -> DebtorHold:
    async with sessions() as s, s.begin():
        hold = DebtorHold(
            id=uuid.uuid4(),
            debtor_id=uuid.UUID(debtor_id),
            kind=kind,
            reason="the debtor asked not to be called again (call outcome opted_out)",
        )
        s.add(hold)
    return hold


async def test_trigger_is_scheduled_and_listed(client: httpx.AsyncClient) -> None:
    debtor = await create_debtor(client)
    assert debtor["holds"] == [] and debtor["next_scheduled_call"] is None
    assert debtor["call_attempts"] == {"count": 0, "limit": 7, "period_days": 7}
    before = datetime.now(UTC)
    resp = await client.post(f"/v1/debtors/{debtor['id']}/calls")
    assert resp.status_code == 202, resp.text
    call = resp.json()
    assert call["status"] == "queued" and call["attempt"] == 1
    scheduled = datetime.fromisoformat(call["scheduled_for"])
    assert before - timedelta(seconds=1) <= scheduled <= datetime.now(UTC)  # window open: now
    schedule = (await client.get(f"/v1/debtors/{debtor['id']}/schedule")).json()["data"]
    [entry] = schedule
    assert entry["reason"] == "manual" and entry["call_id"] == call["id"]
    assert entry["follows_call_id"] is None and entry["attempt"] == 1
    assert entry["not_before"] == call["scheduled_for"]
    view = (await client.get(f"/v1/debtors/{debtor['id']}")).json()
    assert view["next_scheduled_call"] == entry
    got = (await client.get(f"/v1/calls/{call['id']}")).json()
    assert got["scheduled_for"] == call["scheduled_for"] and got["attempt"] == 1


async def test_debtor_without_a_time_zone(client: httpx.AsyncClient) -> None:
    body = await create_debtor(client, timezone=None)
    assert body["timezone"] is None
    resp = await client.post(f"/v1/debtors/{body['id']}/calls")
    assert resp.status_code == 202, resp.text


async def test_hold_refuses_triggers_until_lifted_with_a_reason(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    debtor = await create_debtor(client)
    hold = await _hold(sessions, debtor["id"])
    refused = await client.post(f"/v1/debtors/{debtor['id']}/calls")
    assert refused.status_code == 409
    problem = refused.json()
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert problem["type"] == "urn:problem:debtor-on-hold"
    assert "opt_out" in problem["detail"] and str(hold.id) in problem["detail"]
    view = (await client.get(f"/v1/debtors/{debtor['id']}")).json()
    [shown] = view["holds"]
    assert shown["id"] == str(hold.id) and shown["kind"] == "opt_out"
    assert shown["lifted_at"] is None and shown["lifted_reason"] is None

    lift = f"/v1/debtors/{debtor['id']}/holds/{hold.id}/lift"
    assert (await client.post(lift, json={})).status_code == 422
    blank = await client.post(lift, json={"reason": "   "})
    assert blank.status_code == 422 and blank.json()["errors"][0]["field"] == "body.reason"
    other = f"/v1/debtors/{uuid.uuid4()}/holds/{hold.id}/lift"
    assert (await client.post(other, json={"reason": "x"})).status_code == 404
    reason = "debtor called in and asked to be contacted again"
    lifted = await client.post(lift, json={"reason": reason})
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["lifted_reason"] == reason and lifted.json()["lifted_at"] is not None
    again = await client.post(lift, json={"reason": reason})
    assert again.status_code == 409 and again.json()["type"] == "urn:problem:hold-already-lifted"
    view = (await client.get(f"/v1/debtors/{debtor['id']}")).json()
    assert view["holds"][0]["lifted_reason"] == reason  # kept
    assert (await client.post(f"/v1/debtors/{debtor['id']}/calls")).status_code == 202


async def test_schedule_of_unknown_debtor_is_404(client: httpx.AsyncClient) -> None:
    resp = await client.get(f"/v1/debtors/{uuid.uuid4()}/schedule")
    assert resp.status_code == 404 and resp.json()["type"] == "urn:problem:not-found"


@pytest.fixture(scope="module")
def daytime_server() -> Iterator[ServiceProcess]:
    """A Client API with the production calling window (08:00-21:00)."""
    server = client_api_process("client-api-window-")
    server.env.update({"CALL_WINDOW_START": "08:00", "CALL_WINDOW_END": "21:00"})
    server.start()
    try:
        server.wait_healthy(timeout=60)
        yield server
    finally:
        server.stop()


@pytest.fixture
async def daytime_client(daytime_server: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=daytime_server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
    ) as c:
        yield c


async def test_trigger_outside_the_window_is_held_until_it_opens(
    daytime_client: httpx.AsyncClient,
) -> None:
    zone = zone_at_night(datetime.now(UTC))
    debtor = await create_debtor(daytime_client, timezone=zone)
    resp = await daytime_client.post(f"/v1/debtors/{debtor['id']}/calls")
    assert resp.status_code == 202, resp.text
    call = resp.json()
    assert call["status"] == "queued"
    local = datetime.fromisoformat(call["scheduled_for"]).astimezone(ZoneInfo(zone))
    assert (local.hour, local.minute) == (8, 0)
    assert datetime.fromisoformat(call["scheduled_for"]) > datetime.now(UTC)
    view = (await daytime_client.get(f"/v1/debtors/{debtor['id']}")).json()
    assert view["next_scheduled_call"]["not_before"] == call["scheduled_for"]
