"""Operator actions and their audit (issue 18 item 6): one row per action an operator took
through the API (retry or cancel a call, lift a hold, start/pause/resume/cancel a campaign),
written in the transaction of the action itself (services/common/audit.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, String, Text, func
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import Base


class OperatorAction(Base):
    __tablename__ = "operator_actions"
    __table_args__ = (
        Index("ix_operator_actions_created_at_id", "created_at", "id"),
        Index("ix_operator_actions_target", "target_kind", "target_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    # The label of the API key that called (settings API_KEY is "default", API_KEYS name others).
    actor: Mapped[str] = mapped_column(String(64))
    # e.g. "call.retry", "call.cancel", "hold.lift", "campaign.pause".
    action: Mapped[str] = mapped_column(String(64))
    # What it acted on: "call", "hold", "campaign", ...; and that thing's id.
    target_kind: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    # Required (non-null) where the action overrides a rule; otherwise optional.
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=sql_text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
