"""The webhook events: one entry per ce-type on `call-events` that becomes a webhook.

Each entry names the generated envelope model of the webhook body (the CloudEvent in structured
form: `id` = ce-id, `type` = ce-type, `occurred_at` = ce-time, `data` = the message body) and how
to find the call and the debtor an event is about (for logs, and for the per-debtor order of
docs/webhooks.md). The fan-out (fanout.py) and the delivery worker (delivery.py) are generic over
this registry: a new event is one `register(...)` entry here plus its schema in specs/ (the
OpenAPI `webhooks:` entry and the `WebhookEventType` enum), nothing else.

Adding an event (helpers A and B: `campaign.completed`, `import.completed`):

    register(WebhookEventSpec("campaign.completed", CampaignCompletedEvent))

with `call_id`/`debtor_id` left at their default (None) when the event is about neither.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from generated.call_completed_event import CallCompletedEvent
from generated.campaign_completed_event import CampaignCompletedEvent
from generated.debtor_event import DebtorEvent
from generated.import_completed_event import ImportCompletedEvent
from generated.promise_event import PromiseEvent


def _none(_event: Any) -> uuid.UUID | None:
    return None


@dataclass(frozen=True)
class WebhookEventSpec:
    ce_type: str
    # The generated model of the webhook body: fields id, type, occurred_at, data.
    envelope: type[BaseModel]
    # From a validated envelope: the call and the debtor it is about (None if neither).
    call_id: Callable[[Any], uuid.UUID | None] = _none
    debtor_id: Callable[[Any], uuid.UUID | None] = _none

    def body(self, ce_id: str, occurred_at: datetime, data: object) -> BaseModel:
        """The documented webhook body; raises (pydantic ValidationError) on an invalid one."""
        return self.envelope.model_validate(
            {"id": ce_id, "type": self.ce_type, "occurred_at": occurred_at, "data": data}
        )


REGISTRY: dict[str, WebhookEventSpec] = {}


def register(spec: WebhookEventSpec) -> WebhookEventSpec:
    if spec.ce_type in REGISTRY:
        raise ValueError(f"webhook event {spec.ce_type!r} registered twice")
    REGISTRY[spec.ce_type] = spec
    return spec


def spec_of(ce_type: str) -> WebhookEventSpec | None:
    return REGISTRY.get(ce_type)


def webhook_event_types() -> tuple[str, ...]:
    """Every ce-type that becomes a webhook (the `WebhookEventType` enum of the spec)."""
    return tuple(REGISTRY)


register(
    WebhookEventSpec(
        "call.completed",
        CallCompletedEvent,
        call_id=lambda e: e.data.call.id,
        debtor_id=lambda e: e.data.call.debtor_id,
    )
)
for _promise_type in ("promise.created", "promise.kept", "promise.broken"):
    register(
        WebhookEventSpec(
            _promise_type,
            PromiseEvent,
            call_id=lambda e: e.data.promise.call_id,
            debtor_id=lambda e: e.data.promise.debtor_id,
        )
    )
for _debtor_type in (
    "debtor.opted_out",
    "debtor.disputed",
    "debtor.validation_notice_requested",
):
    register(
        WebhookEventSpec(
            _debtor_type,
            DebtorEvent,
            call_id=lambda e: e.data.hold.call_id,
            debtor_id=lambda e: e.data.debtor_id,
        )
    )
# A debtor import finished (services/client_api/imports_worker.py): about no call or debtor.
register(WebhookEventSpec("import.completed", ImportCompletedEvent))
# About a campaign, neither one call nor one debtor.
register(WebhookEventSpec("campaign.completed", CampaignCompletedEvent))
