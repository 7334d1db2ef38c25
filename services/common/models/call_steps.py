"""Per-step call events (issue 18 item 7): one row per step of a call (docs/call-events.md).

Written by the service that owns the step, in the transaction that commits the fact
(services/common/call_steps.py). `sequence` orders rows with the same `at`; `once_key` makes a
step that may be reported twice (a redelivered callback, two finalizers) land once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from generated.call_step import CallStep
from generated.call_step_reason import CallStepReason
from services.common.models import Base, _in, _now

CALL_STEPS = tuple(s.value for s in CallStep)
CALL_STEP_REASONS = tuple(r.value for r in CallStepReason)


class CallStepEvent(Base):
    __tablename__ = "call_step_events"
    __table_args__ = (
        CheckConstraint(_in("step", CALL_STEPS), name="step"),
        CheckConstraint(_in("reason", CALL_STEP_REASONS), name="reason"),
        UniqueConstraint("call_id", "once_key", name="uq_call_step_events_call_id_once_key"),
        Index("ix_call_step_events_call_id_at_sequence", "call_id", "at", "sequence"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    sequence: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    call_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(String(48))
    detail: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=sql_text("'{}'::jsonb")
    )
    # Set for a step that happens at most once per key (e.g. "ended", "dialing:2").
    once_key: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = _now()
