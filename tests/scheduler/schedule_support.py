"""Rows for the schedule tests (real PostgreSQL), and reading what the worker published."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.models import Call, Debtor, OutboxMessage, ScheduledCall
from services.common.settings import Settings
from tests.helpers import sample_debtor

ALL_DAY = {"call_window_start": "00:00", "call_window_end": "23:59:59"}


def scheduler_settings(settings: Settings, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"scheduler_batch_size": 5, **ALL_DAY, **overrides}
    return Settings(**(settings.model_dump() | values))


def zone_at_night(now: datetime) -> str:
    """A time zone in which `now` is between 02:00 and 05:59 (outside 08:00-21:00)."""
    for offset in range(-12, 15):
        name = f"Etc/GMT{-offset:+d}" if offset else "UTC"  # Etc/GMT+5 is UTC-5
        if 2 <= now.astimezone(ZoneInfo(name)).hour <= 5:
            return name
    raise AssertionError("no zone at night")


async def new_debtor(sessions: async_sessionmaker[AsyncSession], **fields: Any) -> Debtor:
    async with sessions() as s, s.begin():
        debtor = sample_debtor(**fields)
        s.add(debtor)
    return debtor


async def queued_trigger(
    sessions: async_sessionmaker[AsyncSession],
    debtor: Debtor,
    not_before: datetime | None = None,
) -> tuple[Call, ScheduledCall]:
    """A trigger as the Client API writes it: a queued call and its pending manual row."""
    async with sessions() as s, s.begin():
        call = Call(id=uuid.uuid4(), debtor_id=debtor.id, stage=debtor.stage, status="queued")
        row = ScheduledCall(
            id=uuid.uuid4(),
            debtor_id=debtor.id,
            reason="manual",
            not_before=not_before or datetime.now(UTC),
        )
        call.schedule = row
        s.add(call)
    return call, row


async def ended_call(
    sessions: async_sessionmaker[AsyncSession],
    debtor: Debtor,
    *,
    status: str,
    outcome: str | None,
    attempt: int = 1,
    ended_ago: timedelta = timedelta(minutes=1),
    answered: bool = False,
    verification: str = "none",
) -> Call:
    ended = datetime.now(UTC) - ended_ago
    async with sessions() as s, s.begin():
        call = Call(
            id=uuid.uuid4(),
            debtor_id=debtor.id,
            stage=debtor.stage,
            status=status,
            outcome=outcome,
            attempt=attempt,
            dispatched_at=ended - timedelta(seconds=40),
            answered_at=ended - timedelta(seconds=30) if answered else None,
            ended_at=ended,
            verification=verification,
            metadata_={"case": "sched-test"},
        )
        s.add(call)
    return call


async def dispatch_ids(session: AsyncSession, call_ids: Iterable[uuid.UUID]) -> list[str]:
    """call_id of every `call.dispatch` outbox row for these calls (duplicates kept)."""
    wanted = {str(c) for c in call_ids}
    rows = await session.scalars(
        select(OutboxMessage.payload).where(OutboxMessage.ce_type == "call.dispatch")
    )
    # Other packages share the database; their test rows need not look like a dispatch.
    return [p["call_id"] for p in rows if p.get("call_id") in wanted]


async def retire(sessions: async_sessionmaker[AsyncSession], call_ids: Iterable[uuid.UUID]) -> None:
    """End the test's dispatched calls, so an orchestrator that later receives their dispatch
    (other test packages share the emulator) does not dial them."""
    ids = list(call_ids)
    async with sessions() as s, s.begin():
        await s.execute(
            update(Call)
            .where(Call.id.in_(ids), Call.status == "dispatched")
            .values(status="canceled", failure_reason="test over")
        )
