"""`/v1/webhook-endpoints` (register, list, change the subscribed event types) and
`/v1/webhook-deliveries` (the delivery log).

An endpoint subscribes to event types of the registry (services/client_api/webhooks/events.py):
a type the spec's enum knows but no producer sends yet is refused, not stored silently.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from generated.client_api import (
    WebhookDeliveryPage,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointPage,
    WebhookEndpointUpdate,
    WebhookEventType,
)
from services.client_api.deps import SessionDep, SettingsDep
from services.client_api.mapping import delivery_to_model, endpoint_to_model
from services.client_api.pagination import newest_first, page
from services.client_api.problems import not_found, validation_error
from services.client_api.responses import (
    BAD_REQUEST,
    NOT_FOUND,
    TOO_LARGE,
    UNPROCESSABLE,
    CursorQuery,
    LimitQuery,
)
from services.client_api.strict import strictly
from services.client_api.validation import storable_text_errors, webhook_endpoint_errors
from services.client_api.webhooks.events import webhook_event_types
from services.client_api.webhooks.secrets import encrypt_secret, new_secret
from services.common import models
from services.common.logging import get_logger

log = get_logger(__name__)

router = APIRouter(tags=["Webhooks"])


def subscription_errors(events: list[WebhookEventType]) -> list[tuple[str, str]]:
    """Each type once, and each one the registry delivers."""
    if len(set(events)) != len(events):
        return [("body.events", "must not list an event type twice")]
    known = set(webhook_event_types())
    return [
        (f"body.events.{i}", f"{e.value!r} is not delivered by this deployment")
        for i, e in enumerate(events)
        if e.value not in known
    ]


@router.post(
    "/v1/webhook-endpoints",
    operation_id="createWebhookEndpoint",
    status_code=201,
    response_model=WebhookEndpointCreated,
    responses={**BAD_REQUEST, **TOO_LARGE, **UNPROCESSABLE},
)
async def create_webhook_endpoint(
    body: WebhookEndpointCreate, session: SessionDep, settings: SettingsDep, request: Request
) -> WebhookEndpointCreated:
    body = await strictly(request, WebhookEndpointCreate) or body
    errors = webhook_endpoint_errors(body, settings) or subscription_errors(body.events)
    if errors:
        raise validation_error(errors)
    secret = new_secret()
    events = [e.value for e in body.events]
    row = models.WebhookEndpoint(
        id=uuid.uuid4(),
        url=body.url,
        description=body.description,
        events=events,
        secret_ciphertext=encrypt_secret(secret, settings),
        active=True,
    )
    session.add(row)
    await session.commit()
    await session.refresh(row)
    log.info("webhook_endpoint_created", endpoint_id=str(row.id), events=events)
    # The only response that ever carries the secret.
    return WebhookEndpointCreated(**endpoint_to_model(row).model_dump(), secret=secret)


@router.get(
    "/v1/webhook-endpoints",
    operation_id="listWebhookEndpoints",
    response_model=WebhookEndpointPage,
    responses={**BAD_REQUEST, **UNPROCESSABLE},
)
async def list_webhook_endpoints(
    session: SessionDep, limit: LimitQuery = 20, cursor: CursorQuery = None
) -> WebhookEndpointPage:
    rows, next_cursor = await page(
        session,
        select(models.WebhookEndpoint),
        newest_first(models.WebhookEndpoint),
        kind="webhook-endpoints",
        filters={},
        limit=limit,
        cursor=cursor,
    )
    return WebhookEndpointPage(data=[endpoint_to_model(r) for r in rows], next_cursor=next_cursor)


@router.patch(
    "/v1/webhook-endpoints/{endpoint_id}",
    operation_id="updateWebhookEndpoint",
    response_model=WebhookEndpoint,
    responses={**BAD_REQUEST, **NOT_FOUND, **TOO_LARGE, **UNPROCESSABLE},
)
async def update_webhook_endpoint(
    endpoint_id: Annotated[uuid.UUID, Path(description="The webhook endpoint's id.")],
    body: WebhookEndpointUpdate,
    session: SessionDep,
    request: Request,
) -> WebhookEndpoint:
    body = await strictly(request, WebhookEndpointUpdate) or body
    errors = storable_text_errors(body)
    if body.events is not None:
        errors += subscription_errors(body.events)
    elif "events" in body.model_fields_set:
        errors.append(("body.events", "must be a list of event types, not null"))
    if errors:
        raise validation_error(errors)
    row = await session.scalar(
        select(models.WebhookEndpoint)
        .where(models.WebhookEndpoint.id == endpoint_id)
        .with_for_update()
    )
    if row is None:
        raise not_found("webhook endpoint")
    if body.events is not None:
        row.events = [e.value for e in body.events]
    if "description" in body.model_fields_set:
        row.description = body.description
    await session.commit()
    await session.refresh(row)
    log.info("webhook_endpoint_updated", endpoint_id=str(row.id), events=row.events)
    return endpoint_to_model(row)


@router.get(
    "/v1/webhook-deliveries",
    operation_id="listWebhookDeliveries",
    response_model=WebhookDeliveryPage,
    responses={**BAD_REQUEST, **UNPROCESSABLE},
)
async def list_webhook_deliveries(
    session: SessionDep,
    event: Annotated[
        WebhookEventType | None, Query(description="Only deliveries of this event type.")
    ] = None,
    status: Annotated[
        WebhookDeliveryStatus | None, Query(description="Only deliveries in this status.")
    ] = None,
    endpoint_id: Annotated[
        uuid.UUID | None, Query(description="Only deliveries to this endpoint.")
    ] = None,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> WebhookDeliveryPage:
    D = models.WebhookDelivery
    rows, next_cursor = await page(
        session,
        select(D).options(selectinload(D.attempts)),
        newest_first(D),
        kind="webhook-deliveries",
        filters={
            "event": event.value if event else None,
            "status": status.value if status else None,
            "endpoint_id": endpoint_id,
        },
        limit=limit,
        cursor=cursor,
        where=[
            D.event_type == event.value if event is not None else None,
            D.status == status.value if status is not None else None,
            D.endpoint_id == endpoint_id if endpoint_id is not None else None,
        ],
    )
    return WebhookDeliveryPage(data=[delivery_to_model(r) for r in rows], next_cursor=next_cursor)
