"""The scheduler picks each call's prompt variant at dispatch (real PostgreSQL): a campaign call
by the campaign's weights, sticky per debtor; a follow-up keeps its source call's variant;
anything else, or a variant the stage does not have, gets `default`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.call_scheduler.worker import ScheduleWorker
from services.common.models import Call, OutboxMessage, ScheduledCall
from services.common.models.campaigns import Campaign, CampaignItem
from services.common.prompt_variants import choose_variant
from services.common.prompt_versions import prompt_version
from services.common.settings import Settings
from tests.scheduler.schedule_support import (
    ended_call,
    new_debtor,
    queued_trigger,
    retire,
    scheduler_settings,
)

WEIGHTS = {"default": 1, "plan_first": 3}


def _debtor_ids_for(weights: dict[str, int], per_variant: int) -> list[uuid.UUID]:
    """Fresh debtor ids, `per_variant` of them landing in each weighted variant."""
    wanted = {v: per_variant for v in weights}
    ids: list[uuid.UUID] = []
    while any(wanted.values()):
        candidate = uuid.uuid4()
        variant = choose_variant(candidate, weights)
        if wanted[variant]:
            wanted[variant] -= 1
            ids.append(candidate)
    return ids


async def _campaign(
    sessions: async_sessionmaker[AsyncSession], stage: str, weights: dict[str, int]
) -> uuid.UUID:
    async with sessions() as s, s.begin():
        campaign = Campaign(
            id=uuid.uuid4(),
            name="variant test",
            status="running",
            stage=stage,
            prompt_variants=weights,
            max_concurrent_calls=10,
            calls_per_minute=60,
        )
        s.add(campaign)
    return campaign.id


async def _campaign_call(
    sessions: async_sessionmaker[AsyncSession], campaign_id: uuid.UUID, debtor_id: uuid.UUID
) -> Call:
    debtor = await new_debtor(sessions, id=debtor_id, stage="late", name="Variant Test")
    call, row = await queued_trigger(sessions, debtor)
    async with sessions() as s, s.begin():
        s.add(
            CampaignItem(
                campaign_id=campaign_id,
                debtor_id=debtor.id,
                status="scheduled",
                scheduled_call_id=row.id,
                call_id=call.id,
            )
        )
    return call


async def _dispatched(
    sessions: async_sessionmaker[AsyncSession], call_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[str | None, str | None, dict[str, object]]]:
    """Per call: its recorded variant and version, and its `call.dispatch` body."""
    async with sessions() as s:
        calls = (await s.scalars(select(Call).where(Call.id.in_(call_ids)))).all()
        bodies = {
            p["call_id"]: p
            for p in await s.scalars(
                select(OutboxMessage.payload).where(
                    OutboxMessage.ce_type == "call.dispatch",
                    OutboxMessage.payload["call_id"].astext.in_([str(c) for c in call_ids]),
                )
            )
        }
    return {c.id: (c.prompt_variant, c.prompt_version, bodies[str(c.id)]) for c in calls}


async def test_campaign_calls_get_their_weighted_sticky_variant(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    campaign_id = await _campaign(sessions, "late", WEIGHTS)
    debtor_ids = _debtor_ids_for(WEIGHTS, per_variant=2)
    calls = [await _campaign_call(sessions, campaign_id, d) for d in debtor_ids]
    plain = await queued_trigger(sessions, await new_debtor(sessions, stage="late"))
    ids = [c.id for c in calls] + [plain[0].id]

    await ScheduleWorker(sessions, scheduler_settings(settings)).run_due()
    got = await _dispatched(sessions, ids)

    for call in calls:
        variant, version, body = got[call.id]
        expected = choose_variant(call.debtor_id, WEIGHTS)
        assert variant == body["prompt_variant"] == expected
        assert version == body["prompt_version"] == prompt_version("late", expected)
    assert {got[c.id][0] for c in calls} == {"default", "plan_first"}
    # Not a campaign call: the default.
    assert got[plain[0].id][0] == got[plain[0].id][2]["prompt_variant"] == "default"
    assert got[plain[0].id][1] == prompt_version("late", "default")
    await retire(sessions, ids)


async def test_a_follow_up_keeps_its_source_calls_variant(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    debtor = await new_debtor(sessions, stage="late")
    busy = await ended_call(sessions, debtor, status="busy", outcome="no_answer")
    async with sessions() as s, s.begin():
        source = await s.get(Call, busy.id)
        assert source is not None
        source.prompt_variant = "plan_first"
        row = ScheduledCall(
            debtor_id=debtor.id,
            source_call_id=busy.id,
            reason="retry",
            attempt=2,
            not_before=datetime.now(UTC) - timedelta(seconds=1),
        )
        s.add(row)
    await ScheduleWorker(sessions, scheduler_settings(settings)).run_due()
    async with sessions() as s:
        placed = await s.get(ScheduledCall, row.id)
        assert placed is not None and placed.call_id is not None
    variant, version, body = (await _dispatched(sessions, [placed.call_id]))[placed.call_id]
    assert variant == body["prompt_variant"] == "plan_first"
    assert version == prompt_version("late", "plan_first")
    await retire(sessions, [placed.call_id])


async def test_a_variant_the_stage_does_not_have_falls_back_to_default(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    campaign_id = await _campaign(sessions, "late", {"retired_variant": 1})
    call = await _campaign_call(sessions, campaign_id, uuid.uuid4())
    await ScheduleWorker(sessions, scheduler_settings(settings)).run_due()
    variant, version, body = (await _dispatched(sessions, [call.id]))[call.id]
    assert variant == body["prompt_variant"] == "default"
    assert version == prompt_version("late", "default")
    await retire(sessions, [call.id])
