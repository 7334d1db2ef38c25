"""Database rows → the generated contract models (calls: services.common.call_view)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
from services.common.verification_facts import account_last4

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


def facts_on_file(row: models.Debtor) -> list[str]:
    """The verification facts the agent can ask for, in its order of preference."""
    facts = []
    if row.date_of_birth is not None:
        facts.append("date_of_birth")
    if row.postal_code:
        facts.append("postal_code")
    if account_last4(row.account_reference):
        facts.append("account_last4")
    return facts


def debtor_to_model(row: models.Debtor, schedule: Mapping[str, Any]) -> Debtor:
    """`schedule`: the debtor's holds, next scheduled call and attempts
    (services.client_api.schedule_view.schedule_fields)."""
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
            # Write-only facts: which are on file, never the values.
            "verification_facts": facts_on_file(row),
            "metadata": row.metadata_ or {},
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            **schedule,
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
