"""Prompt variants (issue 18 item 5): each call records the stage prompt's variant it used.

`calls.prompt_variant` is set at dispatch (services/common/prompt_variants.py) and confirmed by
the orchestrator when the call ends. Calls dispatched before variants existed all used today's
text, now the `default` variant, so they are backfilled with it; calls not dispatched stay null.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("prompt_variant", sa.String(length=32), nullable=True))
    op.execute("UPDATE calls SET prompt_variant = 'default' WHERE prompt_version IS NOT NULL")


def downgrade() -> None:
    op.drop_column("calls", "prompt_variant")
