"""The scheduler puts the call's negotiation terms on `call.dispatch` (real PostgreSQL): the
stage's defaults, NEGOTIATION_RULES over them, a campaign's own terms, and a retry of a campaign
call keeps the campaign's terms."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.call_dispatch import CallDispatch
from generated.delinquency_stage import DelinquencyStage
from generated.negotiation_rules import NegotiationRules
from services.call_scheduler.worker import ScheduleWorker
from services.common.models import Call, OutboxMessage, ScheduledCall
from services.common.models.campaigns import Campaign, CampaignItem
from services.common.negotiation import DEFAULT_RULES
from services.common.settings import Settings
from tests.scheduler.schedule_support import (
    new_debtor,
    queued_trigger,
    retire,
    scheduler_settings,
)

CAMPAIGN_RULES = NegotiationRules(
    min_first_payment_minor=5000,
    min_first_payment_bp=2500,
    latest_first_payment_days=3,
    max_installments=2,
    max_plan_days=45,
    settlement_floor_bp=7000,
)


async def _dispatch_of(
    sessions: async_sessionmaker[AsyncSession], call_id: uuid.UUID
) -> CallDispatch:
    async with sessions() as s:
        payload = await s.scalar(
            select(OutboxMessage.payload).where(
                OutboxMessage.ce_type == "call.dispatch",
                OutboxMessage.payload["call_id"].astext == str(call_id),
            )
        )
    assert payload is not None, "no call.dispatch for the call"
    return CallDispatch.model_validate(payload)


async def _campaign_call(
    sessions: async_sessionmaker[AsyncSession], rules: dict[str, Any] | None
) -> Call:
    debtor = await new_debtor(sessions, stage="early")
    call, row = await queued_trigger(sessions, debtor)
    async with sessions() as s, s.begin():
        campaign = Campaign(
            id=uuid.uuid4(),
            name="terms test",
            status="running",
            stage="early",
            max_concurrent_calls=10,
            calls_per_minute=60,
            negotiation_rules=rules,
        )
        s.add(campaign)
        await s.flush()
        s.add(
            CampaignItem(
                campaign_id=campaign.id,
                debtor_id=debtor.id,
                status="scheduled",
                scheduled_call_id=row.id,
                call_id=call.id,
            )
        )
    return call


async def test_a_plain_call_carries_its_stages_default_terms(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    calls = [
        (await queued_trigger(sessions, await new_debtor(sessions, stage=stage.value)))[0]
        for stage in DelinquencyStage
    ]
    await ScheduleWorker(sessions, scheduler_settings(settings)).run_due()
    for call in calls:
        dispatch = await _dispatch_of(sessions, call.id)
        assert dispatch.negotiation_rules == DEFAULT_RULES[DelinquencyStage(call.stage)]
    # The stages differ, so the check above could not pass with one stage's terms for all.
    assert len({json.dumps(r.model_dump()) for r in DEFAULT_RULES.values()}) == 3
    await retire(sessions, [c.id for c in calls])


async def test_negotiation_rules_override_the_stage_defaults(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    override = json.dumps({"late": {"max_installments": 4, "settlement_floor_bp": 6000}})
    late, _ = await queued_trigger(sessions, await new_debtor(sessions, stage="late"))
    early, _ = await queued_trigger(sessions, await new_debtor(sessions, stage="early"))
    await ScheduleWorker(
        sessions, scheduler_settings(settings, negotiation_rules=override)
    ).run_due()
    got = (await _dispatch_of(sessions, late.id)).negotiation_rules
    assert got == DEFAULT_RULES[DelinquencyStage.LATE].model_copy(
        update={"max_installments": 4, "settlement_floor_bp": 6000}
    )
    # A stage the override does not name keeps its defaults.
    assert (await _dispatch_of(sessions, early.id)).negotiation_rules == DEFAULT_RULES[
        DelinquencyStage.EARLY
    ]
    await retire(sessions, [late.id, early.id])


async def test_a_campaign_call_carries_the_campaigns_terms(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    with_terms = await _campaign_call(sessions, CAMPAIGN_RULES.model_dump(mode="json"))
    without = await _campaign_call(sessions, None)
    await ScheduleWorker(sessions, scheduler_settings(settings)).run_due()
    assert (await _dispatch_of(sessions, with_terms.id)).negotiation_rules == CAMPAIGN_RULES
    # A campaign without terms of its own: the stage's.
    assert (await _dispatch_of(sessions, without.id)).negotiation_rules == DEFAULT_RULES[
        DelinquencyStage.EARLY
    ]
    await retire(sessions, [with_terms.id, without.id])


async def test_a_retry_of_a_retry_of_a_campaign_call_keeps_the_campaigns_terms(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = await _campaign_call(sessions, CAMPAIGN_RULES.model_dump(mode="json"))
    worker = ScheduleWorker(sessions, scheduler_settings(settings))
    await worker.run_due()
    placed = [first.id]
    source = first.id
    for attempt in (2, 3):
        async with sessions() as s, s.begin():
            call = await s.get(Call, source)
            assert call is not None
            call.status, call.outcome, call.ended_at = "no_answer", "no_answer", datetime.now(UTC)
            row = ScheduledCall(
                debtor_id=call.debtor_id,
                source_call_id=source,
                reason="retry",
                attempt=attempt,
                not_before=datetime.now(UTC) - timedelta(seconds=1),
            )
            s.add(row)
        await worker.run_due()
        async with sessions() as s:
            placed_row = await s.get(ScheduledCall, row.id)
            assert placed_row is not None and placed_row.call_id is not None
        dispatch = await _dispatch_of(sessions, placed_row.call_id)
        assert dispatch.negotiation_rules == CAMPAIGN_RULES
        source = placed_row.call_id
        placed.append(source)
    await retire(sessions, placed)


async def test_an_orchestrator_without_the_dispatch_finds_the_same_terms(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The media stream reached an instance that did not take the dispatch (or restarted):
    it reads the facts from the database and must negotiate within the terms the scheduler
    sent, the campaign's own, not its stage's."""
    from services.voice_orchestrator.calls import SnapshotCache, load_facts

    campaign_call = await _campaign_call(sessions, CAMPAIGN_RULES.model_dump(mode="json"))
    plain, _ = await queued_trigger(sessions, await new_debtor(sessions, stage="late"))
    await ScheduleWorker(sessions, scheduler_settings(settings)).run_due()
    for call in (campaign_call, plain):
        facts = await load_facts(sessions, settings, SnapshotCache(), call.id)
        assert facts is not None
        assert facts.rules == (await _dispatch_of(sessions, call.id)).negotiation_rules
    assert facts.rules == DEFAULT_RULES[DelinquencyStage.LATE]
    facts = await load_facts(sessions, settings, SnapshotCache(), campaign_call.id)
    assert facts is not None and facts.rules == CAMPAIGN_RULES
    await retire(sessions, [campaign_call.id, plain.id])
