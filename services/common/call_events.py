"""`call.completed`: one event per ended call, whichever service ended it (and `promise.created`
with it when the call recorded a promise).

The Voice Orchestrator ends the calls it placed; the Call Scheduler ends the calls it never
placed (canceled by a hold or the rules, or lost). Both publish the same body, the Call the REST
API shows, read back inside the ending transaction.
"""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from generated.call_completed_data import CallCompletedData
from services.common.call_view import build_call, call_load_options
from services.common.models import Call, PaymentPromise
from services.common.outbox import add_event
from services.common.promise_events import CE_TYPE_CREATED, add_promise_event, load_promise
from services.common.settings import Settings

CE_TYPE_COMPLETED = "call.completed"
# The Client API ends a call only when an operator cancels it before it is placed.
Source = Literal["/voice-orchestrator", "/call-scheduler", "/client-api"]
_EVENT_NS = uuid.UUID("6f1c1d1e-8f47-4a43-9d1f-2b0f6c1f5e01")


def event_id(call_id: uuid.UUID | str) -> str:
    """One `call.completed` per call: the ce-id is derived from the call id."""
    return str(uuid.uuid5(_EVENT_NS, f"{CE_TYPE_COMPLETED}:{call_id}"))


async def completed_payload(
    session: AsyncSession,
    call_id: uuid.UUID,
    recording_url: str | None = None,
    transcript_url: str | None = None,
) -> CallCompletedData:
    await session.flush()
    row = await session.scalar(
        select(Call)
        .where(Call.id == call_id)
        .options(*call_load_options())
        .execution_options(populate_existing=True)
    )
    assert row is not None
    call = build_call(row, recording_url=recording_url, transcript_url=transcript_url)
    return CallCompletedData(call=call)


async def publish_completed(
    session: AsyncSession,
    settings: Settings,
    call_id: uuid.UUID,
    source: Source,
    recording_url: str | None = None,
    transcript_url: str | None = None,
) -> None:
    """`call.completed` through the outbox, in the ending transaction (ce-id from the call id,
    so however often a call is ended there is one event)."""
    data = await completed_payload(session, call_id, recording_url, transcript_url)
    add_event(
        session,
        settings.pubsub_topic_call_events,
        CE_TYPE_COMPLETED,
        source,
        data,
        ce_id=event_id(call_id),
    )
    # A promise made on the call (or each installment of its plan): `promise.created` in the
    # same transaction (its ce-id comes from the promise, so ending the call twice still gives
    # one event per promise).
    promise_pks = (
        await session.scalars(
            select(PaymentPromise.id)
            .where(PaymentPromise.call_id == call_id)
            .order_by(PaymentPromise.installment)
        )
    ).all()
    for promise_pk in promise_pks:
        promise = await load_promise(session, promise_pk)
        add_promise_event(session, settings, CE_TYPE_CREATED, source, promise)
