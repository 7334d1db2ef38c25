"""The demo's second act for `--persona busy` and `--persona callback_later`: what the Call
Scheduler does after the first call ends (the retry with its backoff, the agreed callback), and
the follow-up call it places."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

FOLLOW_UP_PERSONAS = ("busy", "callback_later")
# Short backoff so the demo's retry is placed within seconds (production: 15 min doubling).
DEMO_ENV = {"RETRY_BASE_SECONDS": "6", "RETRY_CAP_SECONDS": "30", "SCHEDULER_TICK_SECONDS": "1"}


async def wait_for_entry(
    api: httpx.AsyncClient, debtor_id: str, timeout_s: float = 30.0
) -> dict[str, Any] | None:
    """The debtor's first pending schedule entry, once the scheduler has made it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        data = (await api.get(f"/v1/debtors/{debtor_id}/schedule")).json()["data"]
        if data:
            entry: dict[str, Any] = data[0]
            return entry
        await asyncio.sleep(0.25)
    return None


async def wait_for_new_call(
    api: httpx.AsyncClient, debtor_id: str, known: set[str], timeout_s: float
) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page = (await api.get("/v1/calls", params={"debtor_id": debtor_id})).json()["data"]
        fresh = [c for c in page if c["id"] not in known]
        if fresh:
            call: dict[str, Any] = fresh[0]
            return call
        await asyncio.sleep(0.25)
    return None


async def fast_forward(database_url: str, entry_id: str) -> None:
    """Simulated time: the agreed callback is hours away, so the demo moves this one entry's
    time to now. The scheduler then checks it exactly as it would at the agreed time."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE scheduled_calls SET not_before = now() WHERE id = :id"),
                {"id": entry_id},
            )
    finally:
        await engine.dispose()


def describe_entry(entry: dict[str, Any], say: Callable[[str], None]) -> float:
    when = datetime.fromisoformat(entry["not_before"])
    wait = (when - datetime.now(UTC)).total_seconds()
    say(
        f"  schedule entry {entry['id']}: {entry['reason']}, attempt {entry['attempt']}, "
        f"not before {entry['not_before']} (in {max(wait, 0):.0f} s), follows call "
        f"{entry['follows_call_id']}"
    )
    return wait
