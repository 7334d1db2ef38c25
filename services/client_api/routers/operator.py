"""Operator controls: retry a call now (`POST /v1/calls/{id}/retry`), cancel a call that is not
placed yet (`POST /v1/calls/{id}/cancel`), and the audit of every operator action
(`GET /v1/operator-actions`).

Each action and its audit row (services/common/audit.py) commit in one transaction. Locks are
taken in the Call Scheduler's order (schedule rows, then the call), so a cancel or retry racing
the worker's claim waits for it instead of deadlocking; the orchestrator only ever claims a
`dispatched` call, so a call cancelled before its claim is never dialed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Final

import structlog
from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from generated.call_requested import CallRequested
from generated.call_step import CallStep
from generated.call_step_reason import CallStepReason
from generated.client_api import (
    CallCancelRequest,
    CallCancelResult,
    CallRetryRequest,
    CallRetryResult,
    OperatorAction,
    OperatorActionPage,
    OperatorActionTargetKind,
)
from services.client_api.deps import ActorDep, BlobsDep, RuntimeDep, SessionDep, SettingsDep
from services.client_api.errors import constraint_name
from services.client_api.idempotency import (
    IdempotencyKey,
    key_errors,
    key_reused,
    mark_replayed,
    request_fingerprint,
    same_request,
)
from services.client_api.mapping import call_to_model, load_call
from services.client_api.operator_policy import (
    CancelCall,
    Hold,
    Refusal,
    plan_cancel,
    plan_retry,
)
from services.client_api.pagination import newest_first, page
from services.client_api.problems import (
    CALL_ALREADY_ACTIVE,
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
from services.client_api.schedule_view import scheduled_to_model
from services.client_api.strict import strictly
from services.client_api.validation import storable_text_errors, text_errors
from services.common import models
from services.common.audit import record_action
from services.common.blobstore import BlobStore
from services.common.call_ending import end_unplaced
from services.common.call_steps import record_step
from services.common.calling_rules import Intent, earliest_allowed
from services.common.logging import get_logger
from services.common.models.operator import OperatorAction as OperatorActionRow
from services.common.outbox import add_event
from services.common.schedule_store import (
    active_holds,
    contact_of,
    live_call_id,
    load_history,
    rules_config,
)

log = get_logger(__name__)

router = APIRouter(tags=["Operator"])

SOURCE: Final = "/client-api"
CE_TYPE_CALL_REQUESTED = "call.requested"

CallIdPath = Annotated[uuid.UUID, Path(description="The call's id.")]


def _reason_errors(reason: str | None, *, required: bool) -> list[tuple[str, str]]:
    if reason is None:
        return [("body.reason", "is required with override")] if required else []
    if not reason.strip():
        return [("body.reason", "must not be blank")]
    return []


def _conflict(refusal: Refusal) -> ProblemError:
    return ProblemError(409, refusal.type, refusal.detail)


def retry_fingerprint(call_id: uuid.UUID, body: CallRetryRequest) -> str:
    return request_fingerprint({"retry_of": str(call_id), "body": body.model_dump(mode="json")})


async def _pending_rows(
    session: AsyncSession, call_id: uuid.UUID, *, own: bool, follow_ups: bool
) -> Sequence[models.ScheduledCall]:
    """The call's pending schedule entries (its own and/or its follow-ups), locked."""
    conditions = []
    if own:
        conditions.append(models.ScheduledCall.call_id == call_id)
    if follow_ups:
        conditions.append(models.ScheduledCall.source_call_id == call_id)
    return (
        await session.scalars(
            select(models.ScheduledCall)
            .where(models.ScheduledCall.status == "pending", or_(*conditions))
            .order_by(models.ScheduledCall.not_before, models.ScheduledCall.id)
            .with_for_update()
        )
    ).all()


def _drop(rows: Sequence[models.ScheduledCall], reason: str, now: datetime) -> None:
    for row in rows:
        row.status = "cancelled"
        row.skip_reason = reason[:1000]
        row.updated_at = now


async def _retry_replay(
    session: AsyncSession, blobs: BlobStore, key: str, fp: str, response: Response
) -> CallRetryResult | None:
    previous = await session.scalar(select(models.Call).where(models.Call.idempotency_key == key))
    if previous is None:
        return None
    same_request(previous.request_fingerprint, fp)
    action = await session.scalar(
        select(OperatorActionRow).where(
            OperatorActionRow.action == "call.retry",
            OperatorActionRow.details["call_id"].astext == str(previous.id),
        )
    )
    row = await load_call(session, previous.id)
    if action is None or row is None:  # a trigger's key, not a retry's
        raise key_reused()
    mark_replayed(response, location=f"/v1/calls/{previous.id}")
    return CallRetryResult(
        call=await call_to_model(row, blobs),
        retry_of=action.target_id,
        scheduled_for=datetime.fromisoformat(str(action.details["scheduled_for"])),
        overridden=[str(o) for o in action.details.get("overridden", [])],
        action_id=action.id,
    )


@router.post(
    "/v1/calls/{call_id}/retry",
    operation_id="retryCall",
    status_code=202,
    response_model=CallRetryResult,
    responses={**BAD_REQUEST, **NOT_FOUND, **CONFLICT, **TOO_LARGE, **UNPROCESSABLE},
)
async def retry_call(
    call_id: CallIdPath,
    session: SessionDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
    blobs: BlobsDep,
    actor: ActorDep,
    http_request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
    body: CallRetryRequest | None = None,
) -> CallRetryResult:
    if body is not None:
        body = await strictly(http_request, CallRetryRequest) or body
    request = body or CallRetryRequest()
    override = bool(request.override)
    errors = storable_text_errors(request) + _reason_errors(request.reason, required=override)
    errors += key_errors(idempotency_key)
    if errors:
        raise validation_error(errors)
    fp = retry_fingerprint(call_id, request)
    if idempotency_key is not None:
        replayed = await _retry_replay(session, blobs, idempotency_key, fp, response)
        if replayed is not None:
            return replayed

    now = datetime.now(UTC)
    follow_ups = await _pending_rows(session, call_id, own=False, follow_ups=True)
    old = await session.scalar(
        select(models.Call).where(models.Call.id == call_id).with_for_update()
    )
    if old is None:
        raise not_found("call")
    debtor = await session.get(models.Debtor, old.debtor_id)
    if debtor is None:
        raise not_found("call")
    cfg = rules_config(settings)
    history = await load_history(session, debtor.id, now, cfg)
    plan = plan_retry(
        call_status=old.status,
        other_live_call=await live_call_id(session, debtor.id, other_than=old.id) is not None,
        holds=[Hold(h.kind, h.reason) for h in await active_holds(session, debtor.id)],
        verdict=earliest_allowed(now, contact_of(debtor), history, Intent(reason="retry"), cfg),
        now=now,
        override=override,
    )
    if isinstance(plan, Refusal):
        if idempotency_key is not None:
            # The live call in the way may be the one a concurrent request with this key just
            # created (it held the call's lock until it committed): answer as its replay.
            replayed = await _retry_replay(session, blobs, idempotency_key, fp, response)
            if replayed is not None:
                return replayed
        raise _conflict(plan)
    at = plan.at.astimezone(UTC)
    # This attempt replaces the call's automatic retry or callback.
    _drop(follow_ups, "superseded by an operator's retry", now)
    new = models.Call(
        id=uuid.uuid4(),
        debtor_id=debtor.id,
        status="queued",
        stage=debtor.stage,
        attempt=old.attempt + 1,
        idempotency_key=idempotency_key,
        request_fingerprint=fp if idempotency_key is not None else None,
        metadata_=dict(old.metadata_),
    )
    new.schedule = models.ScheduledCall(
        id=uuid.uuid4(),
        debtor_id=debtor.id,
        reason="retry",
        not_before=at,
        attempt=new.attempt,
        # Only when something was set aside: otherwise the claim re-checks everything as usual.
        override_reason=request.reason if plan.overridden else None,
    )
    session.add(new)
    await record_step(
        session,
        new.id,
        CallStep.SCHEDULED,
        at=now,
        detail={
            "schedule_reason": "retry",
            "not_before": at,
            "attempt": new.attempt,
            "source_call_id": old.id,
        },
    )
    add_event(
        session,
        settings.pubsub_topic_call_requests,
        CE_TYPE_CALL_REQUESTED,
        SOURCE,
        CallRequested(
            call_id=new.id,
            debtor_id=debtor.id,
            requested_at=now,
            idempotency_key=idempotency_key,
        ),
    )
    try:
        # The audit row's flush inserts the new call too: the one-live-call index decides here
        # (or at commit).
        action_id = await record_action(
            session,
            actor=actor,
            action="call.retry",
            target_kind="call",
            target_id=old.id,
            reason=request.reason,
            details={
                "call_id": str(new.id),
                "debtor_id": str(debtor.id),
                "scheduled_for": at.isoformat(),
                "override": override,
                "overridden": list(plan.overridden),
                "superseded_schedule_ids": [str(r.id) for r in follow_ups],
            },
        )
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        name = constraint_name(exc)
        if name == "uq_calls_idempotency_key" and idempotency_key is not None:
            replayed = await _retry_replay(session, blobs, idempotency_key, fp, response)
            if replayed is not None:
                return replayed
        if name == "uq_calls_one_live_per_debtor":
            raise ProblemError(
                409, CALL_ALREADY_ACTIVE, "The debtor has a call queued or in progress already."
            ) from exc
        raise
    runtime.relay.wake()
    with structlog.contextvars.bound_contextvars(call_id=str(new.id)):
        log.info(
            "call_retry_requested",
            retry_of=str(old.id),
            actor=actor,
            scheduled_for=at.isoformat(),
            overridden=len(plan.overridden),
        )
    row = await load_call(session, new.id)
    assert row is not None
    response.headers["Location"] = f"/v1/calls/{new.id}"
    return CallRetryResult(
        call=await call_to_model(row, blobs),
        retry_of=old.id,
        scheduled_for=at,
        overridden=list(plan.overridden),
        action_id=action_id,
    )


@router.post(
    "/v1/calls/{call_id}/cancel",
    operation_id="cancelCall",
    response_model=CallCancelResult,
    responses={**BAD_REQUEST, **NOT_FOUND, **CONFLICT, **TOO_LARGE, **UNPROCESSABLE},
)
async def cancel_call(
    call_id: CallIdPath,
    session: SessionDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
    blobs: BlobsDep,
    actor: ActorDep,
    http_request: Request,
    body: CallCancelRequest | None = None,
) -> CallCancelResult:
    if body is not None:
        body = await strictly(http_request, CallCancelRequest) or body
    request = body or CallCancelRequest()
    errors = storable_text_errors(request) + _reason_errors(request.reason, required=False)
    if errors:
        raise validation_error(errors)
    now = datetime.now(UTC)
    rows = await _pending_rows(session, call_id, own=True, follow_ups=True)
    call = await session.scalar(
        select(models.Call).where(models.Call.id == call_id).with_for_update()
    )
    if call is None:
        raise not_found("call")
    previous_status = call.status
    plan = plan_cancel(call.status, sum(1 for r in rows if r.source_call_id == call.id))
    if isinstance(plan, Refusal):
        raise _conflict(plan)
    why = f"cancelled by an operator ({actor})" + (f": {request.reason}" if request.reason else "")
    cancelled = [scheduled_to_model(r) for r in rows]
    _drop(rows, why, now)
    if isinstance(plan, CancelCall):
        await end_unplaced(
            session,
            settings,
            call,
            status="canceled",
            outcome=None,
            reason=why,
            now=now,
            step_reason=CallStepReason.OPERATOR_CANCELED,
            source=SOURCE,
        )
    action_id = await record_action(
        session,
        actor=actor,
        action="call.cancel",
        target_kind="call",
        target_id=call.id,
        reason=request.reason,
        details={
            "previous_status": previous_status,
            "call_canceled": isinstance(plan, CancelCall),
            "cancelled_schedule_ids": [str(r.id) for r in rows],
        },
    )
    await session.commit()
    runtime.relay.wake()
    with structlog.contextvars.bound_contextvars(call_id=str(call.id)):
        log.info(
            "call_cancelled_by_operator",
            actor=actor,
            previous_status=previous_status,
            dropped=len(rows),
        )
    row = await load_call(session, call.id)
    assert row is not None
    return CallCancelResult(
        call=await call_to_model(row, blobs), cancelled=cancelled, action_id=action_id
    )


def action_to_model(row: OperatorActionRow) -> OperatorAction:
    return OperatorAction.model_validate(
        {
            "id": row.id,
            "actor": row.actor,
            "action": row.action,
            "target_kind": row.target_kind,
            "target_id": row.target_id,
            "reason": row.reason,
            "details": row.details,
            "created_at": row.created_at,
        }
    )


@router.get(
    "/v1/operator-actions",
    operation_id="listOperatorActions",
    response_model=OperatorActionPage,
    responses={**BAD_REQUEST, **UNPROCESSABLE},
)
async def list_operator_actions(
    session: SessionDep,
    target_kind: Annotated[
        OperatorActionTargetKind | None,
        Query(description="Only actions on this kind of target."),
    ] = None,
    target_id: Annotated[
        uuid.UUID | None, Query(description="Only actions on this call, hold or campaign.")
    ] = None,
    actor: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="Only actions by this API key label."),
    ] = None,
    action: Annotated[
        str | None,
        Query(
            min_length=1, max_length=64, description="Only actions of this kind, e.g. `call.retry`."
        ),
    ] = None,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> OperatorActionPage:
    errors: list[tuple[str, str]] = []
    for name, value in (("query.actor", actor), ("query.action", action)):
        if value is not None:
            errors += text_errors(value, name)
    if errors:
        raise validation_error(errors)
    A = OperatorActionRow
    rows, next_cursor = await page(
        session,
        select(A),
        newest_first(A),
        kind="operator-actions",
        filters={
            "target_kind": target_kind.value if target_kind else None,
            "target_id": target_id,
            "actor": actor,
            "action": action,
        },
        limit=limit,
        cursor=cursor,
        where=[
            A.target_kind == target_kind.value if target_kind is not None else None,
            A.target_id == target_id if target_id is not None else None,
            A.actor == actor if actor is not None else None,
            A.action == action if action is not None else None,
        ],
    )
    return OperatorActionPage(data=[action_to_model(r) for r in rows], next_cursor=next_cursor)
