"""Twilio's signed status callbacks (`POST /twilio/status?call_id=...`) and what each status does.

`on_status` is shared with the reconciler, which applies a status it looked up itself.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from generated.call_step_reason import CallStepReason
from services.common.logging import bind_call_id, get_logger
from services.common.models import Call
from services.voice_orchestrator import calls, reconcile
from services.voice_orchestrator.dispatch import STATUS_PATH
from services.voice_orchestrator.finalize import end_without_session
from services.voice_orchestrator.routes import orchestrator

if TYPE_CHECKING:
    from services.voice_orchestrator.orchestrator import Orchestrator

log = get_logger(__name__)

router = APIRouter()

# Twilio's status callbacks are ~1 KiB of form fields; a bigger body is refused with 413 before
# it is read whole. (A candidate for a setting.)
MAX_CALLBACK_BODY_BYTES = 64 * 1024

# Twilio CallStatus → (our terminal status, outcome) for calls that never reached a person.
UNANSWERED = {
    "busy": ("busy", "no_answer"),
    "no-answer": ("no_answer", "no_answer"),
    "failed": ("failed", "failed"),
    "canceled": ("canceled", "failed"),
}
UNANSWERED_REASONS = {  # ... and the reason of the call's `ended` step
    "busy": CallStepReason.BUSY,
    "no-answer": CallStepReason.NO_ANSWER,
    "failed": CallStepReason.TWILIO_FAILED,
    "canceled": CallStepReason.TWILIO_CANCELED,
}


@router.post(STATUS_PATH)
async def twilio_status(request: Request) -> Response:
    orch = orchestrator(request)
    body = await _read_body(request, MAX_CALLBACK_BODY_BYTES)
    if body is None:
        log.warning("twilio_callback_too_large", path=request.url.path)
        # The rest of the body is read and discarded by the server (no reset mid-upload).
        return Response(status_code=413)
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    signature = request.headers.get("x-twilio-signature", "")
    try:
        # Twilio posts application/x-www-form-urlencoded UTF-8; parsed without
        # python-multipart. A body that is not UTF-8 cannot carry a valid signature.
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        params, signature = {}, ""
    if not orch.verifier.verify_http(path, params, signature):
        log.warning("twilio_signature_rejected", path=request.url.path)
        return Response(status_code=403)
    try:
        call_id = uuid.UUID(request.query_params.get("call_id", ""))
    except ValueError:
        return Response(status_code=400)
    bind_call_id(str(call_id))
    await on_status(orch, call_id, params)
    return Response(status_code=204)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it is over `limit` bytes (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def on_status(orch: Orchestrator, call_id: uuid.UUID, params: dict[str, str]) -> None:
    status = params.get("CallStatus", "")
    if (status in UNANSWERED or status == "completed") and str(call_id) not in orch.live:
        orch.release_call(str(call_id))  # ended before its media stream started here
    async with orch.sessions() as session, session.begin():
        await reconcile.adopt_call_sid(session, call_id, params.get("CallSid", ""))
        if status == "ringing":
            await calls.mark_ringing(session, call_id)
        elif status in ("in-progress", "answered"):
            await calls.mark_answered(session, call_id)
        elif status in UNANSWERED:
            ours, outcome = UNANSWERED[status]
            reason = None
            if status in ("failed", "canceled"):
                code = params.get("ErrorCode") or params.get("SipResponseCode") or "unknown"
                reason = f"Twilio reported the call {status} ({code})"
            await end_without_session(
                session,
                orch.settings,
                call_id,
                status=ours,
                outcome=outcome,
                failure_reason=reason,
                reason=UNANSWERED_REASONS[status],
            )
        elif status == "completed" and str(call_id) not in orch.live:
            # Completed with no live session here: if no session ever started, the media
            # stream never connected. (A session on another instance has a heartbeat.)
            row = (
                await session.execute(
                    select(Call.heartbeat_at).where(Call.id == call_id).with_for_update()
                )
            ).first()
            if row is not None and row[0] is None:
                await end_without_session(
                    session,
                    orch.settings,
                    call_id,
                    status="completed",
                    outcome="failed",
                    failure_reason="the call was answered but the media stream never connected",
                    reason=CallStepReason.MEDIA_NEVER_CONNECTED,
                )
    if orch.relay is not None:
        orch.relay.wake()
