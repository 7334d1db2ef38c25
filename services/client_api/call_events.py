"""A call's step events for `GET /v1/calls/{call_id}/events`: oldest first, by `(at, sequence)`,
with the opaque cursors of services/client_api/pagination.py (a cursor that is not one this
list issued for this call is a 400 problem, never a silent restart). And the
steps the Client API owns: each webhook delivery attempt about a call."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from generated.call_step import CallStep
from generated.call_step_event import CallStepEvent
from generated.call_step_event_page import CallStepEventPage
from generated.call_step_reason import CallStepReason
from services.client_api.pagination import Keyset, integer, page, timestamp
from services.common.call_steps import record_step
from services.common.models import Call, WebhookDelivery
from services.common.models.call_steps import CallStepEvent as Row

KIND = "call_events"
# Oldest first; a step's sequence is a positive bigint.
ORDER = Keyset((Row.at, Row.sequence), (timestamp("t"), integer("s", 1, 2**63)))
INVALID_DETAIL = "`cursor` is not a cursor this list issued for this call; start again without it."


def to_model(row: Row) -> CallStepEvent:
    return CallStepEvent.model_validate(
        {
            "id": row.id,
            "call_id": row.call_id,
            "step": row.step,
            "at": row.at.astimezone(UTC),
            "sequence": row.sequence,
            "reason": row.reason,
            "detail": row.detail,
        }
    )


async def events_page(
    session: AsyncSession, call_id: uuid.UUID, *, limit: int, cursor: str | None
) -> CallStepEventPage:
    rows, next_cursor = await page(
        session,
        select(Row),
        ORDER,
        kind=KIND,
        filters={"call_id": call_id},
        limit=limit,
        cursor=cursor,
        where=[Row.call_id == call_id],
        detail=INVALID_DETAIL,
    )
    return CallStepEventPage(data=[to_model(r) for r in rows], next_cursor=next_cursor)


def _failure_reason(error_kind: str) -> CallStepReason:
    if error_kind.startswith("HTTP "):
        return CallStepReason.HTTP_ERROR
    if error_kind == "timeout":
        return CallStepReason.TIMEOUT
    return CallStepReason.CONNECTION_ERROR


async def record_webhook_attempt(
    session: AsyncSession,
    call_id: uuid.UUID | None,
    delivery: WebhookDelivery,
    attempt: int,
    *,
    at: datetime,
    status_code: int | None = None,
    error_kind: str | None = None,
    reason: CallStepReason | None = None,
) -> None:
    """The call's `webhook_delivered` / `webhook_failed` step for one delivery attempt, in the
    attempt's transaction (nothing for an event about no call). `error_kind` is the attempt's
    error as logged (`HTTP 503`, `timeout`, an exception name); `reason` a failure before any
    POST (endpoint inactive, secret unreadable)."""
    if call_id is None:
        return
    if await session.scalar(select(Call.id).where(Call.id == call_id)) is None:
        return  # an event about a call this database does not hold: nothing to attach it to
    if reason is None and error_kind is not None:
        reason = _failure_reason(error_kind)
    detail: dict[str, Any] = {
        "event_type": delivery.event_type[:64],
        "delivery_id": delivery.id,
        "endpoint_id": delivery.endpoint_id,
        "webhook_attempt": attempt,
    }
    if status_code is not None:
        detail["status_code"] = status_code
    if reason is not None:
        detail["will_retry"] = delivery.status == "pending"
    step = CallStep.WEBHOOK_FAILED if reason is not None else CallStep.WEBHOOK_DELIVERED
    await record_step(session, call_id, step, at=at, detail=detail, reason=reason)
