"""The `call-dispatch` consumer: place one Twilio call per call id, ever.

Business-key idempotency: the call is claimed with a conditional UPDATE `dispatched → dialing`.
That claim is the dial intent (`dial_started_at`, `dial_attempts + 1`) and commits in its own
transaction *before* create-call is sent, so a second dispatch of the same call, under any ce-id
or after a crash, finds it no longer `dispatched` and does not dial. The CallSid is stored in
another transaction after create-call returns; if the process dies in between, the intent stays
with no CallSid and `reconcile` looks the call up in Twilio's call list (docs/reliability.md).

If Twilio answers with an error the call was not created: a 4xx (not 429) ends the call `failed`;
any other error response (or no connection at all) undoes the claim and re-raises, so Pub/Sub
redelivers. With a request sent and no answer (timeout, connection lost) Twilio may have placed
the call: the intent is kept for reconciliation and the message acknowledged, never dialed again
blind.

No transaction stays open across create-call (unlike `IdempotentHandler`): a dial would hold a
pooled connection while Twilio answers and take a second one for its intent, and enough dials at
once would starve the pool. A ce-id already in `processed_messages` is skipped, and the message's
ce-id is recorded there once handled; two copies handled at once are kept apart by the claim.

`on_dialing` runs just before the Twilio request, so what it starts (the call's TTS socket,
its greeting's audio) gets ready while the phone rings; `on_not_placed` undoes it when the call
was not placed after all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import aiohttp
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from twilio.base.exceptions import TwilioRestException

from generated.call_dispatch import CallDispatch
from generated.call_step import CallStep
from generated.call_step_reason import CallStepReason
from services.common import failpoints
from services.common.bus import CloudEvent
from services.common.call_steps import record_step
from services.common.logging import bind_call_id, get_logger
from services.common.models import Call, ProcessedMessage
from services.common.settings import Settings
from services.voice_orchestrator.amd import amd_callback_url
from services.voice_orchestrator.calls import SnapshotCache
from services.voice_orchestrator.finalize import end_without_session
from services.voice_orchestrator.stream_token import MEDIA_PATH as MEDIA_PATH  # re-exported
from services.voice_orchestrator.stream_token import media_path, stream_token
from services.voice_orchestrator.vendors.twilio import Telephony, stream_twiml, websocket_url

log = get_logger(__name__)

CE_TYPE = "call.dispatch"
CONSUMER = "voice-orchestrator"
STATUS_PATH = "/twilio/status"


def status_callback_url(settings: Settings, call_id: uuid.UUID | str) -> str:
    return f"{settings.orchestrator_public_url.rstrip('/')}{STATUS_PATH}?call_id={call_id}"


def call_twiml(settings: Settings, call_id: uuid.UUID, attempt: int) -> str:
    """The call's TwiML: its media stream at a URL of its own (`stream_token`)."""
    path = media_path(stream_token(settings, call_id, attempt))
    url = websocket_url(settings.orchestrator_public_url, path)
    return stream_twiml(url, str(call_id), attempt)


class Dispatcher:
    ce_types = frozenset({CE_TYPE})  # its consumer drops (acks) any other ce-type, logged

    def __init__(
        self,
        settings: Settings,
        telephony: Telephony,
        cache: SnapshotCache,
        sessions: async_sessionmaker[AsyncSession],
        *,
        on_dialing: Callable[[CallDispatch], None] | None = None,
        on_not_placed: Callable[[str], None] | None = None,
        after_end: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.telephony = telephony
        self.cache = cache
        self.sessions = sessions
        self.on_dialing = on_dialing
        self.on_not_placed = on_not_placed
        self.after_end = after_end  # e.g. wake the outbox relay for the `call.completed`

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

    async def __call__(self, event: CloudEvent) -> None:
        """The `call-dispatch` consumer (a bus `EventHandler`); an error nacks the message."""
        async with self.sessions() as db:
            seen = await db.scalar(
                select(ProcessedMessage.ce_id).where(
                    ProcessedMessage.consumer == CONSUMER, ProcessedMessage.ce_id == event.id
                )
            )
        if seen is not None:
            log.info("duplicate_message_skipped", ce_id=event.id, ce_type=event.type)
            return
        await self._handle(event)
        async with self.sessions() as db, db.begin():
            await db.execute(
                insert(ProcessedMessage)
                .values(consumer=CONSUMER, ce_id=event.id)
                .on_conflict_do_nothing()
            )

    async def _handle(self, event: CloudEvent) -> None:
        if event.type != CE_TYPE:
            log.warning("dispatch_unexpected_type", ce_type=event.type, ce_id=event.id)
            return
        try:
            msg = CallDispatch.model_validate(event.data)
        except ValidationError as exc:
            # It will never parse: acknowledge (recorded as processed) instead of looping.
            log.error("dispatch_invalid", ce_id=event.id, errors=exc.error_count())
            return
        bind_call_id(str(msg.call_id))
        if not await self.dial(msg):
            log.info("dispatch_skipped_already_placed", ce_id=event.id)

    async def _claim(self, call_id: uuid.UUID) -> int | None:
        """The durable dial intent: committed before create-call is sent. Returns the dial's
        attempt number (its stream token is bound to it), None if not `dispatched`."""
        async with self.sessions() as db, db.begin():
            claimed = (
                await db.execute(
                    update(Call)
                    .where(Call.id == call_id, Call.status == "dispatched")
                    .values(
                        status="dialing",
                        started_at=func.now(),
                        dial_started_at=func.now(),
                        dial_attempts=Call.dial_attempts + 1,
                        updated_at=func.now(),
                    )
                    .returning(Call.dial_attempts)
                )
            ).first()
            if claimed is not None:
                attempt = int(claimed[0])
                await record_step(
                    db,
                    call_id,
                    CallStep.DIALING,
                    detail={"dial_attempt": attempt},
                    once_key=f"dialing:{attempt}",
                )
        return None if claimed is None else int(claimed[0])

    async def _unclaim(self, call_id: uuid.UUID) -> None:
        """Twilio refused for now (it answered with an error): not placed, dispatchable again."""
        async with self.sessions() as db, db.begin():
            await db.execute(
                update(Call)
                .where(
                    Call.id == call_id,
                    Call.status == "dialing",
                    Call.twilio_call_sid.is_(None),
                )
                .values(status="dispatched", dial_started_at=None, updated_at=func.now())
            )

    async def dial(self, msg: CallDispatch) -> bool:
        """Claim and place the call; False if it was not `dispatched` (placed or ended already).

        Also used by `reconcile` for a dispatched call whose message was lost."""
        call_id = msg.call_id
        attempt = await self._claim(call_id)
        if attempt is None:
            return False
        self.cache.put(msg)
        self._dialing(msg)
        s = self.settings
        try:
            sid = await self.telephony.create_call(
                to=msg.debtor.phone,
                twiml=call_twiml(s, call_id, attempt),
                status_callback=status_callback_url(s, call_id),
                amd_callback=amd_callback_url(s, call_id) if s.amd_enabled else None,
                amd_timeout=s.amd_timeout_seconds,
                time_limit=s.call_time_limit_seconds,
            )
        except TwilioRestException as exc:
            self._not_placed(str(call_id))
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                log.warning("dispatch_rejected_by_twilio", status=exc.status, code=exc.code)
                rejected = f"Twilio rejected the call ({exc.status}, code {exc.code})"
                async with self.sessions() as db, db.begin():
                    await record_step(
                        db,
                        call_id,
                        CallStep.DIAL_FAILED,
                        detail={"message": rejected},
                        reason=CallStepReason.TWILIO_REJECTED,
                        once_key=f"dial_failed:{attempt}",
                    )
                    await end_without_session(
                        db,
                        s,
                        call_id,
                        status="failed",
                        outcome="failed",
                        failure_reason=rejected,
                        reason=CallStepReason.TWILIO_REJECTED,
                    )
                if self.after_end is not None:
                    self.after_end()
                return True
            await self._unclaim(call_id)
            raise
        except aiohttp.ClientConnectorError:
            # The connection to Twilio was never made: nothing was sent, so nothing was placed.
            self._not_placed(str(call_id))
            await self._unclaim(call_id)
            raise
        except Exception as exc:
            # No answer from Twilio: the call may exist. Dialing again now could ring the debtor
            # twice; the intent stays and reconciliation decides from Twilio's call list.
            self._not_placed(str(call_id))
            log.warning("dispatch_outcome_unknown", error=repr(exc))
            return True
        except BaseException:
            self._not_placed(str(call_id))
            raise
        failpoints.hit("dispatch.after_create_call")
        await store_call_sid(self.sessions, call_id, sid)
        log.info("call_placed")
        return True


async def store_call_sid(
    sessions: async_sessionmaker[AsyncSession], call_id: uuid.UUID, sid: str
) -> bool:
    """Record the Twilio call of a dial intent; False if the call already has one."""
    async with sessions() as db, db.begin():
        row = (
            await db.execute(
                update(Call)
                .where(Call.id == call_id, Call.twilio_call_sid.is_(None))
                .values(twilio_call_sid=sid, updated_at=func.now())
                .returning(Call.id)
            )
        ).first()
    return row is not None
