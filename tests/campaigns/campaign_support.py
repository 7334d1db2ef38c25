"""Rows and requests for the campaign tests (real PostgreSQL, the real app in-process)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.models import Call, OutboxMessage
from services.common.models.campaigns import CampaignItem
from tests.helpers import sample_debtor


def campaign_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "December early stage",
        "stage": "early",
        "pacing": {"max_concurrent_calls": 2, "calls_per_minute": 10},
        "prompt_variants": {"default": 1},
        "metadata": {"portfolio": "spring-2026"},
    }
    return body | overrides


async def create_campaign(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    resp = await client.post("/v1/campaigns", json=campaign_body(**overrides))
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def new_debtors(
    sessions: async_sessionmaker[AsyncSession], n: int, **fields: Any
) -> list[uuid.UUID]:
    async with sessions() as s, s.begin():
        debtors = [sample_debtor(name=f"Campaign Debtor {i}", **fields) for i in range(n)]
        s.add_all(debtors)
        await s.flush()
        return [d.id for d in debtors]


async def assign(client: httpx.AsyncClient, campaign_id: str, debtor_ids: list[uuid.UUID]) -> Any:
    resp = await client.post(
        f"/v1/campaigns/{campaign_id}/debtors", json={"debtor_ids": [str(d) for d in debtor_ids]}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


async def act(
    client: httpx.AsyncClient, campaign_id: str, action: str, reason: str | None = None
) -> httpx.Response:
    body = {"reason": reason} if reason is not None else None
    return await client.post(f"/v1/campaigns/{campaign_id}/{action}", json=body)


async def items_of(
    sessions: async_sessionmaker[AsyncSession], campaign_id: uuid.UUID | str
) -> list[CampaignItem]:
    async with sessions() as s:
        return list(
            (
                await s.scalars(
                    select(CampaignItem)
                    .where(CampaignItem.campaign_id == uuid.UUID(str(campaign_id)))
                    .order_by(CampaignItem.created_at, CampaignItem.id)
                )
            ).all()
        )


async def calls_of(
    sessions: async_sessionmaker[AsyncSession], campaign_id: uuid.UUID | str
) -> list[Call]:
    async with sessions() as s:
        return list(
            (
                await s.scalars(
                    select(Call)
                    .join(CampaignItem, CampaignItem.call_id == Call.id)
                    .where(CampaignItem.campaign_id == uuid.UUID(str(campaign_id)))
                )
            ).all()
        )


async def outbox_of_type(
    sessions: async_sessionmaker[AsyncSession], ce_type: str
) -> list[OutboxMessage]:
    async with sessions() as s:
        return list(
            (await s.scalars(select(OutboxMessage).where(OutboxMessage.ce_type == ce_type))).all()
        )
