"""A call's step events for `GET /v1/calls/{call_id}/events`: oldest first, by `(at, sequence)`,
with an opaque cursor (the same rules as services/client_api/pagination.py: a cursor that is
not one this list issued for this call is a 400 problem, never a silent restart). And the
steps the Client API owns: each webhook delivery attempt about a call."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from generated.call_step import CallStep
from generated.call_step_event import CallStepEvent
from generated.call_step_event_page import CallStepEventPage
from generated.call_step_reason import CallStepReason
from services.client_api.problems import INVALID_CURSOR, ProblemError
from services.common.call_steps import record_step
from services.common.models import Call, WebhookDelivery
from services.common.models.call_steps import CallStepEvent as Row

KIND = "call_events"


def encode_cursor(call_id: uuid.UUID, at: datetime, sequence: int) -> str:
    doc = {"k": KIND, "c": str(call_id), "t": at.astimezone(UTC).isoformat(), "s": sequence}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _invalid() -> ProblemError:
    return ProblemError(
        400,
        INVALID_CURSOR,
        "`cursor` is not a cursor this list issued for this call; start again without it.",
    )


def decode_cursor(token: str, call_id: uuid.UUID) -> tuple[datetime, int]:
    """The `(at, sequence)` a cursor points at, for any string a client sends (every other
    outcome is the 400 problem)."""
    try:
        if not token.isascii():
            raise ValueError("not base64")
        doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(doc, dict) or doc.get("k") != KIND or doc.get("c") != str(call_id):
            raise ValueError("another list's cursor")
        t, s = doc.get("t"), doc.get("s")
        if not isinstance(t, str) or type(s) is not int or not 0 < s < 2**63:
            raise ValueError("fields of the wrong type")
        at = datetime.fromisoformat(t)
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("naive timestamp")
        return at.astimezone(UTC), s
    except (ValueError, binascii.Error, RecursionError, OverflowError) as exc:
        raise _invalid() from exc


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
    stmt: Any = select(Row).where(Row.call_id == call_id)
    if cursor is not None:
        at, sequence = decode_cursor(cursor, call_id)
        stmt = stmt.where(tuple_(Row.at, Row.sequence) > tuple_(at, sequence))
    stmt = stmt.order_by(Row.at, Row.sequence).limit(limit + 1)
    rows = list((await session.scalars(stmt)).all())
    if len(rows) <= limit:
        return CallStepEventPage(data=[to_model(r) for r in rows], next_cursor=None)
    rows = rows[:limit]
    last = rows[-1]
    return CallStepEventPage(
        data=[to_model(r) for r in rows],
        next_cursor=encode_cursor(call_id, last.at, last.sequence),
    )


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
