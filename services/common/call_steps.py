"""Recording the steps of a call (docs/call-events.md): a row in `call_step_events`, in the
caller's transaction, and the same event as a JSON log line with the call id bound, once that
transaction commits.

Each service records the steps it owns where the fact is committed: the Client API a trigger's
`scheduled` and the webhook attempts, the Call Scheduler `scheduled` / `rescheduled` /
`skipped` / `dispatched`, the Voice Orchestrator the rest. The live call's own steps
(verification, disclosure, tool calls) are kept in a `StepBuffer` (plain, in memory, no I/O)
and written by transactions that happen anyway: the heartbeat checkpoint about once a second
and the call's final one, so the real-time loop never waits on the database for them.

`once_key`: a step that may be reported more than once (a redelivered Twilio callback, a
second finalizer) is stored once per key; the log line is written only for the stored one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import event, inspect
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from generated.call_step import CallStep
from generated.call_step_detail import CallStepDetail
from generated.call_step_reason import CallStepReason
from services.common.logging import get_logger
from services.common.models.call_steps import CallStepEvent

log = get_logger(__name__)

LOG_EVENT = "call_step"
MAX_MESSAGE_CHARS = 500
_PENDING_LOGS = "call_steps_pending_logs"  # session.info key: log lines waiting for the commit


@dataclass(frozen=True)
class StepRecord:
    """One step not yet stored (plain data)."""

    step: CallStep
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)
    reason: CallStepReason | None = None
    once_key: str | None = None


def detail_json(detail: dict[str, Any] | CallStepDetail | None) -> dict[str, Any]:
    """The stored detail, validated by the generated model (unknown keys refused)."""
    if detail is None:
        return {}
    if isinstance(detail, dict):
        if isinstance(detail.get("message"), str):
            detail = {**detail, "message": detail["message"][:MAX_MESSAGE_CHARS]}
        unknown = set(detail) - set(CallStepDetail.model_fields)
        if unknown:
            raise ValueError(f"unknown call step detail fields: {sorted(unknown)}")
        detail = CallStepDetail.model_validate(detail)
    return detail.model_dump(mode="json", exclude_unset=True)


class StepBuffer:
    """The steps of a live call, in memory: `add` is a list append, nothing else. Drained
    (`take`) by whoever writes them in a transaction that happens anyway."""

    def __init__(self) -> None:
        self.items: list[StepRecord] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(
        self,
        step: CallStep,
        *,
        at: datetime | None = None,
        detail: dict[str, Any] | None = None,
        reason: CallStepReason | None = None,
        once_key: str | None = None,
    ) -> None:
        self.items.append(
            StepRecord(step, at or datetime.now(UTC), dict(detail or {}), reason, once_key)
        )

    def take(self) -> list[StepRecord]:
        items, self.items = self.items, []
        return items


def _log_line(call_id: uuid.UUID, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "call_id": str(call_id),
        "step": row["step"],
        "at": row["at"].astimezone(UTC).isoformat(),
        "reason": row["reason"],
        "detail": row["detail"],
        "step_event_id": str(row["id"]),
    }


def _after_commit(session: Session) -> None:
    for row, line in session.info.pop(_PENDING_LOGS, []):
        if row is not None and not inspect(row).has_identity:
            continue  # added in a savepoint that was rolled back: never stored
        with structlog.contextvars.bound_contextvars(call_id=line.pop("call_id")):
            log.info(LOG_EVENT, **line)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the whole transaction ended without a commit (a commit
        session.info.pop(_PENDING_LOGS, None)  # logged them first, in `_after_commit`)


def _log_after_commit(
    session: AsyncSession, lines: Iterable[tuple[CallStepEvent | None, dict[str, Any]]]
) -> None:
    sync = session.sync_session
    pending = sync.info.setdefault(_PENDING_LOGS, [])
    pending.extend(lines)
    if not event.contains(sync, "after_commit", _after_commit):
        event.listen(sync, "after_commit", _after_commit)
        event.listen(sync, "after_transaction_end", _after_transaction_end)


def _row(call_id: uuid.UUID, record: StepRecord) -> dict[str, Any]:
    step = CallStep(record.step).value
    try:
        detail = detail_json(record.detail)
    except ValueError as exc:
        # A step never breaks the transaction that commits its fact (a call's end, a
        # dispatch): it is stored without the detail, and the bug is logged as an error.
        with structlog.contextvars.bound_contextvars(call_id=str(call_id)):
            log.error("call_step_detail_invalid", step=step, error=type(exc).__name__)
        detail = {}
    return {
        "id": uuid.uuid4(),
        "call_id": call_id,
        "step": step,
        "at": record.at,
        "reason": CallStepReason(record.reason).value if record.reason is not None else None,
        "detail": detail,
        "once_key": record.once_key,
    }


async def record_step(
    session: AsyncSession,
    call_id: uuid.UUID,
    step: CallStep,
    *,
    at: datetime | None = None,
    detail: dict[str, Any] | None = None,
    reason: CallStepReason | None = None,
    once_key: str | None = None,
) -> bool:
    """Add one step in the caller's transaction (and its log line once that commits).

    Without `once_key` the row is only added to the session (no round trip: it is flushed
    with the caller's other writes, after the call row it belongs to). With one, it is
    inserted now unless that key is stored already; returns False then."""
    record = StepRecord(step, at or datetime.now(UTC), dict(detail or {}), reason, once_key)
    if once_key is None:
        row = _row(call_id, record)
        obj = CallStepEvent(**row)
        session.add(obj)
        _log_after_commit(session, [(obj, _log_line(call_id, row))])
        return True
    return bool(await record_steps(session, call_id, [record]))


async def record_steps(
    session: AsyncSession, call_id: uuid.UUID, records: Sequence[StepRecord]
) -> int:
    """Insert several steps of one call in one statement (a step whose `once_key` is stored
    already is left out); returns how many were stored."""
    return await record_many(session, {call_id: records})


async def record_many(
    session: AsyncSession, records: Mapping[uuid.UUID, Sequence[StepRecord]]
) -> int:
    """The steps of several calls in one statement (as `record_steps`)."""
    rows = [_row(cid, r) for cid, recs in records.items() for r in recs]
    if not rows:
        return 0
    # executemany: batched by insertmanyvalues (RETURNING included), so no statement nears
    # Postgres's parameter limit however many live calls' steps one flush writes.
    stored = set(
        await session.scalars(
            insert(CallStepEvent)
            .on_conflict_do_nothing(index_elements=["call_id", "once_key"])
            .returning(CallStepEvent.id),
            rows,
        )
    )
    lines = [(None, _log_line(r["call_id"], r)) for r in rows if r["id"] in stored]
    _log_after_commit(session, lines)
    return len(stored)
