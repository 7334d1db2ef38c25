"""Campaigns and their items (issue 18 item 1).

A campaign is a set of debtors called at one stage with one prompt-variant set, paced (at most
`max_concurrent_calls` calls queued or live, at most `calls_per_minute` items released per
rolling minute). Each debtor is one `campaign_items` row; the Call Scheduler's campaign pass
releases pending items into the durable schedule (`scheduled_calls` reason `campaign` with a
queued call) and mirrors the call's result back onto the item. The lifecycle is in
services/common/campaign_lifecycle.py.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import STAGES, Base, _in

# specs/schemas/campaign_status.json
CAMPAIGN_STATUSES = ("draft", "running", "paused", "completed", "cancelled")
# specs/schemas/campaign_item_status.json. pending: not released yet; scheduled: released (its
# call is queued in the schedule); in_progress: its call was dispatched and is live; done: its
# call ended after being placed; skipped: its call ended without being placed (a hold, the
# calling rules, another live call); cancelled: the campaign was cancelled before it was dialed.
CAMPAIGN_ITEM_STATUSES = ("pending", "scheduled", "in_progress", "done", "skipped", "cancelled")
UNFINISHED_ITEM_STATUSES = ("pending", "scheduled", "in_progress")


def _ts() -> Any:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(_in("status", CAMPAIGN_STATUSES), name="status"),
        CheckConstraint(_in("stage", STAGES), name="stage"),
        CheckConstraint("max_concurrent_calls >= 1", name="max_concurrent_positive"),
        CheckConstraint("calls_per_minute >= 1", name="calls_per_minute_positive"),
        Index("ix_campaigns_created_at_id", "created_at", "id"),
        # The scheduler's campaign pass looks only at running campaigns.
        Index("ix_campaigns_running", "id", postgresql_where=sql_text("status = 'running'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), server_default="draft")
    stage: Mapped[str] = mapped_column(String(32))
    # Prompt variant id -> integer weight (services/common/prompt_variants.py); {}: the stage's
    # default prompt only.
    prompt_variants: Mapped[dict[str, int]] = mapped_column(
        JSONB, nullable=False, server_default=sql_text("'{}'::jsonb")
    )
    max_concurrent_calls: Mapped[int] = mapped_column(Integer)
    calls_per_minute: Mapped[int] = mapped_column(Integer)
    # A broken promise from one of its calls gets a follow-up call (call_scheduler/promises.py).
    follow_up_broken_promises: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=sql_text("true")
    )
    # The campaign's own negotiation terms (generated NegotiationRules as JSON); None: the
    # stage's defaults (services/common/negotiation.py).
    negotiation_rules: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, nullable=False, server_default=sql_text("'{}'::jsonb")
    )
    # A retried create with the same key returns this campaign; the fingerprint detects others.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _ts()
    updated_at: Mapped[datetime] = _ts()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When it became completed or cancelled.
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CampaignItem(Base):
    """One debtor of a campaign and the call that campaign placed to them."""

    __tablename__ = "campaign_items"
    __table_args__ = (
        UniqueConstraint("campaign_id", "debtor_id", name="uq_campaign_items_campaign_debtor"),
        CheckConstraint(_in("status", CAMPAIGN_ITEM_STATUSES), name="status"),
        Index("ix_campaign_items_campaign_id_status", "campaign_id", "status"),
        Index("ix_campaign_items_campaign_id_created_at_id", "campaign_id", "created_at", "id"),
        Index("ix_campaign_items_debtor_id", "debtor_id"),
        # The pass mirrors call results onto released items only.
        Index(
            "ix_campaign_items_released",
            "call_id",
            postgresql_where=sql_text("status IN ('scheduled', 'in_progress')"),
        ),
        # Cancelled items whose queued call the pass still has to end.
        Index(
            "ix_campaign_items_cancelled_queued",
            "call_id",
            postgresql_where=sql_text("status = 'cancelled' AND call_status = 'queued'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    debtor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("debtors.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    scheduled_call_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("scheduled_calls.id", ondelete="SET NULL"), unique=True
    )
    call_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("calls.id", ondelete="SET NULL"), unique=True
    )
    # The call's final status and outcome, and why the item was skipped or cancelled.
    call_status: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _ts()
    updated_at: Mapped[datetime] = _ts()
    # When the pass released it into the schedule (calls_per_minute counts these).
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
