"""`call-events` consumer: one webhook delivery per subscribed endpoint for each `call.completed`,
`promise.created`, `promise.kept` and `promise.broken`.

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

from generated.call_completed_data import CallCompletedData
from generated.call_completed_event import CallCompletedEvent
from generated.promise_event import PromiseEvent
from generated.promise_event import Type as PromiseEventType
from generated.promise_event_data import PromiseEventData
from generated.webhook_delivery_requested import WebhookDeliveryRequested
from services.client_api.webhooks.schedule import attempt_lease
from services.common.bus import CloudEvent
from services.common.logging import bind_call_id, get_logger
from services.common.models import WebhookDelivery, WebhookEndpoint
from services.common.outbox import add_event
from services.common.promise_events import PROMISE_EVENT_TYPES
from services.common.settings import Settings

log = get_logger(__name__)

SOURCE = "/client-api"
CE_TYPE_CALL_COMPLETED = "call.completed"
CE_TYPE_DELIVERY_REQUESTED = "webhook.delivery_requested"
# The ce-types this consumer turns into webhooks; any other type on the topic is not for it.
WEBHOOK_CE_TYPES = (CE_TYPE_CALL_COMPLETED, *PROMISE_EVENT_TYPES)


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
    ce_types = frozenset(WEBHOOK_CE_TYPES)  # the consumer drops any other type

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        if event.type not in WEBHOOK_CE_TYPES:
            log.info("call_event_ignored", ce_type=event.type, ce_id=event.id)
            return
        # An invalid body raises: the message is nacked and ends in the dead-letter topic
        # (specs/asyncapi/pubsub.yaml), never acknowledged silently.
        payload = self._webhook_body(event)
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
        name = (
            "call_completed_fanned_out"
            if event.type == CE_TYPE_CALL_COMPLETED
            else "promise_event_fanned_out"
        )
        log.info(name, ce_type=event.type, ce_id=event.id, deliveries=created)

    def _webhook_body(self, event: CloudEvent) -> dict[str, object]:
        """The documented webhook body (through the generated models) for this event."""
        if event.type == CE_TYPE_CALL_COMPLETED:
            data = CallCompletedData.model_validate(event.data)
            bind_call_id(str(data.call.id))
            return CallCompletedEvent(
                id=uuid.UUID(event.id), type="call.completed", occurred_at=event.time, data=data
            ).model_dump(mode="json")
        promise = PromiseEventData.model_validate(event.data)
        bind_call_id(str(promise.promise.call_id))
        return PromiseEvent(
            id=uuid.UUID(event.id),
            type=PromiseEventType(event.type),
            occurred_at=event.time,
            data=promise,
        ).model_dump(mode="json")
