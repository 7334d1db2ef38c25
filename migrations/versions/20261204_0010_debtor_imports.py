"""Bulk debtor imports: jobs, row errors (issue 18 item 2).

`debtor_imports`: one uploaded file, its layout and progress counts (unique on the file's
fingerprint and on the Idempotency-Key). `import_row_errors`: why a row was refused. The row's
external reference is the existing unique `debtors.external_id`: no change to `debtors`.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = ("queued", "processing", "completed", "failed")
_FORMATS = ("csv", "ndjson")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ts(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "debtor_imports",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("campaign_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("blob_key", sa.Text(), nullable=False),
        sa.Column("columns", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_processed", sa.Integer(), nullable=False),
        sa.Column("created_count", sa.Integer(), nullable=False),
        sa.Column("duplicate_count", sa.Integer(), nullable=False),
        sa.Column("failed_count", sa.Integer(), nullable=False),
        sa.Column("batches_total", sa.Integer(), nullable=False),
        sa.Column("batches_done", sa.Integer(), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(_in("status", _STATUSES), name=op.f("ck_debtor_imports_status")),
        sa.CheckConstraint(_in("format", _FORMATS), name=op.f("ck_debtor_imports_format")),
        sa.CheckConstraint(
            "batches_done <= batches_total", name=op.f("ck_debtor_imports_batches_done_le_total")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_debtor_imports_campaign_id_campaigns"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_debtor_imports")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_debtor_imports_fingerprint")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_debtor_imports_idempotency_key")),
    )
    op.create_index("ix_debtor_imports_created_at_id", "debtor_imports", ["created_at", "id"])
    op.create_table(
        "import_row_errors",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("import_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("field", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["debtor_imports.id"],
            name=op.f("fk_import_row_errors_import_id_debtor_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_row_errors")),
    )
    op.create_index(
        "ix_import_row_errors_import_id_row_id", "import_row_errors", ["import_id", "row", "id"]
    )


def downgrade() -> None:
    op.drop_table("import_row_errors")
    op.drop_table("debtor_imports")
