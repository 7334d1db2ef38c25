"""Client-side steps shared by the demo, the benchmarks and the e2e tests: what a client
developer does with the REST API (plus persona assignment on the simulated phone network)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import date, timedelta
from typing import Any

import httpx

TERMINAL = {"completed", "busy", "no_answer", "failed", "canceled"}
# 555-0100..0199 is reserved for fiction in every NANP area code, and valid E.164.
_AREA_CODES = ("202", "212", "305", "312", "415", "617", "713", "206", "503", "720")


def fictional_number(i: int) -> str:
    area = _AREA_CODES[(i // 100) % len(_AREA_CODES)]
    return f"+1{area}555{100 + i % 100:04d}"


async def assign_persona(sim: httpx.AsyncClient, phone: str, persona: str) -> None:
    r = await sim.post("/_sim/numbers", json={"number": phone, "persona": persona})
    r.raise_for_status()


async def create_debtor(
    api: httpx.AsyncClient,
    phone: str,
    stage: str = "early",
    amount_minor: int = 45_000,
    name: str = "Jordan Rivera",
    facts: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`facts`: what the debtor record holds for right-party verification (`date_of_birth`,
    `postal_code`, `account_reference`), e.g. a persona's `facts`. Without them the agent can
    confirm the name only (`verification: name_only`)."""
    r = await api.post(
        "/v1/debtors",
        json={
            "name": name,
            "phone": phone,
            "timezone": "America/New_York",
            "stage": stage,
            "amount_owed": {"amount_minor": amount_minor, "currency": "USD"},
            "due_date": (date.today() - timedelta(days=12)).isoformat(),
            "external_id": f"ext-{uuid.uuid4().hex[:12]}",
            **(facts or {}),
        },
    )
    r.raise_for_status()
    debtor: dict[str, Any] = r.json()
    return debtor


async def trigger_call(api: httpx.AsyncClient, debtor_id: str) -> dict[str, Any]:
    r = await api.post(
        f"/v1/debtors/{debtor_id}/calls",
        json={},
        headers={"Idempotency-Key": f"trigger-{uuid.uuid4()}"},
    )
    r.raise_for_status()
    call: dict[str, Any] = r.json()
    return call


async def wait_terminal(
    api: httpx.AsyncClient, call_ids: list[str], timeout_s: float, interval_s: float = 0.5
) -> dict[str, dict[str, Any]]:
    """Poll until every call is in a terminal status (or the timeout); returns the last views."""
    views: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    pending = set(call_ids)
    while pending and time.monotonic() < deadline:
        for cid in list(pending):
            views[cid] = (await api.get(f"/v1/calls/{cid}")).json()
            if views[cid]["status"] in TERMINAL and views[cid].get("outcome"):
                pending.discard(cid)
        if pending:
            await asyncio.sleep(interval_s)
    for cid in pending:
        views[cid] = (await api.get(f"/v1/calls/{cid}")).json()
    return views
