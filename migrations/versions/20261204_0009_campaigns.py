"""Campaigns and their items (issue 18 item 1).

`campaigns`: a stage, a prompt-variant set (variant id -> weight), pacing (concurrent calls,
calls per minute) and a lifecycle status. `campaign_items`: one row per debtor of a campaign
(unique per campaign), its status, and the schedule row and call the Call Scheduler released
for it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = ("draft", "running", "paused", "completed", "cancelled")
_ITEM_STATUSES = ("pending", "scheduled", "in_progress", "done", "skipped", "cancelled")
_STAGES = ("pre_delinquency", "early", "late")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ts(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="draft", nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column(
            "prompt_variants",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("max_concurrent_calls", sa.Integer(), nullable=False),
        sa.Column("calls_per_minute", sa.Integer(), nullable=False),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_in("status", _STATUSES), name=op.f("ck_campaigns_status")),
        sa.CheckConstraint(_in("stage", _STAGES), name=op.f("ck_campaigns_stage")),
        sa.CheckConstraint(
            "max_concurrent_calls >= 1", name=op.f("ck_campaigns_max_concurrent_positive")
        ),
        sa.CheckConstraint(
            "calls_per_minute >= 1", name=op.f("ck_campaigns_calls_per_minute_positive")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_campaigns_idempotency_key")),
    )
    op.create_index("ix_campaigns_created_at_id", "campaigns", ["created_at", "id"])
    op.create_index(
        "ix_campaigns_running", "campaigns", ["id"], postgresql_where=sa.text("status = 'running'")
    )
    op.create_table(
        "campaign_items",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("campaign_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("debtor_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("scheduled_call_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("call_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("call_status", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_in("status", _ITEM_STATUSES), name=op.f("ck_campaign_items_status")),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_items_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["debtor_id"],
            ["debtors.id"],
            name=op.f("fk_campaign_items_debtor_id_debtors"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["scheduled_call_id"],
            ["scheduled_calls.id"],
            name=op.f("fk_campaign_items_scheduled_call_id_scheduled_calls"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_campaign_items_call_id_calls"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_items")),
        sa.UniqueConstraint(
            "campaign_id", "debtor_id", name=op.f("uq_campaign_items_campaign_debtor")
        ),
        sa.UniqueConstraint("scheduled_call_id", name=op.f("uq_campaign_items_scheduled_call_id")),
        sa.UniqueConstraint("call_id", name=op.f("uq_campaign_items_call_id")),
    )
    op.create_index(
        "ix_campaign_items_campaign_id_status", "campaign_items", ["campaign_id", "status"]
    )
    op.create_index(
        "ix_campaign_items_campaign_id_created_at_id",
        "campaign_items",
        ["campaign_id", "created_at", "id"],
    )
    op.create_index("ix_campaign_items_debtor_id", "campaign_items", ["debtor_id"])
    op.create_index(
        "ix_campaign_items_released",
        "campaign_items",
        ["call_id"],
        postgresql_where=sa.text("status IN ('scheduled', 'in_progress')"),
    )
    op.create_index(
        "ix_campaign_items_cancelled_queued",
        "campaign_items",
        ["call_id"],
        postgresql_where=sa.text("status = 'cancelled' AND call_status = 'queued'"),
    )


def downgrade() -> None:
    op.drop_table("campaign_items")
    op.drop_table("campaigns")
