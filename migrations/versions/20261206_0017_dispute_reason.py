"""`calls.dispute_reason` (issue 20): why the debtor disputes the debt ("already paid ..."),
kept on the call and shown to the client, as the hardship note is.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 22:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("dispute_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("calls", "dispute_reason")
