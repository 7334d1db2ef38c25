"""debtors.account_reference is optional, as the Client API contract says (DebtorCreate and
Debtor allow null).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 18:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column(
        "debtors", "account_reference", existing_type=sa.String(length=64), nullable=True
    )


def downgrade() -> None:
    op.execute("UPDATE debtors SET account_reference = '' WHERE account_reference IS NULL")
    op.alter_column(
        "debtors", "account_reference", existing_type=sa.String(length=64), nullable=False
    )
