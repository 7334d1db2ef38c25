"""Outbox rows carry their own retry state: a row whose publish failed backs off instead of
blocking every row behind it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 21:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
    op.add_column("outbox", sa.Column("next_attempt_at", sa.DateTime(timezone=True)))
    op.add_column("outbox", sa.Column("last_error", sa.Text()))


def downgrade() -> None:
    op.drop_column("outbox", "last_error")
    op.drop_column("outbox", "next_attempt_at")
    op.drop_column("outbox", "attempts")
