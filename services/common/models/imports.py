"""Bulk debtor imports: jobs and per-row errors (issue 18 item 2).

`debtor_imports`: one uploaded file (stored in GCS under `blob_key`), its layout (CSV header,
number of batches) and its progress counts, which each batch's transaction adds to. Unique on
`fingerprint` (the file's SHA-256, format and campaign): the same file again is the same import.
`import_row_errors`: why a row was refused, one row per (row, field) problem. Debtors created by
an import are plain `debtors` rows; `debtors.external_id` (unique) is the row's external
reference, so a row seen twice never creates a second debtor.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.common.models import Base, _in, _now

# specs/schemas/import_status.json
IMPORT_STATUSES = ("queued", "processing", "completed", "failed")
IMPORT_FORMATS = ("csv", "ndjson")


class DebtorImport(Base):
    __tablename__ = "debtor_imports"
    __table_args__ = (
        CheckConstraint(_in("status", IMPORT_STATUSES), name="status"),
        CheckConstraint(_in("format", IMPORT_FORMATS), name="format"),
        CheckConstraint("batches_done <= batches_total", name="batches_done_le_total"),
        Index("ix_debtor_imports_created_at_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    status: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(8))
    filename: Mapped[str | None] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_sha256: Mapped[str] = mapped_column(String(64))
    # sha256 of (content hash, format, campaign): what makes two uploads "the same file".
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL")
    )
    blob_key: Mapped[str] = mapped_column(Text)
    # CSV: the header's column names, in file order; None for JSON lines.
    columns: Mapped[list[str] | None] = mapped_column(JSONB)
    rows_total: Mapped[int] = mapped_column(Integer)
    rows_processed: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    batches_total: Mapped[int] = mapped_column(Integer)
    batches_done: Mapped[int] = mapped_column(Integer, default=0)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ImportRowError(Base):
    __tablename__ = "import_row_errors"
    __table_args__ = (Index("ix_import_row_errors_import_id_row_id", "import_id", "row", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    import_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("debtor_imports.id", ondelete="CASCADE")
    )
    row: Mapped[int] = mapped_column(Integer)
    field: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)


def counts_of(job: DebtorImport) -> dict[str, Any]:
    return {
        "rows_total": job.rows_total,
        "rows_processed": job.rows_processed,
        "created": job.created_count,
        "duplicates": job.duplicate_count,
        "failed": job.failed_count,
    }
