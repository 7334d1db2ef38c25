"""`webhook-deliveries` consumer: one signed POST per requested attempt, every attempt logged.

The delivery row is locked (`FOR UPDATE`) for the whole attempt, POST included, and the attempt
runs only if the row is still `pending` and this attempt number was not made yet. A duplicate
message for the same attempt therefore waits for the first one to commit and then finds the
attempt made: one POST per attempt, however often the message arrives. A crash mid-POST rolls
the transaction back, the message is redelivered and the attempt is made again (at least once;
receivers de-duplicate on `webhook-id`).

Headers follow Standard Webhooks: `webhook-id` is the event id (the body's `id`, the same on
every retry and for every endpoint, as the spec says), `webhook-timestamp` the signing time and
`webhook-signature` `v1,<base64 HMAC-SHA256>` signed with the `standardwebhooks` package.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from cryptography.fernet import InvalidToken
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from generated.call_step_reason import CallStepReason as R
from generated.webhook_delivery_requested import WebhookDeliveryRequested
from services.client_api.call_events import record_webhook_attempt
from services.client_api.webhooks.events import spec_of
from services.client_api.webhooks.fanout import CE_TYPE_DELIVERY_REQUESTED
from services.client_api.webhooks.schedule import retry_delay
from services.client_api.webhooks.secrets import decrypt_secret
from services.common import failpoints
from services.common.bus import CloudEvent, EventHandler
from services.common.logging import get_logger
from services.common.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from services.common.settings import Settings

log = get_logger(__name__)

USER_AGENT = "collections-voice-agent-webhooks/1"
MAX_ERROR_CHARS = 1000


def signed_request(
    secret: str, event_id: str, body: str, now: datetime
) -> tuple[dict[str, str], bytes]:
    """Standard Webhooks headers and the exact bytes that were signed."""
    signature = Webhook(secret).sign(msg_id=event_id, timestamp=now, data=body)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    return headers, body.encode()


def body_of(payload: dict[str, Any], event_type: str) -> str:
    """The exact bytes to sign: the stored body through its generated model (the documented
    shape); a type no longer registered is sent as stored."""
    spec = spec_of(event_type)
    if spec is None:
        return json.dumps(payload, separators=(",", ":"))
    return spec.envelope.model_validate(payload).model_dump_json()


def call_id_of(payload: dict[str, Any], event_type: str) -> uuid.UUID | None:
    spec = spec_of(event_type)
    if spec is None:
        return None
    try:
        return spec.call_id(spec.envelope.model_validate(payload))
    except ValueError:
        return None


class DeliveryWorker:
    ce_types = frozenset({CE_TYPE_DELIVERY_REQUESTED})  # the consumer drops any other type

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        # Each attempt holds a DB connection during its POST: bound them below the pool size.
        self._slots = asyncio.Semaphore(max(1, settings.database_pool_size // 2))

    def bounded(self, handler: Callable[[CloudEvent], Awaitable[None]]) -> EventHandler:
        @functools.wraps(handler)  # keeps the handler's declared ce_types visible
        async def run(event: CloudEvent) -> None:
            async with self._slots:
                await handler(event)

        return run

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        request = WebhookDeliveryRequested.model_validate(event.data)
        delivery = await session.scalar(
            select(WebhookDelivery)
            .where(WebhookDelivery.id == request.delivery_id)
            .with_for_update()
        )
        if delivery is None:
            log.warning("webhook_delivery_unknown", delivery_id=str(request.delivery_id))
            return
        with structlog.contextvars.bound_contextvars(
            delivery_id=str(delivery.id), endpoint_id=str(delivery.endpoint_id)
        ):
            await self._attempt(session, delivery, request.attempt)

    async def _attempt(
        self, session: AsyncSession, delivery: WebhookDelivery, attempt: int
    ) -> None:
        if delivery.status != "pending" or delivery.attempt_count >= attempt:
            log.info(
                "webhook_attempt_skipped", attempt=attempt, status=delivery.status, reason="made"
            )
            return
        if attempt != delivery.attempt_count + 1:
            log.warning("webhook_attempt_out_of_order", attempt=attempt)
            return
        now = datetime.now(UTC)
        call_id = call_id_of(delivery.payload, delivery.event_type)
        if call_id is not None:
            structlog.contextvars.bind_contextvars(call_id=str(call_id))
        endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is None or not endpoint.active:
            delivery.status = "failed"
            delivery.next_attempt_at = None
            delivery.updated_at = now
            log.info("webhook_delivery_abandoned", reason="endpoint inactive")
            await record_webhook_attempt(
                session, call_id, delivery, attempt, at=now, reason=R.ENDPOINT_INACTIVE
            )
            return

        try:
            secret = decrypt_secret(endpoint.secret_ciphertext, self.settings)
        except InvalidToken:
            # Encrypted under another key (a key rotation gone wrong): no attempt can succeed.
            delivery.status = "failed"
            delivery.next_attempt_at = None
            delivery.updated_at = now
            log.error("webhook_secret_unreadable")
            await record_webhook_attempt(
                session, call_id, delivery, attempt, at=now, reason=R.SECRET_UNREADABLE
            )
            return
        headers, content = signed_request(
            secret, delivery.event_id, body_of(delivery.payload, delivery.event_type), now
        )
        status_code: int | None = None
        error: str | None = None
        error_kind: str | None = None  # for logs: never the message, which may quote the URL
        started = time.perf_counter()
        try:
            resp = await self.http.post(
                endpoint.url,
                content=content,
                headers=headers,
                timeout=self.settings.webhook_timeout_seconds,
            )
            failpoints.hit("webhook.during_post")
            status_code = resp.status_code
            if not 200 <= status_code < 300:
                error = error_kind = f"HTTP {status_code}"
        except httpx.TimeoutException:
            error = f"timeout after {self.settings.webhook_timeout_seconds:g} s"
            error_kind = "timeout"
        except Exception as exc:  # any failure to POST is a failed attempt
            # (httpx errors, and e.g. InvalidURL, which is not one): recorded and retried like
            # the others, never a message that fails forever.
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
            error_kind = type(exc).__name__
        latency_ms = max(0, round((time.perf_counter() - started) * 1000))

        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                attempt=attempt,
                attempted_at=now,
                status_code=status_code,
                latency_ms=latency_ms,
                error=error,
            )
        )
        delivery.attempt_count = attempt
        delivery.updated_at = datetime.now(UTC)
        if error is None:
            delivery.status = "succeeded"
            delivery.next_attempt_at = None
        elif attempt >= self.settings.webhook_max_attempts:
            delivery.status = "failed"
            delivery.next_attempt_at = None
        else:
            # The retry pump publishes attempt + 1 once this time has come.
            delivery.next_attempt_at = now + retry_delay(attempt, self.settings)
        log.info(
            "webhook_attempt",
            attempt=attempt,
            status_code=status_code,
            latency_ms=latency_ms,
            error=error_kind,
            delivery_status=delivery.status,
        )
        await record_webhook_attempt(
            session,
            call_id,
            delivery,
            attempt,
            at=now,
            status_code=status_code,
            error_kind=error_kind,
        )
