"""Operator actions audit and webhook event types (issue 18 items 4 and 6).

`operator_actions`: one row per operator action through the API (retry or cancel a call, lift
a hold, campaign start/pause/resume/cancel): the actor (the API key's label), the action, its
target, the reason and details, and when. `scheduled_calls.override_reason`: set by a retry
with override, whose call the worker then places without re-checking holds and rules. The new webhook event types (`debtor.opted_out`,
`debtor.disputed`, ...) need no schema change: `webhook_endpoints.events` and
`webhook_deliveries.event_type` are free strings, validated against the registry by the API.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # An operator's retry with override: the worker places it without re-checking holds/rules.
    op.add_column("scheduled_calls", sa.Column("override_reason", sa.Text(), nullable=True))
    op.create_table(
        "operator_actions",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_kind", sa.String(length=32), nullable=False),
        sa.Column("target_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_actions")),
    )
    op.create_index("ix_operator_actions_created_at_id", "operator_actions", ["created_at", "id"])
    op.create_index("ix_operator_actions_target", "operator_actions", ["target_kind", "target_id"])


def downgrade() -> None:
    op.drop_index("ix_operator_actions_target", table_name="operator_actions")
    op.drop_index("ix_operator_actions_created_at_id", table_name="operator_actions")
    op.drop_table("operator_actions")
    op.drop_column("scheduled_calls", "override_reason")
