"""Pub/Sub push endpoint: the production delivery mode on Cloud Run.

Pub/Sub POSTs `{"message": {"attributes", "data" (base64), "messageId"}, "subscription"}` to
`/pubsub/push/<subscription>?token=<secret>`. The same handler as the pull consumer runs; a 2xx
acks, anything else makes Pub/Sub retry with the subscription's backoff. In production mode the
shared push token must match (constant-time compare); locally it is optional.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json

from fastapi import APIRouter, HTTPException, Request, Response

from services.common.bus import CloudEvent, EventHandler, handled_types
from services.common.consumer import accepts
from services.common.logging import get_logger
from services.common.settings import Settings

log = get_logger(__name__)


def push_router(settings: Settings) -> APIRouter:
    """Handlers come from `app.state.runtime` (a ServiceRuntime), registered at startup."""
    router = APIRouter(include_in_schema=False)

    @router.post("/pubsub/push/{subscription}", status_code=204)
    async def push(subscription: str, request: Request) -> Response:
        expected = (
            settings.pubsub_push_token.get_secret_value() if settings.pubsub_push_token else ""
        )
        given = request.query_params.get("token", "")
        if (expected or not settings.is_local) and not hmac.compare_digest(
            given.encode(), expected.encode()
        ):
            raise HTTPException(status_code=403, detail="invalid push token")
        handlers: dict[str, EventHandler] = request.app.state.runtime.handlers()
        handler = handlers.get(subscription)
        if handler is None:
            raise HTTPException(status_code=404, detail="unknown subscription")
        try:
            envelope = json.loads(await request.body())
            message = envelope["message"]
            data = base64.b64decode(message.get("data", ""), validate=True)
            event = CloudEvent.from_message(message.get("attributes") or {}, data)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            # Malformed forever: acknowledge (2xx) so Pub/Sub does not retry it endlessly.
            log.error("malformed_push_dropped", subscription=subscription, error=str(exc))
            return Response(status_code=204)
        if not accepts(handled_types(handler), event.attributes(), subscription):
            return Response(status_code=204)  # not this consumer's type: acked, logged
        await handler(event)  # an exception → 500 → Pub/Sub redelivers
        return Response(status_code=204)

    return router
