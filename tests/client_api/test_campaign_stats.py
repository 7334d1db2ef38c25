"""`GET /v1/campaigns/{id}/stats` against hand-computed figures over seeded rows in PostgreSQL:
calls of two variants (and one retired), follow-up chains, AMD verdicts, verification levels,
promise statuses and stored costs; calls outside the campaign must not count."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.campaign_funnel import FunnelCounts, funnel, rate_bp
from services.common.models import Call, PaymentPromise, ScheduledCall
from services.common.models.campaigns import Campaign, CampaignItem
from tests.client_api.conftest import create_debtor

T0 = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Seed:
    """One call. `follows`: the key of the call it follows up (retry/callback), else an item's."""

    key: str
    variant: str | None
    placed: bool = True
    answered_by: str | None = "human"  # None with placed: not answered
    outcome: str | None = None
    verification: str = "none"
    promise: str | None = None  # the promise's status
    cost: int | None = None
    follows: str | None = None


SEEDS = [
    # default: 4 placed (d3 twice), 3 connected, 2 right-party, 2 promises (1 kept, 1 broken)
    Seed(
        "d1",
        "default",
        outcome="promise_to_pay",
        verification="name_only",
        promise="kept",
        cost=100_000,
    ),
    Seed(
        "d2",
        "default",
        outcome="promise_to_pay",
        verification="name_and_fact",
        promise="broken",
        cost=90_000,
    ),
    Seed("d3", "default", answered_by="machine_end_beep", outcome="voicemail", cost=30_000),
    Seed("d3r", "default", outcome="wrong_party", cost=40_000, follows="d3"),
    Seed("d4", "default", placed=False, answered_by=None),  # dispatched, never dialed
    # plan_first: 6 placed, 5 connected, 5 right-party, 4 promises (pending, partial, 2 kept)
    Seed(
        "p1",
        "plan_first",
        outcome="promise_to_pay",
        verification="name_only",
        promise="pending",
        cost=110_001,
    ),
    Seed(
        "p2",
        "plan_first",
        outcome="promise_to_pay",
        verification="name_only",
        promise="partially_kept",
        cost=70_000,
    ),
    Seed(
        "p3",
        "plan_first",
        outcome="promise_to_pay",
        verification="name_and_fact",
        promise="kept",
        cost=80_000,
    ),
    Seed("p4", "plan_first", answered_by=None, outcome="no_answer", cost=5_000),
    Seed(
        "p4r",
        "plan_first",
        outcome="callback_scheduled",
        verification="name_only",
        cost=60_000,
        follows="p4",
    ),
    Seed(
        "p4rc",
        "plan_first",
        outcome="promise_to_pay",
        verification="name_only",
        promise="kept",
        cost=50_000,
        follows="p4r",
    ),
    # A variant no longer in the weights: placed, not answered.
    Seed("r1", "retired_one", answered_by=None, outcome="no_answer", cost=2_000),
    # Not dispatched yet: no variant, nothing to count.
    Seed("q1", None, placed=False, answered_by=None),
]


async def _seed_call(s: AsyncSession, debtor_id: uuid.UUID, seed: Seed, at: datetime) -> Call:
    placed = seed.placed
    answered = placed and seed.answered_by is not None
    call = Call(
        id=uuid.uuid4(),
        debtor_id=debtor_id,
        stage="late",
        status=("completed" if answered else "no_answer") if placed else "canceled",
        outcome=seed.outcome,
        prompt_variant=seed.variant,
        prompt_version=f"policy@1+late/{seed.variant}@1" if seed.variant else None,
        created_at=at,
        dispatched_at=at if seed.variant else None,
        started_at=at + timedelta(seconds=1) if placed else None,
        answered_at=at + timedelta(seconds=6) if answered else None,
        answered_by=seed.answered_by if answered else None,
        ended_at=at + timedelta(seconds=60),
        verification=seed.verification,
        cost=None if seed.cost is None else {"total_micro_usd": seed.cost},
    )
    s.add(call)
    await s.flush()
    if seed.promise is not None:
        s.add(
            PaymentPromise(
                call_id=call.id,
                amount_minor=10_000,
                currency="USD",
                due_date=date(2026, 12, 5),
                status=seed.promise,
                paid_minor={"kept": 10_000, "partially_kept": 4_000}.get(seed.promise, 0),
            )
        )
    return call


async def _campaign(s: AsyncSession, weights: dict[str, int], name: str = "stats test") -> Campaign:
    campaign = Campaign(
        id=uuid.uuid4(),
        name=name,
        status="completed",
        stage="late",
        prompt_variants=weights,
        max_concurrent_calls=5,
        calls_per_minute=10,
    )
    s.add(campaign)
    await s.flush()
    return campaign


async def test_stats_per_campaign_and_per_variant_from_stored_facts(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    roots = [seed for seed in SEEDS if seed.follows is None]
    debtors = {seed.key: uuid.UUID((await create_debtor(client))["id"]) for seed in roots}
    for seed in SEEDS:  # a follow-up calls the same debtor as the call it follows
        if seed.follows is not None:
            debtors[seed.key] = debtors[seed.follows]
    async with sessions() as s, s.begin():
        campaign = await _campaign(s, {"default": 1, "plan_first": 1, "unused_arm": 0})
        other = await _campaign(s, {"default": 1}, name="another campaign")
        calls: dict[str, Call] = {}
        for i, seed in enumerate(SEEDS):
            calls[seed.key] = await _seed_call(s, debtors[seed.key], seed, T0 + timedelta(hours=i))
            if seed.follows is None:
                s.add(
                    CampaignItem(
                        campaign_id=campaign.id,
                        debtor_id=debtors[seed.key],
                        status="done",
                        call_id=calls[seed.key].id,
                    )
                )
            else:
                s.add(
                    ScheduledCall(
                        debtor_id=debtors[seed.key],
                        source_call_id=calls[seed.follows].id,
                        call_id=calls[seed.key].id,
                        reason="callback" if seed.key.endswith("c") else "retry",
                        status="dispatched",
                        not_before=T0,
                    )
                )
        # Calls of the same debtors that are not this campaign's: never counted.
        outside = Seed(
            "x",
            "default",
            outcome="promise_to_pay",
            verification="name_only",
            promise="kept",
            cost=999_999,
        )
        await _seed_call(s, debtors["d1"], outside, T0 - timedelta(days=1))
        theirs = await _seed_call(s, debtors["p1"], outside, T0 - timedelta(days=2))
        s.add(
            CampaignItem(
                campaign_id=other.id, debtor_id=debtors["p1"], status="done", call_id=theirs.id
            )
        )

    resp = await client.get(f"/v1/campaigns/{campaign.id}/stats")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["campaign_id"] == str(campaign.id)
    assert datetime.fromisoformat(body["computed_at"]) > T0
    # Hand-checked figures (rates in basis points, half up; money in micro-USD, half up).
    default = {
        "calls_placed": 4,
        "connected_calls": 3,  # d3 reached a machine
        "right_party_contacts": 2,
        "promises": 2,
        "promises_judged": 2,
        "promises_kept": 1,
        "total_cost_micro_usd": 260_000,
        "connection_rate_bp": 7_500,
        "right_party_contact_rate_bp": 6_667,  # 2/3
        "promise_rate_bp": 10_000,
        "kept_rate_bp": 5_000,
        "cost_per_call_micro_usd": 65_000,
        "cost_per_kept_promise_micro_usd": 260_000,
    }
    plan_first = {
        "calls_placed": 6,
        "connected_calls": 5,  # p4 was not answered
        "right_party_contacts": 5,
        "promises": 4,
        "promises_judged": 3,  # the pending one is not judged yet
        "promises_kept": 2,
        "total_cost_micro_usd": 375_001,
        "connection_rate_bp": 8_333,  # 5/6
        "right_party_contact_rate_bp": 10_000,
        "promise_rate_bp": 8_000,
        "kept_rate_bp": 6_667,  # 2/3
        "cost_per_call_micro_usd": 62_500,  # 62,500.17
        "cost_per_kept_promise_micro_usd": 187_501,  # 187,500.5
    }
    retired = {
        "calls_placed": 1,
        "connected_calls": 0,
        "right_party_contacts": 0,
        "promises": 0,
        "promises_judged": 0,
        "promises_kept": 0,
        "total_cost_micro_usd": 2_000,
        "connection_rate_bp": 0,
        "right_party_contact_rate_bp": None,
        "promise_rate_bp": None,
        "kept_rate_bp": None,
        "cost_per_call_micro_usd": 2_000,
        "cost_per_kept_promise_micro_usd": None,
    }
    nothing = funnel(FunnelCounts())
    assert body["variants"] == [
        {"variant": "default", "weight": 1, "funnel": default},
        {"variant": "plan_first", "weight": 1, "funnel": plan_first},
        {"variant": "retired_one", "weight": None, "funnel": retired},
        {"variant": "unused_arm", "weight": 0, "funnel": nothing},
    ]
    assert body["total"] == {
        "calls_placed": 11,
        "connected_calls": 8,
        "right_party_contacts": 7,
        "promises": 6,
        "promises_judged": 5,
        "promises_kept": 3,
        "total_cost_micro_usd": 637_001,
        "connection_rate_bp": 7_273,  # 8/11 = 72.727 %
        "right_party_contact_rate_bp": 8_750,
        "promise_rate_bp": 8_571,  # 6/7
        "kept_rate_bp": 6_000,
        "cost_per_call_micro_usd": 57_909,  # 57,909.18
        "cost_per_kept_promise_micro_usd": 212_334,  # 212,333.67
    }

    # The other campaign sees only its own call.
    theirs_body = (await client.get(f"/v1/campaigns/{other.id}/stats")).json()
    assert theirs_body["total"]["calls_placed"] == 1
    assert theirs_body["total"]["total_cost_micro_usd"] == 999_999


async def test_a_campaign_without_calls_and_an_unknown_one(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as s, s.begin():
        campaign = await _campaign(s, {})
    resp = await client.get(f"/v1/campaigns/{campaign.id}/stats")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert body["total"] == funnel(FunnelCounts())
    assert all(
        body["total"][k] is None
        for k in body["total"]
        if k.endswith(("_bp", "_usd")) and k != "total_cost_micro_usd"
    )
    assert body["variants"] == [{"variant": "default", "weight": None, "funnel": body["total"]}]

    missing = await client.get(f"/v1/campaigns/{uuid.uuid4()}/stats")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    bad = await client.get("/v1/campaigns/not-a-uuid/stats")
    assert bad.status_code == 422


def test_rate_rounding() -> None:
    assert rate_bp(2, 3) == 6_667
    assert rate_bp(1, 3) == 3_333
    assert rate_bp(1, 20_000) == 1  # 0.5 bp -> 1
    assert rate_bp(1, 20_001) == 0
    assert rate_bp(0, 5) == 0 and rate_bp(5, 5) == 10_000
    assert rate_bp(1, 0) is None


async def test_a_payment_plan_is_one_promise_made_and_each_installment_is_judged(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Three installments (kept, broken, pending) on one call: the call is placed, connected and
    paid for once; it made one promise; two installments have a verdict, one of them kept."""
    debtors = [uuid.UUID((await create_debtor(client))["id"]) for _ in range(2)]
    plan = Seed("plan", "default", outcome="promise_to_pay", verification="name_only", cost=80_000)
    single = Seed(
        "one", "default", outcome="promise_to_pay", verification="name_only", promise="kept",
        cost=20_000,
    )  # fmt: skip
    async with sessions() as s, s.begin():
        campaign = await _campaign(s, {"default": 1}, name="plan stats")
        for debtor_id, seed in zip(debtors, (plan, single), strict=True):
            call = await _seed_call(s, debtor_id, seed, T0)
            s.add(
                CampaignItem(
                    campaign_id=campaign.id, debtor_id=debtor_id, status="done", call_id=call.id
                )
            )
            if seed is plan:
                for n, status in enumerate(("kept", "broken", "pending"), start=1):
                    s.add(
                        PaymentPromise(
                            call_id=call.id,
                            amount_minor=15_000,
                            currency="USD",
                            due_date=date(2026, 12, 5) + timedelta(days=30 * (n - 1)),
                            status=status,
                            paid_minor=15_000 if status == "kept" else 0,
                            installment=n,
                            installments=3,
                        )
                    )

    resp = await client.get(f"/v1/campaigns/{campaign.id}/stats")
    assert resp.status_code == 200, resp.text
    total = resp.json()["total"]
    assert total == funnel(
        FunnelCounts(
            calls_placed=2,
            connected_calls=2,
            right_party_contacts=2,
            promises=2,
            promises_judged=3,
            promises_kept=2,
            total_cost_micro_usd=100_000,
        )
    )
    assert total["promise_rate_bp"] == 10_000 and total["kept_rate_bp"] == 6_667
