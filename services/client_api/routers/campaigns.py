"""Campaigns: `/v1/campaigns` (create, list, get, change), their debtors and items, and the
lifecycle actions start / pause / resume / cancel (each audited with the caller's key label).

The lifecycle is the pure services/common/campaign_lifecycle.py; every change locks the campaign
row, so it serializes with the Call Scheduler's campaign pass (which releases items and
completes campaigns under the same lock).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from generated.call_outcome import CallOutcome
from generated.call_status import CallStatus
from generated.campaign import Campaign
from generated.campaign_item_status import CampaignItemStatus
from generated.campaign_status import CampaignStatus
from generated.client_api import (
    CampaignCreate,
    CampaignDebtorsAdd,
    CampaignDebtorsAdded,
    CampaignItem,
    CampaignItemPage,
    CampaignPage,
    CampaignTransitionRequest,
    CampaignUpdate,
)
from generated.negotiation_rules import NegotiationRules
from services.client_api.deps import ActorDep, SessionDep
from services.client_api.errors import constraint_name
from services.client_api.idempotency import (
    IdempotencyKey,
    key_errors,
    mark_replayed,
    request_fingerprint,
    same_request,
)
from services.client_api.pagination import newest_first, page
from services.client_api.problems import (
    CAMPAIGN_STATUS_CONFLICT,
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
from services.common import campaign_lifecycle as lifecycle
from services.common import models
from services.common.audit import record_action
from services.common.campaign_store import (
    add_debtors,
    campaign_model,
    cancel_undialed,
    item_counts,
    load_campaign_model,
)
from services.common.logging import get_logger
from services.common.models.campaigns import Campaign as CampaignRow
from services.common.models.campaigns import CampaignItem as ItemRow
from services.common.negotiation import inconsistencies
from services.common.prompt_variants import check_weights

log = get_logger(__name__)

router = APIRouter(tags=["Campaigns"])

CampaignId = Annotated[uuid.UUID, Path(description="The campaign's id.")]
WRITE_ERRORS = {**BAD_REQUEST, **NOT_FOUND, **CONFLICT, **TOO_LARGE, **UNPROCESSABLE}


def _status_conflict(detail: str) -> ProblemError:
    return ProblemError(409, CAMPAIGN_STATUS_CONFLICT, detail)


def _weights_errors(stage: str, weights: dict[str, int], field: str) -> list[tuple[str, str]]:
    try:
        check_weights(stage, weights)
    except ValueError as exc:
        return [(field, str(exc))]
    return []


def _terms_errors(rules: NegotiationRules | None, field: str) -> list[tuple[str, str]]:
    if rules is None:
        return []
    return [(f"{field}.{name}", message) for name, message in inconsistencies(rules)]


async def _locked(session: SessionDep, campaign_id: uuid.UUID) -> CampaignRow:
    row = await session.scalar(
        select(CampaignRow)
        .where(CampaignRow.id == campaign_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise not_found("campaign")
    return row


async def _replay(session: SessionDep, key: str, fp: str, response: Response) -> Campaign | None:
    previous = await session.scalar(select(CampaignRow).where(CampaignRow.idempotency_key == key))
    if previous is None:
        return None
    same_request(previous.request_fingerprint, fp)
    mark_replayed(response, location=f"/v1/campaigns/{previous.id}", status=200)
    return await load_campaign_model(session, previous)


@router.post(
    "/v1/campaigns",
    operation_id="createCampaign",
    status_code=201,
    response_model=Campaign,
    responses={
        200: {"model": Campaign, "description": "A replay: the campaign created with this key."},
        **BAD_REQUEST,
        **CONFLICT,
        **TOO_LARGE,
        **UNPROCESSABLE,
    },
)
async def create_campaign(
    body: CampaignCreate,
    session: SessionDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Campaign:
    body = await strictly(request, CampaignCreate) or body
    errors = storable_text_errors(body) + key_errors(idempotency_key)
    errors += _weights_errors(body.stage.value, dict(body.prompt_variants), "body.prompt_variants")
    errors += _terms_errors(body.negotiation_rules, "body.negotiation_rules")
    if errors:
        raise validation_error(errors)
    fp = request_fingerprint(body.model_dump(mode="json"))
    if idempotency_key is not None:
        replayed = await _replay(session, idempotency_key, fp, response)
        if replayed is not None:
            return replayed
    now = datetime.now(UTC)
    row = CampaignRow(
        id=uuid.uuid4(),
        name=body.name,
        status="draft",
        stage=body.stage.value,
        prompt_variants=dict(body.prompt_variants),
        max_concurrent_calls=body.pacing.max_concurrent_calls,
        calls_per_minute=body.pacing.calls_per_minute,
        follow_up_broken_promises=body.follow_up_broken_promises,
        negotiation_rules=body.negotiation_rules.model_dump(mode="json")
        if body.negotiation_rules is not None
        else None,
        metadata_=dict(body.metadata),
        idempotency_key=idempotency_key,
        request_fingerprint=fp if idempotency_key is not None else None,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        if constraint_name(exc) == "uq_campaigns_idempotency_key" and idempotency_key:
            replayed = await _replay(session, idempotency_key, fp, response)
            if replayed is not None:
                return replayed
        raise
    log.info("campaign_created", campaign_id=str(row.id))
    response.headers["Location"] = f"/v1/campaigns/{row.id}"
    return campaign_model(row, dict.fromkeys(models.campaigns.CAMPAIGN_ITEM_STATUSES, 0))


@router.get(
    "/v1/campaigns",
    operation_id="listCampaigns",
    response_model=CampaignPage,
    responses={**BAD_REQUEST, **UNPROCESSABLE},
)
async def list_campaigns(
    session: SessionDep,
    status: Annotated[
        CampaignStatus | None, Query(description="Only campaigns currently in this status.")
    ] = None,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> CampaignPage:
    rows, next_cursor = await page(
        session,
        select(CampaignRow),
        newest_first(CampaignRow),
        kind="campaigns",
        filters={"status": status.value if status else None},
        limit=limit,
        cursor=cursor,
        where=[CampaignRow.status == status.value if status is not None else None],
    )
    counts: dict[uuid.UUID, dict[str, int]] = {
        r.id: dict.fromkeys(models.campaigns.CAMPAIGN_ITEM_STATUSES, 0) for r in rows
    }
    if rows:
        grouped = await session.execute(
            select(ItemRow.campaign_id, ItemRow.status, func.count())
            .where(ItemRow.campaign_id.in_(list(counts)))
            .group_by(ItemRow.campaign_id, ItemRow.status)
        )
        for campaign_id, item_status, n in grouped.all():
            counts[campaign_id][item_status] = int(n)
    return CampaignPage(
        data=[campaign_model(r, counts[r.id]) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/v1/campaigns/{campaign_id}",
    operation_id="getCampaign",
    response_model=Campaign,
    responses={**NOT_FOUND, **UNPROCESSABLE},
)
async def get_campaign(campaign_id: CampaignId, session: SessionDep) -> Campaign:
    row = await session.get(CampaignRow, campaign_id)
    if row is None:
        raise not_found("campaign")
    return campaign_model(row, await item_counts(session, row.id))


@router.patch(
    "/v1/campaigns/{campaign_id}",
    operation_id="updateCampaign",
    response_model=Campaign,
    responses=WRITE_ERRORS,
)
async def update_campaign(
    campaign_id: CampaignId, body: CampaignUpdate, session: SessionDep, request: Request
) -> Campaign:
    body = await strictly(request, CampaignUpdate) or body
    errors = storable_text_errors(body)
    errors += [
        (f"body.{name}", "must not be null")
        for name in sorted(body.model_fields_set)
        if getattr(body, name) is None
    ]
    if errors:
        raise validation_error(errors)
    row = await _locked(session, campaign_id)
    if not lifecycle.editable(row.status):
        raise _status_conflict(
            f"The campaign is {row.status}; only a draft or paused campaign can be changed "
            "(pause it first)."
        )
    stage = body.stage.value if body.stage is not None else row.stage
    weights = dict(body.prompt_variants) if body.prompt_variants is not None else None
    if weights is not None or body.stage is not None:
        field = "body.prompt_variants" if weights is not None else "body.stage"
        errs = _weights_errors(
            stage, weights if weights is not None else row.prompt_variants, field
        )
        if errs:
            raise validation_error(errs)
    if body.name is not None:
        row.name = body.name
    row.stage = stage
    if weights is not None:
        row.prompt_variants = weights
    if body.pacing is not None:
        row.max_concurrent_calls = body.pacing.max_concurrent_calls
        row.calls_per_minute = body.pacing.calls_per_minute
    if body.follow_up_broken_promises is not None:
        row.follow_up_broken_promises = body.follow_up_broken_promises
    if body.metadata is not None:
        row.metadata_ = dict(body.metadata)
    row.updated_at = datetime.now(UTC)
    view = await load_campaign_model(session, row)
    await session.commit()
    log.info("campaign_updated", campaign_id=str(campaign_id), fields=sorted(body.model_fields_set))
    return view


@router.post(
    "/v1/campaigns/{campaign_id}/debtors",
    operation_id="addCampaignDebtors",
    response_model=CampaignDebtorsAdded,
    responses=WRITE_ERRORS,
)
async def add_campaign_debtors(
    campaign_id: CampaignId,
    body: CampaignDebtorsAdd,
    session: SessionDep,
    request: Request,
) -> CampaignDebtorsAdded:
    body = await strictly(request, CampaignDebtorsAdd) or body
    row = await _locked(session, campaign_id)
    if not lifecycle.accepts_debtors(row.status):
        raise _status_conflict(f"The campaign is {row.status}; it takes no more debtors.")
    wanted = list(dict.fromkeys(body.debtor_ids))
    known = set(
        (await session.scalars(select(models.Debtor.id).where(models.Debtor.id.in_(wanted)))).all()
    )
    missing = [
        (f"body.debtor_ids.{i}", "no such debtor")
        for i, debtor_id in enumerate(body.debtor_ids)
        if debtor_id not in known
    ]
    if missing:
        raise validation_error(missing)
    try:
        added = await add_debtors(session, campaign_id, wanted)
    except IntegrityError as exc:  # a debtor deleted meanwhile
        await session.rollback()
        raise validation_error([("body.debtor_ids", "a debtor no longer exists")]) from exc
    if added:
        row.updated_at = datetime.now(UTC)
    total = await session.scalar(
        select(func.count()).select_from(ItemRow).where(ItemRow.campaign_id == campaign_id)
    )
    await session.commit()
    log.info("campaign_debtors_added", campaign_id=str(campaign_id), added=added)
    return CampaignDebtorsAdded(added=added, total=int(total or 0))


@router.get(
    "/v1/campaigns/{campaign_id}/items",
    operation_id="listCampaignItems",
    response_model=CampaignItemPage,
    responses={**BAD_REQUEST, **NOT_FOUND, **UNPROCESSABLE},
)
async def list_campaign_items(
    campaign_id: CampaignId,
    session: SessionDep,
    status: Annotated[
        CampaignItemStatus | None, Query(description="Only items currently in this status.")
    ] = None,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> CampaignItemPage:
    if await session.get(CampaignRow, campaign_id) is None:
        raise not_found("campaign")
    rows, next_cursor = await page(
        session,
        select(ItemRow),
        newest_first(ItemRow),
        kind="campaign_items",
        filters={"campaign_id": campaign_id, "status": status.value if status else None},
        limit=limit,
        cursor=cursor,
        where=[
            ItemRow.campaign_id == campaign_id,
            ItemRow.status == status.value if status is not None else None,
        ],
    )
    return CampaignItemPage(data=[_item_model(r) for r in rows], next_cursor=next_cursor)


def _item_model(row: ItemRow) -> CampaignItem:
    def utc(at: datetime | None) -> datetime | None:
        return at.astimezone(UTC) if at is not None else None

    return CampaignItem(
        id=row.id,
        campaign_id=row.campaign_id,
        debtor_id=row.debtor_id,
        status=CampaignItemStatus(row.status),
        call_id=row.call_id,
        call_status=CallStatus(row.call_status) if row.call_status else None,
        outcome=CallOutcome(row.outcome) if row.outcome else None,
        detail=row.detail,
        created_at=row.created_at.astimezone(UTC),
        updated_at=row.updated_at.astimezone(UTC),
        released_at=utc(row.released_at),
        finished_at=utc(row.finished_at),
    )


async def _transition(
    action: lifecycle.Action,
    campaign_id: uuid.UUID,
    session: SessionDep,
    request: Request,
    actor: str,
) -> Campaign:
    body = await strictly(request, CampaignTransitionRequest) or CampaignTransitionRequest()
    errors = storable_text_errors(body)
    if errors:
        raise validation_error(errors)
    row = await _locked(session, campaign_id)
    try:
        target = lifecycle.next_status(row.status, action)
    except lifecycle.IllegalTransition as exc:
        raise _status_conflict(f"The campaign is {row.status}: {exc}.") from exc
    now = datetime.now(UTC)
    details: dict[str, object] = {"from": row.status, "to": target}
    if action == "start":
        total = await session.scalar(
            select(func.count()).select_from(ItemRow).where(ItemRow.campaign_id == campaign_id)
        )
        if not total:
            raise _status_conflict(
                "The campaign has no debtors; assign some with "
                "POST /v1/campaigns/{campaign_id}/debtors before starting it."
            )
        row.started_at = row.started_at or now
    if action == "cancel":
        details["cancelled_items"] = await cancel_undialed(session, campaign_id, now)
        row.ended_at = now
    row.status = target
    row.updated_at = now
    await record_action(
        session,
        actor=actor,
        action=f"campaign.{action}",
        target_kind="campaign",
        target_id=campaign_id,
        reason=body.reason,
        details=details,
    )
    view = await load_campaign_model(session, row)
    await session.commit()
    log.info("campaign_transition", campaign_id=str(campaign_id), action=action, status=target)
    return view


def _transition_route(action: lifecycle.Action, operation_id: str) -> None:
    async def endpoint(
        campaign_id: CampaignId,
        session: SessionDep,
        request: Request,
        actor: ActorDep,
        body: CampaignTransitionRequest | None = None,
    ) -> Campaign:
        return await _transition(action, campaign_id, session, request, actor)

    endpoint.__name__ = f"{action}_campaign"
    router.add_api_route(
        f"/v1/campaigns/{{campaign_id}}/{action}",
        endpoint,
        methods=["POST"],
        operation_id=operation_id,
        response_model=Campaign,
        responses=WRITE_ERRORS,
    )


for _action, _operation_id in (
    ("start", "startCampaign"),
    ("pause", "pauseCampaign"),
    ("resume", "resumeCampaign"),
    ("cancel", "cancelCampaign"),
):
    _transition_route(_action, _operation_id)  # type: ignore[arg-type]
