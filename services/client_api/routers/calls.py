"""Call triggers (`POST /v1/debtors/{id}/calls`) and call history (`/v1/calls`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import structlog
from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from generated.call import Call
from generated.call_status import CallStatus
from generated.call_step import CallStep
from generated.call_step_event_page import CallStepEventPage
from generated.client_api import CallPage, CallTriggerRequest
from services.client_api.call_events import events_page
from services.client_api.deps import BlobsDep, RuntimeDep, SessionDep, SettingsDep
from services.client_api.errors import constraint_name
from services.client_api.idempotency import (
    IdempotencyKey,
    key_errors,
    mark_replayed,
    request_fingerprint,
    same_request,
)
from services.client_api.mapping import call_load_options, call_to_model, load_call
from services.client_api.pagination import newest_first, page
from services.client_api.problems import (
    CALL_ALREADY_ACTIVE,
    CALL_NOT_ALLOWED,
    DEBTOR_ON_HOLD,
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
from services.client_api.strict import strictly
from services.client_api.validation import storable_text_errors
from services.common import models
from services.common.blobstore import BlobStore
from services.common.call_queue import announce_call_requested, queue_call
from services.common.call_steps import record_step
from services.common.calling_rules import Intent, Refused, earliest_allowed
from services.common.logging import get_logger
from services.common.schedule_store import active_holds, contact_of, load_history, rules_config
from services.common.settings import Settings

log = get_logger(__name__)

router = APIRouter(tags=["Calls"])

SOURCE = "/client-api"


def fingerprint(debtor_id: uuid.UUID, body: CallTriggerRequest) -> str:
    """What makes two triggers "the same request": the debtor and the body's meaning (no body,
    `{}` and `{"metadata": {}}` are the same request)."""
    return request_fingerprint({"debtor_id": str(debtor_id), "body": body.model_dump(mode="json")})


def _already_active() -> ProblemError:
    return ProblemError(
        409, CALL_ALREADY_ACTIVE, "The debtor has a call queued or in progress already."
    )


def _on_hold(holds: Sequence[models.DebtorHold]) -> ProblemError:
    named = "; ".join(
        f"{h.kind} (hold {h.id}, since {h.created_at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}): "
        f"{h.reason}"
        for h in holds
    )
    return ProblemError(
        409,
        DEBTOR_ON_HOLD,
        f"The debtor is on hold, no call is placed: {named}. An operator can lift a hold with "
        "POST /v1/debtors/{debtor_id}/holds/{hold_id}/lift.",
    )


async def _earliest(
    session: AsyncSession, settings: Settings, debtor: models.Debtor, now: datetime
) -> datetime:
    """When the calling rules let this trigger be placed (now, or when the window opens)."""
    cfg = rules_config(settings)
    history = await load_history(session, debtor.id, now, cfg)
    verdict = earliest_allowed(now, contact_of(debtor), history, Intent(reason="manual"), cfg)
    if isinstance(verdict, Refused):
        raise ProblemError(
            409, CALL_NOT_ALLOWED, f"The calling rules do not allow this call: {verdict.reason}."
        )
    return max(verdict.at, now).astimezone(UTC)  # the API answers in UTC


async def _replay(session: AsyncSession, key: str, fp: str) -> models.Call | None:
    """The call a previous request with this key created, if any (409 if it was another
    request)."""
    previous: models.Call | None = await session.scalar(
        select(models.Call).where(models.Call.idempotency_key == key).options(*call_load_options())
    )
    if previous is not None:
        same_request(previous.request_fingerprint, fp)
    return previous


@router.post(
    "/v1/debtors/{debtor_id}/calls",
    operation_id="triggerCall",
    status_code=202,
    response_model=Call,
    responses={
        **BAD_REQUEST,
        **NOT_FOUND,
        **CONFLICT,
        **TOO_LARGE,
        **UNPROCESSABLE,
    },
)
async def trigger_call(
    debtor_id: Annotated[uuid.UUID, Path(description="The debtor's id.")],
    session: SessionDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
    blobs: BlobsDep,
    http_request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
    body: CallTriggerRequest | None = None,
) -> Call:
    if body is not None:
        body = await strictly(http_request, CallTriggerRequest) or body
    request = body or CallTriggerRequest()
    errors = storable_text_errors(request) + key_errors(idempotency_key)
    if errors:
        raise validation_error(errors)
    fp = fingerprint(debtor_id, request)

    if idempotency_key is not None:
        previous = await _replay(session, idempotency_key, fp)
        if previous is not None:
            return await _replayed(previous, blobs, response)

    debtor = await session.get(models.Debtor, debtor_id)
    if debtor is None:
        raise not_found("debtor")
    holds = await active_holds(session, debtor_id)
    if holds:
        raise _on_hold(holds)
    live = await session.scalar(
        select(models.Call.id).where(
            models.Call.debtor_id == debtor_id,
            models.Call.status.in_(models.LIVE_CALL_STATUSES),
        )
    )
    if live is not None:
        # The live call may be the one a concurrent retry with this key just created.
        if idempotency_key is not None:
            previous = await _replay(session, idempotency_key, fp)
            if previous is not None:
                return await _replayed(previous, blobs, response)
        raise _already_active()

    now = datetime.now(UTC)
    not_before = await _earliest(session, settings, debtor, now)
    # The Call Scheduler places it at `not_before` (held until the calling window opens).
    call = queue_call(
        session,
        debtor_id=debtor_id,
        stage=debtor.stage,
        reason="manual",
        not_before=not_before,
        metadata=request.metadata,
        idempotency_key=idempotency_key,
        request_fingerprint=fp if idempotency_key is not None else None,
    )
    await record_step(
        session,
        call.id,
        CallStep.SCHEDULED,
        at=now,
        detail={"schedule_reason": "manual", "not_before": not_before, "attempt": 1},
    )
    # The call row and its `call.requested` event commit together (transactional outbox).
    announce_call_requested(
        session, settings, call, source=SOURCE, requested_at=now, idempotency_key=idempotency_key
    )
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        name = constraint_name(exc)
        if name == "uq_calls_idempotency_key" and idempotency_key is not None:
            # A concurrent request with the same key won the race: answer as its replay.
            previous = await _replay(session, idempotency_key, fp)
            if previous is not None:
                return await _replayed(previous, blobs, response)
        if name == "uq_calls_one_live_per_debtor":
            # Same key racing may hit this index first; the winner is then a replay.
            if idempotency_key is not None:
                previous = await _replay(session, idempotency_key, fp)
                if previous is not None:
                    return await _replayed(previous, blobs, response)
            raise _already_active() from exc
        if name is not None and name.startswith("fk_"):
            raise not_found("debtor") from exc  # deleted meanwhile
        raise
    runtime.relay.wake()
    with structlog.contextvars.bound_contextvars(call_id=str(call.id)):
        log.info("call_requested", debtor_id=str(debtor_id), idempotent=idempotency_key is not None)
    row = await load_call(session, call.id)
    assert row is not None
    response.headers["Location"] = f"/v1/calls/{row.id}"
    return await call_to_model(row, blobs)


async def _replayed(previous: models.Call, blobs: BlobStore, response: Response) -> Call:
    with structlog.contextvars.bound_contextvars(call_id=str(previous.id)):
        log.info("call_request_replayed")
    mark_replayed(response, location=f"/v1/calls/{previous.id}")
    return await call_to_model(previous, blobs)


@router.get(
    "/v1/calls",
    operation_id="listCalls",
    response_model=CallPage,
    responses={**BAD_REQUEST, **UNPROCESSABLE},
)
async def list_calls(
    session: SessionDep,
    blobs: BlobsDep,
    debtor_id: Annotated[uuid.UUID | None, Query(description="Only calls to this debtor.")] = None,
    status: Annotated[
        CallStatus | None, Query(description="Only calls currently in this status.")
    ] = None,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> CallPage:
    rows, next_cursor = await page(
        session,
        select(models.Call).options(*call_load_options()),
        newest_first(models.Call),
        kind="calls",
        filters={"debtor_id": debtor_id, "status": status.value if status else None},
        limit=limit,
        cursor=cursor,
        where=[
            models.Call.debtor_id == debtor_id if debtor_id is not None else None,
            models.Call.status == status.value if status is not None else None,
        ],
    )
    return CallPage(data=[await call_to_model(r, blobs) for r in rows], next_cursor=next_cursor)


@router.get(
    "/v1/calls/{call_id}",
    operation_id="getCall",
    response_model=Call,
    responses={**NOT_FOUND, **UNPROCESSABLE},
)
async def get_call(
    call_id: Annotated[uuid.UUID, Path(description="The call's id.")],
    session: SessionDep,
    blobs: BlobsDep,
) -> Call:
    row = await load_call(session, call_id)
    if row is None:
        raise not_found("call")
    with structlog.contextvars.bound_contextvars(call_id=str(call_id)):
        log.debug("call_read")
    return await call_to_model(row, blobs)


@router.get(
    "/v1/calls/{call_id}/events",
    operation_id="listCallEvents",
    response_model=CallStepEventPage,
    response_model_exclude_unset=True,  # a step's detail has only the fields of that step
    responses={**BAD_REQUEST, **NOT_FOUND, **UNPROCESSABLE},
)
async def list_call_events(
    call_id: Annotated[uuid.UUID, Path(description="The call's id.")],
    session: SessionDep,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> CallStepEventPage:
    """The call's steps, oldest first (docs/call-events.md)."""
    exists = await session.scalar(select(models.Call.id).where(models.Call.id == call_id))
    if exists is None:
        raise not_found("call")
    return await events_page(session, call_id, limit=limit, cursor=cursor)
