"""A campaign's own negotiation terms through the Client API (in-process app, real
PostgreSQL): stored and returned as sent, and terms no call could keep are a 422 naming the
field, with nothing stored."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.campaign import Campaign
from generated.negotiation_rules import NegotiationRules
from services.common.models.campaigns import Campaign as CampaignRow
from tests.campaigns.campaign_support import campaign_body

TERMS: dict[str, Any] = {
    "min_first_payment_minor": 5000,
    "min_first_payment_bp": 2000,
    "latest_first_payment_days": 10,
    "max_installments": 4,
    "max_plan_days": 120,
    "settlement_floor_bp": 7500,
}


async def test_a_campaigns_terms_are_stored_and_returned(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    resp = await api.post("/v1/campaigns", json=campaign_body(negotiation_rules=TERMS))
    assert resp.status_code == 201, resp.text
    created = Campaign.model_validate(resp.json())
    assert created.negotiation_rules == NegotiationRules(**TERMS)
    got = await api.get(f"/v1/campaigns/{created.id}")
    assert got.status_code == 200
    assert Campaign.model_validate(got.json()).negotiation_rules == NegotiationRules(**TERMS)
    async with sessions() as s:
        row = await s.get(CampaignRow, created.id)
        assert row is not None and row.negotiation_rules == TERMS
    # Without terms of its own: none (its calls get the stage's).
    plain = await api.post("/v1/campaigns", json=campaign_body())
    assert plain.status_code == 201, plain.text
    assert Campaign.model_validate(plain.json()).negotiation_rules is None


async def test_terms_no_call_could_keep_are_refused(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    field = "body.negotiation_rules.max_plan_days"
    cases = [
        # The plan would have to end before its first payment may fall due.
        (TERMS | {"max_plan_days": 9}, "at least latest_first_payment_days (10)"),
        # Several installments on one day.
        (TERMS | {"latest_first_payment_days": 0, "max_plan_days": 0}, "above 0"),
    ]
    async with sessions() as s:
        before = await s.scalar(select(func.count()).select_from(CampaignRow))
    for terms, words in cases:
        resp = await api.post("/v1/campaigns", json=campaign_body(negotiation_rules=terms))
        assert resp.status_code == 422, (terms, resp.text)
        problem = resp.json()
        assert problem["type"] == "urn:problem:validation-error"
        assert [e["field"] for e in problem["errors"]] == [field]
        assert words in problem["errors"][0]["message"]
    # The same limits are fine when they agree: single payments only on the day, or a plan
    # ending on the latest first-payment day.
    for terms in (
        TERMS | {"latest_first_payment_days": 0, "max_plan_days": 0, "max_installments": 1},
        TERMS | {"max_plan_days": 10},
    ):
        resp = await api.post("/v1/campaigns", json=campaign_body(negotiation_rules=terms))
        assert resp.status_code == 201, (terms, resp.text)
    async with sessions() as s:
        after = await s.scalar(select(func.count()).select_from(CampaignRow))
    assert after == (before or 0) + 2
