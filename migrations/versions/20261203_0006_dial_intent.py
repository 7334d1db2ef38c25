"""Dial intent persisted before create-call (issue 17, reconcile helper).

`dial_started_at` is committed before Twilio's create-call is sent; a call with it set and no
`twilio_call_sid` is a dial whose outcome we do not know yet (the process may have died between
the two). `dial_attempts` counts create-call attempts, so a reconciled redial is bounded.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("dial_started_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "calls",
        sa.Column("dial_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("calls", "dial_attempts")
    op.drop_column("calls", "dial_started_at")
