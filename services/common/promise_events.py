"""`promise.created`, `promise.kept`, `promise.broken`: the promise view and its events.

All three go on the `call-events` topic through the outbox, in the transaction that made the
change, so an event exists exactly when the change committed. The ce-id is derived from the
promise's public id and the event type: each promise has at most one event of each type,
however often the change is retried. The Client API fans them out to subscribed webhook
endpoints like `call.completed`.
"""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from generated.money import Money
from generated.promise import Promise
from generated.promise_event_data import PromiseEventData
from generated.promise_status import PromiseStatus
from services.common.models import Call, PaymentPromise
from services.common.outbox import add_event
from services.common.settings import Settings

PromiseEventType = Literal["promise.created", "promise.kept", "promise.broken"]
CE_TYPE_CREATED: PromiseEventType = "promise.created"
CE_TYPE_KEPT: PromiseEventType = "promise.kept"
CE_TYPE_BROKEN: PromiseEventType = "promise.broken"
PROMISE_EVENT_TYPES: tuple[PromiseEventType, ...] = (CE_TYPE_CREATED, CE_TYPE_KEPT, CE_TYPE_BROKEN)
Source = Literal["/voice-orchestrator", "/call-scheduler", "/client-api"]
_EVENT_NS = uuid.UUID("0b7f3a52-4d0e-4a8e-9a55-3f1f2a6c7d10")


def event_id(ce_type: str, public_id: uuid.UUID) -> str:
    return str(uuid.uuid5(_EVENT_NS, f"{ce_type}:{public_id}"))


def promise_model(row: PaymentPromise, debtor_id: uuid.UUID) -> Promise:
    return Promise(
        id=row.public_id,
        call_id=row.call_id,
        debtor_id=debtor_id,
        amount=Money(amount_minor=row.amount_minor, currency=row.currency),
        paid=Money(amount_minor=row.paid_minor, currency=row.currency),
        due_date=row.due_date,
        installment=row.installment,
        installments=row.installments,
        status=PromiseStatus(row.status),
        recorded_at=row.recorded_at,
        resolved_at=row.resolved_at,
    )


def promises_with_debtor() -> Select[PaymentPromise, uuid.UUID]:
    """Promises and their debtor's id (a promise belongs to the debtor of its call)."""
    return select(PaymentPromise, Call.debtor_id).join(Call, Call.id == PaymentPromise.call_id)


async def load_promise(session: AsyncSession, promise_pk: int) -> Promise:
    await session.flush()
    result = await session.execute(
        promises_with_debtor()
        .where(PaymentPromise.id == promise_pk)
        .execution_options(populate_existing=True)
    )
    found = result.one()
    return promise_model(found[0], found[1])


def add_promise_event(
    session: AsyncSession,
    settings: Settings,
    ce_type: PromiseEventType,
    source: Source,
    promise: Promise,
) -> None:
    add_event(
        session,
        settings.pubsub_topic_call_events,
        ce_type,
        source,
        PromiseEventData(promise=promise),
        ce_id=event_id(ce_type, promise.id),
    )
