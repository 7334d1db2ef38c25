"""`campaigns.follow_up_broken_promises` (issue 18 item 3): a promise made on a campaign's call
that turns broken gets a follow-up call. On for existing campaigns too.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 19:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "campaigns",
        sa.Column(
            "follow_up_broken_promises",
            sa.Boolean(),
            server_default=sa.text("true"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("campaigns", "follow_up_broken_promises")
