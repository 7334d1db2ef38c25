"""The retry pump: publishes the next attempt of each pending delivery whose time has come.

Why a pump rather than nacking the Pub/Sub message and letting Pub/Sub redeliver it later:
Pub/Sub's retry backoff is capped at 600 s, is not honoured by the emulator, and a nacked
message counts towards the dead-letter limit; a webhook schedule over hours is our own policy.
So a failed attempt only records `next_attempt_at`, acknowledges its message, and this loop
(one per Client API process; rows claimed with `FOR UPDATE SKIP LOCKED`, so several processes
share the work) requests attempt n+1 through the outbox with a new `ce-id`. Claiming moves
`next_attempt_at` one lease ahead: if that request is lost, the pump asks again later, and the
worker's row guard makes any duplicate harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.client_api.webhooks.fanout import request_attempt
from services.client_api.webhooks.schedule import attempt_lease, pump_interval
from services.common.logging import get_logger
from services.common.models import WebhookDelivery
from services.common.settings import Settings

log = get_logger(__name__)


class RetryPump:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        wake_relay: Callable[[], None],
        batch_size: int = 100,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.wake_relay = wake_relay
        self.batch_size = batch_size

    async def pump_once(self) -> int:
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            due = (
                await session.scalars(
                    select(WebhookDelivery)
                    .where(
                        WebhookDelivery.status == "pending",
                        WebhookDelivery.next_attempt_at <= now,
                    )
                    .order_by(WebhookDelivery.next_attempt_at)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for delivery in due:
                attempt = delivery.attempt_count + 1
                if attempt > self.settings.webhook_max_attempts:
                    delivery.status = "failed"  # max lowered since: stop here
                    delivery.next_attempt_at = None
                else:
                    request_attempt(
                        session,
                        self.settings,
                        delivery.id,
                        delivery.endpoint_id,
                        delivery.event_id,
                        attempt,
                    )
                    delivery.next_attempt_at = now + attempt_lease(self.settings)
                delivery.updated_at = now
        if due:
            self.wake_relay()
            log.info("webhook_retries_requested", count=len(due))
        return len(due)

    async def run(self) -> None:
        interval = pump_interval(self.settings)
        while True:
            try:
                published = await self.pump_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep pumping after a transient DB error
                log.warning("webhook_retry_pump_error", error_type=type(exc).__name__)
                published = 0
            if published < self.batch_size:
                await asyncio.sleep(interval)
