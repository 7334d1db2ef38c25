"""The `call-dispatch` consumer: place one Twilio call per call id, ever.

Runs inside `IdempotentHandler` (one transaction with the `processed_messages` row, so a
redelivered ce-id is skipped) and adds business-key idempotency on top: the call is claimed
with a conditional UPDATE `dispatched → dialing`. A second dispatch of the same call, under any
ce-id, finds it no longer `dispatched` (or waits on the row lock until the first commits, then
finds it) and does not dial. If Twilio fails transiently the transaction rolls back, the claim
with it, and Pub/Sub redelivers; if Twilio rejects the call for good, the call ends `failed`.

`on_dialing` runs just before the Twilio request, so what it starts (the call's TTS socket,
its greeting's audio) gets ready while the phone rings; `on_not_placed` undoes it when the call
was not placed after all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from pydantic import ValidationError
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession
from twilio.base.exceptions import TwilioRestException

from generated.call_dispatch import CallDispatch
from services.common.bus import CloudEvent
from services.common.logging import bind_call_id, get_logger
from services.common.models import Call
from services.common.settings import Settings
from services.voice_orchestrator.calls import SnapshotCache
from services.voice_orchestrator.finalize import end_without_session
from services.voice_orchestrator.vendors.twilio import Telephony, stream_twiml, websocket_url

log = get_logger(__name__)

CE_TYPE = "call.dispatch"
MEDIA_PATH = "/media-stream"
STATUS_PATH = "/twilio/status"


def status_callback_url(settings: Settings, call_id: uuid.UUID | str) -> str:
    return f"{settings.orchestrator_public_url.rstrip('/')}{STATUS_PATH}?call_id={call_id}"


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        telephony: Telephony,
        cache: SnapshotCache,
        *,
        on_dialing: Callable[[CallDispatch], None] | None = None,
        on_not_placed: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.telephony = telephony
        self.cache = cache
        self.on_dialing = on_dialing
        self.on_not_placed = on_not_placed

    def _dialing(self, msg: CallDispatch) -> None:
        if self.on_dialing is None:
            return
        try:
            self.on_dialing(msg)
        except Exception as exc:  # a head start, never a reason not to dial
            log.warning("dispatch_prepare_failed", error=repr(exc))

    def _not_placed(self, call_id: str) -> None:
        self.cache.pop(call_id)
        if self.on_not_placed is not None:
            self.on_not_placed(call_id)

    async def handle(self, session: AsyncSession, event: CloudEvent) -> None:
        if event.type != CE_TYPE:
            log.warning("dispatch_unexpected_type", ce_type=event.type, ce_id=event.id)
            return
        try:
            msg = CallDispatch.model_validate(event.data)
        except ValidationError as exc:
            # It will never parse: acknowledge (recorded as processed) instead of looping.
            log.error("dispatch_invalid", ce_id=event.id, errors=exc.error_count())
            return
        call_id = msg.call_id
        bind_call_id(str(call_id))
        claimed = (
            await session.execute(
                update(Call)
                .where(Call.id == call_id, Call.status == "dispatched")
                .values(status="dialing", started_at=func.now(), updated_at=func.now())
                .returning(Call.id)
            )
        ).first()
        if claimed is None:
            log.info("dispatch_skipped_already_placed", ce_id=event.id)
            return
        self.cache.put(msg)
        self._dialing(msg)
        s = self.settings
        try:
            sid = await self.telephony.create_call(
                to=msg.debtor.phone,
                twiml=stream_twiml(
                    websocket_url(s.orchestrator_public_url, MEDIA_PATH), str(call_id)
                ),
                status_callback=status_callback_url(s, call_id),
                time_limit=s.call_time_limit_seconds,
            )
        except TwilioRestException as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                log.warning("dispatch_rejected_by_twilio", status=exc.status, code=exc.code)
                await end_without_session(
                    session,
                    s,
                    call_id,
                    status="failed",
                    outcome="failed",
                    failure_reason=f"Twilio rejected the call ({exc.status}, code {exc.code})",
                )
                self._not_placed(str(call_id))
                return
            self._not_placed(str(call_id))
            raise
        except BaseException:
            self._not_placed(str(call_id))
            raise
        await session.execute(update(Call).where(Call.id == call_id).values(twilio_call_sid=sid))
        log.info("call_placed")
