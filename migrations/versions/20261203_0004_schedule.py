"""The durable call schedule and debtor holds (issue 17, schedule helper).

`scheduled_calls`: one row per intended dial (manual trigger, agreed callback, retry, campaign
item) with its earliest time; the Call Scheduler's worker claims due rows. `debtor_holds`: opt-out,
dispute and wrong number, kept until an operator lifts them (with a reason). `debtors.timezone`
becomes optional (the calling rules then use every zone the number could mean); `calls.attempt`
numbers a call in its chain of retries.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("debtors", "timezone", existing_type=sa.String(length=64), nullable=True)
    op.add_column(
        "calls", sa.Column("attempt", sa.Integer(), server_default=sa.text("1"), nullable=False)
    )
    op.create_table(
        "scheduled_calls",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("debtor_id", sa.UUID(), nullable=False),
        sa.Column("call_id", sa.UUID(), nullable=True),
        sa.Column("source_call_id", sa.UUID(), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column(
            "debtor_requested", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("skip_reason", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "reason IN ('manual', 'callback', 'retry', 'campaign')",
            name=op.f("ck_scheduled_calls_reason"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'dispatched', 'cancelled', 'skipped')",
            name=op.f("ck_scheduled_calls_status"),
        ),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_scheduled_calls_attempt_positive")),
        sa.ForeignKeyConstraint(
            ["debtor_id"],
            ["debtors.id"],
            name=op.f("fk_scheduled_calls_debtor_id_debtors"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_scheduled_calls_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_call_id"],
            ["calls.id"],
            name=op.f("fk_scheduled_calls_source_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_calls")),
        sa.UniqueConstraint("call_id", name=op.f("uq_scheduled_calls_call_id")),
        sa.UniqueConstraint("source_call_id", name=op.f("uq_scheduled_calls_source_call_id")),
    )
    op.create_index(
        "ix_scheduled_calls_pending_not_before",
        "scheduled_calls",
        ["not_before"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_scheduled_calls_debtor_id", "scheduled_calls", ["debtor_id"])
    op.create_table(
        "debtor_holds",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("debtor_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("call_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('opt_out', 'dispute', 'wrong_number')", name=op.f("ck_debtor_holds_kind")
        ),
        sa.CheckConstraint(
            "(lifted_at IS NULL) = (lifted_reason IS NULL)",
            name=op.f("ck_debtor_holds_lift_has_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["debtor_id"],
            ["debtors.id"],
            name=op.f("fk_debtor_holds_debtor_id_debtors"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_debtor_holds_call_id_calls"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_debtor_holds")),
    )
    op.create_index(
        "uq_debtor_holds_active_kind",
        "debtor_holds",
        ["debtor_id", "kind"],
        unique=True,
        postgresql_where=sa.text("lifted_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_debtor_holds_active_kind",
        table_name="debtor_holds",
        postgresql_where=sa.text("lifted_at IS NULL"),
    )
    op.drop_table("debtor_holds")
    op.drop_index("ix_scheduled_calls_debtor_id", table_name="scheduled_calls")
    op.drop_index(
        "ix_scheduled_calls_pending_not_before",
        table_name="scheduled_calls",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("scheduled_calls")
    op.drop_column("calls", "attempt")
    # A debtor created without a zone gets UTC back: the old schema cannot hold "unknown".
    op.execute("UPDATE debtors SET timezone = 'UTC' WHERE timezone IS NULL")
    op.alter_column("debtors", "timezone", existing_type=sa.String(length=64), nullable=False)
