"""`GET /v1/stats/cost` against hand-computed figures over calls with known outcomes and costs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.models import Call
from services.common.pricing import per_unit
from tests.client_api.conftest import create_debtor


async def test_cost_per_connected_call_and_per_promise(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # A range of its own, years back, so no other test's calls fall in it.
    start = datetime(2020, 1, 6, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 1000)
    calls = [
        # (answered, outcome, total cost µUSD)
        (True, "promise_to_pay", 120_001),
        (True, "promise_to_pay", 80_000),
        (True, "refused", 60_000),
        (True, "callback_scheduled", 45_500),
        (False, "no_answer", 0),
        (False, "no_answer", None),  # no cost recorded: counts as zero
    ]
    debtors = [await create_debtor(client) for _ in calls]
    async with sessions() as s, s.begin():
        for i, ((answered, outcome, total), debtor) in enumerate(zip(calls, debtors, strict=True)):
            created = start + timedelta(hours=i)
            s.add(
                Call(
                    debtor_id=uuid.UUID(debtor["id"]),
                    stage="early",
                    status="completed" if answered else "no_answer",
                    outcome=outcome,
                    created_at=created,
                    answered_at=created + timedelta(seconds=5) if answered else None,
                    cost=None if total is None else {"total_micro_usd": total},
                )
            )
        # Just outside the range on both sides: must not count.
        for created in (start - timedelta(seconds=1), start + timedelta(days=1)):
            s.add(
                Call(
                    debtor_id=uuid.UUID(debtors[0]["id"]),
                    stage="early",
                    status="completed",
                    outcome="promise_to_pay",
                    created_at=created,
                    answered_at=created,
                    cost={"total_micro_usd": 999_999},
                )
            )

    resp = await client.get(
        "/v1/stats/cost",
        params={"from": start.isoformat(), "to": (start + timedelta(days=1)).isoformat()},
    )
    assert resp.status_code == 200, resp.text
    total = 120_001 + 80_000 + 60_000 + 45_500
    assert resp.json() == {
        "from": start.isoformat().replace("+00:00", "Z"),
        "to": (start + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
        "calls": 6,
        "connected_calls": 4,
        "promises": 2,
        "total_cost_micro_usd": total,
        "cost_per_connected_call_micro_usd": 76_375,  # 305_501 / 4 = 76_375.25
        "cost_per_promise_micro_usd": 152_751,  # 305_501 / 2 = 152_750.5 → half up
    }


async def test_empty_range_and_bad_ranges(client: httpx.AsyncClient) -> None:
    empty = await client.get(
        "/v1/stats/cost", params={"from": "1999-01-01T00:00:00Z", "to": "1999-01-02T00:00:00Z"}
    )
    assert empty.status_code == 200
    body = empty.json()
    assert body["calls"] == 0 and body["total_cost_micro_usd"] == 0
    assert body["cost_per_connected_call_micro_usd"] is None
    assert body["cost_per_promise_micro_usd"] is None
    for params, field in (
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "query.to"),
        ({"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "query.to"),
        ({"from": "2026-01-01T00:00:00", "to": "2026-01-02T00:00:00Z"}, "query.from"),
    ):
        resp = await client.get("/v1/stats/cost", params=params)
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert field in [e["field"] for e in resp.json()["errors"]]
    missing = await client.get("/v1/stats/cost")
    assert missing.status_code == 422


def test_per_unit_rounding() -> None:
    assert per_unit(10, 4) == 3  # 2.5 → 3
    assert per_unit(9, 4) == 2  # 2.25 → 2
    assert per_unit(0, 3) == 0
    assert per_unit(5, 0) is None
