"""Debtor import rows: the public view, the fingerprint, the events an import produces."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from generated.import_batch_requested import ImportBatchRequested
from generated.import_completed_data import ImportCompletedData
from generated.import_counts import ImportCounts
from generated.import_format import ImportFormat
from generated.import_job import ImportJob
from generated.import_status import ImportStatus
from services.client_api.imports_rows import Batch
from services.common.models.imports import DebtorImport, counts_of
from services.common.outbox import add_event
from services.common.settings import Settings

SOURCE = "/client-api"
CE_TYPE_BATCH = "import.batch_requested"
CE_TYPE_COMPLETED = "import.completed"
_EVENT_NS = uuid.UUID("6f1c2b7e-2a8d-4c61-9a0e-2f6d3b1e8c55")


def fingerprint(content_sha256: str, fmt: str, campaign_id: uuid.UUID | None) -> str:
    """What makes two uploads the same import: the bytes, their format and the campaign."""
    return hashlib.sha256(f"{content_sha256}:{fmt}:{campaign_id or ''}".encode()).hexdigest()


def job_model(row: DebtorImport) -> ImportJob:
    return ImportJob(
        id=row.id,
        status=ImportStatus(row.status),
        format=ImportFormat(row.format),
        filename=row.filename,
        size_bytes=row.size_bytes,
        content_sha256=row.content_sha256,
        campaign_id=row.campaign_id,
        counts=ImportCounts(**counts_of(row)),
        created_at=row.created_at,
        completed_at=row.completed_at,
    )


def batch_event_id(import_id: uuid.UUID, index: int) -> str:
    return str(uuid.uuid5(_EVENT_NS, f"batch:{import_id}:{index}"))


def completed_event_id(import_id: uuid.UUID) -> str:
    return str(uuid.uuid5(_EVENT_NS, f"{CE_TYPE_COMPLETED}:{import_id}"))


def request_batches(
    session: AsyncSession, settings: Settings, import_id: uuid.UUID, batches: list[Batch]
) -> None:
    """One `import.batch_requested` per batch, in the transaction that creates the import."""
    for batch in batches:
        add_event(
            session,
            settings.pubsub_topic_debtor_imports,
            CE_TYPE_BATCH,
            SOURCE,
            ImportBatchRequested(
                import_id=import_id,
                batch_index=batch.index,
                first_row=batch.first_row,
                row_count=batch.row_count,
                byte_start=batch.byte_start,
                byte_end=batch.byte_end,
            ),
            ce_id=batch_event_id(import_id, batch.index),
        )


def add_completed_event(
    session: AsyncSession, settings: Settings, row: DebtorImport, at: datetime
) -> None:
    """`import.completed` (once per import: its ce-id is derived from the import id), on
    `call-events` like the other webhook events, in the transaction that completes it."""
    row.completed_at = at
    add_event(
        session,
        settings.pubsub_topic_call_events,
        CE_TYPE_COMPLETED,
        SOURCE,
        ImportCompletedData(import_job=job_model(row)),
        ce_id=completed_event_id(row.id),
    )
