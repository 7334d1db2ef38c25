"""`/v1/debtor-imports`: upload a CSV or JSON-lines file of debtors, follow it, read its errors.

The upload is streamed to GCS (services/client_api/imports_upload.py) and answered 202 with
the import in status `queued`; its batches are processed by the import worker
(services/client_api/imports_worker.py) from the `debtor-imports` topic. The same file again
(same bytes, format and campaign) or the same `Idempotency-Key` and file is the same import.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from generated.client_api import ImportJobPage, ImportRowError, ImportRowErrorPage
from generated.import_job import ImportJob
from services.client_api.deps import RuntimeDep, SessionDep, SettingsDep
from services.client_api.errors import constraint_name
from services.client_api.idempotency import IdempotencyKey, key_errors, mark_replayed, same_request
from services.client_api.imports_store import (
    add_completed_event,
    fingerprint,
    job_model,
    request_batches,
)
from services.client_api.imports_upload import (
    Received,
    discard,
    media_kind,
    receive_upload,
)
from services.client_api.pagination import Keyset, integer, newest_first, page
from services.client_api.problems import (
    not_found,
    validation_error,
)
from services.client_api.responses import (
    BAD_REQUEST,
    CONFLICT,
    NOT_FOUND,
    TOO_LARGE,
    UNPROCESSABLE,
    CursorQuery,
    LimitQuery,
    _problem,
)
from services.common.blobstore import GcsBlobStore
from services.common.campaign_lifecycle import accepts_debtors
from services.common.logging import get_logger
from services.common.models.campaigns import Campaign
from services.common.models.imports import DebtorImport
from services.common.models.imports import ImportRowError as ErrorRow

log = get_logger(__name__)

PATH = "/v1/debtor-imports"
router = APIRouter(prefix=PATH, tags=["Imports"])

UNSUPPORTED = _problem(415, "The Content-Type is not one an import accepts.")
CSV_MEDIA = "text/csv"
ERRORS_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {CSV_MEDIA: {"schema": {"type": "string"}}}}
}

_FILE_SCHEMA: dict[str, Any] = {"type": "string", "description": "The file's bytes."}
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": _FILE_SCHEMA},
            "application/x-ndjson": {"schema": _FILE_SCHEMA},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                },
                "encoding": {"file": {"contentType": "text/csv, application/x-ndjson"}},
            },
        },
    }
}

CampaignQuery = Annotated[
    uuid.UUID | None,
    Query(description="Assign every imported debtor to this campaign (draft, running or paused)."),
]
ImportId = Annotated[uuid.UUID, Path(description="The import's id.")]


async def _check_campaign(session: AsyncSession, campaign_id: uuid.UUID | None) -> None:
    if campaign_id is None:
        return
    status = await session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
    if status is None:
        raise validation_error([("query.campaign_id", "no such campaign")])
    if not accepts_debtors(status):
        raise validation_error(
            [("query.campaign_id", f"the campaign is {status}: it takes no more debtors")]
        )
    await session.rollback()  # no transaction held open while the file streams in


async def _previous(session: AsyncSession, fp: str, key: str | None) -> DebtorImport | None:
    """The import this upload repeats (same key, or same file), if any; 409 for a key used
    with another file."""
    if key is not None:
        by_key = await session.scalar(
            select(DebtorImport).where(DebtorImport.idempotency_key == key)
        )
        if by_key is not None:
            same_request(
                by_key.fingerprint,
                fp,
                "This Idempotency-Key was used with another file or campaign; use a new key.",
            )
            return by_key
    found: DebtorImport | None = await session.scalar(
        select(DebtorImport).where(DebtorImport.fingerprint == fp)
    )
    return found


def _replayed(row: DebtorImport, response: Response) -> ImportJob:
    log.info("debtor_import_replayed", import_id=str(row.id))
    mark_replayed(response, location=f"/v1/debtor-imports/{row.id}")
    return job_model(row)


def _new_job(
    job_id: uuid.UUID,
    received: Received,
    fp: str,
    key: str | None,
    campaign_id: uuid.UUID | None,
    blob_key: str,
) -> DebtorImport:
    now = datetime.now(UTC)
    batches = received.splitter.batches
    return DebtorImport(
        id=job_id,
        status="queued" if batches else "completed",
        format=received.format,
        filename=received.filename,
        size_bytes=received.size,
        content_sha256=received.sha256,
        fingerprint=fp,
        idempotency_key=key,
        campaign_id=campaign_id,
        blob_key=blob_key,
        columns=received.columns,
        rows_total=received.splitter.rows,
        rows_processed=0,
        created_count=0,
        duplicate_count=0,
        failed_count=0,
        batches_total=len(batches),
        batches_done=0,
        created_at=now,
        updated_at=now,
    )


@router.post(
    "",
    operation_id="createDebtorImport",
    status_code=202,
    response_model=ImportJob,
    responses={**BAD_REQUEST, **CONFLICT, **TOO_LARGE, **UNSUPPORTED, **UNPROCESSABLE},
    openapi_extra=UPLOAD_BODY,
)
async def create_import(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    runtime: RuntimeDep,
    response: Response,
    campaign_id: CampaignQuery = None,
    idempotency_key: IdempotencyKey = None,
) -> ImportJob:
    if errors := key_errors(idempotency_key):
        raise validation_error(errors)
    kind, params = media_kind(request.headers.get("content-type"))
    await _check_campaign(session, campaign_id)
    blobs: GcsBlobStore = request.app.state.blobs
    job_id = uuid.uuid4()
    blob_key = f"imports/{job_id}"
    received = await receive_upload(request, kind, params, settings, blobs, blob_key)
    fp = fingerprint(received.sha256, received.format, campaign_id)

    previous = await _previous(session, fp, idempotency_key)
    if previous is not None:
        await discard(blobs, blob_key)
        return _replayed(previous, response)
    row = _new_job(job_id, received, fp, idempotency_key, campaign_id, blob_key)
    session.add(row)
    request_batches(session, settings, job_id, received.splitter.batches)
    if not received.splitter.batches:  # a header and no rows: nothing to wait for
        add_completed_event(session, settings, row, row.created_at)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        await discard(blobs, blob_key)
        name = constraint_name(exc)
        if name in ("uq_debtor_imports_fingerprint", "uq_debtor_imports_idempotency_key"):
            previous = await _previous(session, fp, idempotency_key)  # a concurrent twin won
            if previous is not None:
                return _replayed(previous, response)
        if name is not None and name.startswith("fk_"):
            raise validation_error([("query.campaign_id", "no such campaign")]) from exc
        raise
    runtime.relay.wake()
    log.info(
        "debtor_import_accepted",
        import_id=str(job_id),
        format=received.format,
        rows=row.rows_total,
        batches=row.batches_total,
        size_bytes=row.size_bytes,
    )
    response.headers["Location"] = f"/v1/debtor-imports/{job_id}"
    return job_model(row)


@router.get(
    "",
    operation_id="listDebtorImports",
    response_model=ImportJobPage,
    responses={**BAD_REQUEST, **UNPROCESSABLE},
)
async def list_imports(
    session: SessionDep, limit: LimitQuery = 20, cursor: CursorQuery = None
) -> ImportJobPage:
    rows, next_cursor = await page(
        session,
        select(DebtorImport),
        newest_first(DebtorImport),
        kind="debtor-imports",
        filters={},
        limit=limit,
        cursor=cursor,
    )
    return ImportJobPage(data=[job_model(r) for r in rows], next_cursor=next_cursor)


async def _job(session: AsyncSession, import_id: uuid.UUID) -> DebtorImport:
    row = await session.get(DebtorImport, import_id)
    if row is None:
        raise not_found("debtor import")
    return row


@router.get(
    "/{import_id}",
    operation_id="getDebtorImport",
    response_model=ImportJob,
    responses={**NOT_FOUND, **UNPROCESSABLE},
)
async def get_import(import_id: ImportId, session: SessionDep) -> ImportJob:
    return job_model(await _job(session, import_id))


# Row errors are listed in row order (not newest first), by (row, id).
ERRORS_ORDER = Keyset((ErrorRow.row, ErrorRow.id), (integer("r", 0, 2**31), integer("i", 0, 2**63)))
ERRORS_INVALID = "`cursor` is not a cursor this list issued; start again without it."


def _wants_csv(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return CSV_MEDIA in accept and "application/json" not in accept


@router.get(
    "/{import_id}/errors",
    operation_id="listDebtorImportErrors",
    response_model=ImportRowErrorPage,
    responses={**ERRORS_CSV, **BAD_REQUEST, **NOT_FOUND, **UNPROCESSABLE},
)
async def list_errors(
    import_id: ImportId,
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> Any:
    await _job(session, import_id)
    if _wants_csv(request):
        return _csv_download(runtime.sessions, import_id)
    rows, next_cursor = await page(
        session,
        select(ErrorRow),
        ERRORS_ORDER,
        kind="import-errors",
        filters={"import_id": import_id},
        limit=limit,
        cursor=cursor,
        where=[ErrorRow.import_id == import_id],
        detail=ERRORS_INVALID,
    )
    return ImportRowErrorPage(
        data=[ImportRowError(row=r.row, field=r.field, reason=r.reason) for r in rows],
        next_cursor=next_cursor,
    )


@router.get(
    "/{import_id}/errors.csv",
    operation_id="downloadDebtorImportErrors",
    response_class=StreamingResponse,
    responses={**ERRORS_CSV, **NOT_FOUND, **UNPROCESSABLE},
)
async def download_errors(
    import_id: ImportId, session: SessionDep, runtime: RuntimeDep
) -> StreamingResponse:
    await _job(session, import_id)
    return _csv_download(runtime.sessions, import_id)


def _csv_download(sessions: Any, import_id: uuid.UUID) -> StreamingResponse:
    async def lines() -> AsyncIterator[str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["row", "field", "reason"])
        yield out.getvalue()
        last = (0, 0)
        while True:
            async with sessions() as session:
                rows = (
                    await session.execute(
                        select(ErrorRow.row, ErrorRow.id, ErrorRow.field, ErrorRow.reason)
                        .where(
                            ErrorRow.import_id == import_id,
                            tuple_(ErrorRow.row, ErrorRow.id) > tuple_(*last),
                        )
                        .order_by(ErrorRow.row, ErrorRow.id)
                        .limit(1000)
                    )
                ).all()
            if not rows:
                return
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\r\n")
            for row, _id, field, reason in rows:
                writer.writerow([row, field or "", reason])
            yield out.getvalue()
            last = (rows[-1][0], rows[-1][1])

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{import_id}-errors.csv"'},
    )
