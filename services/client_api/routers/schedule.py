"""`/v1/debtors/{id}/schedule` (the pending call schedule) and lifting a debtor's hold (an
operator action, audited in `operator_actions`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from sqlalchemy import select

from generated.client_api import DebtorHold, DebtorSchedule, HoldLiftRequest
from services.client_api.deps import ActorDep, SessionDep
from services.client_api.problems import (
    HOLD_ALREADY_LIFTED,
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
)
from services.client_api.schedule_view import (
    hold_to_model,
    pending_schedule,
    scheduled_to_model,
)
from services.client_api.strict import strictly
from services.client_api.validation import storable_text_errors
from services.common import models
from services.common.audit import record_action
from services.common.logging import get_logger

log = get_logger(__name__)

router = APIRouter(prefix="/v1/debtors", tags=["Debtors"])

DebtorIdPath = Annotated[uuid.UUID, Path(description="The debtor's id.")]


@router.get(
    "/{debtor_id}/schedule",
    operation_id="getDebtorSchedule",
    response_model=DebtorSchedule,
    responses={**NOT_FOUND, **UNPROCESSABLE},
)
async def get_debtor_schedule(debtor_id: DebtorIdPath, session: SessionDep) -> DebtorSchedule:
    if await session.get(models.Debtor, debtor_id) is None:
        raise not_found("debtor")
    rows = await pending_schedule(session, debtor_id)
    return DebtorSchedule(data=[scheduled_to_model(r) for r in rows])


@router.post(
    "/{debtor_id}/holds/{hold_id}/lift",
    operation_id="liftDebtorHold",
    response_model=DebtorHold,
    responses={**BAD_REQUEST, **NOT_FOUND, **CONFLICT, **TOO_LARGE, **UNPROCESSABLE},
)
async def lift_debtor_hold(
    debtor_id: DebtorIdPath,
    hold_id: Annotated[uuid.UUID, Path(description="The hold's id (see the debtor's `holds`).")],
    body: HoldLiftRequest,
    session: SessionDep,
    request: Request,
    actor: ActorDep,
) -> DebtorHold:
    body = await strictly(request, HoldLiftRequest) or body
    errors = storable_text_errors(body)
    if not body.reason.strip():
        errors.append(("body.reason", "must not be blank"))
    if errors:
        raise validation_error(errors)
    hold = await session.scalar(
        select(models.DebtorHold)
        .where(models.DebtorHold.id == hold_id, models.DebtorHold.debtor_id == debtor_id)
        .with_for_update()
    )
    if hold is None:
        raise not_found("hold")
    if hold.lifted_at is not None:
        raise ProblemError(409, HOLD_ALREADY_LIFTED, "This hold was lifted already.")
    hold.lifted_at = datetime.now(UTC)
    hold.lifted_reason = body.reason
    # Audited with the lift, in its transaction (GET /v1/operator-actions).
    await record_action(
        session,
        actor=actor,
        action="hold.lift",
        target_kind="hold",
        target_id=hold.id,
        reason=body.reason,
        details={"debtor_id": str(debtor_id), "kind": hold.kind},
    )
    await session.commit()
    log.info("debtor_hold_lifted", debtor_id=str(debtor_id), hold_id=str(hold_id), kind=hold.kind)
    return hold_to_model(hold)
