"""Promises as a call records them (real PostgreSQL), and the promise events in the outbox."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.models import Call, OutboxMessage, PaymentPromise


async def insert_promise(
    sessions: async_sessionmaker[AsyncSession],
    debtor_id: uuid.UUID,
    amount_minor: int,
    due_date: date,
    currency: str = "USD",
    paid_minor: int = 0,
) -> PaymentPromise:
    """A completed call of the debtor's with a promise on it (as the orchestrator stores it)."""
    async with sessions() as s, s.begin():
        call = Call(
            id=uuid.uuid4(),
            debtor_id=debtor_id,
            stage="early",
            status="completed",
            outcome="promise_to_pay",
        )
        s.add(call)
        await s.flush()
        promise = PaymentPromise(
            call_id=call.id,
            amount_minor=amount_minor,
            currency=currency,
            due_date=due_date,
            paid_minor=paid_minor,
        )
        s.add(promise)
    async with sessions() as s:
        row = await s.get(PaymentPromise, promise.id)
        assert row is not None
        return row


async def promise_events(
    sessions: async_sessionmaker[AsyncSession], public_ids: list[uuid.UUID]
) -> list[tuple[str, str, str]]:
    """(ce-type, promise id, status) of every outbox event about these promises, in order."""
    wanted = {str(p) for p in public_ids}
    async with sessions() as s:
        rows = (
            await s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.ce_type.like("promise.%"))
                .order_by(OutboxMessage.id)
            )
        ).all()
    return [
        (r.ce_type, r.payload["promise"]["id"], r.payload["promise"]["status"])
        for r in rows
        if r.payload["promise"]["id"] in wanted
    ]
