"""Payment promises: `GET /v1/promises` (filters, keyset pages), `GET /v1/promises/{id}` and
`POST /v1/promises/{id}/cancel`.

Pages are services/client_api/pagination.py's, newest first by `(created_at, public_id)`: the
promise's public id is the one clients see (the row's integer key never leaves the database).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BeforeValidator
from sqlalchemy import select

from generated.client_api import PromisePage
from generated.promise import Promise
from generated.promise_status import PromiseStatus
from services.client_api.deps import SessionDep
from services.client_api.pagination import newest_first, page_tuples
from services.client_api.problems import (
    PROMISE_NOT_PENDING,
    ProblemError,
    not_found,
    validation_error,
)
from services.client_api.responses import (
    BAD_REQUEST,
    CONFLICT,
    NOT_FOUND,
    UNPROCESSABLE,
    CursorQuery,
    LimitQuery,
)
from services.common import models
from services.common.logging import get_logger
from services.common.promise_events import promise_model, promises_with_debtor
from services.common.promise_tracking import transition

log = get_logger(__name__)

router = APIRouter(tags=["Promises"])

PromiseId = Annotated[uuid.UUID, Path(description="The promise's id.")]
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(value: object) -> object:
    # Pydantic alone would read `0` or `1733184000` as a Unix time; the spec says a date.
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date, YYYY-MM-DD")
    return value


DueDate = Annotated[date | None, BeforeValidator(_iso_date)]


@router.get(
    "/v1/promises",
    operation_id="listPromises",
    response_model=PromisePage,
    responses={**BAD_REQUEST, **UNPROCESSABLE},
)
async def list_promises(
    session: SessionDep,
    debtor_id: Annotated[
        uuid.UUID | None, Query(description="Only promises of this debtor.")
    ] = None,
    status: Annotated[
        PromiseStatus | None, Query(description="Only promises currently in this status.")
    ] = None,
    due_from: Annotated[
        DueDate, Query(description="Only promises due on or after this date.")
    ] = None,
    due_to: Annotated[
        DueDate, Query(description="Only promises due on or before this date.")
    ] = None,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> PromisePage:
    if due_from is not None and due_to is not None and due_from > due_to:
        raise validation_error([("query.due_to", "must not be before due_from")])
    P = models.PaymentPromise
    rows, next_cursor = await page_tuples(
        session,
        promises_with_debtor(),
        newest_first(P, P.public_id, row_key=lambda r: (r[0].created_at, r[0].public_id)),
        kind="promises",
        filters={
            "debtor_id": debtor_id,
            "status": status.value if status else None,
            "due_from": due_from,
            "due_to": due_to,
        },
        limit=limit,
        cursor=cursor,
        where=[
            models.Call.debtor_id == debtor_id if debtor_id is not None else None,
            P.status == status.value if status is not None else None,
            P.due_date >= due_from if due_from is not None else None,
            P.due_date <= due_to if due_to is not None else None,
        ],
    )
    return PromisePage(data=[promise_model(p, d) for p, d in rows], next_cursor=next_cursor)


async def _load(session: SessionDep, promise_id: uuid.UUID, lock: bool = False) -> Promise:
    stmt = promises_with_debtor().where(models.PaymentPromise.public_id == promise_id)
    if lock:
        stmt = stmt.with_for_update(of=models.PaymentPromise)
    found = (await session.execute(stmt)).tuples().first()
    if found is None:
        raise not_found("promise")
    return promise_model(found[0], found[1])


@router.get(
    "/v1/promises/{promise_id}",
    operation_id="getPromise",
    response_model=Promise,
    responses={**NOT_FOUND, **UNPROCESSABLE},
)
async def get_promise(promise_id: PromiseId, session: SessionDep) -> Promise:
    return await _load(session, promise_id)


@router.post(
    "/v1/promises/{promise_id}/cancel",
    operation_id="cancelPromise",
    response_model=Promise,
    responses={**NOT_FOUND, **CONFLICT, **UNPROCESSABLE},
)
async def cancel_promise(promise_id: PromiseId, session: SessionDep) -> Promise:
    promise = await session.scalar(
        select(models.PaymentPromise)
        .where(models.PaymentPromise.public_id == promise_id)
        .with_for_update()
    )
    if promise is None:
        raise not_found("promise")
    if promise.status != "pending":
        raise ProblemError(
            409,
            PROMISE_NOT_PENDING,
            f"The promise is {promise.status}; only a pending one is cancelled.",
        )
    promise.status = transition("pending", "cancelled")
    promise.resolved_at = datetime.now(UTC)
    await session.commit()
    log.info("promise_cancelled", promise_id=str(promise_id))
    return await _load(session, promise_id)
