"""Twilio's asynchronous answering-machine detection: the signed `AsyncAmdStatusCallback`.

The call is placed with `MachineDetection=DetectMessageEnd`, `AsyncAmd=true` (vendors/twilio.py):
media flows at once and Twilio posts its verdict (`AnsweredBy`) here a few seconds later, after
a person's first words or after a machine's greeting (and beep) ended. The verdict is stored on
the call (`calls.answered_by`, shown in the call view) and handed to the call's live session,
which decides what to say (session/voicemail.py). The route checks `X-Twilio-Signature` exactly
like the status callback: an unsigned or forged verdict could make us disclose onto a machine.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generated.call_step import CallStep
from services.common.call_steps import record_step
from services.common.logging import bind_call_id, get_logger
from services.common.models import ANSWERED_BY, Call
from services.common.settings import Settings
from services.voice_orchestrator.session import voicemail
from services.voice_orchestrator.vendors.twilio import SignatureVerifier

if TYPE_CHECKING:
    from services.voice_orchestrator.session import CallSession

log = get_logger(__name__)

AMD_PATH = "/twilio/amd"
MAX_BODY_BYTES = 64 * 1024  # Twilio's AMD callback is a few hundred bytes of form fields


def amd_callback_url(settings: Settings, call_id: uuid.UUID | str) -> str:
    return f"{settings.orchestrator_public_url.rstrip('/')}{AMD_PATH}?call_id={call_id}"


async def store_answered_by(
    sessions: async_sessionmaker[AsyncSession],
    call_id: uuid.UUID,
    answered_by: str,
    *,
    step: bool = True,
) -> None:
    """Kept whatever the call's status: a verdict that comes after the call ended still says
    what answered (the `call.completed` already sent does not have it). With `step`, the
    call's `amd_result` step too (a live session here keeps it in its buffer instead, so the
    verdict reaches the session after no more database work than before)."""
    async with sessions() as db, db.begin():
        known = await db.scalar(
            update(Call)
            .where(Call.id == call_id)
            .values(answered_by=answered_by, updated_at=func.now())
            .returning(Call.id)
        )
        if known is not None and step:
            await record_step(
                db,
                call_id,
                CallStep.AMD_RESULT,
                detail={"answered_by": answered_by},
                once_key="amd_result",
            )


class _Orchestrator(Protocol):
    verifier: SignatureVerifier
    sessions: async_sessionmaker[AsyncSession]
    live: dict[str, CallSession]


def add_amd_route(app: FastAPI, orchestrator: Callable[[], _Orchestrator]) -> None:
    """`POST /twilio/amd?call_id=...`. `orchestrator` is read at request time (the app's state
    is built in the lifespan, after the routes)."""

    @app.post(AMD_PATH)
    async def twilio_amd(request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return Response(status_code=413)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return Response(status_code=413)
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        signature = request.headers.get("x-twilio-signature", "")
        try:
            params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            params, signature = {}, ""
        orch = orchestrator()
        if not orch.verifier.verify_http(path, params, signature):
            log.warning("twilio_signature_rejected", path=request.url.path)
            return Response(status_code=403)
        try:
            call_id = uuid.UUID(request.query_params.get("call_id", ""))
        except ValueError:
            return Response(status_code=400)
        bind_call_id(str(call_id))
        answered_by = params.get("AnsweredBy", "")
        if answered_by not in ANSWERED_BY:
            log.warning("amd_unknown_answered_by", answered_by=answered_by[:32])
            return Response(status_code=204)  # acknowledged: a retry would say the same
        log.info(
            "amd_result",
            answered_by=answered_by,
            detection_ms=params.get("MachineDetectionDuration", "")[:12],
        )
        session = orch.live.get(str(call_id))
        call_sid = params.get("CallSid", "")
        live_here = session is not None and session.start.call_sid == call_sid
        await store_answered_by(orch.sessions, call_id, answered_by, step=not live_here)
        if session is not None and live_here:
            if not session.ended.is_set():  # its steps are not taken for storing yet
                session.steps.add(
                    CallStep.AMD_RESULT, detail={"answered_by": answered_by}, once_key="amd_result"
                )
            else:  # it ended meanwhile: its steps are stored already
                await store_answered_by(orch.sessions, call_id, answered_by)
        if session is None:
            voicemail.keep_early(call_sid, answered_by)  # its session may be starting
        elif session.start.call_sid == call_sid:
            voicemail.on_answered_by(session, answered_by)
        return Response(status_code=204)
