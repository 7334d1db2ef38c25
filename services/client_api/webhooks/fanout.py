"""`call-events` consumer: one webhook delivery per subscribed endpoint for each event of the
registry (services/client_api/webhooks/events.py: `call.completed`, `promise.*`, `debtor.*`, ...).

Runs inside `IdempotentHandler` (one effect per `ce-id`); the unique `(endpoint_id, event_id)`
constraint makes a second delivery for the same event and endpoint impossible whatever happens.
Each new delivery's first attempt is requested on `webhook-deliveries` through the outbox, in
the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from generated.webhook_delivery_requested import WebhookDeliveryRequested
from services.client_api.webhooks.events import spec_of, webhook_event_types
from services.client_api.webhooks.schedule import attempt_lease
from services.common.bus import CloudEvent
from services.common.logging import bind_call_id, get_logger
from services.common.models import WebhookDelivery, WebhookEndpoint
from services.common.outbox import add_event
from services.common.settings import Settings

log = get_logger(__name__)

SOURCE = "/client-api"
CE_TYPE_DELIVERY_REQUESTED = "webhook.delivery_requested"


def request_attempt(
    session: AsyncSession,
    settings: Settings,
    delivery_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    event_id: str,
    attempt: int,
) -> None:
    add_event(
        session,
        settings.pubsub_topic_webhook_deliveries,
        CE_TYPE_DELIVERY_REQUESTED,
        SOURCE,
        WebhookDeliveryRequested(
            delivery_id=delivery_id,
            endpoint_id=endpoint_id,
            event_id=uuid.UUID(event_id),
            attempt=attempt,
        ),
    )


class CallEventHandler:
    ce_types = frozenset(webhook_event_types())  # the consumer drops any other type

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        spec = spec_of(event.type)
        if spec is None:
            log.info("call_event_ignored", ce_type=event.type, ce_id=event.id)
            return
        # An invalid body raises: the message is nacked and ends in the dead-letter topic
        # (specs/asyncapi/pubsub.yaml), never acknowledged silently.
        body = spec.body(event.id, event.time, event.data)
        call_id, debtor_id = spec.call_id(body), spec.debtor_id(body)
        if call_id is not None:
            bind_call_id(str(call_id))
        payload = body.model_dump(mode="json")
        endpoints = (
            await session.scalars(
                select(WebhookEndpoint).where(
                    WebhookEndpoint.active.is_(True),
                    WebhookEndpoint.events.contains([event.type]),
                )
            )
        ).all()
        now = datetime.now(UTC)
        created = 0
        for endpoint in endpoints:
            delivery_id = await session.scalar(
                insert(WebhookDelivery)
                .values(
                    id=uuid.uuid4(),
                    endpoint_id=endpoint.id,
                    event_id=event.id,
                    event_type=event.type,
                    payload=payload,
                    status="pending",
                    attempt_count=0,
                    # If the attempt-1 message were lost, the retry pump asks again after this.
                    next_attempt_at=now + attempt_lease(self.settings),
                )
                .on_conflict_do_nothing(constraint="uq_webhook_deliveries_endpoint_event")
                .returning(WebhookDelivery.id)
            )
            if delivery_id is None:
                continue  # this event already has its delivery to this endpoint
            request_attempt(session, self.settings, delivery_id, endpoint.id, event.id, 1)
            created += 1
        # e.g. `call_completed_fanned_out`, `debtor_opted_out_fanned_out`
        log.info(
            f"{event.type.replace('.', '_')}_fanned_out",
            ce_type=event.type,
            ce_id=event.id,
            debtor_id=str(debtor_id) if debtor_id is not None else None,
            deliveries=created,
        )
