"""`/v1/debtors`: create, list, get."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from generated.client_api import Debtor, DebtorCreate, DebtorPage
from services.client_api.deps import SessionDep, SettingsDep
from services.client_api.errors import constraint_name
from services.client_api.mapping import debtor_to_model
from services.client_api.pagination import newest_first, page
from services.client_api.problems import (
    DUPLICATE_EXTERNAL_ID,
    ProblemError,
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
)
from services.client_api.schedule_view import schedule_fields
from services.client_api.strict import strictly
from services.client_api.validation import debtor_errors
from services.common import models
from services.common.logging import get_logger

log = get_logger(__name__)

router = APIRouter(prefix="/v1/debtors", tags=["Debtors"])


def _duplicate_external_id() -> ProblemError:
    return ProblemError(409, DUPLICATE_EXTERNAL_ID, "A debtor with this external_id exists.")


@router.post(
    "",
    operation_id="createDebtor",
    status_code=201,
    response_model=Debtor,
    responses={**BAD_REQUEST, **CONFLICT, **TOO_LARGE, **UNPROCESSABLE},
)
async def create_debtor(
    body: DebtorCreate,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> Debtor:
    body = await strictly(request, DebtorCreate) or body
    errors = debtor_errors(body)
    if errors:
        raise validation_error(errors)
    if body.external_id is not None and await session.scalar(
        select(models.Debtor.id).where(models.Debtor.external_id == body.external_id)
    ):
        raise _duplicate_external_id()
    row = models.Debtor(
        id=uuid.uuid4(),
        external_id=body.external_id,
        name=body.name,
        phone=body.phone,
        timezone=body.timezone,
        stage=body.stage.value,
        amount_owed_minor=body.amount_owed.amount_minor,
        currency=body.amount_owed.currency,
        due_date=body.due_date,
        account_reference=body.account_reference,
        date_of_birth=body.date_of_birth,
        postal_code=body.postal_code,
        metadata_=dict(body.metadata),
    )
    session.add(row)
    try:
        await session.commit()
    except IntegrityError as exc:
        # Two creates with one external_id racing: the unique constraint decides.
        await session.rollback()
        if constraint_name(exc) == "uq_debtors_external_id":
            raise _duplicate_external_id() from exc
        raise
    await session.refresh(row)
    log.info("debtor_created", debtor_id=str(row.id))
    response.headers["Location"] = f"/v1/debtors/{row.id}"
    extra = await schedule_fields(session, [row.id], settings)
    return debtor_to_model(row, extra[row.id])


@router.get(
    "",
    operation_id="listDebtors",
    response_model=DebtorPage,
    responses={**BAD_REQUEST, **UNPROCESSABLE},
)
async def list_debtors(
    session: SessionDep, settings: SettingsDep, limit: LimitQuery = 20, cursor: CursorQuery = None
) -> DebtorPage:
    rows, next_cursor = await page(
        session,
        select(models.Debtor),
        newest_first(models.Debtor),
        kind="debtors",
        filters={},
        limit=limit,
        cursor=cursor,
    )
    extra = await schedule_fields(session, [r.id for r in rows], settings)
    return DebtorPage(data=[debtor_to_model(r, extra[r.id]) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{debtor_id}",
    operation_id="getDebtor",
    response_model=Debtor,
    responses={**NOT_FOUND, **UNPROCESSABLE},
)
async def get_debtor(
    debtor_id: Annotated[uuid.UUID, Path(description="The debtor's id.")],
    session: SessionDep,
    settings: SettingsDep,
) -> Debtor:
    row = await session.get(models.Debtor, debtor_id)
    if row is None:
        raise not_found("debtor")
    extra = await schedule_fields(session, [row.id], settings)
    return debtor_to_model(row, extra[row.id])
