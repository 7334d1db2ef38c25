"""A new queued call and its schedule entry: how every new intended dial enters the schedule.

The Client API's trigger (`POST /v1/debtors/{id}/calls`) and the Call Scheduler's campaign pass
both create calls this way, so a campaign call is exactly a triggered one with another reason:
the worker then places it, re-checking holds, the calling window and the caps at claim time.
The caller commits (the one-live-call-per-debtor index decides at flush or commit).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from generated.call_requested import CallRequested
from services.common import models
from services.common.outbox import add_event
from services.common.schedule_store import Reason
from services.common.settings import Settings

CE_TYPE_CALL_REQUESTED = "call.requested"


def queue_call(
    session: AsyncSession,
    *,
    debtor_id: uuid.UUID,
    stage: str,
    reason: Reason,
    not_before: datetime,
    metadata: Mapping[str, str] | None = None,
    idempotency_key: str | None = None,
    request_fingerprint: str | None = None,
) -> models.Call:
    """Add a `queued` call (attempt 1) with its `pending` schedule row due at `not_before`."""
    call = models.Call(
        id=uuid.uuid4(),
        debtor_id=debtor_id,
        status="queued",
        stage=stage,
        idempotency_key=idempotency_key,
        request_fingerprint=request_fingerprint,
        metadata_=dict(metadata or {}),
    )
    call.schedule = models.ScheduledCall(
        id=uuid.uuid4(), debtor_id=debtor_id, reason=reason, not_before=not_before, attempt=1
    )
    session.add(call)
    return call


def announce_call_requested(
    session: AsyncSession,
    settings: Settings,
    call: models.Call,
    *,
    source: str,
    requested_at: datetime,
    idempotency_key: str | None = None,
) -> None:
    """`call.requested` in the outbox, committed with the call (wakes the Call Scheduler)."""
    add_event(
        session,
        settings.pubsub_topic_call_requests,
        CE_TYPE_CALL_REQUESTED,
        source,
        CallRequested(
            call_id=call.id,
            debtor_id=call.debtor_id,
            requested_at=requested_at,
            idempotency_key=idempotency_key,
        ),
    )
