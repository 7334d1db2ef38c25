"""Database rows → the generated contract models (calls: services.common.call_view)."""

from __future__ import annotations

from generated.client_api import (
    Debtor,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)
from services.common import models
from services.common.call_view import (  # re-exported for the routers
    blob_link,
    build_call,
    call_load_options,
    call_to_model,
    load_call,
)

__all__ = [
    "blob_link",
    "build_call",
    "call_load_options",
    "call_to_model",
    "debtor_to_model",
    "delivery_to_model",
    "endpoint_to_model",
    "load_call",
]


def debtor_to_model(row: models.Debtor) -> Debtor:
    return Debtor.model_validate(
        {
            "id": row.id,
            "external_id": row.external_id,
            "name": row.name,
            "phone": row.phone,
            "timezone": row.timezone,
            "stage": row.stage,
            "amount_owed": {"amount_minor": row.amount_owed_minor, "currency": row.currency},
            "due_date": row.due_date,
            "account_reference": row.account_reference,
            "metadata": row.metadata_ or {},
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
    )


def endpoint_to_model(row: models.WebhookEndpoint) -> WebhookEndpoint:
    return WebhookEndpoint.model_validate(
        {
            "id": row.id,
            "url": row.url,
            "description": row.description,
            "events": row.events,
            "created_at": row.created_at,
        }
    )


def delivery_to_model(row: models.WebhookDelivery) -> WebhookDelivery:
    """`row` must be loaded with `selectinload(WebhookDelivery.attempts)`."""
    return WebhookDelivery.model_validate(
        {
            "id": row.id,
            "endpoint_id": row.endpoint_id,
            "event_id": row.event_id,
            "event_type": row.event_type,
            "status": row.status,
            "attempts": [
                WebhookDeliveryAttempt(
                    attempt=a.attempt,
                    attempted_at=a.attempted_at,
                    status_code=a.status_code,
                    latency_ms=a.latency_ms,
                    error=a.error,
                )
                for a in row.attempts
            ],
            "next_attempt_at": row.next_attempt_at if row.status == "pending" else None,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
    )
